"""The Vid-ODE generator: encoder, ODE-ConvGRU, ODE decoder, conv decoder, warping."""
from typing import Any

import torch
import torch.nn as nn

from models.convgru import EncoderZ0ODEConvGRU
from models.decoder import Decoder, warp_chain
from models.encoder import Encoder
from models.ode import DiffeqSolver, ODEFunc, create_convnet


def as_step_mask(mask: torch.Tensor, b: int, T: int) -> torch.Tensor:
    """A predicted/observed-step mask as bool (b, T): accepts float or bool, (b, T) or (b, T, 1)."""
    m = mask.reshape(b, -1)
    if m.size(1) != T:
        raise ValueError(f"mask has {m.size(1)} steps, expected {T}")
    return m if m.dtype == torch.bool else m > 0.5


def select_steps(x: torch.Tensor, step_mask: torch.Tensor, n_kept: int) -> torch.Tensor:
    """Each sample's kept steps in time order: x (b, T, ...), step_mask bool (b, T) -> (b, K, ...);
    every sample keeps the same number K = `n_kept` of steps (known on the host)."""
    return x[step_mask].reshape(x.size(0), n_kept, *x.shape[2:])


def count_kept(step_mask: torch.Tensor) -> int:
    """K, the kept steps per sample (one host read per forward, never inside a loop)."""
    counts = step_mask.sum(dim=1)
    k = int(counts[0])
    if step_mask.size(0) > 1 and not bool((counts == k).all()):
        raise ValueError(f"every sample must keep the same number of steps, got {counts.tolist()}")
    return k


