"""onespike-serve end to end under concurrency: 32 clients x 20 requests on keep-alive
connections, three images interleaved; every request succeeds and every answer for an image is
identical to the others and to `onespike-train classify`."""
import threading

from harness import Env, Server, Suite

CLIENTS = 32
REQUESTS = 20
TOL = 1e-6
IMAGES = ["ucm_airplane00.jpg", "ucm_beach00.jpg", "ucm_harbor10.jpg"]


def main():
    env = Env()
    s = Suite()
    m = env.model("m")
    offline = env.offline(m, [env.fixture(i) for i in IMAGES], 3)
    imgs = [env.read_fixture(i) for i in IMAGES]
    srv = Server(env, ["--model", f"m={m}", "--workers", "2", "--log-level", "warn"])
    results = [[] for _ in range(CLIENTS)]
    errors = []
    barrier = threading.Barrier(CLIENTS)

    def client(c):
        conn = srv.conn()
        try:
            barrier.wait(timeout=60)
            for i in range(REQUESTS):
                k = (c + i) % len(IMAGES)
                st, _, doc = srv.classify(imgs[k], top_k=3, conn=conn)
                results[c].append((k, st, doc))
        except Exception as e:  # reported as a failed check below
            errors.append(f"client {c}: {e!r}")
        finally:
            conn.close()

    try:
        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        flat = [r for rs in results for r in rs]
        s.check("no client failed", not errors, errors[:3])
        s.check(f"{CLIENTS} x {REQUESTS} requests answered", len(flat) == CLIENTS * REQUESTS,
                len(flat))
        bad = [(st, doc) for _, st, doc in flat if st != 200]
        s.check("all 200", not bad, bad[:3])
        for k, name in enumerate(IMAGES):
            answers = {str(doc["predictions"]) for kk, st, doc in flat if kk == k and st == 200}
            s.check(f"{name}: every answer identical", len(answers) == 1, list(answers)[:2])
            want = offline[env.fixture(name)]
            got = next(doc["predictions"] for kk, st, doc in flat if kk == k and st == 200)
            s.check(f"{name}: equal to onespike-train classify",
                    all(g["label"] == w[0] and g["index"] == w[1]
                        and abs(g["probability"] - w[2]) <= TOL for g, w in zip(got, want))
                    and len(got) == len(want), (got, want))
        ids = {doc["id"] for _, st, doc in flat if st == 200}
        s.check("every request got its own id", len(ids) == len(flat), len(ids))
        n = srv.metric("onespike_requests_total", {"route": "classify", "status": "200"})
        s.check("metrics: classify 200 count is exact", n == CLIENTS * REQUESTS, n)
        s.check("metrics: queue empty, nothing in flight but the scrape",
                srv.metric("onespike_queue_depth") == 0
                and srv.metric("onespike_inflight_requests") == 1)
        s.check("SIGTERM: exit 0", srv.stop() == 0)
    finally:
        srv.kill()
    env.cleanup()
    return s.done()


if __name__ == "__main__":
    raise SystemExit(main())
