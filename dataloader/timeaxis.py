"""The model's time axis (docs/algorithm.md section 2, "Time stamps"): slot k at t = k / R (R slots
per unit), window frame j at j / F; with --frame_stride k, D = k F / R stored frames lie between
consecutive slots (docs/continuous_time.md, "Held-out frames")."""
from typing import Any, Iterable, Optional, Tuple

import numpy as np
import torch


SamplingOptions = Any  # the run's options or a sampling Plan: irregular, extrap, sample_size, window_size


def slots_per_unit(opt: SamplingOptions) -> int:
    """R: slots (frames the model is given) per unit of model time; slot k is at k / R."""
    if opt.irregular:
        return int(opt.window_size)
    return int(opt.sample_size) if opt.extrap else int(opt.sample_size) // 2


def source_frames_per_unit(opt: SamplingOptions) -> int:
    """F: frames of the stored clip per unit of model time (window frame j is at j / F)."""
    return int(opt.window_size) if opt.irregular else int(opt.sample_size)


def model_times(positions: Iterable[float], rate: float) -> torch.Tensor:
    """Positions (slots or frames, may be fractional) -> model times (T,) float32."""
    return torch.tensor([float(p) for p in positions], dtype=torch.float32) / rate


def time_steps(opt: SamplingOptions) -> torch.Tensor:
    """The time stamps shared by every clip of a batch: (R,) float32, k / R for k = 0..R-1."""
    r = slots_per_unit(opt)
    return model_times(range(r), r)


def frame_stride(opt: object) -> int:
    """k, the run's --frame_stride (1 for runs and plans that predate it)."""
    return int(getattr(opt, "frame_stride", 1) or 1)


def strided_length(length: int, stride: int, offset: int = 0) -> int:
    """Frames left of a `length`-frame clip at every `stride`-th frame from `offset`."""
    return max(0, (int(length) - int(offset) + int(stride) - 1) // int(stride))


def stored_length(strided: int, stride: int) -> int:
    """Shortest clip (stored frames) that still has `strided` frames at every `stride`-th frame."""
    return (int(strided) - 1) * int(stride) + 1 if strided > 0 else 0


def stored_frames_per_slot(opt: SamplingOptions) -> int:
    """D = k * F / R: stored frames per interval between consecutive slots."""
    return frame_stride(opt) * source_frames_per_unit(opt) // slots_per_unit(opt)


def window_positions(n_frames: int, opt: SamplingOptions,
                     times: Optional[np.ndarray] = None) -> Tuple[np.ndarray, str]:
    """Slot positions (n_frames,) float64 of a window's stored frames and how they were placed:
    "index" (frame i at i / D), "times" (between grid frames a and b at (a + k (t_i - t_a) /
    (t_b - t_a)) / D, `times` in seconds) or "index: <why the times were not usable>"."""
    k, d = frame_stride(opt), stored_frames_per_slot(opt)
    index = np.arange(n_frames, dtype=np.float64) / d
    if times is None:
        return index, "index"
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (n_frames,):
        return index, f"index: {t.shape[0] if t.ndim == 1 else t.shape} frame times for {n_frames} frames"
    if not np.all(np.isfinite(t)):
        return index, "index: frame times that are not finite"
    if (n_frames - 1) % k:
        raise ValueError(f"a window of {n_frames} stored frames does not end on a grid frame (stride {k})")
    pos = index.copy()
    for a in range(0, n_frames - 1, k):
        seg = t[a:a + k + 1]  # grid frame a, the k - 1 frames after it, grid frame a + k
        if not np.all(np.diff(seg) > 0):
            return index, (f"index: frame times do not increase between stored frames {a} and {a + k} "
                           f"of the window ({', '.join(f'{v:.4f}' for v in seg)} s)")
        pos[a:a + k + 1] = (a + k * (seg - seg[0]) / (seg[-1] - seg[0])) / d
    return pos, "times"
