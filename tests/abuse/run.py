#!/usr/bin/env python3
"""Abuse run of onespike-serve: each hostile-client class of issue 14 against a release server
on loopback, with plain good traffic alongside, then a table: case | expected | observed | pass.

Not part of the default test run. Bounded: about a minute of wall time, every wait capped.
Loopback only. Exit status 0 only if every row passes.

    python3 tests/abuse/run.py BUILD_DIR      (a release build: meson setup -Dbuildtype=release)
"""
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
from harness import HOST, parse_raw_response, read_until_close  # noqa: E402

MAX_CONNS = 32
BOUND_S = 30
HEAD = b"POST /v2/models/m/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"


def start(build, tmp, model):
    log = open(os.path.join(tmp, "server.log"), "wb")
    p = subprocess.Popen([os.path.join(build, "server", "onespike-serve"), "--listen", HOST,
                          "--port", "0", "--model", f"m={model}", "--max-conns", str(MAX_CONNS),
                          "--header-timeout", "3", "--body-timeout", "4", "--conn-timeout", "60",
                          "--max-body", "2M", "--body-budget", "64M", "--workers", "1"],
                         stdout=log, stderr=log)
    for _ in range(600):
        time.sleep(0.05)
        for line in open(log.name):
            d = json.loads(line)
            if d.get("msg") == "listening":
                return p, d["port"], log.name
    raise SystemExit("server did not start")


def status_of(raw):
    return parse_raw_response(raw)[0] if raw.startswith(b"HTTP/") else ("closed" if not raw
                                                                         else "garbled")


def is_json_error(raw):
    try:
        return "error" in json.loads(parse_raw_response(raw)[2])
    except ValueError:
        return False


class Good(threading.Thread):
    """Plain classify traffic on keep-alive connections for the whole run."""

    def __init__(self, port, jpeg):
        super().__init__(daemon=True)
        self.port, self.jpeg = port, jpeg
        self.ok = self.shed = self.other = 0
        self.stop = threading.Event()
        self.pause = threading.Event()  # set: no connection of ours open
        self.paused = threading.Event()

    def run(self):
        while not self.stop.is_set():
            if self.pause.is_set():
                self.paused.set()
                time.sleep(0.01)
                continue
            self.paused.clear()
            try:
                c = http.client.HTTPConnection(HOST, self.port, timeout=BOUND_S)
                for _ in range(20):
                    c.request("POST", "/v2/models/m/classify", self.jpeg,
                              {"Content-Type": "image/jpeg"})
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        self.ok += 1
                    elif r.status == 503 and r.getheader("Retry-After"):
                        self.shed += 1  # every slot taken by the attack: refused, not hung
                        break
                    else:
                        self.other += 1
                c.close()
            except (OSError, http.client.HTTPException):
                self.other += 1
            time.sleep(0.01)


def trickle(k, data, stop, every=0.1):
    for i in range(len(data)):
        if stop.is_set():
            return
        try:
            k.send(data[i:i + 1])
        except OSError:
            return
        time.sleep(every)


