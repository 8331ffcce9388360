"""The PyTorch reference of one LEWEL_B (or BYOL) pre-training step, and the comparer of a
program's step_dump.safetensors against it.

    lewel_step.py DUMP [-v]      recomputes the step in float64 from the dump's views, weights
                                 and config; prints TAP, one line per tensor group
The functions here are also what make_dump.py runs (in float32) to produce a dump.

The step (lewel_b_recipe.md sections 2-4, 8): torchvision ResNet v1.5 (BN eps 1e-5, momentum
0.1); per BN group (= GPU) of batch/groups images, online and target networks run view 1 then
view 2; `proj` takes [pooled, positions] in one BN batch; alignment maps are L2-normalised over
channels and soft-maxed over space; head h's maps [h*K, (h+1)*K) weight channels
[h*C/heads, (h+1)*C/heads); loss = sum over both view orders of (1-w) global + w local of
2 - 2 cos; the step's loss and gradients are the means over groups. LARS or SGD, then
target = m target + (1 - m) online. Dump names: see docs/engine.md.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
ARCH = {"resnet18": ([2, 2, 2, 2], False, 512), "resnet50": ([3, 4, 6, 3], True, 2048)}
KEYS = ("backbone", "stem", "size", "batch", "groups", "heads", "hidden", "dim", "local_weight",
        "head", "target", "optimizer", "lr", "momentum", "weight_decay", "eta", "ema")
CHOICES = {"backbone": ARCH, "stem": ("imagenet", "small"), "head": ("lewel_b", "byol"),
           "target": ("eman", "ema"), "optimizer": ("lars", "sgd")}

# Tolerances of a float32 program against this float64 reference (docs/engine.md).
#   loss, buffers: elementwise |got - want| <= atol + rtol |want| + |alt - want|
#   after., target. parameters: elementwise |got - want| <= atol + rtol |want|
#                          + update rtol * ||want - before||_2 + FLOOR max |alt - want|
#   grad.: ||got - want||_2 <= rtol ||want||_2 + ||alt - want||_2 + atol sqrt(n)
# where alt is the reference with ambiguous ReLU elements flipped in the backward pass (a
# program may flip only some of them: its gradient's norm stays within the flip's, but one
# element of a parameter's update can go past the all-flipped one, hence FLOOR there); every
# bound also gets FLOOR times PyTorch's own float32 error on that tensor (|f32 - want|; max
# over the tensor for parameters), since small BN batches make the step ill-conditioned.
FLOOR = 2.0
TOL = {
    "loss": (1e-5, 1e-6),
    "grad.head": (1e-4, 1e-9),
    "grad.backbone": (1e-4, 1e-9),
    "grad.stem": (3e-4, 1e-9),          # conv1/bn1/layer1: the longest backward chain
    "after.params": (1e-5, 1e-6),
    "update": (1e-4, 0),                # + this times the norm of a tensor's update
    "after.buffers": (1e-4, 1e-5),
    "target.params": (1e-5, 1e-6),
    "target.buffers": (1e-4, 1e-5),
}


def parse_config(text):
    """The dump's config JSON, checked; raises ValueError naming the bad key."""
    cfg = json.loads(text)
    for k in KEYS:
        if k not in cfg:
            raise ValueError("config: missing key '%s'" % k)
    for k, allowed in CHOICES.items():
        if cfg[k] not in allowed:
            raise ValueError("config: %s '%s' not one of %s" % (k, cfg[k], list(allowed)))
    cfg.setdefault("step", 0)   # > 0: a later step, with the target and momentum before it
    c = ARCH[cfg["backbone"]][2]
    if cfg["batch"] % cfg["groups"] or cfg["batch"] // cfg["groups"] < 2:
        raise ValueError("config: batch %d not a multiple of groups %d with >= 2 images each"
                         % (cfg["batch"], cfg["groups"]))
    if cfg["head"] == "lewel_b" and (cfg["dim"] % cfg["heads"] or c % cfg["heads"]):
        raise ValueError("config: heads %d must divide dim %d and %d channels"
                         % (cfg["heads"], cfg["dim"], c))
    return cfg


# ---- names and shapes

