"""Rasters end to end through onespike-train and raster_dump, against GDAL's Python bindings:
  - our reader's RGB bytes are GDAL's own (UC Merced TIFF, PNG, lossless JPEG 2000, windows);
  - the same pixels in TIFF, PNG and JPEG 2000 give the same model input tensor, bit for bit;
  - eval over the UC Merced TIFFs next to eval over their JPEGs (accuracy, answers changed);
  - a UInt16 4-band GeoTIFF (NAIP x 256) with bands 1,2,3 and range 0..65280 gives exactly the
    8-bit file's answer, and with a percentile stretch the 8-bit file's percentile answer;
  - errors: 1 band for an RGB model, a band out of range, UInt16 without a scale, a sparse
    200000 x 200000 GeoTIFF refused from its header without allocating its pixels, a truncated
    TIFF, a non-image;
  - `stac` writes a STAC MLM Item whose fields match the model.
usage: test_raster.py ONESPIKE_TRAIN RASTER_DUMP FIXTURE_DIR MODELS_DIR
Exit 77 (skipped) without GDAL's Python bindings."""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raster_fixtures as rf  # noqa: E402

SKIP = 77
MODEL_NAME = "ucm-msresnet18-t1.safetensors"
UCM_TIF_DIR = os.path.join(rf.DATA, "ucmerced-tif")
UCM_JPG_DIR = os.path.join(rf.DATA, "ucmerced")
# eval over the 15 TIFFs vs their JPEGs (quality 95, decoded by TurboJPEG at 3/8 scale): at
# least this many answers agree and the TIFF accuracy is at least this (measured: see README).
MIN_AGREEMENT = 0.8
MIN_TIF_TOP1 = 0.8
# A child that decoded the 4e10-pixel raster would need 120 GB; refused from the header it stays
# near the process's own size (ASan builds included).
MAX_REFUSAL_RSS_MB = 400
TIMEOUT_S = 120

n = failed = 0


def check(name, cond, detail=""):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(f"{'ok' if cond else 'not ok'} {n} - {name}" + ("" if cond else f": {detail}"),
          flush=True)
    return cond


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)


