"""ODE-ConvGRU encoder: walks the observed frames in time and gives the initial latent z0."""
import torch
import torch.nn as nn

from models.ode import EulerStep, ODEFunc


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell with a masked update (masked-out frames keep the hidden state)."""

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        pad = kernel_size // 2
        self.hidden_dim = hidden_dim
        self.conv_gates = nn.Conv2d(input_dim + hidden_dim, 2 * hidden_dim, kernel_size, 1, pad, bias=bias)
        self.conv_can = nn.Conv2d(input_dim + hidden_dim, hidden_dim, kernel_size, 1, pad, bias=bias)

    def forward(self, x: torch.Tensor, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (b, c_in, h, w), h (b, c_h, h, w), mask (b, 1) -> new hidden (b, c_h, h, w)."""
        gates = self.conv_gates(torch.cat([x, h], dim=1))
        reset, update = torch.sigmoid(gates).split(self.hidden_dim, dim=1)
        cand = torch.tanh(self.conv_can(torch.cat([x, reset * h], dim=1)))
        # h_i = (1 - u) * h_i^- + u * candidate; h here is h_i^-, x is E(X_{t_i})
        h_new = (1 - update) * h + update * cand
        m = mask.reshape(-1, 1, 1, 1)
        return m * h_new + (1 - m) * h


class EncoderZ0ODEConvGRU(nn.Module):
    """The reference's Encoder_z0_ODE_ConvGRU (keys z0_diffeq_solver.ode_func.gradient_net.*,
    cell_list.0.*, transform_z0.*): between frames the state follows the encoder ODE for one
    explicit Euler step (z0_diffeq_solver), at each frame the ConvGRU cell folds its features in."""

    def __init__(self, hidden_dim: int, ode_func: ODEFunc, run_backwards: bool = True):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.z0_diffeq_solver = EulerStep(ode_func)
        self.cell_list = nn.ModuleList([ConvGRUCell(hidden_dim, hidden_dim)])
        self.transform_z0 = nn.Sequential(
            nn.Conv2d(hidden_dim, hidden_dim, 1, 1, 0), nn.ReLU(), nn.Conv2d(hidden_dim, hidden_dim * 2, 1, 1, 0))
        self.run_backwards = run_backwards

    def forward(self, feats: torch.Tensor, time_steps: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (b, T, c, h, w), time_steps (T,), mask (b, T, 1) -> (z0 mean, z0 std), each (b, c, h, w)."""
        if feats.size(1) != time_steps.numel():
            raise ValueError(f"the encoder got {feats.size(1)} frames but {time_steps.numel()} time stamps")
        y = self.walk(feats, time_steps, mask)
        # z_{t_0} = the first half of transform_z0(h); the std half is never used
        mean, std = torch.split(self.transform_z0(y), self.hidden_dim, dim=1)
        return mean, std.abs()

    def walk(self, feats: torch.Tensor, tp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """feats (b, T, c, h, w), tp (T,), mask (b, T, 1) -> the last hidden state (b, c, h, w)."""
        euler_step, cell = self.z0_diffeq_solver, self.cell_list[0]
        T = feats.size(1)
        y = feats.new_zeros(feats.shape[:1] + feats.shape[2:])  # (b, c, h, w)
        order = range(T - 1, -1, -1) if self.run_backwards else range(T)
        t_prev = tp[-1] + 0.01 if self.run_backwards else tp[0] - 0.01
        for i in order:
            # h_i^- = ODESolve(f_theta, h_{i-1}, (t_{i-1}, t_i)): one explicit Euler step
            y_ode = euler_step(y, t_prev, tp[i])
            # h_i = ConvGRU(h_i^-, E(X_{t_i})) (an unobserved slot keeps h_i^-)
            y = cell(feats[:, i], y_ode, mask[:, i])
            t_prev = tp[i]
        return y
