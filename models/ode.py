"""ODE functions, the decoder's solver (torchdiffeq odeint) and the encoder's Euler step."""
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint
from torchdiffeq import odeint

from models.recompute import worth_recomputing

# --dec_diff names -> torchdiffeq methods. torchdiffeq removed its variable-step Adams
# solver ('adams' in the reference's days); 'implicit_adams' (Adams-Moulton on the grid of
# requested times) is the closest method it still has.
METHOD_ALIASES = {"adams": "implicit_adams"}


def solver_method(name: str) -> str:
    """The torchdiffeq method for a --dec_diff name."""
    return METHOD_ALIASES.get(name, name)


def create_convnet(n_inputs: int, n_outputs: int, n_layers: int = 2, n_units: int = 64) -> nn.Sequential:
    """conv3x3(n_inputs -> n_units), n_layers x [tanh, conv3x3], tanh, conv3x3(-> n_outputs).

    (n, n_inputs, h, w) -> (n, n_outputs, h, w)
    """
    layers = [nn.Conv2d(n_inputs, n_units, 3, 1, 1)]
    for _ in range(n_layers):
        layers += [nn.Tanh(), nn.Conv2d(n_units, n_units, 3, 1, 1)]
    layers += [nn.Tanh(), nn.Conv2d(n_units, n_outputs, 3, 1, 1)]
    return nn.Sequential(*layers)


class ODEFunc(nn.Module):
    """dz/dt = f(z): autonomous, the time argument is ignored. Key: gradient_net.*

    `nfe` counts function evaluations (a Python int: no host synchronisation).
    """

    def __init__(self, ode_func_net: nn.Module):
        super().__init__()
        self.gradient_net = ode_func_net
        self.nfe = 0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y (b, c, h, w) -> dz/dt (b, c, h, w)."""
        self.nfe += 1
        return self.gradient_net(y)


class DiffeqSolver(nn.Module):
    """Solve dz/dt = f(z) from z0 at times[0] through every entry of `times`. Key: ode_func.*

    checkpoint (a memory saver, off unless models.performance.apply_performance sets it): in
    training from a z0 of at least 1 MB, the solve's intermediate tensors (every stage of every
    step: about 300 MB at the default options) are not kept but computed again, identically, in
    the backward pass (torch.utils.checkpoint); ode_func.nfe counts the first solve only.
    """

    def __init__(self, ode_func: ODEFunc, method: str = "dopri5", rtol: float = 1e-3, atol: float = 1e-4):
        super().__init__()
        self.ode_func = ode_func
        self.method = solver_method(method)
        self.rtol, self.atol = rtol, atol
        self.checkpoint = False

    def forward(self, z0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """z0 (b, c, h, w), times (T,) increasing -> z (b, T, c, h, w), z[:, 0] = z0."""
        if (self.checkpoint and worth_recomputing(z0) and z0.requires_grad
                and not torch.compiler.is_compiling()):
            return self.checkpointed(z0, times)
        return self.solve(z0, times)

    def solve(self, z0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """The solve itself, keeping every stage for the backward pass. -> z (b, T, c, h, w)."""
        # z_{t_1}, ..., z_{t_T} = ODESolve(f_phi, z_{t_0}, (t_1, ..., t_T))
        sol = odeint(self.ode_func, z0, times, rtol=self.rtol, atol=self.atol, method=self.method)
        return sol.transpose(0, 1)  # (T, b, c, h, w) -> (b, T, c, h, w)

    def checkpointed(self, z0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """solve under torch.utils.checkpoint. z0 (b, c, h, w) -> z (b, T, c, h, w)."""
        solves = []

        def solve(z, t):
            nfe = self.ode_func.nfe
            try:
                return self.solve(z, t)
            finally:
                if solves:  # the backward pass's recomputation
                    self.ode_func.nfe = nfe
                solves.append(None)
        return checkpoint(solve, z0, times, use_reentrant=False)


class EulerStep(nn.Module):
    """One explicit Euler step of dz/dt = f(z): y + f(y) * (t_to - t_from). Key: ode_func.*

    The ODE-ConvGRU encoder moves its state between two observed frames this way. (The
    reference builds a DiffeqSolver with method 'euler' for it and only ever uses its ode_func;
    this module holds the same ode_func, so the state-dict keys are the reference's.)
    """

    def __init__(self, ode_func: ODEFunc):
        super().__init__()
        self.ode_func = ode_func

    def forward(self, y: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor) -> torch.Tensor:
        """y (b, c, h, w) at t_from -> (b, c, h, w) at t_to (f evaluated at t_to, as the reference does)."""
        # h_i^- = h_{i-1} + f_theta(h_{i-1}) * (t_i - t_{i-1})
        return y + self.ode_func(t_to, y) * (t_to - t_from)
