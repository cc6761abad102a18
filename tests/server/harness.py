"""Shared helpers for the onespike-serve end-to-end tests.

Each test script starts the real server binary on a free loopback port (--port 0; the bound
port is read from the server's "listening" log line), talks HTTP to it with the standard
library, and checks values. Output is TAP-like ("ok N - name"); the exit status is 0 only if
every check passed. Every wait is bounded, so a hung server fails the test instead of
hanging it.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
START_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 60


class Suite:
    """Counts checks; usage: s = Suite(); s.check("name", cond, detail); sys.exit(s.done())."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, name, cond, detail=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {name}" + (f": {detail}" if detail else ""), flush=True)
        return cond

    def done(self):
        print(f"{self.n - self.failed}/{self.n} checks passed", flush=True)
        return 1 if self.failed else 0


class Env:
    """Paths given by meson: server, trainer, fixtures; plus a private temp folder."""

    def __init__(self):
        if len(sys.argv) < 4:
            sys.exit("usage: test.py ONESPIKE_SERVE ONESPIKE_TRAIN FIXTURE_DIR")
        self.serve, self.train, self.fixtures = sys.argv[1:4]
        self.tmp = tempfile.mkdtemp(prefix="onespike-serve-test-")

    def fixture(self, name):
        return os.path.join(self.fixtures, name)

    def read_fixture(self, name):
        with open(self.fixture(name), "rb") as f:
            return f.read()

    def model(self, name, arch="resnet20", width=0.25, size=32, timesteps=1,
              labels="airplane,beach,harbor", threshold=0.1, seed=3):
        """Write an untrained model with onespike-train init; threshold 0.1 makes its answers
        depend on the image (with the default 1.0 no spike reaches the classifier)."""
        path = os.path.join(self.tmp, name + ".safetensors")
        subprocess.run([self.train, "init", "--arch", arch, "--width-mult", str(width),
                        "--input", str(size), "--timesteps", str(timesteps), "--labels", labels,
                        "--threshold", str(threshold), "--seed", str(seed), "--name", name,
                        "--out", path], check=True, stdout=subprocess.DEVNULL, timeout=120)
        return path

    def offline(self, model, images, top_k, extra=()):
        """onespike-train classify --json [extra flags]: {image path: [(label, index,
        probability)]}."""
        out = subprocess.run([self.train, "classify", "--model", model, "--json", "--top-k",
                              str(top_k)] + list(extra) + images, check=True,
                             capture_output=True, text=True, timeout=120).stdout
        res = {}
        for line in out.splitlines():
            d = json.loads(line)
            res[d["image"]] = [(p["label"], p["index"], p["probability"])
                               for p in d["predictions"]]
        return res

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class Server:
    """onespike-serve running on a free loopback port; logs go to a file we can read."""

    def __init__(self, env, args, extra_env=None, name="server", preexec=None):
        self.log_path = os.path.join(env.tmp, name + ".log")
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.update(extra_env or {})
        cmd = [env.serve, "--listen", HOST, "--port", "0"] + args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=e,
                                     preexec_fn=preexec)
        self.port = None
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline and self.port is None:
            for rec in self.records():
                if rec.get("msg") == "listening":
                    self.port = rec["port"]
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n" +
                                   self.log_text())
            time.sleep(0.02)
        if self.port is None:
            self.kill()
            raise RuntimeError("server did not start listening:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def records(self):
        """The JSON log lines so far (a line that is not JSON is a test failure elsewhere)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"not_json": line})
        return out

    def conn(self, timeout=HTTP_TIMEOUT_S):
        return http.client.HTTPConnection(HOST, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """One request; returns (status, headers dict (lower-case names), body bytes)."""
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        st, h, data = self.request(method, path, body, headers, conn)
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = {"not_json": data[:200]}
        return st, h, doc

    def classify(self, image, model="m", top_k=None, headers=None, conn=None):
        q = f"?top_k={top_k}" if top_k is not None else ""
        hd = {"Content-Type": "image/jpeg"}
        hd.update(headers or {})
        return self.json("POST", f"/v2/models/{model}/classify{q}", image, hd, conn)

    def live(self):
        try:
            st, _, doc = self.json("GET", "/v2/health/live")
            return st == 200 and doc == {"live": True}
        except OSError:
            return False

    def metric(self, name, labels=None):
        """Value of one sample of /metrics (None if absent)."""
        _, _, text = self.request("GET", "/metrics")
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                       if labels else "")
        for line in text.decode().splitlines():
            if line.startswith("#"):
                continue
            key, _, val = line.rpartition(" ")
            if key == want:
                return float(val)
        return None

    def stop(self, sig=signal.SIGTERM, timeout=60, signal_it=True):
        """Signal the server (unless signal_it is False: it was signalled already, and a second
        signal would cut its drain short) and wait; returns its exit status (None if it had to
        be killed)."""
        if self.proc.poll() is None:
            if signal_it:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self.log.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def raw_exchange(port, data, timeout=10):
    """Send raw bytes on a fresh connection and return the first response (complete once its
    Content-Length bytes arrived), or what came before the server closed or the timeout."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                n = [ln.split(b":", 1)[1] for ln in head.split(b"\r\n")[1:]
                     if ln.lower().startswith(b"content-length:")]
                if n and len(body) >= int(n[0]):
                    break
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def read_until_close(sock, timeout=30):
    """Everything the server sends until it closes the connection (what came before a reset or
    the timeout, if one of those ends it instead)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return out


def parse_raw_response(raw):
    """(status, headers, body) of a raw HTTP/1.1 response with Content-Length."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", len(body)))
    return status, hdrs, body[:n]


def patch_sof_dims(jpeg, width, height):
    """A copy of jpeg whose first SOF0/SOF2 segment claims width x height."""
    b = bytearray(jpeg)
    i = 2
    while i + 4 < len(b):
        if b[i] != 0xFF:
            raise ValueError("not at a JPEG marker")
        marker, seglen = b[i + 1], (b[i + 2] << 8) | b[i + 3]
        if marker in (0xC0, 0xC1, 0xC2):
            b[i + 5:i + 7] = height.to_bytes(2, "big")
            b[i + 7:i + 9] = width.to_bytes(2, "big")
            return bytes(b)
        i += 2 + seglen
    raise ValueError("no SOF segment")


def multipart(fields, boundary="onespike-test-boundary-7d1f"):
    """Encode [(name, filename or None, content-type or None, bytes)] as multipart/form-data."""
    out = b""
    for name, filename, ctype, data in fields:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename:
            disp += f'; filename="{filename}"'
        out += disp.encode() + b"\r\n"
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"
