"""Run folders, devices and loading a trained run: what train, test_met, generate and eval_continuous share."""
import datetime
import json
import os
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple, Optional

import torch

from models.performance import apply_speed_options
from utils import distributed as dist
from utils.atomic import atomic_write_json, remove_stale_temps
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


# options that describe the run itself: test_met, generate and eval_continuous take them from the run's
# options.json (a value given on the command line is reported and ignored)
RUN_OPTIONS = ("dataset", "extrap", "irregular", "run_backwards", "input_size", "init_dim", "n_downs",
               "n_layers", "dec_diff", "sample_size", "window_size", "input_norm", "input_dim",
               "batch_size", "lr", "lamb_adv", "name", "seed", "frame_stride")
OLDER_RUNS = {"frame_stride": 1}  # the value of a run option for runs whose options.json predates it
# where the run's data lives: the run's unless given on the command line (a moved data folder)
DATA_LOCATION = ("data_root", "custom_root")

# --resume: the options a resumed run may take from the command line; every other option is the
# run's (from its checkpoint), and one given with another value is refused (resume_run).
#  - the schedule and the reports (how long, how often to log, save, test) change no step's numbers;
#  - the machine (device, workers, threads, where new runs go) is this command's;
#  - --data_root: where the same data now lives; --max_test_batches: what the periodic test loss
#    averages (it changes no training state);
#  - --batch_size only with the number of processes, keeping the clips per step (resume_run).
RESUME_MAY_CHANGE = ("max_steps", "max_minutes", "epoch", "device", "workers", "num_threads", "log_print_freq",
                     "image_print_freq", "ckpt_save_freq", "test_every_epochs", "storage", "data_root",
                     "max_test_batches")
# ... of these, the ones that belong to this machine: the command line's value (given or default);
# the others, when not given, are the run's
MACHINE_OPTIONS = ("device", "workers", "num_threads")
EVAL_PHASES = ("test_met", "generate", "eval_continuous")
# options that only some phases read (main names those given to another phase, which ignores them)
PHASE_OPTIONS = {
    "resume": ("train",), "sync_bn": ("train",),
    "test_dir": EVAL_PHASES, "ckpt": EVAL_PHASES, "bn_running_stats": EVAL_PHASES,
    "save_images": ("test_met",), "no_lpips": ("test_met", "eval_continuous"),
    "offline": ("test_met", "eval_continuous"),
    "input": ("generate",), "times": ("generate",), "observed": ("generate",), "out": ("generate",),
    "fps_factor": ("generate", "eval_continuous"), "horizon": ("generate", "eval_continuous"),
}
# options of this command or of the other phases: not part of a training run
NOT_RUN_OPTIONS = ("phase", "resume", "log_dir", "checkpoint_dir", "explicit") + tuple(
    k for k, phases in PHASE_OPTIONS.items() if "train" not in phases)


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
    """<log_dir>/options.json: every option of a new training run (written once: a resume appends to
    resumes.jsonl instead)."""
    atomic_write_json(Path(log_dir) / "options.json", {k: v for k, v in vars(opt).items() if k != "explicit"})


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


def explicit_options(opt: Namespace | SimpleNamespace) -> Optional[set[str]]:
    """The options given on the command line (main.get_opt records them), or None when unknown."""
    given = getattr(opt, "explicit", None)
    return None if given is None else set(given)


def merge_run_options(opt: Namespace, saved: dict, quiet: bool = False) -> SimpleNamespace:
    """The command-line options with the run's own taken from its options.json: the model, data and
    sampling options (RUN_OPTIONS) and its folders always, as the reference's test_met does (one given
    on the command line with another value is reported and ignored); where its data lives
    (DATA_LOCATION: --data_root, --custom_root) unless given on the command line.
    run_opt.data_from_run lists the DATA_LOCATION options taken from the run."""
    merged = dict(vars(opt))
    given = explicit_options(opt) or set()
    ignored = [k for k in RUN_OPTIONS if k in given and k in saved and saved[k] != merged.get(k)]
    for k in RUN_OPTIONS + ("log_dir", "checkpoint_dir"):
        if k in saved:
            merged[k] = saved[k]
        elif k in OLDER_RUNS:
            merged[k] = OLDER_RUNS[k]
    merged["data_from_run"] = [k for k in DATA_LOCATION if k in saved and k not in given]
    for k in merged["data_from_run"]:
        merged[k] = saved[k]
    if ignored and not quiet and os.environ.get("RANK", "0") == "0":  # before the process group exists
        print("[run] the run's own options are used: " + "; ".join(
            f"--{k} {vars(opt)[k]} ignored (the run has {saved[k]})" for k in ignored))
    return SimpleNamespace(**merged)


