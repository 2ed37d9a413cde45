"""eval_continuous: scores at times never seen in training, beside the trivial baselines, from
analytic truth (shapes) or held-out frames (--frame_stride) (docs/continuous_time.md)."""
import math
from argparse import Namespace
from collections import Counter
from fractions import Fraction
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from dataloader import batch_to_device, build_test_loader
from dataloader.shapes import load_meta, render_clip
from dataloader.timeaxis import frame_stride, model_times, slots_per_unit, stored_frames_per_slot
from dataloader.transforms import to_unit, transform_clip
from runs import RunError, load_run, read_options
from utils.atomic import atomic_write_json
from utils.baselines import baseline, baseline_kind, blend_neighbours, previous_observed
from utils.metrics import MetricAccumulator, load_lpips, lpips_backbone
from utils.timeline import (DEFAULT_FPS_FACTOR, EPS, grid_times, predicted_frames, synthesize,
                            synthesize_per_clip)
from utils.visualize import plot_metrics_by_index


METRIC_KEYS = ("ssim", "psnr", "mse", "psnr_per_frame_mean", "lpips")  # each row reports these


def time_sets(run_opt: SimpleNamespace, n: int, fps_factor: int,
              horizon: float | None = None) -> list[tuple[str, str, list[float], list[bool]]]:
    """[(name, description, times, scored flags)] in input frame units for an N-frame input."""
    p = predicted_frames(run_opt) if run_opt.extrap else 0
    times = grid_times(n, fps_factor, run_opt.extrap, None, p)
    between = (f"between_x{fps_factor}", f"{fps_factor}x the rate, off the training grid",
               times, [j % fps_factor != 0 for j in range(len(times))])
    if not run_opt.extrap:
        return [("grid", "training time stamps (at observed frames the baseline is exact)",
                 list(range(n)), [True] * n), between]
    end, horizon = n - 1 + p, horizon or n - 1 + 2 * p
    if horizon <= end:
        raise RunError(f"--horizon {horizon:g} must exceed the training horizon (frame {end})")
    beyond = list(range(n, int(math.floor(horizon + EPS)) + 1))
    return [("grid", "training time stamps", list(range(n, n + p)), [True] * p), between,
            ("beyond", f"training rate, after the training horizon (frame {end}) up to {horizon:g}",
             beyond, [t > end for t in beyond])]


def shapes_truth(meta: dict, clip_ids: list[int], times: list[float], run_opt: SimpleNamespace) -> torch.Tensor:
    """True frames at input-frame times -> (b, T, C, H, W), transformed as the data set does."""
    orig = np.asarray(times, np.float64) * stored_frames_per_slot(run_opt)  # in stored frames
    clips = [transform_clip(render_clip(meta["test"][c], orig, meta["size"]), "shapes", run_opt.input_size,
                            augment=False, input_norm=run_opt.input_norm) for c in clip_ids]
    return torch.stack(clips)


def _row(name, desc, times, scored, acc, acc_base):
    m, b = acc.summary(), acc_base.summary()
    return {"time_set": name, "description": desc, "n_frames": m["n_frames"],
            "scored_times": [t for t, s in zip(times, scored) if s],
            "model": {k: m[k] for k in METRIC_KEYS}, "baseline": {k: b[k] for k in METRIC_KEYS}}


def format_table(rows: list[dict], label: str, who: tuple[str, ...]) -> str:
    """The printed table: per row its frames and each of `who`'s SSIM, PSNR and LPIPS."""
    num = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    lines = [f"{label:<17}{'frames':>7}" + "".join(f" | {w + ' SSIM':>15}{'PSNR':>7}{'LPIPS':>7}" for w in who)]
    for r in rows:
        lines.append(f"{r[label]:<17}{r['n_frames']:>7}" + "".join(
            f" | {num((r[w] or {}).get('ssim'), '.4f'):>15}{num((r[w] or {}).get('psnr'), '.2f'):>7}"
            f"{num((r[w] or {}).get('lpips'), '.3f'):>7}" for w in who))
    return "\n".join(lines)


# ---------------------------------------------------------------- held-out frames (--frame_stride)

WHO = ("model", "blend", "copy_last")


