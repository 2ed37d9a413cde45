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


def _neighbours(observed_tp, observed_mask, tp_to_predict, b, To, device, dtype):
    """Indices (b, Tp) of the nearest observed frame at or before / at or after each time, their
    times and the times to predict (b, Tp); a side without an observed frame takes the other."""
    to = observed_tp.to(device, dtype)
    tp = tp_to_predict.to(device, dtype)
    tp = tp[None, :].expand(b, -1) if tp.dim() == 1 else tp  # (b, Tp)
    valid = (observed_mask.reshape(b, To) > 0.5)[:, None, :]  # (b, 1, To)
    eps = 1e-6
    ar = torch.arange(To, device=device)
    before = valid & (to[None, None, :] <= tp[:, :, None] + eps)  # (b, Tp, To)
    after = valid & (to[None, None, :] >= tp[:, :, None] - eps)
    i0 = torch.where(before, ar, -1).amax(-1)  # (b, Tp)
    i1 = torch.where(after, ar, To).amin(-1)
    i0 = torch.where(i0 < 0, i1, i0).clamp(0, To - 1)
    i1 = torch.where(i1 >= To, i0, i1).clamp(0, To - 1)
    return i0, i1, to, tp


def blend_neighbours(observed: torch.Tensor, observed_tp: torch.Tensor, observed_mask: torch.Tensor,
                     tp_to_predict: torch.Tensor) -> torch.Tensor:
    """Linear blend in time of the nearest observed frames before and after each time to predict.

    observed (b, To, c, h, w), observed_tp (To,), observed_mask (b, To, 1), tp_to_predict (Tp,)
    or, one row per clip, (b, Tp) -> (b, Tp, c, h, w). A time with an observed frame on one side
    only copies that frame.
    """
    b, To = observed.shape[:2]
    i0, i1, to, tp = _neighbours(observed_tp, observed_mask, tp_to_predict, b, To,
                                 observed.device, observed.dtype)
    eps = 1e-6
    t0, t1 = to[i0], to[i1]
    w = torch.where(t1 > t0, (tp - t0) / (t1 - t0).clamp_min(eps), torch.zeros_like(t0))
    bi = torch.arange(b, device=observed.device)[:, None]
    f0, f1 = observed[bi, i0], observed[bi, i1]  # (b, Tp, c, h, w)
    w = w[..., None, None, None]
    return (1 - w) * f0 + w * f1


def previous_observed(observed: torch.Tensor, observed_tp: torch.Tensor, observed_mask: torch.Tensor,
                      tp_to_predict: torch.Tensor) -> torch.Tensor:
    """Copy-last at each time: the nearest observed frame at or before it (the first observed
    frame for a time before all of them). Shapes as blend_neighbours; after the last observed
    frame this is last_observed."""
    b, To = observed.shape[:2]
    i0, _, _, _ = _neighbours(observed_tp, observed_mask, tp_to_predict, b, To,
                              observed.device, observed.dtype)
    return observed[torch.arange(b, device=observed.device)[:, None], i0]
