#!/usr/bin/env bash
# onespike-train fit and eval end to end on a small generated data set of real JPEGs: the
# pipeline must learn it (the final one-step SNN well above chance), survive a broken image,
# resume a stopped run to the same model, and refuse bad input clearly.
set -uo pipefail
TRAIN=${1:?onespike-train}; SYNTH=${2:?make_synth}; PYDIR=${3:?tests/py dir}
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0 failed=0
check() {
    local name=$1; shift
    n=$((n + 1))
    if "$@"; then echo "ok $n - $name"; else echo "not ok $n - $name"; failed=$((failed + 1)); fi
}

SRC=$(dirname "$0")/../..
SHIPPED=$SRC/models/ucm-msresnet18-t1.safetensors

# fit's defaults are the shipped model's recipe: the config the model file records (less this
# run's data, its split and where it started from) is what `fit --print-config` gives, key for
# key and type for type, and the config keeps exactly the keys that file has (a resume and the
# report read them).
"$TRAIN" inspect --json "$SHIPPED" >"$T/shipped.json"
"$TRAIN" fit --print-config >"$T/defaults.json"
check "the defaults are the recipe the shipped model records" $PY - "$T/shipped.json" "$T/defaults.json" <<'PY'
import json, sys
rec = json.load(open(sys.argv[1]))["training"]["config"]
got = json.load(open(sys.argv[2]))
newer = {"new_head": False}   # flags a model file may predate, at their defaults
# (later flags are recorded only when set: --folds, --fold, --freeze-stages)
assert all(got.get(k) == v for k, v in newer.items()), got
assert all(rec.get(k, v) == v for k, v in newer.items()), rec
got = {k: v for k, v in got.items() if k not in newer}
rec = {k: v for k, v in rec.items() if k not in newer}
assert sorted(got) == sorted(rec), set(got) ^ set(rec)
per_run = {"data", "train_list", "val_list", "ann_from", "snn_from", "val_fraction"}
drift = {k: (got[k], rec[k]) for k in rec if k not in per_run
         and (got[k] != rec[k] or type(got[k]) is not type(rec[k]))}
assert not drift, "defaults (printed, recorded): %s" % drift
assert got["val_fraction"] > 0, got   # a validation split by default (the file used 0)
assert got["arch"] == "msresnet18" and got["input"] == 128 and got["epochs_finetune"] == 100
PY
"$TRAIN" fit --print-config --input 64 --optimizer sgd --seed 7 --train-list a.txt \
    --val-list b.txt --threads 3 >"$T/flags.json"
check "--print-config shows the flags given" $PY - "$T/flags.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert (c["input"], c["optimizer"], c["seed"], c["train_list"], c["val_list"]) == \
    (64, "sgd", 7, "a.txt", "b.txt"), c
assert "threads" not in c and c["data"] is None, c
PY
"$TRAIN" fit --help >"$T/help.txt"
check "--help lists the recipe's defaults" sh -c 'grep -q -- "--arch A .*" "$1" &&
    grep -q "(default msresnet18)" "$1" && grep -q -- "--input PX .*(default 128)" "$1" &&
    grep -q -- "--epochs-finetune N .*(default 100)" "$1" &&
    grep -q -- "--surrogate-gamma G .*(default 1)" "$1" && grep -q -- "--print-config" "$1"' _ "$T/help.txt"
"$TRAIN" fit --print-config --val-list b.txt 2>"$T/vl.err" >/dev/null
check "flag rules hold for --print-config too" grep -q "needs --train-list" "$T/vl.err"

"$SYNTH" "$T/data" 4 40 32 7 1 || exit 1
# Every run pins the schedule it was tuned with: small values, fast, and independent of the
# defaults (the shipped recipe, hours of training). --surrogate-gamma 0.3: its earlier default.
COMMON=(--data "$T/data" --arch resnet20 --width-mult 0.25 --input 16 --batch 16 --t0 3
        --units 1 --unit-at 2 --val-fraction 0.25 --lr-snn 1e-3 --lr-finetune 5e-4 --threads 1
        --surrogate-gamma 0.3)

"$TRAIN" fit "${COMMON[@]}" --epochs-ann 20 --epochs-snn 8 --epochs-t0 8 --epochs-finetune 8 \
    --out "$T/m.safetensors" --quiet 2>"$T/fit.err"
rc=$?
cat "$T/fit.err"
check "fit succeeds" test $rc -eq 0
check "the broken image is named and skipped" grep -q "broken.jpg.*skipped" "$T/fit.err"
check "model, report and metrics written" test -s "$T/m.safetensors" -a -s "$T/m.safetensors.report.md" \
    -a -s "$T/m.safetensors.report.json" -a -s "$T/m.safetensors.work/metrics.jsonl"
check "fit writes the model's STAC MLM Item beside it, with its classes" $PY - "$T/m.stac.json" "$T/data" <<'PY'
import json, os, sys
item = json.load(open(sys.argv[1]))
names = [c["name"] for c in item["properties"]["mlm:output"][0]["classification:classes"]]
assert names == sorted(d for d in os.listdir(sys.argv[2]) if os.path.isdir(os.path.join(sys.argv[2], d))), names
assert any(a.get("href") == "m.safetensors" for a in item["assets"].values()), item["assets"]
PY

