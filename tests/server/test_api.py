"""onespike-serve end to end: every endpoint's status and JSON shape, answers equal to
`onespike-train classify --json` on the same image and model, several models, metrics, logs,
configuration (flags, environment, --help), --probe and start-up refusal of a damaged model."""
import base64
import json
import os
import random
import shutil
import signal
import subprocess

from harness import Env, Server, Suite, multipart

TOL = 1e-6
IMAGES = ["ucm_airplane00.jpg", "ucm_beach00.jpg", "ucm_harbor10.jpg"]
LABELS = ["airplane", "beach", "harbor"]
LABELS2 = ["field", "forest", "river", "road"]


def close(a, b, tol=TOL):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def same_predictions(got, want):
    return (len(got) == len(want) and
            all(g["label"] == w[0] and g["index"] == w[1] and abs(g["probability"] - w[2]) <= TOL
                for g, w in zip(got, want)))


def main():
    env = Env()
    s = Suite()
    m = env.model("m")
    m2 = env.model("two", size=24, labels=",".join(LABELS2), seed=9)
    paths = [env.fixture(i) for i in IMAGES]
    offline = env.offline(m, paths, 3)
    offline2 = env.offline(m2, paths, 4)
    imgs = {i: env.read_fixture(i) for i in IMAGES}
    srv = Server(env, ["--model", f"m={m}", "--model", f"two={m2}", "--workers", "2"])
    try:
        run(env, s, srv, m, m2, offline, offline2, imgs)
        s.check("SIGINT drains and exits 0", srv.stop(signal.SIGINT) == 0)
        recs = srv.records()
        s.check("every log line is JSON", all("not_json" not in r for r in recs),
                [r for r in recs if "not_json" in r][:2])
    finally:
        srv.kill()
    tta_checks(env, s, m, paths, imgs, offline)
    config_checks(env, s, m)
    env.cleanup()
    return s.done()


