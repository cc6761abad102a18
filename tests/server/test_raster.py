"""onespike-serve with rasters, on loopback: POST /v2/models/ucm/classify with image/tiff,
image/png and image/jp2 answers 200 with exactly the answer `onespike-train classify --json`
gives for the same file; the same pixels in TIFF and PNG give the same answer; a UInt16
GeoTIFF with ?bands=1,2,3&scale=range:0,65280 answers as the 8-bit one; errors are 4xx JSON
naming what the raster has (422: bands or data type the model cannot read, over the pixel
limit; 400: malformed bands/scale, truncated raster; 415: a GIF). Rasters are written by GDAL's
Python bindings (tests/py/raster_fixtures.py); exit 77 (skipped) without them.
The model is the shipped UC Merced model (models/), served as "ucm"."""
import os
import sys

from harness import Env, Server, Suite

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
import raster_fixtures as rf  # noqa: E402

SKIP = 77
TOL = 1e-6
TOP_K = 21
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models",
                     "ucm-msresnet18-t1.safetensors")


def preds(doc):
    return [(p["label"], p["index"], p["probability"]) for p in (doc or {}).get("predictions", [])]


def same(a, b):
    return len(a) == len(b) > 0 and all(x[0] == y[0] and x[1] == y[1] and abs(x[2] - y[2]) <= TOL
                                        for x, y in zip(a, b))


def main():
    if rf.gdal_or_none() is None:
        print("1..0 # SKIP GDAL's Python bindings (python3-gdal) are not installed")
        return SKIP
    env = Env()
    s = Suite()
    p = rf.make(env.tmp, env.fixtures)
    offline = env.offline(MODEL, [p["ucm"], p["png"], p["jp2"], p["naip8"]], TOP_K)
    srv = Server(env, ["--model", f"ucm={MODEL}", "--workers", "2", "--max-pixels", "50000000"])
    try:
        run(s, srv, p, offline, env.read_fixture("ucm_beach00.jpg"))
        s.check("SIGTERM: exit 0", srv.stop() == 0)
        recs = srv.records()
        s.check("every log line is JSON", all("not_json" not in r for r in recs))
        s.check("no GDAL message on the server's stderr/log",
                not any("ERROR 1" in r.get("not_json", "") or "Warning 1" in
                        r.get("not_json", "") for r in recs))
    finally:
        srv.kill()
    env.cleanup()
    return s.done()


def body(path):
    with open(path, "rb") as f:
        return f.read()


def post(srv, path, ctype, query=""):
    return srv.json("POST", f"/v2/models/ucm/classify?top_k={TOP_K}{query}", body(path),
                    {"Content-Type": ctype})


def run(s, srv, p, offline, jpeg):
    answers = {}
    for k, ctype in (("ucm", "image/tiff"), ("png", "image/png"), ("jp2", "image/jp2"),
                     ("naip8", "image/tiff")):
        st, _, doc = post(srv, p[k], ctype)
        answers[k] = preds(doc)
        s.check(f"{k} as {ctype}: 200, the answer of onespike-train classify",
                st == 200 and same(answers[k], offline[p[k]]), (st, doc))
    s.check("TIFF, PNG and JPEG 2000 of the same pixels: the same answer",
            same(answers["ucm"], answers["png"]) and same(answers["ucm"], answers["jp2"]))
    st, _, doc = post(srv, p["naip16"], "image/tiff", "&bands=1,2,3&scale=range:0,65280")
    s.check("UInt16 GeoTIFF, bands=1,2,3&scale=range:0,65280: the 8-bit file's answer",
            st == 200 and same(preds(doc), answers["naip8"]), (st, doc))
    st, _, doc = post(srv, p["naip8"], "image/tiff", "&bands=3,2,1")
    s.check("bands=3,2,1 is read (and changes the answer)",
            st == 200 and not same(preds(doc), answers["naip8"]), (st, doc))

    def err(name, got, status, *words):
        st, h, doc = got
        msg = (doc or {}).get("error", "")
        s.check(f"{name}: {status} JSON naming it", st == status and
                h.get("content-type") == "application/json" and all(w in msg for w in words),
                (st, msg))

    err("UInt16 without a scale", post(srv, p["naip16"], "image/tiff"), 422, "4 bands, UInt16",
        "scale")
    err("1-band raster for an RGB model", post(srv, p["gray"], "image/tiff"), 422, "1 band",
        "bands 1,2,3")
    err("band 9 of a 4-band raster", post(srv, p["naip8"], "image/tiff", "&bands=1,2,9"), 422,
        "4 bands", "band 9")
    # Refused from the head, before the body is read: a small body, so that the client's send
    # never meets a closed connection.
    err("bands=1,2", post(srv, p["trunc"], "image/tiff", "&bands=1,2"), 400, "bands")
    err("scale=percentile:90,10", post(srv, p["trunc"], "image/tiff", "&scale=percentile:90,10"),
        400, "percentile")
    err("bands= on a JPEG", srv.json("POST", "/v2/models/ucm/classify?bands=3,2,1", jpeg,
                                     {"Content-Type": "image/jpeg"}), 422, "JPEG")
    err("200000x200000 sparse GeoTIFF", post(srv, p["huge"], "image/tiff"), 422,
        "200000x200000", "exceeds the limit")
    err("truncated TIFF", post(srv, p["trunc"], "image/tiff"), 400, "truncated", "GTiff")
    err("text sent as image/tiff", post(srv, p["text"], "image/tiff"), 415, "unrecognised")
    err("GIF", srv.json("POST", "/v2/models/ucm/classify", b"GIF89a" + b"\0" * 64,
                        {"Content-Type": "image/gif"}), 415, "GIF")
    # The server still answers after all that.
    st, _, doc = post(srv, p["ucm"], "image/tiff")
    s.check("still answering after the errors", st == 200 and same(preds(doc), answers["ucm"]))


if __name__ == "__main__":
    sys.exit(main())
