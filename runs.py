"""Run folders, devices and loading a trained run: what train, test_met, generate and eval_continuous share."""
import datetime
import json
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple, Optional

import torch

from models.performance import apply_speed_options
from utils import distributed as dist
from utils.atomic import atomic_write_json
from utils.checkpoint import (CheckpointError, generator_state_from, load_checkpoint, newest_checkpoint,
                              resolve_checkpoint)


class RunError(RuntimeError):
    """A run that cannot go on; the message says what happened and what to do."""


class LoadedRun(NamedTuple):
    """A trained run loaded for evaluation (load_run)."""
    run_opt: SimpleNamespace  # the command line's options with the run's own (options.json)
    model: torch.nn.Module    # VidODE with the checkpoint's weights, on `device`
    checkpoint: Path          # the checkpoint file read
    step: Optional[int]       # its training step (None for the paper's bare generator files)
    device: torch.device


# options that describe the run itself; the rest (device, workers, ...) come from the command line
RUN_OPTIONS = ("dataset", "extrap", "irregular", "run_backwards", "input_size", "init_dim", "n_downs",
               "n_layers", "dec_diff", "sample_size", "window_size", "input_norm", "input_dim",
               "batch_size", "lr", "lamb_adv", "custom_root", "name", "seed", "frame_stride")
OLDER_RUNS = {"frame_stride": 1}  # the value of a run option for runs whose options.json predates it


def resolve_device(name: Optional[str] = "auto") -> torch.device:
    """--device: "auto" (CUDA when available, else the CPU) or a torch device name."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def run_name(opt: Namespace) -> str:
    """The folder name of a training run, as the reference names it."""
    return (f"dataset{opt.dataset}_extrap{opt.extrap}_irregular{opt.irregular}"
            f"_runBack{opt.run_backwards}_{opt.name}")


def new_run_dirs(opt: Namespace) -> tuple[Path, Path]:
    """storage/logs/<MMDD>/<run> and storage/checkpoints/<MMDD>/<run>; a numbered suffix
    when that run already exists (nothing of an earlier run is overwritten)."""
    day = datetime.datetime.now().strftime("%m%d")
    base = run_name(opt)
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}_{n}"
        log_dir = Path(opt.storage) / "logs" / day / name
        if not log_dir.exists():
            return log_dir, Path(opt.storage) / "checkpoints" / day / name
    raise RunError(f"too many runs named {base} today under {opt.storage}")


def save_options(opt: Namespace, log_dir: Path) -> None:
    """<log_dir>/options.json: every option of the training run."""
    atomic_write_json(Path(log_dir) / "options.json", vars(opt))


def read_options(test_dir: str | Path) -> dict:
    """options.json of a run folder, with a clear error when it is not a run folder."""
    path = Path(test_dir) / "options.json"
    if not path.is_file():
        raise RunError(f"{test_dir} is not a run folder: it has no options.json. Pass the log folder "
                       "that train wrote, e.g. storage/logs/<MMDD>/<run name>")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is not valid JSON ({e})") from e


def merge_run_options(opt: Namespace, saved: dict) -> SimpleNamespace:
    """The command-line options with the run's own (model, data, sampling: RUN_OPTIONS, and its
    folders) taken from its options.json, as the reference's test_met does."""
    merged = dict(vars(opt))
    for k in RUN_OPTIONS + ("log_dir", "checkpoint_dir"):
        if k in saved:
            merged[k] = saved[k]
        elif k in OLDER_RUNS:
            merged[k] = OLDER_RUNS[k]
    return SimpleNamespace(**merged)


def resume_paths(resume: str | Path) -> tuple[Path, Path]:
    """(checkpoint folder, checkpoint file) named by --resume: a run's log folder, its checkpoint
    folder (the newest checkpoint in either) or a checkpoint file."""
    p = Path(resume)
    if p.is_file():
        return p.parent, p
    if (p / "options.json").is_file():
        saved = read_options(p)
        ckpt_dir = Path(saved["checkpoint_dir"])
        newest = newest_checkpoint(ckpt_dir)
        if newest is None:
            raise RunError(f"--resume {resume}: no checkpoint in {ckpt_dir} yet; start a new run instead")
        return ckpt_dir, newest
    if p.is_dir():
        return p, resolve_checkpoint(p)
    raise RunError(f"--resume {resume}: no such file or folder (give a run's log folder, its "
                   "checkpoint folder or a ckpt_<step>.pth file)")


