"""Convolutional decoder D_conv (latent pair -> flow, image, mask) and flow warping."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.recompute import can_recompute, run_recomputed


class StepBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over inputs that stack `n_steps` decoder calls step-major: (n_steps * b, C, H, W).

    In training mode each step is normalised with its own batch statistics and the running
    statistics are updated once per step, in step order: n_steps calls of nn.BatchNorm2d on the
    steps' contiguous slices, exactly the reference's per-step loop.
    Same state-dict keys as nn.BatchNorm2d.
    """

    def forward(self, x: torch.Tensor, n_steps: int = 1) -> torch.Tensor:
        """x (n_steps * b, C, H, W) -> (n_steps * b, C, H, W)."""
        if n_steps == 1 or not self.training:
            return super().forward(x)
        # one nn.BatchNorm2d call per step, on the step's contiguous slice of the step-major
        # batch: the reference's calls exactly (statistics, running-statistics updates), no transposes
        return torch.cat([super(StepBatchNorm2d, self).forward(xk) for xk in x.split(x.size(0) // n_steps)])


class BilinearUp2(nn.Upsample):
    """nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), the same numbers.

    On the CPU, PyTorch computes a channels-first input whose output has H + W <= 128 with its
    channels-last kernel behind two slow internal layout conversions; converting here runs the
    very same kernel on the same values about twice as fast (the decoder's first upsampling).
    No parameters or buffers: the state-dict keys are nn.Upsample's.
    """

    def __init__(self):
        super().__init__(scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, c, h, w) -> (n, c, 2h, 2w), contiguous like x."""
        if (x.device.type == "cpu" and x.dim() == 4 and x.size(1) > 3 and x.is_contiguous()
                and 2 * (x.size(2) + x.size(3)) <= 128 and not x.is_contiguous(memory_format=torch.channels_last)):
            y = F.interpolate(x.contiguous(memory_format=torch.channels_last), scale_factor=2.0,
                              mode="bilinear", align_corners=False)
            return y.contiguous()
        return super().forward(x)


class Decoder(nn.Module):
    """n_ups x [bilinear x2, conv3x3(ch -> ch/2), BN, ReLU], conv3x3(ch -> output_dim).

    Keys match the reference: model.1 (conv), model.2 (BN), model.5, model.6, ..., model.<last>.
    recompute (a memory saver, off unless models.performance.apply_performance sets it): only each
    convolution's input is kept for the backward pass, the upsampled maps and the BatchNorm and
    ReLU outputs computed again there (models/recompute.py; the same numbers).
    """

    def __init__(self, input_dim: int = 256, output_dim: int = 6, n_ups: int = 2):
        super().__init__()
        ch = input_dim
        layers = []
        for _ in range(n_ups):
            layers += [BilinearUp2(),
                       nn.Conv2d(ch, ch // 2, 3, 1, 1), StepBatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers.append(nn.Conv2d(ch, output_dim, 3, 1, 1))
        self.model = nn.Sequential(*layers)
        self.recompute = False

    def forward(self, x: torch.Tensor, n_steps: int = 1) -> torch.Tensor:
        """x (n_steps * b, input_dim, h, w), n_steps decoder calls stacked step-major (BatchNorm
        keeps per-step statistics) -> (n_steps * b, output_dim, h * 2**n_ups, w * 2**n_ups)."""
        if self.recompute and can_recompute(self.model, x, (StepBatchNorm2d,)):
            return run_recomputed(self.model, x, n_steps)
        for layer in self.model:
            x = layer(x, n_steps) if isinstance(layer, StepBatchNorm2d) else layer(x)
        return x


def identity_grid(b: int, h: int, w: int, device: torch.device | str,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The reference's sampling grid (align_corners=True convention): (b, h, w, 2) with (x, y)."""
    xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype).view(1, 1, w, 1).expand(b, h, w, 1)
    ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype).view(1, h, 1, 1).expand(b, h, w, 1)
    return torch.cat([xs, ys], dim=3)


def warp_chain(flows: torch.Tensor, start: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
    """Warp `start` recursively by each step's flow.

    flows (b, K, 2, H, W) in pixels, start (b, C, H, W) -> warped (b, K, C, H, W).
    Step k resamples the result of step k-1 (bilinear, border padding, align_corners=True).
    """
    b, K, _, h, w = flows.shape
    if grid is None:
        grid = identity_grid(b, h, w, flows.device, flows.dtype)
    scale = flows.new_tensor([(w - 1.0) / 2.0, (h - 1.0) / 2.0]).view(1, 1, 2, 1, 1)
    grids = grid.unsqueeze(1) + (flows / scale).permute(0, 1, 3, 4, 2)  # (b, K, H, W, 2)
    out, frame = [], start
    for k in range(K):
        # W(F(t_i), .) for step k: resample the previous warped frame along the flow
        frame = F.grid_sample(frame, grids[:, k], mode="bilinear", padding_mode="border", align_corners=True)
        out.append(frame)
    return torch.stack(out, dim=1)
