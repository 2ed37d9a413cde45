"""One Vid-ODE training iteration (docs/algorithm.md section 4), shared by the trainer and the tests."""

import torch
from torch.profiler import record_function

from models.discriminator import flatten_frames, lsgan_d_loss, lsgan_g_loss, make_sequences
from models.performance import autocast
from models.vidode import select_steps, as_step_mask, count_kept
from utils.distributed import unwrap


def update_learning_rate(optimizer, decay_rate=0.99, lowest=1e-4):
    """lr <- max(lr * decay_rate, lowest), for every parameter group (start of each epoch)."""
    for group in optimizer.param_groups:
        group["lr"] = max(group["lr"] * decay_rate, lowest)
    return optimizer.param_groups[0]["lr"]


def discriminator_inputs(batch, res, opt):
    """Observed frames, true frames and predictions as the discriminators see them.

    Irregular mode reduces the observed frames to each sample's observed slots
    (observed_mask); the targets and predictions are already the kept steps.
    """
    observed = batch["observed_data"].to(res["pred_y"].device, res["pred_y"].dtype)
    if opt.irregular:
        b, T = observed.shape[:2]
        obs_step = as_step_mask(batch["observed_mask"].to(observed.device), b, T)
        observed = select_steps(observed, obs_step, count_kept(obs_step))
    return observed, res["target"], res["pred_y"]


def real_sequences(observed, real, extrap):
    """The sequence D's real inputs. In interpolation training the true frames are the observed
    ones, so every step's real sequence is the observed clip itself: it is scored once instead
    of K times (the mean over K identical copies is the same; K times less D work)."""
    if not extrap and real.shape == observed.shape and torch.equal(real, observed):
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


def discriminator_step(netD_img, netD_seq, optimizer_D, batch, res, opt, scaler=None):
    """The D step (both discriminators, one Adamax), then the generator's adversarial terms
    against the updated discriminators. Returns the loss tensors."""
    device = res["pred_y"].device
    with record_function("D_inputs"):
        observed, real, fake = discriminator_inputs(batch, res, opt)
        # contiguous inputs: the discriminators' float rounding then matches the reference's
        seq_real = real_sequences(observed, real, opt.extrap).contiguous()
        seq_fake = make_sequences(observed, fake, opt.extrap).contiguous()
        img_real, img_fake = flatten_frames(real).contiguous(), flatten_frames(fake).contiguous()

    # One discriminator after the other, each backward right after its forward: the two have
    # no parameter in common, so the gradients are those of loss_D.backward(), bit for bit, and
    # only one discriminator's graph is alive at a time (less peak memory).
    optimizer_D.zero_grad(set_to_none=True)
    with record_function("D_losses"), autocast(opt, device):
        d_seq = lsgan_d_loss(netD_seq, seq_real, seq_fake)
    with record_function("D_backward_step"):
        _backward(opt.lamb_adv * d_seq, scaler)
    with record_function("D_losses"), autocast(opt, device):
        d_img = lsgan_d_loss(netD_img, img_real, img_fake)
    with record_function("D_backward_step"):
        _backward(opt.lamb_adv * d_img, scaler)
        _step(optimizer_D, scaler)
    loss_D = opt.lamb_adv * d_seq.detach() + opt.lamb_adv * d_img.detach()

    # generator, against the updated discriminators: no D weight gradients are needed, so the
    # bare modules are called (outside DistributedDataParallel) with their weights frozen
    with record_function("G_adv_forward"), autocast(opt, device):
        D_seq, D_img = unwrap(netD_seq), unwrap(netD_img)
        _set_requires_grad((D_seq, D_img), False)
        try:
            g_seq = lsgan_g_loss(D_seq, seq_fake)
            g_img = lsgan_g_loss(D_img, img_fake)
        finally:
            _set_requires_grad((D_seq, D_img), True)
        loss_adv_G = opt.lamb_adv * g_seq + opt.lamb_adv * g_img
    return {"loss_D": loss_D, "loss_D_seq": d_seq, "loss_D_img": d_img,
            "loss_adv_G": loss_adv_G, "loss_G_seq": g_seq, "loss_G_img": g_img}


def train_step(model, netD_img, netD_seq, optimizer_G, optimizer_D, batch, opt, scaler=None):
    """D step, then the generator's adversarial loss against the updated D, then the G step.
    With --lamb_adv 0 the discriminators are skipped (their losses are reported as 0).

    The networks may be wrapped in DistributedDataParallel. Returns a dict of detached loss
    tensors, the prediction and its target. Phases are labelled for torch.profiler.
    --amp: the forward passes run under autocast (models.performance), the backward passes
    outside it; scaler: a GradScaler (--amp fp16), updated once per iteration.
    """
    with record_function("G_forward"), autocast(opt, unwrap(model).device):
        res = model(batch)
        loss_G_recon = res["loss"]
    if opt.lamb_adv > 0:
        adv = discriminator_step(netD_img, netD_seq, optimizer_D, batch, res, opt, scaler)
    else:
        zero = loss_G_recon.new_zeros(())
        adv = dict.fromkeys(("loss_D", "loss_D_seq", "loss_D_img", "loss_adv_G", "loss_G_seq",
                             "loss_G_img"), zero)
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