"$TRAIN" inspect --json "$T/m.safetensors" >"$T/inspect.json"
check "deployed model: one step, no Units, LIF layers" $PY - "$T/inspect.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["timesteps"] == 1, d["timesteps"]
assert d["units"] == 0 and not any("unit" in l for l in d["layers"])
assert d["lif_layers"] > 10 and not any(l["op"] in ("bn", "relu") for l in d["layers"])
assert d["labels"] == ["class00", "class01", "class02", "class03"]
PY

check "report: every stage, and the one-step SNN learned" $PY - "$T/m.safetensors.report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
names = [s["stage"] for s in r["stages"]]
assert names == ["ann", "convert", "snn-T3", "snn-T2", "snn-T1", "remove-units", "finetune"], names
acc = {s["stage"]: s["val_top1"] for s in r["stages"]}
print("stage accuracies:", acc)
# Every stage, not only the ends (chance is 0.25; this run measured ann 1.0, convert 0.58,
# T3 0.80, T2 0.88, T1 0.70, remove-units 0.65, finetune 0.78): a stage that breaks the
# network shows here even when the fine-tune would hide it.
floor = {"ann": 0.9, "convert": 0.4, "snn-T3": 0.6, "snn-T2": 0.6, "snn-T1": 0.5,
         "remove-units": 0.45, "finetune": 0.6}
low = {k: (acc[k], v) for k, v in floor.items() if acc[k] < v}
assert not low, "stages below their floor (got, floor): %s" % low
assert acc["snn-T3"] >= acc["convert"], acc        # training at T0 recovers from conversion
assert acc["finetune"] >= acc["remove-units"] - 0.05, acc
# The engine against the trainer on the same net and the same validation images: they differ
# only in float summation order, so by one image at most.
eng = r["final"]["validation_engine"]
n = eng["images"]
assert n >= 30, eng
assert abs(eng["top1"] - acc["finetune"]) * n <= 1 + 1e-9, (eng, acc["finetune"])
rates = [x["rate"] for x in r["stages"][-1]["spike_rates"]]
assert all(0 < x < 1 for x in rates), rates
assert len(r["final"]["sha256"]) == 64 and r["final"]["timesteps"] == 1
assert r["config"]["input"] == 16 and r["config"]["surrogate_gamma"] == 0.3, r["config"]
PY
check "report.md: the configuration, flags off the recipe marked" grep -q "^| --input | \*\*16\*\* | 128 |" \
    "$T/m.safetensors.report.md"

# The split is in the work dir as lists (relative paths): together every image once, and
# `eval --list val.txt` scores the exported model on exactly the validation images fit scored.
"$TRAIN" eval --model "$T/m.safetensors" --data "$T/data" --list "$T/m.safetensors.work/val.txt" \
    --json >"$T/evalval.json" 2>/dev/null
check "fit writes train.txt and val.txt; eval --list val.txt gives the report's figure" $PY - "$T/m.safetensors.work" "$T/data" "$T/evalval.json" "$T/m.safetensors.report.json" <<'PY'
import json, os, sys
w, data = sys.argv[1], sys.argv[2]
tr = open(w + "/train.txt").read().split()
va = open(w + "/val.txt").read().split()
every = sorted("%s/%s" % (c, f) for c in os.listdir(data) for f in os.listdir(os.path.join(data, c))
               if f.endswith(".jpg"))
assert sorted(tr + va) == every and not set(tr) & set(va), (len(tr), len(va), len(every))
e, r = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))["final"]["validation_engine"]
assert e["top1"] == r["top1"] and e["images"] + e["failed"] == len(va), (e["top1"], r, len(va))
PY
"$TRAIN" eval --model "$T/m.safetensors" --data "$T/data" --json >"$T/eval.json" 2>"$T/eval.err"
check "eval --json: fractions, per class, confusion" $PY - "$T/eval.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
assert 0.5 <= e["top1"] <= e["top5"] <= 1, e
assert e["images"] == 160 and e["failed"] == 1, (e["images"], e["failed"])
assert set(e["per_class"]) == {"class00", "class01", "class02", "class03"}
assert sum(map(sum, e["confusion"])) == 160 and len(e["confusion"]) == 4
PY
check "eval names the broken image" grep -q "broken.jpg" "$T/eval.err"
# --tta 8: each image in its 8 test-time views; the report's views8 figure is eval's
"$TRAIN" eval --model "$T/m.safetensors" --data "$T/data" --list "$T/m.safetensors.work/val.txt" \
    --tta 8 --json >"$T/evaltta.json" 2>/dev/null
