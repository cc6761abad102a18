#!/usr/bin/python3
"""model_card.py MODEL [--test-accuracy TEXT] > MODEL_CARD.md

Writes the model card of a model trained by `onespike-train fit` from the model file's own
metadata (architecture, preprocessing, labels, training stages) and its report
(MODEL.report.json, written beside it by fit). Numbers come from those files only."""
import argparse
import json
import struct
import sys

CITATION = ('Yi Yang and Shawn Newsam, "Bag-Of-Visual-Words and Spatial Extensions for Land-Use '
            'Classification", ACM SIGSPATIAL International Conference on Advances in Geographic '
            'Information Systems (ACM GIS), 2010.')


def read_model(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    meta = header["__metadata__"]
    return json.loads(meta["onespike.model"]), meta["onespike.sha256"]


def pct(x):
    return "-" if x is None else "%.1f %%" % (100 * x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--test-accuracy", help="held-out test result, measured elsewhere, with how")
    a = ap.parse_args()
    doc, sha = read_model(a.model)
    rep = json.load(open(a.model + ".report.json"))
    tr, inp = doc["training"], doc["input"]
    arch = doc.get("arch", {})
    out = []
    w = out.append
    w("# Model card: %s" % doc["name"])
    w("")
    w("A one-time-step spiking neural network for remote sensing scene classification, trained "
      "by `onespike-train fit` (spatio-temporal pruning after Li et al., Remote Sensing "
      "16(17):3200, 2024; our reconstruction of the details the paper leaves open is in "
      "docs/DESIGN-NOTES.md).")
    w("")
    w("| | |")
    w("|---|---|")
    w("| file | `%s`, sha256 of the tensors `%s` |" % (a.model.split("/")[-1], sha))
    w("| architecture | %s, width x%s, %d Unit(s) at stage %s during training, removed before export |"
      % (arch.get("name"), arch.get("width_mult"), arch.get("units_trained", 0), arch.get("unit_at")))
    w("| parameters | %d |" % rep["final"]["parameters"])
    w("| time steps | %d (LIF neurons: spike = membrane > threshold, one step) |" % doc["timesteps"])
    w("| input | RGB JPEG, decoded and resized (%s, area/bilinear) to %dx%d, normalised with "
      "mean %s and std %s (on the [0,1] scale; computed on the training split) |"
      % (inp.get("resize", "stretch"), inp["width"], inp["height"],
         [round(x, 4) for x in inp["mean"]], [round(x, 4) for x in inp["std"]]))
    w("| labels | %d: %s |" % (len(doc["labels"]), ", ".join(doc["labels"])))
    w("| training command | `%s` |" % tr["command"])
    w("| seed | %s |" % tr["seed"])
    w("| training time | %.0f s (%.1f min) on a 2-core CPU machine |" % (rep["seconds"], rep["seconds"] / 60))
    w("")
    w("## Accuracy")
    w("")
    w("Validation split: %d images (a stratified, seeded 10 of the 80 training images per class); "
      "never trained on." % rep["final"]["validation_engine"]["images"])
    w("")
    w("| stage | T | val top-1 | val top-5 |")
    w("|---|---|---|---|")
    for s in rep["stages"]:
        w("| %s | %d | %s | %s |" % (s["stage"], s["timesteps"], pct(s["val_top1"]), pct(s["val_top5"])))
    eng = rep["final"]["validation_engine"]
    w("")
    w("The exported file, run through the inference engine on the validation JPEGs (exactly the "
      "serving path): top-1 %s, top-5 %s." % (pct(eng["top1"]), pct(eng["top5"])))
    w("")
    w("Held-out test split (UC Merced's other 20 images per class, not in this repository): %s"
      % (a.test_accuracy or "not measured by us (the test images are kept outside the project)."))
    w("")
    w("### Per-class validation accuracy")
    w("")
    w("| class | top-1 |")
    w("|---|---|")
    for k, v in eng["per_class"].items():
        w("| %s | %s |" % (k, pct(v)))
    w("")
    w("### Spike rate per LIF layer (validation, final stage)")
    w("")
    w("| layer | spikes per neuron |")
    w("|---|---|")
    for r in rep["stages"][-1].get("spike_rates", []):
        w("| %s | %.4f |" % (r["layer"], r["rate"]))
    w("")
    w("## Intended use and limits")
    w("")
    w("- Scene classification of 1-foot-resolution aerial RGB tiles like UC Merced's (USGS urban "
      "area imagery of US regions), one label per tile among the 21 classes above.")
    w("- Not for other resolutions, sensors (multispectral, SAR), regions or class sets without "
      "retraining (`onespike-train fit` on your own folders); probabilities are not calibrated.")
    w("- Trained on 1,470 images: expect confusions between visually close classes (see the "
      "per-class table; e.g. the residential densities).")
    w("- Runs on CPUs; one time step means one pass through the network per image.")
    w("")
    w("## Data")
    w("")
    w("UC Merced Land Use, training portion (21 classes x 80 images). Please cite: " + CITATION)
    w("The dataset authors describe it as \"a 21 class land use image dataset meant for research "
      "purposes\"; the images come from the USGS National Map Urban Area Imagery collection.")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
