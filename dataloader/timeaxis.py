"""The model's time axis: where a frame sits in model time (docs/algorithm.md section 2, "Time stamps").

Every clip of a batch shares one set of time stamps. The model sees R slots per unit of model
time, slot k at t = k / R (`slots_per_unit`):
  - irregular sampling: R = Wn (window_size), one slot per frame of the window; the unobserved
    slots are masked out;
  - regular extrapolation: R = S (sample_size), the S consecutive frames of the window;
  - regular interpolation: R = S/2, every second frame of the S-frame window.
So a window spans model times [0, 1). Counted in frames of the stored clip, frame j of the window
sits at t = j / F with F = `source_frames_per_unit` (Wn irregular, S regular): in regular
interpolation slot k is source frame 2k, and test_met's in-between frames (the odd source
frames) sit at (2k + 1) / S.

A phase that takes frames from elsewhere (generate's input clip) counts time in slots: its input
frame k is slot k, so input frame position p (possibly fractional) is model time p / R.

Frame stride (--frame_stride k, default 1). A run trained with stride k sees every k-th frame of
each clip, from an offset o (random in [0, k) on the train split, 0 on the test split): the
strided clip is the clip at 1/k of its frame rate, and everything above applies to it unchanged
(strided frame j is stored frame o + k j; the time stamps are the same). The stored frames in
between are kept for evaluation only (eval_continuous): between consecutive slots lie
D = k * F / R stored frames (`stored_frames_per_slot`), so stored frame i of a window that starts
at slot 0 sits at slot position i / D (`window_positions`). Where the clip has frame times
(<name>.times.npy, seconds), a frame between grid frames g k and (g + 1) k (counted in stored
frames of the window) is placed by its real time between theirs: the grid frames keep their
places (the run's time axis is the strided one), the frames in between move.
"""
from typing import Iterable, Optional, Protocol, Tuple

import numpy as np
import torch


class SamplingOptions(Protocol):
    """What the time axis depends on: the run's options (argparse.Namespace) or a sampling Plan."""
    irregular: bool
    extrap: bool
    sample_size: int
    window_size: int


def slots_per_unit(opt: SamplingOptions) -> int:
    """R: slots (frames the model is given) per unit of model time; slot k is at k / R."""
    if opt.irregular:
        return int(opt.window_size)
    return int(opt.sample_size) if opt.extrap else int(opt.sample_size) // 2


def source_frames_per_unit(opt: SamplingOptions) -> int:
    """F: frames of the stored clip per unit of model time (window frame j is at j / F)."""
    return int(opt.window_size) if opt.irregular else int(opt.sample_size)


def model_times(positions: Iterable[float], rate: float) -> torch.Tensor:
    """Positions (slots or frames, may be fractional) -> model times (T,) float32: position / rate.

    rate is the number of positions per unit of model time (R for slots, F for stored frames).
    """
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


def stored_index(strided_index: np.ndarray, stride: int, offset: int = 0) -> np.ndarray:
    """Strided frame j -> stored frame offset + stride * j (int64)."""
    return (int(offset) + int(stride) * np.asarray(strided_index, dtype=np.int64)).astype(np.int64)


def stored_frames_per_slot(opt: SamplingOptions) -> int:
    """D: stored frames per interval between consecutive slots, k * F / R (k, or 2 k in regular
    interpolation, whose slots are every second strided frame)."""
    return frame_stride(opt) * source_frames_per_unit(opt) // slots_per_unit(opt)


def window_positions(n_frames: int, opt: SamplingOptions,
                     times: Optional[np.ndarray] = None) -> Tuple[np.ndarray, str]:
    """Slot positions of the stored frames of a window that starts at slot 0: (n_frames,) float64.

    Without `times`, frame i is at i / D. With `times` ((n_frames,) seconds, the window's own),
    the grid frames (every k-th) keep their places and frame i between grid frames a = g k and
    b = (g + 1) k is at (g + (t_i - t_a) / (t_b - t_a)) * k / D. Returns (positions, how): how is
    "index" (no times given), "times", or "index: <why the times were not usable>".
    """
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