check "eval --tta 8: 8 views, the report's views8 figure" $PY - "$T/evaltta.json" "$T/evalval.json" "$T/m.safetensors.report.json" <<'PY'
import json, sys
e, one = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
r = json.load(open(sys.argv[3]))["final"]["validation_engine"]
assert e["views"] == 8 and one["views"] == 1 and e["images"] == one["images"], (e, one)
assert e["top1"] == r["views8"]["top1"] and e["top5"] == r["views8"]["top5"], (e["top1"], r)
assert [a["probability"] for a in e["answers"]] != [a["probability"] for a in one["answers"]]
PY
check "report.md gives the 8-view figure" grep -q "With 8 test-time views averaged" \
    "$T/m.safetensors.report.md"
"$TRAIN" eval --model "$T/m.safetensors" --data "$T/data" --tta 3 2>"$T/tta.err" >/dev/null
check "eval --tta 3 is a usage error" sh -c 'test $1 -eq 2 && grep -q -- "--tta" "$2"' _ $? "$T/tta.err"

# Resume: stopped twice, resumed each time, the same model as one uninterrupted run.
SHORT=(--epochs-ann 3 --epochs-snn 2 --epochs-t0 2 --epochs-finetune 2 --quiet)
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/a.safetensors" 2>/dev/null
ONESPIKE_FIT_STOP_AFTER=2 "$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/b.safetensors" 2>"$T/stop.err"
rc1=$?
ONESPIKE_FIT_STOP_AFTER=4 "$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/b.safetensors" --resume 2>/dev/null
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/b.safetensors" --resume 2>/dev/null
rc2=$?
check "a stopped run exits non-zero and says how to resume" test $rc1 -eq 1
check "stop message mentions --resume" grep -q -- "--resume" "$T/stop.err"
check "resumed run completes" test $rc2 -eq 0
check "resumed model equals the uninterrupted one" $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/b.safetensors"

# --threads 2: two replicas share each batch (BatchNorm over the whole batch); the first two ANN
# epochs follow the one-thread run up to float summation order.
ONESPIKE_FIT_STOP_AFTER=2 "$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --threads 2 \
    --out "$T/p.safetensors" 2>/dev/null
check "--threads 2 (two replicas) trains as one thread does" $PY - "$T/a.safetensors.work/metrics.jsonl" "$T/p.safetensors.work/metrics.jsonl" <<'PY'
import json, sys
one, two = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
one = [r for r in one if r.get("stage") == "ann" and "epoch" in r][:2]
two = [r for r in two if r.get("stage") == "ann" and "epoch" in r][:2]
assert len(one) == len(two) == 2, (one, two)
for a, b in zip(one, two):
    assert abs(a["train_loss"] - b["train_loss"]) <= 1e-3 * a["train_loss"], (a, b)
    assert abs(a["val_top1"] - b["val_top1"]) <= 0.05, (a, b)
PY

# Mixup/CutMix and the weight average (--ema): a run stopped inside the ANN stage and inside the
# fine-tune (the average is in the checkpoint) resumes to the uninterrupted run's model; the ANN
# stage and the fine-tune end on their averages (each stage's recorded accuracy is its last
# epoch's average's), the SNN stages have none; and mixing changes what is learned.
MIX=(--mixup 0.4 --cutmix 1 --mix-finetune 1 --ema 0.9)
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" "${MIX[@]}" --out "$T/mx.safetensors" 2>/dev/null
rcx=$?
ONESPIKE_FIT_STOP_AFTER=2 "$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" "${MIX[@]}" --out "$T/my.safetensors" 2>/dev/null
ONESPIKE_FIT_STOP_AFTER=8 "$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" "${MIX[@]}" --out "$T/my.safetensors" --resume 2>/dev/null
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" "${MIX[@]}" --out "$T/my.safetensors" --resume 2>/dev/null
rcy=$?
check "a mixed, averaged run completes and resumes" test $rcx -eq 0 -a $rcy -eq 0
check "resumed (ANN and fine-tune) mixed, averaged model equals the uninterrupted one" \
    $PY "$PYDIR/compare_models.py" "$T/mx.safetensors" "$T/my.safetensors"
check "mixing and averaging change the model" sh -c '! "$1" "$2" "$3" "$4" >/dev/null' _ \
    $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/mx.safetensors"
check "the ANN stage and the fine-tune end on their averages" $PY - "$T/mx.safetensors.work/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
epochs = [r for r in rows if "epoch" in r]
for st in ("ann", "finetune"):
    ep = [r for r in epochs if r["stage"] == st]
    assert ep and all("val_top1_ema" in r for r in ep), ep
    rec = [r for r in rows if r["stage"] == st and "epoch" not in r][-1]
    assert abs(rec["val_top1"] - ep[-1]["val_top1_ema"]) < 1e-9, (rec, ep[-1])
assert not any("val_top1_ema" in r for r in epochs if r["stage"].startswith("snn-")), epochs
PY
"$TRAIN" fit --print-config --mix-prob 0.5 2>"$T/mix.err" >/dev/null
check "--mix-prob without --mixup or --cutmix is refused" grep -q "give one of them" "$T/mix.err"

# --teacher: the SNN stages and the fine-tune distil from the model given. Run a's own ANN named
# as the teacher reproduces run a bit for bit; another ANN (run m's, trained longer) gives
# another model; a teacher of another input size, or without --distill, is refused.
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --teacher "$T/a.safetensors.work/ann.safetensors" \
    --out "$T/ta.safetensors" 2>/dev/null
