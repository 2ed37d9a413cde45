"""eval_continuous: the generator scored at unseen times on the moving shapes, whose true frame
exists at any time: at the training grid, between its points at --fps_factor times the rate and
(extrapolation runs) beyond the training horizon, against the trivial baseline. Times are in frame
units of the observed input (see utils/timeline.py).
"""
import math
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np
import torch

from dataloader import batch_to_device, build_test_loader
from dataloader.shapes import load_meta, render_clip
from dataloader.timeaxis import model_times, slots_per_unit, source_frames_per_unit
from dataloader.transforms import transform_clip
from runs import RunError, load_run, read_options
from utils.atomic import atomic_write_json
from utils.baselines import baseline_kind, blend_neighbours, last_observed
from utils.metrics import MetricAccumulator, load_lpips, lpips_backbone
from utils.timeline import (DEFAULT_FPS_FACTOR, EPS, fmt_time, grid_times,
                            predicted_frames, synthesize)


def _to_unit(x, run_opt):
    return x * 0.5 + 0.5 if run_opt.input_norm else x


def time_sets(run_opt: SimpleNamespace, n: int, fps_factor: int,
              horizon: Optional[float] = None) -> list[tuple[str, str, list[float], list[bool]]]:
    """[(name, description, times, scored flags)] in input frame units for an N-frame input;
    fps_factor >= 2 (main.check_generation_opt)."""
    if not run_opt.extrap:
        between = grid_times(n, fps_factor, False, None, 0)
        return [("grid", "training time stamps (at observed frames the baseline is exact)",
                 list(range(n)), [True] * n),
                (f"between_x{fps_factor}", f"{fps_factor}x the rate, off the training grid",
                 between, [j % fps_factor != 0 for j in range(len(between))])]
    p = predicted_frames(run_opt)
    grid = list(range(n, n + p))
    between = grid_times(n, fps_factor, True, None, p)
    end = n - 1 + p
    horizon = horizon or n - 1 + 2 * p
    if horizon <= end:
        raise RunError(f"--horizon {fmt_time(horizon)} must exceed the training horizon (frame {end})")
    beyond = list(range(n, int(math.floor(horizon + EPS)) + 1))
    return [("grid", "training time stamps", grid, [True] * p),
            (f"between_x{fps_factor}", f"{fps_factor}x the rate, off the training grid",
             between, [j % fps_factor != 0 for j in range(len(between))]),
            ("beyond", f"training rate, after the training horizon (frame {end}) up to {fmt_time(horizon)}",
             beyond, [t > end for t in beyond])]


def shapes_truth(meta: dict, clip_ids: list[int], times: list[float], run_opt: SimpleNamespace) -> torch.Tensor:
    """True frames at input-frame times -> (b, T, C, H, W), transformed as the data set does."""
    scale = source_frames_per_unit(run_opt) / slots_per_unit(run_opt)  # original frames per input frame
    orig = np.asarray(times, np.float64) * scale
    clips = [transform_clip(render_clip(meta["test"][c], orig, meta["size"]), "shapes", run_opt.input_size,
                            augment=False, input_norm=run_opt.input_norm) for c in clip_ids]
    return torch.stack(clips)


def _row(name, desc, times, scored, acc, acc_base):
    m, b = acc.summary(), acc_base.summary()
    keys = ("ssim", "psnr", "mse", "psnr_per_frame_mean", "lpips")
    return {"time_set": name, "description": desc, "n_frames": m["n_frames"],
            "scored_times": [t for t, s in zip(times, scored) if s],
            "model": {k: m[k] for k in keys}, "baseline": {k: b[k] for k in keys}}


def _table(rows):
    num = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    lines = [f"{'time set':<14}{'frames':>7} | {'model SSIM':>10}{'PSNR':>8}{'LPIPS':>7} | "
             f"{'baseline SSIM':>13}{'PSNR':>8}{'LPIPS':>7}"]
    for r in rows:
        m, b = r["model"], r["baseline"]
        lines.append(f"{r['time_set']:<14}{r['n_frames']:>7} | {num(m['ssim'], '.4f'):>10}"
                     f"{num(m['psnr'], '.2f'):>8}{num(m['lpips'], '.3f'):>7} | {num(b['ssim'], '.4f'):>13}"
                     f"{num(b['psnr'], '.2f'):>8}{num(b['lpips'], '.3f'):>7}")
    return "\n".join(lines)


