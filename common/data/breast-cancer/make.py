"""Builds train.csv and test.csv of this folder from scikit-learn's copy of the Breast Cancer
Wisconsin (Diagnostic) data set (569 tumours, 30 features; UCI, CC BY 4.0).

    pip download scikit-learn --no-deps -d /tmp/skl
    unzip -o /tmp/skl/scikit_learn-*.whl 'sklearn/datasets/data/breast_cancer.csv' -d /tmp/skl
    python3 make.py /tmp/skl/sklearn/datasets/data/breast_cancer.csv

Rows are shuffled with a fixed seed and split 455 / 114 (80 / 20). Every feature is standardised
with the training rows' mean and standard deviation (the test rows use the same), since the data
owners train with SGD at one learning rate for all features. The label column `diagnosis` is 0 for
malignant, 1 for benign (scikit-learn's target). Standard library only.
"""

import csv
import random
import statistics
import sys

KINDS = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
         "concave_points", "symmetry", "fractal_dimension"]
NAMES = [f"{stat}_{k}" for stat in ("mean", "se", "worst") for k in KINDS]


def main(source):
    with open(source) as f:
        rows = list(csv.reader(f))[1:]  # the first line is "569,30,malignant,benign"
    assert len(rows) == 569 and all(len(r) == 31 for r in rows)
    random.Random(20261123).shuffle(rows)
    train, test = rows[:455], rows[455:]
    cols = list(zip(*[[float(v) for v in r[:30]] for r in train]))
    mean = [statistics.fmean(c) for c in cols]
    std = [statistics.pstdev(c) for c in cols]
    for name, part in (("train.csv", train), ("test.csv", test)):
        with open(name, "w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(NAMES + ["diagnosis"])
            for r in part:
                z = [(float(v) - m) / s for v, m, s in zip(r[:30], mean, std)]
                out.writerow([f"{v:.4f}" for v in z] + [r[30]])


if __name__ == "__main__":
    main(sys.argv[1])
