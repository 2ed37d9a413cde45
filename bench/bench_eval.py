"""Evaluation benchmark: test_met's in-memory metrics vs the reference's PNG round trip.

    python bench/bench_eval.py                        # small and default options, interpolation
    python bench/bench_eval.py --configs default --batches 2 --repeats 3

What test_met does for each test batch, on random smooth clips (regular interpolation at test
time: observe the even frames, predict the odd ones but the last), float32, BatchNorm on batch
statistics as test_met does by default:
  forward    the generator's prediction (Evaluator.predict), the same for every path;
  in_memory  test_met's metrics of the model's frames: MetricAccumulator.update (quantised
             as PNG would, batched SSIM, MSE, LPIPS), the same work as the PNG path;
  test_met   the same plus the trivial baseline's metrics, as test_met computes both;
  png        the reference's way: every predicted and true frame written as PNG (test_met's
             --save_images writer), read back, and SSIM (skimage), MSE and LPIPS computed one
             frame at a time on the read-back images.
The three parts are timed alternately, `repeats` times after a warm-up (median), over `batches`
batches. frames/s counts predicted frames; "end to end" adds the forward pass to each path.
LPIPS uses the lpips package's linear weights over a random AlexNet (no download), or none
(--no_lpips; real runs without AlexNet weights report LPIPS as null).
Prints one JSON object per configuration and a one-line summary.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {
    "default": [],  # batch 8, 128 px, init_dim 32, sample_size 10, dopri5
    "small": ["--input_size", "32", "--init_dim", "8", "--batch_size", "2"],  # the golden cases' size
}


def test_batches(opt, n_batches, seed=0):
    """Test-time regular-interpolation batches of smooth random clips (with clip indices)."""
    from dataloader.batch import make_batch
    g = torch.Generator().manual_seed(seed)
    b, s, T = opt.batch_size, opt.input_size, opt.sample_size
    out = []
    for i in range(n_batches):
        low = torch.rand(b, T, 3, max(2, s // 8), max(2, s // 8), generator=g)
        data = torch.nn.functional.interpolate(low.flatten(0, 1), size=(s, s), mode="bilinear",
                                               align_corners=False).view(b, T, 3, s, s)
        mask = (torch.arange(T) % 2 == 0).float().view(1, T, 1).expand(b, T, 1)
        tp = torch.arange(T // 2).float() / (T // 2)
        out.append(make_batch(data, mask, tp, opt, test_interp=True, mode="test",
                              clip_index=torch.arange(i * b, (i + 1) * b)))
    return out


def png_round_trip(folder, batches, preds, lpips_model):
    """The reference: write pred and gt PNGs (test_met's --save_images writer), read them back,
    per-frame SSIM (skimage on PIL 'L'), MSE (RGB in [0, 1]), LPIPS (one frame at a time)."""
    from tester import save_pngs
    from utils.metrics import lpips_input, ssim_skimage
    ssim, mse, lp = [], [], []
    for batch, (pred, gt) in zip(batches, preds):
        clips = batch["clip_index"].tolist()
        save_pngs(folder, clips, pred, gt)
        for clip in clips:
            for t in range(pred.size(1)):
                a, b = (Image.open(Path(folder) / kind / f"{clip:05d}_{t:02d}.png").convert("RGB")
                        for kind in ("pred", "gt"))
                ssim.append(ssim_skimage(np.asarray(a.convert("L")), np.asarray(b.convert("L"))))
                ra, rb = np.asarray(a), np.asarray(b)
                mse.append(float(np.mean((ra / 255.0 - rb / 255.0) ** 2)))
                if lpips_model is not None:
                    qa, qb = (torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None] for x in (ra, rb))
                    with torch.no_grad():
                        lp.append(float(lpips_model(lpips_input(qa), lpips_input(qb))))
    return {"ssim": float(np.mean(ssim)), "mse": float(np.mean(mse)),
            "lpips": float(np.mean(lp)) if lp else None}


def run_config(config, n_batches, repeats, threads, with_lpips):
    import main
    from models import VidODE
    from models.performance import apply_speed_options
    from tester import Evaluator
    from utils.metrics import MetricAccumulator, load_lpips
    torch.set_num_threads(threads)
    opt = main.get_opt(CONFIGS[config])
    torch.manual_seed(0)
    model = VidODE(opt, "cpu")
    model.train()  # test_met's default: BatchNorm on batch statistics, as the reference
    apply_speed_options(opt, model)  # as test_met applies them
    lpips_model = load_lpips("cpu", pretrained_backbone=False) if with_lpips else None
    batches = test_batches(opt, n_batches)
    ev = Evaluator(opt, model, torch.device("cpu"), lpips_model)

    def forward():
        return [ev.predict(b) for b in batches]

    preds = [(p, g) for p, g, _ in forward()]
    outs = forward()
    n_frames = sum(p.size(0) * p.size(1) for p, _ in preds)

    def in_memory(baseline):
        acc, base = MetricAccumulator(lpips_model), MetricAccumulator(lpips_model)
        for p, g, bl in outs:
            acc.update(p, g)
            if baseline:
                base.update(bl, g)
        return acc.summary()

    times = {"forward": [], "in_memory": [], "test_met": [], "png": []}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        steps = {"forward": forward, "in_memory": lambda: in_memory(False), "test_met": lambda: in_memory(True),
                 "png": lambda: png_round_trip(tmp, batches, preds, lpips_model)}
        for name, f in steps.items():  # warm-up
            results[name] = f()
        for _ in range(repeats):
            for name, f in steps.items():
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem, png = results["in_memory"], results["png"]
    return {
        "config": config, "lpips": with_lpips, "batches": n_batches, "frames": n_frames,
        "seconds": med, "min_seconds": {k: min(v) for k, v in times.items()},
        "metrics_fps": {"in_memory": n_frames / med["in_memory"], "png": n_frames / med["png"],
                        "test_met_with_baseline": n_frames / med["test_met"]},
        "metrics_speedup": med["png"] / med["in_memory"],
        "end_to_end_fps": {"in_memory": n_frames / (med["forward"] + med["in_memory"]),
                           "png": n_frames / (med["forward"] + med["png"])},
        "end_to_end_speedup": (med["forward"] + med["png"]) / (med["forward"] + med["in_memory"]),
        "abs_diff": {k: None if png[k] is None else abs(png[k] - mem[k]) for k in ("ssim", "mse", "lpips")},
        "device": "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_avg": os.getloadavg()[0],
    }


def main_cli():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["small", "default"], choices=list(CONFIGS))
    p.add_argument("--batches", type=int, default=0, help="test batches (0: 8 small, 2 default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no_lpips", action="store_true", help="only without LPIPS")
    args = p.parse_args()
    res = []
    for c in args.configs:
        n = args.batches or (8 if c == "small" else 2)
        for lp in ((False,) if args.no_lpips else (True, False)):
            r = run_config(c, n, args.repeats, args.threads, lp)
            print(json.dumps(r), flush=True)
            res.append(r)
    print("summary: " + "; ".join(
        f"{r['config']}{'' if r['lpips'] else ' no-LPIPS'}: metrics {r['metrics_fps']['in_memory']:.0f} vs "
        f"{r['metrics_fps']['png']:.0f} frames/s ({r['metrics_speedup']:.1f}x), end to end "
        f"{r['end_to_end_fps']['in_memory']:.1f} vs {r['end_to_end_fps']['png']:.1f} frames/s "
        f"({r['end_to_end_speedup']:.1f}x)" for r in res))


if __name__ == "__main__":
    main_cli()
