"""Memory savers for float32 training that leave every number unchanged.

`run_recomputed` runs a chain of Conv2d / BatchNorm2d / ReLU / x2 bilinear Upsample layers as
segments conv(up(pre(x))) (PreConv) that keep only their input x for the backward pass: the
cheap ops `pre` (BatchNorm, ReLU, optionally a cheap first convolution) and the upsampling are
run again during the backward pass instead of keeping their outputs, among them the
convolution's input that the weight gradient needs (in the decoder at the default options:
168 and 335 MB upsampled maps, 84 and 168 MB ReLU outputs). The backward pass runs the same
kernels on the same values as autograd does on the plain modules: aten.convolution_backward
for the convolution, the upsampling's aten backward, autograd itself for `pre`; BatchNorm's
running statistics are updated once, in the forward call (batch_norm_again recomputes).

The convolutions also run on a few samples at a time (sample_chunks: the forward and the input
gradient, where each sample's result is computed alone), and the biggest weight gradients by
groups of input channels (weight_grad_groups), so that no whole-batch upsampled map, its
gradient or oneDNN's blocked copies of them exist at once.

Encoder.forward and Decoder.forward call run_recomputed when their `recompute` attribute is set
(models.performance.apply_performance sets it) and can_recompute allows it; otherwise they run
their layers plainly. On other devices than the CPU the convolutions run on the whole batch (no
chunks: the per-sample equality behind them is measured on oneDNN only).

Forward values, gradients and BatchNorm buffers are bit for bit those of the plain modules
(tests/test_speed_options.py checks it, chunked and not, where the tests run).
"""
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def is_bilinear_up2(m: nn.Module) -> bool:
    """Whether `m` is an nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)."""
    return (isinstance(m, nn.Upsample) and m.mode == "bilinear" and not m.align_corners and m.size is None
            and m.scale_factor in (2, 2.0, (2, 2), (2.0, 2.0)))


