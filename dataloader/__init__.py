"""What a run reads (docs/algorithm.md section 2): data sets, sampling, the time axis, transforms,
batches, loaders, a user's video. dataset/ (preparation) builds on it, never the reverse."""
from .batch import Collate, batch_to_device, make_batch
from .datasets import DATASET_ROOTS, VideoDataset, dataset_dir, get_dataset
from .errors import DataError
from .loaders import ResumableSampler, build_loaders, build_test_loader
from .sampling import Plan, check_sizes, make_plan, sample_clip
from .timeaxis import model_times, slots_per_unit, source_frames_per_unit, time_steps

__all__ = [
    "DATASET_ROOTS", "Collate", "DataError", "Plan", "ResumableSampler", "VideoDataset",
    "batch_to_device", "build_loaders", "build_test_loader", "check_sizes", "dataset_dir",
    "get_dataset", "make_batch", "make_plan", "model_times", "sample_clip", "slots_per_unit",
    "source_frames_per_unit", "time_steps",
]