check "--teacher of the run's own ANN is the default distillation, bit for bit" \
    $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/ta.safetensors"
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --teacher "$T/m.safetensors.work/ann.safetensors" \
    --out "$T/tm.safetensors" 2>/dev/null
rct=$?
check "--teacher of another ANN trains" test $rct -eq 0
check "another teacher, another model" sh -c '! "$1" "$2" "$3" "$4" >/dev/null' _ \
    $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/tm.safetensors"
check "the config records the teacher" $PY - "$T/tm.safetensors.report.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["config"]
assert c["teacher"].endswith("m.safetensors.work/ann.safetensors"), c
PY
# A teacher that normalises images otherwise: run a's ANN with its input std doubled and its stem
# weights doubled computes what that ANN does, but only if the batch is renormalised for it
# (x / 2); so it must reproduce run a bit for bit, and the std change alone must not.
$PY "$PYDIR/rescale_input.py" "$T/a.safetensors.work/ann.safetensors" "$T/tn-teacher.safetensors" 2
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --teacher "$T/tn-teacher.safetensors" \
    --out "$T/tn.safetensors" 2>/dev/null
check "a teacher of other statistics gets the batch renormalised to them, bit for bit" \
    $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/tn.safetensors"
$PY "$PYDIR/rescale_input.py" "$T/a.safetensors.work/ann.safetensors" "$T/to-teacher.safetensors" 2 none
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --teacher "$T/to-teacher.safetensors" \
    --out "$T/to.safetensors" 2>/dev/null
check "a teacher of other statistics alone is another teacher" \
    sh -c '! "$1" "$2" "$3" "$4" >/dev/null' _ \
    $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/to.safetensors"
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --teacher "$SHIPPED" --out "$T/tx.safetensors" 2>"$T/tx.err"
check "a teacher of another input size is refused" grep -q "teacher .*input 3x128x128, this run has 3x16x16" "$T/tx.err"
"$TRAIN" fit --print-config --teacher "$SHIPPED" --distill 0 2>"$T/td.err" >/dev/null
check "--teacher without --distill is refused" grep -q "give --distill" "$T/td.err"

# --unit-teacher 1: the fine-tune distils from the T = 1 network as it was before Unit removal,
# kept in the work dir (one step, its Unit in), not from the ANN: another model than run a's.
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --unit-teacher 1 --out "$T/ut.safetensors" 2>/dev/null
rcu=$?
check "--unit-teacher 1 trains" test $rcu -eq 0
"$TRAIN" inspect --json "$T/ut.safetensors.work/units.safetensors" >"$T/ut.json" 2>/dev/null
check "the teacher kept is the one-step network with its Unit" $PY - "$T/ut.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["timesteps"] == 1 and d["units"] == 1 and d["lif_layers"] > 10, d
PY
check "distilling from it changes the model" sh -c '! "$1" "$2" "$3" "$4" >/dev/null' _ \
    $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/ut.safetensors"
"$TRAIN" fit --print-config --units 0 --unit-teacher 1 2>"$T/ut.err" >/dev/null
check "--unit-teacher without Units is refused" grep -q "needs --units > 0" "$T/ut.err"

# A folder of 4-band 16-bit GeoTIFFs (written with GDAL's Python bindings; skipped without
# them): --bands 4,3,2 --scale range:0,3000 reads them, the model records both, and eval (no
# flags) reads the folder as training did and has learnt it; without --scale the 16-bit images
# are refused, by name.
if $PY -c 'from osgeo import gdal' 2>/dev/null; then
    $PY - "$T/geo" <<'PY'
import os, sys
import numpy as np
from osgeo import gdal
rng = np.random.default_rng(5)
for k, cls in enumerate(["nir", "red", "green"]):
    os.makedirs(os.path.join(sys.argv[1], cls))
    for i in range(16):
        ds = gdal.GetDriverByName("GTiff").Create(
            os.path.join(sys.argv[1], cls, "t%02d.tif" % i), 24, 24, 4, gdal.GDT_UInt16)
        for b in range(4):  # band 1 the same in every class; class k is bright in band 4 - k
            v = 2500 if b == 3 - k else 1200 if b == 0 else 300
            ds.GetRasterBand(b + 1).WriteArray((v + rng.integers(-200, 200, (24, 24))).astype(np.uint16))
        ds = None
PY
    GEO=(--data "$T/geo" --arch resnet20 --width-mult 0.25 --input 16 --batch 8 --t0 3 --units 0
         --val-fraction 0.25 --threads 1 --lr-snn 1e-3 --lr-finetune 5e-4 --surrogate-gamma 0.3
         --epochs-ann 20 --epochs-t0 8 --epochs-snn 8 --epochs-finetune 8 --quiet)
    "$TRAIN" fit "${GEO[@]}" --bands 4,3,2 --scale range:0,3000 --out "$T/geo.safetensors" 2>"$T/geo.err"
    rcg=$?
    check "fit reads 16-bit GeoTIFFs through --bands and --scale, none skipped" \
        sh -c 'test $1 -eq 0 && ! grep -q skipped "$2"' _ $rcg "$T/geo.err"
    "$TRAIN" inspect --json "$T/geo.safetensors" >"$T/geo.json" 2>/dev/null
    "$TRAIN" eval --model "$T/geo.safetensors" --data "$T/geo" --json >"$T/geo-eval.json" 2>/dev/null
    check "the model records the bands and the scale, and eval reads the folder as fit did" \
        $PY - "$T/geo.json" "$T/geo-eval.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))["input"]
