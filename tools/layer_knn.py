#!/usr/bin/env python3
"""kNN per stage of a backbone: where pre-training helps and where it hurts.

Loads each backbone.safetensors into torchvision (resnet18 or resnet50, either stem), reads
an ImageFolder tree at SIZE pixels (bilinear, ImageNet normalisation, no crop), splits each
class 70% memory / 20% queries in a seeded order, and prints the cosine kNN top-1 (k 20,
majority) of the pooled output of layer2, layer3 and layer4, the share of the variance of
the layer4 features held by their first principal component, and the mean and deviation of
their norms. A program's random initialisation is `--steps 0 pretrain`.

    tools/layer_knn.py data/fashion_mnist runs/x/backbone.safetensors [more ...]
        [--backbone resnet18] [--stem small] [--size 32]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "oracle"))
import st  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def split(root, size):
    classes = sorted(d for d in os.listdir(root) if not d.startswith("."))
    rng = np.random.RandomState(0)
    parts = ([], [])
    for label, name in enumerate(classes):
        files = sorted(os.listdir(os.path.join(root, name)))
        rng.shuffle(files)
        n = len(files)
        for part, chosen in zip(parts, (files[:int(.7 * n)], files[int(.7 * n):int(.9 * n)])):
            part += [(os.path.join(root, name, f), label) for f in chosen]

    def load(items):
        x = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB").resize(
            (size, size), Image.BILINEAR), np.float32) / 255).permute(2, 0, 1) for p, _ in items]
        return (torch.stack(x) - MEAN) / STD, torch.tensor([c for _, c in items])
    return load(parts[0]), load(parts[1]), len(classes)


def network(path, backbone, stem):
    m = getattr(torchvision.models, backbone)()
    if stem == "small":
        m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = torch.nn.Identity()
    tensors, _ = st.read(path)
    missing = m.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()},
                                strict=False).missing_keys
    if set(missing) != {"fc.weight", "fc.bias"}:
        sys.exit("%s: missing %s" % (path, missing))
    return m.eval()


def pooled(m, x):
    out = {2: [], 3: [], 4: []}
    with torch.no_grad():
        for i in range(0, len(x), 256):
            h = m.maxpool(m.relu(m.bn1(m.conv1(x[i:i + 256]))))
            for k, layer in enumerate((m.layer1, m.layer2, m.layer3, m.layer4), 1):
                h = layer(h)
                if k in out:
                    out[k].append(h.mean((2, 3)))
    return {k: torch.cat(v) for k, v in out.items()}


def knn(fm, ym, fq, yq, classes, k=20):
    fm = torch.nn.functional.normalize(fm, dim=1)
    fq = torch.nn.functional.normalize(fq, dim=1)
    idx = (fq @ fm.T).topk(k, dim=1).indices
    votes = torch.zeros(len(fq), classes).scatter_add_(1, ym[idx], torch.ones(idx.shape))
    # argmax returns the first maximum: ties go to the lowest label, as the program's vote
    return 100.0 * (votes.argmax(1) == yq).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("backbones", nargs="+")
    ap.add_argument("--backbone", default="resnet18", choices=["resnet18", "resnet50"])
    ap.add_argument("--stem", default="small", choices=["small", "imagenet"])
    ap.add_argument("--size", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    (xm, ym), (xq, yq), classes = split(a.root, a.size)
    for path in a.backbones:
        m = network(path, a.backbone, a.stem)
        fm, fq = pooled(m, xm), pooled(m, xq)
        top1 = [knn(fm[k], ym, fq[k], yq, classes) for k in (2, 3, 4)]
        s = torch.linalg.svdvals(fm[4] - fm[4].mean(0)) ** 2
        norms = fm[4].norm(dim=1)
        print("%s: kNN top-1 layer2 %.1f%%, layer3 %.1f%%, layer4 %.1f%%; layer4: first "
              "component %.0f%% of the variance, norms %.1f +- %.1f"
              % (path, *top1, 100 * (s[0] / s.sum()).item(), norms.mean(), norms.std()))


if __name__ == "__main__":
    main()