def training_run_dirs(opt: Namespace, is_main: bool = True) -> tuple[Path, Path]:
    """(log folder, checkpoint folder) of a training run: the run named by --resume, or new ones
    (new_run_dirs, chosen by rank 0 and shared). Rank 0 creates them with images/ and writes
    options.json; opt.log_dir and opt.checkpoint_dir are set to them on every process."""
    if opt.resume:
        ckpt_dir, _ = resume_paths(opt.resume)
        log_dir = Path(str(ckpt_dir).replace("checkpoints", "logs", 1))
        log_dir = log_dir if (log_dir / "options.json").is_file() else ckpt_dir
    else:
        log_dir, ckpt_dir = new_run_dirs(opt) if is_main else (None, None)
        log_dir, ckpt_dir = dist.broadcast_object((log_dir, ckpt_dir))
        log_dir, ckpt_dir = Path(log_dir), Path(ckpt_dir)
    opt.log_dir, opt.checkpoint_dir = str(log_dir), str(ckpt_dir)
    if is_main:
        log_dir.mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "images").mkdir(exist_ok=True)
        save_options(opt, log_dir)
    dist.barrier()
    return log_dir, ckpt_dir


def checkpoint_dir_of(saved: dict, test_dir: str | Path) -> Path:
    """The checkpoint folder recorded in a run's options.json (`saved`), which must exist."""
    ckpt_dir = saved.get("checkpoint_dir")
    if not ckpt_dir or not Path(ckpt_dir).is_dir():
        raise RunError(f"the checkpoint folder of {test_dir} ({ckpt_dir}) does not exist; "
                       "train the run first or point --ckpt at a checkpoint file")
    return Path(ckpt_dir)


def load_generator(run_opt: SimpleNamespace, device: torch.device, ckpt_dir: Path,
                   which: Optional[str | int] = None) -> tuple[torch.nn.Module, Path, Optional[int]]:
    """A VidODE with the weights of the newest (or the named) checkpoint. Returns (model, path, step)."""
    from models import VidODE
    path = resolve_checkpoint(ckpt_dir, which)
    obj = load_checkpoint(path, map_location="cpu")
    model = VidODE(run_opt, device)
    try:
        model.load_state_dict(generator_state_from(obj), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the run's options ({str(e).splitlines()[0]}); "
                              "was it written with other --init_dim/--n_downs/--n_layers?") from e
    step = obj.get("step") if isinstance(obj, dict) and "netG" in obj else None
    return model, path, step


def load_run(opt: Namespace) -> LoadedRun:
    """The trained run in --test_dir, ready to evaluate: its options (the command line's with the
    run's own, see merge_run_options), the generator with the checkpoint's weights (--ckpt, default the
    newest) on the device, the checkpoint's path and step. Joins the process group under torchrun."""
    saved = read_options(opt.test_dir)
    run_opt = merge_run_options(opt, saved)
    configure_threads(run_opt)
    device = resolve_device(opt.device)
    _, _, device = dist.init_distributed(device)  # under torchrun: cuda:LOCAL_RANK, or the CPU
    model, path, step = load_generator(run_opt, device, checkpoint_dir_of(saved, opt.test_dir), opt.ckpt)
    # the reference never calls eval(): BatchNorm keeps batch statistics unless asked otherwise
    model.train(not opt.bn_running_stats)
    apply_speed_options(run_opt, model)  # --channels_last, --compile
    return LoadedRun(run_opt, model, path, step, device)


def configure_threads(opt: Namespace | SimpleNamespace) -> None:
    """--num_threads: torch's CPU threads (0 leaves torch's default)."""
    if getattr(opt, "num_threads", 0):
        torch.set_num_threads(opt.num_threads)


def describe_solver(opt: Namespace | SimpleNamespace) -> str:
    """The decoder solver, for the first log line (saying what 'adams' maps to)."""
    if opt.dec_diff == "adams":
        return "decoder solver: adams -> torchdiffeq 'implicit_adams' (its variable-step Adams was removed)"
    return f"decoder solver: {opt.dec_diff}"


def environment_line(device: torch.device) -> str:
    """Device, threads and torch version, for the first log line."""
    return (f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                  f", {torch.get_num_threads()} threads") + f", torch {torch.__version__}")

