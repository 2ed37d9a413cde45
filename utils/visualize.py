"""Pictures and videos: image grids, GIF/MP4, labelled side-by-side videos, time strips,
and metric plots drawn with OpenCV (no matplotlib). Every file is written atomically."""
import io
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid, save_image

from utils.atomic import atomic_path, atomic_write_bytes
from utils.metrics import quantize

WHITE, BLACK, GRAY = (255, 255, 255), (0, 0, 0), (150, 150, 150)
OBS_COLOUR = (0, 170, 0)  # RGB green border for observed frames
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]  # RGB
FONT = cv2.FONT_HERSHEY_SIMPLEX


# ---------------------------------------------------------------- conversions

def to_uint8_hwc(frames):
    """(T, 3|1, H, W) float in [0,1] or (T, H, W, 3) uint8 (tensor or array) -> (T, H, W, 3)
    uint8 numpy; floats quantised as save_image does."""
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


def _text_size(text, scale=0.4, thickness=1):
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    return w, h + base


# ---------------------------------------------------------------- grids, GIF, MP4

def save_grid(rows, path, nrow=None, padding=2):
    """rows: list of (T, 3, H, W) in [0,1] (e.g. observed, truth, prediction) -> one PNG,
    one row each (shorter rows padded with white frames)."""
    t = nrow or max(r.shape[0] for r in rows)
    padded = []
    for r in rows:
        r = r.detach().float().cpu()
        padded += [r, torch.ones((-r.shape[0] % t,) + r.shape[1:])]  # fill the row's tail
    grid = make_grid(torch.cat(padded), nrow=t, padding=padding, pad_value=1.0)
    buf = io.BytesIO()
    save_image(grid, buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def write_gif(frames, path, fps=4):
    """Frames -> looping GIF (PIL). Identical consecutive frames are merged by PIL into one
    longer frame."""
    imgs = [Image.fromarray(f) for f in to_uint8_hwc(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:],
                 duration=max(1, round(1000 / fps)), loop=0)
    atomic_write_bytes(path, buf.getvalue())


def write_mp4(frames, path, fps=4):
    """Frames -> MP4 ('mp4v') with OpenCV; odd sizes padded to even. Checked by reading back."""
    rgb = to_uint8_hwc(frames)
    t, h, w, _ = rgb.shape
    rgb = np.pad(rgb, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    h, w = rgb.shape[1:3]
    with atomic_path(path) as tmp:
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


# ---------------------------------------------------------------- labelled layouts

def _label_strip(labels, widths, height, pad):
    """A white (height, sum(widths)+pads, 3) uint8 strip with each label centred on its panel."""
    strip = np.full((height, sum(widths) + pad * (len(widths) - 1), 3), 255, np.uint8)
    x = 0
    for lab, w in zip(labels, widths):
        tw, th = _text_size(lab)
        _text(strip, lab, (x + max(0, (w - tw) // 2), height - 4))
        x += w + pad
    return strip


def side_by_side(*videos, labels=None, pad=2, min_height=96):
    """Several (T, 3, H, W) videos in [0,1] -> one (T, 3, H', W') video, panels separated by
    `pad` white pixels, each labelled above. Small frames are upscaled (nearest) to at least
    `min_height`; panels are resized to the tallest one; shorter videos hold their last frame."""
    vids = [_upscale(v.detach().float().cpu(), min_height) for v in videos]
    h = max(v.shape[-2] for v in vids)
    vids = [v if v.shape[-2] == h else F.interpolate(
        v, size=(h, round(v.shape[-1] * h / v.shape[-2])), mode="nearest") for v in vids]
    t = max(v.shape[0] for v in vids)
    vids = [torch.cat([v, v[-1:].expand(t - v.shape[0], -1, -1, -1)]) for v in vids]
    sep = torch.ones(t, 3, h, pad)
    parts = []
    for i, v in enumerate(vids):
        parts += ([sep] if i else []) + [v.clamp(0, 1)]
    body = torch.cat(parts, dim=-1)  # (T, 3, h, W')
    if not labels:
        return body
    strip = _label_strip(list(labels), [v.shape[-1] for v in vids], 16, pad)
    strip = torch.from_numpy(strip).permute(2, 0, 1).float().div(255)  # (3, 16, W')
    return torch.cat([strip.expand(t, -1, -1, -1), body], dim=-2)


def strip_with_markers(frames, times, observed, path=None, min_height=96, border=3):
    """(N, 3, H, W) frames in [0,1] at `times` -> one strip in time order, each frame labelled
    't=...'; observed frames get a green border and 'obs'. Returns (3, H', W') float; also
    writes a PNG when `path` is given."""
    order = sorted(range(len(times)), key=lambda i: float(times[i]))
    x = _upscale(frames.detach().float().cpu(), min_height)
    rgb = to_uint8_hwc(x)  # (N, h, w, 3)
    panels = []
    for i in order:
        is_obs = bool(observed[i])
        colour = OBS_COLOUR if is_obs else GRAY
        img = cv2.copyMakeBorder(rgb[i], border, border, border, border, cv2.BORDER_CONSTANT,
                                 value=colour)
        top = np.full((28, img.shape[1], 3), 255, np.uint8)
        _text(top, f"t={float(times[i]):.3g}", (2, 12))
        if is_obs:
            _text(top, "obs", (2, 25), colour=OBS_COLOUR)
        panels.append(np.concatenate([top, img], axis=0))
    gap = np.full((panels[0].shape[0], 2, 3), 255, np.uint8)
    out = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    if path is not None:
        atomic_write_bytes(path, _png_bytes(out))
    return torch.from_numpy(out).permute(2, 0, 1).float().div(255)


# ---------------------------------------------------------------- metric plots

def _nice_ticks(lo, hi, n=6):
    """About n round tick values covering [lo, hi]."""
    step = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(step))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= step), default=10 * mag)
    first = math.floor(lo / step) * step
    ticks, v = [], first
    while v <= hi + 1e-9 * step:
        if v >= lo - 1e-9 * step:
            ticks.append(round(v, 10))
        v += step
    return ticks


def _panel(title, series, size=(300, 360)):
    """One plot: series = [(name, colour, [(x, y)...])] -> (H, W, 3) uint8 RGB."""
    ph, pw = size
    img = np.full((ph, pw, 3), 255, np.uint8)
    left, right, top, bottom = 58, 12, 26 + 13 * len(series), 36
    _text(img, title, (left, 18), scale=0.5)
    for k, (name, colour, _) in enumerate(series):  # legend between title and plot
        ly = 34 + 13 * k
        cv2.line(img, (left + 4, ly - 4), (left + 22, ly - 4), colour, 2)
        _text(img, name[:24], (left + 28, ly), scale=0.35)
    pts = [(x, y) for _, _, p in series for x, y in p if y is not None and math.isfinite(y)]
    x0, x1, y0, y1 = left, pw - right, top, ph - bottom
    cv2.rectangle(img, (x0, y0), (x1, y1), BLACK, 1)
    if not pts:
        _text(img, "n/a", ((x0 + x1) // 2 - 10, (y0 + y1) // 2))
        return img
    xlo, xhi = min(p[0] for p in pts), max(p[0] for p in pts)
    ylo, yhi = min(p[1] for p in pts), max(p[1] for p in pts)
    span = yhi - ylo or max(abs(yhi) * 0.1, 1e-3)
    ylo, yhi = ylo - 0.08 * span, yhi + 0.08 * span

    def px(x):
        f = 0.5 if xhi == xlo else (x - xlo) / (xhi - xlo)
        return int(round(x0 + 10 + f * (x1 - x0 - 20)))

    def py(y):
        return int(round(y1 - (y - ylo) / (yhi - ylo) * (y1 - y0)))
    for v in _nice_ticks(ylo, yhi):
        cv2.line(img, (x0 + 1, py(v)), (x1 - 1, py(v)), (230, 230, 230), 1)
        cv2.line(img, (x0 - 4, py(v)), (x0, py(v)), BLACK, 1)
        lab = f"{v:.4g}"
        _text(img, lab, (x0 - 6 - _text_size(lab, 0.35)[0], py(v) + 4), scale=0.35)
    step = max(1, math.ceil((xhi - xlo + 1) / 10))
    for v in range(int(xlo), int(xhi) + 1, step):
        cv2.line(img, (px(v), y1), (px(v), y1 + 4), BLACK, 1)
        _text(img, str(v), (px(v) - 4, y1 + 16), scale=0.35)
    _text(img, "frame index", ((x0 + x1) // 2 - 35, ph - 4), scale=0.4)
    for name, colour, p in series:
        good = [(px(x), py(y)) for x, y in p if y is not None and math.isfinite(y)]
        for a, b in zip(good, good[1:]):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for q in good:
            cv2.circle(img, q, 3, colour, -1, cv2.LINE_AA)
    return img


def plot_metrics_by_index(series, path,
                          metrics=(("ssim", "SSIM"), ("psnr", "PSNR (dB)"), ("lpips", "LPIPS"))):
    """series: {name: per_index list of dicts (MetricAccumulator.summary()['per_index'])}
    -> a PNG with one panel per metric, one line per series. Returns the (H, W, 3) image."""
    panels = []
    for key, title in metrics:
        lines = [(name, COLOURS[k % len(COLOURS)],
                  [(e.get("index", i), e.get(key)) for i, e in enumerate(per)])
                 for k, (name, per) in enumerate(series.items())]
        panels.append(_panel(title, lines))
    img = np.concatenate(panels, axis=1)
    atomic_write_bytes(path, _png_bytes(img))
    return img
