"""Clips -> the batch dictionary the model consumes (docs/algorithm.md section 2, "Batch dictionary")."""
from argparse import Namespace
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch

from . import timeaxis


def _masked(x, m):
    """Zero the frames whose mask is 0: x (b, t, c, h, w), m (b, t, 1)."""
    return x * m[..., None, None]  # (b, t, 1) -> (b, t, 1, 1, 1)


def make_batch(data: torch.Tensor, mask: torch.Tensor, time_steps: torch.Tensor, opt: Namespace,
               test_interp: bool = False, predict_unobserved: bool = False, mode: Optional[str] = None,
               clip_index: Optional[Union[torch.Tensor, Sequence[int]]] = None) -> Dict[str, Any]:
    """Split clips data (b, T, C, H, W), mask (b, T, 1), time_steps (T_ts,) into observed and
    to-predict parts (docs/algorithm.md section 2); mode: 'test' for the test-time interpolations."""
    mode = mode or ("test" if (test_interp or predict_unobserved) else "train")
    b, t = data.shape[:2]
    mask, time_steps = mask.to(data.dtype).reshape(b, t, 1), time_steps.to(torch.float32)
    if test_interp:
        keep = mask[..., 0] > 0.5  # (b, T)
        n_obs = int(keep[0].sum())
        if not bool((keep.sum(1) == n_obs).all()):
            raise ValueError("test-time interpolation needs the same number of observed frames per clip")
        if time_steps.numel() != n_obs:
            raise ValueError(f"test-time interpolation: {time_steps.numel()} time stamps for "
                             f"{n_obs} observed frames")
        obs = data[keep].reshape(b, n_obs, *data.shape[2:])  # (b, T_obs, c, h, w)
        obs_tp, obs_mask = time_steps, torch.ones(b, n_obs, 1, dtype=data.dtype)
        pred = to_predict = data  # the full clip, unmasked, as the reference passes it
        pred_tp = timeaxis.model_times(range(t), t)  # all S frames at k / S
        pred_mask = 1.0 - mask
        pred_mask[:, -1] = 0.0  # the reference never predicts the last frame
    else:
        if opt.extrap:
            n = t // 2
            obs, obs_tp, obs_mask = data[:, :n], time_steps[:n], mask[:, :n]
            pred, pred_tp, pred_mask = data[:, n:], time_steps[n:], mask[:, n:]
        else:
            obs, obs_tp, obs_mask = data, time_steps, mask
            pred, pred_tp = data, time_steps
            pred_mask = 1.0 - mask if predict_unobserved else mask
        obs, to_predict = _masked(obs, obs_mask), _masked(pred, pred_mask)
    batch = {"observed_data": obs, "observed_tp": obs_tp.clone(), "observed_mask": obs_mask.clone(),
             "data_to_predict": to_predict, "tp_to_predict": pred_tp.clone(),
             "mask_predicted_data": pred_mask.clone(), "original_data_to_predict": pred, "mode": mode}
    if clip_index is not None:
        batch["clip_index"] = torch.as_tensor(clip_index, dtype=torch.int64)
    return batch


def batch_to_device(batch, device, non_blocking=True):
    """Move every tensor of a batch dictionary to `device` (other values stay as they are)."""
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v
            for k, v in batch.items()}


class Collate:
    """collate_fn: [(frames (T, C, H, W), mask (T, 1), index)] -> batch dictionary; full-rate items add
    "full_rate_data" (b, Tf, C, H, W), "full_rate_positions" (b, Tf) and "full_rate_placement"."""

    def __init__(self, opt, plan, mode):
        self.opt, self.plan, self.mode = opt, plan, mode
        self.time_steps = timeaxis.time_steps(plan)

    def __call__(self, items):
        data = torch.stack([it[0] for it in items])  # (b, T, c, h, w)
        mask = torch.stack([it[1] for it in items])  # (b, T, 1)
        batch = make_batch(data, mask, self.time_steps, self.opt, test_interp=self.plan.test_interp,
                           predict_unobserved=self.plan.predict_unobserved, mode=self.mode,
                           clip_index=[it[2] for it in items])
        if len(items[0]) > 3:
            batch["full_rate_data"] = torch.stack([it[3][0] for it in items])  # (b, Tf, c, h, w)
            batch["full_rate_positions"] = torch.from_numpy(np.stack([it[3][1] for it in items])).float()
            batch["full_rate_placement"] = [it[3][2] for it in items]
        return batch
