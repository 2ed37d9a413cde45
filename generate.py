"""generate: frames of a trained run at any time stamps (input frame units, utils/timeline.py),
from a test clip or a file (docs/continuous_time.md)."""
import re
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from dataloader import get_dataset
from dataloader.timeaxis import model_times, slots_per_unit
from dataloader.transforms import KTH_CROP, to_unit, transform_clip
from runs import RunError, load_run
from utils.atomic import atomic_save_npy, atomic_write_json
from utils.timeline import DEFAULT_FPS_FACTOR, EPS, grid_times, predicted_frames, synthesize
from utils.visualize import strip_with_markers, to_uint8_hwc, write_gif, write_mp4


def requested_times(opt: Namespace, run_opt: SimpleNamespace, n: int, mask: np.ndarray) -> list[float]:
    """The times (input frame units, increasing) asked for on the command line; those the run cannot
    serve are refused. mask (N,): the observed input frames."""
    if opt.times is not None:
        times = list(opt.times)
    else:
        f = opt.fps_factor or DEFAULT_FPS_FACTOR
        times = grid_times(n, f, run_opt.extrap, opt.horizon or None, predicted_frames(run_opt))
        if not times:
            raise RunError(f"--horizon {opt.horizon:g} ends before the first frame the run can "
                           f"generate ({n if run_opt.extrap else 0}); extrapolation starts at frame {n}")
    if run_opt.extrap:
        if times[0] < n - EPS:
            raise RunError(f"time {times[0]:g} is not served by an extrapolation run: it "
                           f"predicts from frame {n} on (where training placed its initial latent) and "
                           f"cannot reconstruct or interpolate earlier times. Ask for times >= {n}")
        return times
    obs = np.flatnonzero(mask > 0.5)
    lo, hi = int(obs[0]), int(obs[-1])
    bad = [t for t in times if t < lo - EPS or t > hi + EPS]
    if bad:
        raise RunError(f"time {bad[0]:g} lies outside the observed span [{lo}, {hi}]: an "
                       "interpolation run was trained only between its first and last observed frames "
                       "and cannot extrapolate. Use times within the span, or an --extrap run")
    return times


def observed_mask(idx: list[int], n: int, extrap: bool) -> np.ndarray:
    """--observed indices (distinct, >= 0: main.check_generation_opt) -> (N,) float mask."""
    out = [i for i in idx if not 0 <= i < n]
    if out:
        raise RunError(f"--observed index {out[0]} is out of range: the input has {n} frames (0..{n - 1})")
    if not extrap and (0 not in idx or n - 1 not in idx):
        raise RunError(f"an interpolation run needs the first and last input frames observed (--observed "
                       f"must include 0 and {n - 1}): training always observes both window ends, and "
                       "the first frame is its base frame")
    return np.isin(np.arange(n), idx).astype(np.float32)


def _array_frames(x, source, run_opt):
    """A (T, H, W, C) array as stored -> (T, C, S, S) float32 tensor, transformed as the data set does."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[0] == 0:
        raise RunError(f"{source}: expected frames (T, H, W, 3), at least one, got shape {x.shape} "
                       f"({'no frames' if x.ndim == 4 else 'not 4-d'})")
    if x.shape[-1] not in (1, 3) and run_opt.dataset != "hurricane":
        raise RunError(f"{source}: frames have {x.shape[-1]} channels; expected 3 (RGB) or 1 (grey), "
                       "channels last: (T, H, W, 3)")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise RunError(f"{source}: frames contain NaN or infinity")
        if run_opt.dataset != "hurricane":
            if x.min() < 0 or x.max() > 1:
                raise RunError(f"{source}: float frames must lie in [0, 1] (got {x.min():g}..{x.max():g}); "
                               "save uint8 for 0..255")
            x = x.astype(np.float32) * np.float32(255.0)  # the transform divides by 255
    elif x.dtype != np.uint8:
        raise RunError(f"{source}: frames of dtype {x.dtype}; save uint8 (0..255) or float (0..1)")
    if run_opt.dataset == "kth" and min(x.shape[1:3]) < KTH_CROP:
        raise RunError(f"{source}: frames of {x.shape[1]}x{x.shape[2]} are smaller than kth's "
                       f"{KTH_CROP}x{KTH_CROP} centre crop")
    t = transform_clip(x, run_opt.dataset, run_opt.input_size, augment=False, input_norm=run_opt.input_norm)
    h, w = t.shape[-2:]
    r = 2 ** int(run_opt.n_downs)
    if run_opt.dataset == "hurricane":
        if h % r or w % r:
            raise RunError(f"{source}: frames become {h}x{w}, not divisible by 2**n_downs = {r}")
    elif (h, w) != (run_opt.input_size, run_opt.input_size):
        raise RunError(f"{source}: frames of {x.shape[1]}x{x.shape[2]} become {h}x{w}, but the run was "
                       f"trained on {run_opt.input_size}x{run_opt.input_size}; crop the input to a square first")
    return t  # (T, C, H, W)


def _is_clip_index(spec) -> bool:
    """--input names a test clip of the run's data set (unset: clip 0), not a file."""
    return spec is None or re.fullmatch(r"[+-]?\d+", str(spec).strip()) is not None


