"""onespike-serve end to end: each bad input gets its documented status and a JSON error that
names the problem, and the server stays live after every one of them."""
import base64
import json
import random

from harness import (Env, Server, Suite, multipart, parse_raw_response, patch_sof_dims,
                     raw_exchange)

MAX_BODY = 64 * 1024


def main():
    env = Env()
    s = Suite()
    m = env.model("m")
    jpeg = env.read_fixture("ucm_beach00.jpg")
    png = env.read_fixture("tiny_2x2.png")
    trunc = env.read_fixture("ucm_airplane00_trunc40.jpg")
    huge = patch_sof_dims(jpeg, 60000, 60000)
    # Seeded: a failure can be replayed. A leading 0 byte keeps it from being taken for a JPEG.
    rnd = b"\x00" + random.Random(14).randbytes(3999)
    prog = env.read_fixture("synth_progressive_444_16x16.jpg")
    srv = Server(env, ["--model", f"m={m}", "--workers", "2", "--max-body", str(MAX_BODY)])
    try:
        run(s, srv, jpeg, png, trunc, huge, rnd)
        run_progressive(s, srv, prog)
        n4xx = sum(v for k, v in count_by_status(srv).items() if 400 <= k < 500)
        s.check("metrics count the refused requests by status", n4xx >= 40, n4xx)
        s.check("SIGTERM: exit 0", srv.stop() == 0)
        recs = srv.records()
        s.check("every log line is JSON", all("not_json" not in r for r in recs))
        with open(srv.log_path, "rb") as f:
            log = f.read()
        try:
            log.decode("utf-8")  # strict: refuses overlongs and surrogates as JSON parsers do
            strict = True
        except UnicodeDecodeError as e:
            strict = e
        s.check("the log is well-formed UTF-8 (bad request bytes logged as U+FFFD)",
                strict is True and "\\ufffd" in log.decode("utf-8", "replace"), strict)
        errs = [r for r in recs if r.get("msg") == "request" and r.get("status") == 415]
        s.check("error requests are logged with their message",
                errs and all("JPEG" in r.get("error", "") for r in errs), errs[:2])
    finally:
        srv.kill()

    # --max-pixels is configurable: a real 256x256 JPEG over a 65535-pixel limit
    srv = Server(env, ["--model", f"m={m}", "--workers", "1", "--max-pixels", "65535"],
                 name="pixels")
    try:
        st, h, doc = srv.classify(jpeg)
        s.check("--max-pixels 65535, 256x256 image: 422 naming size and limit",
                st == 422 and "256x256" in doc["error"] and "65535" in doc["error"], (st, doc))
        s.check("server stays live", srv.live())
        # (the default 8 MB --max-body here) 250,000 numbers: more than 64 inputs of 3x32x32
        expect(s, srv, "infer: more JSON values than any request to the model needs: 413",
               infer(srv, None, raw=b'{"id": [' + b"0," * 250000 + b'0]}'), 413, "JSON values")
    finally:
        srv.kill()
    env.cleanup()
    return s.done()


def run_progressive(s, srv, prog):
    """A progressive JPEG decodes with whole-image coefficient buffers: a small one is served;
    one of 7000x7000 (49 MP, under the default --max-pixels) would take ~280 MB per worker and
    is refused before decoding."""
    st, _, doc = srv.classify(prog)
    s.check("a small progressive JPEG is classified", st == 200, (st, doc))
    expect(s, srv, "progressive JPEG claiming 7000x7000", srv.classify(
        patch_sof_dims(prog, 7000, 7000)), 422, "progressive", "7000x7000",
        "coefficient buffers", "budget of 64 MB")


def count_by_status(srv):
    _, _, text = srv.request("GET", "/metrics")
    out = {}
    for line in text.decode().splitlines():
        if line.startswith("onespike_requests_total{"):
            status = int(line.split('status="')[1].split('"')[0])
            out[status] = out.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return out


def expect(s, srv, name, result, status, *words):
    """result = (status, headers, doc): check status, a JSON {"error": ...} naming the problem
    (each of words appears in it), the JSON content type and a request id; then liveness."""
    st, h, doc = result
    ok = (st == status and isinstance(doc, dict) and set(doc) == {"error"}
          and isinstance(doc["error"], str) and all(w in doc["error"] for w in words)
          and h.get("content-type") == "application/json" and h.get("x-request-id"))
    s.check(f"{name}: {status} {words}", ok, (st, doc, h))
    s.check(f"{name}: server stays live", srv.live())


def infer(srv, doc, raw=None):
    body = raw if raw is not None else json.dumps(doc)
    return srv.json("POST", "/v2/models/m/infer", body, {"Content-Type": "application/json"})