def run(env, s, srv, m, m2, offline, offline2, imgs):
    # Health
    st, h, doc = srv.json("GET", "/v2/health/live")
    s.check("live: 200 {live: true}", st == 200 and doc == {"live": True}, (st, doc))
    s.check("live: JSON content type and a request id",
            h.get("content-type") == "application/json" and h.get("x-request-id"), h)
    st, _, doc = srv.json("GET", "/v2/health/ready")
    s.check("ready: 200 {ready: true}", st == 200 and doc == {"ready": True}, (st, doc))
    st, h, body = srv.request("HEAD", "/v2/health/live")
    s.check("HEAD live: 200 without a body", st == 200 and body == b"", (st, body))

    # Server metadata
    st, _, doc = srv.json("GET", "/v2")
    s.check("/v2: name, version, extensions, models",
            st == 200 and doc["name"] == "onespike-serve" and doc["version"]
            and "classify" in doc["extensions"] and doc["models"] == ["m", "two"], doc)

    # Model metadata: the parameters are the ones the model file records (onespike-train
    # inspect reads them independently), not merely values of the right kind.
    rec = json.loads(subprocess.run([env.train, "inspect", "--json", m], capture_output=True,
                                    check=True, timeout=60).stdout)
    st, _, doc = srv.json("GET", "/v2/models/m")
    ok = (st == 200 and doc["name"] == "m" and doc["versions"] == ["1"]
          and doc["platform"] == "onespike" and doc["labels"] == LABELS
          and doc["input_size"] == {"channels": 3, "height": 32, "width": 32}
          and doc["timesteps"] == 1
          and {"name": "image", "datatype": "BYTES", "shape": [-1]} in doc["inputs"]
          and {"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]} in doc["inputs"]
          and doc["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
          and doc["parameters"]["sha256"] == rec["sha256"]
          and doc["parameters"]["params"] == rec["parameters"]
          and doc["parameters"]["resize"] == rec["input"]["resize"]
          and close(doc["parameters"]["mean"], rec["input"]["mean"])
          and close(doc["parameters"]["std"], rec["input"]["std"])
          and doc["parameters"]["runs"].split(", ")[0] == "event"
          and doc["parameters"]["runs"].split(", ")[2] in ("fp32", "fp16", "int8"))
    s.check("model metadata: name, versions, platform, inputs, outputs, labels, size, steps", ok,
            doc)
    st2, _, doc2 = srv.json("GET", "/v2/models/m/versions/1")
    s.check("model metadata by version is the same document", st2 == 200 and doc2 == doc)
    st, _, doc = srv.json("GET", "/v2/models/two")
    s.check("second model's metadata", st == 200 and doc["labels"] == LABELS2
            and doc["input_size"]["height"] == 24, doc)
    for path in ("/v2/models/m/ready", "/v2/models/m/versions/1/ready"):
        st, _, doc = srv.json("GET", path)
        s.check(f"{path}: 200 ready", st == 200 and doc == {"name": "m", "ready": True},
                (st, doc))

    # classify: equal to the offline tool, probabilities sum to 1
    answers = {}
    for name, img in imgs.items():
        st, h, doc = srv.classify(img, top_k=3)
        want = offline[env.fixture(name)]
        preds = doc.get("predictions", []) if doc else []
        probs = [p["probability"] for p in preds]
        s.check(f"classify {name}: 200 with model name, version, id",
                st == 200 and doc["model_name"] == "m" and doc["model_version"] == "1"
                and doc["id"] == h.get("x-request-id"), (st, doc))
        s.check(f"classify {name}: equals onespike-train classify (1e-6)",
                same_predictions(preds, want), (preds, want))
        s.check(f"classify {name}: probabilities sum to 1, descending",
                abs(sum(probs) - 1) <= TOL and probs == sorted(probs, reverse=True), probs)
        t = doc["timing_ms"]
        s.check(f"classify {name}: timing_ms queue/decode/compute/total",
                set(t) == {"queue", "decode", "compute", "total"}
                and min(t.values()) >= 0 and t["total"] >= t["compute"] + t["decode"], t)
        answers[name] = probs
    # Pairwise: a chained a != b != c would let a == c through.
    s.check("answers differ between images (the comparison means something)",
            len({tuple(v) for v in answers.values()}) == len(IMAGES), answers)

    st, _, doc = srv.classify(imgs[IMAGES[1]])
    s.check("classify without top_k: min(5, classes) predictions",
            st == 200 and len(doc["predictions"]) == 3)
    st, _, doc = srv.classify(imgs[IMAGES[1]], top_k=1)
    s.check("classify top_k=1: the offline top-1",
            st == 200 and same_predictions(doc["predictions"],
                                           offline[env.fixture(IMAGES[1])][:1]), doc)
    st, _, doc = srv.classify(imgs[IMAGES[1]], model="two", top_k=4)
    s.check("classify on the second model: its labels, equal to offline",
            st == 200 and doc["model_name"] == "two"
            and same_predictions(doc["predictions"], offline2[env.fixture(IMAGES[1])]), doc)
    st, _, doc = srv.json("POST", "/v2/models/m/versions/1/classify?top_k=3", imgs[IMAGES[2]],
                          {"Content-Type": "image/jpeg"})
    s.check("classify by version path", st == 200 and same_predictions(
        doc["predictions"], offline[env.fixture(IMAGES[2])]), doc)
    st, h, doc = srv.classify(imgs[IMAGES[0]], headers={"X-Request-Id": "client-req-42"})
    s.check("a client X-Request-Id is echoed in header and answer",
            h.get("x-request-id") == "client-req-42" and doc["id"] == "client-req-42", (h, doc))
    st, h, doc = srv.classify(imgs[IMAGES[0]], headers={"X-Request-Id": "bad id with spaces"})
    s.check("an unusable X-Request-Id is replaced",
            h.get("x-request-id") and h["x-request-id"] != "bad id with spaces"
            and doc["id"] == h["x-request-id"], h)
    ids = set()
    for _ in range(5):
        ids.add(srv.request("GET", "/v2/health/live")[1].get("x-request-id"))
    s.check("request ids are unique", len(ids) == 5, ids)

    # classify multipart/form-data: hand-made (with another field first) and curl -F
    body, ctype = multipart([("note", None, None, b"hello"),
                             ("image", "beach.jpg", "image/jpeg", imgs[IMAGES[1]])])
    st, _, doc = srv.json("POST", "/v2/models/m/classify?top_k=3", body,
                          {"Content-Type": ctype})
    s.check("classify multipart field image: equal to offline",
            st == 200 and same_predictions(doc["predictions"], offline[env.fixture(IMAGES[1])]),
            (st, doc))
    curl = shutil.which("curl")
    if curl:
        out = subprocess.run([curl, "-s", "-F", f"image=@{env.fixture(IMAGES[2])}",
                              f"http://127.0.0.1:{srv.port}/v2/models/m/classify?top_k=3"],
                             capture_output=True, timeout=60).stdout
        doc = json.loads(out)
        s.check("classify with curl -F image=@file: equal to offline",
                same_predictions(doc["predictions"], offline[env.fixture(IMAGES[2])]), doc)
        out = subprocess.run([curl, "-s", "-H", "Content-Type: image/jpeg", "--data-binary",
                              f"@{env.fixture(IMAGES[0])}",
                              f"http://127.0.0.1:{srv.port}/v2/models/m/classify?top_k=3"],
                             capture_output=True, timeout=60).stdout
        doc = json.loads(out)
        s.check("classify with curl --data-binary: equal to offline",
                same_predictions(doc["predictions"], offline[env.fixture(IMAGES[0])]), doc)

    # infer: BYTES (base64 JPEG), a batch of two
    b64 = {n: base64.b64encode(imgs[n]).decode() for n in IMAGES}
    req = {"id": "req-7", "inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                                      "data": [b64[IMAGES[1]], b64[IMAGES[2]]]}]}
    st, _, doc = srv.json("POST", "/v2/models/m/infer", json.dumps(req),
                          {"Content-Type": "application/json"})
    full = {n: sorted(offline[env.fixture(n)], key=lambda p: p[1]) for n in IMAGES}
    want = [p[2] for p in full[IMAGES[1]]] + [p[2] for p in full[IMAGES[2]]]
    out = doc["outputs"][0] if st == 200 else {}
    s.check("infer BYTES: 200, OIP response shape",
            st == 200 and doc["model_name"] == "m" and doc["model_version"] == "1"
            and doc["id"] == "req-7" and out.get("name") == "probabilities"
            and out.get("datatype") == "FP32" and out.get("shape") == [2, 3], doc)
    s.check("infer BYTES batch: probabilities equal offline, each row sums to 1",
            close(out.get("data", []), want) and abs(sum(out["data"][:3]) - 1) <= TOL
            and abs(sum(out["data"][3:]) - 1) <= TOL, (out, want))
    s.check("infer timing in parameters", "timing_ms" in doc.get("parameters", {}), doc)
    req = {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES",
                       "data": [b64[IMAGES[0]]]}]}
    st, h, doc = srv.json("POST", "/v2/models/m/versions/1/infer", json.dumps(req))
    s.check("infer without id: the request id; by version path",
            st == 200 and doc["id"] == h.get("x-request-id")
            and close(doc["outputs"][0]["data"], [p[2] for p in full[IMAGES[0]]]), doc)

    # infer: FP32 tensor, flat and nested give the same answer
    rnd = random.Random(5)
    flat = [rnd.uniform(-2, 2) for _ in range(3 * 32 * 32)]
    nested = [[[flat[(c * 32 + y) * 32:(c * 32 + y) * 32 + 32] for y in range(32)]
               for c in range(3)]]
    r1 = {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                      "data": flat}]}
    r2 = {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                      "data": nested}]}
    r3 = {"inputs": [{"name": "input", "shape": [3, 32, 32], "datatype": "FP32",
                      "data": [-v for v in flat]}]}
    st1, _, d1 = srv.json("POST", "/v2/models/m/infer", json.dumps(r1))
    st2, _, d2 = srv.json("POST", "/v2/models/m/infer", json.dumps(r2))
    st3, _, d3 = srv.json("POST", "/v2/models/m/infer", json.dumps(r3))
    p1 = d1["outputs"][0]["data"] if st1 == 200 else []
    s.check("infer FP32 flat: 200, shape [1,3], sums to 1",
            st1 == 200 and d1["outputs"][0]["shape"] == [1, 3] and abs(sum(p1) - 1) <= TOL, d1)
    s.check("infer FP32 nested equals flat", st2 == 200 and d2["outputs"][0]["data"] == p1, d2)
    s.check("infer FP32 [3,H,W] without batch, other data: other answer",
            st3 == 200 and d3["outputs"][0]["shape"] == [1, 3]
            and d3["outputs"][0]["data"] != p1, d3)

    # metrics
    st, h, text = srv.request("GET", "/metrics")
    text = text.decode()
    s.check("metrics: 200 Prometheus text",
            st == 200 and h.get("content-type", "").startswith("text/plain; version=0.0.4"), h)
    n200 = srv.metric("onespike_requests_total", {"route": "classify", "status": "200"})
    s.check("metrics: classify 200 count", n200 is not None and n200 >= 12, n200)
    s.check("metrics: live 200 count", srv.metric("onespike_requests_total",
                                                  {"route": "live", "status": "200"}) >= 7)
    qc = srv.metric("onespike_queue_wait_seconds_count", {"model": "m"})
    cc = srv.metric("onespike_compute_seconds_count", {"model": "m"})
    s.check("metrics: queue wait and compute histograms count every inference",
            qc is not None and qc >= 15 and cc is not None and cc >= qc, (qc, cc))
    s.check("metrics: histogram buckets, sums",
            'onespike_compute_seconds_bucket{model="m",le="+Inf"}' in text
            and 'onespike_decode_seconds_sum{model="two"}' in text)
    s.check("metrics: model state, readiness, queue, workers",
            srv.metric("onespike_model_loaded", {"model": "m", "version": "1"}) == 1
            and srv.metric("onespike_model_loaded", {"model": "two", "version": "1"}) == 1
            and srv.metric("onespike_ready") == 1 and srv.metric("onespike_workers") == 2
            and srv.metric("onespike_queue_capacity") == 64
            and srv.metric("onespike_queue_depth") == 0)
    s.check("metrics: in-flight counts the scrape itself",
            srv.metric("onespike_inflight_requests") == 1)
    rss = srv.metric("process_resident_memory_bytes")
    s.check("metrics: process RSS", rss is not None and rss > 1e6, rss)

    # access logs
    recs = [r for r in srv.records() if r.get("msg") == "request"]
    mine = [r for r in recs if r.get("id") == "client-req-42"]
    s.check("access log: JSON line with id, route, model, status, timings",
            len(mine) == 1 and mine[0]["status"] == 200 and mine[0]["route"] == "classify"
            and mine[0]["model"] == "m" and mine[0]["ms"] >= mine[0]["compute_ms"] >= 0
            and mine[0]["level"] == "info" and mine[0]["ts"].endswith("Z"), mine)


