# Shared helpers of the oracle tests: run lwl-imgtool, read its PPM output, compare
# images against torchvision/PIL, print TAP.
import os
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("B", "build")
TOOL = os.path.join(ROOT, BUILD, "lwl-imgtool")
PHOTOS = os.path.join(ROOT, "examples", "images")


def photos():
    return sorted(os.path.join(PHOTOS, f) for f in os.listdir(PHOTOS) if f.endswith(".jpg"))


def tool(*args, check=True):
    """Runs lwl-imgtool; returns (returncode, stdout, stderr)."""
    p = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("lwl-imgtool %s failed: %s" % (" ".join(map(str, args)), p.stderr))
    return p.returncode, p.stdout, p.stderr


def read_ppm(path):
    return np.array(Image.open(path).convert("RGB"))


def stats(got, want):
    """mean |diff|, share within 2 levels, max |diff|, share exact."""
    if got.shape != want.shape:
        return None
    d = np.abs(got.astype(np.int32) - want.astype(np.int32))
    return d.mean(), (d <= 2).mean(), int(d.max()), (d == 0).mean()


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name))
        sys.stdout.flush()

    def image(self, got, want, name, exact=False):
        """Passes when mean |diff| <= 1 and >= 97% within 2 (exact: max diff 0)."""
        s = stats(got, want)
        if s is None:
            self.ok(False, "%s: shape %s, want %s" % (name, got.shape, want.shape))
            return
        mean, within2, mx, ex = s
        cond = mx == 0 if exact else (mean <= 1.0 and within2 >= 0.97)
        self.ok(cond, "%s: mean %.4f, within2 %.4f, max %d, exact %.4f"
                % (name, mean, within2, mx, ex))

    def done(self):
        print("1..%d" % self.n)
        return 1 if self.failed else 0