def eval_continuous(opt: Namespace) -> dict:
    """SSIM / PSNR (of the mean MSE) / LPIPS at the training grid, between its points at
    --fps_factor times the rate, and (extrapolation) beyond the training horizon, on the shapes
    test clips, against the trivial baseline. Writes <run>/continuous/results.json."""
    saved = read_options(opt.test_dir)
    if saved.get("dataset") != "shapes":
        raise RunError(f"eval_continuous needs a run trained on --dataset shapes (this one used "
                       f"{saved.get('dataset')}): only the moving shapes have a true frame at any time")
    run_opt, model, ckpt, step, device = load_run(opt)
    fps_factor = opt.fps_factor or DEFAULT_FPS_FACTOR
    loader = build_test_loader(run_opt)
    meta = load_meta(loader.dataset.root)
    file_ids = [int(Path(f).stem) for f in loader.dataset.files]  # clip index in meta order
    lpips_model = None if opt.no_lpips else load_lpips(device, offline=opt.offline)
    rate = slots_per_unit(run_opt)
    sets, accs, n_clips = None, {}, 0
    for i, batch in enumerate(loader):
        if opt.max_test_batches and i >= opt.max_test_batches:
            break
        batch = batch_to_device(batch, device)
        observed, mask = batch["observed_data"], batch["observed_mask"]  # (b, N, C, H, W), (b, N, 1)
        n = observed.size(1)
        if sets is None:
            sets = time_sets(run_opt, n, fps_factor, opt.horizon or None)
            accs = {s[0]: (MetricAccumulator(lpips_model, device), MetricAccumulator(lpips_model, device))
                    for s in sets}
        ids = [file_ids[c] for c in batch["clip_index"].tolist()]
        for name, _, times, scored in sets:
            sel = torch.tensor(scored, device=device)
            pred = synthesize(model, observed, mask, times, rate, run_opt.extrap)[:, sel]  # (b, Ts, C, H, W)
            st = [t for t, s in zip(times, scored) if s]
            gt = shapes_truth(meta, ids, st, run_opt).to(device, pred.dtype)
            if run_opt.extrap:
                base = last_observed(observed, mask).unsqueeze(1).expand_as(pred)
            else:
                base = blend_neighbours(observed, batch["observed_tp"], mask, model_times(st, rate))
            accs[name][0].update(_to_unit(pred, run_opt), _to_unit(gt, run_opt))
            accs[name][1].update(_to_unit(base, run_opt), _to_unit(gt, run_opt))
        n_clips += observed.size(0)
    if not n_clips:
        raise RunError("the test split gave no batch (fewer clips than --batch_size?)")
    rows = [_row(name, desc, times, scored, *accs[name]) for name, desc, times, scored in sets]
    results = {
        "run": str(opt.test_dir), "checkpoint": str(ckpt), "step": step, "dataset": "shapes",
        "extrap": bool(run_opt.extrap), "irregular": bool(run_opt.irregular), "n_clips": n_clips,
        "fps_factor": fps_factor, "time_unit": "frames of the observed input (0 = first observed frame)",
        "frames_per_model_time_unit": rate,
        "baseline_kind": baseline_kind(run_opt.extrap),
        "lpips": "AlexNet v0.1 (lin)" if lpips_model is not None else None,
        "lpips_backbone": lpips_backbone(lpips_model),  # where its AlexNet came from
        "psnr": "of the mean MSE (the reference's)", "rows": rows,
        "table": [{"time_set": r["time_set"], "n_frames": r["n_frames"],
                   **{f"{who}_{k}": r[who][k] for who in ("model", "baseline")
                      for k in ("ssim", "psnr", "lpips")}} for r in rows],
    }
    out = Path(opt.test_dir) / "continuous"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    print(_table(rows))
    print(f"[eval_continuous] {n_clips} clips, baseline: {results['baseline_kind']}; results in "
          f"{out / 'results.json'}")
    return results
