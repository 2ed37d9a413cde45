"""glibc malloc settings for CPU work on big tensors (--malloc_reuse_mb)."""
import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)
_reused_mb = 0


def reuse_freed_memory(mb: int) -> int:
    """Serve blocks under `mb` MB from malloc's heap and keep up to 1 GB of freed heap memory
    for reuse, instead of mapping each such tensor fresh from the kernel, which zero-fills every
    page (docs/performance.md measures it). Returns the MB now reused: 0 where mb is 0 or the C
    library is not glibc (nothing changed)."""
    global _reused_mb
    if mb > 0:
        try:
            mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
        except (OSError, AttributeError):  # no glibc: its allocator is left as it is
            return _reused_mb
        if mallopt(_M_MMAP_THRESHOLD, mb << 20) and mallopt(_M_TRIM_THRESHOLD, 1 << 30):
            _reused_mb = mb
    return _reused_mb


def describe() -> str:
    """One phrase for the run's first log line."""
    return (f"malloc reuses freed blocks under {_reused_mb} MB" if _reused_mb
            else "malloc as the C library sets it")
