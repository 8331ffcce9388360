"""Checks a program's Grad-CAM against PyTorch: loads backbone.safetensors into a torchvision
ResNet (strict=False must miss only fc.*) and the linear classifier of linear.safetensors as
its fc, then for every RUN_DIR/gradcam/*.safetensors runs the program's input (`input`) in
float64, eval mode, takes the gradient of the program's class's logit at model.<layer>'s output
by hooks and computes Grad-CAM there: alpha = the gradient's spatial mean, cam = ReLU(sum_c
alpha_c A_c), heat = cam upsampled (F.interpolate, bilinear, align_corners=False) to the input
size and min-max normalised.

    gradcam_check.py RUN_DIR --layer layer3 [--arch resnet18] [--stem small]

Compares logits, alpha, cam (relative to their largest magnitude) and heat (absolute) within
--tol (default 1e-4). A map the ReLU empties entirely (every weighted sum negative) must be
empty in the program too, and at least one image of the run must have a non-empty reference
map, so that the comparison is not vacuous. The check must be able to fail:
the heat of every other layer must differ from the program's by more than --margin (default
0.05), and below layer4 so must alpha (relative) computed with the BN scales left out of the
backward (each BN of the later layers passing its gradient through unscaled). Exit 0 when all
hold; prints the measured differences.
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

LAYERS = ("layer1", "layer2", "layer3", "layer4")


class NoScale(torch.nn.Module):
    """A BN whose forward is the BN's and whose backward passes the gradient unscaled."""

    def __init__(self, bn):
        super().__init__()
        self.bn = bn

    def forward(self, x):
        return x + (self.bn(x) - x).detach()


def load_model(run, arch, stem):
    model = getattr(torchvision.models, arch)()
    if stem == "small":
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    tensors, _ = st.read(os.path.join(run, "backbone.safetensors"))
    sd = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if sorted(missing) != ["fc.bias", "fc.weight"] or unexpected:
        raise SystemExit(f"load_state_dict: missing {missing}, unexpected {unexpected}")
    fc, _ = st.read(os.path.join(run, "linear.safetensors"))
    w = torch.from_numpy(np.array(fc["fc.weight"]))
    model.fc = torch.nn.Linear(w.shape[1], w.shape[0])
    model.fc.load_state_dict({"weight": w, "bias": torch.from_numpy(np.array(fc["fc.bias"]))})
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False       # the hooks keep layer outputs that a later ReLU would edit
    for p in model.parameters():
        p.requires_grad_(False)     # input gradients only, as the program's backward
    return model.double().eval()


def unscale_bns(model, layer):
    """Every BN of the layers after `layer` made a NoScale (in place)."""
    for name in LAYERS[LAYERS.index(layer) + 1:]:
        for block in getattr(model, name):
            for attr, mod in list(block.named_children()):
                if isinstance(mod, torch.nn.BatchNorm2d):
                    setattr(block, attr, NoScale(mod))
            if block.downsample is not None:
                block.downsample[1] = NoScale(block.downsample[1])


def gradcam(model, layer, x, cls):
    """(logits, alpha, cam, heat) of x (1, 3, S, S) for class cls at model.<layer>."""
    saved = {}

    def keep(_mod, _inp, out):
        # the graph starts here: backward runs through the later layers only
        saved["a"] = out.detach().requires_grad_(True)
        return saved["a"]

    h = getattr(model, layer).register_forward_hook(keep)
    try:
        logits = model(x)
        logits[0, cls].backward()
    finally:
        h.remove()
    a, g = saved["a"].detach(), saved["a"].grad
    alpha = g.mean(dim=(2, 3))
    cam = F.relu((alpha[:, :, None, None] * a).sum(dim=1))
    heat = F.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)
    heat = heat[0, 0]
    lo, hi = heat.min(), heat.max()
    heat = (heat - lo) / (hi - lo) if hi > lo else torch.zeros_like(heat)
    return (logits.detach()[0].numpy(), alpha[0].numpy(), cam[0].numpy(), heat.numpy())


def rel(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def check_one(path, models, a):
    """(passes, the reference map is not empty) for one gradcam/<image>.safetensors."""
    t, meta = st.read(path)
    name = os.path.basename(path)
    if meta.get("layer") != a.layer:
        print(f"{name}: written at {meta.get('layer')}, expected {a.layer}")
        return False, False
    x = torch.from_numpy(np.array(t["input"], dtype=np.float64))[None]
    cls = int(meta["class"])
    logits, alpha, cam, heat = gradcam(models["ref"], a.layer, x, cls)
    ok = True
    top = np.sort(logits)[::-1]
    if int(np.argmax(logits)) != cls and top[0] - top[1] > a.tol * np.abs(top).max():
        print(f"{name}: the program predicts class {cls}, torch {int(np.argmax(logits))}")
        ok = False
    d = {"logits": rel(t["logits"], logits), "alpha": rel(t["alpha"], alpha),
         "cam": rel(t["cam"], cam), "heat": float(np.abs(t["heat"] - heat).max())}
    print(f"{name}: {a.layer}, class {cls} ({meta.get('class_name')}), cam "
          f"{cam.shape[0]}x{cam.shape[1]} (max {cam.max():.3g}); max difference: "
          + ", ".join(f"{k} {v:.2e}" for k, v in d.items()))
    if t["cam"].shape != cam.shape:
        print(f"{name}: the shapes differ ({t['cam'].shape})")
        return False, False
    if cam.max() <= 0:
        print(f"{name}: the reference map is empty (the ReLU removes it all)")
    ok = ok and all(v <= a.tol for v in d.values())

    # the wrong answers this must tell apart
    for other in LAYERS:
        if other == a.layer:
            continue
        far = float(np.abs(t["heat"] - gradcam(models["ref"], other, x, cls)[3]).max())
        print(f"    heat at {other} instead: differs by {far:.3f}")
        ok = ok and far > a.margin
    if "noscale" in models:
        _, al, _, hn = gradcam(models["noscale"], a.layer, x, cls)
        far = float(np.abs(t["heat"] - hn).max())
        off = rel(t["alpha"], al)
        print(f"    without the BN scales in backward: alpha differs by {off:.3f}, heat by "
              f"{far:.3f}")
        ok = ok and off > a.margin
    return ok, bool(cam.max() > 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--layer", required=True, choices=LAYERS)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--stem", default="small")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--margin", type=float, default=0.05)
    a = ap.parse_args()
    torch.set_num_threads(2)
    models = {"ref": load_model(a.run, a.arch, a.stem)}
    if a.layer != "layer4":
        models["noscale"] = load_model(a.run, a.arch, a.stem)
        unscale_bns(models["noscale"], a.layer)
    files = sorted(glob.glob(os.path.join(a.run, "gradcam", "*.safetensors")))
    if not files:
        print(f"no {a.run}/gradcam/*.safetensors")
        return 1
    results = [check_one(f, models, a) for f in files]
    if not any(full for _, full in results):
        print("every reference map is empty: nothing was compared")
        return 1
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
