"""The PyTorch side of bench/step.sh: one LEWEL_B pre-training step in float32 on the CPU (both
views through the online network, both through the target, the symmetric loss, backward, LARS
with momentum, the target's moving average of parameters and BN statistics), timed; prints the
median milliseconds of --steps steps after --warmup untimed ones.

    step_ref.py --backbone resnet18 --stem small --size 32 --batch 32 --threads 2

The network, head and loss are tests/oracle/lewel_step.py's functions (the step oracle), with
the plain F.relu instead of the oracle's kink-flipping ReLU, so that autograd runs PyTorch's own
kernels; the optimiser and the average are written here as a training loop would (in place,
with a momentum buffer), since the oracle only computes the first step out of place.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "oracle"))
import lewel_step as ls  # noqa: E402
import make_dump  # noqa: E402

ls.relu = F.relu   # the oracle's KinkReLU is a Python autograd function: not what users run


def make_state(cfg, seed):
    """Online parameters (leaves with gradients), buffers, target copies, momentum buffers."""
    gen = torch.Generator().manual_seed(seed)
    init = make_dump.init_online(cfg, gen)
    params, buffers = ls.layout(cfg)
    P = {n: torch.from_numpy(init[n]).clone().requires_grad_() for n in params}
    B = {n: torch.from_numpy(init[n]).clone() for n in buffers}
    T = {n: P[n].detach().clone() for n in params if ls.is_target(n)}
    TB = {n: B[n].clone() for n in buffers if ls.is_target(n)}
    M = {n: torch.zeros_like(P[n]) for n in params}
    return P, B, T, TB, M


def lars_(P, G, M, cfg, first):
    """LARS (or SGD) with momentum in place: 1-D tensors get neither decay nor adaptation."""
    lr, wd, eta, mom = cfg["lr"], cfg["weight_decay"], cfg["eta"], cfg["momentum"]
    for n, w in P.items():
        w, g, buf = w.data, G[n], M[n]
        if w.dim() == 1:
            d = g * lr
        else:
            d = g.add(w, alpha=wd)
            if cfg["optimizer"] == "lars":
                wn, gn = float(torch.norm(w)), float(torch.norm(g))
                trust = eta * wn / (gn + wd * wn) if wn > 0 and gn > 0 else 1.0
                d.mul_(trust * lr)
            else:
                d.mul_(lr)
        if first:
            buf.copy_(d)
        else:
            buf.mul_(mom).add_(d)
        w.sub_(buf)


def ema_(T, TB, P, B, m, eman):
    """target = m target + (1 - m) online, over parameters (and BN statistics with eman)."""
    tp = list(T)
    torch._foreach_mul_([T[n] for n in tp], m)
    torch._foreach_add_([T[n] for n in tp], [P[n].data for n in tp], alpha=1 - m)
    if eman:
        tb = list(TB)
        torch._foreach_mul_([TB[n] for n in tb], m)
        torch._foreach_add_([TB[n] for n in tb], [B[n] for n in tb], alpha=1 - m)


def step(v1, v2, state, cfg, first):
    """One training step; returns the loss. Groups split the batch as the program does."""
    P, B, T, TB, M = state
    groups, bg = cfg["groups"], cfg["batch"] // cfg["groups"]
    loss = 0
    for g in range(groups):
        sl = slice(g * bg, (g + 1) * bg)
        loss = loss + ls.group_loss(v1[sl], v2[sl], P, B, T, TB, cfg)
    loss = loss / groups
    names = list(P)
    grads = torch.autograd.grad(loss, [P[n] for n in names])
    with torch.no_grad():
        lars_(P, dict(zip(names, grads)), M, cfg, first)
        ema_(T, TB, P, B, cfg["ema"], cfg["target"] == "eman")
    return float(loss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--stem", default="small")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--local-weight", type=float, default=0.5)
    ap.add_argument("--head", default="lewel_b")
    ap.add_argument("--target", default="eman")
    ap.add_argument("--optimizer", default="lars")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-6)
    ap.add_argument("--eta", type=float, default=0.001)
    ap.add_argument("--ema", type=float, default=0.98)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    cfg = ls.parse_config(__import__("json").dumps({k: getattr(a, k) for k in ls.KEYS}))
    gen = torch.Generator().manual_seed(1)
    shape = (a.batch, 3, a.size, a.size)
    v1, v2 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    state = make_state(cfg, 0)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = step(v1, v2, state, cfg, i == 0)
        ms = (time.perf_counter() - t0) * 1e3
        if i >= a.warmup:
            times.append(ms)
    if loss != loss:
        print("step_ref: the loss is NaN", file=sys.stderr)
        return 1
    print("%.2f" % statistics.median(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
