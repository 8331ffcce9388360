"""Checks a program's features against torchvision: loads backbone.safetensors into a
torchvision ResNet (strict=False must miss only fc.*), runs the evaluation view (Resize(size
8/7) + CenterCrop(size) + Normalize) of every file listed in features_<split>.safetensors, and
compares the pooled features and labels.

    features_check.py RUN_DIR DATA_ROOT [--split val] [--arch resnet18] [--stem small]
                      [--size 32]
Exit 0 when every row agrees within rtol 1e-4 of its norm; prints the worst row.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--split", default="val")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--stem", default="small")
    ap.add_argument("--size", type=int, default=32)
    a = ap.parse_args()

    model = getattr(torchvision.models, a.arch)()
    if a.stem == "small":
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    tensors, _ = st.read(os.path.join(a.run, "backbone.safetensors"))
    sd = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if sorted(missing) != ["fc.bias", "fc.weight"] or unexpected:
        print(f"load_state_dict: missing {missing}, unexpected {unexpected}")
        return 1
    model.fc = torch.nn.Identity()
    model.eval()

    feats, meta = st.read(os.path.join(a.run, f"features_{a.split}.safetensors"))
    files = json.loads(meta["files"])
    tf = T.Compose([T.Resize(a.size * 8 // 7), T.CenterCrop(a.size), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.stack([tf(Image.open(os.path.join(a.data, f)).convert("RGB")) for f in files])
    with torch.no_grad():
        want = model(x).numpy()
    got = np.asarray(feats["features"])
    classes = sorted(d for d in os.listdir(a.data) if os.path.isdir(os.path.join(a.data, d)))
    labels = np.array([classes.index(f.split("/")[0]) for f in files])
    if not np.array_equal(np.asarray(feats["labels"]), labels):
        print("labels differ from the ImageFolder order")
        return 1
    err = np.abs(got - want).max(axis=1) / (np.abs(want).max(axis=1) + 1e-12)
    worst = int(err.argmax())
    print(f"{len(files)} rows, worst relative error {err[worst]:.2e} ({files[worst]})")
    return 0 if err.max() <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