assert i["bands"] == [4, 3, 2] and i["scale"] == "range:0,3000", i
e = json.load(open(sys.argv[2]))
assert e["images"] == 48 and e["failed"] == 0 and e["top1"] >= 0.6, (e["top1"], e["failed"])
PY
    "$TRAIN" fit "${GEO[@]}" --transfer-from "$T/geo.safetensors" --epochs-finetune 2 \
        --out "$T/geot.safetensors" 2>"$T/geot.err"
    "$TRAIN" inspect --json "$T/geot.safetensors" >"$T/geot.json" 2>/dev/null
    "$TRAIN" fit "${GEO[@]}" --ann-from "$T/geo.safetensors.work/ann.safetensors" \
        --out "$T/geoa.safetensors" 2>"$T/geoa.err"
    "$TRAIN" inspect --json "$T/geoa.safetensors" >"$T/geoa.json" 2>/dev/null
    check "--ann-from without --bands/--scale reads the folder as its ANN did" \
        $PY - "$T/geoa.json" "$T/geoa.err" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))["input"]
assert i["bands"] == [4, 3, 2] and i["scale"] == "range:0,3000", i
assert "skipped" not in open(sys.argv[2]).read()
PY
    check "a transfer without --bands/--scale reads the folder as its source model does" \
        $PY - "$T/geot.json" "$T/geot.err" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))["input"]
assert i["bands"] == [4, 3, 2] and i["scale"] == "range:0,3000", i
assert "skipped" not in open(sys.argv[2]).read()
PY
    "$TRAIN" fit "${GEO[@]}" --bands 4,3,2 --scale range:0,4000 --teacher "$T/geo.safetensors" \
        --out "$T/geoq.safetensors" 2>"$T/geoq.err"
    check "a teacher that reads rasters another way is refused" \
        grep -q "teacher .* reads rasters through other bands or another scale" "$T/geoq.err"
    "$TRAIN" fit "${GEO[@]}" --bands 4,3,2 --out "$T/geo8.safetensors" 2>"$T/geo8.err"
    check "without --scale the 16-bit images are refused, by name" \
        sh -c '! test -s "$1" && grep -q "t00.tif" "$2" && grep -qi "scale" "$2"' _ \
        "$T/geo8.safetensors" "$T/geo8.err"
else
    echo "ok $((n + 1)) # SKIP GDAL's Python bindings (python3-gdal) are not installed"; n=$((n + 1))
fi

# --unit-fade 1: the residual Unit's branch is scaled to 0 over the SNN epochs, so removing it
# changes nothing: the network after removal scores exactly what the T = 1 stage scored (without
# fading, removal costs accuracy; docs/results).
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --arch msresnet20 --unit-fade 1 --epochs-finetune 0 \
    --out "$T/uf.safetensors" 2>/dev/null
check "--unit-fade 1: Unit removal leaves the T = 1 network as it was" $PY - "$T/uf.safetensors.report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
st = {s["stage"]: s for s in r["stages"]}
assert r["config"]["unit_fade"] == 1, r["config"]
t1, rm = st["snn-T1"], st["remove-units"]
assert t1["val_top1"] == rm["val_top1"] and t1["val_top5"] == rm["val_top5"], (t1, rm)
assert rm["params"] < t1["params"], (t1["params"], rm["params"])
# every LIF layer left fires exactly as before (without fading the rates move by ~0.1 here)
a = {x["layer"]: x["rate"] for x in t1["spike_rates"]}
b = {x["layer"]: x["rate"] for x in rm["spike_rates"]}
assert b and set(b) < set(a) and all(a[k] == b[k] for k in b), (a, b)
PY
"$TRAIN" fit "${COMMON[@]}" --unit-fade 1 --out "$T/uf2.safetensors" --quiet 2>"$T/uf2.err"
check "--unit-fade 1 asked for with a plain resnet is a usage error" grep -q "msresnet" "$T/uf2.err"
"$TRAIN" fit "${COMMON[@]}" --print-config >"$T/uf2.json" 2>"$T/uf2.err"
check "the default --unit-fade with a plain resnet: nothing to fade, said so, recorded as 0" $PY - \
    "$T/uf2.json" "$T/uf2.err" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert "unit_fade" not in c, c   # absent reads as 0, as in configs from before fading
