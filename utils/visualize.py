"""Image grids, GIF/MP4, labelled videos and time strips (OpenCV), metric plots (matplotlib)."""
import io
import math
import os
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid, save_image

from utils.atomic import atomic_path, atomic_write_bytes
from utils.metrics import quantize

BLACK, GRAY = (0, 0, 0), (150, 150, 150)  # RGB
OBS_COLOUR = (0, 170, 0)  # RGB green border for observed frames
FONT = cv2.FONT_HERSHEY_SIMPLEX

PathLike = str | os.PathLike
Frames = torch.Tensor | np.ndarray  # (T, 3|1, H, W) float in [0, 1] or (T, H, W, 3) uint8


def to_uint8_hwc(frames: Frames) -> np.ndarray:
    """Frames (tensor or array) -> (T, H, W, 3) uint8 numpy; floats quantised as save_image does."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if frames.dtype == torch.uint8 and frames.dim() == 4 and frames.shape[-1] == 3:
        return frames.cpu().numpy()
    if frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"expected (T, 3, H, W) floats or (T, H, W, 3) uint8, got "
                         f"{tuple(frames.shape)} {frames.dtype}")
    q = frames if frames.dtype == torch.uint8 else quantize(
        frames if frames.is_floating_point() else frames.float())
    if q.shape[1] == 1:
        q = q.expand(-1, 3, -1, -1)
    return q.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _upscale(x, min_h):
    """(T, 3, H, W) -> nearest-neighbour upscale by an integer factor to be >= min_h high."""
    f = max(1, math.ceil(min_h / x.shape[-2]))
    return x if f == 1 else F.interpolate(x, scale_factor=f, mode="nearest")


def _png_bytes(rgb):
    """(H, W, 3) uint8 RGB -> PNG bytes."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _text(img, text, org, scale=0.4, colour=BLACK, thickness=1):
    """Draw text on an (H, W, 3) uint8 RGB array in place; org = bottom-left corner."""
    cv2.putText(img, text, (int(org[0]), int(org[1])), FONT, scale, colour, thickness, cv2.LINE_AA)


def save_grid(rows: Sequence[torch.Tensor], path: PathLike) -> torch.Tensor:
    """rows: (T, 3, H, W) in [0, 1] each -> one PNG, a row each (short rows padded white); returns
    the grid (3, H', W')."""
    t = max(r.shape[0] for r in rows)
    padded = []
    for r in rows:
        r = r.detach().float().cpu()
        padded += [r, torch.ones((-r.shape[0] % t,) + r.shape[1:])]  # fill the row's tail
    grid = make_grid(torch.cat(padded), nrow=t, padding=2, pad_value=1.0)
    buf = io.BytesIO()
    save_image(grid, buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return grid


def write_gif(frames: Frames, path: PathLike, fps: float = 4) -> None:
    """Frames -> looping GIF (PIL) at `fps` (PIL merges identical consecutive frames)."""
    imgs = [Image.fromarray(f) for f in to_uint8_hwc(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:],
                 duration=max(1, round(1000 / fps)), loop=0)
    atomic_write_bytes(path, buf.getvalue())


def write_mp4(frames: Frames, path: PathLike, fps: float = 4) -> None:
    """Frames -> MP4 ('mp4v', OpenCV; odd sizes padded), read back: RuntimeError if that fails."""
    rgb = to_uint8_hwc(frames)
    rgb = np.pad(rgb, ((0, 0), (0, rgb.shape[1] % 2), (0, rgb.shape[2] % 2), (0, 0)), mode="edge")
    h, w = rgb.shape[1:3]
    with atomic_path(path, keep_suffix=True) as tmp:  # VideoWriter picks the container by it
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"cannot write MP4 {path}: OpenCV's VideoWriter with codec "
                               "'mp4v' did not open (codec missing from this OpenCV build?); "
                               "write a GIF instead")
        for f in rgb:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
        writer.release()
        cap = cv2.VideoCapture(tmp)
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if not ok:
            raise RuntimeError(f"MP4 written to {path} cannot be read back by OpenCV")