def run_rss(cmd):
    """Run cmd; (returncode, stderr, peak RSS of the child in MB)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, err.read().decode(errors="replace"), ru.ru_maxrss / 1024


def dump_rgb(dump, path, out, *extra):
    r = run([dump, "rgb", path, out] + list(extra))
    if r.returncode:
        return None, r.stderr
    with open(out, "rb") as f:
        return f.read(), r.stdout


def dump_tensor(dump, model, path, out):
    r = run([dump, "tensor", model, path, out])
    if r.returncode:
        return None
    with open(out, "rb") as f:
        return f.read()


def classify(train, model, path, *extra):
    r = run([train, "classify", "--model", model, "--json", "--top-k", "21"] + list(extra) +
            [path])
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    return r.returncode, rows[0] if rows else {}, r.stderr


def main():
    if rf.gdal_or_none() is None:
        print("1..0 # SKIP GDAL's Python bindings (python3-gdal) are not installed")
        return SKIP
    train, dump, fixtures, models = sys.argv[1:5]
    model = os.path.join(models, MODEL_NAME)
    tmp = tempfile.mkdtemp(prefix="onespike-raster-test-")
    try:
        p = rf.make(tmp, fixtures)
        pixels(dump, model, p, tmp)
        answers(train, model, p)
        errors(train, model, p)
        evaluation(train, model, tmp)
        stac(train, model, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{n - failed}/{n} checks passed")
    return 1 if failed else 0


def pixels(dump, model, p, tmp):
    out = os.path.join(tmp, "rgb.bin")
    ref, w, h = rf.rgb_of(p["ucm"])
    for k in ("ucm", "png", "jp2"):
        got, _ = dump_rgb(dump, p[k], out)
        check(f"{k}: our RGB bytes are GDAL's ({w}x{h})", got == ref,
              None if got is None else sum(a != b for a, b in zip(got, ref)))
    t = {k: dump_tensor(dump, model, p[k], os.path.join(tmp, k + ".f32"))
         for k in ("ucm", "png", "jp2")}
    check("the same pixels as TIFF, PNG and JPEG 2000: the same tensor, bit for bit",
          t["ucm"] is not None and t["ucm"] == t["png"] == t["jp2"],
          {k: v is not None and len(v) for k, v in t.items()})
    # NAIP: 4 bands, bands 3,2,1 and 4,4,4, a window, and the georeference.
    ref, w, h = rf.rgb_of(p["naip8"], (3, 2, 1))
    got, info = dump_rgb(dump, p["naip8"], out, "3,2,1")
    check("4-band GeoTIFF, bands 3,2,1: GDAL's bytes", got == ref)
    head = info.split("\n")[0].split() if info else []
    check("4-band GeoTIFF: size, bands, type, driver, georeference and CRS",
          head[:7] == [str(w), str(h), "4", "Byte", "GTiff", "geo", "crs"], info)
    ref4, _, _ = rf.rgb_of(p["naip8"], (4, 4, 4))
    got, _ = dump_rgb(dump, p["naip8"], out, "4,4,4")
    check("band 4 (near infrared) as R=G=B", got == ref4)
    win, _ = dump_rgb(dump, p["naip8"], out, "-", "-", "100,50,64,32")
    full, _, _ = rf.rgb_of(p["naip8"])
    want = b"".join(full[((50 + y) * w + 100) * 3:((50 + y) * w + 164) * 3] for y in range(32))
    check("a window (100,50) 64x32 is that part of the whole", win == want)
    # UInt16 x 256 with range 0..65280 is the 8-bit raster exactly; percentiles scale with it.
    a, _ = dump_rgb(dump, p["naip8"], out)
    b, _ = dump_rgb(dump, p["naip16"], out, "1,2,3", "range:0,65280")
    check("UInt16 x 256, range 0..65280: the 8-bit bytes", a is not None and a == b)
    a, _ = dump_rgb(dump, p["naip8"], out, "1,2,3", "percentile:2,98")
    b, _ = dump_rgb(dump, p["naip16"], out, "1,2,3", "percentile:2,98")
    check("percentile 2..98 of UInt16 x 256 and of 8-bit: the same bytes",
          a is not None and a == b)
    check("a percentile stretch changes the 8-bit image", a != rf.rgb_of(p["naip8"])[0])


def answers(train, model, p):
    rc8, a8, _ = classify(train, model, p["naip8"])
    rc16, a16, err = classify(train, model, p["naip16"], "--bands", "1,2,3", "--scale",
                              "range:0,65280")
    check("16-bit 4-band GeoTIFF with bands 1,2,3, range 0..65280: the 8-bit file's answer",
          rc8 == 0 and rc16 == 0 and a8.get("predictions") == a16.get("predictions"),
          (rc8, rc16, err))
    _, a, _ = classify(train, model, p["naip8"], "--scale", "percentile:2,98")
    _, b, _ = classify(train, model, p["naip16"], "--scale", "percentile:2,98")
    check("percentile 2..98: the same answer for 8 and 16 bits",
          a.get("predictions") and a.get("predictions") == b.get("predictions"))
    _, t, _ = classify(train, model, p["ucm"])
    _, g, _ = classify(train, model, p["png"])
    check("TIFF and PNG of the same pixels: the same answer",
          t.get("predictions") and t["predictions"] == g.get("predictions"))


def errors(train, model, p):
    def err_of(path, *extra):
        rc, row, stderr = classify(train, model, path, *extra)
        return rc, row.get("error", "") + stderr

    rc, e = err_of(p["gray"])
    check("1-band raster for an RGB model: refused, saying what it has and wants",
          rc == 1 and "1 band, Byte" in e and "bands 1,2,3" in e, e)
    rc, e = err_of(p["naip8"], "--bands", "1,2,5")
    check("band 5 of a 4-band raster: refused", rc == 1 and "4 bands" in e and "band 5" in e, e)
    rc, e = err_of(p["naip16"])
    check("UInt16 without a scale: refused, asking for one",
          rc == 1 and "4 bands, UInt16" in e and "scale" in e, e)
    rc, e = err_of(p["naip8"], "--bands", "1,2")
    check("--bands 1,2: a usage error", rc == 2 and "three band numbers" in e, e)
    rc, e = err_of(p["naip8"], "--scale", "range:5,1")
    check("--scale range:5,1: a usage error", rc == 2 and "above LO" in e, e)
    rc, e, rss = run_rss([train, "classify", "--model", model, p["huge"]])
    check(f"200000x200000 sparse GeoTIFF ({os.path.getsize(p['huge']) >> 10} KB): refused from "
          f"its header", rc == 1 and "200000x200000" in e and "exceeds the limit" in e, e)
    check(f"... without allocating its pixels (peak RSS {rss:.0f} MB)", rss < MAX_REFUSAL_RSS_MB,
          rss)
    rc, e = err_of(p["trunc"])
    check("truncated TIFF: refused with GDAL's reason", rc == 1 and "GTiff" in e, e)
    rc, e = err_of(p["text"])
    check("a text file named .tif: not an image", rc == 1 and "unrecognised" in e, e)


def evaluation(train, model, tmp):
    if not (os.path.isdir(UCM_TIF_DIR) and os.path.isdir(UCM_JPG_DIR)):
        print("# ../shared/data absent: eval TIFF vs JPEG skipped")
        return
    r = run([train, "eval", "--model", model, "--data", UCM_TIF_DIR, "--json"])
    check("eval over the UC Merced TIFFs", r.returncode == 0, r.stderr)
    tif = json.loads(r.stdout)
    lst = os.path.join(tmp, "jpegs.txt")
    with open(lst, "w") as f:
        for a in tif["answers"]:
            cls, name = a["image"].split("/")[-2:]
            f.write(f"{cls}/{name.rsplit('.', 1)[0]}.jpg\n")
    r = run([train, "eval", "--model", model, "--data", UCM_JPG_DIR, "--list", lst, "--json"])
    check("eval over the same images as JPEGs", r.returncode == 0, r.stderr)
    jpg = json.loads(r.stdout)
    ta = {a["image"].split("/")[-1].rsplit(".", 1)[0]: a["top1"] for a in tif["answers"]}
    ja = {a["image"].split("/")[-1].rsplit(".", 1)[0]: a["top1"] for a in jpg["answers"]}
    same = sum(ta[k] == ja.get(k) for k in ta)
    changed = [f"{k}: {ja.get(k)} -> {ta[k]}" for k in ta if ta[k] != ja.get(k)]
    print(f"# TIFF top-1 {tif['top1']:.4f}, JPEG top-1 {jpg['top1']:.4f} on {len(ta)} images; "
          f"answers changed {len(ta) - same} of {len(ta)} {changed}")
    check("every TIFF and JPEG evaluated", tif["images"] == jpg["images"] == len(ta) > 0 and
          tif["failed"] == jpg["failed"] == 0, (tif["images"], jpg["images"]))
    check(f"TIFF answers agree with the JPEG ones ({same}/{len(ta)})",
          same >= MIN_AGREEMENT * len(ta), changed)
    check(f"TIFF top-1 {tif['top1']:.3f} >= {MIN_TIF_TOP1}", tif["top1"] >= MIN_TIF_TOP1)


def stac(train, model, tmp):
    out = os.path.join(tmp, "m.stac.json")
    r = run([train, "stac", "--model", model, "--out", out])
    check("stac writes the file", r.returncode == 0 and os.path.exists(out), r.stderr)
    doc = json.load(open(out))
    info = json.loads(run([train, "inspect", "--json", model]).stdout)
    props = doc["properties"]
    inp, outp = props["mlm:input"][0], props["mlm:output"][0]
    ok = (doc["type"] == "Feature" and doc["stac_version"] == "1.0.0" and
          any("/mlm/" in e for e in doc["stac_extensions"]) and doc["id"] == info["name"] and
          props["mlm:name"] == info["name"] and "scene-classification" in props["mlm:tasks"] and
          props["mlm:framework"] == "onespike" and
          props["mlm:total_parameters"] == info["parameters"] and
          props["mlm:architecture"] == info["arch"]["name"])
    check("stac: a STAC Item with the MLM extension, the model's name and parameters", ok,
          props.get("mlm:name"))
    c, h, w = (info["input"][k] for k in ("channels", "height", "width"))
    check("stac: mlm:input shape, dim_order, bands",
          inp["input"]["shape"] == [-1, c, h, w] and
          inp["input"]["dim_order"] == ["batch", "channel", "height", "width"] and
          inp["input"]["data_type"] == "float32" and
          inp["bands"] == [f"band{b}" for b in info["input"]["bands"]], inp)
    vs = inp["value_scaling"]
    check("stac: value_scaling is the model's normalisation of raw 8-bit values",
          len(vs) == 3 and all(v["type"] == "z-score" and
                               abs(v["mean"] - 255 * info["input"]["mean"][i]) < 1e-3 and
                               abs(v["stddev"] - 255 * info["input"]["std"][i]) < 1e-3
                               for i, v in enumerate(vs)), vs)
    classes = outp["classification:classes"]
    check("stac: mlm:output shape and classification:classes are the labels",
          outp["result"]["shape"] == [-1, info["classes"]] and
          [x["name"] for x in classes] == info["labels"] and
          [x["value"] for x in classes] == list(range(info["classes"])), outp["result"])
    check("stac: the model asset", doc["assets"]["model"]["href"] == MODEL_NAME and
          "mlm:model" in doc["assets"]["model"]["roles"], doc["assets"])


if __name__ == "__main__":
    sys.exit(main())
