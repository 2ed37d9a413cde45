"""Synchronised per-step BatchNorm for --sync_bn under torchrun (any backend, CPU or GPU)."""
import torch
import torch.nn as nn

from models.decoder import StepBatchNorm2d

class _AllReduceSum(torch.autograd.Function):
    """Sum over processes, differentiable: the backward sums the gradients over processes too
    (each process's loss depends on every process's statistics)."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        x = x.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(grad, group=ctx.group)
        return grad, None


class SyncStepBatchNorm2d(StepBatchNorm2d):
    """StepBatchNorm2d with each step's statistics over every process's samples (--sync_bn): the
    per-step sums, then the squared deviations from the global mean, go through two differentiable
    all-reduces (gloo or NCCL), so N processes of b clips normalise, gradients included, as one of
    N*b; the running statistics follow step by step, alike on every process. n_steps=1: a synced
    nn.BatchNorm2d; evaluation mode or one process: StepBatchNorm2d. nn.BatchNorm2d's keys."""

    def __init__(self, *args, process_group: "torch.distributed.ProcessGroup | None" = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def forward(self, x: torch.Tensor, n_steps: int = 1) -> torch.Tensor:
        """x (n_steps * b, C, H, W) step-major -> (n_steps * b, C, H, W)."""
        dist = torch.distributed
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1):
            return super().forward(x, n_steps)
        kb, c, h, w = x.shape
        b = kb // n_steps
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        xs = xf.reshape(n_steps, b, c, h, w)
        dims = (1, 3, 4)
        count = xs.new_full((1,), float(b * h * w))  # elements per step and channel, here
        total = _AllReduceSum.apply(torch.cat([xs.sum(dim=dims).flatten(), count]), self.process_group)
        n = total[-1]
        mean = (total[:-1] / n).view(n_steps, 1, c, 1, 1)
        centred = xs - mean
        sq = _AllReduceSum.apply(centred.pow(2).sum(dim=dims), self.process_group)  # (K, C)
        var = sq / n  # biased, as batch normalisation uses
        y = centred * torch.rsqrt(var + self.eps).view(n_steps, 1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, 1, c, 1, 1) + self.bias.view(1, 1, c, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                unbiased = var * (n / (n - 1).clamp_min(1))  # n = 1: var is 0 already
                m = self.momentum
                for k in range(n_steps):
                    self.running_mean.mul_(1 - m).add_(mean[k].flatten().to(self.running_mean.dtype), alpha=m)
                    self.running_var.mul_(1 - m).add_(unbiased[k].to(self.running_var.dtype), alpha=m)
                self.num_batches_tracked.add_(n_steps)
        return y.reshape(kb, c, h, w).to(x.dtype)


def convert_sync_batchnorm(module: nn.Module,
                           process_group: "torch.distributed.ProcessGroup | None" = None) -> nn.Module:
    """`module` with every BatchNorm2d (the encoder's nn.BatchNorm2d, the decoder's StepBatchNorm2d)
    replaced by a SyncStepBatchNorm2d holding the same parameter and buffer objects; unlike torch's
    convert_sync_batchnorm it keeps the per-step statistics and also runs on the CPU (gloo)."""
    out = module
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, SyncStepBatchNorm2d):
        out = SyncStepBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                  module.track_running_stats, process_group=process_group)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_sync_batchnorm(child, process_group))
    return out
