#!/usr/bin/python3
"""model_card.py MODEL [--split-report REPORT.json] [--test-accuracy TEXT] > MODEL_CARD.md

Writes the model card of a model trained by `onespike-train fit` from the model file's own
metadata (architecture, preprocessing, labels, training stages) and its report
(MODEL.report.json, written beside it by fit). Numbers come from those files only.

A model retrained on every image (`fit --val-fraction 0`) has no validation figures of its own:
--split-report names the report of the same command run with a validation split, and the card
gives that run's figures as the estimate, saying so."""
import argparse
import json
import os
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


def count_images(folder):
    """JPEGs under folder's class subfolders, or None where the folder is not here."""
    if not folder or not os.path.isdir(folder):
        return None
    n = 0
    for c in os.listdir(folder):
        d = os.path.join(folder, c)
        if os.path.isdir(d):
            n += sum(1 for f in os.listdir(d) if f.lower().endswith((".jpg", ".jpeg")))
    return n


def pct(x):
    return "-" if x is None else "%.1f %%" % (100 * x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--test-accuracy", help="held-out test result, measured elsewhere, with how")
    ap.add_argument("--split-report", help="for a model trained on every image: the report "
                    "(.report.json) of the same command run with a validation split")
    a = ap.parse_args()
    doc, sha = read_model(a.model)
    own = json.load(open(a.model + ".report.json"))
    rep = own
    all_images = own["final"]["validation_engine"]["images"] == 0
    if all_images:
        if not a.split_report:
            sys.exit("model_card.py: %s was trained without a validation split; name the split "
                     "run's report with --split-report" % a.model)
        rep = json.load(open(a.split_report))
    elif a.split_report:
        sys.exit("model_card.py: --split-report is for a model trained on every image; "
                 "%s has its own validation figures" % a.model)
    n_all = count_images(own["config"].get("data"))
    n_val = rep["final"]["validation_engine"]["images"]
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
    w("| parameters | %d |" % own["final"]["parameters"])
    w("| time steps | %d (LIF neurons: spike = membrane > threshold, one step) |" % doc["timesteps"])
    w("| input | RGB JPEG, decoded and resized (%s, area/bilinear) to %dx%d, normalised with "
      "mean %s and std %s (on the [0,1] scale; computed on the training split) |"
      % (inp.get("resize", "stretch"), inp["width"], inp["height"],
         [round(x, 4) for x in inp["mean"]], [round(x, 4) for x in inp["std"]]))
    w("| rasters | TIFF/GeoTIFF, PNG, JPEG 2000: bands %s read as R,G,B, scale %s%s (the model "
      "file's `input.bands` / `input.scale`; `bands=` / `scale=` override them per request) |"
      % (",".join(str(b) for b in inp.get("bands", [1, 2, 3])), inp.get("scale", "none"),
         "" if "bands" in inp or "scale" in inp else " (defaults: not in the file)"))
    w("| labels | %d: %s |" % (len(doc["labels"]), ", ".join(doc["labels"])))
    w("| training command | `%s` |" % tr["command"])
    w("| seed | %s |" % tr["seed"])
    w("| training time | %.0f s (%.1f min) on a 2-core CPU machine |" % (own["seconds"], own["seconds"] / 60))
    w("| training images | %s |" % (
        ("all {:,}".format(n_all) if n_all else "all") if all_images
        else ("{:,} (the rest of the {:,} are the validation split)".format(n_all - n_val, n_all)
              if n_all else "the training split")))
    w("")
    w("## Accuracy")
    w("")
    if all_images:
        w("This model was trained on every image, so it has no validation figures of its own. "
          "The figures below are those of the same command run with a validation split (report "
          "`%s`, command `%s`): the estimate of this model's accuracy. Retraining on all images "
          "changes the weights, so this model's own accuracy can differ by a few images either "
          "way." % (os.path.basename(a.split_report), rep["command"]))
        w("")
    w("Validation split: %d images (a stratified, seeded share of the training images per "
      "class, `--val-fraction %s`); never trained on by the run measured."
      % (n_val, rep["config"]["val_fraction"]))
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
    w("### Spike rate per LIF layer (validation, final stage%s)"
      % (", of the split run's model" if all_images else ""))
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
    w("- Trained on %s: expect confusions between visually close classes (see the per-class "
      "table; e.g. the residential densities)."
      % ("{:,} images".format(n_all if all_images else n_all - n_val) if n_all
         else "the training images"))
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
