# The loader and the scan phase through lwl-lewelb (the hand-written LEWEL_B pipeline, views of
# 32 pixels to keep it quick): the same bytes with 1 and 3 threads, epochs that differ, two ranks
# that split every batch and cover the split once, drop_last, file order, one unreadable file
# reported once and replaced by the next file, and scan.json.
import json
import os
import re
import subprocess
import sys
import tempfile

from PIL import Image

from common import ROOT, BUILD, PHOTOS, Tap

LEWELB = os.path.join(ROOT, BUILD, "lwl-lewelb")


def make_data(root, n, bad=None):
    """n small JPEGs over 3 classes (sorted names, so file i has index i), and optionally an
    unreadable file named `bad`."""
    photos = sorted(os.path.join(PHOTOS, f) for f in os.listdir(PHOTOS) if f.endswith(".jpg"))
    for i in range(n):
        d = os.path.join(root, "c%d" % (i * 3 // n))
        os.makedirs(d, exist_ok=True)
        img = Image.open(photos[i % 3]).convert("RGB")
        w, h = img.size
        img.crop((i, i, w - i, h - i)).resize((80 + i, 60 + i // 2)).save(
            os.path.join(d, "f%02d.jpg" % i), quality=90)
    if bad:
        with open(os.path.join(root, bad), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 this JPEG stops here")


def loader(data, *args, threads=1, seed=7):
    """Runs lwl-lewelb loader; returns (batches, report lines): batches as lists of
    (epoch, n, [(index, label, hash1, hash2), ...])."""
    p = subprocess.run([LEWELB, "--size", "32", "--seed", str(seed), "--threads", str(threads),
                        "loader", data] + [str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("lwl-lewelb loader failed: " + p.stderr)
    batches, reports = [], []
    for line in p.stdout.splitlines():
        if line.startswith("report "):
            reports.append(line)
        elif line.startswith("batch "):
            e, _, n = map(int, line.split()[1:3] + [line.split()[4]])
            batches.append((e, n, []))
        elif line.startswith("  "):
            f = line.split()
            batches[-1][2].append((int(f[0]), int(f[1]), f[2], f[3]))
    return batches, reports


def indices(batches, epoch=None):
    return [s[0] for e, _, ss in batches if epoch is None or e == epoch for s in ss]


def main():
    tap = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        clean, dirty = os.path.join(tmp, "clean"), os.path.join(tmp, "dirty")
        make_data(clean, 30)
        make_data(dirty, 30, bad="c1/f15_bad.jpg")   # index 16: after c1/f15.jpg

        # Thread count does not change a byte; epochs differ; labels follow the folders.
        one, _ = loader(clean, 2, 4, 0, 1, 1, 0, threads=1)
        three, _ = loader(clean, 2, 4, 0, 1, 1, 0, threads=3)
        tap.ok(one == three and len(one) == 14, "1 and 3 threads: identical %d batches"
               % len(one))
        tap.ok(indices(one, 0) != indices(one, 1), "epochs 0 and 1 have different orders")
        tap.ok(len(indices(one, 0)) == 28 and len(set(indices(one, 0))) == 28,
               "an epoch has 28 distinct samples (7 x 4, 2 dropped)")
        tap.ok(all(s[1] == s[0] * 3 // 30 for _, _, ss in one for s in ss),
               "labels are the class folders")
        same_hash = [s for _, _, ss in one for s in ss if s[2] == s[3]]
        tap.ok(not same_hash, "the two views of a sample differ")

        # Two ranks: disjoint halves of each global batch, together every kept index once.
        r0, _ = loader(clean, 1, 3, 0, 2, 1, 0, threads=2)
        r1, _ = loader(clean, 1, 3, 1, 2, 1, 0, threads=2)
        a, b = indices(r0), indices(r1)
        tap.ok(len(r0) == len(r1) == 5 and all(n == 3 for _, n, _ in r0 + r1),
               "2 ranks, batch 3: 5 full batches each (30 // 6)")
        tap.ok(not set(a) & set(b) and len(set(a) | set(b)) == 30,
               "2 ranks cover all 30 samples once, disjoint")
        order = [x for i in range(5) for x in indices(r0)[3 * i:3 * i + 3] +
                 indices(r1)[3 * i:3 * i + 3]]
        full, _ = loader(clean, 1, 6, 0, 1, 1, 0)
        tap.ok(order == indices(full), "rank r holds positions [3r, 3r+3) of each global batch")

        # drop_last and keep_last; file order without shuffle.
        d, _ = loader(clean, 1, 4, 0, 2, 1, 0)
        k0, _ = loader(clean, 1, 4, 0, 2, 0, 1)
        k1, _ = loader(clean, 1, 4, 1, 2, 0, 1)
        tap.ok(len(d) == 3 and sum(n for _, n, _ in d) == 12,
               "drop_last: 30 samples, global batch 8: 3 batches")
        tap.ok([n for _, n, _ in k0] == [4, 4, 4, 4] and [n for _, n, _ in k1] == [4, 4, 4, 2],
               "keep_last: the last global batch of 6 splits 4 + 2")
        tap.ok(sorted(indices(k0) + indices(k1)) == list(range(30)) and
               indices(k0)[:4] == [0, 1, 2, 3] and indices(k1)[:4] == [4, 5, 6, 7],
               "shuffle 0: file order, every sample once")

        # An unreadable file: reported once over two epochs and 3 threads, replaced by the
        # next file in split order, batches stay full.
        bb, rep = loader(dirty, 2, 4, 0, 1, 0, 1, threads=3)
        tap.ok(len(rep) == 1 and "f15_bad.jpg" in rep[0] and "unreadable" in rep[0],
               "unreadable file reported once: %s" % rep)
        ix = indices(bb, 0)
        tap.ok(16 not in ix and ix.count(17) == 2 and len(ix) == 31,
               "its place holds the next file (index 17 twice), 31 samples")
        tap.ok([n for _, n, _ in bb] == ([4] * 7 + [3]) * 2,
               "batch sizes unchanged (7 of 4, last 3, in each epoch)")
        bb1, rep1 = loader(dirty, 2, 4, 0, 1, 0, 1, threads=1)
        tap.ok(bb1 == bb and len(rep1) == 1, "with the bad file too, 1 thread = 3 threads")

        # scan.json: counts per split and the unreadable file with its reason.
        out = os.path.join(tmp, "scan")
        p = subprocess.run([LEWELB, "--threads", "2", "scan", dirty, out],
                           capture_output=True, text=True)
        s = json.load(open(os.path.join(out, "scan.json")))
        tap.ok(p.returncode == 0 and s["classes"] == 3 and
               s["splits"]["train"] == {"files": 31, "readable": 30, "unreadable": 1} and
               s["splits"]["val"]["files"] == 0, "scan.json counts: %s" % s["splits"]["train"])
        u = s["unreadable"]
        tap.ok(len(u) == 1 and u[0]["file"] == "c1/f15_bad.jpg" and u[0]["split"] == "train" and
               "JPEG" in u[0]["reason"], "scan.json names the unreadable file: %s" % u)
        tap.ok(re.search(r"train 31 files \(1 unreadable\)", p.stdout) is not None and
               "f15_bad.jpg" in p.stdout, "scan prints the file and a summary")
        tap.ok(not os.path.exists(os.path.join(out, "scan.json.tmp")), "no temporary left")

        # bench writes bench.json's data part.
        out = os.path.join(tmp, "bench")
        p = subprocess.run([LEWELB, "--size", "32", "bench", clean, out, "20"],
                           capture_output=True, text=True)
        bj = json.load(open(os.path.join(out, "bench.json")))
        tap.ok(p.returncode == 0 and bj["data"]["threads"] == 1 and bj["data"]["img_per_s"] > 0,
               "bench.json: %s" % bj)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
