"""The training loop: run folders, checkpoints with the whole training state, exact resume,
TensorBoard logging, periodic test losses, clean stops (Ctrl-C, NaN, step or time limits)."""
import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from dataloader import batch_to_device, build_loaders
from models import VidODE, create_netD, train_step, update_learning_rate
from models.performance import apply_speed_options, make_grad_scaler
from models.sync_batchnorm import convert_sync_batchnorm
from runs import (RunError, configure_threads, describe_solver, environment_line, new_run_dirs,
                  read_options, resolve_device, save_options, seed_everything)
from utils import distributed as dist
from utils.checkpoint import (load_checkpoint, newest_checkpoint, resolve_checkpoint, rng_state,
                              save_checkpoint, set_rng_state, strip_prefixes)
from utils.visualize import save_grid


class StopFlag:
    """First Ctrl-C (or SIGTERM): finish the current step, save, exit. Second: stop at once."""

    def __init__(self):
        self.set = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        tqdm.write("[train] stop requested: finishing this step and saving a checkpoint "
                   "(press Ctrl-C again to stop at once)")

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def resume_paths(resume):
    """--resume accepts a run's log folder, its checkpoint folder or a checkpoint file."""
    p = Path(resume)
    if p.is_file():
        return p.parent, p
    if (p / "options.json").is_file():
        saved = read_options(p)
        ckpt_dir = Path(saved["checkpoint_dir"])
        newest = newest_checkpoint(ckpt_dir)
        if newest is None:
            raise RunError(f"--resume {resume}: no checkpoint in {ckpt_dir} yet; start a new run instead")
        return ckpt_dir, newest
    if p.is_dir():
        return p, resolve_checkpoint(p)
    raise RunError(f"--resume {resume}: no such file or folder (give a run's log folder, its "
                   "checkpoint folder or a ckpt_<step>.pth file)")


