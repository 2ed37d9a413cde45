"""The model evaluated at any times in frames of the input (model time = frame / R, timeaxis.py),
its decoder ODE started where training did: what generate and eval_continuous share."""
import math
from typing import Iterable, Optional

import torch

from dataloader.timeaxis import model_times, source_frames_per_unit

DEFAULT_FPS_FACTOR = 4
EPS = 1e-6


def predicted_frames(run_opt) -> int:
    """Frames an extrapolation run was trained to predict after its observed half."""
    n = source_frames_per_unit(run_opt)
    return n - n // 2


@torch.no_grad()
def synthesize(model: torch.nn.Module, observed: torch.Tensor, mask: torch.Tensor, times: Iterable[float],
               rate: int, extrap: bool) -> torch.Tensor:
    """Frames (b, T', C, H, W), model scale, at increasing `times` (input frames) from observed
    (b, N, C, H, W) and mask (b, N, 1)."""
    times = torch.tensor([float(t) for t in times], dtype=torch.float64)
    return synthesize_per_clip(model, observed, mask, times.expand(observed.size(0), -1), rate, extrap)


def union_times(times: torch.Tensor, start: float) -> tuple[list[float], torch.Tensor]:
    """Clips' increasing times (b, T) float64 -> (solve: their union within EPS, led by `start`;
    keep (b, len(solve)) bool: each clip's own T times)."""
    b, n = times.shape
    values = sorted(float(v) for v in times.flatten().tolist())
    solve = [] if abs(values[0] - start) < EPS else [float(start)]
    for v in values:
        if not solve or v - solve[-1] >= EPS:
            solve.append(v)
    hit = (times[:, :, None] - torch.tensor(solve, dtype=torch.float64)).abs() < EPS  # (b, T, S)
    keep = hit.any(1)
    bad = ((keep.sum(1) != n) | (hit.sum(2) != 1).any(1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"clip {bad[0]}: its {n} times are not distinct and increasing by at least {EPS}")
    return solve, keep


@torch.no_grad()
def synthesize_per_clip(model: torch.nn.Module, observed: torch.Tensor, mask: torch.Tensor,
                        times: torch.Tensor, rate: int, extrap: bool) -> torch.Tensor:
    """synthesize with each clip's own times (b, T): one ODE solve over their union."""
    b, n = observed.shape[:2]
    solve, keep = union_times(times.to(torch.float64).cpu(), float(n) if extrap else 0.0)
    mask = mask.to(observed.dtype).reshape(b, n, 1)
    pred, _ = model.get_reconstruction(model_times(solve, rate), observed * mask[..., None, None],
                                       model_times(range(n), rate), mask, keep)  # observed at k / R
    return pred


def grid_times(n: int, fps_factor: int, extrap: bool, end: Optional[float], p_train: int) -> list[float]:
    """F times per input frame interval from 0 (N if extrapolating) to `end` (default: trained)."""
    start = n if extrap else 0
    if end is None:
        end = n - 1 + p_train if extrap else n - 1
    count = int(math.floor((end - start) * fps_factor + EPS))
    return [start + j / fps_factor for j in range(count + 1)]