def backbone_model(cfg):
    """torchvision's ResNet of the config (small stem: 3x3/1 conv, no max-pool), without fc."""
    m = getattr(torchvision.models, cfg["backbone"])()
    if cfg["stem"] == "small":
        m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        torch.nn.init.kaiming_normal_(m.conv1.weight, mode="fan_out", nonlinearity="relu")
        m.maxpool = torch.nn.Identity()
    m.fc = torch.nn.Identity()
    return m


def head_mlps(cfg):
    """{prefix: (in, hidden, out)} of the head's MLPs."""
    c, hid, dim = ARCH[cfg["backbone"]][2], cfg["hidden"], cfg["dim"]
    mlps = {"proj.": (c, hid, dim), "predictor.": (dim, hid, dim)}
    if cfg["head"] == "lewel_b":
        mlps.update({"proj_obj.": (c, hid, dim), "predictor_obj.": (dim, hid, dim)})
    return mlps


def layout(cfg):
    """(params, buffers): ordered {name: shape} of the online network, torchvision names."""
    m = backbone_model(cfg)
    params = {n: tuple(p.shape) for n, p in m.named_parameters()}
    buffers = {n: tuple(b.shape) for n, b in m.named_buffers()
               if not n.endswith("num_batches_tracked")}
    for pre, (i, h, o) in head_mlps(cfg).items():
        params.update({pre + "0.weight": (h, i), pre + "1.weight": (h,), pre + "1.bias": (h,),
                       pre + "3.weight": (o, h)})
        buffers.update({pre + "1.running_mean": (h,), pre + "1.running_var": (h,)})
    return params, buffers


def is_target(name):
    return not name.startswith("predictor")


# ---- ReLU whose backward can flip the ambiguous elements (|x| < KINK_DELTA rms(x)), where a
# float32 program may rightly take the other side of the kink; the comparer allows the gradient
# difference this makes (docs/engine.md).
KINK_DELTA = 1e-5
_kink = {"flip": False, "ambiguous": 0}


class KinkReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        mask = x > 0
        if _kink["flip"]:
            amb = x.abs() < KINK_DELTA * x.pow(2).mean().sqrt()
            _kink["ambiguous"] += int(amb.sum())
            mask = mask ^ amb
        return dy * mask.to(dy.dtype)


def relu(x):
    return KinkReLU.apply(x) if x.requires_grad else F.relu(x)


# ---- the network, functional over dicts of tensors: P parameters, B buffers (updated in place)

def bn(x, P, B, name, train):
    return F.batch_norm(x, B[name + ".running_mean"], B[name + ".running_var"],
                        P[name + ".weight"], P[name + ".bias"], train, BN_MOMENTUM, BN_EPS)


def backbone(img, P, B, cfg, train):
    """ResNet v1.5 to the last map (N, C, h, w)."""
    blocks, bottleneck, _ = ARCH[cfg["backbone"]]
    if cfg["stem"] == "imagenet":
        x = relu(bn(F.conv2d(img, P["conv1.weight"], stride=2, padding=3), P, B, "bn1", train))
        x = F.max_pool2d(x, 3, 2, 1)
    else:
        x = relu(bn(F.conv2d(img, P["conv1.weight"], stride=1, padding=1), P, B, "bn1", train))
    for li, n in enumerate(blocks):
        for bi in range(n):
            pre = "layer%d.%d." % (li + 1, bi)
            s = 2 if li > 0 and bi == 0 else 1
            if bottleneck:
                y = relu(bn(F.conv2d(x, P[pre + "conv1.weight"]), P, B, pre + "bn1", train))
                y = relu(bn(F.conv2d(y, P[pre + "conv2.weight"], stride=s, padding=1), P, B,
                              pre + "bn2", train))
                y = bn(F.conv2d(y, P[pre + "conv3.weight"]), P, B, pre + "bn3", train)
            else:
                y = relu(bn(F.conv2d(x, P[pre + "conv1.weight"], stride=s, padding=1), P, B,
                              pre + "bn1", train))
                y = bn(F.conv2d(y, P[pre + "conv2.weight"], padding=1), P, B, pre + "bn2", train)
            if pre + "downsample.0.weight" in P:
                x = bn(F.conv2d(x, P[pre + "downsample.0.weight"], stride=s), P, B,
                       pre + "downsample.1", train)
            x = relu(y + x)
    return x


