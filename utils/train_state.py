"""The training state: what a checkpoint holds, saving it and resuming from it bit for bit, also
with another process count or --batch_size (docs/resume.md)."""
import random
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

from utils import distributed as dist
from utils.checkpoint import CheckpointError, rng_state, save_checkpoint, set_rng_state, strip_prefixes


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def batches_per_epoch(n_clips: int, world: int, batch_size: int) -> int:
    """Batches of one process in an epoch: ceil(floor(n_clips / world) / batch_size)."""
    return -(-(n_clips // world) // batch_size)


class TrainState:
    """A run's networks (not DDP), optimisers, loss scaler and position (epoch, step, batches)."""

    def __init__(self, opt: Namespace, model: torch.nn.Module, netD_img: torch.nn.Module, netD_seq: torch.nn.Module,
                 optG: torch.optim.Optimizer, optD: torch.optim.Optimizer, scaler=None, rank: int = 0,
                 world: int = 1):
        self.opt, self.model, self.netD_img, self.netD_seq = opt, model, netD_img, netD_seq
        self.optG, self.optD, self.scaler = optG, optD, scaler
        self.rank, self.world, self.main = rank, world, rank == 0
        self.epoch, self.step, self.batch_in_epoch, self.n_batches = 0, 0, 0, 0
        self.last_ckpt: Path | None = None

    def state(self) -> dict:
        """What a checkpoint holds (rank 0's RNG streams; save() adds every process's)."""
        return {"netG": self.model.state_dict(), "netD_img": self.netD_img.state_dict(),
                "netD_seq": self.netD_seq.state_dict(), "optimizer_G": self.optG.state_dict(),
                "optimizer_D": self.optD.state_dict(), "lr": self.optG.param_groups[0]["lr"],
                "epoch": self.epoch, "step": self.step, "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.world, "batch_size": self.opt.batch_size,  # batch_in_epoch's unit
                "epochs_done": self.epoch + int(self.batch_in_epoch >= self.n_batches),
                "log_dir": str(self.opt.log_dir),  # where --resume finds the run's options.json and logs
                "rng": rng_state(), "options": {k: v for k, v in vars(self.opt).items()
                                                if isinstance(v, (int, float, str, bool, type(None)))}}

    def save(self, ckpt_dir: Path) -> Path:
        """Rank 0 writes the checkpoint (with every process's RNG states); all wait for it."""
        rngs = dist.gather_objects(rng_state()) if self.world > 1 else None
        if self.main:
            state = self.state()
            if self.scaler is not None:  # --amp fp16: the loss scale, for an exact resume
                state["scaler"] = self.scaler.state_dict()
            if rngs is not None:
                state["rng_per_rank"] = rngs
            self.last_ckpt = save_checkpoint(state, ckpt_dir, self.step)
        self.last_ckpt = dist.broadcast_object(self.last_ckpt)  # rank 0's; a barrier under torchrun
        return self.last_ckpt

    def start(self, path: Path | None, obj: dict | None, n_clips: int, n_batches: int) -> None:
        """Resume from `path` holding `obj` (None: a new run); set this process's RNG streams."""
        self.n_batches = n_batches
        if not (path and self._load_resume(path, obj, n_clips)):
            seed_everything(self.opt.seed + 1000 * self.rank + self.step)  # per-rank streams

    def _load_resume(self, path: Path, obj: dict, n_clips: int) -> bool:
        for key, net in (("netG", self.model), ("netD_img", self.netD_img), ("netD_seq", self.netD_seq)):
            try:
                net.load_state_dict(strip_prefixes(obj[key]))
            except RuntimeError as e:
                raise CheckpointError(
                    f"{path}: its {key} does not fit the network built from the run's options "
                    f"({str(e).splitlines()[0]} ...); the checkpoint and its options disagree (was the file "
                    "copied from another run?)") from e
        for key, optim in (("optimizer_G", self.optG), ("optimizer_D", self.optD)):
            try:
                optim.load_state_dict(obj[key])
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"{path}: its {key} does not fit the networks ({e})") from e
        if self.scaler is not None and obj.get("scaler"):
            self.scaler.load_state_dict(obj["scaler"])
        self.epoch, self.step, self.batch_in_epoch = obj["epoch"], obj["step"], obj["batch_in_epoch"]
        self._convert_position(obj, n_clips, self.n_batches)
        self.last_ckpt = path
        if self.main:
            print(f"[train] resumed {path} (epoch {self.epoch + 1}, step {self.step})")
        streams = obj.get("rng_per_rank", [obj["rng"]])  # every process's; one process saved its own
        if len(streams) != self.world:
            return False  # another process count: reseeded per process from (seed, rank, step)
        set_rng_state(streams[self.rank])
        return True

    def _convert_position(self, obj: dict, n_clips: int, n_batches: int) -> None:
        """Another process count or --batch_size: s steps consumed the first s * batch_size *
        world_size clips of the epoch's permutation; resume there, rounded down to a whole batch."""
        old_w, old_b = int(obj["world_size"]), int(obj["batch_size"])
        new_w, new_b = self.world, self.opt.batch_size
        if (old_w, old_b) == (new_w, new_b):
            return
        if self.batch_in_epoch >= batches_per_epoch(n_clips, old_w, old_b):  # the checkpoint closed its epoch
            self.batch_in_epoch = n_batches
        else:
            self.batch_in_epoch = self.batch_in_epoch * old_b * old_w // (new_b * new_w)
        if self.main:
            print(f"[train] the checkpoint ran {old_w} process(es) x batch {old_b}, this run {new_w} x "
                  f"{new_b}: resuming epoch {self.epoch + 1} at batch {self.batch_in_epoch}")
