#!/usr/bin/env python3
"""Stratified K-fold cross-validation of one `onespike-train fit` recipe.

    python3 scripts/crossval.py --folds 5 --dir /var/tmp/cv-rsscn7 [--jobs 2] \\
        -- --data DIR --transfer-from models/ucm-msresnet18-t1.safetensors --epochs-finetune 30

Runs `fit --folds K --fold I` for I = 1..K (everything after `--` is passed to fit), each
writing DIR/fold-I.safetensors with its report and work dir; then reads the K reports and
prints validation top-1 and top-5 of the exported model (measured through the inference
engine by fit itself) as mean +- sample standard deviation, and the minutes of each fold.
The summary is written to DIR/crossval.json and DIR/crossval.md (atomically).

Restartable: a fold whose model and report exist is read, not run again (if its recorded
recipe is the one this command trains: otherwise it stops, naming the flags); a fold whose work
dir holds a checkpoint is continued with --resume. --jobs runs that many folds at once (give
fit --threads 1 each on a small machine). Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def default_train():
    for build in ("build-release", "build", "build-test"):
        p = os.path.join(HERE, "..", build, "tools", "onespike-train")
        if os.access(p, os.X_OK):
            return os.path.normpath(p)
    return "onespike-train"


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".crossval.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fold_paths(d, i):
    model = os.path.join(d, "fold-%d.safetensors" % i)
    return model, model + ".report.json", model + ".work", model + ".log"


def fold_command(args, fit_args, i):
    model, _, work, _ = fold_paths(args.dir, i)
    cmd = [args.train, "fit", *fit_args, "--folds", str(args.folds), "--fold", str(i),
           "--out", model, "--workdir", work, "--quiet"]
    if os.path.exists(os.path.join(work, "checkpoint.safetensors")):
        cmd.append("--resume")
    return cmd


# Keys a config may lack, as what their absence means (fit_flags.h: omit_zero). A key absent on
# one side and not listed here (a flag newer than one of the two) is not compared.
ABSENT = {"unit_fade": 0}


def recipe_drift(args, fit_args, i):
    """Keys where fold i's finished run differs from what this command would train (a fold of
    another recipe must not join the mean), as "key: was -> now" strings."""
    cmd = [args.train, "fit", *fit_args, "--folds", str(args.folds), "--fold", str(i),
           "--print-config"]
    now = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    with open(fold_paths(args.dir, i)[1]) as f:
        was = json.load(f)["config"]
    drift = []
    for k in sorted(set(now) | set(was)):
        a, b = was.get(k, ABSENT.get(k, now.get(k))), now.get(k, ABSENT.get(k, was.get(k)))
        if a != b:
            drift.append("%s: %s -> %s" % (k, json.dumps(a), json.dumps(b)))
    return drift


def run_folds(args, fit_args):
    done = [i for i in range(1, args.folds + 1)
            if os.path.exists(fold_paths(args.dir, i)[0]) and
            os.path.exists(fold_paths(args.dir, i)[1])]
    for i in done:
        drift = recipe_drift(args, fit_args, i)
        if drift:
            print("crossval: fold %d in %s was trained with another recipe (%s); use another --dir"
                  % (i, args.dir, "; ".join(drift)), file=sys.stderr)
            return [i]
    todo = [i for i in range(1, args.folds + 1) if i not in done]
    running = {}
    failed = []
    while todo or running:
        while todo and len(running) < args.jobs:
            i = todo.pop(0)
            log = open(fold_paths(args.dir, i)[3], "a")
            cmd = fold_command(args, fit_args, i)
            print("crossval: fold %d/%d: %s" % (i, args.folds, " ".join(cmd)), file=sys.stderr)
            running[i] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
        time.sleep(1)
        for i, (p, log) in list(running.items()):
            if p.poll() is None:
                continue
            log.close()
            del running[i]
            if p.returncode != 0:
                failed.append(i)
                print("crossval: fold %d failed (exit %d); see %s" %
                      (i, p.returncode, fold_paths(args.dir, i)[3]), file=sys.stderr)
            else:
                print("crossval: fold %d done" % i, file=sys.stderr)
    return failed


def summarise(args):
    rows = []
    for i in range(1, args.folds + 1):
        with open(fold_paths(args.dir, i)[1]) as f:
            r = json.load(f)
        v = r["final"]["validation_engine"]
        rows.append({"fold": i, "top1": v["top1"], "top5": v["top5"], "images": v["images"],
                     "minutes": r["seconds"] / 60, "command": r.get("command")})
    # every image is validated by exactly one fold: the folds' confusion matrices add up to one
    # over the whole data set
    labels, pooled = None, None
    for i in range(1, args.folds + 1):
        with open(fold_paths(args.dir, i)[1]) as f:
            v = json.load(f)["final"]["validation_engine"]
        if labels is None:
            labels = v["confusion_labels"]
            pooled = [[0] * len(labels) for _ in labels]
        for a, row in enumerate(v["confusion"]):
            for b, n in enumerate(row):
                pooled[a][b] += n
    per_class = {labels[k]: (pooled[k][k] / sum(pooled[k]) if sum(pooled[k]) else 0.0)
                 for k in range(len(labels))}
    top1 = [r["top1"] for r in rows]
    top5 = [r["top5"] for r in rows]
    sd = (lambda x: statistics.stdev(x) if len(x) > 1 else 0.0)
    out = {"folds": args.folds, "rows": rows,
           "top1_mean": statistics.mean(top1), "top1_sd": sd(top1),
           "top5_mean": statistics.mean(top5), "top5_sd": sd(top5),
           "images": sum(r["images"] for r in rows),
           "minutes_total": sum(r["minutes"] for r in rows),
           "confusion_labels": labels, "confusion": pooled, "per_class": per_class}
    md = ["# Cross-validation (%d folds)" % args.folds, "",
          "Command of fold 1: `%s`" % rows[0]["command"], "",
          "| fold | validation images | top-1 | top-5 | minutes |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append("| %d | %d | %.2f %% | %.2f %% | %.1f |" %
                  (r["fold"], r["images"], 100 * r["top1"], 100 * r["top5"], r["minutes"]))
    md.append("| **mean +- sd** | %d | **%.2f +- %.2f %%** | %.2f +- %.2f %% | %.1f in all |" %
              (out["images"], 100 * out["top1_mean"], 100 * out["top1_sd"],
               100 * out["top5_mean"], 100 * out["top5_sd"], out["minutes_total"]))
    md.append("")
    md.append("sd: sample standard deviation over the folds; each fold's figure is fit's own "
              "evaluation of the exported model through the inference engine.")
    md += ["", "Per class, every image validated once (the folds' confusion matrices added):", "",
           "| class | top-1 | most often taken for |", "|---|---:|---|"]
    for k, name in enumerate(labels):
        wrong = [(n, labels[b]) for b, n in enumerate(pooled[k]) if b != k and n]
        md.append("| %s | %.1f %% | %s |" % (name, 100 * per_class[name],
                                            max(wrong)[1] if wrong else "-"))
    write_atomic(os.path.join(args.dir, "crossval.json"), json.dumps(out, indent=2) + "\n")
    write_atomic(os.path.join(args.dir, "crossval.md"), "\n".join(md) + "\n")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 usage="%(prog)s --folds K --dir DIR [--jobs J] -- FIT FLAGS")
    ap.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    ap.add_argument("--dir", required=True, help="where the folds' models, logs and summary go")
    ap.add_argument("--jobs", type=int, default=1, help="folds run at once (default 1)")
    ap.add_argument("--train", default=default_train(), help="the onespike-train binary")
    ap.add_argument("--summary-only", action="store_true", help="only read finished folds")
    argv = sys.argv[1:]
    fit_args = []
    if "--" in argv:
        k = argv.index("--")
        argv, fit_args = argv[:k], argv[k + 1:]
    args = ap.parse_args(argv)
    if args.folds < 2 or args.jobs < 1:
        ap.error("--folds must be >= 2 and --jobs >= 1")
    for bad in ("--folds", "--fold", "--out", "--workdir", "--resume"):
        if bad in fit_args:
            ap.error("fit flag %s is set by crossval itself" % bad)
    if not args.summary_only and "--data" not in fit_args:
        ap.error("give fit's flags after --, at least --data DIR")
    os.makedirs(args.dir, exist_ok=True)
    if not args.summary_only:
        failed = run_folds(args, fit_args)
        if failed:
            print("crossval: folds %s failed; rerun the same command to continue them" %
                  ", ".join(map(str, failed)), file=sys.stderr)
            return 1
    print(summarise(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