def door_cpu(pid):
    """CPU seconds used by the server's door thread (named onespike-door)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() != "onespike-door":
                continue
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def live(port):
    try:
        c = http.client.HTTPConnection(HOST, port, timeout=BOUND_S)
        c.request("GET", "/v2/health/live")
        r = c.getresponse()
        r.read()
        c.close()
        return r.status == 200
    except OSError:
        return False


def metrics(port):
    c = http.client.HTTPConnection(HOST, port, timeout=BOUND_S)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def rss(port):
    c = http.client.HTTPConnection(HOST, port, timeout=BOUND_S)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1])
    return 0.0


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        return print(__doc__) or 0
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="onespike-abuse-")
    model = os.path.join(tmp, "m.safetensors")
    subprocess.run([os.path.join(build, "tools", "onespike-train"), "init", "--arch", "resnet20",
                    "--width-mult", "0.25", "--input", "32", "--labels", "a,b,c", "--threshold",
                    "0.1", "--name", "m", "--out", model], check=True, stdout=subprocess.DEVNULL)
    jpeg = open(os.path.join(HERE, "..", "fixtures", "ucm_beach00.jpg"), "rb").read()
    proc, port, log = start(build, tmp, model)
    rows = []

    def row(case, expected, observed, ok):
        rows.append((case, expected, str(observed), "pass" if ok else "FAIL"))

    good = Good(port, jpeg)
    good.start()
    rss0 = rss(port)

    # 1a. heads trickled a byte at a time on every slot
    stop = threading.Event()
    # MAX_CONNS - 1 attackers: the good client keeps one ordinary slot, health uses the reserve
    socks = [socket.create_connection((HOST, port)) for _ in range(MAX_CONNS - 1)]
    time.sleep(0.2)
    head = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n"
    ts = [threading.Thread(target=trickle, args=(k, head, stop), daemon=True) for k in socks]
    for t in ts:
        t.start()
    time.sleep(1)
    row("health while max-conns heads trickle", "200", 200 if live(port) else "no answer",
        live(port))
    t0 = time.time()
    outs = [read_until_close(k, timeout=BOUND_S) for k in socks]
    stop.set()
    row("trickled heads (header-timeout 3 s)", "closed <= 3 s + tick",
        f"{sum(1 for o in outs if not o)}/{len(outs)} closed in {time.time() - t0 + 1:.1f}s",
        all(not o for o in outs) and time.time() - t0 < BOUND_S)
    for k in socks:
        k.close()

    # 1b. bodies trickled a byte at a time
    stop = threading.Event()
    socks = [socket.create_connection((HOST, port)) for _ in range(MAX_CONNS - 1)]
    time.sleep(0.2)
    for k in socks:
        k.sendall(HEAD + b"Content-Length: 1000000\r\n\r\n")
    ts = [threading.Thread(target=trickle, args=(k, b"\xff" * 100000, stop), daemon=True)
          for k in socks]
    for t in ts:
        t.start()
    time.sleep(1)
    ok_live = live(port)
    row("health while max-conns bodies trickle", "200", 200 if ok_live else "no answer", ok_live)
    outs = [read_until_close(k, timeout=BOUND_S) for k in socks]
    stop.set()
    sts = [status_of(o) for o in outs]
    row("trickled bodies (body-timeout 4 s)", "408 JSON",
        f"{sts.count(408)}/{len(sts)} 408", all(s == 408 for s in sts) and
        all(is_json_error(o) for o in outs))
    for k in socks:
        k.close()

    # 2. half-close mid-body, many times
    t0 = time.time()
    freed = 0
    stuck = []
    for _ in range(3 * MAX_CONNS):
        k = socket.create_connection((HOST, port))
        k.sendall(HEAD + b"Content-Length: 100000\r\n\r\n" + b"\xff" * 500)
        k.shutdown(socket.SHUT_WR)
        t1 = time.time()
        got = read_until_close(k, timeout=3)
        if not got and time.time() - t1 < 3:
            freed += 1
        else:  # what a connection that was not simply closed received (or that it timed out)
            stuck.append(got[:160] or "nothing, not closed within 3 s")
        k.close()
    row("half-close mid-body x3 max-conns", "slot freed at once (< 3 s each)",
        f"{freed}/{3 * MAX_CONNS} freed, {time.time() - t0:.1f}s" +
        (f", got {stuck[0]!r}" if stuck else ""), freed == 3 * MAX_CONNS)

    # 3. beyond max-conns (+ the reserve of 8): immediate 503. The good client pauses: its
    # connection coming and going would free the last slot for the probe at random moments.
    good.pause.set()
    good.paused.wait(BOUND_S)
    for _ in range(BOUND_S * 10):  # the good client's last close reaches the server
        open_before = int(metrics(port)["onespike_connections_open"])
        if open_before == 1:
            break
        time.sleep(0.1)
    held = [socket.create_connection((HOST, port)) for _ in range(MAX_CONNS + 8)]
    time.sleep(0.5)
    for _ in range(20):  # the scrape's own connection may still have held a slot: take its place
        refused = [k for k in held if select.select([k], [], [], 0)[0]]
        if not refused:
            break
        for k in refused:
            k.close()
            held.remove(k)
            held.append(socket.create_connection((HOST, port)))
        time.sleep(0.2)
    k = socket.create_connection((HOST, port), timeout=BOUND_S)
    k.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    t0 = time.time()
    raw = read_until_close(k, timeout=BOUND_S)
    k.close()
    h = parse_raw_response(raw)[1] if raw else {}
    row("connection beyond max-conns + reserve", "503 JSON Retry-After",
        f"{status_of(raw)} in {time.time() - t0:.2f}s",
        status_of(raw) == 503 and "retry-after" in h and is_json_error(raw))
    row("open connections before the probe (no drift)", "1 (the scrape)", open_before,
        open_before == 1)
    for k in held:
        k.close()
    good.pause.clear()
    time.sleep(1)

    # 6. memory with max-conns connections each holding most of a 2 MB body
    socks = [socket.create_connection((HOST, port)) for _ in range(MAX_CONNS - 1)]
    time.sleep(0.2)
    for k in socks:
        k.sendall(HEAD + b"Content-Length: 2097152\r\n\r\n" + b"\xff" * 2000000)
    time.sleep(1)
    rss_with_bodies = rss(port)
    row("RSS, max-conns bodies of 2 MB in flight", "<= budget 64M + base",
        f"{rss_with_bodies / 2**20:.0f} MiB (idle {rss0 / 2**20:.0f})",
        rss_with_bodies < rss0 + 64 * 2**20 + 16 * 2**20)
    for k in socks:
        k.close()
    time.sleep(1)

    # 4. framing
    n = len(jpeg)
    cases = [
        ("two different Content-Length",
         HEAD + f"Content-Length: {n}\r\nContent-Length: {n - 9}\r\n\r\n".encode() + jpeg, 400),
        ("Transfer-Encoding gzip + CL",
         HEAD + f"Transfer-Encoding: gzip\r\nContent-Length: {n}\r\n\r\n".encode() + jpeg, 400),
        ("chunked + Content-Length",
         HEAD + f"Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n".encode(), 400),
        ("%00 in path", b"GET /v2/health/live%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ]
    for name, data, want in cases:
        k = socket.create_connection((HOST, port), timeout=BOUND_S)
        k.sendall(data)
        raw = read_until_close(k, timeout=BOUND_S)
        k.close()
        row(name, f"{want} JSON, one answer", status_of(raw),
            status_of(raw) == want and is_json_error(raw) and raw.count(b"HTTP/1.1 ") == 1)

    # 5. malformed or over-long heads: our JSON, first request (the door) and keep-alive
    live_head = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
    bad_heads = [
        ("414 target 5 KiB", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True),
        ("414 request line 64 KiB unended", b"GET /" + b"a" * 65536, 414, False),
        ("431 head 20 KiB", live_head + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n", 431, True),
        ("431 head 40 KiB (keep-alive: libmicrohttpd's own, HTML)",
         live_head + b"X-Pad: " + b"a" * 40000 + b"\r\n\r\n", 431, False),
        ("431 65 header fields", live_head + b"".join(b"X-%d: v\r\n" % i for i in range(64)) +
         b"\r\n", 431, True),
        ("431 Cookie of 200 cookies", live_head + b"Cookie: " + b";".join(b"c=1"
                                                                        for _ in range(200)) +
         b"\r\n\r\n", 431, True),
        ("505 HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, False),
        ("505 HTTP/1.2", b"GET /v2/health/live HTTP/1.2\r\nHost: x\r\n\r\n", 505, True),
        ("400 Content-Length abc", HEAD + b"Content-Length: abc\r\n\r\n", 400, False),
        ("413 Content-Length 2^70", HEAD + b"Content-Length: 1180591620717411303424\r\n\r\n",
         413, False),
        ("400 HTTP/1.1 without Host", b"GET /v2/health/live HTTP/1.1\r\n\r\n", 400, True),
        ("400 raw NUL in a header value", live_head + b"X-A: a\x00b\r\n\r\n", 400, True),
        ("400 raw NUL in the target", b"GET /v2/health/live\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
         400, True),
        ("400 control byte in a value", live_head + b"X-A: \x1b]0;x\x07\r\n\r\n", 400, True),
        ("400 bare CR", live_head + b"X-A: a\rX-B: b\r\n\r\n", 400, True),
        ("400 no colon", live_head + b"X-A\r\n\r\n", 400, False),
        ("400 space before colon", live_head + b"Host : y\r\n\r\n", 400, True),
        ("400 obs-fold", live_head + b"X-A: a\r\n\tb\r\n\r\n", 400, True),
    ]
    for name, data, want, keep_alive in bad_heads:
        k = socket.create_connection((HOST, port), timeout=BOUND_S)
        try:
            k.sendall(data)
        except OSError:
            pass
        raw = read_until_close(k, timeout=BOUND_S)
        k.close()
        row("first head: " + name, f"{want} JSON", status_of(raw),
            status_of(raw) == want and is_json_error(raw))
        if not keep_alive:
            continue
        k = socket.create_connection((HOST, port), timeout=BOUND_S)
        k.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"{\"live\":true}" not in first:
            c = k.recv(4096)
            if not c:
                break
            first += c
        try:
            k.sendall(data)
        except OSError:
            pass
        raw = read_until_close(k, timeout=BOUND_S)
        k.close()
        row("keep-alive head: " + name, f"{want} JSON, closed", status_of(raw),
            status_of(first) == 200 and status_of(raw) == want and is_json_error(raw))
    # a burst of bad heads (more than the door lingers at once): answered or reset, never stuck
    socks = []
    for _ in range(200):
        k = socket.create_connection((HOST, port), timeout=BOUND_S)
        k.sendall(b"GET / HTTP/1.1\r\nX-A: \x00\r\n\r\n")
        socks.append(k)
    outs = [read_until_close(k, timeout=BOUND_S) for k in socks]
    for k in socks:
        k.close()
    answered = sum(1 for o in outs if status_of(o) == 400 and is_json_error(o))
    row("200 bad heads in a burst", "400 JSON (or reset), live", f"{answered}/200 JSON",
        answered > 0 and live(port))
    # half heads held on every slot: the door sleeps (edge-triggered), cut at header-timeout
    socks = [socket.create_connection((HOST, port)) for _ in range(MAX_CONNS - 1)]
    for k in socks:
        k.sendall(b"GET /v2/health/live HTTP/1.1\r\nHo")
    time.sleep(0.3)
    cpu0 = door_cpu(proc.pid)
    time.sleep(2)
    cpu1 = door_cpu(proc.pid)
    row("door CPU, max-conns half heads held 2 s", "< 0.1 s", f"{cpu1 - cpu0:.2f} s",
        cpu1 - cpu0 < 0.1)
    outs = [read_until_close(k, timeout=BOUND_S) for k in socks]
    row("half heads held (header-timeout 3 s)", "closed", f"{sum(not o for o in outs)}/"
        f"{len(outs)} closed", all(not o for o in outs))
    for k in socks:
        k.close()
    # a head in 40 pieces, 50 ms apart
    k = socket.create_connection((HOST, port), timeout=BOUND_S)
    k.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-P: " + \
        b"p" * 100 + b"\r\n\r\n"
    for i in range(0, len(data), 4):
        k.sendall(data[i:i + 4])
        time.sleep(0.05)
    raw = read_until_close(k, timeout=BOUND_S)
    k.close()
    row("a head in 40 pieces", "200", status_of(raw), status_of(raw) == 200)

    # 8. chunked
    c = http.client.HTTPConnection(HOST, port, timeout=BOUND_S)
    c.request("POST", "/v2/models/m/classify", body=iter([jpeg[:5000], jpeg[5000:]]),
              headers={"Content-Type": "image/jpeg"}, encode_chunked=True)
    r = c.getresponse()
    r.read()
    c.close()
    row("chunked upload (generator body)", "200", r.status, r.status == 200)
    k = socket.create_connection((HOST, port), timeout=BOUND_S)
    k.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(140):  # 140 x 16 KB > 2 MB
        try:
            k.sendall(b"4000\r\n" + b"\xff" * 16384 + b"\r\n")
        except OSError:
            break
    raw = read_until_close(k, timeout=BOUND_S)
    k.close()
    row("chunked over max-body", "413 JSON", status_of(raw),
        status_of(raw) == 413 and is_json_error(raw))

    # 7. SIGHUP
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    alive = proc.poll() is None and live(port)
    row("SIGHUP", "logged, still serving", "serving" if alive else "died", alive)

    good.stop.set()
    good.join(timeout=BOUND_S)
    m = metrics(port)
    cut = {r: int(m[f'onespike_connections_closed_total{{reason="{r}"}}'])
           for r in ("header_timeout", "body_timeout", "half_close")}
    refused = {r: int(m[f'onespike_connections_refused_total{{reason="{r}"}}'])
               for r in ("max_conns", "budget", "bad_head")}
    row("cuts counted (header, body, half-close)", f">= {MAX_CONNS - 1}, {MAX_CONNS - 1}, "
        f"{3 * MAX_CONNS}", f"{cut['header_timeout']}, {cut['body_timeout']}, "
        f"{cut['half_close']}; refused {refused}",
        cut["header_timeout"] >= MAX_CONNS - 1 and cut["body_timeout"] >= MAX_CONNS - 1 and
        cut["half_close"] >= 3 * MAX_CONNS and refused["max_conns"] >= 1)
    row("good traffic alongside", "200 (503+Retry-After when full)",
        f"{good.ok} ok, {good.shed} shed, {good.other} other", good.ok > 0 and good.other == 0)
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed"
    row("SIGTERM at the end", "exit 0", rc, rc == 0)

    w = [max(len(r[i]) for r in rows + [("case", "expected", "observed", "pass")])
         for i in range(4)]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in
                            enumerate(("case", "expected", "observed", "pass"))) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        print("| " + " | ".join(r[i].ljust(w[i]) for i in range(4)) + " |")
    print(f"{sum(r[3] == 'pass' for r in rows)}/{len(rows)} rows pass, "
          f"{time.time() - t_start:.0f} s")
    return 0 if all(r[3] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
