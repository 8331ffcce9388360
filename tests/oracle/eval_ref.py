"""Oracle cases of the evaluation library (runtime/lwl_eval.c), written as raw little-endian
arrays and small text headers into DIR for build/tests/test_eval (LWL_EVAL_ORACLE=DIR):
kNN rankings from numpy in float64, torch.optim.SGD steps on nn.Linear with cross-entropy,
scipy.stats.t intervals (when scipy is there), Grad-CAM with autograd and F.interpolate.
Usage: eval_ref.py DIR; prints one '# ' line per case written or left out."""
import os
import sys

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
try:
    import scipy.stats
except ImportError:
    scipy = None

OUT = sys.argv[1]
TIE = 1e-5  # float64 gaps below this may order differently in float32: not compared


def save(name, a, dtype):
    np.ascontiguousarray(a, dtype=dtype).tofile(os.path.join(OUT, name))


def knn_rank(sim_row, mem_y, k, weighted, temp, nclasses):
    """Classes ranked as lwl_knn_predict (ties: lower index / label), and whether the query is
    clear of near-ties (at the k-th neighbour or between the first six class scores)."""
    order = np.lexsort((np.arange(len(sim_row)), -sim_row))
    top = order[:k]
    clear = k >= len(order) or sim_row[order[k - 1]] - sim_row[order[k]] > TIE
    score = np.zeros(nclasses)
    votes = np.zeros(nclasses, dtype=int)
    for j in top:
        score[mem_y[j]] += np.exp(sim_row[j] / temp) if weighted else 1.0
        votes[mem_y[j]] += 1
    voted = [c for c in range(nclasses) if votes[c] > 0]
    voted.sort(key=lambda c: (-score[c], c))
    if weighted:
        s = [score[c] for c in voted[:6]]
        clear = clear and all(a - b > TIE * a for a, b in zip(s, s[1:]))
    pred = (voted[:5] + [-1] * 5)[:5]
    return pred, clear


