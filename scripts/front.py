#!/usr/bin/python3
"""front.py ROWS.json OUT.svg [--title T]: the accuracy-latency plot of candidate models.

ROWS.json is what `JSON=ROWS.json scripts/seed_grid.sh GRID --latency` writes: per cell the
validation top-1 of each seed, their mean and sd, and the engine's batch-1 latency. Each cell is
a point at (latency, mean) with a bar of +- 1 sd; the cells no other cell beats on both axes
(faster and at least as accurate) are joined: the front a model is chosen from.
"""
import argparse
import json
from xml.sax.saxutils import escape


def front(rows):
    """The cells not dominated: no other is at least as fast and at least as accurate, and
    strictly better in one."""
    keep = []
    for r in rows:
        beaten = any(o is not r and o["ms"] <= r["ms"] and o["mean"] >= r["mean"]
                     and (o["ms"] < r["ms"] or o["mean"] > r["mean"]) for o in rows)
        if not beaten:
            keep.append(r)
    return sorted(keep, key=lambda r: r["ms"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows")
    ap.add_argument("out")
    ap.add_argument("--title", default="Validation top-1 (mean +- sd over seeds) against batch-1 latency")
    a = ap.parse_args()
    rows = [r for r in json.load(open(a.rows)) if r.get("ms")]
    if not rows:
        raise SystemExit("front.py: no row has a latency (run seed_grid.sh GRID --latency)")
    W, H, L, R, T, B = 720, 440, 70, 30, 40, 60
    lo_ms, hi_ms = 0.0, max(r["ms"] for r in rows) * 1.15
    accs = [r["mean"] + s * (r["sd"] or 0) for r in rows for s in (-1, 1)]
    lo_a, hi_a = min(accs) - 1.0, max(accs) + 1.0
    x = lambda ms: L + (ms - lo_ms) / (hi_ms - lo_ms) * (W - L - R)
    y = lambda acc: T + (hi_a - acc) / (hi_a - lo_a) * (H - T - B)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
         'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="14">%s</text>' % (L, escape(a.title))]
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, H - B, W - R, H - B))
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, T, L, H - B))
    for k in range(6):
        ms = lo_ms + (hi_ms - lo_ms) * k / 5
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%.1f</text>' % (x(ms), H - B + 16, ms))
        acc = lo_a + (hi_a - lo_a) * k / 5
        o.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (L - 6, y(acc) + 4, acc))
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y(acc), W - R, y(acc)))
    o.append('<text x="%d" y="%d" text-anchor="middle">engine latency, batch 1, 1 thread (ms)</text>'
             % ((L + W - R) // 2, H - 20))
    o.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">validation '
             'top-1 (%%)</text>' % ((T + H - B) // 2, (T + H - B) // 2))
    f = front(rows)
    o.append('<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="%s"/>'
             % " ".join("%.1f,%.1f" % (x(r["ms"]), y(r["mean"])) for r in f))
    for r in rows:
        sd = r["sd"] or 0
        cx, cy = x(r["ms"]), y(r["mean"])
        o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555"/>'
                 % (cx, y(r["mean"] - sd), cx, y(r["mean"] + sd)))
        o.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>'
                 % (cx, cy, "#1f77b4" if r in f else "#999"))
        o.append('<text x="%.1f" y="%.1f">%s (%d seeds)</text>'
                 % (cx + 7, cy - 6, escape(r["cell"]), r["seeds"]))
    o.append("</svg>")
    open(a.out, "w").write("\n".join(o) + "\n")
    print("front: " + ", ".join("%s %.1f %% at %.2f ms" % (r["cell"], r["mean"], r["ms"]) for r in f))


if __name__ == "__main__":
    main()
