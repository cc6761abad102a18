#!/usr/bin/python3
"""eval_http.py - accuracy of a served model, measured over HTTP the way issue 5 measures it.

    python3 scripts/eval_http.py --data DIR [--url http://127.0.0.1:8080] [--model ucm]
                                 [--token TOKEN] [--tta N] [--json]

POSTs every JPEG of DIR (one subfolder per class, named as the model's labels; e.g. UC Merced's
held-out test split) as the body of /v2/models/{model}/classify?top_k=5 and reports top-1 and
top-5 accuracy, per-class accuracy and the confusion matrix (--tta N: with &tta=N, each image
in N test-time views, as `onespike-train eval --tta N`). With --json: one object with keys
top1, top5 (fractions), images, failed, per_class, confusion_labels, confusion - the shape of
`onespike-train eval --json`, so the two can be compared. An image the server refuses (for
example a corrupt JPEG) is counted as failed and named on stderr; the others go on. Standard
library only; exit status 0 when every image was answered, 1 otherwise, 2 on a usage error or
when the server or model cannot be reached.
"""
import argparse
import http.client
import json
import os
import sys
import urllib.parse

TOP_K = 5
TIMEOUT_S = 60
JPEG_SUFFIXES = (".jpg", ".jpeg")


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


def images_of(root, labels):
    """[(path, class index)] for every JPEG under root/<label>/, sorted; dies on a folder the
    model has no label for, since its images could never be counted right."""
    out = []
    for cls in sorted(os.listdir(root)):
        d = os.path.join(root, cls)
        if not os.path.isdir(d):
            continue
        if cls not in labels:
            sys.exit(f"eval_http: folder {d} is not one of the model's labels ({', '.join(labels)})")
        for f in sorted(os.listdir(d)):
            if f.lower().endswith(JPEG_SUFFIXES):
                out.append((os.path.join(d, f), labels.index(cls)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder of class subfolders of JPEGs")
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    ap.add_argument("--model", default="ucm", help="model name on the server")
    ap.add_argument("--token", help="bearer token, if the server requires one")
    ap.add_argument("--tta", type=int, choices=(1, 2, 4, 8), default=None,
                    help="test-time views per image (?tta=N; default: the server's --tta)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = ap.parse_args()

    u = urllib.parse.urlsplit(a.url)
    if u.scheme != "http" or not u.hostname:
        sys.exit(f"eval_http: --url {a.url}: expected http://HOST[:PORT]")
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=TIMEOUT_S)
    auth = {"Authorization": "Bearer " + a.token} if a.token else {}
    model = urllib.parse.quote(a.model, safe="")
    try:
        st, body = request(conn, "GET", f"/v2/models/{model}", headers=auth)
    except OSError as e:
        print(f"eval_http: cannot reach {a.url}: {e}", file=sys.stderr)
        return 2
    if st != 200:
        print(f"eval_http: model {a.model} on {a.url}: HTTP {st} {body[:200]!r}", file=sys.stderr)
        return 2
    labels = json.loads(body)["labels"]
    if not os.path.isdir(a.data):
        sys.exit(f"eval_http: no folder {a.data}")
    items = images_of(a.data, labels)
    if not items:
        sys.exit(f"eval_http: no JPEGs in the class folders of {a.data}")

    k = len(labels)
    conf = [[0] * k for _ in range(k)]
    seen = [0] * k
    top1 = top5 = failed = 0
    headers = dict(auth, **{"Content-Type": "image/jpeg"})
    for path, truth in items:
        with open(path, "rb") as f:
            jpeg = f.read()
        tta = f"&tta={a.tta}" if a.tta else ""
        st, body = request(conn, "POST",
                           f"/v2/models/{model}/classify?top_k={min(TOP_K, k)}{tta}", jpeg,
                           headers)
        if st != 200:
            failed += 1
            print(f"eval_http: {path}: HTTP {st} {body[:200].decode(errors='replace')}",
                  file=sys.stderr)
            continue
        pred = [p["index"] for p in json.loads(body)["predictions"]]
        seen[truth] += 1
        conf[truth][pred[0]] += 1
        top1 += pred[0] == truth
        top5 += truth in pred
    n = sum(seen)
    per_class = {labels[c]: conf[c][c] / seen[c] for c in range(k) if seen[c]}
    res = {"model": a.model, "url": a.url, "top1": top1 / n if n else 0.0,
           "top5": top5 / n if n else 0.0, "images": n, "failed": failed,
           "per_class": per_class, "confusion_labels": labels, "confusion": conf}
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{a.model} at {a.url} on {a.data}: top-1 {100 * res['top1']:.2f} %, "
              f"top-5 {100 * res['top5']:.2f} % ({n} images, {failed} failed)")
        for name, acc in per_class.items():
            print(f"  {name:<24} {100 * acc:6.1f} %")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
