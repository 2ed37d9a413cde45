"""The trivial baselines every evaluation reports beside the model: copy the last observed frame
(extrapolation) or blend the observed frames on either side in time (interpolation)."""
import torch


def baseline_kind(extrap: bool) -> str:
    """The baseline's name as written in results.json (the `baseline_kind` field)."""
    return "copy last observed frame" if extrap else "linear blend of neighbouring observed frames"


def last_observed(observed: torch.Tensor, observed_mask: torch.Tensor) -> torch.Tensor:
    """Each sample's last observed frame: observed (b, T, c, h, w), mask (b, T, 1) -> (b, c, h, w)."""
    b, T = observed.shape[:2]
    valid = observed_mask.reshape(b, T) > 0.5
    idx = torch.where(valid, torch.arange(T, device=observed.device), -1).amax(dim=1).clamp_min(0)
    return observed[torch.arange(b, device=observed.device), idx]


def blend_neighbours(observed: torch.Tensor, observed_tp: torch.Tensor, observed_mask: torch.Tensor,
                     tp_to_predict: torch.Tensor) -> torch.Tensor:
    """Linear blend in time of the nearest observed frames before and after each time to predict.

    observed (b, To, c, h, w), observed_tp (To,), observed_mask (b, To, 1), tp_to_predict (Tp,)
    -> (b, Tp, c, h, w). A time with an observed frame on one side only copies that frame.
    """
    b, To = observed.shape[:2]
    to = observed_tp.to(observed.device, observed.dtype)
    tp = tp_to_predict.to(observed.device, observed.dtype)
    valid = (observed_mask.reshape(b, To) > 0.5)[:, None, :]  # (b, 1, To)
    eps = 1e-6
    ar = torch.arange(To, device=observed.device)
    before = valid & (to[None, None, :] <= tp[None, :, None] + eps)  # (b, Tp, To)
    after = valid & (to[None, None, :] >= tp[None, :, None] - eps)
    i0 = torch.where(before, ar, -1).amax(-1)  # (b, Tp)
    i1 = torch.where(after, ar, To).amin(-1)
    i0 = torch.where(i0 < 0, i1, i0).clamp(0, To - 1)
    i1 = torch.where(i1 >= To, i0, i1).clamp(0, To - 1)
    t0, t1 = to[i0], to[i1]
    w = torch.where(t1 > t0, (tp[None, :] - t0) / (t1 - t0).clamp_min(eps), torch.zeros_like(t0))
    bi = torch.arange(b, device=observed.device)[:, None]
    f0, f1 = observed[bi, i0], observed[bi, i1]  # (b, Tp, c, h, w)
    w = w[..., None, None, None]
    return (1 - w) * f0 + w * f1