def mlp(x, P, B, pre, train):
    """1x1-conv MLP on (N, in, L): W0, BN1d over N*L columns, ReLU, W3 -> (N, out, L)."""
    h = torch.matmul(P[pre + "0.weight"], x)
    h = relu(bn(h, P, B, pre + "1", train))
    return torch.matmul(P[pre + "3.weight"], h)


def encoder(img, P, B, cfg, train):
    """(z_g (N, dim, 1), o (N, dim, K) or None) of one view."""
    f = backbone(img, P, B, cfg, train)
    n, c = f.shape[:2]
    x = f.flatten(2)                                   # (N, C, P)
    g = x.mean(2, keepdim=True)                        # (N, C, 1)
    if cfg["head"] == "byol":
        return mlp(g, P, B, "proj.", train), None
    z = mlp(torch.cat([g, x], 2), P, B, "proj.", train)  # one BN batch of N*(1+P) columns
    zg, a = z[:, :, :1], z[:, :, 1:]
    a = F.softmax(F.normalize(a, dim=1), dim=2)        # per channel a map over space
    heads, k, p = cfg["heads"], cfg["dim"] // cfg["heads"], x.shape[2]
    v = torch.matmul(x.reshape(n, heads, c // heads, p),
                     a.reshape(n, heads, k, p).transpose(2, 3))  # (N, heads, C/heads, K)
    return zg, mlp(v.reshape(n, c, k), P, B, "proj_obj.", train)


def nmse(p, z):
    """2 - 2 mean cos over the channel axis 1 of (N, D, L) pairs, mean over N*L."""
    return 2 - 2 * (F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(1).mean()


def group_loss(v1, v2, P, B, T, TB, cfg):
    """Loss of one BN group; updates B (and TB when the target runs in train mode)."""
    online = [encoder(v, P, B, cfg, True) for v in (v1, v2)]
    with torch.no_grad():
        target = [encoder(v, T, TB, cfg, cfg["target"] == "ema") for v in (v1, v2)]
    w, loss = cfg["local_weight"], 0
    for i, j in ((0, 1), (1, 0)):
        lg = nmse(mlp(online[i][0], P, B, "predictor.", True), target[j][0])
        if cfg["head"] == "byol":
            loss = loss + lg
        else:
            lo = nmse(mlp(online[i][1], P, B, "predictor_obj.", True), target[j][1])
            loss = loss + (1 - w) * lg + w * lo
    return loss


def optimiser_step(P, G, cfg, M=None):
    """A step of LARS or SGD: {name: new value}. The update d goes into the momentum buffer,
    buf = d on the first step (M None), else buf = momentum M + d; then w - buf. 1-D tensors
    get neither weight decay nor adaptation."""
    lr, wd, eta = cfg["lr"], cfg["weight_decay"], cfg["eta"]
    out = {}
    for n, w in P.items():
        g = G[n]
        if w.dim() == 1:
            d = g * lr
        elif cfg["optimizer"] == "sgd":
            d = (g + wd * w) * lr
        else:
            wn, gn = torch.norm(w), torch.norm(g)
            one = torch.ones((), dtype=w.dtype)
            trust = eta * wn / (gn + wd * wn) if wn > 0 and gn > 0 else one
            d = (g + wd * w) * trust * lr
        out[n] = w - (d if M is None else cfg["momentum"] * M[n] + d)
    return out


def step(tensors, cfg, dtype, alt=False):
    """One step from the dump's inputs (numpy): {'loss', 'grad.*', 'after.*', 'target.*'} as
    numpy. With alt, also the same outputs with the ambiguous ReLU elements flipped in the
    backward pass: returns (out, alt_out, number of ambiguous elements)."""
    params, buffers = layout(cfg)
    t = {k: torch.from_numpy(np.asarray(tensors[k])).to(dtype) for k in input_names(cfg)}
    P = {n: t[n].clone().requires_grad_() for n in params}
    # the target: a copy of the online network at the first step, its own state later
    tp = "target_before." if cfg["step"] > 0 else ""
    T = {n: t[tp + n].clone() for n in params if is_target(n)}
    groups, bg = cfg["groups"], cfg["batch"] // cfg["groups"]
    gbuf, tbuf, losses = [], [], []
    for g in range(groups):
        B = {n: t[n].clone() for n in buffers}
        TB = {n: t[tp + n].clone() for n in buffers if is_target(n)}
        sl = slice(g * bg, (g + 1) * bg)
        losses.append(group_loss(t["view1"][sl], t["view2"][sl], P, B, T, TB, cfg))
        gbuf.append(B)
        tbuf.append(TB)
    loss = sum(losses) / groups
    outs = []
    for flip in ((False, True) if alt else (False,)):
        _kink.update(flip=flip, ambiguous=0)
        grads = torch.autograd.grad(loss, [P[n] for n in params], retain_graph=alt and not flip)
        G = dict(zip(params, grads))
        M = {n: t["momentum." + n] for n in params} if cfg["step"] > 0 else None
        outs.append(finish(loss, P, G, T, gbuf[0], tbuf[0], params, buffers, cfg, M))
    _kink["flip"] = False
    return (outs[0], outs[1], _kink["ambiguous"]) if alt else outs[0]


def finish(loss, P, G, T, B, TB, params, buffers, cfg, M):
    """The dump's outputs from the loss, gradients G, group 0's buffers B and TB, the
    momentum buffers M (None at the first step)."""
    out = {"loss": loss.detach().reshape(1)}
    with torch.no_grad():
        after = optimiser_step({n: P[n].detach() for n in params}, G, cfg, M)
        m = cfg["ema"]
        for n in params:
            out["grad." + n] = G[n]
            out["after." + n] = after[n]
            if is_target(n):
                out["target." + n] = m * T[n] + (1 - m) * after[n]
        for n in buffers:
            out["after." + n] = B[n]
            if is_target(n):
                eman = m * TB[n] + (1 - m) * B[n]
                out["target." + n] = eman if cfg["target"] == "eman" else TB[n]
    return {k: v.detach().numpy().copy() for k, v in out.items()}


# ---- the comparer

def group_of(name, params):
    """Tolerance group of a compared tensor name."""
    kind, base = name.split(".", 1) if "." in name else (name, "")
    if kind == "grad":
        if not base.startswith(("layer", "conv1", "bn1")):
            return "grad.head"
        return "grad.stem" if base.startswith(("conv1", "bn1", "layer1")) else "grad.backbone"
    if kind in ("after", "target"):
        return kind + (".params" if base in params else ".buffers")
    return kind


def grad_tol(name):
    return TOL[group_of("grad." + name.split(".", 1)[1], ())][0]


def close(got, want, alt, f32, g, before):
    """(passes, relative error, share of the allowed error) of got against the reference want;
    alt is the reference with the ambiguous ReLUs flipped, f32 PyTorch's float32 result (None
    without the floor), before the tensor before the step (after./target. parameters)."""
    got, want, alt = (x.astype(np.float64) for x in (got, want, alt))
    f32 = want if f32 is None else f32.astype(np.float64)
    rtol, atol = TOL[g]
    d = got - want
    if g.startswith("grad"):
        dn, wn = float(np.linalg.norm(d)), float(np.linalg.norm(want))
        allowed = rtol * wn + float(np.linalg.norm(alt - want)) + atol * np.sqrt(d.size)
        allowed += FLOOR * float(np.linalg.norm(f32 - want))
        return dn <= allowed, dn / wn if wn > 0 else dn, dn / allowed
    allowed = atol + rtol * np.abs(want)
    if before is not None:   # the step's error follows its gradient's: allow it tensor-wide
        allowed = allowed + TOL["update"][0] * float(np.linalg.norm(want - before)) + FLOOR * (
            float(np.abs(alt - want).max()) + float(np.abs(f32 - want).max()))
    else:
        allowed = allowed + np.abs(alt - want) + FLOOR * np.abs(f32 - want)
    scale = np.maximum(np.abs(want), atol / rtol)
    if not d.size:
        return True, 0.0, 0.0
    return (bool(np.all(np.abs(d) <= allowed)), float(np.max(np.abs(d) / scale)),
            float(np.max(np.abs(d) / allowed)))


def expected_names(cfg):
    params, buffers = layout(cfg)
    s = cfg["size"]
    names = {"view1": (cfg["batch"], 3, s, s), "view2": (cfg["batch"], 3, s, s), "loss": (1,)}
    for n, sh in list(params.items()) + list(buffers.items()):
        names[n] = sh
        names["after." + n] = sh
        if n in params:
            names["grad." + n] = sh
        if is_target(n):
            names["target." + n] = sh
        if cfg["step"] > 0 and is_target(n):
            names["target_before." + n] = sh
        if cfg["step"] > 0 and n in params:
            names["momentum." + n] = sh
    return names


def input_names(cfg):
    """The dump's tensors the step starts from."""
    params, buffers = layout(cfg)
    names = list(params) + list(buffers) + ["view1", "view2"]
    if cfg["step"] > 0:
        names += ["momentum." + n for n in params]
        names += ["target_before." + n for n in list(params) + list(buffers) if is_target(n)]
    return names


class Tap:
    def __init__(self):
        self.n = self.failed = 0

    def line(self, ok, text, diag=()):
        self.n += 1
        self.failed += 0 if ok else 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, text))
        for d in diag:
            print("#   " + d)


