#!/usr/bin/python3
"""Render a map of `onespike-train map` over its scene as a PNG: the scene's RGB (bands 1,2,3,
8-bit), each window tinted by its class colour (the COG's colour table; overlapping windows
blend) and outlined, with a legend of colour swatches of the classes present below; the
swatches' names are printed on stdout (one line per class, in the legend's order).

usage: tools/map_render.py SCENE MAP.geojson MAP.tif OUT.png [--width 640] [--alpha 0.4]
"""
import argparse
import json

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scene")
    ap.add_argument("geojson")
    ap.add_argument("cog")
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--alpha", type=float, default=0.4)
    a = ap.parse_args()
    ds = gdal.Open(a.scene)
    scale = a.width / ds.RasterXSize
    h = int(round(ds.RasterYSize * scale))
    rgb = ds.ReadAsArray(band_list=[1, 2, 3], buf_xsize=a.width, buf_ysize=h,
                         resample_alg=gdal.GRIORA_Average).astype(np.float32)
    rgb = np.transpose(rgb, (1, 2, 0))
    cog = gdal.Open(a.cog)  # kept open: the colour table belongs to it
    ct = cog.GetRasterBand(1).GetRasterColorTable()
    doc = json.load(open(a.geojson))
    tint = np.zeros_like(rgb)
    weight = np.zeros(rgb.shape[:2], np.float32)
    present = {}
    for f in doc["features"]:
        p = f["properties"]
        x, y, w, hh = p["window"]
        x0, y0 = int(x * scale), int(y * scale)
        x1, y1 = int((x + w) * scale), int((y + hh) * scale)
        c = np.array(ct.GetColorEntry(p["class_index"])[:3], np.float32)
        tint[y0:y1, x0:x1] += c
        weight[y0:y1, x0:x1] += 1
        present[p["class_index"]] = p["class"]
        # window outline
        rgb[y0:y1, x0] = rgb[y0:y1, x1 - 1] = 255
        rgb[y0, x0:x1] = rgb[y1 - 1, x0:x1] = 255
    m = weight > 0
    tint[m] /= weight[m][:, None]
    out = rgb.copy()
    out[m] = (1 - a.alpha) * rgb[m] + a.alpha * tint[m]
    # legend: one swatch row per class present
    sw = 14
    legend = np.full((sw * len(present) + 8, a.width, 3), 255, np.float32)
    for i, (k, _) in enumerate(sorted(present.items())):
        legend[4 + i * sw:4 + i * sw + sw - 3, 4:4 + 3 * sw] = ct.GetColorEntry(k)[:3]
    img = np.concatenate([out, legend], axis=0).clip(0, 255).astype(np.uint8)
    mem = gdal.GetDriverByName("MEM").Create("", img.shape[1], img.shape[0], 3, gdal.GDT_Byte)
    for b in range(3):
        mem.GetRasterBand(b + 1).WriteArray(img[:, :, b])
    gdal.GetDriverByName("PNG").CreateCopy(a.out, mem, options=["ZLEVEL=9"])
    # The legend's names (no font here): printed for the caption.
    for k, name in sorted(present.items()):
        print("%3d %-18s #%02x%02x%02x" % ((k, name) + tuple(ct.GetColorEntry(k)[:3])))


if __name__ == "__main__":
    main()