def tta_checks(env, s, m, paths, imgs, offline):
    """Test-time views: ?tta=N and --tta N answer as `onespike-train classify --tta N`."""
    tta = {n: env.offline(m, paths, 3, ["--tta", str(n)]) for n in (2, 8)}
    s.check("offline --tta 8 changes the answers (the views differ)",
            any(tta[8][p] != offline[p] for p in paths), (tta[8], offline))
    srv = Server(env, ["--model", f"m={m}", "--workers", "2"], name="tta1")
    try:
        for n in (2, 8):
            for name, img in imgs.items():
                st, _, doc = srv.json("POST", f"/v2/models/m/classify?top_k=3&tta={n}", img,
                                      {"Content-Type": "image/jpeg"})
                s.check(f"classify ?tta={n} {name}: equals onespike-train classify --tta {n}",
                        st == 200 and same_predictions(doc["predictions"],
                                                       tta[n][env.fixture(name)]), (st, doc))
        for bad in ("3", "16", "0", "x", "8x"):
            st, _, doc = srv.json("POST", f"/v2/models/m/classify?tta={bad}", imgs[IMAGES[0]],
                                  {"Content-Type": "image/jpeg"})
            s.check(f"classify ?tta={bad}: 400 naming tta",
                    st == 400 and "tta" in doc.get("error", ""), (st, doc))
        st, _, doc = srv.json("GET", "/v2/models/m")
        s.check("metadata: tta 1 by default", st == 200 and doc["parameters"]["tta"] == 1, doc)
        want = [p[2] for n in IMAGES[1:] for p in sorted(tta[8][env.fixture(n)],
                                                          key=lambda p: p[1])]
        req = {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                           "data": [base64.b64encode(imgs[n]).decode() for n in IMAGES[1:]]}],
               "parameters": {"tta": 8}}
        st, _, doc = srv.json("POST", "/v2/models/m/infer", json.dumps(req))
        s.check("infer parameters.tta 8: each image's 8-view probabilities, as classify --tta 8",
                st == 200 and close(doc["outputs"][0]["data"], want), (st, doc, want))
        req["parameters"]["tta"] = 3
        st, _, doc = srv.json("POST", "/v2/models/m/infer", json.dumps(req))
        s.check("infer parameters.tta 3: 400 naming it",
                st == 400 and "parameters.tta" in doc.get("error", ""), (st, doc))
    finally:
        srv.kill()
    srv = Server(env, ["--model", f"m={m}", "--tta", "8"], name="tta8")
    try:
        st, _, doc = srv.classify(imgs[IMAGES[1]], top_k=3)
        s.check("--tta 8: a classify request without ?tta= gets the 8 views",
                st == 200 and same_predictions(doc["predictions"],
                                               tta[8][env.fixture(IMAGES[1])]), (st, doc))
        st, _, doc = srv.json("POST", "/v2/models/m/classify?top_k=3&tta=1", imgs[IMAGES[1]],
                              {"Content-Type": "image/jpeg"})
        s.check("--tta 8: ?tta=1 asks for the image alone",
                st == 200 and same_predictions(doc["predictions"],
                                               offline[env.fixture(IMAGES[1])]), (st, doc))
        st, _, doc = srv.json("GET", "/v2/models/m")
        s.check("--tta 8: metadata says tta 8", st == 200 and doc["parameters"]["tta"] == 8, doc)
        want = [p[2] for p in sorted(tta[8][env.fixture(IMAGES[0])], key=lambda p: p[1])]
        req = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                           "data": [base64.b64encode(imgs[IMAGES[0]]).decode()]}]}
        st, _, doc = srv.json("POST", "/v2/models/m/infer", json.dumps(req))
        s.check("--tta 8: an infer request without parameters.tta gets the 8 views",
                st == 200 and close(doc["outputs"][0]["data"], want), (st, doc, want))
    finally:
        srv.kill()
    srv = Server(env, ["--model", f"m={m}", "--max-batch", "1"], name="tta-room")
    try:
        st, _, doc = srv.json("POST", "/v2/models/m/classify?tta=2", imgs[IMAGES[0]],
                              {"Content-Type": "image/jpeg"})
        s.check("--max-batch 1: ?tta=2 is 400 naming --tta (sessions hold one image)",
                st == 400 and "--tta 2" in doc.get("error", ""), (st, doc))
        req = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                           "data": [base64.b64encode(imgs[IMAGES[0]]).decode()]}],
               "parameters": {"tta": 4, "other": None}}
        st, _, doc = srv.json("POST", "/v2/models/m/infer", json.dumps(req))
        s.check("--max-batch 1: infer parameters.tta 4 is 400 naming --tta",
                st == 400 and "--tta 4" in doc.get("error", ""), (st, doc))
    finally:
        srv.kill()
    r = subprocess.run([env.serve, "--model", f"m={m}", "--tta", "5"], capture_output=True,
                       text=True, timeout=30)
    s.check("--tta 5: exit 2 naming --tta", r.returncode == 2 and "--tta" in r.stderr,
            (r.returncode, r.stderr))


