"""Speed options: --amp (autocast), --channels_last, --compile. All off by default (float32).

autocast(opt, device): the context the generator's forward and the discriminator passes run
under (backward passes run outside it). bf16 or fp16; fp16 needs a GradScaler (make_grad_scaler),
CUDA only. The ODE state, the decoder's output, the warping and every loss stay float32
(VidODE and the LSGAN losses cast), so the adaptive solver's step control is unaffected.

apply_speed_options(opt, generator, *discriminators): channels_last memory format of the
weights (convolutions then produce channels_last outputs) and torch.compile of the convolutional
sub-modules (encoder, decoder, the two ODE nets, the ConvGRU cell, the discriminators), each
compiled in place (Module.compile: state-dict keys unchanged), not the whole generator with its
Python loops and adaptive solver. Call before wrapping in DistributedDataParallel.
"""
import contextlib

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(opt):
    amp = getattr(opt, "amp", "off") or "off"
    if amp == "off":
        return None
    if amp not in AMP_DTYPES:
        raise ValueError(f"--amp must be off, bf16 or fp16, got {amp!r}")
    return AMP_DTYPES[amp]


def autocast(opt, device):
    """torch.autocast for --amp on `device` (a torch.device or a type string); a no-op when off."""
    dtype = amp_dtype(opt)
    if dtype is None:
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=dtype)


def make_grad_scaler(opt, device):
    """A GradScaler for --amp fp16 on CUDA, else None (bf16 and float32 need none)."""
    if getattr(opt, "amp", "off") != "fp16":
        return None
    if torch.device(device).type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device (loss scaling); use --amp bf16 on the CPU")
    return torch.amp.GradScaler("cuda")


def compiled_parts(generator):
    """The generator's convolutional sub-modules that --compile compiles."""
    return [generator.encoder, generator.decoder,
            generator.encoder_z0.z0_diffeq_solver.ode_func.gradient_net,
            generator.diffeq_solver.ode_func.gradient_net,
            *generator.encoder_z0.cell_list]


def apply_speed_options(opt, generator, *discriminators):
    """--channels_last and --compile, in place; returns the modules."""
    modules = [generator, *discriminators]
    if getattr(opt, "channels_last", False):
        for m in modules:
            m.to(memory_format=torch.channels_last)
        generator.channels_last = True  # its 4-D inputs follow (VidODE.get_reconstruction)
    if getattr(opt, "compile", False):
        for m in compiled_parts(generator) + list(discriminators):
            m.compile()
    return modules
