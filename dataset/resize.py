"""Resizing decoded videos to the size they are stored at (a run resizes them again with the
reference's transform; storing them small keeps the files small)."""
import cv2
import numpy as np


def resize_shorter_antialiased(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, H', W', C), shorter side `size` (0: unchanged); area-averaged down."""
    t, h, w = frames.shape[:3]
    if not size or min(h, w) == size:
        return frames
    nh, nw = (size, int(round(size * w / h))) if h <= w else (int(round(size * h / w)), size)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (nw, nh), interpolation=interp) for f in frames])


def square(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, size, size, C): centre square, then resized (size 0: unchanged)."""
    if not size:
        return frames
    h, w = frames.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize_shorter_antialiased(frames[:, top:top + side, left:left + side], size)