def load_input(opt: Namespace, run_opt: SimpleNamespace) -> tuple[torch.Tensor, np.ndarray, str]:
    """--input -> (frames (N, C, H, W) model scale, mask (N,) float32, label)."""
    spec = "0" if opt.input is None else str(opt.input).strip()
    if _is_clip_index(spec):
        ds, i = get_dataset(run_opt, "test"), int(spec)
        if not 0 <= i < len(ds):
            raise RunError(f"--input {i}: clip index out of range, the test split of {run_opt.dataset} "
                           f"has {len(ds)} clips (0..{len(ds) - 1})")
        x, m, _ = ds[i]  # (T, C, H, W), (T, 1)
        m = m[:, 0]
        if ds.plan.test_interp:  # the observed (even) frames
            x, m = x[m > 0.5], torch.ones(int((m > 0.5).sum()))
        elif run_opt.extrap:  # the observed half
            x, m = x[:x.size(0) // 2], m[:x.size(0) // 2]
        return x, m.numpy().astype(np.float32), f"clip{i:03d}"
    path = Path(spec)
    if not path.exists():
        raise RunError(f"--input {spec}: no such file; give a test-clip index, an .npy file "
                       "(T, H, W, 3) or a video file (avi, mp4, gif)")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise RunError(f"--input {spec}: not a readable .npy file ({e})") from None
    else:
        from dataloader.video import SkipItem, decode_any
        try:
            arr = decode_any(str(path)).frames
        except SkipItem as e:
            raise RunError(f"--input {spec}: cannot read the video ({e})") from None
    x = _array_frames(arr, spec, run_opt)
    return x, np.ones(x.size(0), np.float32), path.stem


def write_outputs(out: Path, frames: torch.Tensor, mask: np.ndarray, times: list[float], pred: torch.Tensor,
                  extrap: bool, info: dict) -> None:
    """frames.npy (T', H, W, 3) uint8, times.json, generated.mp4/.gif and strip.png (the observed
    input first when extrapolating). frames (N, C, H, W), pred (T', C, H, W) in [0, 1]; mask (N,)."""
    atomic_save_npy(out / "frames.npy", to_uint8_hwc(pred.clamp(0, 1)))  # the atomic writes make `out`
    shows, show_t, show_obs = [pred], list(times), list(info["observed_time"])
    if extrap:  # the observed input frames, then the prediction
        idx = [i for i, o in enumerate(mask) if o > 0.5]
        shows = [frames[idx], pred]
        show_t, show_obs = [float(i) for i in idx] + show_t, [True] * len(idx) + show_obs
    video = torch.cat(shows).clamp(0, 1)  # (T_show, C, H, W)
    fps = min(30, 4 * max(1, info.get("fps_factor") or 2))
    write_gif(video, out / "generated.gif", fps=fps)
    write_mp4(video, out / "generated.mp4", fps=fps)
    strip_with_markers(video, show_t, show_obs, out / "strip.png")
    atomic_write_json(out / "times.json", {**info, "times": list(times), "shown_times": show_t,
                                           "shown_observed": show_obs})


def generate(opt: Namespace) -> dict:
    """Frames of a trained run at any time stamps (see the module docstring); returns a summary dict."""
    run_opt, model, ckpt, step, device = load_run(opt, needs_data=_is_clip_index(opt.input))
    x, mask, label = load_input(opt, run_opt)
    n = x.size(0)
    if opt.observed:
        mask = observed_mask(opt.observed, n, run_opt.extrap)
    if not run_opt.extrap and n < 2:
        raise RunError("an interpolation run needs at least 2 input frames")
    times = requested_times(opt, run_opt, n, mask)
    rate = slots_per_unit(run_opt)
    observed = x.unsqueeze(0).to(device)  # (1, N, C, H, W)
    m = torch.from_numpy(mask).reshape(1, n, 1).to(device)
    pred = to_unit(synthesize(model, observed, m, times, rate, run_opt.extrap)[0].float().cpu(), run_opt.input_norm)
    tag = "times" if opt.times is not None else f"x{opt.fps_factor or DEFAULT_FPS_FACTOR}"
    out = Path(opt.out) if opt.out else Path(opt.test_dir) / "generated" / f"{label}_{tag}"
    obs_t = [bool(abs(t - round(t)) < EPS and round(t) < n and mask[round(t)] > 0.5) for t in times]
    fps_factor = None if opt.times is not None else (opt.fps_factor or DEFAULT_FPS_FACTOR)
    info = {"input": str(opt.input if opt.input is not None else 0), "n_input_frames": n,
            "observed_frames": [i for i in range(n) if mask[i] > 0.5],
            "time_unit": "frames of the input (0 = first input frame)",
            "model_times": model_times(times, rate).tolist(), "frames_per_model_time_unit": rate,
            "observed_time": obs_t, "fps_factor": fps_factor, "checkpoint": str(ckpt), "step": step,
            "extrap": bool(run_opt.extrap), "irregular": bool(run_opt.irregular)}
    write_outputs(out, to_unit(x, run_opt.input_norm).float(), mask, times, pred, run_opt.extrap, info)
    print(f"[generate] {len(times)} frames at t = {times[0]:g} .. {times[-1]:g} (input frames) "
          f"from {n} input frames ({int(mask.sum())} observed); written to {out}")
    return {"out": str(out), "times": times, "frames": pred}


