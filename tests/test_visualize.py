"""Pictures and videos: files are written, readable back, with the expected sizes."""
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import utils.visualize as vis
from utils.visualize import (plot_metrics_by_index, save_grid, side_by_side, strip_with_markers,
                             to_uint8_hwc, write_gif, write_mp4)


def _video(t=5, h=32, w=32, seed=0):
    return torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_save_grid_shape(tmp_path):
    rows = [_video(4, 16, 16), _video(4, 16, 16, 1), _video(2, 16, 16, 2)]  # a short row too
    save_grid(rows, tmp_path / "g.png")
    img = np.asarray(Image.open(tmp_path / "g.png"))
    assert img.shape == (3 * 18 + 2, 4 * 18 + 2, 3)
    assert os.listdir(tmp_path) == ["g.png"]


def test_to_uint8_hwc_formats():
    x = _video(3, 8, 10)
    a = to_uint8_hwc(x)
    assert a.shape == (3, 8, 10, 3) and a.dtype == np.uint8
    assert np.array_equal(to_uint8_hwc(a), a)  # uint8 (T, H, W, 3) passes through
    assert to_uint8_hwc(x[:, :1]).shape == (3, 8, 10, 3)  # grayscale repeated
    with pytest.raises(ValueError):
        to_uint8_hwc(torch.rand(3, 8, 10))


@pytest.mark.parametrize("as_uint8", [False, True])
def test_write_gif(tmp_path, as_uint8):
    frames = _video(6, 24, 40)
    write_gif(to_uint8_hwc(frames) if as_uint8 else frames, tmp_path / "v.gif", fps=5)
    with Image.open(tmp_path / "v.gif") as im:
        assert im.n_frames == 6 and im.size == (40, 24)
        assert im.info.get("loop") == 0 and im.info.get("duration") == 200
    assert os.listdir(tmp_path) == ["v.gif"]


@pytest.mark.parametrize("h,w", [(32, 48), (33, 45)])
def test_write_mp4(tmp_path, h, w):
    write_mp4(_video(7, h, w), tmp_path / "v.mp4", fps=4)
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        assert frame.shape == (h + h % 2, w + w % 2, 3)
    cap.release()
    assert n == 7 and os.listdir(tmp_path) == ["v.mp4"]


def test_write_mp4_writer_failure_is_clear(tmp_path, monkeypatch):
    class Closed:
        def __init__(self, *a, **k):
            pass

        def isOpened(self):
            return False

    monkeypatch.setattr(vis.cv2, "VideoWriter", Closed)
    with pytest.raises(RuntimeError, match="mp4v"):
        write_mp4(_video(3), tmp_path / "v.mp4")
    assert os.listdir(tmp_path) == []


def test_side_by_side_shapes():
    a, b = _video(5, 32, 32), _video(5, 32, 32, 1)
    c = _video(3, 32, 32, 2)  # shorter: holds its last frame
    out = side_by_side(a, b, c, labels=["input", "truth", "pred"], pad=2)
    assert out.shape == (5, 3, 16 + 96, 3 * 96 + 2 * 2)  # upscaled x3 to 96, label strip 16
    assert torch.equal(out[4, :, 16:, 2 * 98:], out[2, :, 16:, 2 * 98:])
    assert side_by_side(a, b).shape == (5, 3, 96, 2 * 96 + 2)
    big = side_by_side(_video(2, 128, 128), _video(2, 64, 64))  # resized to the tallest
    assert big.shape == (2, 3, 128, 128 + 2 + 128)
    assert out.min() >= 0 and out.max() <= 1


