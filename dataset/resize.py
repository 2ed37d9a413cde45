"""Resizing decoded videos to the size they are stored at (preparation only).

A run resizes the stored frames again with the reference's transform
(dataloader.transforms.resize_shorter_bilinear); storing them small keeps the files small.
"""
import cv2
import numpy as np


def resize_shorter_antialiased(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, H', W', C) with the shorter side `size`, aspect kept (longer side
    rounded): area averaging when shrinking (no aliasing), bilinear when enlarging; size 0 or a
    shorter side already at `size` returns `frames` unchanged."""
    t, h, w = frames.shape[:3]
    if not size or min(h, w) == size:
        return frames
    nh, nw = (size, int(round(size * w / h))) if h <= w else (int(round(size * h / w)), size)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (nw, nh), interpolation=interp) for f in frames])


def square(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, size, size, C): centre crop to a square, then
    resize_shorter_antialiased; size 0 keeps the frames as they are."""
    if not size:
        return frames
    h, w = frames.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize_shorter_antialiased(frames[:, top:top + side, left:left + side], size)
