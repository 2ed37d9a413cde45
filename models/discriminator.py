"""Patch discriminators (image and sequence) and their least-squares GAN losses."""
from typing import Any

import torch
import torch.nn as nn


class ConvBlock(nn.Module):
    """conv -> InstanceNorm (no affine) -> LeakyReLU(0.2). Key: main.0.{weight,bias}."""

    def __init__(self, c_in: int, c_out: int, k: int, s: int, p: int):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(c_in, c_out, k, s, p), nn.InstanceNorm2d(c_out),
                                  nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c_in, h, w) -> (n, c_out, h', w')."""
        return self.main(x)


class Discriminator(nn.Module):
    """PatchGAN discriminator: (n, in_channels, H, W) -> (n, 64, H', W') patch scores."""

    def __init__(self, in_channels: int, ndf: int = 64):
        super().__init__()
        self.in_channels = in_channels
        self.layer_1 = nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 1, bias=False),
                                     nn.LeakyReLU(0.2, inplace=True))
        self.layer_2 = ConvBlock(ndf, ndf * 2, 4, 2, 1)
        self.layer_3 = ConvBlock(ndf * 2, ndf * 4, 4, 2, 1)
        self.layer_4 = ConvBlock(ndf * 4, ndf * 8, 4, 1, 2)
        self.last_conv = nn.Conv2d(ndf * 8, 64, 4, 1, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, in_channels, H, W) -> (n, 64, H', W')."""
        return self.last_conv(self.layer_4(self.layer_3(self.layer_2(self.layer_1(x)))))


def seq_length(opt: Any) -> int:
    """Frames in one sequence-D input: S/2 (regular interp), S (irregular interp), S/2 + 1 (extrap)."""
    if opt.extrap:
        return opt.sample_size // 2 + 1
    return opt.sample_size if opt.irregular else opt.sample_size // 2


def create_netD(opt: Any, device: torch.device | str | None = None
                ) -> tuple[Discriminator, Discriminator, torch.optim.Adamax]:
    """The image D, the sequence D and one Adamax over both (reference: create_netD)."""
    c = getattr(opt, "input_dim", 3)
    netD_img, netD_seq = Discriminator(c).to(device), Discriminator(c * seq_length(opt)).to(device)
    optimizer = torch.optim.Adamax([*netD_img.parameters(), *netD_seq.parameters()], lr=opt.lr)
    return netD_img, netD_seq, optimizer


def make_sequences(observed: torch.Tensor, frames: torch.Tensor, extrap: bool) -> torch.Tensor:
    """Sequence-D inputs of every predicted step, step-major: observed (b, T_obs, c, h, w), frames
    (b, K, c, h, w) (predicted or true) -> (K * b, n_frames * c, h, w). Step i: extrap, observed[i:]
    then frames[:i + 1]; interp, the observed sequence with frame i replaced by frames[i]."""
    b, K = frames.shape[:2]
    seqs = []
    for i in range(K):
        if extrap:
            s = torch.cat([observed[:, i:], frames[:, :i + 1]], dim=1)
        else:
            s = torch.cat([observed[:, :i], frames[:, i:i + 1], observed[:, i + 1:]], dim=1)
        seqs.append(s.reshape(b, -1, *s.shape[3:]))  # (b, n*c, h, w)
    return torch.cat(seqs, dim=0)


def flatten_frames(x: torch.Tensor) -> torch.Tensor:
    """(b, K, c, h, w) -> (b * K, c, h, w), sample-major."""
    return x.reshape(-1, *x.shape[2:])


def lsgan_d_loss(netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)), fake detached. Real and fake go through D in
    one call (InstanceNorm is per sample: equal to two), as DDP needs: one forward per backward."""
    n = real.size(0)
    scores = netD(torch.cat([real, fake.detach()], dim=0)).float()  # float32 under --amp
    # L_D^img / L_D^seq = 0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)
    return 0.5 * ((scores[:n] - 1).pow(2).mean() + scores[n:].pow(2).mean())


def lsgan_g_loss(netD: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """mean((D(fake) - 1)^2); fake (n, c, h, w) -> a scalar."""
    # L_adv^img / L_adv^seq = mean (D(fake) - 1)^2
    return (netD(fake).float() - 1).pow(2).mean()
