"""Speed and memory options, applied from outside to the paper's networks by apply_performance.

None of them changes a state-dict key; the memory savers change no number either.

  recompute      memory savers for float32 training (models/recompute.py), plain attributes the
                 modules' own forwards read: Encoder.recompute, Decoder.recompute and
                 DiffeqSolver.checkpoint; BatchNorm/ReLU/upsampling outputs and the decoder ODE's
                 stages are computed again in the backward pass instead of kept, only where the
                 input has at least 1 MB; the same numbers bit for bit
  channels_last  channels_last memory format of the weights and of the encoder's input
                 (--channels_last; other convolution kernels, so other rounding)
  compile        torch.compile of the convolutional sub-modules, each in place (--compile)
  --amp          autocast and the fp16 gradient scaler (models/performance/amp.py), used by the
                 training step and the evaluation rather than applied to the modules

The trainer and the evaluation call apply_speed_options(opt, generator, *discriminators):
recompute on (it only acts where it pays), channels_last and compile as the options say. A VidODE
built and used without it keeps everything for the backward pass, as the paper's code does.
"""
from typing import Any

import torch
import torch.nn as nn

from models.performance.amp import amp_dtype, autocast, make_grad_scaler
from models.vidode import VidODE

__all__ = ["apply_performance", "apply_speed_options", "compiled_parts", "autocast", "make_grad_scaler",
           "amp_dtype"]


def apply_performance(generator: VidODE, *discriminators: nn.Module, recompute: bool = True,
                      channels_last: bool = False, compile: bool = False) -> list[nn.Module]:
    """Apply the speed and memory options to a VidODE and its discriminators, in place.

    recompute sets the memory savers' attributes both ways (False: everything kept for the
    backward pass). channels_last and compile are applied when True and left as they are
    when False (one-way, like Module.to and Module.compile). Call before wrapping the modules in
    DistributedDataParallel; optimisers already created stay valid (the parameters are the same
    objects). Returns [generator, *discriminators].
    """
    if not isinstance(generator, VidODE):
        raise TypeError(f"apply_performance expects the VidODE generator first (unwrapped from "
                        f"DistributedDataParallel), got {type(generator).__name__}")
    enc = generator.encoder
    enc.recompute = generator.decoder.recompute = generator.diffeq_solver.checkpoint = recompute
    modules = [generator, *discriminators]
    if channels_last:
        for m in modules:
            m.to(memory_format=torch.channels_last)
        if not any(h is _channels_last_input for h in enc._forward_pre_hooks.values()):
            enc.register_forward_pre_hook(_channels_last_input)  # its 4-D inputs follow the weights
    if compile:
        for m in compiled_parts(generator) + list(discriminators):
            m.compile()
    return modules


def apply_speed_options(opt: Any, generator: VidODE, *discriminators: nn.Module) -> list[nn.Module]:
    """apply_performance as a run's options ask: --channels_last, --compile; the memory savers on
    (they act only in float32 training, on inputs of 1 MB and more)."""
    return apply_performance(generator, *discriminators, recompute=True,
                             channels_last=bool(getattr(opt, "channels_last", False)),
                             compile=bool(getattr(opt, "compile", False)))


def compiled_parts(generator: VidODE) -> list[nn.Module]:
    """The generator's convolutional sub-modules that compile=True compiles: encoder, decoder, the
    two ODE nets, the ConvGRU cell (not the whole generator with its Python loops and adaptive
    solver)."""
    return [generator.encoder, generator.decoder,
            generator.encoder_z0.z0_diffeq_solver.ode_func.gradient_net,
            generator.diffeq_solver.ode_func.gradient_net,
            *generator.encoder_z0.cell_list]


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous(memory_format=torch.channels_last) if torch.is_tensor(a) and a.dim() == 4 else a
                 for a in args)
