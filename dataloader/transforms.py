"""Per-dataset frame transforms (docs/algorithm.md section 2), on the sampled frames only."""
import cv2
import numpy as np
import torch
from skimage import transform as sk_transform

KTH_CROP = 120
AUGMENTED = ("kth", "penn", "mgif", "custom")  # train split: random flip + rotation
SQUARED = ("penn", "mgif", "custom")           # resized, then centre-cropped if not square
MAX_CV_CHANNELS = 512                          # cv2.resize handles up to 512 channels at once


def centre_crop(frames, th, tw):
    """(T, H, W, C) -> (T, th, tw, C), offsets rounded as the reference does."""
    h, w = frames.shape[1:3]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return frames[:, top:top + th, left:left + tw]


def resize_shorter_bilinear(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, H', W', C), shorter side `size`, bilinear, as the reference's."""
    t, h, w, c = frames.shape
    nh, nw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    if (nh, nw) == (h, w):
        return frames
    # OpenCV resizes every channel alike: stack the frames along channels, one call per chunk
    step = max(1, MAX_CV_CHANNELS // c)
    out = []
    for i in range(0, t, step):
        chunk = frames[i:i + step]
        n = chunk.shape[0]
        stacked = np.ascontiguousarray(chunk.transpose(1, 2, 0, 3)).reshape(h, w, n * c)
        r = cv2.resize(stacked, (nw, nh), interpolation=cv2.INTER_LINEAR)
        out.append(r.reshape(nh, nw, n, c).transpose(2, 0, 1, 3))  # (n, nh, nw, c)
    return np.concatenate(out) if len(out) > 1 else out[0]


def rotate(frames, angle):
    """Rotate every frame by `angle` degrees (scikit-image, range preserved) -> float32 (frame by
    frame: far faster than one many-channel call)."""
    rotated = [sk_transform.rotate(f, angle, preserve_range=True) for f in frames]
    return np.stack(rotated).astype(np.float32)


def warm_up():
    """Load scikit-image's lazily imported warping code now, not in each worker's first batch."""
    rotate(np.zeros((1, 4, 4, 3), np.uint8), 1.0)
    resize_shorter_bilinear(np.zeros((1, 4, 6, 3), np.uint8), 2)


def transform_clip(frames, dataset, input_size, augment, input_norm, rng=None):
    """Sampled frames (T, H, W, C) -> float32 (T, C, H', W'); augment: flip and rotation."""
    if dataset == "hurricane":
        x = np.asarray(frames[..., :3], dtype=np.float32)
        x = np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)))  # one zero row above and below
    else:
        x = np.asarray(frames)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)  # grey -> RGB
        if dataset == "kth":
            x = centre_crop(x, KTH_CROP, KTH_CROP)
        x = resize_shorter_bilinear(x, input_size)
        if dataset in SQUARED and x.shape[1] != x.shape[2]:
            x = centre_crop(x, input_size, input_size)  # clips of any aspect can share a batch
        if augment and dataset in AUGMENTED:
            if rng.random() < 0.5:
                x = x[:, :, ::-1]
            x = rotate(x, rng.uniform(-10.0, 10.0))
        x = np.divide(x, np.float32(255.0), dtype=np.float32)
    if input_norm:
        x = (x - np.float32(0.5)) / np.float32(0.5)
    # channels-last view, as the reference's ToTensor gives (values equal either way)
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)  # (T, C, H, W)


def to_unit(x: torch.Tensor, input_norm: bool) -> torch.Tensor:
    """Model scale -> [0, 1], any shape: undoes --input_norm's (x - 0.5) / 0.5."""
    return x * 0.5 + 0.5 if input_norm else x