assert "removed at once" in open(sys.argv[2]).read()
PY
# A checkpoint of an abrupt-removal run (no unit_fade key: 0) does not resume under the default
# (1, recorded): a key on one side only is a difference too.
ONESPIKE_FIT_STOP_AFTER=1 "$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --arch msresnet20 \
    --unit-fade 0 --out "$T/uf3.safetensors" 2>/dev/null
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --arch msresnet20 --out "$T/uf3.safetensors" \
    --resume 2>"$T/uf3.err"
rc=$?
check "a resume that would turn --unit-fade on is refused, naming it" \
    sh -c 'test "$1" -eq 1 && grep -q "unit_fade = 0 (not recorded), this run has 1" "$2"' _ $rc \
    "$T/uf3.err"

# --ann-from: the same SNN schedule from the first run's ANN snapshot reaches the same model.
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --ann-from "$T/a.safetensors.work/ann.safetensors" \
    --out "$T/d.safetensors" 2>/dev/null
check "--ann-from the ANN snapshot reproduces the run" $PY "$PYDIR/compare_models.py" "$T/a.safetensors" "$T/d.safetensors"
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --ann-from "$T/a.safetensors" --out "$T/e.safetensors" 2>"$T/annfrom.err"
check "--ann-from a spiking model is refused" grep -q "wants an ANN" "$T/annfrom.err"

# --snn-from: continue the fine-tune of a finished one-step model, distilled from its ANN.
"$TRAIN" fit "${COMMON[@]}" --snn-from "$T/m.safetensors" --ann-from "$T/m.safetensors.work/ann.safetensors" \
    --epochs-finetune 3 --out "$T/f.safetensors" --quiet 2>"$T/snnfrom.err"
check "--snn-from continues a one-step model" $PY - "$T/m.safetensors.report.json" "$T/f.safetensors.report.json" "$T/f.safetensors" <<'PY'
import json, sys
m, f = (json.load(open(p)) for p in sys.argv[1:3])
assert [s["stage"] for s in f["stages"]] == ["from-model", "finetune"], f["stages"]
start = f["stages"][0]["val_top1"]
assert abs(start - m["final"]["validation_engine"]["top1"]) < 0.05, (start, m["final"])
assert f["final"]["timesteps"] == 1 and f["final"]["sha256"] != m["final"]["sha256"]
assert f["stages"][1]["val_top1"] >= 0.5, f["stages"]   # still learned (chance 0.25)
PY
# --new-head: transfer to other classes. A folder of two of the classes under new names (links
# to the class folders): the classifier is new (2 outputs), every other tensor starts as the
# source model's, and the fine-tune learns the new pair.
mkdir -p "$T/pair"
CLS=($(ls "$T/data" | head -2))
ln -s "$T/data/${CLS[0]}" "$T/pair/alpha"
ln -s "$T/data/${CLS[1]}" "$T/pair/beta"
"$TRAIN" fit "${COMMON[@]}" --data "$T/pair" --snn-from "$T/m.safetensors" --new-head \
    --distill 0 --epochs-finetune 12 --lr-finetune 5e-3 --out "$T/tr.safetensors" --quiet 2>"$T/transfer.err"
check "--new-head: a new classifier for the new classes, the rest transferred, learned" $PY - "$T/m.safetensors" "$T/tr.safetensors" "$T/tr.safetensors.report.json" <<'PY'
import json, struct, sys
def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))
a, b = header(sys.argv[1]), header(sys.argv[2])
r = json.load(open(sys.argv[3]))
doc = json.loads(b["__metadata__"]["onespike.model"])
assert doc["labels"] == ["alpha", "beta"], doc["labels"]
heads = [l for l in doc["layers"] if l["op"] == "linear"]
w = heads[-1]["weight"]
assert b[w]["shape"] == [2, a[w]["shape"][1]] and heads[-1]["out"] == 2, (b[w], a[w])
same = [k for k in a if k != "__metadata__" and k in b and a[k]["shape"] == b[k]["shape"]]
assert len(same) >= len([k for k in a if k != "__metadata__"]) // 2, same   # the rest kept its shapes
print("# transfer: validation top-1 %.3f after the new head's fine-tune" % r["stages"][-1]["val_top1"])
assert r["config"]["new_head"] is True and r["stages"][-1]["val_top1"] >= 0.75, r["stages"]
PY
# --transfer-from (= --snn-from --new-head --distill 0) with the stem and stages 1-2 frozen, on
# fold 2 of 4: the frozen tensors are the source model's byte for byte, the rest learned, and
# validation is the fold (a quarter of each class).
"$TRAIN" fit "${COMMON[@]}" --data "$T/pair" --transfer-from "$T/m.safetensors" --freeze-stages 2 \
    --folds 4 --fold 2 --epochs-finetune 8 --lr-finetune 5e-3 --out "$T/tf.safetensors" 2>"$T/tf.err"
