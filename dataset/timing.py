"""Decoded frames against their container's frame grid (fitted to the times by least squares):
gaps, duplicates, held frames, clips (docs/data.md)."""
from dataclasses import dataclass

import numpy as np

from dataloader.video import Timeline

GAP_SHARE = 0.01  # a source missing more than this share of its grid's frames is flagged


def has_grid(tl: Timeline) -> bool:
    return tl.times is not None and tl.rate is not None and tl.decoded > 0


def grid(tl: Timeline) -> tuple[np.ndarray, float, float]:
    """(slot of each decoded frame (decoded,) int64, time of slot 0, period in seconds); without a
    grid: slots 0, 1, 2, ... and no times (nan). Each frame goes to the nearest slot of the fit."""
    if not has_grid(tl):
        return np.arange(tl.decoded, dtype=np.int64), np.nan, np.nan
    t0, period = tl.times[0], 1.0 / tl.rate
    pos = np.rint((tl.times - t0) / period)
    if pos[-1] > pos[0]:
        period, t0 = np.polyfit(pos, tl.times, 1)
        pos = np.rint((tl.times - t0) / period)
        t0, pos = t0 + pos[0] * period, pos - pos[0]
    return pos.astype(np.int64), float(t0), float(period)


def grid_length(tl: Timeline, pos: np.ndarray) -> int:
    """Slots on the grid: up to the last frame, or the header's count where it declares more."""
    return max(int(pos.max()) + 1 if len(pos) else 0, tl.declared or 0)


def check(tl: Timeline) -> dict:
    """The report's numbers: declared, decoded, rate, on_grid, missing, duplicates, gap."""
    pos, _, period = grid(tl)
    distinct, expected = len(np.unique(pos)), grid_length(tl, pos)
    missing = expected - distinct
    rate = float(f"{1 / period:.9g}") if has_grid(tl) else tl.rate  # the grid's, fitted
    out = {"declared": tl.declared, "decoded": tl.decoded, "rate": rate, "on_grid": expected,
           "missing": missing, "duplicates": tl.decoded - distinct,
           "gap": bool(missing > GAP_SHARE * expected)}
    if tl.times is not None and not has_grid(tl) and tl.decoded > 1:
        out["variable_durations"] = bool(np.ptp(np.diff(tl.times)) > 1e-3)  # unequal GIF frames
    return out


def frame_sequence(tl: Timeline, hold: bool):
    """(index (N,) of the decoded frame shown at each output step, their times (N,) float64 seconds
    or None, skipped (N,): grid slots missing just before each step, 0 with `hold`)."""
    pos, t0, period = grid(tl)
    if hold and has_grid(tl):
        slots = np.arange(grid_length(tl, pos))
        index = np.searchsorted(pos, slots, side="right") - 1  # the last frame at or before
        return index, t0 + slots * period, np.zeros(len(slots), np.int64)
    skipped = np.concatenate([[0], np.maximum(np.diff(pos) - 1, 0)]).astype(np.int64)
    return np.arange(tl.decoded), tl.times, skipped


@dataclass
class Clip:
    k: int                         # its place among the video's clips (names stay when one is refused)
    index: np.ndarray              # (clip_len,) int: the decoded frame at each clip frame
    times: np.ndarray | None       # (clip_len,) float64 seconds, None without timestamps
    missing: int                   # grid places the clip skips: > 0 would compress its time


def cut_clips(tl: Timeline, clip_len: int, hold: bool) -> list[Clip]:
    """The video's clips of `clip_len` frames (0: the whole video as one clip)."""
    index, times, skipped = frame_sequence(tl, hold)
    length = clip_len or len(index)
    cuts = [slice(k * length, (k + 1) * length) for k in range(len(index) // length if length else 0)]
    return [Clip(k, index[c], None if times is None else times[c], int(skipped[c][1:].sum()))
            for k, c in enumerate(cuts)]


def usable(clips: list[Clip], hold: bool) -> list[Clip]:
    """The clips that may be written: all with `hold`, else those that skip no grid place."""
    return [c for c in clips if hold or c.missing == 0]

