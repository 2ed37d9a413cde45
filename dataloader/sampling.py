"""Which frames of a clip to read and their mask (docs/algorithm.md section 2); the time stamps are timeaxis's."""
from argparse import Namespace
from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .timeaxis import frame_stride, stored_length, strided_length


@dataclass(frozen=True)
class Plan:
    """How one split is sampled and batched."""
    irregular: bool
    extrap: bool
    sample_size: int
    window_size: int
    random_start: bool  # train split: random window start (and stride offset); test split: start 0
    test_time: bool     # test split during an evaluation phase
    frame_stride: int = 1  # every k-th stored frame (dataloader/timeaxis.py, "Frame stride")

    @property
    def test_interp(self) -> bool:
        """Regular interpolation at test time: observe the even frames, predict the odd ones."""
        return self.test_time and not self.extrap and not self.irregular

    @property
    def predict_unobserved(self) -> bool:
        """Irregular interpolation at test time: predict the unobserved slots (docs/algorithm.md section 7)."""
        return self.test_time and self.irregular and not self.extrap

    @property
    def min_length(self) -> int:
        """Shortest usable clip, in strided frames."""
        return self.window_size if self.irregular else self.sample_size

    @property
    def min_stored_length(self) -> int:
        """Shortest usable clip, in stored frames: min_length frames at every frame_stride-th."""
        return stored_length(self.min_length, self.frame_stride)


def make_plan(opt: Namespace, split: str) -> Plan:
    """The plan of `split` ('train' or 'test') under the options."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    check_sizes(opt)
    return Plan(irregular=bool(opt.irregular), extrap=bool(opt.extrap), sample_size=int(opt.sample_size),
                window_size=int(opt.window_size), random_start=split == "train",
                test_time=split == "test" and opt.phase != "train", frame_stride=frame_stride(opt))


def check_sizes(opt: Namespace) -> None:
    """Refuse sample/window sizes the mode cannot use (at parse time, and for a run's options)."""
    s, w = int(opt.sample_size), int(opt.window_size)
    k = getattr(opt, "frame_stride", 1)
    if k is not None and int(k) < 1:
        raise DataError(f"--frame_stride must be >= 1 (1: every frame, k: every k-th frame), got {k}")
    if not opt.irregular:
        if s < 2 or s % 2:
            raise DataError(f"--sample_size must be even and >= 2 for regular sampling, got {s}: "
                            "interpolation observes every second frame, extrapolation the first half")
        return
    if s > w:
        raise DataError(f"--sample_size ({s}) must not exceed --window_size ({w}) with --irregular")
    if s < 3:
        raise DataError(f"--sample_size must be >= 3 with --irregular (got {s}): "
                        "both window ends are always observed")
    if opt.extrap and (s % 2 or w % 2):
        raise DataError(f"irregular extrapolation needs even --window_size and --sample_size "
                        f"(got {w} and {s}): each half of the window gets half of the samples")


def sample_clip(length: int, plan: Plan, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (T,) int64 and mask (T,) float32 for a clip of `length` frames."""
    k = plan.frame_stride
    if k == 1:
        return _sample_frames(length, plan, rng)
    last = min(k - 1, length - plan.min_stored_length) if plan.random_start else 0  # largest offset
    offset = int(rng.integers(0, last + 1)) if last > 0 else 0
    idx, mask = _sample_frames(strided_length(length, k, offset), plan, rng)
    return offset + k * idx, mask  # strided frame j is stored frame offset + k j (int64)


def _sample_frames(length: int, plan: Plan, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """sample_clip on a clip seen at every frame."""
    s, w = plan.sample_size, plan.window_size
    if not plan.irregular:
        start = int(rng.integers(0, length - s + 1)) if plan.random_start else 0
        if plan.test_interp:  # every frame, the even ones observed
            return (start + np.arange(s)).astype(np.int64), (np.arange(s) % 2 == 0).astype(np.float32)
        idx = start + np.arange(0, s, 1 if plan.extrap else 2)  # interpolation: every second frame
        return idx.astype(np.int64), np.ones(len(idx), np.float32)
    if length <= w:
        start, n = 0, length
    else:
        # the reference draws the start from [0, L - Wn - 1]: the clip's last frame is never used
        start = int(rng.integers(0, length - w)) if plan.random_start else 0
        n = w
    if plan.extrap:
        half, k = n // 2, s // 2
        first = rng.choice(np.arange(1, half), k - 1, replace=False)
        second = rng.choice(np.arange(half, n - 1), k - 1, replace=False)
        pos = np.concatenate([[0], first, second, [n - 1]])
    else:
        pos = np.concatenate([[0], rng.choice(np.arange(1, n - 1), s - 2, replace=False), [n - 1]])
    mask = np.zeros(w, np.float32)
    mask[np.sort(pos)] = 1.0
    return (start + np.arange(w)).astype(np.int64), mask
