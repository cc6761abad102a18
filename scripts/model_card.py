#!/usr/bin/python3
"""model_card.py MODEL [--split-report REPORT.json] [--test-accuracy TEXT] > MODEL_CARD.md

Writes the model card of a model trained by `onespike-train fit` from the model file's own
metadata (architecture, preprocessing, labels, training stages) and its report
(MODEL.report.json, written beside it by fit). Numbers come from those files only.

A model retrained on every image (`fit --val-fraction 0`) has no validation figures of its own:
--split-report names the report of the same command run with a validation split, or --crossval
the summary (crossval.json) of scripts/crossval.py over the same command's folds, and the card
gives those figures as the estimate, saying so. --dataset (default: guessed from the training
folder's name) selects the data set's description and citation."""
import argparse
import json
import os
import struct
import sys

DATASETS = {
    "ucmerced": {
        "test": "UC Merced's other 20 images per class",
        "use": "1-foot-resolution aerial RGB tiles like UC Merced's (USGS urban area imagery of "
               "US regions)",
        "data": "UC Merced Land Use, training portion (21 classes x 80 images). Please cite: "
                'Yi Yang and Shawn Newsam, "Bag-Of-Visual-Words and Spatial Extensions for '
                'Land-Use Classification", ACM SIGSPATIAL International Conference on Advances '
                "in Geographic Information Systems (ACM GIS), 2010. The dataset authors describe "
                'it as "a 21 class land use image dataset meant for research purposes"; the '
                "images come from the USGS National Map Urban Area Imagery collection.",
    },
    "aid": {
        "test": "AID's other 80 % of each class (8,000 images)",
        "use": "Google Earth RGB scenes like AID's (0.5-8 m per pixel, here as 150x150 "
               "downscaled copies of the 600x600 originals)",
        "data": "AID, the Aerial Image Dataset, training portion: a stratified 20 % of each of "
                "its 30 classes (2,000 of 10,000 images, the 20 % training-ratio protocol), "
                "downscaled to 150x150 in the copy used. Please cite: Gui-Song Xia, Jingwen Hu, "
                "Fan Hu, Baoguang Shi, Xiang Bai, Yanfei Zhong, Liangpei Zhang, Xiaoqiang Lu, "
                '"AID: A Benchmark Data Set for Performance Evaluation of Aerial Scene '
                'Classification", IEEE Transactions on Geoscience and Remote Sensing 55(7), 2017. '
                "The images come from Google Earth and are for research use.",
    },
    "rsscn7": {
        "test": None,
        "use": "400x400 RGB scenes like RSSCN7's (Google Earth, 4 scales)",
        "data": "RSSCN7, a 700-image subset (7 classes x 100, every 4th file of each class). "
                "Please cite: Qin Zou, Lihao Ni, Tong Zhang, Qian Wang, \"Deep Learning Based "
                'Feature Selection for Remote Sensing Scene Classification", IEEE Geoscience and '
                "Remote Sensing Letters 12(11):2321-2325, 2015. Research use only.",
    },
}


def guess_dataset(folder):
    name = os.path.basename(os.path.normpath(folder or "")).lower()
    for k in DATASETS:
        if name.startswith(k):
            return k
    return "ucmerced"


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
            n += sum(1 for f in os.listdir(d)
                     if f.lower().endswith((".jpg", ".jpeg", ".tif", ".tiff", ".png", ".jp2")))
    return n