check "--transfer-from --freeze-stages 2 --folds 4 --fold 2" $PY - "$T/m.safetensors" "$T/tf.safetensors" "$T/tf.safetensors.report.json" "$T/tf.err" <<'PY'
import json, struct, sys
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    h.pop("__metadata__", None)
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in h.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
r, err = json.load(open(sys.argv[3])), open(sys.argv[4]).read()
frozen = [k for k in b if k.split(".")[0] in ("stem", "s1", "s2")]
later = [k for k in b if k.split(".")[0] == "s3" and k in a]
assert frozen and later, sorted(b)
moved = [k for k in frozen if a.get(k) != b[k]]
assert not moved, moved
assert any(a[k] != b[k] for k in later), "stage 3 did not learn"
c = r["config"]
assert (c["folds"], c["fold"], c["freeze_stages"], c["new_head"], c["distill"]) == (4, 2, 2, True, 0.0), c
assert "fold 2 of 4" in err and " + 20 validation images" in err, err   # 10 of each class
print("# transfer, frozen to stage 2, fold 2 of 4: validation top-1 %.3f" % r["stages"][-1]["val_top1"])
assert r["stages"][-1]["val_top1"] >= 0.75, r["stages"]
PY
# scripts/crossval.py: every fold run once, summarised as mean +- sd of the folds' reports; a
# second call reads the finished folds instead of training them again.
CV=(--folds 2 --dir "$T/cv" --train "$TRAIN" -- "${COMMON[@]}" --data "$T/pair"
    --transfer-from "$T/m.safetensors" --epochs-finetune 3 --lr-finetune 5e-3)
$PY "$SRC/scripts/crossval.py" "${CV[@]}" >"$T/cv.out" 2>"$T/cv.err"
$PY "$SRC/scripts/crossval.py" "${CV[@]}" >"$T/cv2.out" 2>"$T/cv2.err"
check "crossval.py: two folds, mean +- sd of their reports, not rerun" $PY - "$T/cv" "$T/cv2.err" <<'PY'
import json, statistics, sys
d = sys.argv[1]
s = json.load(open(d + "/crossval.json"))
top1 = [json.load(open("%s/fold-%d.safetensors.report.json" % (d, i)))["final"]["validation_engine"]["top1"]
        for i in (1, 2)]
assert [r["fold"] for r in s["rows"]] == [1, 2] and s["images"] == 80, s   # each decodable image once
assert abs(s["top1_mean"] - statistics.mean(top1)) < 1e-12, (s, top1)
assert abs(s["top1_sd"] - statistics.stdev(top1)) < 1e-12, (s, top1)
assert "fold 1/2" not in open(sys.argv[2]).read()   # the second call trained nothing
assert "mean +- sd" in open(d + "/crossval.md").read()
PY
CV3=(--folds 2 --dir "$T/cv" --train "$TRAIN" -- "${COMMON[@]}" --data "$T/pair"
     --transfer-from "$T/m.safetensors" --epochs-finetune 3 --lr-finetune 1e-2)
$PY "$SRC/scripts/crossval.py" "${CV3[@]}" >"$T/cv3.out" 2>"$T/cv3.err"
rc=$?
check "crossval.py: finished folds of another recipe are not mixed in, the flag named" \
    sh -c 'test "$1" -ne 0 && grep -q "lr_finetune: 0.005 -> 0.01" "$2"' _ $rc "$T/cv3.err"
"$TRAIN" fit "${COMMON[@]}" --data "$T/pair" --transfer-from "$T/m.safetensors" --snn-from "$T/m.safetensors" \
    --out "$T/tf2.safetensors" --quiet 2>"$T/tf2.err"
check "--transfer-from with --snn-from is a usage error" grep -q "give one of them" "$T/tf2.err"
"$TRAIN" fit "${COMMON[@]}" --folds 4 --out "$T/tf3.safetensors" --quiet 2>"$T/tf3.err"
check "--folds without --fold is a usage error" grep -q -- "--fold I" "$T/tf3.err"
"$TRAIN" fit "${COMMON[@]}" --data "$T/pair" --snn-from "$T/m.safetensors" --distill 0 \
    --epochs-finetune 1 --out "$T/tr2.safetensors" --quiet 2>"$T/transfer2.err"
check "--snn-from with other classes is refused and names --new-head" grep -q -- "--new-head" "$T/transfer2.err"
"$TRAIN" fit "${COMMON[@]}" --new-head --epochs-finetune 1 --out "$T/tr3.safetensors" --quiet 2>"$T/transfer3.err"
check "--new-head without --snn-from is refused" grep -q "give --snn-from" "$T/transfer3.err"
# --finetune-bn and --surrogate-gamma on that path: BN is trained and folded away again.
"$TRAIN" fit "${COMMON[@]}" --snn-from "$T/m.safetensors" --distill 0 --finetune-bn 1 \
    --surrogate-gamma 1 --epochs-finetune 3 --out "$T/h.safetensors" --quiet 2>"$T/bnft.err"
