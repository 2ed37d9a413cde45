"""Evaluation-metric throughput: the reference's PNG round trip vs the in-memory accumulator.

    python bench/bench_metrics.py [--frames 64] [--size 128] [--repeats 5] [--device cpu]

(a) reference path: save_image every predicted and true frame to PNG, read them back, PIL 'L'
    + skimage SSIM, MSE on the RGB arrays, LPIPS one frame at a time on the read-back images;
(b) in-memory: utils.metrics.MetricAccumulator.update + summary (batched SSIM and LPIPS).
LPIPS uses the lpips package's linear weights over a random AlexNet in both (no download).
Prints JSON (median and min seconds of `repeats` alternating runs after a warm-up, fps, the
same without LPIPS, and how far the two paths' numbers differ) and a one-line summary.
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torchvision.utils import save_image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.metrics import MetricAccumulator, load_lpips, ssim_skimage  # noqa: E402


def reference_path(pred, gt, folder, lpips_model):
    """(N, 3, H, W) frames -> mean SSIM, MSE, LPIPS via PNG files, one frame at a time."""
    for name, frames in (("pred", pred), ("gt", gt)):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i, f in enumerate(frames):
            save_image(f, os.path.join(folder, name, f"{i:05d}.png"))
    ssim, mse, lp = [], [], []
    dev = next(lpips_model.parameters()).device if lpips_model is not None else None
    for i in range(pred.shape[0]):
        a, b = (Image.open(os.path.join(folder, n, f"{i:05d}.png")).convert("RGB")
                for n in ("pred", "gt"))
        ssim.append(ssim_skimage(np.asarray(a.convert("L")), np.asarray(b.convert("L"))))
        ra, rb = np.asarray(a) / 255.0, np.asarray(b) / 255.0
        mse.append(float(np.mean((ra - rb) ** 2)))
        if lpips_model is not None:
            # as lpips.im2tensor: a contiguous (1, 3, H, W) float tensor in [-1, 1]
            ta, tb = (torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
                      .float().to(dev) * 2 - 1 for x in (ra, rb))
            if ta.shape[-1] != 128:
                ta, tb = (torch.nn.functional.interpolate(t, size=(128, 128), mode="bilinear",
                                                          align_corners=False) for t in (ta, tb))
            with torch.no_grad():
                lp.append(float(lpips_model(ta, tb)))
    return {"ssim": float(np.mean(ssim)), "mse": float(np.mean(mse)),
            "lpips": float(np.mean(lp)) if lp else None}


def in_memory(pred, gt, clip_len, lpips_model, device):
    acc = MetricAccumulator(lpips_model=lpips_model, device=device)
    n = pred.shape[0]
    acc.update(pred.view(n // clip_len, clip_len, *pred.shape[1:]),
               gt.view(n // clip_len, clip_len, *gt.shape[1:]))
    return acc.summary()


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_pair(fa, fb, repeats):
    """Median and min seconds of fa and fb, run alternately (fair under background load)."""
    out = [fa(), fb()]  # warm-up, and the results
    times = ([], [])
    for _ in range(repeats):
        for f, ts in zip((fa, fb), times):
            _sync()
            t = time.perf_counter()
            f()
            _sync()
            ts.append(time.perf_counter() - t)
    return [(statistics.median(ts), min(ts)) for ts in times], out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--clip_len", type=int, default=8, help="frames per clip (b = frames/clip_len)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, s = args.frames, args.size
    gt = torch.rand(n, 3, s // 8, s // 8)
    gt = torch.nn.functional.interpolate(gt, size=(s, s), mode="bilinear", align_corners=False)
    pred = (gt + 0.1 * torch.randn_like(gt)).to(args.device)  # a noisy prediction
    gt = gt.to(args.device)
    lp = load_lpips(args.device, pretrained_backbone=False)

    res = {"frames": n, "size": s, "device": str(args.device),
           "device_name": torch.cuda.get_device_name() if "cuda" in str(args.device) else "cpu",
           "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__,
           "repeats": args.repeats}
    for label, model in (("with_lpips", lp), ("no_lpips", None)):
        with tempfile.TemporaryDirectory() as tmp:
            ((t_ref, min_ref), (t_mem, min_mem)), (ref, mem) = timed_pair(
                lambda: reference_path(pred.cpu(), gt.cpu(), tmp, model),
                lambda: in_memory(pred, gt, args.clip_len, model, args.device), args.repeats)
        res[label] = {
            "reference_s": t_ref, "in_memory_s": t_mem, "reference_min_s": min_ref,
            "in_memory_min_s": min_mem, "reference_fps": n / t_ref, "in_memory_fps": n / t_mem,
            "speedup": t_ref / t_mem, "speedup_of_min": min_ref / min_mem,
            "abs_diff": {k: (abs(ref[k] - mem[k]) if ref[k] is not None else None)
                         for k in ("ssim", "mse", "lpips")},
        }
    print(json.dumps(res, indent=2))
    w = res["with_lpips"]
    print(f"bench_metrics: {n} frames {s}px on {res['device_name']} ({res['threads']} threads): "
          f"PNG round trip {w['reference_fps']:.1f} fps, in memory {w['in_memory_fps']:.1f} fps, "
          f"{w['speedup']:.1f}x (without LPIPS {res['no_lpips']['speedup']:.1f}x; target >= 5x)")
    ok = all(math.isfinite(res[k]["speedup"]) for k in ("with_lpips", "no_lpips"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
