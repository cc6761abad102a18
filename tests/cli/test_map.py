#!/usr/bin/python3
"""onespike-train map on real imagery, checked by independent readers.

1. The mosaic: 16 UC Merced images (a deterministic mix of classes) written as one 1024x1024
   GeoTIFF (UTM 14N, 0.3 m pixels); map --window 256 must give the 4x4 grid that classify gives
   on the same pixels (each tile cut back out to a lossless PNG), exactly; the accuracy against
   the known classes is printed.
2. The NAIP scene (4 bands, UTM): every feature's corners equal GDAL's own transform of the
   window's corners to WGS 84 (traditional GIS order) to 1e-7 degree; ogrinfo reads the GeoJSON
   (feature count, extent); rings are closed and counterclockwise.
3. The same output for --threads 1/2 and --batch 1/8; a window larger than the scene; --window-m;
   the errors (window-m without georeferencing, not a raster, bands out of range).
4. The COG: gdalinfo's LAYOUT=COG, 2 bands, the CRS, band 1 = the GeoJSON's classes.

Usage: test_map.py ONESPIKE_TRAIN MODEL. Exit 77 (skipped) without the shared data.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

DATA = "/work/shared/data"
UCM = os.path.join(DATA, "ucmerced")
NAIP = os.path.join(DATA, "geotiff", "m_4709963_se_14_1_20200831.tif")
SIDE = 256
GRID = 4
PIXEL_M = 0.3
ORIGIN = (600000.0, 4400000.0)  # UTM 14N easting, northing of the mosaic's corner
EPSG_MOSAIC = 32614
TOL_DEG = 1e-7

n = failed = 0


def check(name, ok, detail=""):
    global n, failed
    n += 1
    print(("ok" if ok else "not ok") + " %d - %s%s" % (n, name, "" if ok or not detail else ": " + str(detail)))
    if not ok:
        failed += 1


def run(*args, ok=True):
    p = subprocess.run([TRAIN, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        print("# %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p


def mosaic_images():
    """16 (class, path) of 256x256 images: classes spread over the 21, image numbers varied."""
    classes = sorted(d for d in os.listdir(UCM) if os.path.isdir(os.path.join(UCM, d)))
    picks = []
    for i in range(GRID * GRID):
        cls = classes[(i * 4) % len(classes)]
        names = sorted(f for f in os.listdir(os.path.join(UCM, cls)) if f.endswith(".jpg"))
        for j in range(len(names)):
            path = os.path.join(UCM, cls, names[(i * 7 + j) % len(names)])
            ds = gdal.Open(path)
            if ds.RasterXSize == SIDE and ds.RasterYSize == SIDE:
                picks.append((cls, path))
                break
    return picks


def write_mosaic(path, picks):
    ds = gdal.GetDriverByName("GTiff").Create(path, GRID * SIDE, GRID * SIDE, 3, gdal.GDT_Byte,
                                              options=["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform([ORIGIN[0], PIXEL_M, 0, ORIGIN[1], 0, -PIXEL_M])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG_MOSAIC)
    ds.SetProjection(srs.ExportToWkt())
    for i, (_, jpg) in enumerate(picks):
        px = gdal.Open(jpg).ReadAsArray()  # 3 x 256 x 256, GDAL's JPEG decode
        r, c = divmod(i, GRID)
        for b in range(3):
            ds.GetRasterBand(b + 1).WriteArray(px[b], c * SIDE, r * SIDE)
    ds = None


def features(path):
    with open(path) as f:
        doc = json.load(f)
    return doc, doc["features"]


def ring_area2(ring):
    return sum(ring[i][0] * ring[i + 1][1] - ring[i + 1][0] * ring[i][1] for i in range(len(ring) - 1))


def test_mosaic(t):
    picks = mosaic_images()
    check("16 images of 256x256 picked", len(picks) == GRID * GRID)
    scene = os.path.join(t, "mosaic.tif")
    write_mosaic(scene, picks)
    out = os.path.join(t, "mosaic.geojson")
    p = run("map", "--model", MODEL, "--in", scene, "--out", out, "--window", "256", "--quiet")
    check("map of the mosaic runs", p.returncode == 0, p.stderr)
    doc, feats = features(out)
    check("4x4 windows", len(feats) == 16 and doc["onespike"]["grid"] == [4, 4], len(feats))
    # The same pixels, cut back out of the mosaic losslessly, through classify.
    tiles = []
    for i in range(16):
        r, c = divmod(i, GRID)
        tile = os.path.join(t, "tile%02d.png" % i)
        gdal.Translate(tile, scene, format="PNG", srcWin=[c * SIDE, r * SIDE, SIDE, SIDE])
        tiles.append(tile)
    p = run("classify", "--model", MODEL, "--json", "--top-k", "3", *tiles)
    cls = [json.loads(l) for l in p.stdout.splitlines()]
    by_cell = {(f["properties"]["col"], f["properties"]["row"]): f["properties"] for f in feats}
    same = 0
    for i, c in enumerate(cls):
        r, col = divmod(i, GRID)
        m = by_cell[(col, r)]
        want = c["predictions"]
        if (m["class"] == want[0]["label"] and [k["class"] for k in m["top_k"]] == [w["label"] for w in want]
                and all(abs(k["probability"] - w["probability"]) < 1e-6 for k, w in zip(m["top_k"], want))
                and m["window"] == [col * SIDE, r * SIDE, SIDE, SIDE]):
            same += 1
    check("map equals classify of the same pixels (PNG tiles), top-3 and probabilities", same == 16,
          "%d/16" % same)
    truth = [c for c, _ in picks]
    correct = sum(by_cell[(i % GRID, i // GRID)]["class"] == truth[i] for i in range(16))
    print("# mosaic: map agrees with classify on the same pixels %d/16; accuracy against the known "
          "classes %d/16 = %.1f %%" % (same, correct, 100.0 * correct / 16))
    p = run("classify", "--model", MODEL, "--json", "--top-k", "1", *[j for _, j in picks])
    jpg = [json.loads(l)["predictions"][0]["label"] for l in p.stdout.splitlines()]
    agree = sum(jpg[i] == by_cell[(i % GRID, i // GRID)]["class"] for i in range(16))
    print("# mosaic: classify of the original JPEGs (TurboJPEG decode) agrees with the map %d/16" % agree)
    check("classify of the JPEGs agrees with the map on most windows", agree >= 14, agree)
    return scene


def test_naip(t):
    out, tif = os.path.join(t, "naip.geojson"), os.path.join(t, "naip.tif")
    p = run("map", "--model", MODEL, "--in", NAIP, "--out", out, "--raster", tif, "--window", "256",
            "--quiet")
    check("map of the NAIP scene runs", p.returncode == 0, p.stderr)
    summary = json.loads(p.stdout)
    ds = gdal.Open(NAIP)
    w, h, gt = ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform()
    cols, rows = -(-(w - 256) // 256) + 1, -(-(h - 256) // 256) + 1
    check("summary counts the windows", summary["windows"] == cols * rows and summary["grid"] == [cols, rows],
          summary)
    doc, feats = features(out)
    check("lon/lat coordinates declared", doc["onespike"]["coordinates"] == "lonlat"
          and doc["onespike"]["model"] == "ucm-msresnet18-t1"
          and doc["onespike"]["window"] == [256, 256] and doc["onespike"]["stride"] == [256, 256])
    src = osr.SpatialReference()
    src.ImportFromWkt(ds.GetProjection())
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(src, dst)
    worst, ccw, snapped_ok = 0.0, True, True
    for f in feats:
        x, y, ww, wh = f["properties"]["window"]
        ring = f["geometry"]["coordinates"][0]
        ccw &= len(ring) == 5 and ring[0] == ring[-1] and ring_area2(ring) > 0
        want = []
        for px, py in ((x, y), (x + ww, y), (x + ww, y + wh), (x, y + wh)):
            e = gt[0] + px * gt[1] + py * gt[2]
            nn = gt[3] + px * gt[4] + py * gt[5]
            want.append(ct.TransformPoint(e, nn)[:2])
        for wx, wy in want:  # each corner is in the ring (whatever its starting point)
            worst = max(worst, min(max(abs(wx - rx), abs(wy - ry)) for rx, ry in ring[:4]))
        col, row = f["properties"]["col"], f["properties"]["row"]
        snapped_ok &= x == min(col * 256, w - 256) and y == min(row * 256, h - 256)
    print("# NAIP: max corner difference against osr.CoordinateTransformation %.3g degree" % worst)
    check("corners equal GDAL's transform to 1e-7 degree", worst <= TOL_DEG, worst)
    check("rings closed and counterclockwise", ccw)
    check("last row and column snapped to the edge", snapped_ok)
    info = subprocess.run(["ogrinfo", "-al", "-so", out], capture_output=True, text=True).stdout
    m = re.search(r"Feature Count: (\d+)", info)
    check("ogrinfo counts the features", m and int(m.group(1)) == cols * rows, info)
    m = re.search(r"Extent: \(([-\d.]+), ([-\d.]+)\) - \(([-\d.]+), ([-\d.]+)\)", info)
    xs = [p[0] for f in feats for p in f["geometry"]["coordinates"][0]]
    ys = [p[1] for f in feats for p in f["geometry"]["coordinates"][0]]
    check("ogrinfo's extent is the features'", m and all(
        abs(float(a) - b) < 1e-6 for a, b in zip(m.groups(), (min(xs), min(ys), max(xs), max(ys)))), info)
    # The COG.
    gi = subprocess.run(["gdalinfo", tif], capture_output=True, text=True).stdout
    check("gdalinfo: COG layout", "LAYOUT=COG" in gi, gi)
    check("gdalinfo: 2 bands", gi.count("\nBand ") == 2, gi)
    check("gdalinfo: the scene's CRS", "NAD83 / UTM zone 14N" in gi, gi)
    cog = gdal.Open(tif)
    cls = cog.GetRasterBand(1).ReadAsArray()
    prob = cog.GetRasterBand(2).ReadAsArray()
    check("COG is one pixel per window", cls.shape == (rows, cols), cls.shape)
    ok = all(cls[f["properties"]["row"], f["properties"]["col"]] == f["properties"]["class_index"]
             and abs(prob[f["properties"]["row"], f["properties"]["col"]] / 255.0 - f["properties"]["probability"])
             <= 1.0 / 255 for f in feats)
    check("COG band 1 = the GeoJSON's classes, band 2 its probabilities", ok)
    cgt = cog.GetGeoTransform()
    check("COG geotransform: stride-sized pixels from the scene's corner",
          all(abs(a - b) < 1e-9 for a, b in zip(cgt, (gt[0], gt[1] * 256, 0, gt[3], 0, gt[5] * 256))), cgt)
    b1 = cog.GetRasterBand(1)
    check("COG labels and colours", b1.GetMetadataItem("CLASS_0") == "agricultural"
          and b1.GetRasterColorTable() is not None and b1.GetNoDataValue() == 255
          and abs(cog.GetRasterBand(2).GetScale() - 1 / 255) < 1e-12)
    return out


def test_options(t, mosaic):
    outs = {}
    for th, b in ((1, 1), (2, 1), (1, 8), (2, 8)):
        o = os.path.join(t, "m-%d-%d.geojson" % (th, b))
        run("map", "--model", MODEL, "--in", mosaic, "--out", o, "--window", "200", "--stride", "150",
            "--threads", str(th), "--batch", str(b), "--quiet")
        outs[(th, b)] = open(o, "rb").read()
    check("the same GeoJSON for threads 1/2 and batch 1/8 (overlapping windows)",
          len(set(outs.values())) == 1 and len(outs[(1, 1)]) > 0)
    o = os.path.join(t, "big.geojson")
    p = run("map", "--model", MODEL, "--in", NAIP, "--out", o, "--window", "2000", "--quiet")
    _, feats = features(o)
    check("a window larger than the scene is one window of the scene's size",
          p.returncode == 0 and len(feats) == 1 and feats[0]["properties"]["window"] == [0, 0, 934, 723],
          feats[0]["properties"]["window"] if feats else p.stderr)
    p = run("map", "--model", MODEL, "--in", NAIP, "--out", o, "--window-m", "1280", "--quiet")
    check("--window-m 1280 on 5 m pixels is 256 pixels", p.returncode == 0
          and json.loads(p.stdout)["window"] == [256, 256], p.stdout + p.stderr)
    tile = os.path.join(t, "tile00.png")
    p = run("map", "--model", MODEL, "--in", tile, "--out", o, "--window-m", "50", ok=False)
    check("--window-m without georeferencing is refused", p.returncode == 1
          and "no geotransform" in p.stderr, p.stderr)
    p = run("map", "--model", MODEL, "--in", tile, "--out", o, "--quiet")
    doc, _ = features(o)
    check("a PNG without georeferencing maps in pixel coordinates",
          p.returncode == 0 and doc["onespike"]["coordinates"] == "pixel", p.stderr)
    junk = os.path.join(t, "junk.tif")
    with open(junk, "w") as f:
        f.write("this is not a raster\n")
    p = run("map", "--model", MODEL, "--in", junk, "--out", o, ok=False)
    check("a non-raster input is refused", p.returncode == 1 and "not a raster" in p.stderr, p.stderr)
    p = run("map", "--model", MODEL, "--in", NAIP, "--out", o, "--bands", "1,2,5", ok=False)
    check("bands out of range are refused, naming what the raster has", p.returncode == 1
          and "4 bands, Byte, 934x723" in p.stderr and "band 5" in p.stderr, p.stderr)
    p = run("map", "--model", MODEL, "--in", NAIP, "--out", o, "--window", "100", "--stride", "101",
            ok=False)
    check("a stride over the window is refused", p.returncode == 1 and "left out" in p.stderr, p.stderr)
    p = run("map", "--model", MODEL, "--in", NAIP, "--out", o, "--window", "100", "--window-m", "5",
            ok=False)
    check("--window and --window-m together are a usage error", p.returncode == 2, p.stderr)


def main():
    global TRAIN, MODEL
    TRAIN, MODEL = sys.argv[1], sys.argv[2]
    if not os.path.isdir(UCM) or not os.path.exists(NAIP):
        print("# skipped: no shared data in", DATA)
        return 77
    with tempfile.TemporaryDirectory() as t:
        mosaic = test_mosaic(t)
        test_naip(t)
        test_options(t, mosaic)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