"$TRAIN" inspect --json "$T/h.safetensors" >"$T/h.json" 2>>"$T/bnft.err"
check "--finetune-bn: trained with BatchNorm, exported without, still learned" $PY - "$T/h.json" "$T/h.safetensors.report.json" <<'PY'
import json, sys
d, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert d["timesteps"] == 1 and not any(l["op"] == "bn" for l in d["layers"]), d["layers"]
assert r["config"]["finetune_bn"] == 1 and r["config"]["surrogate_gamma"] == 1, r["config"]
assert r["stages"][-1]["val_top1"] >= 0.5, r["stages"]
eng = r["final"]["validation_engine"]   # the folded file = the trained BN net: one image at most
assert abs(eng["top1"] - r["stages"][-1]["val_top1"]) * eng["images"] <= 1 + 1e-9, (eng, r["stages"][-1])
PY
# --val-fraction 0 (the shipped model's retraining on every image): no validation figures, so the
# report says so instead of printing 0 %, and the model card takes them from a split run.
"$TRAIN" fit "${COMMON[@]}" --snn-from "$T/m.safetensors" --distill 0 --val-fraction 0 \
    --epochs-finetune 2 --out "$T/all.safetensors" --quiet 2>"$T/all.err"
check "--val-fraction 0 warns and trains" \
    sh -c 'grep -q "no validation images" "$1" && test -s "$2"' _ "$T/all.err" "$T/all.safetensors"
check "--val-fraction 0: the report reads - for validation, never 0 %" \
    sh -c 'grep -q "No validation split" "$1" && grep -q "^| finetune | 1 | - | - |" "$1" &&
           ! grep -q "0.00 %" "$1"' _ "$T/all.safetensors.report.md"
$PY "$SRC/scripts/model_card.py" "$T/all.safetensors" --split-report "$T/f.safetensors.report.json" \
    >"$T/all.card.md" 2>>"$T/all.err"
check "model card of an all-image model: the split run's figures, said so" $PY - "$T/all.card.md" "$T/f.safetensors.report.json" "$T/all.safetensors.report.json" <<'PY'
import json, sys
card, split, own = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
assert "trained on every image" in card and "f.safetensors.report.json" in card, card
last = split["stages"][-1]
row = "| %s | %d | %.1f %% |" % (last["stage"], last["timesteps"], 100 * last["val_top1"])
assert row in card and last["val_top1"] >= 0.5, (row, card)   # the split run's, not zeros
assert own["final"]["sha256"] in card and own["final"]["sha256"] != split["final"]["sha256"]
PY
$PY "$SRC/scripts/model_card.py" "$T/all.safetensors" >/dev/null 2>"$T/card.err"
check "model card of an all-image model without --split-report is refused" \
    grep -q "without a validation split" "$T/card.err"
"$TRAIN" fit "${COMMON[@]}" --snn-from "$T/a.safetensors.work/ann.safetensors" --distill 0 \
    --out "$T/g.safetensors" --quiet 2>"$T/snnann.err"
check "--snn-from an ANN is refused" grep -q "not a one-time-step spiking network" "$T/snnann.err"
"$TRAIN" fit "${COMMON[@]}" --snn-from "$T/m.safetensors" --out "$T/g.safetensors" --quiet 2>"$T/snnkd.err"
check "--snn-from with distillation but no teacher is a usage error" grep -q "needs the teacher" "$T/snnkd.err"

# Refusals.
# A checkpoint whose stage is outside this run's stages (edited, or from another build) is
# refused by name, not used as an index.
cp -r "$T/b.safetensors.work" "$T/k.safetensors.work"
$PY - "$T/k.safetensors.work/checkpoint.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
doc = json.loads(h["__metadata__"]["onespike.model"])
doc["checkpoint"]["stage"] = 99
h["__metadata__"]["onespike.model"] = json.dumps(doc)
t = json.dumps(h).encode()
t += b" " * (-(8 + len(t)) % 8)
open(p, "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])
PY
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/k.safetensors" --resume 2>"$T/stage.err"
rc=$?
check "a checkpoint stage out of range is refused, naming it" \
    sh -c 'test $0 -ne 0 && grep -q "checkpoint stage 99 is not one of this run" "$1"' $rc "$T/stage.err"
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/b.safetensors" 2>"$T/exists.err"
check "an existing checkpoint is not overwritten without --resume" grep -q "pass --resume" "$T/exists.err"
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/c.safetensors" --batch 8 --resume 2>/dev/null
"$TRAIN" fit "${COMMON[@]}" "${SHORT[@]}" --out "$T/b.safetensors" --batch 8 --resume 2>"$T/mismatch.err"
check "resume with other flags is refused, naming the field" grep -q "batch" "$T/mismatch.err"
mkdir -p "$T/bad/a" "$T/bad/b" && cp "$T/data/class00/img000.jpg" "$T/bad/a/"
"$TRAIN" fit --data "$T/bad" --out "$T/bad.safetensors" --quiet 2>"$T/bad.err"
check "an empty class is refused by name" grep -q 'class "b" has no image files (.jpg' "$T/bad.err"
"$TRAIN" fit --data "$T/data" --out "$T/x.safetensors" --arch resnet50 --quiet 2>"$T/arch.err"
check "unknown architecture named" grep -q "resnet50" "$T/arch.err"
"$TRAIN" fit --data "$T/data" --out "$T/x.safetensors" --lr-ann abc 2>"$T/flag.err"
check "bad flag value is a usage error" test $? -eq 2

echo "$((n - failed)) passed, $failed failed"
test $failed -eq 0