def bilinear_up2_backward(grad: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The input gradient autograd computes for a x2 bilinear upsampling (the same aten kernel and
    arguments). grad (n, c, 2h, 2w), input_shape (n, c, h, w) -> (n, c, h, w)."""
    return torch.ops.aten.upsample_bilinear2d_backward(grad, list(grad.shape[2:]), list(input_shape),
                                                       False, 2.0, 2.0)


class PreConv(torch.autograd.Function):
    """y = conv2d(up(pre(x))) keeping x (not pre's outputs nor the conv's input) for the backward.

    pre(x, first): the cheap differentiable ops (None: identity), called with first=True in the
    forward pass (BatchNorm updates its running statistics) and first=False when recomputed
    (it must not). up: the x2 bilinear upsampling layer after pre (None: none), outside the
    recomputed graph (its backward is called directly, so the upsampled map is freed right after
    the convolution's backward). pre_params: the parameters pre uses (BatchNorm's), which get
    their gradients here.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, conv, pre, up, *pre_params):
        z = pre(x, True) if pre is not None else x
        conv_fn = lambda u: F.conv2d(u, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        y = None
        # a few samples at a time (each sample's output is computed alone: the same numbers),
        # so the whole batch's upsampled map and oneDNN's blocked copies never exist at once
        for i, j in sample_chunks(z.size(0), _u_bytes_per_sample(z, up is not None), z.device):
            yc = conv_fn(up(z[i:j]) if up is not None else z[i:j])
            if y is None:
                if j == z.size(0):
                    y = yc
                    break
                y = yc.new_empty((z.size(0),) + yc.shape[1:])
            y[i:j] = yc
        ctx.conv, ctx.pre, ctx.up, ctx.pre_params, ctx.z_shape = conv, pre, up, pre_params, tuple(z.shape)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        conv, up = ctx.conv, ctx.up is not None
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        need_pre = ctx.needs_input_grad[6:]
        xd = x.detach().requires_grad_(need_x)
        with torch.enable_grad():
            z = ctx.pre(xd, False) if ctx.pre is not None else xd
        conv_args = ([weight.size(0)] if ctx.has_bias else None, list(conv.stride), list(conv.padding),
                     list(conv.dilation), False, [0, 0], conv.groups)
        gw = gb = None
        u_shape = None
        if need_w or need_b:  # weight and bias gradients: over the whole batch
            zd = z.detach()
            u_shape = (zd.shape[:2] + (2 * zd.size(2), 2 * zd.size(3))) if up else zd.shape
            gws = []
            for k, (c0, c1) in enumerate(weight_grad_groups(conv, zd, up)):
                zc = zd if c1 - c0 == zd.size(1) else zd[:, c0:c1].contiguous()
                u = ctx.up(zc) if up else zc
                wc = weight if c1 - c0 == zd.size(1) else weight[:, c0:c1].contiguous()
                _, gwc, gbc = torch.ops.aten.convolution_backward(gy, u, wc, *conv_args,
                                                                  [False, need_w, need_b and k == 0])
                del u, zc
                gws.append(gwc)
                gb = gbc if k == 0 else gb
            gw = gws[0] if len(gws) == 1 else (torch.cat(gws, 1) if need_w else None)
            del gws
        gx, g_pre = None, [None] * len(need_pre)
        if need_x or any(need_pre):
            # The input gradient, a few samples at a time (each sample's is computed alone, so
            # this is bit for bit the whole batch's): no whole-batch gradient of the upsampled
            # map, nor its blocked copy inside oneDNN, is ever allocated. The conv reads only the
            # shape of its `input` argument here.
            if u_shape is None:
                u_shape = (ctx.z_shape[:2] + (2 * ctx.z_shape[2], 2 * ctx.z_shape[3])) if up else ctx.z_shape
            gz = gy.new_empty(ctx.z_shape)
            shape_only = None
            for i, j in sample_chunks(gy.size(0), int(torch.Size(u_shape[1:]).numel()) * gy.element_size(),
                                      gy.device):
                if shape_only is None or shape_only.size(0) != j - i:
                    shape_only = gy.new_empty((j - i,) + tuple(u_shape[1:]))
                gu = torch.ops.aten.convolution_backward(gy[i:j], shape_only, weight, *conv_args,
                                                         [True, False, False])[0]
                gz[i:j] = bilinear_up2_backward(gu, (j - i,) + ctx.z_shape[1:]) if up else gu
                del gu
            if ctx.pre is None:
                gx = gz
            else:
                wanted = ([xd] if need_x else []) + [p for p, n in zip(ctx.pre_params, need_pre) if n]
                grads = list(torch.autograd.grad(z, wanted, gz))
                gx = grads.pop(0) if need_x else None
                g_pre = [grads.pop(0) if n else None for n in need_pre]
        return (gx, gw, gb, None, None, None, *g_pre)


CHUNK_BYTES = 32 * 2 ** 20  # PreConv's sample chunks: about this many bytes of conv input
WEIGHT_GRAD_BYTES = 96 * 2 ** 20  # conv inputs above this: weight gradient by input-channel groups


def weight_grad_groups(conv: nn.Conv2d, z: torch.Tensor, up: bool) -> list[tuple[int, int]]:
    """Input-channel ranges for the weight gradient: one range, except for the decoder's big
    stride-1 convolutions (>= 32 output channels, an input of more than WEIGHT_GRAD_BYTES: at
    the default options the two at 64x64 and 128x128, 168 and 335 MB) computed in groups of
    input channels (multiples of 8), so their input and oneDNN's blocked copy of it exist a
    group at a time. Each weight's gradient sums the same products over the batch and the
    pixels either way; oneDNN's AVX2 kernels sum them in the same order (bit for bit at 1-4
    threads, measured: test_speed_options checks it where it runs). Not done where oneDNN
    splits the batch over threads differently (few output channels, strided convs)."""
    c = z.size(1)
    n_bytes = z.numel() * z.element_size() * (4 if up else 1)
    if (z.device.type != "cpu" or n_bytes <= WEIGHT_GRAD_BYTES or tuple(conv.stride) != (1, 1) or conv.groups != 1
            or conv.out_channels < 32 or c < 16):
        return [(0, c)]
    n = -(-n_bytes // WEIGHT_GRAD_BYTES)
    step = min(c, -(-(-(-c // n)) // 8) * 8)
    return [(c0, min(c, c0 + step)) for c0 in range(0, c, step)]


def _u_bytes_per_sample(z: torch.Tensor, up: bool) -> int:
    return z[0].numel() * z.element_size() * (4 if up else 1)


def sample_chunks(n: int, bytes_per_sample: int, device: torch.device) -> list[tuple[int, int]]:
    """(start, stop) ranges over n samples of about CHUNK_BYTES each, never of a single sample
    when n > 1: PyTorch runs a lone small sample's 3x3 conv with another algorithm (other
    rounding), while every multi-sample chunk gives each sample exactly its whole-batch result.
    One range on other devices than the CPU."""
    step = max(2, CHUNK_BYTES // max(1, bytes_per_sample))
    if step >= n or device.type != "cpu":
        return [(0, n)]
    bounds = list(range(0, n, step)) + [n]
    if bounds[-1] - bounds[-2] == 1:  # no lone last sample
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:]))


MIN_BYTES = 2 ** 20  # recompute only for inputs of at least this size (small ones: no gain)


def worth_recomputing(x: torch.Tensor) -> bool:
    """Training on a tensor big enough for the memory to matter (at the golden cases' size the
    recomputation would only cost time: Python overhead)."""
    return torch.is_grad_enabled() and x.numel() * x.element_size() >= MIN_BYTES


def can_recompute(layers: Sequence[nn.Module], x: torch.Tensor,
                  norm_types: tuple[type, ...] = (nn.BatchNorm2d,)) -> bool:
    """Whether run_recomputed applies: float32 training on channels-first tensors of at least
    MIN_BYTES, no autocast, no torch.compile tracing, and only the layer types it knows
    (norm_types: the BatchNorm classes, exactly, that the layers may hold; not synchronised ones)."""
    return (worth_recomputing(x) and x.dtype == torch.float32 and x.dim() == 4
            and x.is_contiguous() and not torch.is_autocast_enabled(x.device.type)
            and not torch.compiler.is_compiling()
            and all((type(m) is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str))
                    or type(m) is nn.ReLU or is_bilinear_up2(m) or type(m) in norm_types for m in layers))


def batch_norm_again(bn: nn.BatchNorm2d, x: torch.Tensor, n_steps: int = 1) -> torch.Tensor:
    """The output of bn(x) (StepBatchNorm2d: bn(x, n_steps), each step with its own statistics)
    without touching the running statistics: a recomputation for the backward pass, bit for bit
    the first call's output. x (n_steps * b, C, H, W) step-major -> (n_steps * b, C, H, W)."""
    if not bn.training:
        return bn(x)  # running statistics: nothing is updated
    steps = x.split(x.size(0) // n_steps) if n_steps > 1 else (x,)
    out = [F.batch_norm(xk, None, None, bn.weight, bn.bias, True, 0.0, bn.eps) for xk in steps]
    return out[0] if len(out) == 1 else torch.cat(out)


def _batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor, n_steps: int, first: bool) -> torch.Tensor:
    if not first:
        return batch_norm_again(bn, x, n_steps)
    return bn(x) if n_steps == 1 else bn(x, n_steps)


def run_recomputed(layers: Sequence[nn.Module], x: torch.Tensor, n_steps: int = 1,
                   cheap: Callable[[nn.Conv2d], bool] | None = None) -> torch.Tensor:
    """Run `layers` (Conv2d, BatchNorm2d or StepBatchNorm2d, ReLU, x2 bilinear Upsample) as
    PreConv segments: the layers' output for x, keeping only each convolution's input.

    n_steps: the StepBatchNorm2d layers' number of stacked steps. cheap(conv): a convolution to
    recompute as well, inside the next segment's pre (the encoder's first, 3 -> 32 channels: its
    100 MB output is then not kept either). Layers after the last convolution run plainly (their
    outputs are the result).
    """
    pending = []
    for layer in layers:
        if not isinstance(layer, nn.Conv2d) or (cheap is not None and cheap(layer) and not pending):
            pending.append(layer)
            continue
        up = pending[-1] if pending and is_bilinear_up2(pending[-1]) else None
        chain = pending[:-1] if up is not None else pending
        if any(is_bilinear_up2(m) for m in chain):
            raise ValueError("an upsampling must come right before a convolution")
        pre = _chain(chain, n_steps) if chain else None
        params = [p for m in chain for p in m.parameters()]
        x = PreConv.apply(x, layer.weight, layer.bias, layer, pre, up, *params)
        pending = []
    if pending:
        x = _chain(pending, n_steps)(x, True)
    return x


def _chain(chain: list[nn.Module], n_steps: int) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    def run(x, first):
        for i, m in enumerate(chain):
            if isinstance(m, nn.BatchNorm2d):
                x = _batch_norm(m, x, n_steps, first)
            elif isinstance(m, nn.ReLU):
                # in place on a BatchNorm output (its backward keeps the input only): no copy
                x = F.relu(x, inplace=i > 0 and isinstance(chain[i - 1], nn.BatchNorm2d))
            else:
                x = m(x)
        return x
    return run
