"""Atomic file writes: a temp file beside the target, fsync, os.replace, fsync the folder; only a
killed process leaves its `.name.<pid>.<hex>.tmp` behind (remove_stale_temps clears them)."""
import contextlib
import json
import math
import os
import re
import uuid
from pathlib import Path

import numpy as np

TEMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")  # .name.<pid>.<hex>.tmp[.ext]


def temp_path_for(path: "str | os.PathLike[str]", keep_suffix: bool = False) -> str:
    """A hidden temp name beside `path` (keep_suffix: with its extension, not .pth or .json)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    ext = os.path.splitext(name)[1] if keep_suffix else ""
    if ext.lower() in (".pth", ".pt", ".json", ".jsonl"):
        raise ValueError(f"a temp file must not end in {ext} (it would look like a finished file): "
                         f"write {name} through a file object instead of keep_suffix=True")
    return os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{ext}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temps(folder: "str | os.PathLike[str]") -> list[Path]:
    """Remove (and return) the temp files that dead processes left under `folder`, recursively."""
    removed = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            m = TEMP_RE.match(name)
            if m and not _pid_alive(int(m.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    (Path(dirpath) / name).unlink()
                    removed.append(Path(dirpath) / name)
    return removed


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: "str | os.PathLike[str]", keep_suffix: bool = False):
    """Yield a temp path to write `path` through; on success fsynced and renamed to `path`."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path_for(path, keep_suffix)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where folders can be opened
        _fsync(folder)


def atomic_write_with(path: "str | os.PathLike[str]", write) -> None:
    """Open a temp file beside `path` for binary writing, call write(fileobj), then replace."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        write(f)


def atomic_write_bytes(path: "str | os.PathLike[str]", data: bytes) -> None:
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: "str | os.PathLike[str]", text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite_or_none(obj):
    """NaN and infinities become null, so the file stays standard JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def atomic_write_json(path: "str | os.PathLike[str]", obj, indent: int = 2) -> None:
    """Write `obj` as JSON; non-finite floats are written as null."""
    atomic_write_text(path, json.dumps(_finite_or_none(obj), indent=indent, allow_nan=False) + "\n")


def atomic_save_npy(path: "str | os.PathLike[str]", array: np.ndarray) -> None:
    """np.save `array` (any shape and dtype, written C-contiguous) to `path`, atomically."""
    atomic_write_with(path, lambda f: np.save(f, np.ascontiguousarray(array)))