class Trainer:
    def __init__(self, opt):
        self.opt = opt
        configure_threads(opt)
        device = resolve_device(opt.device)
        self.rank, self.world, self.device = dist.init_distributed(device)
        self.main = self.rank == 0
        seed_everything(opt.seed)  # identical initial weights on every process
        self._set_run_dirs()
        self.train_loader, self.test_loader = build_loaders(opt, distributed=self.world > 1)
        self.model = VidODE(opt, self.device)
        self.netD_img, self.netD_seq, self.optD = create_netD(opt, self.device)
        if opt.sync_bn and self.world > 1:
            # every BatchNorm: the encoder's and the decoder's per-step ones (discriminators: InstanceNorm)
            self.model = convert_sync_batchnorm(self.model)
        # --channels_last, --compile (in place, same parameters), --amp fp16's loss scaling
        apply_speed_options(opt, self.model, self.netD_img, self.netD_seq)
        try:
            self.scaler = make_grad_scaler(opt, self.device)
        except ValueError as e:
            raise RunError(str(e)) from e
        self.optG = torch.optim.Adamax(self.model.parameters(), lr=opt.lr)
        self.epoch, self.step, self.batch_in_epoch = 0, 0, 0
        self.last_ckpt = None
        rng_restored = self._load_resume() if opt.resume else False
        if not rng_restored:
            seed_everything(opt.seed + 1000 * self.rank + self.step)  # per-rank streams
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model_ddp = DDP(self.model, device_ids=ids)
            self.netD_img_ddp = DDP(self.netD_img, device_ids=ids)
            self.netD_seq_ddp = DDP(self.netD_seq, device_ids=ids)
        else:
            self.model_ddp, self.netD_img_ddp, self.netD_seq_ddp = self.model, self.netD_img, self.netD_seq
        self.writer = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.log_dir))

    # ------------------------------------------------------------------ run folders
    def _set_run_dirs(self):
        opt = self.opt
        if opt.resume:
            ckpt_dir, _ = resume_paths(opt.resume)
            self.ckpt_dir = ckpt_dir
            log_dir = Path(str(ckpt_dir).replace("checkpoints", "logs", 1))
            self.log_dir = log_dir if (log_dir / "options.json").is_file() else ckpt_dir
        else:
            log_dir, ckpt_dir = new_run_dirs(opt) if self.main else (None, None)
            log_dir, ckpt_dir = dist.broadcast_object((log_dir, ckpt_dir))
            self.log_dir, self.ckpt_dir = Path(log_dir), Path(ckpt_dir)
        opt.log_dir, opt.checkpoint_dir = str(self.log_dir), str(self.ckpt_dir)
        if self.main:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / "images").mkdir(exist_ok=True)
            save_options(opt, self.log_dir)
        dist.barrier()

    # ------------------------------------------------------------------ checkpoints
    def state(self):
        return {"netG": self.model.state_dict(), "netD_img": self.netD_img.state_dict(),
                "netD_seq": self.netD_seq.state_dict(), "optimizer_G": self.optG.state_dict(),
                "optimizer_D": self.optD.state_dict(), "lr": self.optG.param_groups[0]["lr"],
                "epoch": self.epoch, "step": self.step, "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.world, "batch_size": self.opt.batch_size,  # batch_in_epoch's unit
                "rng": rng_state(), "options": {k: v for k, v in vars(self.opt).items()
                                                if isinstance(v, (int, float, str, bool, type(None)))}}

    def save(self):
        """Rank 0 writes the checkpoint (with every process's RNG states); all wait for it."""
        rngs = dist.gather_objects(rng_state()) if self.world > 1 else None
        if self.main:
            state = self.state()
            if self.scaler is not None:  # --amp fp16: the loss scale, for an exact resume
                state["scaler"] = self.scaler.state_dict()
            if rngs is not None:
                state["rng_per_rank"] = rngs
            self.last_ckpt = save_checkpoint(state, self.ckpt_dir, self.step)
        if self.world > 1:
            self.last_ckpt = dist.broadcast_object(self.last_ckpt)  # also a barrier
        return self.last_ckpt

    def _load_resume(self):
        _, path = resume_paths(self.opt.resume)
        obj = load_checkpoint(path, map_location="cpu")
        if not isinstance(obj, dict) or "optimizer_G" not in obj:
            raise RunError(f"{path} holds a generator only (the paper's format), not a training state; "
                           "it can be evaluated with test_met but not resumed")
        self.model.load_state_dict(strip_prefixes(obj["netG"]))
        self.netD_img.load_state_dict(strip_prefixes(obj["netD_img"]))
        self.netD_seq.load_state_dict(strip_prefixes(obj["netD_seq"]))
        self.optG.load_state_dict(obj["optimizer_G"])
        self.optD.load_state_dict(obj["optimizer_D"])
        if self.scaler is not None and obj.get("scaler"):
            self.scaler.load_state_dict(obj["scaler"])
        self.epoch, self.step, self.batch_in_epoch = obj["epoch"], obj["step"], obj["batch_in_epoch"]
        self._convert_position(obj)
        self.last_ckpt = path
        if self.main:
            print(f"[train] resumed {path} (epoch {self.epoch}, step {self.step})")
        # this process's own RNG streams when the checkpoint has them (same number of processes)
        per_rank = obj.get("rng_per_rank")
        if per_rank is not None and len(per_rank) == self.world:
            set_rng_state(per_rank[self.rank])
            return True
        if self.world == 1 and per_rank is None:
            set_rng_state(obj["rng"])
            return True
        return False  # reseeded per process from (seed, rank, step)

    def _convert_position(self, obj):
        """Mid-epoch resume with another process count or --batch_size: keep the clips seen.

        The processes' shares interleave one permutation per epoch, so after s steps the run
        has consumed exactly the first s * batch_size * world_size clips of the epoch's order,
        whatever the split; resume at that prefix (rounded down to a whole new global batch)."""
        old_w = int(obj.get("world_size", self.world))
        old_b = int(obj.get("batch_size", self.opt.batch_size))
        new_w, new_b = self.world, self.opt.batch_size
        if (old_w, old_b) == (new_w, new_b):
            return
        n_clips = len(self.train_loader.dataset)
        if self.batch_in_epoch >= (n_clips // old_w) // old_b:  # the checkpoint closed its epoch
            self.batch_in_epoch = len(self.train_loader)
        else:
            self.batch_in_epoch = self.batch_in_epoch * old_b * old_w // (new_b * new_w)
        if self.main:
            print(f"[train] the checkpoint ran {old_w} process(es) x batch {old_b}, this run {new_w} x "
                  f"{new_b}: resuming epoch {self.epoch + 1} at batch {self.batch_in_epoch}")

    # ------------------------------------------------------------------ logging
    def save_images(self, batch, target, pred, tag):
        """PNG grid of the first clip (observed / true / predicted rows), also in TensorBoard."""
        if not self.main:
            return
        rows = [self._display(x[0].detach().float().cpu()) for x in (batch["observed_data"], target, pred)]
        path = self.log_dir / "images" / f"{tag}_{self.step:08d}.png"
        save_grid(rows, path)
        with Image.open(path) as im:
            self.writer.add_image(tag, np.asarray(im.convert("RGB")), self.step, dataformats="HWC")

    def _display(self, x):
        return x * 0.5 + 0.5 if self.opt.input_norm else x

    # ------------------------------------------------------------------ test loss
    @torch.no_grad()
    def test_loss(self):
        """Average generator loss on the test split (BatchNorm in training mode, as the reference)."""
        total, n, last = 0.0, 0, None
        for i, batch in enumerate(self.test_loader):
            if self.opt.max_test_batches and i >= self.opt.max_test_batches:
                break
            batch = batch_to_device(batch, self.device)
            res = self.model.compute_all_losses(batch)
            total += float(res["loss"])
            n += 1
            last = (batch, res["target"], res["pred_y"])
        if self.world > 1:  # every process's share of the test split (padded with repeated clips)
            total, n = dist.sum_over_processes(torch.tensor([total, n], dtype=torch.float64,
                                                            device=self.device)).tolist()
        if self.main and n:
            mean = total / n
            tqdm.write(f"[test] epoch {self.epoch + 1} step {self.step}: average test loss {mean:.5f}")
            self.writer.add_scalar("test/loss", mean, self.step)
            self.save_images(*last, "test")
        return total / max(n, 1)

    # ------------------------------------------------------------------ loop
    def one_step(self, batch, bar, start, stop):
        """One training iteration with its logging and checkpoints; returns why to stop, or None."""
        opt = self.opt
        t0 = time.time()
        batch = batch_to_device(batch, self.device)
        out = train_step(self.model_ddp, self.netD_img_ddp, self.netD_seq_ddp, self.optG, self.optD, batch, opt,
                         self.scaler)
        self.step += 1
        self.batch_in_epoch += 1
        # Every stop decision is taken by all processes together (one all-reduce; one host read
        # per step): a NaN on any process, Ctrl-C seen by any process, any process's clock.
        time_up = bool(opt.max_minutes and (time.time() - start) / 60 >= opt.max_minutes)
        flags = torch.stack([out["loss_G"].detach().float().to(self.device),
                             out["loss_D"].detach().float().to(self.device),
                             torch.tensor(float(stop.set), device=self.device),
                             torch.tensor(float(time_up), device=self.device)])
        loss_G, loss_D, stop_votes, time_votes = dist.sum_over_processes(flags).tolist()
        loss_G, loss_D = loss_G / self.world, loss_D / self.world
        if not (math.isfinite(loss_G) and math.isfinite(loss_D)):
            where = f" (mean over {self.world} processes)" if self.world > 1 else ""
            raise RunError(f"the loss became {loss_G} (generator) / {loss_D} (discriminators){where} at "
                           f"step {self.step}, epoch {self.epoch + 1}; the run stopped. Last good checkpoint: "
                           f"{self.last_ckpt or 'none yet'} (resume from it with --resume, perhaps with a "
                           "lower --lr)")
        seconds = time.time() - t0
        bar.update(1)
        if self.step % opt.log_print_freq == 0 or self.step == 1:
            self.log(out, seconds, bar)
        if self.step % opt.image_print_freq == 0:
            self.save_images(batch, out["target"], out["pred_y"], "train")
        if self.step == 1 or self.step % opt.ckpt_save_freq == 0:
            self.save()
        if opt.max_steps and self.step >= opt.max_steps:
            return f"--max_steps {opt.max_steps} reached"
        if time_votes:
            return f"--max_minutes {opt.max_minutes} reached"
        if stop_votes:
            return "stopped by request"
        return None

    def log(self, out, seconds, bar):
        scalars = dist.mean_over_processes({k: v for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0})
        scalars = {k: float(v) for k, v in scalars.items()}
        bar.set_postfix(G=f"{scalars['loss_G']:.4f}", D=f"{scalars['loss_D']:.4f}")
        if not self.main:
            return
        for k, v in scalars.items():
            self.writer.add_scalar(f"train/{k}", v, self.step)
        lr = self.optG.param_groups[0]["lr"]
        self.writer.add_scalar("train/lr", lr, self.step)
        self.writer.add_scalar("train/seconds_per_step", seconds, self.step)
        self.writer.add_scalar("train/nfe_decoder", out["nfe_decoder"], self.step)
        record = {"step": self.step, "epoch": self.epoch + 1, "lr": lr, "seconds": seconds,
                  "nfe_decoder": out["nfe_decoder"], **scalars}
        with open(self.log_dir / "train_log.jsonl", "a") as f:  # one JSON object per logged step
            f.write(json.dumps(record) + "\n")
        tqdm.write(f"[train] epoch {self.epoch + 1} step {self.step}: loss G {scalars['loss_G']:.5f} "
                   f"(L1 {scalars['loss_recon']:.5f}, diff {scalars['loss_diff']:.5f}, adv "
                   f"{scalars['loss_adv_G']:.5f}) loss D {scalars['loss_D']:.5f} lr {lr:.2e} "
                   f"{seconds:.2f} s/step nfe {out['nfe_decoder']}")

    def run(self):
        opt = self.opt
        n_batches = len(self.train_loader)
        total = opt.epoch * n_batches
        if opt.max_steps:
            total = min(total, opt.max_steps)
        if self.main:
            print(f"[train] {environment_line(self.device)}; {describe_solver(opt)}")
            print(f"[train] {len(self.train_loader.dataset)} train clips, {n_batches} batches per epoch; "
                  f"logs {self.log_dir}; checkpoints {self.ckpt_dir}")
            if self.world > 1:
                bn = "synchronised over processes (--sync_bn)" if opt.sync_bn else "per process"
                print(f"[train] {self.world} processes x --batch_size {opt.batch_size} = "
                      f"{self.world * opt.batch_size} clips per step; BatchNorm statistics {bn}")
        start = time.time()
        # the bar only on a terminal (disable=None): logs and CI keep the plain [train] lines
        bar = tqdm(total=total, initial=min(self.step, total), disable=None if self.main else True,
                   dynamic_ncols=True, desc="train")
        stopped = None
        epoch = self.epoch
        if self.batch_in_epoch >= n_batches:  # the checkpoint closed its epoch
            epoch, self.batch_in_epoch = epoch + 1, 0
        with StopFlag() as stop:
            while epoch < opt.epoch and not stopped:
                self.epoch = epoch
                if self.batch_in_epoch == 0:  # the reference decays at the start of every epoch
                    update_learning_rate(self.optG, 0.99, opt.lr / 10)
                    update_learning_rate(self.optD, 0.99, opt.lr / 10)
                sampler = self.train_loader.sampler
                sampler.set_epoch(epoch)
                sampler.set_start(self.batch_in_epoch * opt.batch_size)
                for batch in self.train_loader:
                    stopped = self.one_step(batch, bar, start, stop)
                    if stopped:
                        break
                if stopped:
                    break
                self.batch_in_epoch = n_batches  # this epoch is complete
                if (epoch + 1) % opt.test_every_epochs == 0:
                    self.test_loss()
                epoch += 1
                if epoch < opt.epoch:
                    self.batch_in_epoch = 0
            bar.close()
            path = self.save()
        if self.main:
            self.writer.flush()
            self.writer.close()
            why = stopped or f"{opt.epoch} epochs done"
            print(f"[train] {why} at step {self.step}; checkpoint {path}")
            print(f"[train] evaluate with: python main.py --phase test_met --test_dir {self.log_dir}")
        return path


def train(opt):
    trainer = Trainer(opt)
    try:
        return trainer.run()
    finally:
        dist.cleanup()
