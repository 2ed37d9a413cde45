"""Data loading for Vid-ODE: data sets, sampling, transforms and batches (docs/algorithm.md section 2)."""
from .batch import Collate, batch_to_device, make_batch
from .datasets import DATASET_ROOTS, VideoDataset, dataset_dir, get_dataset
from .errors import DataError
from .loaders import ResumableSampler, build_loaders, build_test_loader
from .sampling import Plan, make_plan, sample_clip, time_steps

__all__ = [
    "DATASET_ROOTS", "Collate", "DataError", "Plan", "ResumableSampler", "VideoDataset",
    "batch_to_device", "build_loaders", "build_test_loader", "dataset_dir", "get_dataset",
    "make_batch", "make_plan", "sample_clip", "time_steps",
]
