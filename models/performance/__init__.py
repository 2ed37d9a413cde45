"""Speed and memory options, applied from outside to the paper's networks by apply_performance.

None of them changes a state-dict key; the memory savers change no number either.

  recompute      memory savers for CPU float32 training (models/performance/recompute.py): the
                 encoder's and decoder's BatchNorm/ReLU/upsampling outputs and the decoder ODE's
                 stages are recomputed in the backward pass instead of kept; only where the input
                 has at least recompute.MIN_BYTES (1 MB), the same numbers bit for bit
  fast_upsample  the decoder's x2 bilinear upsampling by a faster CPU path, the same numbers
                 (models/performance/upsample.py)
  channels_last  channels_last memory format of the weights and of the encoder's input
                 (--channels_last; other convolution kernels, so other rounding)
  compile        torch.compile of the convolutional sub-modules, each in place (--compile)
  --amp          autocast and the fp16 gradient scaler (models/performance/amp.py), used by the
                 training step and the evaluation rather than applied to the modules

The trainer and the evaluation call apply_speed_options(opt, generator, *discriminators):
recompute and fast_upsample on (they only act where they pay), channels_last and compile as the
options say. A VidODE built and used without it runs the paper's plain modules.
"""
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from models.decoder import StepSequential
from models.ode import DiffeqSolver
from models.performance.amp import amp_dtype, autocast, make_grad_scaler
from models.performance.recompute import (CheckpointedDiffeqSolver, RecomputedDecoderLayers,
                                          RecomputedEncoderLayers)
from models.performance.upsample import FastUpsample2, is_bilinear_up2
from models.vidode import VidODE

__all__ = ["apply_performance", "apply_speed_options", "compiled_parts", "autocast", "make_grad_scaler",
           "amp_dtype"]


def apply_performance(generator: VidODE, *discriminators: nn.Module, recompute: bool = True,
                      fast_upsample: bool = True, channels_last: bool = False,
                      compile: bool = False) -> list[nn.Module]:
    """Apply the speed and memory options to a VidODE and its discriminators, in place.

    recompute and fast_upsample swap sub-modules for ones holding the same children (the same
    parameters and state-dict keys) and are set both ways: calling again with False puts the
    plain modules back. channels_last and compile are applied when True and left as they are
    when False (one-way, like Module.to and Module.compile). Call before wrapping the modules in
    DistributedDataParallel; optimisers already created stay valid (the parameters are the same
    objects). Returns [generator, *discriminators].
    """
    if not isinstance(generator, VidODE):
        raise TypeError(f"apply_performance expects the VidODE generator first (unwrapped from "
                        f"DistributedDataParallel), got {type(generator).__name__}")
    enc, dec = generator.encoder, generator.decoder
    enc.model = _as_sequential(enc.model, RecomputedEncoderLayers if recompute else nn.Sequential)
    dec.model = _as_sequential(dec.model, RecomputedDecoderLayers if recompute else StepSequential)
    generator.diffeq_solver = _as_solver(generator.diffeq_solver,
                                         CheckpointedDiffeqSolver if recompute else DiffeqSolver)
    for i, layer in enumerate(dec.model):
        if is_bilinear_up2(layer) and fast_upsample != isinstance(layer, FastUpsample2):
            dec.model[i] = (FastUpsample2() if fast_upsample
                            else nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
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
    """apply_performance as a run's options ask: --channels_last, --compile; the memory savers
    and the fast upsampling on (they act only in CPU float32 training, on inputs of 1 MB and more)."""
    return apply_performance(generator, *discriminators, recompute=True, fast_upsample=True,
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


def _as_sequential(seq: nn.Sequential, cls: type) -> nn.Sequential:
    """`seq` as an instance of `cls` holding the same children under the same names."""
    if type(seq) is cls:
        return seq
    new = cls(OrderedDict(seq.named_children()))
    new.train(seq.training)
    return new


def _as_solver(solver: DiffeqSolver, cls: type) -> DiffeqSolver:
    """`solver` as an instance of `cls` with the same ode_func, method and tolerances."""
    if type(solver) is cls:
        return solver
    new = cls(solver.ode_func, solver.method, solver.rtol, solver.atol)
    new.train(solver.training)
    return new


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous(memory_format=torch.channels_last) if torch.is_tensor(a) and a.dim() == 4 else a
                 for a in args)
