"""Atomic file writes: a temp file in the same folder, fsync, os.replace, fsync the folder.

A failure at any point (full disk, Ctrl-C, an exception in the writer) leaves the old file
untouched and no temp file behind.
"""
import contextlib
import json
import math
import os
import uuid

import numpy as np


def temp_path_for(path):
    """A hidden temp name beside `path`, keeping its extension (writers that pick the format
    from it, like cv2.VideoWriter, still work): dir/.name.<pid>.<hex>.tmp.ext"""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    ext = os.path.splitext(name)[1]
    return os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{ext}")


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
def atomic_path(path):
    """Yield a temp path to write `path` through; on success it replaces `path`.

    The caller writes the temp file by any means (it is fsynced here before the rename).
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path_for(path)
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
