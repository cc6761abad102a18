#!/usr/bin/env bash
# onespike-train as a user runs it: init a model, inspect it, classify real JPEGs, and get a
# clear refusal for a damaged model, a bad image and a bad flag. Values are checked with python3.
set -euo pipefail
TRAIN=${1:?onespike-train path}
FIX=${2:?fixtures dir}
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0 failed=0
check() { # name, command...
    local name=$1; shift
    n=$((n + 1))
    if "$@"; then echo "ok $n - $name"; else echo "not ok $n - $name"; failed=$((failed + 1)); fi
}

M=$T/m.safetensors
"$TRAIN" init --arch resnet20 --width-mult 0.25 --input 32 --labels airplane,beach,harbor \
    --timesteps 2 --out "$M" --seed 5 >/dev/null
check "init wrote a model" test -s "$M"

"$TRAIN" inspect "$M" >"$T/inspect.txt"
check "inspect names the model" grep -q "name        resnet20 (version 1)" "$T/inspect.txt"
check "inspect shows the checksum verified" grep -q "(verified)" "$T/inspect.txt"
check "inspect lists layers with shapes" grep -Eq "s3.b2.act +lif .* 16x8x8" "$T/inspect.txt"
check "inspect names the path a session takes" grep -Eq "^  runs        event, (scalar|avx2|avx512), fp32 \(event-driven weight copies" "$T/inspect.txt"
"$TRAIN" inspect --isa scalar --weights int8 "$M" >"$T/inspect-q.txt"
check "inspect --isa --weights" grep -q "^  runs        event, scalar, int8 (" "$T/inspect-q.txt"

# The kernel set and weight format: every set this CPU runs gives the fp32 answers of the
# scalar set, int8 gives the same answers on every set; a set or format it lacks is refused.
for f in fp32 int8; do
    "$TRAIN" classify --model "$M" --top-k 1 --isa scalar --weights $f "$FIX/ucm_beach00.jpg" \
        "$FIX/ucm_harbor10.jpg" >"$T/scalar-$f.txt"
    for isa in avx2 avx512; do
        if "$TRAIN" classify --model "$M" --top-k 1 --isa $isa --weights $f "$FIX/ucm_beach00.jpg" \
            "$FIX/ucm_harbor10.jpg" >"$T/$isa-$f.txt" 2>"$T/$isa.err"; then
            check "classify --isa $isa --weights $f: the scalar set's answers" \
                $PY -c 'import sys; a, b = (open(f).read().split() for f in sys.argv[1:]); assert [x for i, x in enumerate(a) if i % 3 != 2] == [x for i, x in enumerate(b) if i % 3 != 2]' \
                "$T/scalar-$f.txt" "$T/$isa-$f.txt"
        else
            check "classify --isa $isa: refused as not run by this CPU" grep -q "cannot run it" "$T/$isa.err"
            echo "# skipped: $isa kernels (this CPU lacks them)"
        fi
    done
done
set +e
"$TRAIN" classify --model "$M" --isa sse9 "$FIX/ucm_beach00.jpg" >/dev/null 2>"$T/isa.err"; rc=$?
"$TRAIN" classify --model "$M" --weights fp8 "$FIX/ucm_beach00.jpg" >/dev/null 2>"$T/w.err"; rc2=$?
set -e
check "an unknown instruction set is refused" test $rc -eq 1 -a -n "$(grep 'not one of scalar' "$T/isa.err")"
check "an unknown weight format is refused" test $rc2 -eq 1 -a -n "$(grep 'not one of fp32, fp16, int8' "$T/w.err")"

"$TRAIN" inspect --json "$M" >"$T/inspect.json"
check "inspect --json values" $PY - "$T/inspect.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["timesteps"] == 2, d["timesteps"]
assert d["labels"] == ["airplane", "beach", "harbor"]
assert d["input"]["height"] == 32 and d["input"]["channels"] == 3
assert d["checksum"] == "verified" and len(d["sha256"]) == 64
assert d["layers"][-1]["op"] == "linear" and d["layers"][-1]["shape"] == [3, 1, 1]
assert d["parameters"] == sum(l["params"] for l in d["layers"]) > 0
assert any(l["op"] == "lif" and l["threshold"] == 1.0 for l in d["layers"])
PY

