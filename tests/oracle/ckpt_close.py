"""ckpt_close.py A B [RTOL [NAME ...]]: every tensor (or the named ones) of checkpoint A is
within RTOL (relative to the largest magnitude of its tensor) of the same tensor of B;
prints the worst difference per tensor."""
import sys

import numpy as np

import st


def main():
    a, _ = st.read(sys.argv[1])
    b, _ = st.read(sys.argv[2])
    rtol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    names = sys.argv[4:] or sorted(a)
    bad = 0
    for name in names:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        if x.shape != y.shape:
            print(f"{name}: shapes {x.shape} and {y.shape}")
            bad += 1
            continue
        err = np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)
        print(f"{name}: largest difference {err:.3g} of its largest magnitude")
        bad += err > rtol
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
