"""DataLoaders for training and testing."""
import random

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from .batch import Collate
from .datasets import get_dataset
from .errors import DataError
from .transforms import warm_up


def seed_worker(worker_id):
    """Seed numpy and random in a worker from torch's per-worker seed; one OpenCV thread."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(1)
    warm_up()  # no-op when inherited from the parent process


def _uses_cuda(opt):
    device = str(getattr(opt, "device", "auto"))
    if device == "auto":
        return torch.cuda.is_available()
    return device.startswith("cuda") and torch.cuda.is_available()


def _rank(distributed):
    if distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ResumableSampler(DistributedSampler):
    """The train sampler: a seeded shuffle per epoch, this process's share, resumable mid-epoch.

    set_epoch(e) picks the epoch's order (without it, each pass takes the next epoch's order);
    set_start(n) skips the first n samples of the next pass (resuming a checkpoint mid-epoch).
    Yields (clip index, epoch): the data set draws each clip's randomness from (seed, epoch, clip).
    """

    def __init__(self, dataset, num_replicas=1, rank=0, seed=0):
        # drop_last here drops clips, not batches: with N processes the last len % N clips of the
        # epoch's order, so that every process has the same share and takes the same steps
        # (one process drops nothing)
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.start, self._epoch_given, self._passes = 0, False, 0

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self._epoch_given = True

    def set_start(self, start):
        self.start = max(0, int(start))

    def __iter__(self):
        if self._passes and not self._epoch_given:
            self.epoch += 1
        self._epoch_given, self._passes = False, self._passes + 1
        start, self.start = self.start, 0
        return iter([(i, self.epoch) for i in list(super().__iter__())[start:]])


def _loader(opt, dataset, mode, train, distributed, seed_offset):
    workers = max(0, int(getattr(opt, "workers", 0)))
    seed = int(getattr(opt, "seed", 0))
    rank, world = _rank(distributed)
    generator = torch.Generator()  # the workers' seeds
    generator.manual_seed(seed + seed_offset + 7919 * rank)
    if workers:
        warm_up()  # forked workers inherit the loaded modules
    if train:
        sampler = ResumableSampler(dataset, num_replicas=world, rank=rank, seed=seed)
    elif distributed:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)
    else:
        sampler = None  # in order
    return DataLoader(
        dataset,
        batch_size=opt.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=Collate(opt, dataset.plan, mode),
        pin_memory=_uses_cuda(opt),
        drop_last=False,  # the last partial batch is kept, as the reference: ceil(clips / b) steps per epoch
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
        generator=generator,
    )


def build_loaders(opt, distributed=False):
    """(train_loader, test_loader) of ready batch dictionaries (CPU, float32).

    The train loader's sampler (a DistributedSampler) shuffles per epoch from opt.seed:
    call loader.sampler.set_epoch(epoch) each epoch, set_start(n) to resume mid-epoch. An epoch
    has ceil(share / batch_size) batches, the last one partial when the share is not a multiple
    of the batch size (as the reference); share = the clips of this process (all of them for one
    process; with N processes floor(clips / N), the last clips % N of the epoch's order dropped).
    distributed: each process gets its share; the test sampler pads the shares to equal
    length by repeating clips (see batch['clip_index']).
    """
    train_set = get_dataset(opt, "train")
    test_set = get_dataset(opt, "test")
    rank, world = _rank(distributed)
    # no per-rank seed offset: a clip's randomness is keyed by (seed, epoch, clip) and each clip
    # goes to one process per epoch, so N processes of batch b see the clips of one process of N*b
    per_rank = len(train_set) // world
    if per_rank < 1:
        raise DataError(f"the train split has {len(train_set)} clips, fewer than the {world} processes: "
                        "every process needs at least one clip; use fewer processes")
    train_loader = _loader(opt, train_set, "train", True, distributed, 0)
    test_loader = _loader(opt, test_set, "test", False, distributed, 1)
    return train_loader, test_loader


def build_test_loader(opt, distributed=False, full_rate=False):
    """The test loader alone (the train split need not exist), as build_loaders makes it;
    full_rate: batches also carry each window at every stored frame (get_dataset)."""
    return _loader(opt, get_dataset(opt, "test", full_rate=full_rate), "test", False, distributed, 1)
