"""Oracle of liblwl's CPU primitives: $B/lwl-nntool runs convolution, max pooling and GEMM on
seeded tensors and writes inputs and outputs as safetensors; PyTorch (float64) redoes each from
the inputs. Also round-trips safetensors files between the C library and st.py. Prints TAP."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

import st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, os.environ.get("B", "build"), "lwl-nntool")
TOL = 1e-5  # max |got - want| / max |want|, per tensor
torch.set_num_threads(1)

n_test = 0
n_fail = 0


def tap(ok, name, diag=""):
    global n_test, n_fail
    n_test += 1
    n_fail += 0 if ok else 1
    print("%s %d - %s" % ("ok" if ok else "not ok", n_test, name))
    for line in diag.splitlines():
        print("# " + line)


def tool(*args):
    p = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def rel(got, want):
    scale = max(float(np.abs(want).max()), 1e-30)
    return float(np.abs(got.astype(np.float64) - want).max()) / scale


def t64(a):
    return torch.from_numpy(a.astype(np.float64))


def check(name, errs, tol=TOL):
    worst = max(errs.values())
    text = "  ".join("%s %.2e" % kv for kv in errs.items())
    tap(worst <= tol, "%s: max rel err %.2e <= %.0e" % (name, worst, tol), "" if worst <= tol
        else text)
    print("#   " + text)


def conv_case(tmp, n, c, h, w, k, r, s, stride, pad, seed=1):
    out = os.path.join(tmp, "conv.st")
    rc, so, se = tool("--threads", 2, "conv", n, c, h, w, k, r, s, stride, pad, seed, out)
    name = "conv %dx%dx%dx%d k%d %dx%d/%d pad %d" % (n, c, h, w, k, r, s, stride, pad)
    if rc != 0:
        tap(False, name, se)
        return
    t, _ = st.read(out)
    x = t64(t["x"]).requires_grad_()
    wt = t64(t["wt"]).requires_grad_()
    y = F.conv2d(x, wt, stride=stride, padding=pad)
    y.backward(t64(t["dy"]))
    check(name, {"y": rel(t["y"], y.detach().numpy()), "dx": rel(t["dx"], x.grad.numpy()),
                 "dwt": rel(t["dwt"], wt.grad.numpy())})


def pool_case(tmp, n, c, h, w, k, stride, pad, ties, seed=2):
    out = os.path.join(tmp, "pool.st")
    rc, so, se = tool("--threads", 2, "pool", n, c, h, w, k, stride, pad, seed, ties, out)
    name = "maxpool %dx%dx%dx%d %d/%d pad %d%s" % (n, c, h, w, k, stride, pad,
                                                  " ties" if ties else "")
    if rc != 0:
        tap(False, name, se)
        return
    t, _ = st.read(out)
    x = t64(t["x"]).requires_grad_()
    y = F.max_pool2d(x, k, stride, pad)
    y.backward(t64(t["dy"]))
    check(name, {"y": rel(t["y"], y.detach().numpy()), "dx": rel(t["dx"], x.grad.numpy())})


def gemm_case(tmp, ta, tb, m, n, k, pad, alpha, beta, seed=3):
    lda = (m if ta else k) + pad
    ldb = (k if tb else n) + pad
    ldc = n + pad
    out = os.path.join(tmp, "gemm.st")
    rc, so, se = tool("gemm", ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, seed, out)
    name = "gemm ta %d tb %d m %d n %d k %d ld +%d alpha %g beta %g" % (ta, tb, m, n, k, pad,
                                                                        alpha, beta)
    if rc != 0:
        tap(False, name, se)
        return
    t, _ = st.read(out)
    a = t["a"].astype(np.float64)[:, :(m if ta else k)]
    b = t["b"].astype(np.float64)[:, :(k if tb else n)]
    a = a.T if ta else a
    b = b.T if tb else b
    want = t["c0"].astype(np.float64).copy()
    want[:, :n] = alpha * (a @ b) + beta * want[:, :n]
    check(name, {"c": rel(t["c"], want)})


def determinism(tmp):
    outs = []
    for i in range(2):
        out = os.path.join(tmp, "det%d.st" % i)
        rc, so, se = tool("--threads", 2, "conv", 4, 32, 14, 14, 64, 3, 3, 1, 1, 5, out)
        if rc != 0:
            tap(False, "conv deterministic", se)
            return
        outs.append(st.read(out)[0])
    same = all(np.array_equal(outs[0][k], outs[1][k]) for k in ("y", "dx", "dwt"))
    tap(same, "conv fwd/bwd bit-identical across two runs (2 threads)")


def st_roundtrip(tmp):
    # C writes, st.py reads
    path = os.path.join(tmp, "c.st")
    rc, so, se = tool("st-write", path)
    t, meta = st.read(path)
    with open(path, "rb") as f:
        hlen = int.from_bytes(f.read(8), "little")
    want = {"f32.matrix": np.array([[1.5, -2, 3.25], [0, 1e-7, -1e30]], np.float32),
            "a.f64": np.array([0.1, -0.2, 1e300]), "i64": np.array([-1, 0, 1, 1 << 40]),
            "i32": np.array([-7, 7], np.int32),
            "u8 \"quoted\"": np.array([0, 1, 2, 254, 255], np.uint8),
            "scalar": np.array(3.25, np.float32), "empty": np.zeros((0, 3), np.float32)}
    ok = rc == 0 and list(t) == list(want) and hlen % 8 == 0 and all(
        t[k].dtype == v.dtype and t[k].shape == v.shape and np.array_equal(t[k], v)
        for k, v in want.items())
    ok = ok and meta == {"config": '{"a": 1, "b": ["x"]}', "note": 'ünïcode \\ "q"'}
    ok = ok and not os.path.exists(path + ".tmp")
    tap(ok, "safetensors: C writer -> st.py reader (dtypes, shapes, values, metadata, "
        "8-byte header)", "" if ok else se + str({k: (v.dtype, v.shape) for k, v in t.items()}))

    # st.py writes, C reads
    path = os.path.join(tmp, "py.st")
    rng = np.random.default_rng(0)
    tensors = {"w": rng.standard_normal((3, 4, 5)).astype(np.float32),
               "n": np.arange(7, dtype=np.int64), "d": rng.standard_normal(2)}
    st.write(path, tensors, {"format": "pt", "config": '{"k": 2}'})
    rc, so, se = tool("st-list", path)
    lines = so.splitlines()
    want = ["meta config={\"k\": 2}", "meta format=pt"]
    want += ["%s %s [%s] %.17g" % (k, st.NAMES[v.dtype], ",".join(map(str, v.shape)),
                                   float(np.sum(v.astype(np.float64))))
             for k, v in sorted(tensors.items())]
    ok = rc == 0 and len(lines) == len(want) and all(
        a == b if a.startswith("meta ") else a.rsplit(" ", 1)[0] == b.rsplit(" ", 1)[0] and
        abs(float(a.rsplit(" ", 1)[1]) - float(b.rsplit(" ", 1)[1])) < 1e-9
        for a, b in zip(lines, want))
    tap(ok, "safetensors: st.py writer -> C reader", "" if ok else "got:\n%s\nwant:\n%s" % (
        so + se, "\n".join(want)))

    # malformed files: the C reader refuses each with a message
    good = open(path, "rb").read()
    hlen = int.from_bytes(good[:8], "little")
    header = good[8:8 + hlen]
    bad = {
        "truncated data": good[:-4],
        "trailing bytes": good + b"\0\0\0\0",
        "header length beyond file": (len(good)).to_bytes(8, "little") + good[8:],
        "not JSON": good[:8] + b"{" + header[1:].replace(b":", b";", 1) + good[8 + hlen:],
        "unknown dtype": good[:8] + header.replace(b'"F32"', b'"F33"') + good[8 + hlen:],
        "shape/offsets mismatch": good[:8] + header.replace(b"[3,4,5]", b"[3,4,4]") +
        good[8 + hlen:],
        "short file": b"\1\0\0",
    }
    msgs = []
    for what, raw in bad.items():
        p = os.path.join(tmp, "bad.st")
        with open(p, "wb") as f:
            f.write(raw)
        rc, so, se = tool("st-list", p)
        msgs.append("%s: rc %d: %s" % (what, rc, se.strip()))
        tap(rc == 1 and "bad.st" in se, "safetensors: C reader refuses a file with " + what)
        print("#   " + msgs[-1])


def main():
    if not os.access(TOOL, os.X_OK):
        print("1..0 # SKIP %s not built" % TOOL)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        conv_case(tmp, 2, 16, 8, 8, 32, 1, 1, 1, 0)
        conv_case(tmp, 2, 16, 8, 8, 32, 1, 1, 2, 0)
        conv_case(tmp, 2, 8, 9, 9, 16, 3, 3, 1, 1)
        conv_case(tmp, 2, 8, 9, 9, 16, 3, 3, 2, 1)
        conv_case(tmp, 4, 64, 16, 16, 64, 3, 3, 1, 1)
        conv_case(tmp, 4, 64, 16, 16, 128, 3, 3, 2, 1)
        conv_case(tmp, 2, 3, 32, 32, 16, 7, 7, 2, 3)
        conv_case(tmp, 2, 3, 32, 32, 64, 3, 3, 1, 1)
        determinism(tmp)
        pool_case(tmp, 2, 4, 9, 9, 3, 2, 1, 0)
        pool_case(tmp, 2, 16, 16, 16, 3, 2, 1, 0)
        pool_case(tmp, 2, 16, 16, 16, 3, 2, 1, 1)
        for ta in (0, 1):
            for tb in (0, 1):
                gemm_case(tmp, ta, tb, 37, 29, 53, 3, 0.5, 0.25)
        gemm_case(tmp, 0, 1, 64, 256, 512, 0, 1.0, 0.0)
        gemm_case(tmp, 1, 0, 5, 7, 0, 0, 1.0, 2.0)
        st_roundtrip(tmp)
    print("1..%d" % n_test)
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