def case_knn(rng):
    n, m, d, nc, k_maj, k_w, temp = 600, 150, 32, 10, 20, 50, 0.07
    means = rng.standard_normal((nc, d))
    mem_y = np.repeat(np.arange(nc), n // nc)
    qry_y = rng.integers(0, nc, m)
    mem = (means[mem_y] + 3.0 * rng.standard_normal((n, d))).astype(np.float32)
    qry = (means[qry_y] + 3.0 * rng.standard_normal((m, d))).astype(np.float32)
    mn = mem.astype(np.float64)
    mn /= np.linalg.norm(mn, axis=1, keepdims=True)
    qn = qry.astype(np.float64)
    qn /= np.linalg.norm(qn, axis=1, keepdims=True)
    sim = qn @ mn.T
    for w, k in ((0, k_maj), (1, k_w)):
        preds, clears = zip(*(knn_rank(sim[i], mem_y, k, w, temp, nc) for i in range(m)))
        save("knn_pred_%d.i32" % w, np.array(preds), "<i4")
        save("knn_clear_%d.i32" % w, np.array(clears), "<i4")
        top1 = np.mean([p[0] == y for p, y in zip(preds, qry_y)]) * 100
        print("# knn %s k %d: numpy top1 %.2f%%, %d near-tie queries"
              % ("weighted" if w else "majority", k, top1, m - sum(clears)))
    save("knn_mem.f32", mem, "<f4")
    save("knn_qry.f32", qry, "<f4")
    save("knn_mem_y.i32", mem_y, "<i4")
    save("knn_qry_y.i32", qry_y, "<i4")
    with open(os.path.join(OUT, "knn.txt"), "w") as f:
        f.write("%d %d %d %d %d %d %r\n" % (n, m, d, nc, k_maj, k_w, temp))


def case_linear(rng):
    d, nc, bs, mom, wd = 64, 10, 32, 0.9, 1e-4
    lrs = [0.4, 0.4, 0.4, 0.04, 0.04]          # a milestone after three steps
    steps = len(lrs)
    x = rng.standard_normal((steps, bs, d)).astype(np.float32)
    y = rng.integers(0, nc, (steps, bs))
    w0 = (0.01 * rng.standard_normal((nc, d))).astype(np.float32)
    fc = torch.nn.Linear(d, nc)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(w0))
        fc.bias.zero_()
    opt = torch.optim.SGD(fc.parameters(), lr=lrs[0], momentum=mom, weight_decay=wd)
    losses = []
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lrs[s]
        opt.zero_grad()
        loss = F.cross_entropy(fc(torch.from_numpy(x[s])), torch.from_numpy(y[s]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    save("lin_x.f32", x, "<f4")
    save("lin_y.i32", y, "<i4")
    save("lin_w0.f32", w0, "<f4")
    save("lin_w.f32", fc.weight.detach().numpy(), "<f4")
    save("lin_b.f32", fc.bias.detach().numpy(), "<f4")
    save("lin_loss.f64", np.array(losses), "<f8")
    with open(os.path.join(OUT, "linear.txt"), "w") as f:
        f.write("%d %d %d %d %r %r\n%s\n" % (d, nc, bs, steps, mom, wd,
                                              " ".join(repr(v) for v in lrs)))
    print("# linear: %d torch.optim.SGD steps, loss %.4f -> %.4f" % (steps, losses[0],
                                                                     losses[-1]))


def case_t(rng):
    lines = []
    for n in (2, 3, 4, 5, 10, 16):
        for conf in (0.8, 0.9, 0.95, 0.99):
            v = rng.uniform(5, 90, n)
            sem = np.std(v, ddof=1) / np.sqrt(n)
            low, high = scipy.stats.t.interval(conf, n - 1, loc=np.mean(v), scale=sem)
            lines.append("%d %r %r %r %s" % (n, conf, low, high, " ".join(repr(x) for x in v)))
    with open(os.path.join(OUT, "t.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("# t: %d scipy.stats.t intervals; t.ppf(0.95, 2) = %.6f"
          % (len(lines), scipy.stats.t.ppf(0.95, 2)))


def case_gradcam(rng):
    c, h, w, oh, ow, nc, cls = 16, 7, 7, 45, 60, 5, 3
    act = torch.tensor(rng.standard_normal((c, h, w)), dtype=torch.float32,
                       requires_grad=True)
    fc = torch.tensor(rng.standard_normal((nc, c)), dtype=torch.float32)
    # A class score as a ResNet head makes it, plus a spatial term so gradients vary.
    bump = torch.tensor(rng.standard_normal((h, w)), dtype=torch.float32)
    score = (fc @ F.relu(act).mean((1, 2)))[cls] + 0.1 * (act[0] * bump).sum()
    score.backward()
    grad = act.grad.detach()
    a = act.detach()
    alpha = grad.mean((1, 2))
    cam = F.relu((alpha[:, None, None] * a).sum(0))
    up = F.interpolate(cam[None, None], size=(oh, ow), mode="bilinear",
                       align_corners=False)[0, 0]
    heat = (up - up.min()) / (up.max() - up.min())
    save("cam_act.f32", a.numpy(), "<f4")
    save("cam_grad.f32", grad.numpy(), "<f4")
    save("cam_heat.f32", heat.numpy(), "<f4")
    with open(os.path.join(OUT, "gradcam.txt"), "w") as f:
        f.write("%d %d %d %d %d\n" % (c, h, w, oh, ow))
    print("# gradcam: (%d, %d, %d) to %d x %d, autograd and F.interpolate" % (c, h, w, oh, ow))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    case_knn(rng)
    if scipy is not None:
        case_t(rng)
    else:
        print("# SKIP t intervals: scipy missing (python3-scipy)")
    if torch is not None:
        torch.manual_seed(0)
        case_linear(rng)
        case_gradcam(rng)
    else:
        print("# SKIP linear step and Grad-CAM: torch missing (python3-torch)")


main()
