"""Convolutional frame encoder E, shared by every frame."""
import torch.nn as nn

from models.recompute import batch_norm_recompute, can_recompute, run_recomputed


class Encoder(nn.Module):
    """conv3x3 -> BN -> ReLU, then n_downs x [conv4x4 stride 2 -> BN -> ReLU].

    (n, input_dim, H, W) -> (n, ch * 2**n_downs, H / 2**n_downs, W / 2**n_downs)
    State-dict keys match the reference: model.0 (conv), model.1 (BN), model.3, model.4, ...
    """

    def __init__(self, input_dim=3, ch=32, n_downs=2):
        super().__init__()
        layers = [nn.Conv2d(input_dim, ch, 3, 1, 1), nn.BatchNorm2d(ch), nn.ReLU()]
        for _ in range(n_downs):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.BatchNorm2d(ch * 2), nn.ReLU()]
            ch *= 2
        self.model = nn.Sequential(*layers)
        self.out_dim = ch

    recompute = True  # CPU float32 training: BN + ReLU outputs recomputed in the backward pass

    def forward(self, x):
        if self.recompute and can_recompute(self.model, x):
            # the same numbers; the ReLU outputs feeding the strided convs are not kept
            # (the first conv, from the few image channels, is recomputed too)
            return run_recomputed(self.model, x, batch_norm_recompute, cheap=lambda conv: conv.in_channels <= 4)
        return self.model(x)