class VidODE(nn.Module):
    """Generator. State-dict keys are the reference's (see tests/golden/state_dict_keys_default.txt).

    encoder: frames -> features; encoder_z0: the ODE-ConvGRU over the observed features -> z0;
    diffeq_solver: the decoder ODE from z0 through the times to predict; decoder: each step's
    latent and the previous one -> optical flow, image and mask; then warping and blending.
    """

    def __init__(self, opt: Any, device: torch.device | str | None = None):
        super().__init__()
        self.opt = opt
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        input_dim = getattr(opt, "input_dim", 3)
        base = opt.init_dim * 2 ** opt.n_downs
        self.base_dim = base

        self.encoder = Encoder(input_dim, opt.init_dim, opt.n_downs)
        # f_theta: the encoder ODE's function; f_phi below: the decoder ODE's (same layout, own weights)
        enc_func = ODEFunc(create_convnet(base, base, opt.n_layers, base // 2))
        self.encoder_z0 = EncoderZ0ODEConvGRU(base, enc_func, run_backwards=getattr(opt, "run_backwards", True))
        # f_phi: the decoder ODE's function
        dec_func = ODEFunc(create_convnet(base, base, opt.n_layers, base // 2))
        self.diffeq_solver = DiffeqSolver(dec_func, method=opt.dec_diff, rtol=1e-3, atol=1e-4)
        self.decoder = Decoder(base * 2, input_dim + 3, opt.n_downs)
        self.to(self.device)

    def get_reconstruction(self, time_steps_to_predict: torch.Tensor, truth: torch.Tensor,
                           truth_time_steps: torch.Tensor, mask: torch.Tensor | None = None,
                           out_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Frames at `time_steps_to_predict` (T',) from observed frames truth (b, T, C, H, W)
        (unobserved ones zeroed) at truth_time_steps (T,), mask (b, T, 1); out_mask (b, T'[, 1]):
        the steps to output. -> pred_x (b, K, C, H, W) and a dict of intermediate tensors."""
        dev = self.device
        if truth.dim() != 5:
            raise ValueError(f"observed frames must be (b, T, C, H, W), got shape {tuple(truth.shape)}")
        r = 2 ** self.opt.n_downs
        if truth.shape[-1] % r or truth.shape[-2] % r:
            raise ValueError(f"frame size {tuple(truth.shape[-2:])} must be divisible by 2**n_downs = {r}")
        truth = truth.to(dev)
        tp_obs, tp_pred = (t.to(dev, truth.dtype) for t in (truth_time_steps, time_steps_to_predict))
        b, T, c, h, w = truth.shape
        mask = torch.ones(b, T, 1, device=dev, dtype=truth.dtype) if mask is None else mask.to(dev, truth.dtype)
        out_step = (torch.ones(b, tp_pred.numel(), dtype=torch.bool, device=dev) if out_mask is None
                    else as_step_mask(out_mask.to(dev), b, tp_pred.numel()))
        K = count_kept(out_step)

        # base frame: first observed (interpolation) or last observed (extrapolation)
        base_frame = truth[:, -1] if self.opt.extrap else truth[:, 0]
        skip = self.encoder(base_frame)  # (b, base, h/r, w/r); BN sees the b base frames first
        # E(X_{t_i}): the encoder's features of every observed frame
        feats = self.encoder(truth.reshape(b * T, c, h, w)).reshape(b, T, -1, h // r, w // r)

        self.encoder_z0.z0_diffeq_solver.ode_func.nfe = 0
        z0, z0_std = self.encoder_z0(feats, tp_obs, mask)
        self.diffeq_solver.ode_func.nfe = 0
        # under --amp the ODE state stays in the frames' precision (the solver's step control)
        # z_{t_1}, ..., z_{t_T} = ODESolve(f_phi, z_{t_0}, (t_1, ..., t_T)), started at t_1: z_{t_1} = z_{t_0}
        sol_y = self.diffeq_solver(z0.to(truth.dtype), tp_pred)  # (b, T', base, h/r, w/r)

        z = select_steps(sol_y, out_step, K)  # (b, K, base, h/r, w/r)
        prev = torch.cat([skip.unsqueeze(1), z[:, :-1]], dim=1)  # each step's previous latent
        dec_in = torch.cat([z, prev], dim=2).transpose(0, 1).reshape(K * b, 2 * self.base_dim, h // r, w // r)
        # G(z_{t_i}, z_{t_{i-1}}) -> F(t_i), X_hat(t_i), M(t_i), all K steps in one call
        out = self.decoder(dec_in, n_steps=K).to(truth.dtype)  # (K*b, C+3, H, W), step-major
        out = out.reshape(K, b, -1, h, w).transpose(0, 1)  # (b, K, C+3, H, W)
        # F(t_i) = flows, X_hat(t_i) = inter, M(t_i) = masks (sigmoid of the mask logit)
        flows, inter, masks = out[:, :, :2], out[:, :, 2:2 + c], torch.sigmoid(out[:, :, 2 + c:])

        # W(F(t_i), .): each step warps the previous step's warped frame, the first the base frame
        warped = warp_chain(flows, base_frame)
        # Y_hat_{t_i} = M(t_i) * W(F(t_i), .) + (1 - M(t_i)) * X_hat(t_i)
        pred_x = masks * warped + (1 - masks) * inter
        extra = {"optical_flow": flows, "warped_pred_x": warped, "pred_intermediates": inter,
                 "pred_masks": masks, "z0": z0, "z0_std": z0_std, "sol_y": sol_y,
                 "base_frame": base_frame, "out_step_mask": out_step, "n_kept": K}
        return pred_x, extra

    def compute_all_losses(self, batch_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Generator loss (L1 reconstruction + L1 on frame differences) and the prediction: loss,
        loss_recon, loss_diff, pred_y (b, K, C, H, W), target (b, K, ...) and the extra tensors."""
        pred_x, extra = self.get_reconstruction(
            time_steps_to_predict=batch_dict["tp_to_predict"], truth=batch_dict["observed_data"],
            truth_time_steps=batch_dict["observed_tp"], mask=batch_dict["observed_mask"],
            out_mask=batch_dict["mask_predicted_data"])
        step, K = extra["out_step_mask"], extra["n_kept"]
        data = batch_dict["data_to_predict"].to(self.device, pred_x.dtype)
        target = select_steps(data, step, K)
        # L_recon = mean |Y_hat_{t_i} - Y_{t_i}|
        loss_recon = (pred_x - target).abs().mean()
        with_base = torch.cat([extra["base_frame"].unsqueeze(1), data], dim=1)
        # dY_{t_i} = Y_{t_i} - Y_{t_{i-1}}, the base frame before the first
        diff = select_steps(with_base[:, 1:] - with_base[:, :-1], step, K)
        # L_diff = mean |X_hat(t_i) - dY_{t_i}|
        loss_diff = (extra["pred_intermediates"] - diff).abs().mean()
        return {"loss": loss_recon + loss_diff, "loss_recon": loss_recon, "loss_diff": loss_diff,
                "pred_y": pred_x, "target": target, **extra}

    forward = compute_all_losses  # the module's forward, which DistributedDataParallel calls
