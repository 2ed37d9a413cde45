"""Helpers to rebuild the reference's golden cases (tests/golden, see its README.md)."""
import math
import os
from pathlib import Path

import numpy as np
import torch

GOLDEN_DEFAULT = Path(__file__).resolve().parent / "golden"


def golden_dir() -> Path:
    """The folder of golden cases: $VIDODE_GOLDEN_DIR when set, else tests/golden."""
    return Path(os.environ.get("VIDODE_GOLDEN_DIR", GOLDEN_DEFAULT))


def case_files() -> list:
    """Every case_*.pt of the golden folder, sorted. The folder is part of the repository, so
    a missing or empty one is an error (a broken checkout or a wrong VIDODE_GOLDEN_DIR), never
    a reason to skip."""
    d = golden_dir()
    cases = sorted(d.glob("case_*.pt")) if d.is_dir() else []
    if not cases:
        where = "$VIDODE_GOLDEN_DIR" if "VIDODE_GOLDEN_DIR" in os.environ else "the repository's tests/golden"
        raise FileNotFoundError(
            f"no golden case_*.pt in {d} ({where}); tests/golden is part of the repository: "
            "restore it (git checkout -- tests/golden) or point VIDODE_GOLDEN_DIR at a folder of cases")
    return cases


def load(path):
    return torch.load(path, weights_only=True)


def opt_from_config(config):
    """The reference's option namespace, with this project's extra options at their defaults."""
    import main
    opt = main.get_opt([])
    for k, v in config.items():
        setattr(opt, k, v)
    opt.input_dim = config.get("input_dim", 3)
    return opt


def batch_from_case(case):
    """The batch dictionary exactly as the reference fed it (uint8 frames / 255, strides kept)."""
    batch = {}
    for k, v in case["batch"].items():
        if k.endswith("_u8"):
            batch[k[:-3]] = v.to(torch.float32) / 255
        else:
            batch[k] = v
    return batch


# ------------------------------------------------------------------ discriminator weights
def _mix(idx, salt):
    m = np.uint64(0xFFFFFFFF)
    x = (idx.astype(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B9)) & m
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & m
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & m
    x ^= x >> np.uint64(16)
    return (x % np.uint64(255)).astype(np.int64) - 127


def formula_codes(shape, salt):
    n = int(np.prod(shape))
    return torch.from_numpy(_mix(np.arange(n, dtype=np.uint64), salt).reshape(shape))


def derive_spec(state_dict, kind, in_ch):
    """The README's rule: salts in state-dict order, layer_1 gets <kind base> + 100 + IN."""
    base = 1000 if kind == "img" else 2000
    spec, salt, fan_in = {}, base, None
    for name, t in state_dict.items():
        if name.endswith("weight"):
            fan_in = int(np.prod(t.shape[1:]))
        if name.startswith("layer_1."):
            s = base + 100 + in_ch
        else:
            salt += 1
            s = salt
        spec[name] = {"salt": s, "exponent": round(math.log2(1 / (127 * math.sqrt(fan_in)))),
                      "shape": list(t.shape)}
    return spec


def spec_for(init, ref, netD, kind):
    key = ref.split(":", 1)[1] if ref else None
    if key and key in init:
        return init[key]
    return derive_spec(netD.state_dict(), kind, netD.in_channels)


@torch.no_grad()
def fill_discriminator(netD, spec):
    for name, t in netD.state_dict().items():
        s = spec[name]
        w = formula_codes(tuple(s["shape"]), s["salt"]).to(torch.float32) * 2.0 ** s["exponent"]
        t.copy_(w)


def bias_feeding_norm(module):
    """Names of conv biases followed directly by a normalisation layer (their true gradient is 0)."""
    names = []
    for mod_name, mod in module.named_modules():
        if isinstance(mod, torch.nn.Sequential):
            kids = list(mod.named_children())
            for (n1, m1), (_, m2) in zip(kids, kids[1:]):
                if isinstance(m1, torch.nn.Conv2d) and m1.bias is not None and isinstance(
                        m2, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)):
                    names.append(f"{mod_name}.{n1}.bias" if mod_name else f"{n1}.bias")
    return names


def make_models(case, init):
    from models import VidODE, create_netD
    opt = opt_from_config(case["config"])
    torch.manual_seed(0)
    model = VidODE(opt, "cpu")
    model.load_state_dict(init["G_state"], strict=True)
    model.train()
    netD_img, netD_seq, optD = create_netD(opt, "cpu")
    fill_discriminator(netD_img, spec_for(init, case.get("D_img_state_ref"), netD_img, "img"))
    fill_discriminator(netD_seq, spec_for(init, case.get("D_seq_state_ref"), netD_seq, "seq"))
    return opt, model, netD_img, netD_seq, optD
