"""The clip data sets: files of <data_root>/<root>/<split>/*.npy, sampled and transformed."""
import os
from argparse import Namespace

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .npyfiles import TIMES_SUFFIX, check_clip, list_clips, read_header
from .sampling import make_plan, sample_clip
from .shapes import ensure_shapes_dataset
from .timeaxis import window_positions
from .transforms import KTH_CROP, transform_clip

# the folder under --data_root (custom: opt.custom_root in fact, see dataset_dir)
DATASET_ROOTS = {"kth": "kth_action", "penn": "penn_action", "mgif": "moving-gif",
                 "hurricane": "Hurricane", "shapes": "shapes", "custom": "custom"}
PREPARE_ARGS = {"kth": "kth KTH_ZIPS_OR_FOLDER", "penn": "penn Penn_Action",
                "mgif": "mgif moving-gif", "hurricane": "hurricane HURRICANE_NPY",
                "shapes": "shapes", "custom": "custom YOUR_VIDEOS"}  # of the prepare command


def dataset_dir(opt):
    """Folder holding {train,test}/*.npy for opt.dataset."""
    if opt.dataset not in DATASET_ROOTS:
        raise DataError(f"unknown dataset {opt.dataset!r}; choose from {', '.join(DATASET_ROOTS)}")
    root = getattr(opt, "custom_root", "custom") if opt.dataset == "custom" else DATASET_ROOTS[opt.dataset]
    return os.path.join(getattr(opt, "data_root", "./dataset"), root)


class VideoDataset(Dataset):
    """One split of a data set. Item: (frames (T, C, H, W) float32, mask (T, 1) float32, clip index);
    full_rate: plus (every stored frame of the window (Tf, C, H, W), positions (Tf,), placement)."""

    def __init__(self, opt, split, root, files, lengths, full_rate=False):
        self.opt, self.split, self.root = opt, split, root
        self.files, self.lengths = files, lengths
        self.plan = make_plan(opt, split)
        self.full_rate = bool(full_rate)
        self.seed = int(getattr(opt, "seed", 0)) % 2 ** 32  # numpy seeds are non-negative

    def __len__(self):
        return len(self.files)

    def rng(self, index, epoch=None):
        """A generator per clip from (seed, clip), or (seed, epoch, clip) on the train split."""
        per_epoch = self.plan.random_start and epoch is not None
        return np.random.default_rng([self.seed] + ([int(epoch)] if per_epoch else []) + [int(index)])

    def __getitem__(self, key):
        """key: a clip index, or (clip index, epoch) as the train sampler yields them."""
        index, epoch = key if isinstance(key, tuple) else (key, None)
        rng = self.rng(index, epoch)
        idx, mask = sample_clip(self.lengths[index], self.plan, rng)
        clip = np.load(self.files[index], mmap_mode="r")
        first, last = int(idx[0]), int(idx[-1])
        frames = clip[first:last + 1] if self.full_rate else clip[idx]  # only these frames are read
        if frames.ndim == 3:
            frames = frames[..., None]  # (T, H, W, C)
        x = transform_clip(frames, self.opt.dataset, self.opt.input_size, augment=self.split == "train",
                           input_norm=self.opt.input_norm, rng=rng)  # (T, C, H, W)
        mask = torch.from_numpy(mask)[:, None]  # (T, 1)
        if not self.full_rate:
            return x, mask, index
        times, unusable = self.frame_times(index, first, last)
        positions, how = window_positions(last - first + 1, self.plan, times)
        full_rate = (x, positions, f"index: {unusable}" if unusable else how)
        return x[torch.from_numpy(idx - first)], mask, index, full_rate  # the sampled frames first

    def frame_times(self, index, first, last):
        """(seconds of stored frames first..last of clip `index` from <name>.times.npy, None) or
        (None, why the file cannot be used); (None, None) without one."""
        path = self.files[index][:-len(".npy")] + TIMES_SUFFIX
        if not os.path.exists(path):
            return None, None
        try:
            times = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            return None, f"{os.path.basename(path)} is not readable ({e})"
        if times.shape != (self.lengths[index],):
            return None, (f"{os.path.basename(path)} holds {times.shape} frame times for a clip of "
                          f"{self.lengths[index]} frames")
        return times[first:last + 1], None


