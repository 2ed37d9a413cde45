"""What a run reads (docs/algorithm.md section 2): data sets, sampling, the time axis, transforms,
batches, loaders, a user's video. dataset/ (preparation) builds on it, never the reverse."""
from .batch import batch_to_device, make_batch
from .datasets import DATASET_ROOTS, get_dataset
from .errors import DataError
from .loaders import ResumableSampler, build_loaders, build_test_loader
from .sampling import check_sizes, make_plan, sample_clip
from .timeaxis import time_steps

__all__ = ["DATASET_ROOTS", "DataError", "ResumableSampler", "batch_to_device", "build_loaders",
           "build_test_loader", "check_sizes", "get_dataset", "make_batch", "make_plan", "sample_clip",
           "time_steps"]
