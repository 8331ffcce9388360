# The views phase of the hand-written LEWEL_B pipeline (lwl-lewelb views): every view of every
# sample is replayed from views/params.jsonl with torchvision 0.14 on Pillow and compared with
# the PNG liblwl wrote; then the runtime's evaluation and linear-training views the same way.
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageOps

from common import ROOT, BUILD, PHOTOS, Tap, tool

LEWELB = os.path.join(ROOT, BUILD, "lwl-lewelb")
JITTER = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
          "saturation": F.adjust_saturation, "hue": F.adjust_hue}


def make_data(root):
    """Photographs in several encodings and shapes: as they are, PNG, progressive, gray,
    4:4:4, CMYK and YCCK (Adobe), a 1000x10 strip (the crop's fallback) and a small image
    (upscaling crops)."""
    srcs = {n: Image.open(os.path.join(PHOTOS, n + ".jpg")).convert("RGB")
            for n in ("bird", "cat", "dog")}
    for c in ("a", "b", "c"):
        os.makedirs(os.path.join(root, c))
    for n in srcs:
        with open(os.path.join(PHOTOS, n + ".jpg"), "rb") as f, \
                open(os.path.join(root, "a", n + ".jpg"), "wb") as g:
            g.write(f.read())
    srcs["cat"].save(os.path.join(root, "b", "cat.png"))
    srcs["dog"].resize((500, 375)).save(os.path.join(root, "b", "prog.jpg"), quality=90,
                                        progressive=True)
    srcs["bird"].convert("L").save(os.path.join(root, "b", "gray.jpg"), quality=85)
    srcs["cat"].save(os.path.join(root, "c", "s444.jpg"), quality=95, subsampling=0)
    srcs["bird"].resize((1000, 10)).save(os.path.join(root, "c", "strip.jpg"), quality=90)
    srcs["dog"].resize((40, 30)).save(os.path.join(root, "c", "small.jpg"), quality=90)
    srcs["cat"].convert("CMYK").save(os.path.join(root, "b", "cmyk.jpg"), quality=90)
    tool("encode_ycck", os.path.join(PHOTOS, "dog.jpg"), os.path.join(root, "c", "ycck.jpg"))


def replay(img, ops, size):
    for op in ops:
        k = op["op"]
        if k == "resized_crop":
            img = F.resized_crop(img, op["top"], op["left"], op["height"], op["width"],
                                 [size, size])
        elif k == "resize_center_crop":
            img = T.CenterCrop(size)(T.Resize(size * 8 // 7)(img))
        elif k == "horizontal_flip":
            img = F.hflip(img)
        elif k == "color_jitter":
            for name in op["order"]:
                img = JITTER[name](img, op[name])
        elif k == "grayscale":
            img = F.rgb_to_grayscale(img, 3)
        elif k == "gaussian_blur":
            img = img.filter(ImageFilter.GaussianBlur(op["sigma"]))
        elif k == "solarize":
            img = ImageOps.solarize(img, op["threshold"])
        else:
            raise ValueError("unknown op " + k)
    return np.array(img)


def check(tap, data, out, pipe, seed, n, size, fired):
    p = subprocess.run([LEWELB, "--seed", str(seed), "--size", str(size), "--pipe", pipe,
                        "views", data, out, str(n)], capture_output=True, text=True)
    tap.ok(p.returncode == 0, "%s views seed %d: exit %d %s" % (pipe, seed, p.returncode,
                                                                 p.stderr.strip()))
    worst = (0.0, 1.0, 0)
    lines = [json.loads(l) for l in open(os.path.join(out, "views", "params.jsonl"))]
    nviews = 2 if pipe == "lewelb" else 1
    tap.ok(len(lines) == n * nviews and
           [(l["index"], l["view"]) for l in lines] ==
           [(i, v) for i in range(n) for v in range(1, nviews + 1)],
           "%s seed %d: params.jsonl has one line per sample and view, in order" % (pipe, seed))
    for l in lines:
        img = Image.open(os.path.join(data, l["file"])).convert("RGB")
        want = replay(img, l["ops"], size)
        got = np.array(Image.open(os.path.join(out, "views", "%d_v%d.png"
                                               % (l["index"], l["view"]))))
        d = np.abs(got.astype(np.int32) - want.astype(np.int32))
        ok = d.mean() <= 1.0 and (d <= 2).mean() >= 0.97
        if not ok or d.max() > worst[2]:
            worst = (d.mean(), (d <= 2).mean(), int(d.max()))
        if not ok:
            tap.ok(False, "%s seed %d sample %d view %d (%s): mean %.3f within2 %.4f max %d"
                   % (pipe, seed, l["index"], l["view"], l["file"], d.mean(), (d <= 2).mean(),
                      d.max()))
        for op in l["ops"]:
            fired[op["op"]] = fired.get(op["op"], 0) + 1
    tap.ok(True, "%s seed %d: %d views replayed, worst mean %.3f within2 %.4f max %d"
           % (pipe, seed, len(lines), worst[0], worst[1], worst[2]))
    return lines


def main():
    torch.set_num_threads(1)
    tap = Tap()
    fired = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        make_data(data)
        n = sum(len(fs) for _, _, fs in os.walk(data))
        for seed in (0, 1, 2, 3):
            check(tap, data, os.path.join(tmp, "out%d" % seed), "lewelb", seed, n, 224, fired)
        for op in ("resized_crop", "horizontal_flip", "color_jitter", "grayscale",
                   "gaussian_blur", "solarize"):
            tap.ok(fired.get(op, 0) > 0, "LEWEL_B: %s fired %d times" % (op, fired.get(op, 0)))
        lines = check(tap, data, os.path.join(tmp, "eval"), "eval", 0, n, 224, {})
        tap.ok(all(l["ops"] == [{"op": "resize_center_crop"}] for l in lines),
               "eval: every view is resize_center_crop")
        check(tap, data, os.path.join(tmp, "lin"), "linear", 5, n, 224, {})
        check(tap, data, os.path.join(tmp, "eval64"), "eval", 0, n, 64, {})
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