def frame_kinds(run_opt: SimpleNamespace, n_frames: int, n_obs: int,
                mask: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, int]], torch.Tensor]:
    """Rows of the held-out table for a full-rate window's n_frames, mask (b, n_obs, 1) -> (scored
    (n_frames,) bool, keys [(kind, m)] (m / D: the position), rows (b, Ts): each frame's key index)."""
    d, k = stored_frames_per_slot(run_opt), frame_stride(run_opt)
    i = torch.arange(n_frames)
    g, m = i // d, i % d
    scored = g >= n_obs if run_opt.extrap else i <= (n_obs - 1) * d
    b = mask.size(0)
    obs = mask.reshape(b, n_obs) > 0.5
    keys: dict[tuple[str, int], int] = {}  # each key's row index, in order of appearance
    rows = torch.empty(b, int(scored.sum()), dtype=torch.int64)
    for col, idx in enumerate(i[scored].tolist()):
        gi, mi = int(g[idx]), int(m[idx])
        for c in range(b):
            key = (("held_out", mi) if mi % k
                   else ("observed", 0) if mi == 0 and not run_opt.extrap and bool(obs[c, gi])
                   else ("grid", mi))
            rows[c, col] = keys.setdefault(key, len(keys))
    return scored, list(keys), rows


class HeldOut:
    """The held-out-frames evaluation of a --frame_stride run, batch by batch."""

    def __init__(self, run_opt: SimpleNamespace, lpips_model: torch.nn.Module | None,
                 device: torch.device):
        self.run_opt, self.lpips_model, self.device = run_opt, lpips_model, device
        self.d = stored_frames_per_slot(run_opt)
        self.accs: dict[tuple[str, int], dict[str, MetricAccumulator]] = {}
        self.offsets: dict[tuple[str, int], list[float]] = {}
        self.placement: Counter = Counter()

    @torch.no_grad()
    def update(self, model: torch.nn.Module, batch: dict) -> None:
        """Predict every scored stored frame of the batch's windows and add its metrics."""
        run_opt, rate = self.run_opt, slots_per_unit(self.run_opt)
        observed, mask = batch["observed_data"], batch["observed_mask"]  # (b, N, C, H, W), (b, N, 1)
        full, pos = batch["full_rate_data"], batch["full_rate_positions"]  # (b, Tf, C, H, W), (b, Tf)
        n, tf = observed.size(1), full.size(1)
        scored, keys, rows = frame_kinds(run_opt, tf, n, mask.cpu())
        times = pos[:, scored].to(torch.float64).cpu()  # (b, Ts) input frame units
        truth = full[:, scored.to(full.device)]
        pred = synthesize_per_clip(model, observed, mask, times, rate, run_opt.extrap)  # (b, Ts, C, H, W)
        tp = (times / rate).to(observed.dtype)  # model time
        base = {"copy_last": previous_observed(observed, batch["observed_tp"], mask, tp)}
        if not run_opt.extrap:  # no observed frame after these times in extrapolation
            base["blend"] = blend_neighbours(observed, batch["observed_tp"], mask, tp)
        # place within the interval: the position minus the slot it follows
        offset = times - torch.div(torch.arange(tf)[scored], self.d, rounding_mode="floor").to(torch.float64)
        frames = {w: to_unit(x.to(truth.dtype), run_opt.input_norm) for w, x in (("model", pred), *base.items())}
        gt = to_unit(truth, run_opt.input_norm)
        for r, key in enumerate(keys):
            sel = (rows == r).to(pred.device)  # (b, Ts); frame_kinds lists only keys that occur
            for row in (key, ("all", 0)) if key[0] == "held_out" else (key,):  # and the pooled row
                acc = self.accs.setdefault(row, {w: MetricAccumulator(self.lpips_model, self.device) for w in WHO})
                for who, x in frames.items():
                    acc[who].update(x[sel][None], gt[sel][None])  # (1, n_r, C, H, W)
                self.offsets.setdefault(row, []).extend(offset[sel.cpu()].tolist())
        self.placement.update(batch["full_rate_placement"])

    def rows(self) -> list[dict]:
        """One row per (kind, position), in order: observed, then by position, then the pooled row."""
        out = []
        for kind, m in sorted(self.accs, key=lambda k: (k[0] == "all", k[0] != "observed", k[1])):
            sums = {w: acc.summary() for w, acc in self.accs[(kind, m)].items()}
            off = self.offsets[(kind, m)]
            pos = str(Fraction(m, self.d))
            name = {"observed": "observed", "grid": f"grid {pos}", "held_out": f"held out {pos}"}
            out.append({
                "row": name.get(kind, "held out, all"), "kind": kind,
                "position": None if kind == "all" else pos,
                "position_value": None if kind == "all" else m / self.d,
                "mean_position": math.fsum(off) / len(off) if off else None,
                "n_frames": sums["model"]["n_frames"],
                **{w: ({k: sums[w][k] for k in METRIC_KEYS} if sums[w]["n_frames"] else None) for w in WHO}})
        return out

    def results(self, out_dir: Path) -> dict:
        """The held_out section of results.json; writes the plot held_out.png into out_dir."""
        rows = self.rows()
        plotted = [r for r in rows if r["kind"] in ("grid", "held_out")]
        series = {w: [{"index": r["position_value"], **(r[w] or {})} for r in plotted] for w in WHO
                  if any(r[w] for r in plotted)}
        plot = Path(out_dir) / "held_out.png"
        plot_metrics_by_index(series, plot, xlabel="position between consecutive input frames",
                              integer_x=False)
        return {"frame_stride": frame_stride(self.run_opt), "stored_frames_per_interval": self.d,
                "placement": dict(self.placement), "plot": str(plot), "rows": rows}


