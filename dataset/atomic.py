"""Atomic writes of prepared files (the mechanism is utils.atomic's)."""
import numpy as np

from utils.atomic import atomic_write_json, atomic_write_with


def save_npy(path, array):
    """np.save to `path`, atomically."""
    atomic_write_with(path, lambda f: np.save(f, np.ascontiguousarray(array)))


def save_json(path, obj):
    """JSON to `path`, atomically."""
    atomic_write_json(path, obj, indent=1)
