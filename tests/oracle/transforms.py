# Each transform of the data path alone, with fixed parameters, against torchvision 0.14
# on Pillow: liblwl (through lwl-imgtool) must give the same uint8 pixels.
import itertools
import os
import sys
import tempfile

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageOps

from common import Tap, photos, read_ppm, tool


def run(tap, src_png, op, *args):
    out = src_png + ".out.ppm"
    tool(op, src_png, out, *args)
    return read_ppm(out)


def check_photo(tap, tmp, path):
    name = os.path.basename(path)
    img = Image.open(path).convert("RGB")
    png = os.path.join(tmp, name + ".png")
    img.save(png)
    W, H = img.size

    # Geometry: crops of every kind (down- and up-scaling, thin, whole, corner).
    boxes = [(0, 0, H, W), (10, 20, 200, 150), (H // 3, W // 4, H // 2, W // 3),
             (5, 7, 40, 31), (0, W - 1, H, 1), (H - 60, W - 90, 60, 90), (1, 1, 224, 224)]
    for (t, l, h, w) in boxes:
        want = np.array(F.resized_crop(img, t, l, h, w, [224, 224]))
        got = run(tap, png, "resized_crop", t, l, h, w, 224)
        tap.image(got, want, "%s resized_crop (%d,%d,%d,%d)->224" % (name, t, l, h, w), True)
    for short, size in [(256, 224), (73, 64)]:
        want = np.array(T.Compose([T.Resize(short), T.CenterCrop(size)])(img))
        got = run(tap, png, "resize_center_crop", short, size)
        tap.image(got, want, "%s resize %d + center crop %d" % (name, short, size), True)
    tap.image(run(tap, png, "hflip"), np.array(F.hflip(img)), name + " hflip", True)

    # Colour: each enhancer alone over its range and beyond.
    for f in [0.0, 0.6, 0.93, 1.0, 1.4, 2.5]:
        tap.image(run(tap, png, "brightness", f), np.array(F.adjust_brightness(img, f)),
                  "%s brightness %g" % (name, f), True)
        tap.image(run(tap, png, "contrast", f), np.array(F.adjust_contrast(img, f)),
                  "%s contrast %g" % (name, f), True)
        tap.image(run(tap, png, "saturation", f), np.array(F.adjust_saturation(img, f)),
                  "%s saturation %g" % (name, f), True)
    for h in [-0.5, -0.1, -0.0999, -0.03, 0.0, 0.0013, 0.05, 0.1, 0.5]:
        tap.image(run(tap, png, "hue", h), np.array(F.adjust_hue(img, h)),
                  "%s hue %g" % (name, h), True)

    # The whole jitter in a few orders.
    fac = (1.23, 0.71, 1.15, -0.07)
    for order in [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)]:
        want = img
        fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
        for o in order:
            want = fns[o](want, fac[o])
        got = run(tap, png, "jitter", *fac, *order)
        tap.image(got, np.array(want), "%s jitter order %s" % (name, order), True)

    tap.image(run(tap, png, "grayscale"), np.array(F.rgb_to_grayscale(img, 3)),
              name + " grayscale", True)
    for s in [0.1, 0.5, 1.0, 1.37, 2.0, 5.0]:
        want = np.array(img.filter(ImageFilter.GaussianBlur(s)))
        tap.image(run(tap, png, "blur", s), want, "%s gaussian_blur sigma %g" % (name, s), True)
    for t in [0, 128, 200, 256]:
        tap.image(run(tap, png, "solarize", t), np.array(ImageOps.solarize(img, t)),
                  "%s solarize %d" % (name, t), True)

    # ToTensor + Normalize in float32.
    out = png + ".f32"
    tool("normalize", png, out)
    got = np.fromfile(out, dtype=np.float32).reshape(3, H, W)
    norm = T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    want = norm(T.ToTensor()(img)).numpy()
    err = float(np.abs(got - want).max())
    tap.ok(err <= 1e-6, "%s normalize: max |diff| %.3g" % (name, err))


def check_synthetic(tap, tmp):
    png = os.path.join(tmp, "syn.png")

    # Pure colours to luma: red, green, blue, white -> 76, 150, 29, 255.
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    Image.fromarray(px).save(png)
    got = run(tap, png, "grayscale")[0, :, 0].tolist()
    tap.ok(got == [76, 150, 29, 255], "grayscale of red, green, blue, white: %s" % got)

    # A constant image stays constant under the blur, whatever sigma.
    Image.new("RGB", (37, 23), (200, 17, 90)).save(png)
    for s in [0.1, 2.0, 30.0]:
        got = run(tap, png, "blur", s)
        tap.ok((got == [200, 17, 90]).all(), "constant image stays constant, sigma %g" % s)

    # Hue on a gray image is the identity.
    g = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (4, 1, 3))
    Image.fromarray(g).save(png)
    tap.ok((run(tap, png, "hue", 0.37) == g).all(), "hue on zero saturation is identity")

    # Every RGB triple of a coarse cube through hue and saturation, vs PIL.
    v = np.arange(0, 256, 5, dtype=np.uint8)
    cube = np.array(list(itertools.product(v, v, v)), dtype=np.uint8).reshape(52 * 52, 52, 3)
    img = Image.fromarray(cube)
    img.save(png)
    for h in [-0.2, 0.031, 0.25]:
        tap.image(run(tap, png, "hue", h), np.array(F.adjust_hue(img, h)),
                  "RGB cube hue %g" % h, True)
    tap.image(run(tap, png, "saturation", 1.7), np.array(F.adjust_saturation(img, 1.7)),
              "RGB cube saturation 1.7", True)

    # Blur of small and thin images, where the box is wider than the image.
    rng = np.random.default_rng(3)
    for (h, w) in [(1, 1), (1, 9), (7, 2), (13, 40)]:
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(a)
        img.save(png)
        for s in [0.7, 4.0]:
            tap.image(run(tap, png, "blur", s), np.array(img.filter(ImageFilter.GaussianBlur(s))),
                      "blur of random %dx%d sigma %g" % (w, h, s), True)
        want = np.array(F.resized_crop(img, 0, 0, h, w, [5, 5]))
        tap.image(run(tap, png, "resized_crop", 0, 0, h, w, 5), want,
                  "resize random %dx%d -> 5x5" % (w, h), True)


def main():
    torch.set_num_threads(1)
    tap = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        for p in photos():
            check_photo(tap, tmp, p)
        check_synthetic(tap, tmp)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
