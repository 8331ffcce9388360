"""Produces a step_dump.safetensors from PyTorch (float32, as a program would), with random
initialisation as the recipe's (kaiming fan_out convolutions and head layers, BN weight 1 bias
0) and random views, so that lewel_step.py can be tested without the generated program.

    make_dump.py -o OUT [--groups 2] [...] [--variant PATH=NAME:REL] [--claim KEY=VALUE]
--variant also writes PATH, the same dump with the largest-magnitude element of tensor NAME
scaled by (1 + REL); --claim writes a config value other than the one used. Both make dumps
that the comparer must reject.
--selfcheck also checks the functional network against torchvision's ResNet and nn.Conv1d MLPs.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lewel_step as ls  # noqa: E402
import st  # noqa: E402


def init_online(cfg, gen):
    """{name: float32 numpy} of every online parameter and buffer, initialised as the recipe."""
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    model = ls.backbone_model(cfg)   # torchvision: kaiming fan_out convs, BN 1/0
    out = {n: t.detach().clone() for n, t in model.state_dict().items()
           if not n.endswith("num_batches_tracked")}
    for pre, (i, h, o) in ls.head_mlps(cfg).items():
        out[pre + "0.weight"] = torch.randn(h, i, generator=gen) * (2.0 / h) ** 0.5
        out[pre + "1.weight"] = torch.ones(h)
        out[pre + "1.bias"] = torch.zeros(h)
        out[pre + "1.running_mean"] = torch.zeros(h)
        out[pre + "1.running_var"] = torch.ones(h)
        out[pre + "3.weight"] = torch.randn(o, h, generator=gen) * (2.0 / o) ** 0.5
    params, buffers = ls.layout(cfg)
    assert set(out) == set(params) | set(buffers), set(out) ^ (set(params) | set(buffers))
    return {n: out[n].float().numpy() for n in list(params) + list(buffers)}


def selfcheck(cfg, tensors):
    """The functional backbone against torchvision's module, and the functional MLP against
    nn.Conv1d/BatchNorm1d, in train mode, float64; returns (ok, text)."""
    params, buffers = ls.layout(cfg)
    model = ls.backbone_model(cfg).double().train()
    sd = {n: torch.from_numpy(tensors[n]).double() for n in list(params) + list(buffers)}
    model.load_state_dict(sd, strict=False)
    x = torch.from_numpy(tensors["view1"][:4]).double()
    want = model.layer4(model.layer3(model.layer2(model.layer1(
        model.maxpool(model.relu(model.bn1(model.conv1(x))))))))
    B = {n: sd[n].clone() for n in buffers}
    got = ls.backbone(x, sd, B, cfg, True)
    e1 = float((got - want).abs().max() / want.abs().max())
    e2 = float((B["layer4.1.bn2.running_var"] - model.layer4[1].bn2.running_var).abs().max())
    i, h, o = ls.head_mlps(cfg)["proj."]
    seq = torch.nn.Sequential(torch.nn.Conv1d(i, h, 1, bias=False), torch.nn.BatchNorm1d(h),
                              torch.nn.ReLU(), torch.nn.Conv1d(h, o, 1, bias=False)).double()
    seq[0].weight.data = sd["proj.0.weight"][:, :, None].clone()
    seq[3].weight.data = sd["proj.3.weight"][:, :, None].clone()
    u = torch.randn(4, i, 7, dtype=torch.float64)
    e3 = float((ls.mlp(u, sd, B, "proj.", True) - seq(u)).abs().max())
    ok = e1 < 1e-12 and e2 < 1e-12 and e3 < 1e-12
    return ok, "backbone vs torchvision %.1e, running_var %.1e, MLP vs Conv1d %.1e" % (e1, e2, e3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--stem", default="small")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--local-weight", type=float, default=0.5)
    ap.add_argument("--head", default="lewel_b")
    ap.add_argument("--target", default="eman")
    ap.add_argument("--optimizer", default="lars")
    ap.add_argument("--lr", type=float, default=0.45)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--eta", type=float, default=0.001)
    ap.add_argument("--ema", type=float, default=0.98)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", action="append", default=[], metavar="PATH=NAME:REL")
    ap.add_argument("--claim", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--selfcheck", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)

    cfg = {k: getattr(a, k) for k in ls.KEYS}
    cfg = ls.parse_config(json.dumps(cfg))
    gen = torch.Generator().manual_seed(a.seed)
    tensors = init_online(cfg, gen)
    shape = (cfg["batch"], 3, cfg["size"], cfg["size"])
    tensors["view1"] = torch.randn(shape, generator=gen).numpy()
    tensors["view2"] = torch.randn(shape, generator=gen).numpy()
    tensors.update(ls.step(tensors, cfg, torch.float32))

    claimed = dict(cfg)
    for c in a.claim:
        k, v = c.split("=", 1)
        claimed[k] = type(cfg[k])(v)
    meta = {"config": json.dumps(claimed), "format": "lwlc step_dump"}
    st.write(a.out, tensors, meta)
    print("make_dump: %s: loss %.6f, %d tensors" % (a.out, tensors["loss"][0], len(tensors)))
    for v in a.variant:
        path, spec = v.split("=", 1)
        name, r = spec.rsplit(":", 1)
        t = tensors[name].copy()
        i = np.unravel_index(np.argmax(np.abs(t)), t.shape)
        t[i] *= 1 + float(r)
        st.write(path, dict(tensors, **{name: t}), meta)
        print("make_dump: %s: %s%s scaled by 1 + %s" % (path, name, list(i), r))
    if a.selfcheck:
        ok, text = selfcheck(cfg, tensors)
        print("selfcheck: %s: %s" % ("ok" if ok else "FAILED", text))
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
