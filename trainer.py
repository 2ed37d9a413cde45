"""train: the training loop, its stops (Ctrl-C, NaN, step or time limits), periodic test losses."""
import contextlib
import math
import signal
import time
from argparse import Namespace
from itertools import islice
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from dataloader import batch_to_device, build_loaders
from models import VidODE, create_netD, train_step, update_learning_rate
from models.performance import apply_speed_options, make_grad_scaler
from models.sync_batchnorm import convert_sync_batchnorm
from runs import RunError, describe_run, record_resume, resume_run, start_process, training_run_dirs
from utils import distributed as dist
from utils.train_log import TrainLog
from utils.train_state import TrainState, seed_everything


class StopFlag:
    """First Ctrl-C (or SIGTERM): finish the current step, save, exit. Second: stop at once."""

    def __init__(self):
        self.set, self._old = False, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
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


@contextlib.contextmanager
def buffers_kept(module: torch.nn.Module):
    """Every buffer of `module` (BatchNorm running statistics) restored bit for bit on exit."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, copy in saved:
                b.copy_(copy)


class Trainer:
    """One training run: its pieces built from the options, and the loop over epochs and steps."""

    def __init__(self, opt: Namespace):
        self.opt = opt
        self.rank, self.world, self.device = start_process(opt)
        self.main = self.rank == 0
        # --resume: the run's options (from its checkpoint) into opt, before anything is built from them
        resume = resume_run(opt, self.world) if opt.resume else None
        seed_everything(opt.seed)  # identical initial weights on every process
        self.log_dir, self.ckpt_dir = training_run_dirs(opt, self.main, resume)
        self.train_loader, self.test_loader = build_loaders(opt, distributed=self.world > 1)
        model = VidODE(opt, self.device)
        netD_img, netD_seq, optD = create_netD(opt, self.device)
        if opt.sync_bn and self.world > 1:  # the discriminators use InstanceNorm
            model = convert_sync_batchnorm(model)  # every BatchNorm, the decoder's per-step ones too
        # --channels_last, --compile (in place, same parameters), --amp fp16's loss scaling
        apply_speed_options(opt, model, netD_img, netD_seq)
        try:
            scaler = make_grad_scaler(opt, self.device)
        except ValueError as e:
            raise RunError(str(e)) from e
        optG = torch.optim.Adamax(model.parameters(), lr=opt.lr)
        self.state = TrainState(opt, model, netD_img, netD_seq, optG, optD, scaler, self.rank, self.world)
        self.state.start(resume and resume.checkpoint, resume and resume.state, len(self.train_loader.dataset),
                         len(self.train_loader))
        if resume is not None and self.main:
            record_resume(resume, self.world)
        del resume  # the checkpoint's tensors are in the networks now
        ids = [self.device.index] if self.device.type == "cuda" else None
        wrap = (lambda m: DDP(m, device_ids=ids)) if self.world > 1 else (lambda m: m)
        self.model_ddp, self.netD_img_ddp, self.netD_seq_ddp = map(wrap, (model, netD_img, netD_seq))
        self.log = TrainLog(opt, self.log_dir, self.main)

    @torch.no_grad()
    def test_loss(self) -> float:
        """Average generator loss on the test split; every buffer restored afterwards."""
        st, total, n, last = self.state, 0.0, 0, None
        with buffers_kept(st.model):
            for batch in islice(self.test_loader, self.opt.max_test_batches or None):
                batch = batch_to_device(batch, self.device)
                res = st.model.compute_all_losses(batch)
                total += float(res["loss"])
                n += 1
                last = (batch, res["target"], res["pred_y"])
        total, n = dist.sum_over_processes(  # over every process's share (padded with repeated clips)
            torch.tensor([total, n], dtype=torch.float64, device=self.device)).tolist()
        if n:
            self.log.test_loss(total / n, st.step, st.epoch, last)
        return total / max(n, 1)

    def one_step(self, batch: dict, start: float, stop: StopFlag) -> str | None:
        """One training iteration with its logging and checkpoints; returns why to stop, or None."""
        opt, st = self.opt, self.state
        t0 = time.time()
        batch = batch_to_device(batch, self.device)
        out = train_step(self.model_ddp, self.netD_img_ddp, self.netD_seq_ddp, st.optG, st.optD, batch, opt,
                         st.scaler)
        st.step += 1
        st.batch_in_epoch += 1
        # Every stop decision is taken by all processes together (one all-reduce; one host read
        # per step): a NaN on any process, Ctrl-C seen by any process, any process's clock.
        time_up = bool(opt.max_minutes and (time.time() - start) / 60 >= opt.max_minutes)
        flags = torch.cat([torch.stack([out["loss_G"], out["loss_D"]]).detach().float().to(self.device),
                           torch.tensor([float(stop.set), float(time_up)], device=self.device)])
        loss_G, loss_D, stop_votes, time_votes = dist.sum_over_processes(flags).tolist()
        loss_G, loss_D = loss_G / self.world, loss_D / self.world
        if not (math.isfinite(loss_G) and math.isfinite(loss_D)):
            where = f" (mean over {self.world} processes)" if self.world > 1 else ""
            raise RunError(f"the loss became {loss_G} (generator) / {loss_D} (discriminators){where} at "
                           f"step {st.step}, epoch {st.epoch + 1}; the run stopped. Last good checkpoint: "
                           f"{st.last_ckpt or 'none yet'} (resume from it with --resume, perhaps with a "
                           "lower --lr)")
        seconds = time.time() - t0
        self.log.bar.update(1)
        if st.step % opt.log_print_freq == 0 or st.step == 1:
            self.log.step(out, seconds, st.step, st.epoch, st.optG.param_groups[0]["lr"])
        if st.step % opt.image_print_freq == 0:
            self.log.images(batch, out["target"], out["pred_y"], "train", st.step)
        if st.step == 1 or st.step % opt.ckpt_save_freq == 0:
            st.save(self.ckpt_dir)
        if opt.max_steps and st.step >= opt.max_steps:
            return f"--max_steps {opt.max_steps} reached"
        if time_votes:
            return f"--max_minutes {opt.max_minutes} reached"
        return "stopped by request" if stop_votes else None

    def run(self) -> Path:
        """Train until a stop; returns the last checkpoint written."""
        opt, st = self.opt, self.state
        n_batches = len(self.train_loader)
        total = min(opt.epoch * n_batches, opt.max_steps or math.inf)
        self.log.header(describe_run(opt, self.device), len(self.train_loader.dataset),
                        n_batches, self.ckpt_dir, self.world)
        start = time.time()
        self.log.open_bar(total, min(st.step, total))
        stopped = None
        with StopFlag() as stop:
            for epoch in range(st.epoch + int(st.batch_in_epoch >= n_batches), opt.epoch):
                if epoch != st.epoch:  # a new epoch (the checkpoint's own may be closed already)
                    st.epoch, st.batch_in_epoch = epoch, 0
                if st.batch_in_epoch == 0:  # the reference decays at the start of every epoch
                    update_learning_rate(st.optG, 0.99, opt.lr / 10)
                    update_learning_rate(st.optD, 0.99, opt.lr / 10)
                sampler = self.train_loader.sampler
                sampler.set_epoch(epoch)
                sampler.set_start(st.batch_in_epoch * opt.batch_size)
                for batch in self.train_loader:
                    stopped = self.one_step(batch, start, stop)
                    if stopped:
                        break
                if stopped:
                    break
                st.batch_in_epoch = n_batches  # this epoch is complete
                if (epoch + 1) % opt.test_every_epochs == 0:
                    self.test_loss()
            self.log.bar.close()
            path = st.save(self.ckpt_dir)
        self.log.finish(stopped or f"{opt.epoch} epochs done", st.step, path)
        return path


def train(opt: Namespace) -> Path:
    """Phase train: one run (or the resumed one) until a stop; returns the last checkpoint."""
    try:
        return Trainer(opt).run()
    finally:
        dist.cleanup()