def config_checks(env, s, m):
    # --help lists every flag and its environment variable
    out = subprocess.run([env.serve, "--help"], capture_output=True, text=True, timeout=30)
    flags = ["listen", "port", "model", "workers", "queue", "max-body", "max-pixels",
             "deadline-ms", "drain-ms", "conn-timeout", "max-conns", "log-level", "token-file"]
    missing = [f for f in flags if f"--{f}" not in out.stdout
               or "ONESPIKE_" + f.upper().replace("-", "_") not in out.stdout]
    s.check("--help: exit 0, every flag with its ONESPIKE_* variable",
            out.returncode == 0 and not missing, missing)
    s.check("--help shows defaults", "default 127.0.0.1" in out.stdout
            and "default 8080" in out.stdout)

    # usage errors: exit 2 naming the flag or variable
    for args, extra, word in ((["--model", f"m={m}", "--workers", "0"], {}, "--workers"),
                              (["--model", "no-equals-sign"], {}, "NAME=PATH"),
                              (["--model", f"m={m}", "--bogus"], {}, "--bogus"),
                              ([], {}, "no model"),
                              (["--model", f"m={m}"], {"ONESPIKE_QUEUE": "lots"},
                               "ONESPIKE_QUEUE")):
        e = dict(os.environ)
        e.update(extra)
        r = subprocess.run([env.serve] + args, capture_output=True, text=True, timeout=30, env=e)
        s.check(f"usage error {args or extra}: exit 2 naming {word}",
                r.returncode == 2 and word in r.stderr, (r.returncode, r.stderr))

    # environment variables configure the server; a flag wins over its variable
    srv = Server(env, ["--queue", "9"], {"ONESPIKE_MODEL": f"envm={m}",
                                         "ONESPIKE_WORKERS": "1", "ONESPIKE_QUEUE": "7",
                                         "ONESPIKE_LOG_LEVEL": "warn"}, name="envserver")
    try:
        st, _, doc = srv.json("GET", "/v2")
        s.check("ONESPIKE_MODEL names the served model", st == 200 and doc["models"] == ["envm"])
        s.check("ONESPIKE_WORKERS read; --queue wins over ONESPIKE_QUEUE",
                srv.metric("onespike_workers") == 1 and srv.metric("onespike_queue_capacity") == 9)
        srv.json("GET", "/v2/health/live")
        s.check("ONESPIKE_LOG_LEVEL=warn drops access logs",
                not any(r.get("msg") == "request" for r in srv.records()))

        # --probe: 0 on 200, 1 otherwise, 2 for a non-loopback URL
        def probe(url):
            return subprocess.run([env.serve, "--probe", url], capture_output=True,
                                  timeout=30).returncode
        base = f"http://127.0.0.1:{srv.port}"
        s.check("--probe ready: exit 0", probe(base + "/v2/health/ready") == 0)
        s.check("--probe localhost live: exit 0",
                probe(f"http://localhost:{srv.port}/v2/health/live") == 0)
        s.check("--probe 404 path: exit 1", probe(base + "/nope") == 1)
        s.check("--probe non-loopback host: exit 2", probe("http://192.0.2.1:80/") == 2)
        s.check("SIGTERM: exit 0", srv.stop() == 0)
        s.check("--probe after the server is gone: exit 1",
                probe(base + "/v2/health/live") == 1)
    finally:
        srv.kill()

    # a damaged model stops start-up with exit 1 and says why
    bad = os.path.join(env.tmp, "damaged.safetensors")
    with open(m, "rb") as f:
        data = bytearray(f.read())
    data[-64] ^= 0x55
    with open(bad, "wb") as f:
        f.write(data)
    r = subprocess.run([env.serve, "--port", "0", "--model", f"m={m}", "--model", f"bad={bad}"],
                       capture_output=True, text=True, timeout=60)
    lines = [json.loads(ln) for ln in r.stderr.splitlines() if ln.startswith("{")]
    fail = [ln for ln in lines if ln.get("msg", "").startswith("start-up failed")]
    s.check("damaged model: exit 1 before listening",
            r.returncode == 1 and not any(ln.get("msg") == "listening" for ln in lines),
            r.stderr)
    s.check("damaged model: log names the model, the file and the reason",
            fail and fail[0].get("model") == "bad" and fail[0].get("path") == bad
            and "SHA-256" in fail[0].get("error", ""), fail)
    r = subprocess.run([env.serve, "--port", "0", "--model", "m=/nonexistent/x.safetensors"],
                       capture_output=True, text=True, timeout=60)
    s.check("missing model file: exit 1 naming it",
            r.returncode == 1 and "/nonexistent/x.safetensors" in r.stderr, r.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