def compare(path, verbose=False, tap=None, floor=True):
    """Checks the dump at path; prints TAP lines; returns the number of failed groups."""
    tap = tap or Tap()
    try:
        tensors, meta = st.read(path)
        cfg = parse_config(meta.get("config", "{}"))
    except (OSError, ValueError, KeyError) as e:
        tap.line(False, "%s: readable dump with a config: %s" % (path, e))
        return 1
    want_names = expected_names(cfg)
    bad = ["%s: missing" % n for n in want_names if n not in tensors]
    bad += ["%s: shape %s, expected %s" % (n, tensors[n].shape, sh)
            for n, sh in want_names.items() if n in tensors and tensors[n].shape != sh]
    bad += ["%s: dtype %s" % (n, tensors[n].dtype) for n in want_names
            if n in tensors and tensors[n].dtype != np.float32]
    extra = [n for n in tensors if n not in want_names and not n.endswith("num_batches_tracked")]
    bad += ["%s: not expected" % n for n in extra]
    tap.line(not bad, "%s: %d tensors named and shaped as the config says" % (
        os.path.basename(path), len(want_names)), bad[:20])
    if bad:
        return tap.failed

    ref, alt, amb, f32 = reference(tensors, cfg, floor)
    params, _ = layout(cfg)
    report = {g: [] for g in TOL if g != "update"}
    for name, want in ref.items():
        g = group_of(name, params)
        base = name.split(".", 1)[1] if g in ("after.params", "target.params") else None
        ok, err, used = close(tensors[name], want, alt[name], f32[name] if f32 else None, g,
                              tensors[base].astype(np.float64) if base else None)
        report[g].append((ok, err, name, used))
    print("# %d ReLU elements within %.0e rms of the kink: their flip is allowed for" % (
        amb, KINK_DELTA))
    for g, rows in report.items():
        if not rows:
            continue
        fails = [r for r in rows if not r[0]]
        worst = max(rows, key=lambda r: r[1])
        rtol, atol = TOL[g]
        how = "norm" if g.startswith("grad") else "elementwise"
        tap.line(not fails, "%s: %d tensors, max rel err %.2e (%s), %.0f%% of allowed "
                 "[%s rtol %.0e atol %.0e]" % (g, len(rows), worst[1], worst[2],
                                               100 * max(r[3] for r in rows), how, rtol, atol),
                 ["%s: rel err %.3e, %.0f%% of allowed" % (r[2], r[1], 100 * r[3])
                  for r in (fails if fails else (rows if verbose else []))][:30])
    return tap.failed


_cache = {}


def reference(tensors, cfg, floor):
    """step() in float64 with the flipped alternative, and with floor in float32 too; cached
    by config and inputs (dumps that differ only in their outputs share one computation)."""
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode())
    for n in input_names(cfg):
        h.update(np.ascontiguousarray(tensors[n]).tobytes())
    key = h.hexdigest() + str(floor)
    if key not in _cache:
        f32 = step(tensors, cfg, torch.float32) if floor else None
        _cache[key] = step(tensors, cfg, torch.float64, alt=True) + (f32,)
    return _cache[key]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump", nargs="+", help="step_dump.safetensors file(s)")
    ap.add_argument("-v", "--verbose", action="store_true", help="every tensor's error")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-fp32-floor", action="store_true",
                    help="hold the dump to the fixed tolerances only, not to %gx PyTorch's own "
                    "float32 error" % FLOOR)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tap = Tap()
    for p in args.dump:
        compare(p, args.verbose, tap, not args.no_fp32_floor)
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