def eval_continuous(opt: Namespace) -> dict:
    """Metrics at unseen times beside the baselines -> <run>/continuous/results.json."""
    saved = read_options(opt.test_dir)
    stride, analytic = saved["frame_stride"], saved["dataset"] == "shapes"
    if not analytic and stride == 1:
        raise RunError(f"eval_continuous needs a run trained on --dataset shapes (a true frame at any time) or "
                       f"with --frame_stride k > 1 (the skipped frames are the truth); this one used --dataset "
                       f"{saved['dataset']} at every frame. Train with e.g. --frame_stride 2")
    run_opt, model, ckpt, step, device = load_run(opt)
    fps_factor = opt.fps_factor or DEFAULT_FPS_FACTOR
    loader = build_test_loader(run_opt, full_rate=stride > 1)
    lpips_model = None if opt.no_lpips else load_lpips(device, offline=opt.offline)
    rate = slots_per_unit(run_opt)
    held = HeldOut(run_opt, lpips_model, device) if stride > 1 else None
    if analytic:
        meta = load_meta(loader.dataset.root)
        file_ids = [int(Path(f).stem) for f in loader.dataset.files]  # clip index in meta order
    sets, accs, n_clips = None, {}, 0
    for batch in islice(loader, opt.max_test_batches or None):
        batch = batch_to_device(batch, device)
        observed, mask = batch["observed_data"], batch["observed_mask"]  # (b, N, C, H, W), (b, N, 1)
        if held is not None:
            held.update(model, batch)
        n_clips += observed.size(0)
        if not analytic:
            continue
        if sets is None:
            sets = time_sets(run_opt, observed.size(1), fps_factor, opt.horizon or None)
            accs = {s[0]: (MetricAccumulator(lpips_model, device), MetricAccumulator(lpips_model, device))
                    for s in sets}
        ids = [file_ids[c] for c in batch["clip_index"].tolist()]
        for name, _, times, scored in sets:
            sel = torch.tensor(scored, device=device)
            pred = synthesize(model, observed, mask, times, rate, run_opt.extrap)[:, sel]  # (b, Ts, C, H, W)
            st = [t for t, s in zip(times, scored) if s]
            gt = shapes_truth(meta, ids, st, run_opt).to(device, pred.dtype)
            base = baseline(observed, batch["observed_tp"], mask, model_times(st, rate), run_opt.extrap)
            accs[name][0].update(to_unit(pred, run_opt.input_norm), to_unit(gt, run_opt.input_norm))
            accs[name][1].update(to_unit(base, run_opt.input_norm), to_unit(gt, run_opt.input_norm))
    if not n_clips:
        raise RunError("the test split gave no batch (fewer clips than --batch_size?)")
    out = Path(opt.test_dir) / "continuous"  # made by the atomic writes
    results = {
        "run": str(opt.test_dir), "checkpoint": str(ckpt), "step": step, "dataset": run_opt.dataset,
        "extrap": bool(run_opt.extrap), "irregular": bool(run_opt.irregular), "n_clips": n_clips,
        "frame_stride": stride, "frames_per_model_time_unit": rate,
        "time_unit": "frames of the observed input (0 = first observed frame)",
        "lpips": "AlexNet v0.1 (lin)" if lpips_model is not None else None,
        "lpips_backbone": lpips_backbone(lpips_model), "psnr": "of the mean MSE (the reference's)"}
    if analytic:
        rows = [_row(name, desc, times, scored, *accs[name]) for name, desc, times, scored in sets]
        results.update({"fps_factor": fps_factor, "baseline_kind": baseline_kind(run_opt.extrap), "rows": rows})
        print(format_table(rows, "time_set", ("model", "baseline")))
        print(f"[eval_continuous] {n_clips} clips, baseline: {results['baseline_kind']}")
    if held is not None:
        results["held_out"] = held.results(out)
        placed = "; ".join(f"{n} by {how}" for how, n in sorted(held.placement.items()))
        print(f"held-out frames: one in every {stride} frames seen in training, "
              f"{'extrapolation' if run_opt.extrap else 'interpolation'}; position between consecutive "
              f"input frames")
        print(format_table(results["held_out"]["rows"], "row", WHO))
        print(f"[eval_continuous] {n_clips} clips; frames between grid frames placed: {placed}; "
              f"plot {results['held_out']['plot']}")
    atomic_write_json(out / "results.json", results)
    print(f"[eval_continuous] results in {out / 'results.json'}")
    return results
