"""Rasters for the raster tests, written by GDAL's Python bindings into a temp folder: real data
from ../shared/data when it is there (UC Merced TIFFs, NAIP GeoTIFFs), else made from the
repository's UC Merced JPEG fixture, so that the tests run everywhere osgeo is installed.

make(tmp, fixtures) -> dict of name -> path:
  ucm       8-bit RGB TIFF (a UC Merced original, or the fixture JPEG's pixels)
  png, jp2  the same pixels as PNG and as lossless JPEG 2000
  gray      band 1 only
  naip8     4-band 8-bit GeoTIFF with a projection (NAIP 2009 tile, or a stand-in)
  naip16    naip8's values x 256 as UInt16, tiled and DEFLATE-compressed, same georeference
  huge      200000 x 200000 x 3, tiled and sparse: a few MB on disk, 4e10 pixels
  trunc     the first 3000 bytes of ucm
  text      a text file named .tif
"""
import os

DATA = "/work/shared/data"
UCM_TIF = os.path.join(DATA, "ucmerced-tif", "airplane", "airplane00.tif")
NAIP = os.path.join(DATA, "geotiff", "m_4709963_se_14_1_20090818.tif")
U16_FACTOR = 256
HUGE_SIDE = 200000
TRUNC_BYTES = 3000


def gdal_or_none():
    try:
        from osgeo import gdal
        gdal.UseExceptions()
        return gdal
    except ImportError:
        return None


def make(tmp, fixtures):
    gdal = gdal_or_none()
    import numpy as np
    p = {k: os.path.join(tmp, k + ext) for k, ext in
         [("ucm", ".tif"), ("png", ".png"), ("jp2", ".jp2"), ("gray", ".tif"), ("naip8", ".tif"),
          ("naip16", ".tif"), ("huge", ".tif"), ("trunc", ".tif"), ("text", ".tif")]}
    if os.path.exists(UCM_TIF):
        p["ucm"] = UCM_TIF
    else:
        gdal.Translate(p["ucm"], os.path.join(fixtures, "ucm_airplane00.jpg"), format="GTiff")
    gdal.Translate(p["png"], p["ucm"], format="PNG")
    gdal.Translate(p["jp2"], p["ucm"], format="JP2OpenJPEG",
                   creationOptions=["REVERSIBLE=YES", "QUALITY=100"])
    gdal.Translate(p["gray"], p["ucm"], format="GTiff", bandList=[1])
    if os.path.exists(NAIP):
        p["naip8"] = NAIP
    else:  # a stand-in: the UC Merced pixels, band 4 = band 1, in UTM zone 14N
        from osgeo import osr
        src = gdal.Open(p["ucm"])
        ds = gdal.GetDriverByName("GTiff").Create(p["naip8"], src.RasterXSize, src.RasterYSize,
                                                  4, gdal.GDT_Byte)
        for b in range(4):
            ds.GetRasterBand(b + 1).WriteArray(src.GetRasterBand(min(b, 2) + 1).ReadAsArray())
        ds.SetGeoTransform((485900.0, 5.0, 0.0, 5209247.0, 0.0, -5.0))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(26914)
        ds.SetProjection(srs.ExportToWkt())
        ds = None
    src = gdal.Open(p["naip8"])
    ds = gdal.GetDriverByName("GTiff").Create(p["naip16"], src.RasterXSize, src.RasterYSize,
                                              src.RasterCount, gdal.GDT_UInt16,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    for b in range(src.RasterCount):
        a = src.GetRasterBand(b + 1).ReadAsArray().astype(np.uint16) * U16_FACTOR
        ds.GetRasterBand(b + 1).WriteArray(a)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    ds = src = None
    ds = gdal.GetDriverByName("GTiff").Create(p["huge"], HUGE_SIDE, HUGE_SIDE, 3, gdal.GDT_Byte,
                                              ["TILED=YES", "SPARSE_OK=TRUE", "BIGTIFF=YES"])
    ds = None
    with open(p["ucm"], "rb") as f, open(p["trunc"], "wb") as g:
        g.write(f.read(TRUNC_BYTES))
    with open(p["text"], "w") as f:
        f.write("not an image at all\n" * 10)
    return p


def rgb_of(path, bands=(1, 2, 3)):
    """GDAL's own read of the bands as interleaved bytes (height x width x 3)."""
    gdal = gdal_or_none()
    import numpy as np
    ds = gdal.Open(path)
    a = np.dstack([ds.GetRasterBand(b).ReadAsArray() for b in bands])
    return a.astype(np.uint8).tobytes(), ds.RasterXSize, ds.RasterYSize
