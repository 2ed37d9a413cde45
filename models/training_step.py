"""One Vid-ODE training iteration (docs/algorithm.md section 4), shared by the trainer and the tests."""
from typing import Any

import torch
import torch.nn as nn
from torch.profiler import record_function

from models.discriminator import flatten_frames, lsgan_d_loss, lsgan_g_loss, make_sequences
from models.performance import autocast
from models.vidode import select_steps, as_step_mask, count_kept
from utils.distributed import unwrap


def update_learning_rate(optimizer: torch.optim.Optimizer, decay_rate: float = 0.99, lowest: float = 1e-4) -> float:
    """lr <- max(lr * decay_rate, lowest), for every parameter group (start of each epoch)."""
    for group in optimizer.param_groups:
        group["lr"] = max(group["lr"] * decay_rate, lowest)
    return optimizer.param_groups[0]["lr"]


def discriminator_inputs(batch: dict[str, torch.Tensor], res: dict[str, Any],
                         opt: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observed frames (b, T_obs, c, h, w), true frames and predictions (b, K, c, h, w) as the
    discriminators see them.

    Irregular mode reduces the observed frames to each sample's observed slots
    (observed_mask); the targets and predictions are already the kept steps.
    """
    observed = batch["observed_data"].to(res["pred_y"].device, res["pred_y"].dtype)
    if opt.irregular:
        b, T = observed.shape[:2]
        obs_step = as_step_mask(batch["observed_mask"].to(observed.device), b, T)
        observed = select_steps(observed, obs_step, count_kept(obs_step))
    return observed, res["target"], res["pred_y"]


def real_sequences(observed: torch.Tensor, real: torch.Tensor, extrap: bool, once: bool = True) -> torch.Tensor:
    """The sequence D's real inputs: make_sequences(observed, real, extrap), (K * b, n * c, h, w).

    once: in interpolation training the true frames are the observed ones, so every step's real
    sequence is the observed clip itself: it is then scored once, (b, T * c, h, w), instead of K
    times (the mean over K identical copies is the same; K times less D work)."""
    if once and not extrap and real.shape == observed.shape and torch.equal(real, observed):
        return observed.reshape(observed.size(0), -1, *observed.shape[3:])  # (b, T*c, h, w)
    return make_sequences(observed, real, extrap)


def _set_requires_grad(nets, flag):
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def _backward(loss, scaler):
    (scaler.scale(loss) if scaler is not None else loss).backward()


def _step(optimizer, scaler):
    if scaler is not None:
        scaler.step(optimizer)
    else:
        optimizer.step()


def discriminator_step(netD_img: nn.Module, netD_seq: nn.Module, optimizer_D: torch.optim.Optimizer,
                       batch: dict[str, torch.Tensor], res: dict[str, Any], opt: Any,
                       scaler: torch.amp.GradScaler | None = None, *, score_real_once: bool = True,
                       freeze_d: bool = True) -> dict[str, torch.Tensor]:
    """The D step (both discriminators, one Adamax), then the generator's adversarial terms
    against the updated discriminators. Returns the loss tensors.

    score_real_once: see real_sequences. freeze_d: the generator's adversarial pass computes no
    discriminator weight gradients (the reference computes them and discards them). False is
    the reference's way for either (bench/bench_ablation.py measures what they give)."""
    device = res["pred_y"].device
    with record_function("D_inputs"):
        observed, real, fake = discriminator_inputs(batch, res, opt)
        # contiguous inputs: the discriminators' float rounding then matches the reference's
        seq_real = real_sequences(observed, real, opt.extrap, once=score_real_once).contiguous()
        seq_fake = make_sequences(observed, fake, opt.extrap).contiguous()
        img_real, img_fake = flatten_frames(real).contiguous(), flatten_frames(fake).contiguous()

    # One discriminator after the other, each backward right after its forward: the two have
    # no parameter in common, so the gradients are those of loss_D.backward(), bit for bit, and
    # only one discriminator's graph is alive at a time (less peak memory).
    optimizer_D.zero_grad(set_to_none=True)
    with record_function("D_losses"), autocast(opt, device):
        # L_D^seq: D_seq's own loss (real sequences vs. sequences with Y_hat)
        d_seq = lsgan_d_loss(netD_seq, seq_real, seq_fake)
    with record_function("D_backward_step"):
        _backward(opt.lamb_adv * d_seq, scaler)
    with record_function("D_losses"), autocast(opt, device):
        # L_D^img: D_img's own loss (Y vs. Y_hat)
        d_img = lsgan_d_loss(netD_img, img_real, img_fake)
    with record_function("D_backward_step"):
        _backward(opt.lamb_adv * d_img, scaler)
        _step(optimizer_D, scaler)
    loss_D = opt.lamb_adv * d_seq.detach() + opt.lamb_adv * d_img.detach()

    # generator, against the updated discriminators: no D weight gradients are needed, so the
    # bare modules are called (outside DistributedDataParallel) with their weights frozen
    with record_function("G_adv_forward"), autocast(opt, device):
        D_seq, D_img = unwrap(netD_seq), unwrap(netD_img)
        _set_requires_grad((D_seq, D_img), not freeze_d)
        try:
            # L_adv^seq: D_seq on the sequences holding the predictions
            g_seq = lsgan_g_loss(D_seq, seq_fake)
            # L_adv^img: D_img on every predicted frame Y_hat_{t_i}
            g_img = lsgan_g_loss(D_img, img_fake)
        finally:
            _set_requires_grad((D_seq, D_img), True)
        loss_adv_G = opt.lamb_adv * g_seq + opt.lamb_adv * g_img
    return {"loss_D": loss_D, "loss_D_seq": d_seq, "loss_D_img": d_img,
            "loss_adv_G": loss_adv_G, "loss_G_seq": g_seq, "loss_G_img": g_img}


def train_step(model: nn.Module, netD_img: nn.Module, netD_seq: nn.Module, optimizer_G: torch.optim.Optimizer,
               optimizer_D: torch.optim.Optimizer, batch: dict[str, torch.Tensor], opt: Any,
               scaler: torch.amp.GradScaler | None = None, *, score_real_once: bool = True,
               freeze_d: bool = True) -> dict[str, Any]:
    """D step, then the generator's adversarial loss against the updated D, then the G step.
    With --lamb_adv 0 the discriminators are skipped (their losses are reported as 0).

    The networks may be wrapped in DistributedDataParallel. Returns a dict of detached loss
    tensors, the prediction and its target. Phases are labelled for torch.profiler.
    --amp: the forward passes run under autocast (models.performance), the backward passes
    outside it; scaler: a GradScaler (--amp fp16), updated once per iteration.
    score_real_once, freeze_d: see discriminator_step (bench/bench_ablation.py turns them off).
    """
    with record_function("G_forward"), autocast(opt, unwrap(model).device):
        res = model(batch)
        loss_G_recon = res["loss"]
    if opt.lamb_adv > 0:
        adv = discriminator_step(netD_img, netD_seq, optimizer_D, batch, res, opt, scaler,
                                 score_real_once=score_real_once, freeze_d=freeze_d)
    else:
        zero = loss_G_recon.new_zeros(())
        adv = dict.fromkeys(("loss_D", "loss_D_seq", "loss_D_img", "loss_adv_G", "loss_G_seq",
                             "loss_G_img"), zero)
    # L = L_recon + L_diff + lambda_adv * (L_adv^seq + L_adv^img), lambda_adv = --lamb_adv
    loss_G = loss_G_recon + adv["loss_adv_G"]
    with record_function("G_backward_step"):
        optimizer_G.zero_grad(set_to_none=True)
        _backward(loss_G, scaler)
        _step(optimizer_G, scaler)
        if scaler is not None:
            scaler.update()

    out = {"loss_G": loss_G, "loss_G_recon": loss_G_recon, "loss_recon": res["loss_recon"],
           "loss_diff": res["loss_diff"], **adv}
    out = {k: v.detach() for k, v in out.items()}
    out["pred_y"] = res["pred_y"].detach()
    out["target"] = res["target"].detach()
    out["nfe_decoder"] = unwrap(model).diffeq_solver.ode_func.nfe
    return out
