"""The metric protocol of docs/algorithm.md section 5, against torchvision, PIL, skimage and hand values
(LPIPS: tests/test_lpips.py)."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import save_image

from utils.metrics import (MetricAccumulator, mse_per_frame, psnr_from_mse, quantize,
                           reference_line, ssim_batched, ssim_skimage, to_gray)


def _const(b, t, value, size=16):
    """(b, T, 3, size, size) frames of one uint8 value v, given as v/255."""
    return torch.full((b, t, 3, size, size), value / 255.0)


# ---------------------------------------------------------------- quantisation, grayscale

def test_quantize_matches_save_image_png(tmp_path):
    torch.manual_seed(0)
    frames = torch.randn(6, 3, 20, 28) * 0.6 + 0.5  # many values outside [0, 1]
    frames[0, 0, 0, :8] = torch.tensor([0.0, 1.0, -0.5, 1.5, 0.5 / 255, 254.5 / 255, 0.5, 1e-9])
    q = quantize(frames)
    assert q.dtype == torch.uint8 and q.shape == frames.shape
    for i, f in enumerate(frames):
        save_image(f, tmp_path / f"{i}.png")
        back = np.asarray(Image.open(tmp_path / f"{i}.png").convert("RGB"))  # (H, W, 3)
        assert np.array_equal(back, q[i].permute(1, 2, 0).numpy())


def test_quantize_hand_values():
    x = torch.tensor([0.0, 0.5, 1.0, -0.2, 1.7, 0.25, 0.2, 0.9999]).view(1, 1, 1, -1)
    assert quantize(x).flatten().tolist() == [0, 128, 255, 0, 255, 64, 51, 255]
    ints = torch.arange(256).float().view(1, 1, 1, -1) / 255  # v/255 -> v, for every v
    assert quantize(ints).flatten().tolist() == list(range(256))


def test_gray_matches_pil_convert_L():
    g = torch.Generator().manual_seed(1)
    q = torch.randint(0, 256, (5, 3, 23, 37), dtype=torch.uint8, generator=g)
    q[0, :, 0, :4] = torch.tensor([[0, 255, 255, 128], [0, 255, 0, 128], [0, 255, 0, 127]])
    gray = to_gray(q)
    for i in range(q.shape[0]):
        pil = np.asarray(Image.fromarray(q[i].permute(1, 2, 0).numpy()).convert("L"))
        assert np.array_equal(gray[i].numpy(), pil)


# ---------------------------------------------------------------- SSIM

def _structured(n, h, w, seed):
    """Gradients, checkerboards, blobs and their noisy, shifted copies, as uint8 (n, h, w)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    base = [255 * xx / (w - 1), 255 * ((xx // 4 + yy // 4) % 2),
            128 + 100 * torch.sin(xx / 3) * torch.cos(yy / 5),
            255 * torch.exp(-((xx - w / 2) ** 2 + (yy - h / 3) ** 2) / (h * w / 20))]
    imgs = [base[i % len(base)] + 25 * torch.randn(h, w, generator=g) for i in range(n)]
    return torch.stack(imgs).clamp(0, 255).round().to(torch.uint8)


@pytest.mark.parametrize("h,w", [(11, 11), (32, 32), (64, 64), (128, 128), (48, 80), (70, 33)])
def test_ssim_batched_matches_skimage(h, w):
    g = torch.Generator().manual_seed(h * w)
    a = torch.cat([_structured(4, h, w, 1), torch.randint(0, 256, (2, h, w), dtype=torch.uint8,
                                                          generator=g)])
    b = torch.cat([_structured(4, h, w, 2), a[4:].roll(3, dims=-1)])
    b[0] = a[0]  # one identical pair
    b[1] = 200  # a constant frame
    got = ssim_batched(a, b)
    ref = torch.tensor([ssim_skimage(x.numpy(), y.numpy()) for x, y in zip(a, b)],
                       dtype=torch.float64)
    assert got.dtype == torch.float64 and got.shape == (a.shape[0],)
    assert torch.allclose(got, ref, atol=1e-6, rtol=0)
    assert got[0].item() == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_frames_by_hand():
    # constant images: variances 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a = torch.full((1, 16, 16), 100, dtype=torch.uint8)
    b = torch.full((1, 16, 16), 110, dtype=torch.uint8)
    c1 = (0.01 * 255) ** 2
    want = (2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1)
    assert ssim_batched(a, b).item() == pytest.approx(want, abs=1e-12)
    assert ssim_skimage(a[0].numpy(), b[0].numpy()) == pytest.approx(want, abs=1e-12)


def test_ssim_rejects_small_or_mismatched_frames():
    with pytest.raises(ValueError):
        ssim_batched(torch.zeros(1, 10, 20), torch.zeros(1, 10, 20))
    with pytest.raises(ValueError):
        ssim_batched(torch.zeros(1, 20, 20), torch.zeros(1, 20, 21))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_ssim_batched_on_gpu_matches_cpu():
    a, b = _structured(8, 64, 64, 3), _structured(8, 64, 64, 4)
    assert torch.allclose(ssim_batched(a.cuda(), b.cuda()).cpu(), ssim_batched(a, b), atol=1e-12)


# ---------------------------------------------------------------- MSE, PSNR, accumulator

def test_identical_frames():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 3, 16, 16)
    acc = MetricAccumulator()
    acc.update(x, x.clone())
    s = acc.summary()
    assert s["ssim"] == pytest.approx(1.0, abs=1e-12) and s["mse"] == 0.0
    assert s["psnr"] == 100.0 and s["psnr_per_frame_mean"] == 100.0
    assert s["lpips"] is None and s["n_frames"] == 6


def test_constant_offset_mse_and_two_psnrs():
    gt = torch.cat([_const(1, 1, 100), _const(1, 1, 100)], dim=1)  # (1, 2, 3, 16, 16)
    pred = torch.cat([_const(1, 1, 110), _const(1, 1, 120)], dim=1)  # offsets 10 and 20
    acc = MetricAccumulator()
    acc.update(pred, gt)
    s = acc.summary()
    m1, m2 = (10 / 255) ** 2, (20 / 255) ** 2
    assert s["mse"] == pytest.approx((m1 + m2) / 2, rel=1e-12)
    assert s["psnr"] == pytest.approx(10 * math.log10(2 / (m1 + m2)), rel=1e-12)
    per_frame = (10 * math.log10(1 / m1) + 10 * math.log10(1 / m2)) / 2
    assert s["psnr_per_frame_mean"] == pytest.approx(per_frame, rel=1e-12)
    assert s["psnr_per_frame_mean"] > s["psnr"] + 0.5  # PSNR of the mean is not the mean PSNR
    assert [e["mse"] for e in s["per_index"]] == pytest.approx([m1, m2], rel=1e-12)


def test_mse_on_quantised_rgb():
    a = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    b = a.clone()
    b[0, 0, 0, 0] = 255  # one channel of one pixel fully off: MSE = 1 / 12
    assert mse_per_frame(a, b).item() == pytest.approx(1 / 12, rel=1e-15)
    # values that quantise to the same uint8 count as equal
    acc = MetricAccumulator()
    acc.update(_const(1, 1, 100) + 0.4 / 255, _const(1, 1, 100) - 0.4 / 255)
    assert acc.summary()["mse"] == 0.0


def test_psnr_cap():
    assert psnr_from_mse(0.0) == 100.0
    assert psnr_from_mse(1e-12) == 100.0
    assert psnr_from_mse(0.01) == pytest.approx(20.0)


def test_per_index_over_batches_of_different_lengths():
    offsets = [0, 5, 10, 15, 20]
    gt = _const(2, 5, 50)
    pred = torch.cat([_const(2, 1, 50 + o) for o in offsets], dim=1)
    acc = MetricAccumulator()
    acc.update(pred, gt)  # 2 clips of 5 frames
    acc.update(pred[:, :3], gt[:, :3])  # 2 clips of 3 frames
    s = acc.summary()
    assert s["n_frames"] == 16 and len(s["per_index"]) == 5
    assert [e["n_frames"] for e in s["per_index"]] == [4, 4, 4, 2, 2]
    assert [e["index"] for e in s["per_index"]] == list(range(5))
    for e, o in zip(s["per_index"], offsets):
        assert e["mse"] == pytest.approx((o / 255) ** 2, rel=1e-12, abs=1e-18)
        assert e["psnr"] == psnr_from_mse(e["mse"])
    assert s["per_index"][0]["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_skimage_option_equals_batched():
    torch.manual_seed(3)
    pred, gt = torch.rand(2, 3, 3, 32, 32), torch.rand(2, 3, 3, 32, 32)
    a, b = MetricAccumulator(), MetricAccumulator(ssim_impl="skimage")
    a.update(pred, gt)
    b.update(pred, gt)
    assert a.summary()["ssim"] == pytest.approx(b.summary()["ssim"], abs=1e-12)


def test_merge_equals_one_process(tmp_path):
    torch.manual_seed(4)
    batches = [(torch.rand(2, 4, 3, 16, 16), torch.rand(2, 4, 3, 16, 16)) for _ in range(4)]
    whole, s0, s1 = MetricAccumulator(), MetricAccumulator(), MetricAccumulator()
    for i, (p, g) in enumerate(batches):
        whole.update(p, g)
        (s0 if i % 2 else s1).update(p, g)  # interleaved shards, merged in another order
    path = tmp_path / "shard.json"
    path.write_text(json.dumps(s1.state()))
    merged = MetricAccumulator().merge(s0.state()).merge(json.loads(path.read_text()))
    assert merged.summary() == whole.summary()
    assert MetricAccumulator().merge(s0).merge(s1).summary() == whole.summary()


def test_reference_line():
    s = {"ssim": 0.81234, "mse": 0.0012345, "lpips": None, "psnr": 29.0868}
    line = reference_line(s)
    assert line.startswith("SSIM / MSE / LPIPS / PSNR")
    assert "0.8123" in line and "n/a" in line and "29.087" in line
    assert "0.1235" in reference_line({**s, "lpips": 0.12345})


def test_update_rejects_bad_shapes():
    with pytest.raises(ValueError):
        MetricAccumulator().update(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
