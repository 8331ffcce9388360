"""The views phase of a generated program, replayed through torchvision/PIL.

    program_views.py PROGRAM SIZE [SEEDS]
Makes a small data tree of the sample photographs (tests/oracle/views.py's make_data), runs
`PROGRAM --data D --out O --seed S views N` for each seed, and replays every view of
views/params.jsonl with torchvision 0.14 on Pillow: mean |diff| <= 1 and >= 97% of pixels
within 2. Prints TAP; also checks that each transform of the spec fired at least once.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

from common import Tap
from views import make_data, replay


def main():
    prog, size = sys.argv[1], int(sys.argv[2])
    seeds = [int(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0, 1]
    torch.set_num_threads(1)
    tap = Tap()
    fired = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        make_data(data)
        n = sum(len(fs) for _, _, fs in os.walk(data))
        for seed in seeds:
            out = os.path.join(tmp, "out%d" % seed)
            p = subprocess.run([prog, "--quiet", "--data", data, "--out", out, "--seed",
                                str(seed), "views", str(n)], capture_output=True, text=True)
            tap.ok(p.returncode == 0, "seed %d: views %d exits 0 %s" % (seed, n, p.stderr[-200:]))
            if p.returncode != 0:
                continue
            lines = [json.loads(l) for l in open(os.path.join(out, "views", "params.jsonl"))]
            nviews = len(lines)
            worst, bad = 0.0, 0
            for l in lines:
                img = Image.open(os.path.join(data, l["file"])).convert("RGB")
                want = replay(img, l["ops"], size)
                got = np.array(Image.open(os.path.join(out, "views", "%d_v%d.png"
                                                       % (l["index"], l["view"]))))
                d = np.abs(got.astype(np.int32) - want.astype(np.int32))
                worst = max(worst, d.mean())
                bad += not (d.mean() <= 1.0 and (d <= 2).mean() >= 0.97)
                for op in l["ops"]:
                    fired[op["op"]] = fired.get(op["op"], 0) + 1
            tap.ok(nviews > 0 and bad == 0,
                   "seed %d: %d views replayed through torchvision, %d off, worst mean |diff| "
                   "%.3f" % (seed, len(lines), bad, worst))
    print("# ops fired: " + json.dumps(fired, sort_keys=True))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
