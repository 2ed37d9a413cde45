"""Decoding videos, GIFs and frame folders into RGB uint8 arrays (T, H, W, 3).

Used by a run that reads a user's clip (generate --input clip.mp4) and by the offline
preparation (dataset/sources.py), which resizes and cuts what it decodes here."""
import os
from typing import List

import cv2
import numpy as np

VIDEO_EXTS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
GIF_EXTS = (".gif",)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


class SkipItem(Exception):
    """An input that cannot be used (not decodable here; in preparation, also not fitting): the
    reason is the message. Preparation skips the item; generate reports it as an error."""


def _stack(frames: List[np.ndarray], source: str) -> np.ndarray:
    if not frames:
        raise SkipItem("no frames could be decoded")
    first = frames[0].shape
    if any(f.shape != first for f in frames):
        frames = [f if f.shape == first else cv2.resize(f, (first[1], first[0]),
                                                        interpolation=cv2.INTER_AREA) for f in frames]
    return np.stack(frames)  # (T, H, W, 3)


def read_video(path: str) -> np.ndarray:
    """A video file (OpenCV) -> (T, H, W, 3) uint8 RGB."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SkipItem("OpenCV cannot open it")
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return _stack(frames, path)


def read_gif(path: str) -> np.ndarray:
    """A GIF -> (T, H, W, 3) uint8 RGB (every frame composed, as PIL shows it)."""
    from PIL import Image, ImageSequence
    try:
        with Image.open(path) as im:
            frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    except Exception as exc:
        raise SkipItem(f"not a readable GIF ({exc})") from None
    return _stack(frames, path)


def image_files(folder: str) -> List[str]:
    """Sorted image files directly inside `folder`."""
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.lower().endswith(IMAGE_EXTS) and not n.startswith("."))


def read_frame_folder(folder: str) -> np.ndarray:
    """A folder of images (sorted by name) -> (T, H, W, 3) uint8 RGB."""
    frames = []
    for path in image_files(folder):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SkipItem(f"unreadable image {os.path.basename(path)}")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return _stack(frames, folder)


def read_any(path: str) -> np.ndarray:
    """Video file, GIF or frame folder -> (T, H, W, 3) uint8 RGB."""
    if os.path.isdir(path):
        return read_frame_folder(path)
    if path.lower().endswith(GIF_EXTS):
        return read_gif(path)
    return read_video(path)

