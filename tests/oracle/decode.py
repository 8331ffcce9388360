# Every decoder case of issue 3 against Pillow's Image.open(f).convert('RGB') (what
# torchvision's ImageFolder loader does), on files this script makes; plus unreadable and
# truncated files, and region-of-interest decodes equal to crops of the full decode.
import io
import os
import sys
import tempfile

import numpy as np
from PIL import Image

from common import Tap, photos, read_ppm, tool


def pil_rgb(path):
    with open(path, "rb") as f:
        return np.array(Image.open(f).convert("RGB"))


def decode(path, tmp):
    out = os.path.join(tmp, "out.ppm")
    rc, _, err = tool("decode", path, out, check=False)
    return rc, (read_ppm(out) if rc == 0 else None), err


def same(tap, path, tmp, name, tol=0):
    rc, got, err = decode(path, tmp)
    if rc != 0:
        tap.ok(False, "%s: decode failed: %s" % (name, err.strip()))
        return
    want = pil_rgb(path)
    if got.shape != want.shape:
        tap.ok(False, "%s: shape %s, Pillow %s" % (name, got.shape, want.shape))
        return
    d = int(np.abs(got.astype(int) - want.astype(int)).max())
    tap.ok(d <= tol, "%s: %dx%d, max |diff| vs Pillow %d (allowed %d)"
           % (name, got.shape[1], got.shape[0], d, tol))


def make_files(tmp):
    """The decoder cases: name -> (path, tolerance)."""
    cases = {}
    bird = Image.open(photos()[0]).convert("RGB")

    def save(name, im, tol=0, **kw):
        p = os.path.join(tmp, name)
        im.save(p, **kw)
        cases[name] = (p, tol)

    for p in photos():
        cases[os.path.basename(p)] = (p, 0)
    save("progressive.jpg", bird, format="JPEG", progressive=True, quality=90)
    save("subsampling444.jpg", bird, format="JPEG", subsampling=0, quality=90)
    save("subsampling422.jpg", bird, format="JPEG", subsampling=1, quality=90)
    save("gray.jpg", bird.convert("L"), format="JPEG")
    save("gray_progressive.jpg", bird.convert("L"), format="JPEG", progressive=True)
    save("cmyk.jpg", bird.convert("CMYK"), tol=1, format="JPEG")
    save("cmyk_progressive.jpg", bird.convert("CMYK"), tol=1, format="JPEG", progressive=True)
    save("png_named.JPEG", bird, format="PNG")
    save("rgba.png", bird.convert("RGBA"), format="PNG")
    save("palette.png", bird.convert("P"), format="PNG")
    save("gray.png", bird.convert("L"), format="PNG")
    save("gray_alpha.png", bird.convert("LA"), format="PNG")
    save("interlaced.png", bird, format="PNG", optimize=False)
    save("one_by_one.jpg", Image.new("RGB", (1, 1), (200, 30, 90)), format="JPEG")
    save("wide_1000x10.jpg", bird.resize((1000, 10)), format="JPEG")
    save("tall_10x1000.png", bird.resize((10, 1000)), format="PNG")

    # EXIF orientation 6 (rotate 90): the reference does not rotate, nor do we.
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif_rotated.jpg", bird, format="JPEG", exif=exif.tobytes())

    # YCCK: Pillow cannot write it, lwl-imgtool can (libjpeg's YCCK transform).
    p = os.path.join(tmp, "ycck.jpg")
    tool("encode_ycck", photos()[0], p)
    cases["ycck.jpg"] = (p, 1)
    return cases


def check_gray_pixel(tap, tmp):
    p = os.path.join(tmp, "gray128.jpg")
    Image.new("L", (1, 1), 128).save(p, format="JPEG")
    rc, got, _ = decode(p, tmp)
    tap.ok(rc == 0 and got.shape == (1, 1, 3) and (got == 128).all(),
           "1x1 gray JPEG of Y=128 gives R=G=B=128: %s" % (None if got is None else got.ravel()))


def check_unreadable(tap, tmp):
    jpeg = io.BytesIO()
    Image.open(photos()[0]).save(jpeg, format="JPEG")
    jpeg = jpeg.getvalue()
    bad = {
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"this is not an image\n", "not a JPEG or PNG"),
        "corrupt_header.jpg": (b"\xff\xd8\xff\xe0" + b"\x00\x02" + bytes(200), "JPEG:"),
        "sof_only.jpg": (jpeg[:300], "JPEG:"),
        "png_garbage.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2, "PNG:"),
        "missing.jpg": (None, "cannot open"),
    }
    for name, (data, reason) in bad.items():
        p = os.path.join(tmp, name)
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
        rc, _, err = decode(p, tmp)
        tap.ok(rc == 1 and "error:" in err and reason in err,
               "%s: refused with a reason (rc %d): %s" % (name, rc, err.strip()))


def check_truncated(tap, tmp):
    for name, prog in [("truncated.jpg", False), ("truncated_progressive.jpg", True)]:
        buf = io.BytesIO()
        Image.open(photos()[0]).save(buf, format="JPEG", progressive=prog, quality=90)
        full = os.path.join(tmp, "full_" + name)
        with open(full, "wb") as f:
            f.write(buf.getvalue())
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
        rc, got, err = decode(p, tmp)
        _, whole, _ = decode(full, tmp)
        ok = rc == 0 and "warning:" in err and got.shape == whole.shape
        # A baseline file keeps its first rows exactly; a progressive one is coarser.
        top = whole.shape[0] // 4
        d = np.abs(got[:top].astype(int) - whole[:top].astype(int)).mean() if ok else -1
        ok = ok and (d == 0 if not prog else d < 8)
        tap.ok(ok, "%s: decoded with a warning (%s); top quarter mean |diff| %.3f"
               % (name, err.strip().split("warning: ")[-1], d))


def check_regions(tap, tmp, cases):
    rng = np.random.default_rng(1)
    for name in ["bird.jpg", "dog.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "ycck.jpg",
                 "subsampling422.jpg", "png_named.JPEG", "wide_1000x10.jpg"]:
        path = cases[name][0]
        _, full, _ = decode(path, tmp)
        H, W = full.shape[:2]
        worst = 0
        for _ in range(12):
            h = int(rng.integers(1, H + 1))
            w = int(rng.integers(1, W + 1))
            t = int(rng.integers(0, H - h + 1))
            l = int(rng.integers(0, W - w + 1))
            out = os.path.join(tmp, "roi.ppm")
            tool("region", path, out, t, l, h, w)
            got = read_ppm(out)
            want = full[t:t + h, l:l + w]
            worst = max(worst, 999 if got.shape != want.shape else
                        int(np.abs(got.astype(int) - want.astype(int)).max()))
        tap.ok(worst == 0, "%s: 12 region decodes equal the full decode's crops (max %d)"
               % (name, worst))


def main():
    tap = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        cases = make_files(tmp)
        for name, (path, tol) in cases.items():
            same(tap, path, tmp, name, tol)
        check_gray_pixel(tap, tmp)
        check_unreadable(tap, tmp)
        check_truncated(tap, tmp)
        check_regions(tap, tmp, cases)
        _, out, _ = tool("size", cases["wide_1000x10.jpg"][0])
        tap.ok(out.split() == ["1000", "10"], "size from the header: %s" % out.strip())
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