def _check_frame_sizes(opt, shapes, folder):
    """Every clip of a batch must end at the same frame size."""
    sizes = {s[1:3] for s in shapes}
    small = [s for s in sizes if min(s) < KTH_CROP] if opt.dataset == "kth" else []
    if small:
        raise DataError(f"{folder}: frames of {small[0][0]}x{small[0][1]} pixels are smaller "
                        f"than the {KTH_CROP}x{KTH_CROP} centre crop of kth")
    if opt.dataset == "hurricane":
        if len(sizes) > 1:
            raise DataError(f"{folder}: hurricane clips of different frame sizes {sorted(sizes)}; "
                            "they are not resized, so all must match")
        h, w = next(iter(sizes))
        r = 2 ** int(getattr(opt, "n_downs", 2))
        if (h + 2) % r or w % r:
            raise DataError(f"{folder}: hurricane frames {h}x{w} become {h + 2}x{w} after padding, "
                            f"not divisible by 2**n_downs = {r}")
        if (h + 2, w) != (opt.input_size, opt.input_size):
            print(f"[data] hurricane frames are used at their own size {h + 2}x{w} (padded, never "
                  f"resized); --input_size {opt.input_size} does not apply")
    if opt.dataset == "shapes" and any(h != w for h, w in sizes):
        raise DataError(f"{folder}: shapes frames must be square, got {sorted(sizes)}")


def get_dataset(opt: Namespace, split: str, full_rate: bool = False) -> VideoDataset:
    """The checked data set of one split (DataError early, in the calling process)."""
    root = dataset_dir(opt)
    plan = make_plan(opt, split)  # size checks first: they need no files
    if opt.dataset == "shapes":
        ensure_shapes_dataset(root)  # generated on first use
    folder = os.path.join(root, split)
    hint = f"Prepare it with: python -m dataset.prepare {PREPARE_ARGS[opt.dataset]} {root}"
    if not os.path.isdir(folder):
        raise DataError(f"no {split} split for --dataset {opt.dataset}: {folder} does not exist.\n"
                        f"Expected layout: {root}/train/*.npy and {root}/test/*.npy, one "
                        f"(T, H, W, 3) array per video (--data_root is "
                        f"{getattr(opt, 'data_root', './dataset')}).\n{hint}")
    paths = list_clips(folder)
    if not paths:
        raise DataError(f"{folder} holds no .npy clips (empty {split} split). {hint}")
    clips = []  # (path, length, shape) of the clips long enough
    for path in paths:
        shape, dtype = read_header(path)
        length = check_clip(path, shape, dtype, float_data=opt.dataset == "hurricane")
        if length >= plan.min_stored_length:
            clips.append((path, length, shape))
    short = len(paths) - len(clips)
    need = "--window_size with --irregular" if plan.irregular else "--sample_size"
    if plan.frame_stride > 1:
        need = (f"{plan.min_length} frames, one in every {plan.frame_stride}: {need} with "
                f"--frame_stride {plan.frame_stride}")
    if short:
        print(f"[data] {opt.dataset} {split}: skipped {short} of {len(paths)} clips shorter than "
              f"{plan.min_stored_length} frames ({need})")
    if not clips:
        raise DataError(f"{folder}: all {len(paths)} clips are shorter than {plan.min_stored_length} "
                        f"frames ({need}); lower it or use longer clips")
    files, lengths, shapes = map(list, zip(*clips))
    _check_frame_sizes(opt, shapes, folder)
    if plan.frame_stride > 1:
        print(f"[data] {opt.dataset} {split}: one frame in every {plan.frame_stride} of each clip "
              f"(--frame_stride {plan.frame_stride})" + ("; the frames between are kept for evaluation"
                                                         if full_rate else ""))
    return VideoDataset(opt, split, root, files, lengths, full_rate=full_rate)
