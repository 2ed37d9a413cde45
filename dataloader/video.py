"""Reading videos (PyAV; OpenCV where PyAV cannot open the file), GIFs and frame folders into RGB
uint8 frames (T, H, W, 3) with their times: for generate --input and dataset/sources.py."""
import os
from dataclasses import dataclass

import av
import cv2
import numpy as np

VIDEO_EXTS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
GIF_EXTS = (".gif",)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


class SkipItem(Exception):
    """This item cannot be converted (the message says why); `report`: what was learnt of it."""

    def __init__(self, reason, report=None):
        super().__init__(reason)
        self.report = report or {}


@dataclass
class Timeline:
    """When each decoded frame is shown, and the frame grid its container declares."""
    decoded: int                   # frames decoded (probe_any of a GIF: frames it declares)
    times: np.ndarray | None       # (decoded,) float64 seconds; None: no timestamps (frame folders)
    rate: float | None             # the container's frame rate (1/s); None: no regular grid
    declared: int | None           # frames the container's header declares; None if it does not say
    decoder: str                   # "pyav", "opencv", "pil" or "images"
    fallback: str | None = None    # why PyAV was not used, or how its times were mended


@dataclass
class Decoded:
    frames: np.ndarray             # (T, H, W, 3) uint8 RGB
    timeline: Timeline


def _stack(frames):
    """Decoded frames -> (T, H, W, 3); frames of different sizes refuse the source."""
    if not frames:
        raise SkipItem("no frames could be decoded")
    first = frames[0].shape
    for i, f in enumerate(frames):
        if f.shape != first:
            raise SkipItem(f"frame {i} is {f.shape[1]}x{f.shape[0]} but frame 0 is {first[1]}x{first[0]}: "
                           "the frames of one source must share a size (resize them first)")
    return np.stack(frames)  # (T, H, W, 3)


def _open_pyav(path):
    """(container, video stream), or (None, reason) when PyAV cannot open the file."""
    try:
        container = av.open(path)
    except av.error.FFmpegError as exc:
        return None, f"PyAV cannot open it ({exc})"
    if not container.streams.video:
        container.close()
        return None, "PyAV finds no video stream in it"
    return container, container.streams.video[0]


def _video(frames, times, rate, declared, decoder, note=None) -> Decoded:
    """A video's Decoded: its frames stacked, their times sorted (an AVI gives B-frames decode-order
    times) or, where frames lack a pts, a regular grid from the first; how they were mended noted."""
    arr = _stack(frames)
    if times and all(t is not None for t in times):
        t = np.asarray(times, dtype=np.float64)
        reordered = int(np.count_nonzero(np.diff(t) < 0))
        mended = (f"{reordered} timestamps out of presentation order (B-frames in a container "
                  "without presentation times): sorted") if reordered else None
        t = np.sort(t)
    elif rate is None:
        t, mended = None, "the frames carry no timestamps and the container no frame rate"
    else:
        first = next((t for t in times if t is not None), 0.0)
        t = first + np.arange(len(times), dtype=np.float64) / rate
        mended = "some frames carry no timestamp: the regular grid is assumed"
    return Decoded(arr, Timeline(len(arr), t, rate, declared, decoder,
                                 "; ".join(filter(None, [note, mended])) or None))


def decode_video(path, pixels=True) -> Decoded:
    """A video -> frames (T, H, W, 3) uint8 RGB and Timeline (pixels=False: (T, H, W, 0))."""
    container, stream = _open_pyav(path)
    if container is None:
        return _decode_opencv(path, reason=stream)
    declared = int(stream.frames) if stream.frames and stream.frames > 0 else None
    rate = float(stream.guessed_rate or stream.average_rate or 0) or None  # 0: none declared
    stream.thread_type = "AUTO"
    frames, times = [], []
    try:
        for frame in container.decode(stream):
            if pixels:  # with the display rotation a phone stores in the stream, as OpenCV applies it
                turns = round((frame.rotation or 0) / 90) % 4
                frames.append(np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns)))
            else:
                frames.append(np.empty((frame.height, frame.width, 0), np.uint8))
            times.append(frame.time)
    except av.error.FFmpegError as exc:
        raise SkipItem(f"PyAV stopped decoding after {len(frames)} frames ({exc})") from None
    finally:
        container.close()
    return _video(frames, times, rate, declared, "pyav")


def _decode_opencv(path, reason):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SkipItem(f"{reason}, and OpenCV cannot open it either")
    count, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)  # 0 where unknown
    frames, times = [], []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
    finally:
        cap.release()
    return _video(frames, times, float(fps) if fps > 0 else None, int(count) if count > 0 else None,
                  "opencv", f"{reason}: read with OpenCV")


_PIL_ERRORS = (OSError, ValueError, EOFError)  # PIL.UnidentifiedImageError is an OSError


def decode_gif(path) -> Decoded:
    """A GIF -> frames (T, H, W, 3) uint8 RGB as PIL composes them, durations as times."""
    from PIL import Image, ImageSequence
    try:
        with Image.open(path) as im:
            declared = int(getattr(im, "n_frames", 1))
            frames, durations = [], []
            for f in ImageSequence.Iterator(im):
                frames.append(np.asarray(f.convert("RGB")))
                durations.append(f.info.get("duration"))
    except _PIL_ERRORS as exc:
        raise SkipItem(f"not a readable GIF ({exc})") from None
    arr = _stack(frames)
    times = (None if None in durations
             else np.concatenate([[0.0], np.cumsum(durations[:-1], dtype=np.float64)]) / 1000.0)
    return Decoded(arr, Timeline(len(arr), times, None, declared, "pil"))


def image_files(folder):
    """Sorted image files directly inside `folder`."""
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.lower().endswith(IMAGE_EXTS) and not n.startswith("."))


def decode_frame_folder(folder) -> Decoded:
    """A folder of images (sorted by name) -> frames (T, H, W, 3) uint8 RGB, no times."""
    frames = []
    for path in image_files(folder):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SkipItem(f"unreadable image {os.path.basename(path)}")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    arr = _stack(frames)
    return Decoded(arr, Timeline(len(arr), None, None, None, "images"))


def decode_any(path) -> Decoded:
    """Video file, GIF or frame folder -> frames (T, H, W, 3) uint8 RGB and their Timeline."""
    if os.path.isdir(path):
        return decode_frame_folder(path)
    return decode_gif(path) if path.lower().endswith(GIF_EXTS) else decode_video(path)


def probe_any(path) -> Timeline:
    """The Timeline of a source without decoding its frames (SkipItem if it cannot be read)."""
    if os.path.isdir(path):
        return Timeline(len(image_files(path)), None, None, None, "images")
    if not path.lower().endswith(GIF_EXTS):
        return decode_video(path, pixels=False).timeline  # without the colour conversion
    from PIL import Image
    try:
        with Image.open(path) as im:
            n = int(getattr(im, "n_frames", 1))
    except _PIL_ERRORS as exc:
        raise SkipItem(f"not a readable GIF ({exc})") from None
    return Timeline(n, None, None, n, "pil")

