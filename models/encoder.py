"""Convolutional frame encoder E, shared by every frame."""
import torch
import torch.nn as nn

from models.recompute import can_recompute, run_recomputed


class Encoder(nn.Module):
    """conv3x3 -> BN -> ReLU, then n_downs x [conv4x4 stride 2 -> BN -> ReLU].

    (n, input_dim, H, W) -> (n, ch * 2**n_downs, H / 2**n_downs, W / 2**n_downs)
    State-dict keys match the reference: model.0 (conv), model.1 (BN), model.3, model.4, ...
    recompute (a memory saver, off unless models.performance.apply_performance sets it): the
    BatchNorm and ReLU outputs, and the first convolution's from the few image channels, are
    computed again in the backward pass instead of kept (models/recompute.py; the same numbers).
    """

    def __init__(self, input_dim: int = 3, ch: int = 32, n_downs: int = 2):
        super().__init__()
        layers = [nn.Conv2d(input_dim, ch, 3, 1, 1), nn.BatchNorm2d(ch), nn.ReLU()]
        for _ in range(n_downs):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.BatchNorm2d(ch * 2), nn.ReLU()]
            ch *= 2
        self.model = nn.Sequential(*layers)
        self.out_dim = ch
        self.recompute = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, input_dim, H, W) -> features (n, out_dim, H / 2**n_downs, W / 2**n_downs)."""
        if self.recompute and can_recompute(self.model, x):
            return run_recomputed(self.model, x, cheap=lambda conv: conv.in_channels <= 4)
        return self.model(x)