def test_strip_with_markers(tmp_path):
    colours = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [1.0, 1.0, 0], [0, 1.0, 1.0]])
    frames = colours.view(4, 3, 1, 1).expand(4, 3, 32, 32)
    times = [0.75, 0.0, 0.5, 0.25]
    out = strip_with_markers(frames, times, [True, True, False, False], path=tmp_path / "s.png")
    img = np.asarray(Image.open(tmp_path / "s.png"))
    panel_w = 96 + 2 * 3
    assert img.shape == (28 + panel_w, 4 * panel_w + 3 * 2, 3)
    assert out.shape == (3, img.shape[0], img.shape[1])
    centre = 28 + panel_w // 2
    # time order: t=0 (blue), 0.25 (cyan), 0.5 (yellow), 0.75 (red)
    seen = [tuple(img[centre, k * (panel_w + 2) + panel_w // 2]) for k in range(4)]
    assert seen == [(0, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 0)]
    # observed (t=0) has the green border, unobserved (t=0.25) a gray one
    assert tuple(img[centre, 0]) == vis.OBS_COLOUR
    assert tuple(img[centre, panel_w + 2]) == vis.GRAY


def _pixels_of(img, rgb, tol=40):
    """(rows, cols) of the pixels within `tol` of colour `rgb` (per channel)."""
    return np.nonzero(np.all(np.abs(img.astype(int) - np.array(rgb)) <= tol, axis=-1))


MODEL_RGB, BASE_RGB = (31, 119, 180), (255, 127, 14)  # matplotlib's first two colours (C0, C1)


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_plot_metrics_by_index(tmp_path, n):
    model = [{"index": i, "ssim": 0.9 - 0.02 * i, "psnr": 30 - i, "lpips": 0.05 + 0.01 * i}
             for i in range(n)]
    base = [{"index": i, "ssim": 0.8 - 0.03 * i, "psnr": 26 - i, "lpips": None} for i in range(n)]
    img = plot_metrics_by_index({"model": model, "baseline": base}, tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.format == "PNG" and im.size == (3 * 400, 320)  # 3 panels of 4 x 3.2 in at 100 dpi
        assert np.array_equal(np.asarray(im.convert("RGB")), img)
    assert os.listdir(tmp_path) == ["p.png"]  # no temp file left behind
    w = img.shape[1] // 3
    ssim_panel, lpips_panel = img[:, :w], img[:, 2 * w + 40:]  # panels are about w wide
    # both series are drawn in the SSIM panel, the model (higher SSIM) above the baseline
    rows_model = _pixels_of(ssim_panel, MODEL_RGB)[0]
    rows_base = _pixels_of(ssim_panel, BASE_RGB)[0]
    assert len(rows_model) > 20 and len(rows_base) > 20
    assert rows_model.mean() < rows_base.mean()
    # the baseline has no LPIPS: only the model's colour in that panel (the legend is above it)
    body = lpips_panel[60:]
    assert len(_pixels_of(body, MODEL_RGB)[0]) > 20 and len(_pixels_of(body, BASE_RGB)[0]) == 0


def test_plot_depends_on_the_values(tmp_path):
    up = [{"index": i, "ssim": 0.5 + 0.05 * i, "psnr": 20.0 + i, "lpips": 0.1} for i in range(6)]
    down = [{"index": i, "ssim": 0.8 - 0.05 * i, "psnr": 25.0 - i, "lpips": 0.1} for i in range(6)]
    a = plot_metrics_by_index({"model": up}, tmp_path / "a.png")
    b = plot_metrics_by_index({"model": down}, tmp_path / "b.png")
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert np.array_equal(a, plot_metrics_by_index({"model": up}, tmp_path / "c.png"))
    # rising SSIM: the line's rightmost pixels sit higher (smaller row) than its leftmost ones
    rows, cols = _pixels_of(a[60:, : a.shape[1] // 3], MODEL_RGB)
    assert rows[cols > np.percentile(cols, 90)].mean() < rows[cols < np.percentile(cols, 10)].mean()


def test_plot_without_lpips(tmp_path):
    per = [{"index": i, "ssim": 0.5, "psnr": 20.0, "lpips": None} for i in range(4)]  # flat
    img = plot_metrics_by_index({"model": per}, tmp_path / "p.png")
    assert img.shape == (320, 1200, 3)
    assert len(_pixels_of(img[60:, 840:], MODEL_RGB)[0]) == 0  # nothing drawn in the LPIPS panel
    assert os.listdir(tmp_path) == ["p.png"]
