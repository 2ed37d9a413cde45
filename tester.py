"""test_met: the reference's metric protocol (docs/evaluation.md), in memory, beside a trivial
baseline: results.json, metrics_by_index.csv and .png in the run folder, the reference's line."""
import csv
import io
import time
from argparse import Namespace
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader
from torchvision.utils import save_image
from tqdm import tqdm

from dataloader import batch_to_device, build_test_loader
from dataloader.transforms import to_unit
from models.performance import autocast
from models.vidode import select_steps
from runs import RunError, describe_run, load_run
from utils import distributed as dist
from utils.atomic import atomic_write_json, atomic_write_text
from utils.baselines import baseline, baseline_kind
from utils.metrics import MetricAccumulator, load_lpips, lpips_backbone, reference_line
from utils.visualize import plot_metrics_by_index


class Evaluator:
    """Runs a generator over the test split and accumulates the model's and the baseline's metrics."""

    def __init__(self, run_opt: SimpleNamespace, model: torch.nn.Module, device: torch.device,
                 lpips_model: torch.nn.Module | None):
        self.run_opt, self.model, self.device = run_opt, model, device
        self.acc, self.acc_base = (MetricAccumulator(lpips_model, device) for _ in range(2))
        self.n_clips = 0

    @torch.no_grad()
    def predict(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction, truth, baseline) at the kept steps, each (b, K, c, h, w) in [0, 1]."""
        with autocast(self.run_opt, self.device):  # --amp; the prediction comes out float32
            pred, extra = self.model.get_reconstruction(
                batch["tp_to_predict"], batch["observed_data"], batch["observed_tp"],
                batch["observed_mask"], batch["mask_predicted_data"])
        step, K = extra["out_step_mask"], extra["n_kept"]
        target = batch.get("original_data_to_predict", batch["data_to_predict"])
        gt = select_steps(target.to(pred.device, pred.dtype), step, K)
        base = select_steps(baseline(batch["observed_data"], batch["observed_tp"], batch["observed_mask"],
                                     batch["tp_to_predict"], self.run_opt.extrap), step, K)
        return tuple(to_unit(x, self.run_opt.input_norm) for x in (pred, gt, base))

    def update(self, batch: dict,
               save_dir: Path | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict one batch and add its metrics (and PNGs to save_dir); returns predict's tuple."""
        pred, gt, base = self.predict(batch)
        self.acc.update(pred, gt)
        self.acc_base.update(base, gt)
        if save_dir is not None:
            save_pngs(save_dir, batch["clip_index"].tolist(), pred, gt)
        self.n_clips += pred.size(0)
        return pred, gt, base


def save_pngs(save_dir: str | Path, clip_index: list[int], pred: torch.Tensor, gt: torch.Tensor) -> None:
    """The reference's <save_dir>/{pred,gt}/<clip>_<frame>.png of pred, gt (b, T, c, h, w) in [0, 1]."""
    for kind, frames in (("pred", pred), ("gt", gt)):
        folder = Path(save_dir) / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i, clip in enumerate(clip_index):
            for t in range(frames.size(1)):
                save_image(frames[i, t].cpu(), folder / f"{clip:05d}_{t:02d}.png")


def metrics_csv(model_summary: dict, base_summary: dict) -> str:
    """metrics_by_index.csv: the overall row, then one row per frame index, model and baseline."""
    keys = ["ssim", "mse", "psnr", "psnr_per_frame_mean", "lpips", "n_frames"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["frame_index"] + keys + [f"baseline_{k}" for k in keys])
    rows = [("all", model_summary, base_summary)] + [
        (m["index"], m, b) for m, b in zip(model_summary["per_index"], base_summary["per_index"])]
    w.writerows([idx] + [m.get(k) for k in keys] + [b.get(k) for k in keys] for idx, m, b in rows)
    return buf.getvalue()


def shard_batches(loader: DataLoader, n_batches: int) -> tuple[DataLoader, int]:
    """(loader, n batches) of this process's share of the first n_batches, whole batches."""
    world = dist.world_size()
    if world == 1:
        return loader, n_batches
    mine = list(loader.batch_sampler)[:n_batches][dist.rank()::world]
    return DataLoader(loader.dataset, batch_sampler=mine, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      worker_init_fn=loader.worker_init_fn, generator=loader.generator), len(mine)


def gather_metrics(ev: Evaluator) -> None:
    """Every process's per-frame metrics merged into `ev` (exact sums: as one process's)."""
    parts = dist.gather_objects((ev.acc.state(), ev.acc_base.state(), ev.n_clips))
    ev.acc, ev.acc_base = (MetricAccumulator(a.lpips_model, a.device, a.ssim_impl)
                           for a in (ev.acc, ev.acc_base))
    for acc, base, _ in parts:
        ev.acc.merge(acc)
        ev.acc_base.merge(base)
    ev.n_clips = sum(n for _, _, n in parts)


def test_met(opt: Namespace) -> dict:
    """Phase test_met on the run in --test_dir: its metrics and the baseline's, written and returned."""
    run_opt, model, ckpt_path, step, device = load_run(opt)
    main_proc = dist.rank() == 0  # under torchrun, rank 0 prints and writes the results
    if main_proc:
        print(f"[test_met] {describe_run(run_opt, device)}")
        print(f"[test_met] checkpoint {ckpt_path}" + (f" (step {step})" if step is not None else ""))
    loader = build_test_loader(run_opt)
    lpips_model = None if opt.no_lpips else load_lpips(device, offline=opt.offline)
    ev = Evaluator(run_opt, model, device, lpips_model)
    save_dir = Path(opt.test_dir) / "result_images" if opt.save_images else None
    start = time.time()
    loader, n_batches = shard_batches(loader, min(len(loader), opt.max_test_batches or len(loader)))
    for batch in tqdm(islice(loader, n_batches), total=n_batches, desc="test_met", dynamic_ncols=True,
                      disable=None if main_proc else True):  # the bar on a terminal only
        ev.update(batch_to_device(batch, device), save_dir)
    gather_metrics(ev)
    seconds = time.time() - start
    if ev.n_clips == 0:
        raise RunError("the test split gave no batch (fewer clips than --batch_size?)")
    summary, base = ev.acc.summary(), ev.acc_base.summary()
    results = {
        "checkpoint": str(ckpt_path), "step": step, "dataset": run_opt.dataset, "extrap": run_opt.extrap,
        "irregular": run_opt.irregular, "n_clips": ev.n_clips, "seconds": seconds,
        "frames_per_second": summary["n_frames"] / seconds if seconds > 0 else None,
        "batchnorm": "running statistics" if opt.bn_running_stats else "batch statistics (reference)",
        "lpips": "AlexNet v0.1 (lin)" if lpips_model is not None else None,
        "lpips_backbone": lpips_backbone(lpips_model),  # where its AlexNet came from
        "model": summary, "baseline": base, "baseline_kind": baseline_kind(run_opt.extrap)}
    if not main_proc:
        return results
    out = Path(opt.test_dir)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "metrics_by_index.csv", metrics_csv(summary, base))
    plot_metrics_by_index({"model": summary["per_index"], "baseline": base["per_index"]},
                          out / "metrics_by_index.png")
    print(reference_line(summary))
    print(f"[test_met] baseline ({results['baseline_kind']}): {reference_line(base)}")
    print(f"[test_met] PSNR model {summary['psnr']:.3f} dB vs baseline {base['psnr']:.3f} dB over "
          f"{summary['n_frames']} frames; results in {out / 'results.json'}")
    return results
