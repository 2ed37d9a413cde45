"""The time axis of a trained run, in frame units of its input, and the model evaluated at any
times on it: what generate and eval_continuous share.

Time units. Every user-facing time is in FRAME UNITS OF THE INPUT: 0 is the first input frame,
1 the second, 0.5 half-way between them. The model's own time axis (docs/algorithm.md section 2,
dataloader/timeaxis.py) is t = frame / R, with R = slots_per_unit(run options) input frames per
unit of model time:
  - regular interpolation: R = S/2. Training observes every second frame of an S-frame window
    at t = k/(S/2), so one input frame is one observed frame (two frames of the original
    video); test_met's in-between frames k/S are input frames k + 0.5.
  - regular extrapolation: R = S (t = k/S, the first S/2 frames observed).
  - irregular: R = Wn (t = k/Wn, one slot per frame; unobserved slots masked out).
Ground truth of the shapes data: stored frame = t * timeaxis.source_frames_per_unit(opt) * k for
model time t, i.e. input frame p * timeaxis.stored_frames_per_slot(opt) (k = --frame_stride).

Starting time. The decoder ODE starts at the first time it is given. Its ODE is autonomous (docs/algorithm.md section 3),
so only the spacing from the starting time matters; synthesize therefore always starts it where
training did: at the first observed frame (interpolation) or one training step after the last
observed frame (extrapolation, frame N of an N-frame input). When the first requested time is
later, that start is solved but not rendered (as test_met does with its output mask).
"""
import math
from typing import Iterable, Optional

import torch

from dataloader.timeaxis import model_times, source_frames_per_unit

DEFAULT_FPS_FACTOR = 4
EPS = 1e-6


def predicted_frames(run_opt) -> int:
    """Frames an extrapolation run was trained to predict after its observed half (of the
    source_frames_per_unit frames of a window)."""
    n = source_frames_per_unit(run_opt)
    return n - n // 2


@torch.no_grad()
def synthesize(model: torch.nn.Module, observed: torch.Tensor, mask: torch.Tensor, times: Iterable[float],
               rate: int, extrap: bool) -> torch.Tensor:
    """Frames at `times` (input frame units, increasing) from observed frames.

    observed (b, N, C, H, W), mask (b, N, 1) -> (b, T', C, H, W), model scale. Unobserved frames
    are zeroed as in training. The ODE starts at the run's start (frame 0, or frame N when
    extrapolating); a start that was not requested is solved but not rendered.
    """
    times = torch.tensor([float(t) for t in times], dtype=torch.float64)
    return synthesize_per_clip(model, observed, mask, times.expand(observed.size(0), -1), rate, extrap)


def union_times(times: torch.Tensor, start: float) -> tuple[list[float], torch.Tensor]:
    """Every clip's times (b, T) float64 (input frame units, increasing per clip) on one grid.

    Returns (solve, keep): the increasing union of the times (within EPS one time), preceded by
    `start` when no clip asks for it, and keep (b, len(solve)) bool, each clip's own T times.
    """
    b, n = times.shape
    values = sorted(float(v) for v in times.flatten().tolist())
    solve = [] if abs(values[0] - start) < EPS else [float(start)]
    for v in values:
        if not solve or v - solve[-1] >= EPS:
            solve.append(v)
    grid = torch.tensor(solve, dtype=torch.float64)
    keep = torch.zeros(b, len(solve), dtype=torch.bool)
    for i in range(b):
        hit = (times[i, :, None] - grid[None, :]).abs() < EPS  # (T, S)
        keep[i] = hit.any(0)
        if int(keep[i].sum()) != n or not bool((hit.sum(1) == 1).all()):
            raise ValueError(f"clip {i}: its {n} times are not distinct and increasing by at least {EPS}")
    return solve, keep


@torch.no_grad()
def synthesize_per_clip(model: torch.nn.Module, observed: torch.Tensor, mask: torch.Tensor,
                        times: torch.Tensor, rate: int, extrap: bool) -> torch.Tensor:
    """synthesize with times of each clip: times (b, T) input frame units, increasing per clip.

    One decoder ODE solve over the union of the clips' times (union_times); each clip's frames
    are decoded and chained through its own T times only. observed (b, N, C, H, W), mask (b, N, 1)
    -> (b, T, C, H, W), model scale. When every clip asks for the same times, this is synthesize.
    """
    b, n = observed.shape[:2]
    start = float(n) if extrap else 0.0
    solve, keep = union_times(times.to(torch.float64).cpu(), start)
    obs_tp = model_times(range(n), rate)  # as time_steps(): k / R
    mask = mask.to(observed.dtype).reshape(b, n, 1)
    pred, _ = model.get_reconstruction(model_times(solve, rate), observed * mask[..., None, None],
                                       obs_tp, mask, keep)
    return pred


def fmt_time(t: float) -> str:
    """A time for a message: 2, 0.5, 1.25 (no trailing zeros)."""
    return f"{t:g}"


def grid_times(n: int, fps_factor: int, extrap: bool, end: Optional[float], p_train: int) -> list[float]:
    """F times per input frame interval: over [0, end] (interpolation) or [N, end] (extrapolation,
    default end N - 1 + the frames predicted in training); empty when end < start."""
    start = n if extrap else 0
    if end is None:
        end = n - 1 + p_train if extrap else n - 1
    count = int(math.floor((end - start) * fps_factor + EPS))
    return [start + j / fps_factor for j in range(count + 1)]