def pct(x):
    return "-" if x is None else "%.1f %%" % (100 * x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--test-accuracy", help="held-out test result, measured elsewhere, with how")
    ap.add_argument("--split-report", help="for a model trained on every image: the report "
                    "(.report.json) of the same command run with a validation split")
    ap.add_argument("--crossval", help="for a model trained on every image: crossval.json of "
                    "scripts/crossval.py over the same command's folds")
    ap.add_argument("--dataset", choices=sorted(DATASETS), help="the training data set "
                    "(default: from the training folder's name)")
    a = ap.parse_args()
    doc, sha = read_model(a.model)
    own = json.load(open(a.model + ".report.json"))
    ds = DATASETS[a.dataset or guess_dataset(own["config"].get("data"))]
    rep = own
    cv = None
    all_images = own["final"]["validation_engine"]["images"] == 0
    if a.split_report and a.crossval:
        sys.exit("model_card.py: give --split-report or --crossval, not both")
    if all_images:
        if not a.split_report and not a.crossval:
            sys.exit("model_card.py: %s was trained without a validation split; name the split "
                     "run's report with --split-report, or the folds' summary with --crossval"
                     % a.model)
        if a.crossval:
            cv = json.load(open(a.crossval))
            rep = json.load(open(os.path.join(os.path.dirname(a.crossval),
                                              "fold-1.safetensors.report.json")))
        else:
            rep = json.load(open(a.split_report))
    elif a.split_report or a.crossval:
        sys.exit("model_card.py: --split-report and --crossval are for a model trained on every "
                 "image; %s has its own validation figures" % a.model)
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
    if arch.get("continued_from") and own["config"].get("new_head"):
        w("| transferred from | `%s`: every layer kept but the classifier, which was trained anew "
          "for these labels in the T = 1 fine-tune%s; the input normalisation is that model's |"
          % (os.path.basename(arch["continued_from"]),
             " (stem and stages 1..%d frozen)" % own["config"]["freeze_stages"]
             if own["config"].get("freeze_stages") else ""))
    elif arch.get("continued_from"):
        w("| continued from | `%s` (its T = 1 fine-tune continued on these images) |"
          % os.path.basename(arch["continued_from"]))
    w("| parameters | %d |" % own["final"]["parameters"])
    w("| time steps | %d (LIF neurons: spike = membrane > threshold, one step) |" % doc["timesteps"])
    w("| input | RGB JPEG, decoded and resized (%s, area/bilinear) to %dx%d, normalised with "
      "mean %s and std %s (on the [0,1] scale; computed on %s) |"
      % (inp.get("resize", "stretch"), inp["width"], inp["height"],
         [round(x, 4) for x in inp["mean"]], [round(x, 4) for x in inp["std"]],
         "the source model's training split" if arch.get("continued_from")
         else "the training split"))
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
    if cv:
        w("This model was trained on every image, so it has no validation figures of its own. "
          "The estimate of its accuracy is **%d-fold cross-validation** of the same command "
          "(`scripts/crossval.py`: each fold trained on the other folds and validated on its "
          "own, every image validated once): **top-1 %.2f +- %.2f %%** (mean +- sample sd over "
          "the folds), top-5 %.2f +- %.2f %%, %d validation images in all."
          % (cv["folds"], 100 * cv["top1_mean"], 100 * cv["top1_sd"], 100 * cv["top5_mean"],
             100 * cv["top5_sd"], cv["images"]))
        w("")
        w("| fold | validation images | top-1 | top-5 | minutes |")
        w("|---|---|---|---|---|")
        for r in cv["rows"]:
            w("| %d | %d | %s | %s | %.1f |" % (r["fold"], r["images"], pct(r["top1"]),
                                                pct(r["top5"]), r["minutes"]))
        w("")
        w("The stage table and spike rates below are those of fold 1%s."
          % ("" if cv.get("per_class") else ", and so is the per-class table"))
        w("")
    elif all_images:
        w("This model was trained on every image, so it has no validation figures of its own. "
          "The figures below are those of the same command run with a validation split (report "
          "`%s`, command `%s`): the estimate of this model's accuracy. Retraining on all images "
          "changes the weights, so this model's own accuracy can differ by a few images either "
          "way." % (os.path.basename(a.split_report), rep["command"]))
        w("")
    if rep["config"].get("folds"):
        w("Validation: fold %d of %d (%d images), never trained on by the run measured."
          % (rep["config"]["fold"], rep["config"]["folds"], n_val))
    else:
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
    if ds["test"]:
        w("Held-out test split (%s, not in this repository): %s"
          % (ds["test"], a.test_accuracy or "not measured by us (the test images are kept "
                                             "outside the project)."))
    else:
        w("No held-out test split exists for this data set here; the validation figures are the "
          "estimate.")
    w("")
    pooled = cv.get("per_class") if cv else None
    w("### Per-class accuracy over the folds (every image validated once)" if pooled
      else "### Per-class validation accuracy")
    w("")
    w("| class | top-1 |")
    w("|---|---|")
    for k, v in (pooled or eng["per_class"]).items():
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
    w("- Scene classification of %s, one label per tile among the %d classes above."
      % (ds["use"], len(doc["labels"])))
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
    w(ds["data"])
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
