"""What a run reports: [train] lines, TensorBoard, train_log.jsonl (rank 0 writes; every process
calls step(), which averages over them)."""
import json
from argparse import Namespace
from pathlib import Path

import torch
from tqdm import tqdm

from dataloader.transforms import to_unit
from utils import distributed as dist
from utils.metrics import quantize
from utils.visualize import save_grid


class TrainLog:
    """The console, TensorBoard and jsonl logs of one training run in `log_dir`."""

    def __init__(self, opt: Namespace, log_dir: Path, is_main: bool):
        self.opt, self.log_dir, self.main = opt, Path(log_dir), is_main
        self.writer = self.bar = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.log_dir))

    def header(self, environment: str, n_clips: int, n_batches: int, ckpt_dir: Path, world: int) -> None:
        """The lines printed when training starts (rank 0)."""
        if not self.main:
            return
        opt = self.opt
        print(f"[train] {environment}")
        print(f"[train] {n_clips} train clips, {n_batches} batches per epoch; "
              f"logs {self.log_dir}; checkpoints {ckpt_dir}")
        if world > 1:
            bn = "synchronised over processes (--sync_bn)" if opt.sync_bn else "per process"
            print(f"[train] {world} processes x --batch_size {opt.batch_size} = "
                  f"{world * opt.batch_size} clips per step; BatchNorm statistics {bn}")

    def open_bar(self, total: int, initial: int) -> None:
        """self.bar: a progress bar (on a terminal only) over `total` steps, `initial` done."""
        self.bar = tqdm(total=total, initial=initial, disable=None if self.main else True,
                        dynamic_ncols=True, desc="train")

    def step(self, out: dict, seconds: float, step: int, epoch: int, lr: float) -> None:
        """One logged step: train_step's scalar losses averaged over processes, to every log."""
        keys = [k for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0]  # the scalar losses
        means = dist.sum_over_processes(torch.stack([out[k].float() for k in keys])) / dist.world_size()
        scalars = {k: float(v) for k, v in zip(keys, means.tolist())}
        self.bar.set_postfix(G=f"{scalars['loss_G']:.4f}", D=f"{scalars['loss_D']:.4f}")
        if not self.main:
            return
        board = {**scalars, "lr": lr, "seconds_per_step": seconds, "nfe_decoder": out["nfe_decoder"]}
        for k, v in board.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        record = {"step": step, "epoch": epoch + 1, "lr": lr, "seconds": seconds,
                  "nfe_decoder": out["nfe_decoder"], **scalars}
        with open(self.log_dir / "train_log.jsonl", "a") as f:  # one JSON object per logged step
            f.write(json.dumps(record) + "\n")
        tqdm.write(f"[train] epoch {epoch + 1} step {step}: loss G {scalars['loss_G']:.5f} "
                   f"(L1 {scalars['loss_recon']:.5f}, diff {scalars['loss_diff']:.5f}, adv "
                   f"{scalars['loss_adv_G']:.5f}) loss D {scalars['loss_D']:.5f} lr {lr:.2e} "
                   f"{seconds:.2f} s/step nfe {out['nfe_decoder']}")

    def images(self, batch: dict, target: torch.Tensor, pred: torch.Tensor, tag: str, step: int) -> None:
        """PNG grid (and to TensorBoard) of the first clip's observed, true, predicted frames."""
        if not self.main:
            return
        rows = [to_unit(x[0].detach().float().cpu(), self.opt.input_norm)
                for x in (batch["observed_data"], target, pred)]
        grid = save_grid(rows, self.log_dir / "images" / f"{tag}_{step:08d}.png")
        self.writer.add_image(tag, quantize(grid), step)  # (3, H, W) uint8: the PNG's pixels

    def test_loss(self, mean: float, step: int, epoch: int, last: tuple) -> None:
        """The average test loss and the grid of the last test batch, last = (batch, target, pred)."""
        if not self.main:
            return
        tqdm.write(f"[test] epoch {epoch + 1} step {step}: average test loss {mean:.5f}")
        self.writer.add_scalar("test/loss", mean, step)
        self.images(*last, "test", step)

    def finish(self, why: str, step: int, path: Path) -> None:
        """Close TensorBoard and print how the run ended and how to evaluate it (rank 0)."""
        if not self.main:
            return
        self.writer.close()  # flushes
        print(f"[train] {why} at step {step}; checkpoint {path}")
        print(f"[train] evaluate with: python main.py --phase test_met --test_dir {self.log_dir}")
