#!/usr/bin/python3
# Fashion-MNIST (Debian's dataset-fashion-mnist) to a JPEG ImageFolder tree for the CPU
# demo: DIR/<class name>/<split>_<index>.jpg, the first N images of each class.
# Usage: tools/fmnist_to_imagefolder.py DIR [--per-class N] [--split train|test|both]
#        [--size S] [--quality Q] [--src /usr/share/datasets/fashion-mnist]
import argparse
import gzip
import os
import struct
import sys

CLASSES = ["t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
           "sneaker", "bag", "ankle_boot"]
SRC = "/usr/share/datasets/fashion-mnist"


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got, n = struct.unpack(">II", data[:8])
    if got != magic:
        raise ValueError("%s: bad magic %#x, want %#x" % (path, got, magic))
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return n, rows, cols, data[16:]
    return n, 1, 1, data[8:]


def convert(src, split, out, per_class, size, quality, counts):
    from PIL import Image  # imported here so --help works without Pillow

    prefix = "train" if split == "train" else "t10k"
    n, rows, cols, pix = read_idx(os.path.join(src, prefix + "-images-idx3-ubyte.gz"), 0x803)
    m, _, _, labels = read_idx(os.path.join(src, prefix + "-labels-idx1-ubyte.gz"), 0x801)
    if n != m:
        raise ValueError("%s: %d images but %d labels" % (split, n, m))
    for i in range(n):
        c = labels[i]
        if per_class and counts[c] >= per_class:
            continue
        im = Image.frombytes("L", (cols, rows), pix[i * rows * cols:(i + 1) * rows * cols])
        if size and size != cols:
            im = im.resize((size, size), Image.BILINEAR)
        im.save(os.path.join(out, CLASSES[c], "%s_%05d.jpg" % (split, i)), quality=quality)
        counts[c] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir")
    ap.add_argument("--per-class", type=int, default=0, help="images per class (0: all)")
    ap.add_argument("--split", choices=["train", "test", "both"], default="train")
    ap.add_argument("--size", type=int, default=0, help="resize to SxS (0: keep 28x28)")
    ap.add_argument("--quality", type=int, default=95)
    ap.add_argument("--src", default=SRC)
    a = ap.parse_args()
    if not os.path.isdir(a.src):
        print("fmnist_to_imagefolder: %s not found (apt install dataset-fashion-mnist)"
              % a.src, file=sys.stderr)
        return 1
    for c in CLASSES:
        os.makedirs(os.path.join(a.dir, c), exist_ok=True)
    counts = [0] * len(CLASSES)
    for s in (["train", "test"] if a.split == "both" else [a.split]):
        convert(a.src, s, a.dir, a.per_class, a.size, a.quality, counts)
    print("fmnist_to_imagefolder: %d images in %d classes under %s"
          % (sum(counts), len(CLASSES), a.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
