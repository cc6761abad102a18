"""onespike-serve's POST /v2/models/{m}/map on loopback: a scene (a 2x2 mosaic of fixture
JPEGs written by GDAL's Python bindings as a georeferenced GeoTIFF) is answered 200
application/geo+json with exactly the features `onespike-train map` writes for the same file and
options, and with ?format=tiff or Accept: image/tiff as the Cloud-Optimized GeoTIFF `map --raster`
writes (read back with GDAL: the same size, georeferencing, bands and class names); malformed parameters 400 naming the parameter, a GIF or a JPEG 415, bands out of range
or window_m on a raster without georeferencing 422, a body over --map-max-body 413 (at the head
from its Content-Length, and mid-body when chunked), --map-timeout passed 504; with --workers 2
a second map is refused 503 with Retry-After at its head while one runs, classify still answers
200, and SIGTERM cancels the running map (503) and exits 0; --token-file guards map.

Nothing depends on the machine's speed: the "endless" map is the mosaic at stride 1 with
16-pixel windows (247009 windows, each resized to 256x256 through ResNet-18: tens of minutes
at the least on one core of a fast machine, where the checks made while it runs take well under
a second), so it is still running while the other requests are made (seen in /metrics) and is
over a --map-timeout of 1 s. Exit 77 (skipped) without GDAL's Python bindings.
The model is the shipped UC Merced model (models/), served as "ucm"."""
import json
import os
import socket
import sys
import threading
import time

from harness import HOST, Env, Server, Suite, raw_exchange, parse_raw_response

SKIP = 77
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models",
                     "ucm-msresnet18-t1.safetensors")
TILES = ["ucm_airplane00.jpg", "ucm_beach00.jpg", "ucm_harbor10.jpg", "ucm_beach00.jpg"]
SIDE = 256
PIXEL_M = 0.3
ORIGIN = (600000.0, 4400000.0)  # UTM 14N
EPSG = 32614
ENDLESS = "?window=16&stride=1"  # 497 x 497 windows
TIFF = {"Content-Type": "image/tiff"}
WAIT_S = 120


def gdal_modules():
    try:
        from osgeo import gdal, osr
        gdal.UseExceptions()
        return gdal, osr
    except ImportError:
        return None, None


