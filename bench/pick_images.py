#!/usr/bin/python3
"""pick_images.py DATA N: the benchmark's N input images of the class folders under DATA, one
path a line. Round robin over the sorted classes, taking each class's highest-numbered JPEG
first, then the next: deterministic, every class present (UC Merced's 21 classes and N = 50: 3
images for the first 8, 2 for the others). bench/run.sh and bench/engine_ab.sh read the same."""
import os
import sys

root, n = sys.argv[1], int(sys.argv[2])
cls = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
files = {c: sorted(f for f in os.listdir(os.path.join(root, c)) if f.lower().endswith(".jpg"))
         for c in cls}
out, k = [], 0
while len(out) < n and k < max(len(v) for v in files.values()):
    for c in cls:
        if len(out) < n and k < len(files[c]):
            out.append(os.path.join(root, c, files[c][-1 - k]))
    k += 1
print("\n".join(out))