def run(s, srv, jpeg, png, trunc, huge, rnd):
    # images
    expect(s, srv, "empty body", srv.classify(b""), 400, "empty")
    expect(s, srv, "random bytes", srv.classify(rnd), 415, "expected JPEG")
    st, _, _ = srv.classify(png)
    s.check("a PNG is classified (GDAL)", st == 200, st)
    st, _, _ = srv.classify(png, headers={"Content-Type": "image/png"})
    s.check("a PNG sent as image/png is classified", st == 200, st)
    expect(s, srv, "GIF", srv.classify(b"GIF89a" + b"\0" * 40), 415, "GIF")
    expect(s, srv, "truncated JPEG", srv.classify(trunc), 400, "truncated", "JPEG")
    expect(s, srv, "header claiming 60000x60000", srv.classify(huge), 422, "60000x60000",
           "limit")
    st, _, doc = srv.classify(jpeg)
    s.check("a good JPEG still works after the bad ones", st == 200)

    # body over the cap: the answer comes after the head alone, without reading the body
    head = (f"POST /v2/models/m/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n").encode()
    st, h, body = parse_raw_response(raw_exchange(srv.port, head + jpeg[:1000], timeout=10))
    doc = json.loads(body) if body else {}
    s.check("body over --max-body: 413 before the body is read",
            st == 413 and "104857600" in doc.get("error", "") and str(MAX_BODY) in doc["error"],
            (st, doc))
    s.check("413: server stays live", srv.live())
    expect(s, srv, "body just over the cap (sent whole)", srv.classify(b"\xff" * (MAX_BODY + 1)),
           413, "limit")
    st, _, _ = srv.classify(jpeg + b"\0" * (MAX_BODY - len(jpeg)))
    s.check("body exactly at the cap is accepted", st == 200, st)

    # length
    raw = b"POST /v2/models/m/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n\r\n"
    st, _, body = parse_raw_response(raw_exchange(srv.port, raw, timeout=10))
    s.check("POST without Content-Length: 411", st == 411 and b"Content-Length" in body,
            (st, body))
    raw = (b"POST /v2/models/m/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n5\r\nhello\r\n0\r\n\r\n")
    st, _, body = parse_raw_response(raw_exchange(srv.port, raw, timeout=10))
    s.check("chunked upload is read (5 bytes that are no JPEG: 415)",
            st == 415 and b"5 bytes" in body, (st, body))
    s.check("411: server stays live", srv.live())

    # routing
    expect(s, srv, "unknown model", srv.classify(jpeg, model="nope"), 404, "nope", "not found")
    expect(s, srv, "unknown model metadata", srv.json("GET", "/v2/models/nope"), 404, "nope")
    expect(s, srv, "unknown version", srv.json("GET", "/v2/models/m/versions/9"), 404,
           "version")
    expect(s, srv, "unknown route", srv.json("GET", "/v3/whatever"), 404, "/v3/whatever")
    expect(s, srv, "non-UTF-8 path", srv.json("GET", "/v2/models/%ff%fe"), 404, "not found")
    # Malformed UTF-8 that a lax check takes for text (overlong forms, surrogates, past
    # U+10FFFF): the answer is still a JSON 404, the bad bytes replaced by '?' in its message.
    bad_paths = {"overlong": (b"\xe0\x80\xaf", "???"), "surrogate": (b"\xed\xa0\x80", "???"),
                 "past U+10FFFF": (b"\xf4\x90\x80\x80", "????")}
    for name, (raw_bytes, shown) in bad_paths.items():
        pct = "".join(f"%{b:02X}" for b in raw_bytes)
        expect(s, srv, f"{name} model name, percent-encoded",
               srv.json("GET", f"/v2/models/x{pct}y"), 404, f'model "x{shown}y" not found')
        expect(s, srv, f"{name} route, percent-encoded", srv.json("GET", f"/v3/{pct}"), 404,
               f"no route GET /v3/{shown}")
        st, h, body = parse_raw_response(raw_exchange(
            srv.port, b"GET /v3/a" + raw_bytes + b"b HTTP/1.1\r\nHost: x\r\n\r\n"))
        try:
            doc = json.loads(body.decode("utf-8"))
        except ValueError:
            doc = {"not_json": body[:200]}
        expect(s, srv, f"{name} route, raw bytes", (st, h, doc), 404,
               f"no route GET /v3/a{shown}b")
    r = srv.json("DELETE", "/v2/models/m/classify")
    expect(s, srv, "DELETE on classify", r, 405, "DELETE", "POST")
    s.check("405 classify: Allow POST", r[1].get("allow") == "POST", r[1])
    r = srv.json("POST", "/v2/health/live", b"x")
    expect(s, srv, "POST on live", r, 405, "POST")
    s.check("405 live: Allow GET, HEAD", r[1].get("allow") == "GET, HEAD", r[1])
    expect(s, srv, "GET on infer", srv.json("GET", "/v2/models/m/infer"), 405, "GET")

    # top_k
    for k in ("0", "4", "-1", "abc", "1.5", ""):
        expect(s, srv, f"top_k={k!r}", srv.json("POST", f"/v2/models/m/classify?top_k={k}", jpeg,
                                               {"Content-Type": "image/jpeg"}), 400, "top_k")

    # multipart
    body, ctype = multipart([("file", "x.jpg", "image/jpeg", jpeg)])
    expect(s, srv, "multipart without an image field",
           srv.json("POST", "/v2/models/m/classify", body, {"Content-Type": ctype}), 400,
           'no field "image"', "file")
    expect(s, srv, "multipart without a boundary",
           srv.json("POST", "/v2/models/m/classify", body,
                    {"Content-Type": "multipart/form-data"}), 400, "boundary")
    body, ctype = multipart([("image", "x.jpg", "image/jpeg", jpeg)])
    expect(s, srv, "multipart cut short",
           srv.json("POST", "/v2/models/m/classify", body[:len(body) // 2],
                    {"Content-Type": ctype}), 400, "not closed")
    body, ctype = multipart([("image", "x.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 50)])
    expect(s, srv, "multipart holding a broken PNG",
           srv.json("POST", "/v2/models/m/classify", body, {"Content-Type": ctype}), 400,
           "PNG", "image")

    # OIP JSON
    good_b64 = base64.b64encode(jpeg).decode()

    def one(dt="BYTES", shape=(1,), data=None, **extra):
        d = {"inputs": [{"name": "image", "datatype": dt, "shape": list(shape),
                         "data": [good_b64] if data is None else data}]}
        d.update(extra)
        return d

    expect(s, srv, "infer: empty body", infer(srv, None, raw=b""), 400, "empty")
    expect(s, srv, "infer: malformed JSON", infer(srv, None, raw=b'{"inputs": [}'), 400,
           "malformed JSON", "line 1")
    expect(s, srv, "infer: not an object", infer(srv, [1, 2]), 400, "JSON object")
    expect(s, srv, "infer: duplicate keys refused (no last-wins smuggling)",
           infer(srv, None, raw=b'{"inputs": [], "inputs": [1]}'), 400, "duplicate")
    expect(s, srv, "infer: no inputs", infer(srv, {"id": "x"}), 400, '"inputs"')
    expect(s, srv, "infer: two inputs",
           infer(srv, {"inputs": one(data=["QQ=="])["inputs"] * 2}), 400, "exactly one")
    expect(s, srv, "infer: INT8 datatype", infer(srv, one(dt="INT8")), 400, "INT8", "BYTES")
    expect(s, srv, "infer: BYTES shape vs data", infer(srv, one(shape=(2,))), 400, "shape [2]")
    expect(s, srv, "infer: BYTES not a string", infer(srv, one(data=[5])), 400, "base64 string")
    expect(s, srv, "infer: id not a string", infer(srv, one(id=7)), 400, '"id"')
    expect(s, srv, "infer: unknown output",
           infer(srv, one(outputs=[{"name": "logits"}])), 400, "logits", "probabilities")
    expect(s, srv, "infer: FP32 wrong shape",
           infer(srv, one(dt="FP32", shape=(1, 3, 32, 31), data=[0.0])), 400, "[1,3,32,31]",
           "[N,3,32,32]")
    expect(s, srv, "infer: FP32 too few numbers",
           infer(srv, one(dt="FP32", shape=(1, 3, 32, 32), data=[0.5] * 100)), 400,
           "100 numbers", "3072")
    expect(s, srv, "infer: FP32 holding a string",
           infer(srv, one(dt="FP32", shape=(1, 3, 32, 32), data=["a"] * 3072)), 400,
           "only numbers")
    expect(s, srv, "infer: bad base64", infer(srv, one(data=["not*base64!"])), 400,
           "invalid base64", "offset 3")
    expect(s, srv, "infer: base64 cut mid-group", infer(srv, one(data=[good_b64[:-3]])), 400,
           "invalid base64")
    expect(s, srv, "infer: base64 PNG", infer(srv, one(data=[base64.b64encode(png).decode()])),
           415, "inputs[0].data[0]", "PNG")
    expect(s, srv, "infer: base64 truncated JPEG",
           infer(srv, one(data=[base64.b64encode(trunc).decode()])), 400, "truncated")
    expect(s, srv, "infer: base64 huge-header JPEG",
           infer(srv, one(data=[base64.b64encode(huge).decode()])), 422, "60000x60000")
    st, _, doc = infer(srv, one())
    s.check("infer: a good request still works", st == 200, (st, doc))


if __name__ == "__main__":
    raise SystemExit(main())
