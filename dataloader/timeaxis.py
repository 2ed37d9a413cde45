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
"""
from typing import Iterable, Protocol

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