def check_run_data(run_opt: SimpleNamespace) -> None:
    """A run whose data folder (taken from its options.json) is gone: one error naming --data_root."""
    from dataloader.datasets import dataset_dir
    if "data_root" not in getattr(run_opt, "data_from_run", ()):
        return  # given on the command line: the data set's own errors say what is missing
    folder = Path(dataset_dir(run_opt))
    if not folder.is_dir():
        raise RunError(f"the run's data ({run_opt.dataset}) is not in {folder.resolve()}: --data_root "
                       f"{run_opt.data_root} comes from the run's options.json. If the data moved, give "
                       "--data_root NEW_FOLDER (the folder holding "
                       f"{folder.name}/{{train,test}})")


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


class Resume(NamedTuple):
    """A training run to resume (resume_run)."""
    checkpoint: Path  # the checkpoint file
    state: dict       # its contents (utils/train_state.py reads them)
    log_dir: Path
    ckpt_dir: Path
    step: int
    changed: dict     # option -> {"run": value, "now": value}, among RESUME_MAY_CHANGE


def _resume_log_dir(resume: str | Path, ckpt_dir: Path, obj: dict) -> Path:
    """The log folder of the run: the one --resume names, else the one the checkpoint records, else
    (a checkpoint written before it recorded one) derived from the checkpoint folder, with a note."""
    named = Path(resume)
    if (named / "options.json").is_file():
        return named
    if obj.get("log_dir"):
        log_dir = Path(obj["log_dir"])
        if not (log_dir / "options.json").is_file():
            raise RunError(f"--resume {resume}: the run's log folder recorded in the checkpoint, {log_dir}, has "
                           "no options.json (moved or deleted?); give --resume LOG_FOLDER, the run's log folder")
        return log_dir
    log_dir = Path(str(ckpt_dir).replace("checkpoints", "logs", 1))
    if not (log_dir / "options.json").is_file():
        raise RunError(f"--resume {resume}: the checkpoint does not record its log folder (written by an older "
                       f"version) and {log_dir}, derived from the checkpoint folder, has no options.json; "
                       "give --resume LOG_FOLDER, the run's log folder")
    if dist.is_main():
        print(f"[train] note: the checkpoint does not record its log folder (older version); using {log_dir}, "
              "derived from the checkpoint folder")
    return log_dir


