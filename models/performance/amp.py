"""--amp: the autocast context and, for fp16 on CUDA, the gradient scaler. Off by default (float32).

The generator's forward and the discriminator passes run under autocast(opt, device); the
backward passes run outside it. The ODE state, the decoder's output, the warping and every loss
stay float32 (VidODE and the LSGAN losses cast), so the adaptive solver's step control is
unaffected.
"""
import contextlib
from typing import Any, ContextManager

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(opt: Any) -> torch.dtype | None:
    """The autocast dtype for opt.amp ('off', 'bf16' or 'fp16'); None when off."""
    amp = getattr(opt, "amp", "off") or "off"
    if amp == "off":
        return None
    if amp not in AMP_DTYPES:
        raise ValueError(f"--amp must be off, bf16 or fp16, got {amp!r}")
    return AMP_DTYPES[amp]


def autocast(opt: Any, device: torch.device | str) -> ContextManager:
    """torch.autocast for --amp on `device` (a torch.device or a type string); a no-op when off."""
    dtype = amp_dtype(opt)
    if dtype is None:
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=dtype)


def make_grad_scaler(opt: Any, device: torch.device | str) -> torch.amp.GradScaler | None:
    """A GradScaler for --amp fp16 on CUDA, else None (bf16 and float32 need none)."""
    if getattr(opt, "amp", "off") != "fp16":
        return None
    if torch.device(device).type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device (loss scaling); use --amp bf16 on the CPU")
    return torch.amp.GradScaler("cuda")
