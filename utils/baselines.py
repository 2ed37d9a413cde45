"""The trivial baselines every evaluation reports beside the model: copy the last observed frame
(extrapolation) or blend the observed frames on either side in time (interpolation)."""
import torch


def baseline_kind(extrap: bool) -> str:
    """The baseline's name as written in results.json (the `baseline_kind` field)."""
    return "copy last observed frame" if extrap else "linear blend of neighbouring observed frames"


def _neighbours(observed, observed_tp, observed_mask, times):
    """(i0, i1) (b, T): the nearest observed frame at or before / after each time (else the other
    side's), the observed times (n,) and the times (b, T), in observed's dtype."""
    (b, n), device = observed.shape[:2], observed.device
    to, tp = observed_tp.to(device, observed.dtype), times.to(device, observed.dtype)
    tp = tp[None, :].expand(b, -1) if tp.dim() == 1 else tp  # (b, T)
    valid = (observed_mask.reshape(b, n) > 0.5)[:, None, :]  # (b, 1, n)
    eps = 1e-6
    ar = torch.arange(n, device=device)
    i0 = torch.where(valid & (to <= tp[..., None] + eps), ar, -1).amax(-1)  # (b, T)
    i1 = torch.where(valid & (to >= tp[..., None] - eps), ar, n).amin(-1)
    i0 = torch.where(i0 < 0, i1, i0).clamp(0, n - 1)
    i1 = torch.where(i1 >= n, i0, i1).clamp(0, n - 1)
    return i0, i1, to, tp


def blend_neighbours(observed: torch.Tensor, observed_tp: torch.Tensor, observed_mask: torch.Tensor,
                     times: torch.Tensor) -> torch.Tensor:
    """Linear blend in time of the observed frames before and after each time (one side: a copy):
    observed (b, n, c, h, w), _tp (n,), _mask (b, n, 1), times (T,) | (b, T) -> (b, T, c, h, w)."""
    i0, i1, to, tp = _neighbours(observed, observed_tp, observed_mask, times)
    t0, t1 = to[i0], to[i1]
    w = torch.where(t1 > t0, (tp - t0) / (t1 - t0).clamp_min(1e-6), torch.zeros_like(t0))
    bi = torch.arange(observed.size(0), device=observed.device)[:, None]
    w = w[..., None, None, None]
    return (1 - w) * observed[bi, i0] + w * observed[bi, i1]


def previous_observed(observed: torch.Tensor, observed_tp: torch.Tensor, observed_mask: torch.Tensor,
                      times: torch.Tensor) -> torch.Tensor:
    """Copy-last: the nearest observed frame at or before each time; shapes as blend_neighbours."""
    i0 = _neighbours(observed, observed_tp, observed_mask, times)[0]
    return observed[torch.arange(observed.size(0), device=observed.device)[:, None], i0]


def baseline(observed: torch.Tensor, observed_tp: torch.Tensor, observed_mask: torch.Tensor,
             times: torch.Tensor, extrap: bool) -> torch.Tensor:
    """The baseline of a run (baseline_kind) at `times`; shapes as blend_neighbours."""
    return (previous_observed if extrap else blend_neighbours)(observed, observed_tp, observed_mask, times)
