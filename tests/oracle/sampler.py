# RandomResizedCrop's sampler in liblwl (Philox draws) against torchvision 0.14's
# get_params (torch draws): same distribution of boxes, same fallback box.
import math
import sys

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from common import Tap, tool


def ours(w, h, scale, ratio, n, seed=0):
    _, out, _ = tool("sample_crop", w, h, scale[0], scale[1], ratio[0], ratio[1], seed, n)
    return np.array([list(map(int, l.split())) for l in out.splitlines()])


def theirs(w, h, scale, ratio, n):
    img = Image.new("RGB", (w, h))
    torch.manual_seed(0)
    return np.array([T.RandomResizedCrop.get_params(img, scale, ratio) for _ in range(n)])


def summary(b):
    """mean log(w/h), mean area, mean centre x and y (as fractions of the box ranges)."""
    t, l, h, w = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return np.log(w / h).mean(), (w * h).mean(), (l + w / 2).mean(), (t + h / 2).mean()


def main():
    torch.set_num_threads(1)
    tap = Tap()
    scale, ratio = (0.2, 1.0), (3 / 4, 4 / 3)

    # Mean log aspect ~ 0 over 10^5 draws on a square image.
    b = ours(500, 500, scale, ratio, 100000)
    m = np.log(b[:, 3] / b[:, 2]).mean()
    tap.ok(abs(m) < 0.003, "500x500: mean log aspect over 1e5 draws %.5f" % m)

    # Same distribution as torchvision where the bounds bite (landscape, portrait).
    for (w, h) in [(640, 480), (375, 500), (224, 224)]:
        a = summary(ours(w, h, scale, ratio, 40000))
        t = summary(theirs(w, h, scale, ratio, 20000))
        area = w * h
        ok = (abs(a[0] - t[0]) < 0.006 and abs(a[1] - t[1]) / area < 0.008
              and abs(a[2] - t[2]) / w < 0.01 and abs(a[3] - t[3]) / h < 0.01)
        tap.ok(ok, "%dx%d vs torchvision: log aspect %.4f/%.4f, area %.4f/%.4f, "
               "centre x %.1f/%.1f, y %.1f/%.1f" % (w, h, a[0], t[0], a[1] / area,
                                                    t[1] / area, a[2], t[2], a[3], t[3]))

    # ratio (0.75, 0.75): w/h = 0.75 up to rounding.
    b = ours(500, 375, scale, (0.75, 0.75), 5000)
    dev = np.abs(b[:, 3] - 0.75 * b[:, 2]).max()
    tap.ok(dev <= 0.875, "ratio (0.75, 0.75): max |w - 0.75 h| %.3f (rounding bound 0.875)"
           % dev)

    # 1000x10 and 10x1000 take the fallback, with torchvision's box.
    for (w, h) in [(1000, 10), (10, 1000)]:
        b = ours(w, h, scale, ratio, 50)
        t = theirs(w, h, scale, ratio, 1)[0]
        ok = (b[:, 4] == 1).all() and (b[:, :4] == t).all()
        tap.ok(ok, "%dx%d: fallback every time, box %s (torchvision %s)"
               % (w, h, b[0, :4].tolist(), t.tolist()))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