# Classify: three good JPEGs, a PNG (through GDAL) and one truncated JPEG; the bad one is
# reported, the others answered.
set +e
"$TRAIN" classify --model "$M" --json --top-k 2 "$FIX/ucm_airplane00.jpg" \
    "$FIX/ucm_airplane00_trunc40.jpg" "$FIX/ucm_beach00.jpg" "$FIX/tiny_2x2.png" \
    "$FIX/ucm_harbor10.jpg" >"$T/classify.jsonl" 2>"$T/classify.err"
rc=$?
set -e
check "classify exits 1 when an image failed" test $rc -eq 1
check "classify answers each image in order" $PY - "$T/classify.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 5, rows
ok = [r for r in rows if "predictions" in r]
assert [r["image"].rsplit("/", 1)[1] for r in ok] == ["ucm_airplane00.jpg", "ucm_beach00.jpg",
                                                      "tiny_2x2.png", "ucm_harbor10.jpg"]
for r in ok:
    p = [x["probability"] for x in r["predictions"]]
    assert len(p) == 2 and p[0] >= p[1] > 0 and sum(p) <= 1 + 1e-6
    assert all(x["label"] in ("airplane", "beach", "harbor") for x in r["predictions"])
assert "trunc40" in rows[1]["image"] and rows[1]["error"], rows[1]
PY

# The same image twice gives the same answer; top-k 3 probabilities of 3 classes sum to 1.
"$TRAIN" classify --model "$M" --json --top-k 3 "$FIX/ucm_beach00.jpg" "$FIX/ucm_beach00.jpg" >"$T/same.jsonl"
check "classify is deterministic and complete" $PY - "$T/same.jsonl" <<'PY'
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert a["predictions"] == b["predictions"]
assert abs(sum(x["probability"] for x in a["predictions"]) - 1) < 1e-5
PY

# A damaged model: one flipped byte in the tensor data.
D=$T/damaged.safetensors
cp "$M" "$D"
size=$(stat -c %s "$D")
printf '\x55' | dd of="$D" bs=1 seek=$((size - 64)) conv=notrunc status=none
set +e
"$TRAIN" inspect "$D" >/dev/null 2>"$T/damaged.err"; rc1=$?
"$TRAIN" classify --model "$D" "$FIX/ucm_beach00.jpg" >/dev/null 2>"$T/damaged2.err"; rc2=$?
"$TRAIN" inspect "$T/absent.safetensors" >/dev/null 2>"$T/absent.err"; rc3=$?
"$TRAIN" classify --model "$M" --top-k 0 "$FIX/ucm_beach00.jpg" >/dev/null 2>"$T/flag.err"; rc4=$?
"$TRAIN" inspect --bogus "$M" >/dev/null 2>"$T/flag2.err"; rc5=$?
head -c 100 "$M" >"$T/short.safetensors"
"$TRAIN" inspect "$T/short.safetensors" >/dev/null 2>"$T/short.err"; rc6=$?
set -e
check "damaged model refused by inspect" test $rc1 -eq 1
check "damaged model: message names the checksum" grep -q "SHA-256" "$T/damaged.err"
check "damaged model refused by classify" grep -q "SHA-256" "$T/damaged2.err"
check "classify with damaged model exits 1" test $rc2 -eq 1
check "missing model named" grep -q "absent.safetensors" "$T/absent.err"
check "missing model exits 1" test $rc3 -eq 1
check "bad --top-k is a usage error" test $rc4 -eq 2
check "bad --top-k message names the flag" grep -q -- "--top-k" "$T/flag.err"
check "unknown option is a usage error" test $rc5 -eq 2
check "truncated model refused" test $rc6 -eq 1
check "truncated model message names the file" grep -q "short.safetensors" "$T/short.err"

echo "$((n - failed)) passed, $failed failed"
test $failed -eq 0
