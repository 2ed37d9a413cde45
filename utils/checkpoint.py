"""Checkpoint files `ckpt_<step:08d>.pth` (the paper's bare generator state dict, or the training
state of utils/train_state.py): atomic saving, finding by step, safe loading, RNG states."""
import pickle
import random
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from utils.atomic import atomic_write_with

CKPT_RE = re.compile(r"^ckpt_(\d+)\.pth$")
WRAPPER_PREFIXES = re.compile(r"^(?:module\.|_orig_mod\.)+")  # DDP's, torch.compile's


class CheckpointError(FileNotFoundError):
    """A checkpoint that cannot be found or read; the message says what to do."""


def atomic_save(obj, path) -> None:
    """torch.save through utils/atomic.py: never a partial `path`."""
    atomic_write_with(path, lambda f: torch.save(obj, f))


def checkpoint_path(folder, step) -> Path:
    return Path(folder) / f"ckpt_{int(step):08d}.pth"


def checkpoint_step(path):
    """The step in a checkpoint's file name, or None for other names."""
    m = CKPT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def save_checkpoint(obj, folder, step) -> Path:
    path = checkpoint_path(folder, step)
    atomic_save(obj, path)
    return path


def list_checkpoints(folder) -> list[Path]:
    """Checkpoint paths in `folder`, sorted by step (not by name or directory order)."""
    folder = Path(folder)
    found = [(checkpoint_step(p), p) for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    return [p for s, p in sorted(f for f in found if f[0] is not None)]


def newest_checkpoint(folder):
    """The checkpoint with the highest step, or None."""
    return (list_checkpoints(folder) or [None])[-1]


def _available(folder) -> str:
    steps = [checkpoint_step(p) for p in list_checkpoints(folder)]
    if not steps:
        return f"no ckpt_<step>.pth files in {folder}"
    more = f" (and {len(steps) - 10} older)" if len(steps) > 10 else ""
    return f"steps available in {folder}: {', '.join(map(str, steps[-10:]))}{more}"


def resolve_checkpoint(folder, which=None) -> Path:
    """None -> the newest; a step number -> its file; else a path (as given, or inside `folder`)."""
    folder = Path(folder)
    if which is None or str(which).strip() == "":
        path = newest_checkpoint(folder)
        if path is None:
            raise CheckpointError(f"no checkpoint found: looked for ckpt_<step>.pth in {folder}; "
                                  "train first, or pass --ckpt PATH")
        return path
    if isinstance(which, int) or str(which).strip().isdigit():
        step = int(which)
        path = {checkpoint_step(p): p for p in list_checkpoints(folder)}.get(step)
        if path is not None:
            return path
        raise CheckpointError(f"no checkpoint for step {step} ({checkpoint_path(folder, step)}); "
                              f"{_available(folder)}")
    for cand in (Path(which), folder / which):
        if cand.is_file():
            return cand
    raise CheckpointError(f"checkpoint file not found: {which} (also looked in {folder}); {_available(folder)}")


def load_checkpoint(path, map_location="cpu"):
    """torch.load(weights_only=True); a missing, corrupt or foreign file is a CheckpointError."""
    path = Path(path)
    hint = f"pick another with --ckpt <step or path> ({_available(path.parent)})"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; {hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        text = str(e).split("WeightsUnpickler error:")[-1].strip()  # skip torch's preamble
        if "Unsupported global" in text:
            raise CheckpointError(f"{path} holds Python objects that weights_only loading refuses "
                                  f"({text.splitlines()[0][:200]}); it was not written by this code") from e
        first = text.splitlines()[0] if text else "empty file?"
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt or truncated "
                              f"({type(e).__name__}: {first[:200]}); {hint}") from e


def strip_prefixes(state: dict) -> OrderedDict:
    """Drop leading 'module.' (DDP) and '_orig_mod.' (torch.compile) from every key."""
    return OrderedDict((WRAPPER_PREFIXES.sub("", k), v) for k, v in state.items())


def generator_state_from(obj) -> OrderedDict:
    """The generator's state dict of a paper-format or training checkpoint, prefixes stripped."""
    if isinstance(obj, dict) and "netG" in obj:
        obj = obj["netG"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("not a generator checkpoint: expected a state dict of tensors or "
                              f"a training checkpoint with key 'netG', got {type(obj).__name__}"
                              + (f" with keys {list(obj)[:8]}" if isinstance(obj, dict) else ""))
    return strip_prefixes(obj)


def rng_state() -> dict:
    """States of python, numpy, torch and CUDA RNGs as weights_only-safe types."""
    py = random.getstate()  # (version, tuple of 625 ints, gauss_next)
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": py[0], "state": torch.tensor(py[1], dtype=torch.int64), "gauss_next": py[2]},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() returned."""
    p, n = state["python"], state["numpy"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and torch.cuda.is_available():
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
