"""`make demo`: moving shapes, a short CPU training run, test_met beside a baseline, and a GIF.

    python demo.py [--minutes 7] [--storage storage/demo]
"""
import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

import main
from dataloader import build_test_loader
from dataloader.transforms import to_unit
from runs import merge_run_options, read_options
from utils.atomic import atomic_write_json
from utils.baselines import baseline
from utils.visualize import side_by_side, write_gif

# a small extrapolating model, no adversarial terms (at 32 px they cost 3x the generator)
DEMO_OPTIONS = ["--dataset", "shapes", "--extrap", "--input_size", "32", "--init_dim", "16",
                "--batch_size", "8", "--lamb_adv", "0", "--workers", "1", "--log_print_freq", "50",
                "--image_print_freq", "200", "--ckpt_save_freq", "500", "--test_every_epochs", "1000",
                "--name", "demo"]


def run_folders(storage: str | Path) -> set[Path]:
    """The run folders (holding options.json) under <storage>/logs/<MMDD>/."""
    return {p.parent for p in Path(storage, "logs").glob("*/*/options.json")}


def read_frames(folder: Path, clip: int) -> torch.Tensor:
    """test_met's --save_images PNGs of one clip, <folder>/<clip>_<frame>.png -> (T, 3, H, W) in [0, 1]."""
    paths = sorted(Path(folder).glob(f"{clip:05d}_*.png"))
    if not paths:
        raise FileNotFoundError(f"no frames of clip {clip} in {folder}; test_met --save_images writes them")
    frames = [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths]
    return torch.stack(frames).float() / 255


def demo_gif(test_dir: Path, out_path: Path, n_clips: int = 4, fps: int = 4) -> Path:
    """A GIF, per clip the observed frames, then truth | prediction | copy-last (test_met PNGs)."""
    opt = main.get_opt(["--phase", "test_met", "--test_dir", str(test_dir), "--workers", "0"])
    run_opt = merge_run_options(opt, read_options(test_dir))
    batch = next(iter(build_test_loader(run_opt)))
    obs = to_unit(batch["observed_data"], run_opt.input_norm)  # (b, N, 3, H, W)
    last = baseline(obs, batch["observed_tp"], batch["observed_mask"], batch["tp_to_predict"], True)[:, 0]  # (b, 3, H, W)
    images = Path(test_dir) / "result_images"
    videos = []
    for i in range(min(n_clips, obs.size(0))):
        index = int(batch["clip_index"][i])
        gt, pred = read_frames(images / "gt", index), read_frames(images / "pred", index)
        base = last[i].unsqueeze(0).expand_as(pred)
        # the observed frames play first in every panel, then each panel's own future
        clip = [torch.cat([obs[i], x], dim=0).clamp(0, 1) for x in (gt, pred, base)]
        videos.append(side_by_side(*clip, labels=["truth", "Vid-ODE", "copy last"]))
    write_gif(torch.cat(videos, dim=2), out_path, fps=fps)  # clips stacked: (T, 3, n*H', W')
    return out_path


def _lpips_text(summary: dict) -> str:
    """LPIPS to 3 decimals, or why it is missing."""
    return "n/a (no AlexNet weights, see the warning above)" if summary["lpips"] is None else f"{summary['lpips']:.3f}"


def run(argv: Optional[Sequence[str]] = None) -> int:
    """The demo; exit code 0 when Vid-ODE beats the baseline's PSNR, 1 when not, main's code on errors."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=7.0, help="training time budget")
    p.add_argument("--storage", default="storage/demo")
    p.add_argument("--num_threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    start = time.time()
    before = run_folders(args.storage)
    print(f"[demo] training Vid-ODE on moving shapes for {args.minutes:g} minutes")
    code = main.main(["--phase", "train"] + DEMO_OPTIONS + [
        "--max_minutes", str(args.minutes), "--storage", args.storage, "--num_threads", str(args.num_threads)])
    if code:
        return code
    new = run_folders(args.storage) - before
    if not new:
        print(f"error: train wrote no run folder under {Path(args.storage) / 'logs'}", file=sys.stderr)
        return 2
    run_dir = max(new, key=lambda p: (p / "options.json").stat().st_mtime)
    print(f"[demo] evaluating {run_dir}")
    code = main.main(["--phase", "test_met", "--test_dir", str(run_dir), "--workers", "1", "--save_images",
                      "--num_threads", str(args.num_threads)])
    if code:
        return code
    results = json.loads((run_dir / "results.json").read_text())
    gif = demo_gif(run_dir, run_dir / "demo.gif")
    m, b = results["model"], results["baseline"]
    print("\n[demo] ------------------------------------------------------------")
    print(f"[demo] test PSNR: Vid-ODE {m['psnr']:.2f} dB, baseline ({results['baseline_kind']}) "
          f"{b['psnr']:.2f} dB; SSIM {m['ssim']:.3f} vs {b['ssim']:.3f}")
    print(f"[demo] test LPIPS (lower is better): Vid-ODE {_lpips_text(m)}, baseline {_lpips_text(b)}; "
          f"AlexNet weights: {results['lpips_backbone']}")
    print(f"[demo] results: {run_dir / 'results.json'}")
    print(f"[demo] metrics by frame: {run_dir / 'metrics_by_index.png'}")
    print(f"[demo] GIF (observed, then truth | Vid-ODE | baseline): {gif}")
    print(f"[demo] TensorBoard: tensorboard --logdir {run_dir}")
    print(f"[demo] done in {(time.time() - start) / 60:.1f} minutes")
    summary = {"psnr_model": m["psnr"], "psnr_baseline": b["psnr"], "beats_baseline": m["psnr"] > b["psnr"],
               "lpips_model": m["lpips"], "lpips_baseline": b["lpips"], "lpips_backbone": results["lpips_backbone"]}
    atomic_write_json(run_dir / "demo_summary.json", summary)
    return 0 if summary["beats_baseline"] else 1


if __name__ == "__main__":
    sys.exit(run())
