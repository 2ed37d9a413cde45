"""Decoded frames against their container's frame grid: gaps, duplicates, held frames, clips.

A frame's place on the grid is round((t - t_first) * rate). A container that holds a frame
(an AVI's zero-length chunk, a pts that skips values) leaves grid places without a frame:
cutting clips from the decoded frames alone would compress time. With `hold`, each frame is
repeated until the next one's place (a frame whose next pts is k intervals later appears k
times) and the times are the grid's; without it, a clip that spans a missing place is refused.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from dataloader.video import Timeline

GAP_SHARE = 0.01  # a source missing more than this share of its grid's frames is flagged


def has_grid(tl: Timeline) -> bool:
    return tl.times is not None and tl.rate is not None and tl.decoded > 0


def positions(tl: Timeline) -> np.ndarray:
    """Grid place of each decoded frame (decoded,) int64; 0, 1, 2, ... without a grid."""
    if not has_grid(tl):
        return np.arange(tl.decoded, dtype=np.int64)
    return np.rint((tl.times - tl.times[0]) * tl.rate).astype(np.int64)


def grid_length(tl: Timeline, pos: np.ndarray) -> int:
    """Places on the grid: up to the last frame, or the header's count where it declares more
    (trailing held frames)."""
    n = int(pos.max()) + 1 if len(pos) else 0
    return max(n, tl.declared or 0) if has_grid(tl) else n


def check(tl: Timeline) -> dict:
    """The report's numbers: declared, decoded, on_grid (expected), missing, duplicates, gap."""
    pos = positions(tl)
    distinct = len(np.unique(pos))
    if has_grid(tl):
        expected = grid_length(tl, pos)
    else:
        expected = max(tl.decoded, tl.declared or 0)
    missing = expected - distinct
    out = {"declared": tl.declared, "decoded": tl.decoded, "rate": tl.rate, "on_grid": expected,
           "missing": missing, "duplicates": tl.decoded - distinct,
           "gap": bool(missing > GAP_SHARE * expected)}
    if tl.times is not None and not has_grid(tl) and tl.decoded > 1:
        steps = np.diff(tl.times)
        out["variable_durations"] = bool(np.ptp(steps) > 1e-3)  # a GIF's frames last unequally
    return out


def frame_sequence(tl: Timeline, hold: bool):
    """The decoded frame shown at each step of the output, and when.

    Returns (index (N,) int into the decoded frames, times (N,) float64 seconds or None,
    skipped (N,) int: grid places missing just before each step, 0 with `hold`).
    """
    pos = positions(tl)
    if hold and has_grid(tl):
        order = np.argsort(pos, kind="stable")
        slots = np.arange(grid_length(tl, pos))
        index = order[np.searchsorted(pos[order], slots, side="right") - 1]  # last frame at or before
        return index, tl.times[0] + slots / tl.rate, np.zeros(len(slots), np.int64)
    skipped = np.concatenate([[0], np.maximum(np.diff(pos) - 1, 0)]).astype(np.int64)
    return np.arange(tl.decoded), tl.times, skipped


@dataclass
class Clip:
    k: int                         # its place among the video's clips (names stay when one is refused)
    index: np.ndarray              # (clip_len,) int: the decoded frame at each clip frame
    times: Optional[np.ndarray]    # (clip_len,) float64 seconds, None without timestamps
    missing: int                   # grid places the clip skips: > 0 would compress its time


def cut_clips(tl: Timeline, clip_len: int, hold: bool) -> List[Clip]:
    """The video's clips of `clip_len` frames (0: the whole video as one clip)."""
    index, times, skipped = frame_sequence(tl, hold)
    n = len(index)
    length = clip_len or n
    clips = []
    for k in range(n // length if length else 0):
        sl = slice(k * length, (k + 1) * length)
        clips.append(Clip(k, index[sl], None if times is None else times[sl],
                          int(skipped[sl][1:].sum())))
    return clips


def sequence_length(tl: Timeline, hold: bool) -> int:
    return len(frame_sequence(tl, hold)[0])


def usable(clips: List[Clip], hold: bool) -> List[Clip]:
    """The clips that may be written: all with `hold`, else those that skip no grid place."""
    return [c for c in clips if hold or c.missing == 0]

