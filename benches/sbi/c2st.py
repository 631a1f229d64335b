#!/usr/bin/env python3
"""C2ST, the classifier two-sample test exactly as sbibm computes it (sbibm/metrics/c2st.py,
commit f0bc440): z-score both samples with the reference's mean and standard deviation (ddof 1),
train scikit-learn's MLPClassifier (ReLU, 2 hidden layers of 10 x dim, adam, max_iter 10000,
random_state = seed) to tell them apart, and report the mean accuracy over 5-fold cross
validation (KFold, shuffled with random_state = seed; sbibm does not stratify). 0.5: the
classifier cannot tell the samples apart; 1.0: it always can.

    python c2st.py REFERENCE.csv[.bz2|.gz] SAMPLES.csv [--columns theta_1,theta_2] [--seed 1]

Prints the accuracy. The reference's columns are used in file order; the samples' columns are
those named by --columns (default: all, in file order); the widths must agree. As in sbibm the
arithmetic is float32 and the reference is the first sample (X).
"""
import argparse
import bz2
import gzip
import sys

import numpy as np
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neural_network import MLPClassifier


def read_csv(path, columns=None):
    """A numeric CSV with a header row, optionally bz2/gzip compressed; returns float32 rows."""
    opener = bz2.open if path.endswith(".bz2") else gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        header = [h.strip() for h in f.readline().strip().split(",")]
        data = np.loadtxt(f, delimiter=",", ndmin=2)
    if data.shape[1] != len(header):
        sys.exit(f"{path}: {len(header)} names in the header but {data.shape[1]} columns")
    if columns is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            sys.exit(f"{path}: no column {', '.join(missing)} (it has {', '.join(header)})")
        data = data[:, [header.index(c) for c in columns]]
    return data.astype(np.float32)


def c2st(X, Y, seed=1, n_folds=5):
    """sbibm's c2st(X, Y): X is the reference; z-scoring uses X's statistics."""
    mean = X.mean(axis=0)
    std = X.std(axis=0, ddof=1)
    X = (X - mean) / std
    Y = (Y - mean) / std
    ndim = X.shape[1]
    clf = MLPClassifier(
        activation="relu",
        hidden_layer_sizes=(10 * ndim, 10 * ndim),
        max_iter=10000,
        solver="adam",
        random_state=seed,
    )
    data = np.concatenate((X, Y))
    target = np.concatenate((np.zeros((X.shape[0],)), np.ones((Y.shape[0],))))
    shuffle = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores = cross_val_score(clf, data, target, cv=shuffle, scoring="accuracy")
    return float(np.asarray(np.mean(scores)).astype(np.float32))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference")
    parser.add_argument("samples")
    parser.add_argument("--columns", help="the samples' columns, comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    X = read_csv(args.reference)
    Y = read_csv(args.samples, args.columns.split(",") if args.columns else None)
    if X.shape[1] != Y.shape[1]:
        sys.exit(f"the reference has {X.shape[1]} columns, the samples {Y.shape[1]}")
    print(f"{c2st(X, Y, seed=args.seed):.4f}")


if __name__ == "__main__":
    main()
