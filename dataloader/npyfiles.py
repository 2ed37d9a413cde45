"""Listing and checking the clip files of a split without reading their frames."""
import glob
import os

import numpy as np

from .errors import DataError


TIMES_SUFFIX = ".times.npy"  # <name>.times.npy: the frame times (seconds) of clip <name>.npy


def list_clips(folder):
    """Sorted paths of the clip files (.npy) in `folder`; frame-time files (*.times.npy) are not clips."""
    return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), "*.npy"))
                  if not p.endswith(TIMES_SUFFIX))


def read_header(path):
    """(shape, dtype) of an .npy file; DataError if it is unreadable or truncated."""
    try:
        with open(path, "rb") as f:
            fmt = np.lib.format  # a version 1.0 header, or the 2.0 layout
            read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError, EOFError) as exc:  # not an .npy file at all
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: holds Python objects, not a numeric video array")
    if fortran:
        raise DataError(f"{path}: Fortran-ordered array; save it C-ordered (np.ascontiguousarray)")
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = os.path.getsize(path)
    if size < need:
        raise DataError(f"{path}: truncated ({size} bytes, the header needs {need}); "
                        "re-run the preparation, which rewrites missing files")
    return tuple(int(s) for s in shape), dtype


def check_clip(path, shape, dtype, float_data):
    """Refuse a clip of the wrong rank, dtype or channel count; return its length."""
    if len(shape) not in (3, 4):
        raise DataError(f"{path}: shape {shape}, expected (T, H, W, C) frames")
    channels = shape[3] if len(shape) == 4 else 1
    if float_data:
        if dtype.kind != "f":
            raise DataError(f"{path}: dtype {dtype}, hurricane clips are float arrays (T, H, W, C)")
        if len(shape) != 4 or channels < 3:
            raise DataError(f"{path}: shape {shape}, hurricane clips need (T, H, W, C>=3)")
    else:
        if dtype != np.uint8:
            raise DataError(f"{path}: dtype {dtype}, expected uint8 frames (T, H, W, 3)")
        if channels not in (1, 3):
            raise DataError(f"{path}: {channels} channels (shape {shape}), expected 3 (RGB) or 1 (grey)")
    return shape[0]
