# bench/data.sh's helpers: make the benchmark photographs, and time the reference data path
# (PIL decode + LEWEL_B's two torchvision views + ToTensor + Normalize) on one core.
import os
import random
import sys
import time

from PIL import Image, ImageFilter, ImageOps


def make(src_dir, out_dir, n):
    """n JPEGs (quality 90) of about ImageNet's size: random crops of the sample photos
    resized to 500x375 (or 375x500), in 5 class folders."""
    random.seed(0)
    photos = sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir) if f.endswith(".jpg"))
    for i in range(n):
        img = Image.open(photos[i % len(photos)]).convert("RGB")
        w, h = img.size
        cw, ch = int(w * random.uniform(0.6, 1.0)), int(h * random.uniform(0.6, 1.0))
        x, y = random.randint(0, w - cw), random.randint(0, h - ch)
        size = (500, 375) if i % 4 else (375, 500)
        img = img.crop((x, y, x + cw, y + ch)).resize(size, Image.BICUBIC)
        d = os.path.join(out_dir, "c%d" % (i % 5))
        os.makedirs(d, exist_ok=True)
        img.save(os.path.join(d, "img%03d.jpg" % i), quality=90)


def reference(root, images):
    import torch
    import torchvision.transforms as T

    torch.set_num_threads(1)

    class Blur:
        def __init__(self, sigma=(0.1, 2.0)):
            self.sigma = sigma

        def __call__(self, x):
            return x.filter(ImageFilter.GaussianBlur(random.uniform(*self.sigma)))

    class Solarize:
        def __call__(self, x):
            return ImageOps.solarize(x)

    norm = T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

    def view(blur_p, sol_p):
        return T.Compose([
            T.RandomResizedCrop(224, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([Blur()], p=blur_p),
            T.RandomApply([Solarize()], p=sol_p),
            T.ToTensor(), norm])

    t1, t2 = view(1.0, 0.0), view(0.1, 0.2)
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
    t0 = time.perf_counter()
    for i in range(images):
        with open(files[i % len(files)], "rb") as f:
            img = Image.open(f).convert("RGB")
        t1(img), t2(img)
    return images / (time.perf_counter() - t0)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        print("%.1f" % reference(sys.argv[2], int(sys.argv[3])))
