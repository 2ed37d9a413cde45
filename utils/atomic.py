"""Atomic file writes: a temp file in the same folder, fsync, os.replace, fsync the folder.

A failure at any point (full disk, Ctrl-C, an exception in the writer) leaves the old file
untouched and no temp file behind. Only a killed process (kill -9, power loss) can leave its
temp file: `dir/.name.<pid>.<hex>.tmp` (never ending in .pth or .json, so that nothing looks
for it as a checkpoint or a result); remove_stale_temps() clears those of dead processes.
"""
import contextlib
import json
import math
import os
import re
import uuid
from pathlib import Path

import numpy as np

# extensions a temp file must never end with: they name checkpoints and results
_NEVER_TEMP_SUFFIXES = (".pth", ".pt", ".json", ".jsonl")
# .name.<pid>.<8 hex>.tmp, optionally with the writer's suffix (.tmp.mp4); also the names this
# module used before (.name.<pid>.<hex>.tmp.<ext of name>)
_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def temp_path_for(path, keep_suffix=False):
    """A hidden temp name beside `path`: dir/.name.<pid>.<hex>.tmp. keep_suffix=True appends the
    extension of `path` (dir/.name.<pid>.<hex>.tmp.mp4) for writers that pick the format from
    it, like cv2.VideoWriter; refused for .pth/.json, which name checkpoints and results."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    ext = os.path.splitext(name)[1] if keep_suffix else ""
    if ext.lower() in _NEVER_TEMP_SUFFIXES:
        raise ValueError(f"a temp file must not end in {ext} (it would look like a finished file): "
                         f"write {name} through a file object instead of keep_suffix=True")
    return os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{ext}")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of temp_path_for's (the current or the earlier form)."""
    return _TEMP_RE.match(name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def remove_stale_temps(folder: "str | os.PathLike[str]") -> list[Path]:
    """Remove the temp files of atomic writes that a killed process left under `folder` (recursively);
    those of a process still running (another writer) are kept. Returns the removed paths."""
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for dirpath, _, files in os.walk(root):
        for name in files:
            m = _TEMP_RE.match(name)
            if m is None or _pid_alive(int(m.group(1))):
                continue
            path = Path(dirpath) / name
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def fsync_dir(folder):
    """Make a rename durable; silently skipped where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_path(path, keep_suffix=False):
    """Yield a temp path to write `path` through; on success it replaces `path`.

    The caller writes the temp file by any means (it is fsynced here before the rename);
    keep_suffix: the temp name ends in the extension of `path` (see temp_path_for).
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path_for(path, keep_suffix)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    fsync_dir(folder)


def atomic_write_with(path, write):
    """Open a temp file beside `path` for binary writing, call write(fileobj), then replace."""
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_bytes(path, data):
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path, text, encoding="utf-8"):
    atomic_write_bytes(path, text.encode(encoding))


def _finite_or_none(obj):
    """NaN and infinities become null, so the file stays standard JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def atomic_write_json(path, obj, indent=2):
    """Write `obj` as JSON; non-finite floats are written as null."""
    atomic_write_text(path, json.dumps(_finite_or_none(obj), indent=indent, allow_nan=False) + "\n")


def atomic_save_npy(path: "str | os.PathLike[str]", array: np.ndarray) -> None:
    """np.save `array` (any shape and dtype, written C-contiguous) to `path`, atomically."""
    atomic_write_with(path, lambda f: np.save(f, np.ascontiguousarray(array)))
