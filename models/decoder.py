"""Convolutional decoder D_conv (latent pair -> flow, image, mask) and flow warping."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class StepBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over inputs that stack `n_steps` decoder calls step-major: (n_steps * b, C, H, W).

    In training mode each step is normalised with its own batch statistics and the running
    statistics are updated once per step, in step order: exactly as n_steps separate calls of
    nn.BatchNorm2d (the reference's per-step loop), in one batched kernel.
    Same state-dict keys as nn.BatchNorm2d.
    """

    def forward(self, x, n_steps=1):
        if n_steps == 1 or not self.training:
            return super().forward(x)
        kb, c, h, w = x.shape
        b = kb // n_steps
        # (K*b, C, H, W) -> (b, K*C, H, W): one channel group per step
        xs = x.reshape(n_steps, b, c, h, w).transpose(0, 1).reshape(b, n_steps * c, h, w)
        y = F.batch_norm(xs, None, None, self.weight.repeat(n_steps), self.bias.repeat(n_steps),
                         training=True, momentum=0.0, eps=self.eps)
        if self.track_running_stats:
            self._update_running_stats(xs.detach(), n_steps, c)
        return y.reshape(b, n_steps, c, h, w).transpose(0, 1).reshape(kb, c, h, w)

    @torch.no_grad()
    def _update_running_stats(self, xs, n_steps, c):
        n = xs.numel() // xs.size(1)  # elements per channel and step
        mean = xs.mean(dim=(0, 2, 3)).view(n_steps, c)
        var = xs.var(dim=(0, 2, 3), unbiased=True).view(n_steps, c) if n > 1 else torch.zeros_like(mean)
        m = self.momentum
        for k in range(n_steps):
            self.running_mean.mul_(1 - m).add_(mean[k], alpha=m)
            self.running_var.mul_(1 - m).add_(var[k], alpha=m)
        self.num_batches_tracked.add_(n_steps)


class Decoder(nn.Module):
    """n_ups x [bilinear x2, conv3x3(ch -> ch/2), BN, ReLU], conv3x3(ch -> output_dim).

    Keys match the reference: model.1 (conv), model.2 (BN), model.5, model.6, ..., model.<last>.
    forward(x, n_steps): x stacks n_steps calls step-major; BatchNorm keeps per-step statistics.
    """

    def __init__(self, input_dim=256, output_dim=6, n_ups=2):
        super().__init__()
        ch = input_dim
        layers = []
        for _ in range(n_ups):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(ch, ch // 2, 3, 1, 1), StepBatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers.append(nn.Conv2d(ch, output_dim, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x, n_steps=1):
        for layer in self.model:
            x = layer(x, n_steps) if isinstance(layer, StepBatchNorm2d) else layer(x)
        return x


def identity_grid(b, h, w, device, dtype=torch.float32):
    """The reference's sampling grid (align_corners=True convention): (b, h, w, 2) with (x, y)."""
    xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype).view(1, 1, w, 1).expand(b, h, w, 1)
    ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype).view(1, h, 1, 1).expand(b, h, w, 1)
    return torch.cat([xs, ys], dim=3)


def warp_chain(flows, start, grid=None):
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
        frame = F.grid_sample(frame, grids[:, k], mode="bilinear", padding_mode="border", align_corners=True)
        out.append(frame)
    return torch.stack(out, dim=1)
