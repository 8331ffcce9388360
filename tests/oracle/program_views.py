"""The views phase of a generated program, replayed through torchvision/PIL.

    program_views.py PROGRAM SIZE SEEDS PRINTED_SPEC
Makes a small data tree of the sample photographs (tests/oracle/views.py's make_data), runs
`PROGRAM --data D --out O --seed S views N` for each seed, and replays every view of
views/params.jsonl with torchvision 0.14 on Pillow: mean |diff| <= 1 and >= 97% of pixels
within 2. PRINTED_SPEC is `lwlc --print` of the program's spec. Over those seeds and
COUNT_SEEDS more (counted, not replayed), each transform of a view fires as its p says:
with p 1 in every sample (so does resize_center_crop in a view without resized_crop),
with p 0 in none, with 0 < p < 1 within 5 standard deviations of N * p, at least once and
not always where N samples make that all but certain. Prints TAP.
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

from common import Tap
from views import make_data, replay

COUNT_SEEDS = 8         # more runs whose params.jsonl are only counted
SURE = 1e-4             # "all but certain": the chance of the opposite below this


def view_probs(path):
    """{(view, transform): p} from the augment block of a `lwlc --print` spec; a view without
    resized_crop starts with the evaluation's resize_center_crop, always."""
    probs, view = {}, None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\s*view ([12]) \{", line)
        if m:
            view = int(m.group(1))
        elif view and line.strip() == "}":
            view = None
        elif view:
            w = line.split()
            probs[(view, w[0])] = float(w[w.index("p") + 1])
    for v in (1, 2):
        probs[(v, "resize_center_crop")] = 0.0 if (v, "resized_crop") in probs else 1.0
    return probs


def run_views(tap, prog, data, out, seed, n):
    """Runs the views phase; returns the lines of params.jsonl, or None."""
    p = subprocess.run([prog, "--quiet", "--data", data, "--out", out, "--seed", str(seed),
                        "views", str(n)], capture_output=True, text=True)
    if p.returncode != 0:
        tap.ok(False, "seed %d: views %d exits 0 %s" % (seed, n, p.stderr[-200:]))
        return None
    return [json.loads(l) for l in open(os.path.join(out, "views", "params.jsonl"))]


def check_fired(tap, probs, lines):
    """Each transform fired as often as its p says."""
    samples = {v: sum(l["view"] == v for l in lines) for v in (1, 2)}
    fired = {}
    for l in lines:
        for op in l["ops"]:
            fired[(l["view"], op["op"])] = fired.get((l["view"], op["op"]), 0) + 1
    extra = sorted(set(fired) - set(probs))
    tap.ok(not extra, "only the spec's transforms fire %s" % (extra or ""))
    for (v, op), p in sorted(probs.items()):
        n, k = samples[v], fired.get((v, op), 0)
        if p in (0, 1):
            good = k == p * n
        else:
            good = abs(k - n * p) <= 5 * math.sqrt(n * p * (1 - p))
            good &= k > 0 or (1 - p) ** n >= SURE
            good &= k < n or p ** n >= SURE
        tap.ok(n > 0 and good, "view %d: %s p %g fired %d of %d" % (v, op, p, k, n))


def main():
    prog, size = sys.argv[1], int(sys.argv[2])
    seeds = [int(s) for s in sys.argv[3].split(",")]
    probs = view_probs(sys.argv[4])
    torch.set_num_threads(1)
    tap = Tap()
    tap.ok(len({v for v, _ in probs}) == 2, "the printed spec has both views: %d transforms"
           % len(probs))
    counted = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        make_data(data)
        n = sum(len(fs) for _, _, fs in os.walk(data))
        for seed in seeds:
            out = os.path.join(tmp, "out%d" % seed)
            lines = run_views(tap, prog, data, out, seed, n)
            if lines is None:
                continue
            counted += lines
            worst, bad = 0.0, 0
            for l in lines:
                img = Image.open(os.path.join(data, l["file"])).convert("RGB")
                want = replay(img, l["ops"], size)
                got = np.array(Image.open(os.path.join(out, "views", "%d_v%d.png"
                                                       % (l["index"], l["view"]))))
                d = np.abs(got.astype(np.int32) - want.astype(np.int32))
                worst = max(worst, d.mean())
                bad += not (d.mean() <= 1.0 and (d <= 2).mean() >= 0.97)
            tap.ok(len(lines) > 0 and bad == 0,
                   "seed %d: %d views replayed through torchvision, %d off, worst mean |diff| "
                   "%.3f" % (seed, len(lines), bad, worst))
        for k in range(COUNT_SEEDS):
            seed = 1000 + k
            lines = run_views(tap, prog, data, os.path.join(tmp, "count%d" % k), seed, n)
            counted += lines or []
        check_fired(tap, probs, counted)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
