"""DataLoaders for training and testing."""
import random

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from utils import distributed as dist

from .batch import Collate
from .datasets import get_dataset
from .errors import DataError
from .transforms import warm_up


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a worker from torch's per-worker seed; one OpenCV thread."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(1)
    warm_up()  # no-op when inherited from the parent process


class ResumableSampler(DistributedSampler):
    """The train sampler: a seeded shuffle per epoch, this process's share (the last len % N clips
    dropped), set_start(n) to skip n samples of the next pass; yields (clip index, epoch)."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = max(0, int(start))

    def __iter__(self):
        start, self.start = self.start, 0
        return iter([(i, self.epoch) for i in list(super().__iter__())[start:]])


def _loader(opt, dataset, mode: str, train: bool, distributed: bool) -> DataLoader:
    workers, seed = max(0, int(getattr(opt, "workers", 0))), int(getattr(opt, "seed", 0))
    rank, world = (dist.rank(), dist.world_size()) if distributed else (0, 1)
    generator = torch.Generator().manual_seed(seed + (0 if train else 1) + 7919 * rank)
    if workers:
        warm_up()  # forked workers inherit the loaded modules
    if train:
        sampler = ResumableSampler(dataset, num_replicas=world, rank=rank, seed=seed)
    else:  # in order
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False) if distributed else None
    device = str(getattr(opt, "device", "auto"))
    return DataLoader(dataset, batch_size=opt.batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=Collate(opt, dataset.plan, mode),
                      pin_memory=torch.cuda.is_available() and (device == "auto" or device.startswith("cuda")),
                      drop_last=False,  # the last partial batch is kept, as the reference
                      persistent_workers=workers > 0, worker_init_fn=seed_worker, generator=generator)


def build_loaders(opt, distributed: bool = False) -> tuple[DataLoader, DataLoader]:
    """(train_loader, test_loader) of batch dictionaries; distributed: each process's share."""
    train_set, test_set = get_dataset(opt, "train"), get_dataset(opt, "test")
    world = dist.world_size() if distributed else 1
    if len(train_set) < world:
        raise DataError(f"the train split has {len(train_set)} clips, fewer than the {world} processes: "
                        "every process needs at least one clip; use fewer processes")
    return _loader(opt, train_set, "train", True, distributed), _loader(opt, test_set, "test", False, distributed)


def build_test_loader(opt, distributed: bool = False, full_rate: bool = False) -> DataLoader:
    """The test loader alone; full_rate: with each window at every stored frame."""
    return _loader(opt, get_dataset(opt, "test", full_rate=full_rate), "test", False, distributed)