def write_mosaic(gdal, osr, env, path):
    ds = gdal.GetDriverByName("GTiff").Create(path, 2 * SIDE, 2 * SIDE, 3, gdal.GDT_Byte,
                                              options=["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform([ORIGIN[0], PIXEL_M, 0, ORIGIN[1], 0, -PIXEL_M])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    ds.SetProjection(srs.ExportToWkt())
    for i, name in enumerate(TILES):  # ucm_harbor10.jpg is 257x257: its top-left 256x256
        px = gdal.Open(env.fixture(name)).ReadAsArray()
        r, c = divmod(i, 2)
        for b in range(3):
            ds.GetRasterBand(b + 1).WriteArray(px[b][:SIDE, :SIDE], c * SIDE, r * SIDE)
    ds = None


def cli_map(env, scene, *args):
    import subprocess
    out = os.path.join(env.tmp, "cli-%d.geojson" % len(os.listdir(env.tmp)))
    subprocess.run([env.train, "map", "--model", MODEL, "--in", scene, "--out", out, "--quiet"]
                   + list(args), check=True, timeout=600, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def post_map(srv, body, query="", headers=None, model="ucm"):
    hd = dict(TIFF)
    hd.update(headers or {})
    st, h, data = srv.request("POST", f"/v2/models/{model}/map{query}", body, hd)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = {"not_json": data[:200]}
    return st, h, doc


def err_names(doc, word):
    return isinstance(doc, dict) and isinstance(doc.get("error"), str) and word in doc["error"]


def wait_for(cond, timeout=WAIT_S, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def main():
    gdal, osr = gdal_modules()
    if gdal is None:
        print("1..0 # SKIP GDAL's Python bindings (python3-gdal) are not installed")
        return SKIP
    env = Env()
    s = Suite()
    try:
        scene = os.path.join(env.tmp, "mosaic.tif")
        write_mosaic(gdal, osr, env, scene)
        png = os.path.join(env.tmp, "mosaic.png")  # the same pixels, no georeferencing
        gdal.Translate(png, scene, format="PNG")
        with open(scene, "rb") as f:
            tif = f.read()
        with open(png, "rb") as f:
            png_bytes = f.read()
        answers(env, s, scene, tif, png_bytes)
        busy(env, s, tif)
        limits(env, s, tif)
        token(env, s, tif)
    finally:
        env.cleanup()
    return s.done()


def answers(env, s, scene, tif, png_bytes):
    srv = Server(env, ["--model", f"ucm={MODEL}", "--workers", "2"], name="answers")
    try:
        for query, args in [("?window=256", ["--window", "256"]),
                            ("?window=256&stride=128&top_k=5", ["--window", "256", "--stride",
                                                                "128", "--top-k", "5"]),
                            ("?window=256&tta=8", ["--window", "256", "--tta", "8"]),
                            ("", [])]:
            want = cli_map(env, scene, *args)
            st, h, doc = post_map(srv, tif, query)
            s.check(f"map{query or ' (defaults)'}: 200 application/geo+json",
                    st == 200 and h.get("content-type") == "application/geo+json", (st, h, doc))
            s.check(f"map{query}: the features of onespike-train map",
                    isinstance(doc, dict) and doc.get("features") == want["features"] and
                    len(want["features"]) > 0, (doc or {}).get("features", doc))
            s.check(f"map{query}: the same collection (type, onespike member)",
                    isinstance(doc, dict) and doc.get("type") == "FeatureCollection" and
                    doc.get("onespike") == want.get("onespike"),
                    ((doc or {}).get("onespike"), want.get("onespike")))
        cog_answers(env, s, srv, scene, tif)
        st, _, tdoc = post_map(srv, tif, "?window=256&tta=8")
        st1, _, odoc = post_map(srv, tif, "?window=256")
        s.check("map ?tta=8: other probabilities than one view (the views ran)",
                st == st1 == 200 and [f["properties"]["probability"] for f in tdoc["features"]] !=
                [f["properties"]["probability"] for f in odoc["features"]], (st, st1))
        st, _, doc = post_map(srv, tif, "?window=256")
        s.check("2x2 windows in lon/lat", st == 200 and len(doc["features"]) == 4 and
                doc["onespike"].get("coordinates") == "lonlat", doc.get("onespike"))
        st, _, meta = srv.json("GET", "/v2/models/ucm")
        st, _, vdoc = post_map(srv, tif, "?window=256",
                               model=f"ucm/versions/{meta.get('versions', ['?'])[0]}")
        s.check("versioned path /v2/models/ucm/versions/V/map: the same answer",
                st == 200 and vdoc.get("features") == doc.get("features"), (st, vdoc))
        st, _, mdoc = post_map(srv, tif, "?window_m=76.8")
        s.check("window_m=76.8 (256 px at 0.3 m): 200, the window=256 features",
                st == 200 and [f["properties"] for f in mdoc.get("features", [])] ==
                [f["properties"] for f in doc["features"]], (st, mdoc))
        chunked = srv_chunked(srv, "/v2/models/ucm/map?window=256", tif)
        s.check("chunked body: 200, the same features",
                chunked[0] == 200 and json.loads(chunked[2]).get("features") == doc["features"],
                chunked[:2])
        st, h, _ = srv.request("GET", "/v2/models/ucm/map")
        s.check("GET on map: 405 Allow: POST", st == 405 and h.get("allow") == "POST", (st, h))
        for q, word in [("?window=abc", "window"), ("?window=0", "window"),
                        ("?window=-5", "window"), ("?stride=x", "stride"),
                        ("?stride=300", "stride"), ("?window=64&stride=65", "stride"),
                        ("?window_m=abc", "window_m"), ("?window_m=0", "window_m"),
                        ("?window_m=10&window=5", "window_m"), ("?top_k=0", "top_k"),
                        ("?tta=3", "tta"),
                        ("?top_k=99", "top_k"), ("?bands=1,2", "bands"),
                        ("?scale=bogus", "scale")]:
            st, _, d = post_map(srv, tif, q)
            s.check(f"{q}: 400 naming {word}", st == 400 and err_names(d, word), (st, d))
        st, _, d = post_map(srv, b"GIF89a" + b"\0" * 64, headers={"Content-Type": "image/gif"})
        s.check("a GIF: 415 naming the accepted types", st == 415 and err_names(d, "image/tiff"),
                (st, d))
        st, _, d = post_map(srv, env.read_fixture("ucm_beach00.jpg"),
                            headers={"Content-Type": "image/jpeg"})
        s.check("a JPEG: 415 naming the accepted types",
                st == 415 and err_names(d, "image/tiff"), (st, d))
        st, _, d = post_map(srv, b"not a raster at all\n" * 10)
        s.check("text: 415 JSON", st == 415 and isinstance(d, dict) and "error" in d, (st, d))
        st, _, d = post_map(srv, tif[:len(tif) // 2])
        s.check("a truncated GeoTIFF: 400 or 422 JSON, never 200",
                st in (400, 415, 422) and isinstance(d, dict) and "error" in d, (st, d))
        st, _, d = post_map(srv, b"")
        s.check("empty body: 400", st == 400 and err_names(d, "raster"), (st, d))
        st, _, d = post_map(srv, tif, "?bands=1,2,9")
        s.check("bands=1,2,9 on 3 bands: 422 naming what it has",
                st == 422 and err_names(d, "3 bands"), (st, d))
        st, _, d = post_map(srv, png_bytes, "?window_m=76.8", {"Content-Type": "image/png"})
        s.check("window_m on a PNG without georeferencing: 422", st == 422 and
                isinstance(d, dict) and "error" in d, (st, d))
        st, _, d = post_map(srv, png_bytes, "?window=256", {"Content-Type": "image/png"})
        s.check("PNG without georeferencing: 200, pixel coordinates",
                st == 200 and d["onespike"].get("coordinates") == "pixel", (st, d))
        st, _, d = post_map(srv, tif, headers={"Content-Type": "multipart/form-data; boundary=x"})
        s.check("multipart: 415", st == 415 and isinstance(d, dict) and "error" in d, (st, d))
        s.check("metrics: route=\"map\" counted by status",
                (srv.metric("onespike_requests_total", {"route": "map", "status": "200"}) or 0)
                >= 8 and (srv.metric("onespike_requests_total",
                                     {"route": "map", "status": "400"}) or 0) >= 13)
        s.check("metrics: map windows classified", (srv.metric("onespike_map_windows_total")
                                                     or 0) >= 4 + 9 + 4)
        s.check("metrics: no map active afterwards, at most 1 with 2 workers",
                srv.metric("onespike_maps_active") == 0 and srv.metric("onespike_maps_max") == 1)
        s.check("SIGTERM: exit 0", srv.stop() == 0)
        s.check("every log line is JSON", all("not_json" not in r for r in srv.records()))
    finally:
        srv.kill()


def read_cog(path):
    """What a GIS reads from a map GeoTIFF: (size, geotransform, projection, band 1 and band 2
    values row by row, band 1's class names (its CLASS_<i> metadata), the layout)."""
    from osgeo import gdal
    ds = gdal.Open(path)
    if ds is None:
        return None
    b1, b2 = ds.GetRasterBand(1), ds.GetRasterBand(2)
    vals = [list(b.ReadRaster(0, 0, ds.RasterXSize, ds.RasterYSize)) for b in (b1, b2)]
    names = [b1.GetMetadataItem(f"CLASS_{i}") for i in range(256)]
    return ((ds.RasterXSize, ds.RasterYSize, ds.RasterCount), ds.GetGeoTransform(),
            ds.GetProjection(), vals, [n for n in names if n],
            ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE"))


def cog_answers(env, s, srv, scene, tif):
    """?format=tiff, or Accept: image/tiff: the map as the Cloud-Optimized GeoTIFF that
    onespike-train map --raster writes for the same scene and options."""
    import subprocess
    for query, args in [("?window=256", ["--window", "256"]),
                        ("?window=128&stride=64", ["--window", "128", "--stride", "64"])]:
        want_path = os.path.join(env.tmp, "cli-%d.tif" % len(os.listdir(env.tmp)))
        subprocess.run([env.train, "map", "--model", MODEL, "--in", scene, "--out",
                        want_path + ".geojson", "--raster", want_path, "--quiet"] + args,
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
        want = read_cog(want_path)
        for how, q, hd in [("?format=tiff", query + "&format=tiff", None),
                           ("Accept: image/tiff", query, {"Accept": "image/tiff"})]:
            st, h, data = srv.request("POST", f"/v2/models/ucm/map{q}", tif,
                                      dict(TIFF, **(hd or {})))
            got_path = os.path.join(env.tmp, "srv-%d.tif" % len(os.listdir(env.tmp)))
            with open(got_path, "wb") as f:
                f.write(data)
            got = read_cog(got_path) if st == 200 else None
            s.check(f"map{query} {how}: 200, the COG media type",
                    st == 200 and h.get("content-type", "").startswith("image/tiff;") and
                    "profile=cloud-optimized" in h.get("content-type", ""), (st, h))
            s.check(f"map{query} {how}: the raster of onespike-train map --raster (size, "
                    "georeferencing, class and probability bands, class names, COG layout)",
                    got is not None and got == want and len(want[4]) == 21 and
                    want[5] == "COG",
                    (got and got[:2], want and want[:2]))
    for accept, want in [("application/geo+json, image/tiff", "application/geo+json"),
                         ("image/tiff;q=0", "application/geo+json"),
                         ("*/*", "application/geo+json"),
                         ("application/geo+json;q=0.5, image/tiff", "image/tiff"),
                         ("image/*", "image/tiff"),
                         ("IMAGE/TIFF; q=0.9, */*;q=0.1", "image/tiff")]:
        st, h, data = srv.request("POST", "/v2/models/ucm/map?window=256", tif,
                                  dict(TIFF, Accept=accept))
        s.check(f"Accept: {accept}: {want} (by q; a tie is GeoJSON)",
                st == 200 and h.get("content-type", "").split(";")[0] == want, (st, h))
    st, _, doc = post_map(srv, tif, "?window=256&format=png")
    s.check("?format=png: 400 naming format and what there is",
            st == 400 and err_names(doc, "format") and err_names(doc, "tiff"), (st, doc))


def srv_chunked(srv, path, body):
    """POST with Transfer-Encoding: chunked (64 KiB chunks) through a raw socket."""
    data = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/tiff\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    for i in range(0, len(body), 65536):
        part = body[i:i + 65536]
        data += b"%x\r\n" % len(part) + part + b"\r\n"
    data += b"0\r\n\r\n"
    return parse_raw_response(raw_exchange(srv.port, data, timeout=120))


def busy(env, s, tif):
    srv = Server(env, ["--model", f"ucm={MODEL}", "--workers", "2", "--map-timeout", "3600",
                       "--drain-ms", "120000"], name="busy")
    first = {}

    def endless():
        try:
            first["answer"] = post_map(srv, tif, ENDLESS)
        except OSError as e:
            first["answer"] = (None, {}, str(e))

    t = threading.Thread(target=endless)
    try:
        t.start()
        running = wait_for(lambda: srv.metric("onespike_maps_active") == 1 and
                           (srv.metric("onespike_map_windows_total") or 0) > 0)
        s.check("the endless map is running (windows counted)", running)
        st, h, d = post_map(srv, tif, "?window=256")
        s.check("a second map while one runs (workers 2): 503 with Retry-After",
                st == 503 and h.get("retry-after") == "1" and err_names(d, "map"), (st, h, d))
        # Refused at the head: a Content-Length of 1 MB and no body byte still gets its answer.
        raw = raw_exchange(srv.port, b"POST /v2/models/ucm/map HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: image/tiff\r\nContent-Length: 1000000\r\n\r\n",
                           timeout=30)
        st, h, _ = parse_raw_response(raw)
        s.check("the second map is refused before its body is read", st == 503, raw[:200])
        st, _, d = srv.classify(env.read_fixture("ucm_beach00.jpg"), model="ucm")
        s.check("classify still answers 200 while the map runs", st == 200 and
                d.get("predictions"), (st, d))
        s.check("the map is still running after classify answered",
                srv.metric("onespike_maps_active") == 1 and "answer" not in first)
        # (classify's worker counts itself idle just after its answer went out: wait for it)
        s.check("workers busy: 1 (the map holds one worker only)",
                wait_for(lambda: srv.metric("onespike_workers_busy") == 1))
        srv.proc.send_signal(15)
        t.join(WAIT_S)
        st, h, d = first.get("answer", (None, {}, None))
        s.check("SIGTERM cancels the running map: 503 JSON", st == 503 and
                err_names(d, "shutting down"), (st, d))
        s.check("and the server exits 0", srv.stop(signal_it=False) == 0)
    finally:
        srv.kill()
        t.join(5)


def limits(env, s, tif):
    # The deadline on a server of its own: a 1 s --map-timeout would also bound the quick maps
    # below, and those take longer than that on a slow or sanitized machine.
    srv = Server(env, ["--model", f"ucm={MODEL}", "--workers", "2", "--map-timeout", "1"],
                 name="deadline")
    try:
        st, _, d = post_map(srv, tif, ENDLESS)
        s.check("--map-timeout 1 on the endless map: 504 naming --map-timeout",
                st == 504 and err_names(d, "--map-timeout"), (st, d))
        s.check("SIGTERM after the deadline: exit 0", srv.stop() == 0)
    finally:
        srv.kill()
    limit = len(tif) + 16
    srv = Server(env, ["--model", f"ucm={MODEL}", "--workers", "2", "--map-timeout", "3600",
                       "--map-max-body", str(limit), "--max-body", "1K"], name="limits")
    try:
        st, _, d = post_map(srv, tif, "?window=256")
        s.check("--map-max-body above the scene, --max-body 1K: the scene is mapped (200)",
                st == 200 and len(d.get("features", [])) == 4, (st, d))
        st, _, d = srv.classify(tif, model="ucm", headers={"Content-Type": "image/tiff"})
        s.check("classify keeps --max-body (1K): 413", st == 413 and err_names(d, "--max-body"),
                (st, d))
        st, _, d = post_map(srv, tif + b"\0" * 17, "?window=256")
        s.check("Content-Length over --map-max-body: 413 naming it",
                st == 413 and err_names(d, "--map-max-body"), (st, d))
        st, _, body = srv_chunked(srv, "/v2/models/ucm/map?window=256", tif + b"\0" * 17)
        s.check("chunked over --map-max-body: 413 JSON naming it",
                st == 413 and b"--map-max-body" in body, (st, body[:200]))
        s.check("SIGTERM: exit 0", srv.stop() == 0)
    finally:
        srv.kill()


def token(env, s, tif):
    path = os.path.join(env.tmp, "token")
    with open(path, "w") as f:
        f.write("s3cret-map\n")
    srv = Server(env, ["--model", f"ucm={MODEL}", "--workers", "1", "--token-file", path],
                 name="token")
    try:
        st, h, d = post_map(srv, tif, "?window=256")
        s.check("--token-file: a map without the token is 401",
                st == 401 and "www-authenticate" in h, (st, d))
        st, _, d = post_map(srv, tif, "?window=256", {"Authorization": "Bearer s3cret-map"})
        s.check("with it: 200 (one worker: one map allowed)",
                st == 200 and len(d.get("features", [])) == 4, (st, d))
        s.check("SIGTERM: exit 0", srv.stop() == 0)
    finally:
        srv.kill()


if __name__ == "__main__":
    sys.exit(main())
