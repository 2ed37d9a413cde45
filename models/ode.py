"""ODE functions and the decoder's solver (torchdiffeq odeint)."""
import torch.nn as nn
from torchdiffeq import odeint

# --dec_diff names -> torchdiffeq methods. torchdiffeq removed its variable-step Adams
# solver ('adams' in the reference's days); 'implicit_adams' (Adams-Moulton on the grid of
# requested times) is the closest method it still has.
METHOD_ALIASES = {"adams": "implicit_adams"}


def solver_method(name):
    return METHOD_ALIASES.get(name, name)


def create_convnet(n_inputs, n_outputs, n_layers=2, n_units=64):
    """conv3x3(n_inputs -> n_units), n_layers x [tanh, conv3x3], tanh, conv3x3(-> n_outputs)."""
    layers = [nn.Conv2d(n_inputs, n_units, 3, 1, 1)]
    for _ in range(n_layers):
        layers += [nn.Tanh(), nn.Conv2d(n_units, n_units, 3, 1, 1)]
    layers += [nn.Tanh(), nn.Conv2d(n_units, n_outputs, 3, 1, 1)]
    return nn.Sequential(*layers)


class ODEFunc(nn.Module):
    """dz/dt = f(z): autonomous, the time argument is ignored.

    `nfe` counts function evaluations (a Python int: no host synchronisation).
    """

    def __init__(self, ode_func_net):
        super().__init__()
        self.gradient_net = ode_func_net
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return self.gradient_net(y)


class DiffeqSolver(nn.Module):
    """Solve dz/dt = f(z) from z0 at times[0] through every entry of `times`.

    z0 (b, c, h, w), times (T,) increasing -> (b, T, c, h, w)
    """

    def __init__(self, ode_func, method="dopri5", rtol=1e-3, atol=1e-4):
        super().__init__()
        self.ode_func = ode_func
        self.method = solver_method(method)
        self.rtol, self.atol = rtol, atol

    def forward(self, z0, times):
        sol = odeint(self.ode_func, z0, times, rtol=self.rtol, atol=self.atol, method=self.method)
        return sol.transpose(0, 1)  # (T, b, c, h, w) -> (b, T, c, h, w)