def resume_run(opt: Namespace, world: int = 1) -> Resume:
    """--resume: read the checkpoint and restore the run's options into `opt` (in place).

    The run's options are the checkpoint's (with its options.json for any it lacks). Options in
    RESUME_MAY_CHANGE may be given on the command line; of those not given, the machine's
    (MACHINE_OPTIONS) keep the command line's defaults, the others are the run's. Any other option
    given on the command line with a value other than the run's is refused: one RunError listing
    each. --batch_size may change only when the number of processes does, keeping the clips per step.
    Without opt.explicit (options not made by main.get_opt) every option counts as given."""
    ckpt_dir, path = resume_paths(opt.resume)
    obj = load_checkpoint(path, map_location="cpu")
    if not isinstance(obj, dict) or "optimizer_G" not in obj:
        raise CheckpointError(f"{path} holds a generator only (the paper's format), not a training state; "
                              "it can be evaluated with test_met but not resumed")
    log_dir = _resume_log_dir(opt.resume, ckpt_dir, obj)
    run = {**read_options(log_dir), **obj.get("options", {})}
    given = explicit_options(opt)
    now = vars(opt)
    refused, changed, unrecorded = [], {}, []
    for k in list(now):
        if k in NOT_RUN_OPTIONS:
            continue
        if k not in run:
            unrecorded.append(k)  # an option newer than the run: the command line's value
            continue
        is_given = given is None or k in given
        if k == "batch_size" and is_given and now[k] != run[k]:
            run_world = int(obj.get("world_size", 1))
            if now[k] * world != run[k] * run_world:
                refused.append(f"--batch_size: run has {run[k]} x {run_world} process(es) = {run[k] * run_world} "
                               f"clips per step, command line says {now[k]} x {world} = {now[k] * world} (it may "
                               "change only with the number of processes, keeping the clips per step)")
                continue
        elif k not in RESUME_MAY_CHANGE:
            if is_given and now[k] != run[k]:
                refused.append(f"--{k}: run has {run[k]}, command line says {now[k]}")
                continue
            now[k] = run[k]
        elif not is_given and k not in MACHINE_OPTIONS:
            now[k] = run[k]
        if now[k] != run[k]:
            changed[k] = {"run": run[k], "now": now[k]}
    if refused:
        raise RunError(f"--resume {opt.resume}: options differ from the run's and cannot change on resume:\n  "
                       + "\n  ".join(refused) + "\nOmit them (the run's values are restored) or start a new run. "
                       "A resume may change: " + " ".join(f"--{k}" for k in RESUME_MAY_CHANGE)
                       + " (--batch_size with the number of processes)")
    step = int(obj.get("step", 0))
    if opt.max_steps and step >= opt.max_steps:
        raise RunError(f"--resume {opt.resume}: the run is at step {step}, its --max_steps is {opt.max_steps}; "
                       "give a larger --max_steps (0: no limit) to train further")
    if dist.is_main():
        if unrecorded:
            print("[train] options the run does not record (older version), the command line's used: "
                  + ", ".join(f"--{k} {now[k]}" for k in unrecorded))
        what = ", ".join(f"--{k} {v['run']} -> {v['now']}" for k, v in changed.items()) or "no option changed"
        print(f"[train] resuming {log_dir} from {path.name} (step {step}); {what}")
    return Resume(path, obj, log_dir, ckpt_dir, step, changed)


def training_run_dirs(opt: Namespace, is_main: bool = True, resume: Optional[Resume] = None) -> tuple[Path, Path]:
    """(log folder, checkpoint folder) of a training run: the resumed run's (see resume_run), or
    new ones (new_run_dirs, chosen by rank 0 and shared). Rank 0 creates them with images/, removes
    the temp files a killed process left there, and writes options.json (a new run only: see
    record_resume); opt.log_dir and opt.checkpoint_dir are set to them on every process."""
    if resume is not None:
        log_dir, ckpt_dir = resume.log_dir, resume.ckpt_dir
    else:
        log_dir, ckpt_dir = new_run_dirs(opt) if is_main else (None, None)
        log_dir, ckpt_dir = dist.broadcast_object((log_dir, ckpt_dir))
        log_dir, ckpt_dir = Path(log_dir), Path(ckpt_dir)
    opt.log_dir, opt.checkpoint_dir = str(log_dir), str(ckpt_dir)
    if is_main:
        log_dir.mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "images").mkdir(exist_ok=True)
        for folder in dict.fromkeys((log_dir, ckpt_dir)):
            removed = remove_stale_temps(folder)
            if removed:
                print(f"[train] removed {len(removed)} temporary file(s) left by a killed process in {folder}: "
                      + ", ".join(p.name for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
        if resume is None:
            save_options(opt, log_dir)
    dist.barrier()
    return log_dir, ckpt_dir


def record_resume(resume: Resume, world: int) -> None:
    """Append the resume to <log_dir>/resumes.jsonl (rank 0; options.json stays the run's): time,
    step, checkpoint, number of processes, and each changed option with the run's and the new value."""
    record = {"time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "step": resume.step,
              "checkpoint": str(resume.checkpoint), "world_size": world, "changed": resume.changed}
    with open(resume.log_dir / "resumes.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


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


def load_run(opt: Namespace, needs_data: bool = True) -> LoadedRun:
    """The trained run in --test_dir, ready to evaluate: its options (the command line's with the
    run's own, see merge_run_options), the generator with the checkpoint's weights (--ckpt, default the
    newest) on the device, the checkpoint's path and step. Joins the process group under torchrun.
    needs_data: the phase reads the run's data set (a moved data folder is refused, naming --data_root)."""
    saved = read_options(opt.test_dir)
    run_opt = merge_run_options(opt, saved)
    if needs_data:
        check_run_data(run_opt)
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