def side_by_side(*videos: torch.Tensor, labels: Sequence[str] | None = None, pad: int = 2,
                 min_height: int = 96) -> torch.Tensor:
    """(T, 3, H, W) videos in [0,1] -> one (T, 3, H', W') video of labelled panels, each upscaled
    (nearest) to >= `min_height` and the tallest; shorter videos hold their last frame."""
    vids = [_upscale(v.detach().float().cpu(), min_height) for v in videos]
    h = max(v.shape[-2] for v in vids)
    vids = [v if v.shape[-2] == h else F.interpolate(
        v, size=(h, round(v.shape[-1] * h / v.shape[-2])), mode="nearest") for v in vids]
    t = max(v.shape[0] for v in vids)
    vids = [torch.cat([v, v[-1:].expand(t - v.shape[0], -1, -1, -1)]) for v in vids]
    sep = torch.ones(t, 3, h, pad)
    body = torch.cat([p for v in vids for p in (sep, v.clamp(0, 1))][1:], dim=-1)  # (T, 3, h, W')
    if not labels:
        return body
    strip = np.full((16, body.shape[-1], 3), 255, np.uint8)  # each label centred above its panel
    x = 0
    for lab, v in zip(labels, vids):
        _text(strip, lab, (x + max(0, (v.shape[-1] - cv2.getTextSize(lab, FONT, 0.4, 1)[0][0]) // 2), 12))
        x += v.shape[-1] + pad
    strip = torch.from_numpy(strip).permute(2, 0, 1).float().div(255)  # (3, 16, W')
    return torch.cat([strip.expand(t, -1, -1, -1), body], dim=-2)


def strip_with_markers(frames: torch.Tensor, times: Sequence[float], observed: Sequence[bool],
                       path: PathLike | None = None, min_height: int = 96, border: int = 3) -> torch.Tensor:
    """(N, 3, H, W) frames in [0,1] at `times` -> (3, H', W') strip in time order, labelled 't=...',
    observed frames outlined green (a PNG at `path` if given)."""
    rgb = to_uint8_hwc(_upscale(frames.detach().float().cpu(), min_height))  # (N, h, w, 3)
    panels = []
    for i in sorted(range(len(times)), key=lambda i: float(times[i])):  # in time order
        img = cv2.copyMakeBorder(rgb[i], border, border, border, border, cv2.BORDER_CONSTANT,
                                 value=OBS_COLOUR if observed[i] else GRAY)
        top = np.full((28, img.shape[1], 3), 255, np.uint8)
        _text(top, f"t={float(times[i]):.3g}", (2, 12))
        if observed[i]:
            _text(top, "obs", (2, 25), colour=OBS_COLOUR)
        panels.append(np.concatenate([top, img], axis=0))
    gap = np.full((panels[0].shape[0], 2, 3), 255, np.uint8)
    out = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    if path is not None:
        atomic_write_bytes(path, _png_bytes(out))
    return torch.from_numpy(out).permute(2, 0, 1).float().div(255)


METRICS = (("ssim", "SSIM"), ("psnr", "PSNR (dB)"), ("lpips", "LPIPS"))  # (key, panel title)


def plot_metrics_by_index(series: Mapping[str, Sequence[Mapping]], path: PathLike,
                          xlabel: str = "predicted frame index", integer_x: bool = True) -> np.ndarray:
    """SSIM, PSNR and LPIPS curves side by side, a (320, 1200, 3) uint8 PNG written and returned.
    series: {name: [{"index": x, "ssim": ...}, ...]} (no index: list position; None, NaN: left out)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.0 * len(METRICS), 3.2), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(METRICS), sharex=True, squeeze=False)[0]
    handles, indices = {}, set()
    for ax, (key, title) in zip(axes, METRICS):
        for k, (name, per) in enumerate(series.items()):  # one colour per series in every panel
            pts = [(e.get("index", i), float(e[key])) for i, e in enumerate(per)
                   if e.get(key) is not None and math.isfinite(float(e[key]))]
            if pts:
                xs, ys = zip(*pts)
                indices.update(xs)
                (handles[name],) = ax.plot(xs, ys, "o-", markersize=4, color=f"C{k}", label=name)
        if ax.lines:
            ax.grid(True, color="0.9")
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", color="0.4",
                    transform=ax.transAxes)
            ax.set_yticks([])
        ax.set(title=title, xlabel=xlabel)
        if integer_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(indices) == 1 and integer_x:  # one frame index: one tick, not a fractional axis around it
        (x,) = indices
        axes[0].set_xlim(x - 1, x + 1)
        axes[0].set_xticks([x])
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside upper center",
                   ncol=len(handles), frameon=False)
    canvas.draw()
    img = np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
    atomic_write_bytes(path, _png_bytes(img))
    return img
