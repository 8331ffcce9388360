"""The PyTorch side of the GPU step bench (tests/gpu/run.sh): one LEWEL_B pre-training step of
the study's baseline written as PyTorch users write it, timed on one GPU, for a ratio against
the step of the program lwlc builds (its `bench` phase) on the same GPU.

    step_torch.py --batch 64 --steps 20 [--size 224] [--fp32]

torchvision's ResNet-50 without pooling and fc, the LEWEL_B neck (the shared projection over
the pooled vector and every position, L2-normalised softmax alignment maps in 4 heads, the
aligned projection) and both predictors as 1x1-Conv1d MLPs (the reference code's), the
symmetric loss, backward, LARS with momentum (no decay or adaptation for 1-D tensors), the
EMAN target's moving average of parameters and BN buffers, target BN in eval mode. AMP bf16
(autocast) and channels_last, as the fastest PyTorch recipes run. Views are random tensors
already on the GPU (no data loading). Prints the median ms of the timed steps and img/s,
each image of the batch counted once for its two views.
"""
import argparse
import copy
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def mlp(cin, hidden, out):
    return nn.Sequential(nn.Conv1d(cin, hidden, 1, bias=False), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Conv1d(hidden, out, 1, bias=False))


class Encoder(nn.Module):
    """Backbone and neck: the global embedding (B, D, 1) and the aligned ones (B, D, K)."""

    def __init__(self, heads=4, hidden=4096, dim=256):
        super().__init__()
        r = torchvision.models.resnet50()
        self.backbone = nn.Sequential(*list(r.children())[:-2])
        self.proj, self.proj_obj = mlp(2048, hidden, dim), mlp(2048, hidden, dim)
        self.heads = heads

    def forward(self, img):
        x = self.backbone(img).flatten(2)                    # (B, C, P)
        b, c, p = x.shape
        z = self.proj(torch.cat([x.mean(2, keepdim=True), x], 2))
        zg, a = z[:, :, :1], z[:, :, 1:]
        a = F.softmax(F.normalize(a, dim=1), dim=2)          # (B, D, P)
        h = self.heads
        o = torch.einsum("bhcp,bhkp->bhck", x.view(b, h, c // h, p),
                         a.view(b, h, a.shape[1] // h, p)).reshape(b, c, -1)
        return zg, self.proj_obj(o)


def cos_loss(p, t):
    return 2 - 2 * F.cosine_similarity(p, t, dim=1).mean()


def lars_(params, bufs, lr, wd=1e-6, eta=1e-3, momentum=0.9):
    for w, buf in zip(params, bufs):
        g = w.grad
        if w.dim() == 1:
            d = g * lr
        else:
            wn, gn = torch.norm(w), torch.norm(g)
            trust = torch.where((wn > 0) & (gn > 0), eta * wn / (gn + wd * wn),
                                torch.ones_like(wn))
            d = (g + wd * w) * (trust * lr)
        buf.mul_(momentum).add_(d)
        w.data.sub_(buf)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--fp32", action="store_true", help="no autocast")
    a = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    online = Encoder().to(dev).to(memory_format=torch.channels_last)
    pred, pred_obj = mlp(256, 4096, 256).to(dev), mlp(256, 4096, 256).to(dev)
    target = copy.deepcopy(online).eval()
    for q in target.parameters():
        q.requires_grad_(False)
    params = list(online.parameters()) + list(pred.parameters()) + list(pred_obj.parameters())
    bufs = [torch.zeros_like(q) for q in params]
    views = [torch.randn(a.batch, 3, a.size, a.size, device=dev)
             .contiguous(memory_format=torch.channels_last) for _ in range(2)]

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not a.fp32):
            with torch.no_grad():
                tz = [target(v) for v in views]
            oz = [online(v) for v in views]
            loss = 0
            for i, j in ((0, 1), (1, 0)):
                qg, qo = pred(oz[i][0]), pred_obj(oz[i][1])
                loss = loss + 0.5 * cos_loss(qg.float(), tz[j][0].float()) \
                    + 0.5 * cos_loss(qo.float(), tz[j][1].float())
        for q in params:
            q.grad = None
        loss.backward()
        with torch.no_grad():
            lars_(params, bufs, 0.45)
            for t, o in zip(target.state_dict().values(), online.state_dict().values()):
                if t.dtype.is_floating_point:
                    t.mul_(0.99).add_(o, alpha=0.01)
        return loss

    times = []
    for k in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        if k >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    ms = statistics.median(times)
    print(f"pytorch {torch.__version__} {'fp32' if a.fp32 else 'bf16 autocast'} channels_last: "
          f"batch {a.batch} at {a.size} px: {ms:.1f} ms/step, img/s {a.batch / ms * 1e3:.1f}")


if __name__ == "__main__":
    main()
