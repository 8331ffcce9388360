#!/usr/bin/env python3
"""Pixel kNN on an ImageFolder tree: the baseline a backbone's kNN is read against.

Each image as gray 32x32 (bilinear), normalised like the evaluation view, as one L2-normed
vector; per class 70% memory and the next 20% queries of a seeded random order; k-nearest
by cosine, majority vote. Prints top-1 averaged over a few splits.

    tools/pixel_knn.py data/fashion_mnist [--k 20] [--splits 5]
"""
import argparse
import os

import numpy as np
from PIL import Image


def load(root):
    classes = sorted(d for d in os.listdir(root) if not d.startswith("."))
    xs, ys = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            im = Image.open(os.path.join(folder, f)).convert("L").resize((32, 32),
                                                                         Image.BILINEAR)
            xs.append(np.asarray(im, np.float64).ravel())
            ys.append(label)
    x = (np.array(xs) / 255.0 - 0.449) / 0.226
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.array(ys), len(classes)


def top1(x, y, n_classes, k, seed):
    rng = np.random.default_rng(seed)
    memory, queries = [], []
    for c in range(n_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        memory += list(idx[:int(0.7 * len(idx))])
        queries += list(idx[int(0.7 * len(idx)):int(0.9 * len(idx))])
    sim = x[queries] @ x[memory].T
    nearest = np.argsort(-sim, axis=1)[:, :k]
    votes = np.zeros((len(queries), n_classes))
    for j in range(k):
        np.add.at(votes, (np.arange(len(queries)), y[memory][nearest[:, j]]), 1)
    return 100.0 * np.mean(votes.argmax(1) == y[queries])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--splits", type=int, default=5)
    a = ap.parse_args()
    x, y, n = load(a.root)
    accs = [top1(x, y, n, a.k, s) for s in range(a.splits)]
    print("pixel kNN, k %d, majority: top-1 %.1f%% (splits: %s)"
          % (a.k, np.mean(accs), ", ".join("%.1f" % v for v in accs)))


if __name__ == "__main__":
    main()
