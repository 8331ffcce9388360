# The data tools and the scan: Fashion-MNIST to an ImageFolder tree, the scan's order
# against torchvision's ImageFolder, and the ImageNet-100 link tree on a fake ImageNet.
import os
import subprocess
import sys
import tempfile

import numpy as np
import torchvision.datasets as D
from PIL import Image

from common import ROOT, Tap, read_ppm, tool


def main():
    tap = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        # Fashion-MNIST: 3 per class, 28x28 gray JPEGs our decoder reads.
        fm = os.path.join(tmp, "fmnist")
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fmnist_to_imagefolder.py"),
                            fm, "--per-class", "3"], capture_output=True, text=True)
        classes = sorted(os.listdir(fm)) if p.returncode == 0 else []
        files = [os.path.join(fm, c, f) for c in classes for f in os.listdir(os.path.join(fm, c))]
        tap.ok(p.returncode == 0 and len(classes) == 10 and len(files) == 30,
               "fmnist_to_imagefolder: %d classes, %d files (%s)"
               % (len(classes), len(files), (p.stdout + p.stderr).strip()))
        if files:
            out = os.path.join(tmp, "f.ppm")
            tool("decode", files[0], out)
            got = read_ppm(out)
            want = np.array(Image.open(files[0]).convert("RGB"))
            tap.ok(got.shape == (28, 28, 3) and (got == want).all(),
                   "a Fashion-MNIST JPEG decodes to 28x28 RGB equal to Pillow's")

        # The scan against torchvision's ImageFolder on a tree with awkward names.
        tree = os.path.join(tmp, "tree")
        names = {"b": ["10.jpg", "2.jpg", "B.jpg", "a b.jpg", "sub/x.jpg", "sub-y/z.jpg"],
                 "A": ["only.png"], "a_c": ["1.jpg"]}
        img = Image.new("RGB", (4, 4), (1, 2, 3))
        for c, fs in names.items():
            for f in fs:
                os.makedirs(os.path.dirname(os.path.join(tree, c, f)), exist_ok=True)
                img.save(os.path.join(tree, c, f), format="PNG" if f.endswith("png") else "JPEG")
        _, out, _ = tool("scan", tree)
        ours = [(l.split(" ", 1)[1], int(l.split(" ", 1)[0])) for l in out.splitlines()]
        theirs = [(p, l) for p, l in D.ImageFolder(tree).samples]
        tap.ok(ours == theirs, "scan order and labels equal torchvision ImageFolder's "
               "(%d files)" % len(ours))

        # ImageNet-100 links on a fake ImageNet of three classes, two listed.
        inet = os.path.join(tmp, "imagenet")
        for part in ["train", "val"]:
            for w in ["n01", "n02", "n03"]:
                os.makedirs(os.path.join(inet, part, w))
                img.save(os.path.join(inet, part, w, w + "_1.JPEG"), format="JPEG")
        lst = os.path.join(tmp, "list.txt")
        with open(lst, "w") as f:
            f.write("n03\nn01\n")
        dst = os.path.join(tmp, "in100")
        p = subprocess.run([os.path.join(ROOT, "tools", "imagenet100_links.sh"), inet, lst, dst],
                           capture_output=True, text=True)
        ok = (p.returncode == 0 and sorted(os.listdir(os.path.join(dst, "train"))) == ["n01", "n03"]
              and os.path.islink(os.path.join(dst, "val", "n03")))
        _, out, _ = tool("scan", os.path.join(dst, "val"))
        ok = ok and len(out.splitlines()) == 2
        tap.ok(ok, "imagenet100_links: train/val link trees of the listed classes, scannable")
        p = subprocess.run([os.path.join(ROOT, "tools", "imagenet100_links.sh"), inet, lst + "x",
                            dst], capture_output=True, text=True)
        tap.ok(p.returncode == 1 and "cannot read" in p.stderr,
               "imagenet100_links: a missing class list is an error")
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
