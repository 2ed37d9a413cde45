"""`make demo`: the built-in moving-shapes data, a short CPU training run, the reference's
evaluation beside a trivial baseline, and a GIF of inputs, truth and prediction.

    python demo.py [--minutes 7] [--storage storage/demo]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

import main
from dataloader import batch_to_device, build_test_loader
from runs import load_run
from tester import Evaluator, test_met
from trainer import train
from utils.visualize import side_by_side, write_gif

# A small model on 32 px frames, extrapolating, big enough to learn the shapes' motion in a few
# CPU minutes. The adversarial terms (--lamb_adv 0.003 in the paper) are left out: on 32 px
# frames the two fixed-size discriminators cost three times the generator, and they add little
# in a run this short.
DEMO_OPTIONS = ["--dataset", "shapes", "--extrap", "--input_size", "32", "--init_dim", "16",
                "--batch_size", "8", "--lamb_adv", "0", "--workers", "1", "--log_print_freq", "50",
                "--image_print_freq", "200", "--ckpt_save_freq", "500", "--test_every_epochs", "1000",
                "--name", "demo"]


def demo_gif(test_dir, out_path, n_clips=4, fps=4):
    """Observed frames, then truth | prediction | baseline for the predicted frames, per clip."""
    opt = main.get_opt(["--phase", "test_met", "--test_dir", str(test_dir), "--workers", "0"])
    ropt, model, *_ , device = load_run(opt)
    ev = Evaluator(ropt, model, device, None)
    batch = batch_to_device(next(iter(build_test_loader(ropt))), device)
    pred, gt, base = ev.predict(batch)
    obs = ev.to_unit(batch["observed_data"])
    n = min(n_clips, pred.size(0))
    videos = []
    for i in range(n):
        # the observed frames play first in every panel, then each panel's own future
        clip = [torch.cat([obs[i], x[i]], dim=0).clamp(0, 1) for x in (gt, pred, base)]
        videos.append(side_by_side(*clip, labels=["truth", "Vid-ODE", "copy last"]))
    video = torch.cat(videos, dim=2)  # clips stacked vertically: (T, 3, n*H', W')
    write_gif(video, out_path, fps=fps)
    return out_path


def run(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=7.0, help="training time budget")
    p.add_argument("--storage", default="storage/demo")
    p.add_argument("--num_threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    start = time.time()
    opt = main.get_opt(DEMO_OPTIONS + ["--max_minutes", str(args.minutes), "--storage", args.storage,
                                       "--num_threads", str(args.num_threads)])
    print(f"[demo] training Vid-ODE on moving shapes for {args.minutes:g} minutes")
    train(opt)
    run_dir = Path(opt.log_dir)
    print(f"[demo] evaluating {run_dir}")
    test_opt = main.get_opt(["--phase", "test_met", "--test_dir", str(run_dir), "--workers", "1",
                             "--num_threads", str(args.num_threads)])
    results = test_met(test_opt)
    gif = demo_gif(run_dir, run_dir / "demo.gif")
    m, b = results["model"], results["baseline"]
    print("\n[demo] ------------------------------------------------------------")
    print(f"[demo] test PSNR: Vid-ODE {m['psnr']:.2f} dB, baseline ({results['baseline_kind']}) "
          f"{b['psnr']:.2f} dB; SSIM {m['ssim']:.3f} vs {b['ssim']:.3f}")
    print(f"[demo] results: {run_dir / 'results.json'}")
    print(f"[demo] metrics by frame: {run_dir / 'metrics_by_index.png'}")
    print(f"[demo] GIF (observed, then truth | Vid-ODE | baseline): {gif}")
    print(f"[demo] TensorBoard: tensorboard --logdir {run_dir}")
    print(f"[demo] done in {(time.time() - start) / 60:.1f} minutes")
    summary = {"psnr_model": m["psnr"], "psnr_baseline": b["psnr"], "beats_baseline": m["psnr"] > b["psnr"]}
    (run_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    return 0 if summary["beats_baseline"] else 1


if __name__ == "__main__":
    sys.exit(run())
