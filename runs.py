"""Run folders, devices, resuming and loading a trained run (docs/resume.md): what the phases share."""
import datetime
import json
import os
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple, Optional

import torch

from models.performance import amp_dtype, apply_speed_options
from utils import distributed as dist, malloc
from utils.atomic import atomic_write_json, remove_stale_temps
from utils.checkpoint import (CheckpointError, generator_state_from, load_checkpoint, newest_checkpoint,
                              resolve_checkpoint)


class RunError(RuntimeError):
    """A run that cannot go on; the message says what happened and what to do."""


class RunFinished(Exception):
    """--resume of a run already at its --max_steps or --epoch: nothing to train (main exits 0)."""


TRAIN, EVAL = ("train",), ("test_met", "generate", "eval_continuous")
ALL = TRAIN + EVAL
# option -> (the phases that read it, its rule); not listed: every phase, "fixed". Rules:
#   model: what the run is: evaluations take the run's; --resume as fixed (--batch_size may change
#          with the number of processes, keeping the clips per step)
#   fixed: --resume refuses another value; data: the run's unless given (a moved data folder)
#   free:  schedule and reports: --resume may change them; here: this machine's, this command's
#   none:  not part of a training run
OPTIONS = {
    **dict.fromkeys(("dataset", "extrap", "irregular", "run_backwards", "input_size", "init_dim", "n_downs",
                     "n_layers", "dec_diff", "sample_size", "window_size", "input_norm", "input_dim",
                     "batch_size", "lr", "lamb_adv", "name", "seed", "frame_stride"), (ALL, "model")),
    **dict.fromkeys(("data_root", "custom_root"), (ALL, "data")),
    **dict.fromkeys(("epoch", "max_steps", "max_minutes", "log_print_freq", "image_print_freq", "ckpt_save_freq",
                     "test_every_epochs", "storage", "max_test_batches"), (ALL, "free")),
    **dict.fromkeys(("device", "workers", "num_threads", "malloc_reuse_mb"), (ALL, "here")),
    "resume": (TRAIN, "none"), "sync_bn": (TRAIN, "fixed"), "phase": (ALL, "none"), "explicit": (ALL, "none"),
    **dict.fromkeys(("test_dir", "ckpt", "bn_running_stats"), (EVAL, "none")),
    "save_images": (("test_met",), "none"),
    **dict.fromkeys(("no_lpips", "offline"), (("test_met", "eval_continuous"), "none")),
    **dict.fromkeys(("input", "times", "observed", "out"), (("generate",), "none")),
    **dict.fromkeys(("fps_factor", "horizon"), (("generate", "eval_continuous"), "none")),
}


def rule(option: str) -> str:
    """The option's rule in OPTIONS ("fixed" when not listed)."""
    return OPTIONS.get(option, (ALL, "fixed"))[1]


class LoadedRun(NamedTuple):
    """A trained run loaded for evaluation (load_run)."""
    run_opt: SimpleNamespace  # the command line's options with the run's own (options.json)
    model: torch.nn.Module    # VidODE with the checkpoint's weights, on `device`
    checkpoint: Path          # the checkpoint file read
    step: Optional[int]       # its training step (None for the paper's bare generator files)
    device: torch.device


def start_process(opt: Namespace | SimpleNamespace) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process: configure_threads, --device resolved ("auto":
    CUDA when available), torchrun's process group joined."""
    configure_threads(opt)
    auto = opt.device in (None, "", "auto")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if auto else opt.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device {opt.device}: CUDA is not available on this machine; use --device cpu")
    return dist.init_distributed(device)  # under torchrun: cuda:LOCAL_RANK


def new_run_dirs(opt: Namespace) -> tuple[Path, Path]:
    """storage/{logs,checkpoints}/<MMDD>/<run>, named as the reference does (numbered if taken)."""
    day = datetime.datetime.now().strftime("%m%d")
    base = f"dataset{opt.dataset}_extrap{opt.extrap}_irregular{opt.irregular}_runBack{opt.run_backwards}_{opt.name}"
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}_{n}"
        if not (Path(opt.storage) / "logs" / day / name).exists():
            return Path(opt.storage) / "logs" / day / name, Path(opt.storage) / "checkpoints" / day / name
    raise RunError(f"too many runs named {base} today under {opt.storage}")


def read_options(test_dir: str | Path) -> dict:
    """options.json of a run folder; a clear error when it is not one (or of an older version)."""
    path = Path(test_dir) / "options.json"
    if not path.is_file():
        raise RunError(f"{test_dir} is not a run folder: it has no options.json. Pass the log folder "
                       "that train wrote, e.g. storage/logs/<MMDD>/<run name>")
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is not valid JSON ({e})") from e
    missing = [k for k, (_, r) in OPTIONS.items() if r in ("model", "data") and k not in saved]
    if missing:
        raise RunError(f"{path} does not record --{', --'.join(missing)}: the run was written by an older "
                       "version of this code, which cannot be read; train it again")
    return saved


def merge_run_options(opt: Namespace, saved: dict) -> SimpleNamespace:
    """The options with the run's (`saved`) as OPTIONS says; data_from_run: data options taken."""
    merged, given = dict(vars(opt)), set(getattr(opt, "explicit", ()))
    ignored = [k for k, (_, r) in OPTIONS.items() if r == "model" and k in given and saved[k] != merged.get(k)]
    merged["data_from_run"] = [k for k, (_, r) in OPTIONS.items() if r == "data" and k not in given]
    merged.update({k: saved[k] for k, (_, r) in OPTIONS.items()  # the run's own, as OPTIONS says
                   if r == "model" or k in merged["data_from_run"]})
    merged["log_dir"], merged["checkpoint_dir"] = saved["log_dir"], saved["checkpoint_dir"]
    if ignored and os.environ.get("RANK", "0") == "0":  # before the process group exists
        print("[run] the run's own options are used: " + "; ".join(
            f"--{k} {vars(opt)[k]} ignored (the run has {saved[k]})" for k in ignored))
    return SimpleNamespace(**merged)


def resume_checkpoint(resume: str | Path) -> Path:
    """The checkpoint file of --resume: a log folder's or checkpoint folder's newest, or the file."""
    p = Path(resume)
    if p.is_file():
        return p
    if (p / "options.json").is_file():
        ckpt_dir = Path(read_options(p)["checkpoint_dir"])
        newest = newest_checkpoint(ckpt_dir)
        if newest is None:
            raise RunError(f"--resume {resume}: no checkpoint in {ckpt_dir} yet; start a new run instead")
        return newest
    if p.is_dir():
        return resolve_checkpoint(p)
    raise RunError(f"--resume {resume}: no such file or folder (give a run's log folder, its "
                   "checkpoint folder or a ckpt_<step>.pth file)")


class Resume(NamedTuple):
    """A training run to resume (resume_run)."""
    checkpoint: Path  # the checkpoint file (in the run's checkpoint folder)
    state: dict       # its contents (utils/train_state.py reads them)
    log_dir: Path
    changed: dict     # option -> {"run": value, "now": value}


def resume_run(opt: Namespace, world: int = 1) -> Resume:
    """--resume: restore the run's options into `opt` as OPTIONS' rules say (without opt.explicit
    every option counts as given); every refused option in one RunError; RunFinished if done."""
    path = resume_checkpoint(opt.resume)
    obj = load_checkpoint(path, map_location="cpu")
    if not isinstance(obj, dict) or "optimizer_G" not in obj:
        raise CheckpointError(f"{path} holds a generator only (the paper's format), not a training state; "
                              "it can be evaluated with test_met but not resumed")
    log_dir = Path(opt.resume) if (Path(opt.resume) / "options.json").is_file() else Path(obj["log_dir"])
    if not (log_dir / "options.json").is_file():
        raise RunError(f"--resume {opt.resume}: the run's log folder recorded in the checkpoint, {log_dir}, has "
                       "no options.json (moved or deleted?); give --resume LOG_FOLDER, the run's log folder")
    run = {**read_options(log_dir), **obj["options"]}
    given, now, world_run = getattr(opt, "explicit", None), vars(opt), int(obj["world_size"])
    missing = [k for k in now if rule(k) != "none" and k not in run]
    if missing:
        raise RunError(f"--resume {opt.resume}: the checkpoint does not record --{', --'.join(missing)}: it was "
                       "written by an older version of this code, which cannot be resumed; start a new run")
    refused, changed = [], {}
    for k in [k for k in now if rule(k) != "none"]:
        is_given = given is None or k in given
        if is_given and now[k] != run[k] and rule(k) in ("model", "fixed"):
            if k != "batch_size":
                refused.append(f"--{k}: run has {run[k]}, command line says {now[k]}")
            elif now[k] * world != run[k] * world_run:
                refused.append(f"--batch_size: run has {run[k]} x {world_run} process(es) = {run[k] * world_run} "
                               f"clips per step, command line says {now[k]} x {world} = {now[k] * world} (it may "
                               "change only with the number of processes, keeping the clips per step)")
        elif not is_given and rule(k) != "here":
            now[k] = run[k]
        if now[k] != run[k]:
            changed[k] = {"run": run[k], "now": now[k]}
    if refused:
        may = [k for k in OPTIONS if rule(k) in ("data", "free", "here")]
        raise RunError(f"--resume {opt.resume}: options differ from the run's and cannot change on resume:\n  "
                       + "\n  ".join(refused) + "\nOmit them (the run's values are restored) or start a new run. "
                       "A resume may change: --" + " --".join(may) + " (--batch_size with the number of processes)")
    step = int(obj["step"])
    if opt.max_steps and step >= opt.max_steps:
        raise RunFinished(f"[train] {log_dir} is already at step {step} of its --max_steps {opt.max_steps}: nothing "
                          "to train; give a larger --max_steps (0: no limit) to train further")
    if obj["epochs_done"] >= opt.epoch:
        raise RunFinished(f"[train] {log_dir} has done its --epoch {opt.epoch} epochs (step {step}): nothing to "
                          "train; give a larger --epoch to train further")
    if dist.rank() == 0:
        what = ", ".join(f"--{k} {v['run']} -> {v['now']}" for k, v in changed.items()) or "no option changed"
        print(f"[train] resuming {log_dir} from {path.name} (step {step}); {what}")
    return Resume(path, obj, log_dir, changed)


def training_run_dirs(opt: Namespace, is_main: bool = True, resume: Optional[Resume] = None) -> tuple[Path, Path]:
    """(log folder, checkpoint folder), the resumed run's or new ones (opt.log_dir, checkpoint_dir);
    rank 0 creates them, removes stale temp files and writes a new run's options.json."""
    log_dir, ckpt_dir = ((resume.log_dir, resume.checkpoint.parent) if resume is not None else
                         map(Path, dist.broadcast_object(new_run_dirs(opt) if is_main else None)))
    opt.log_dir, opt.checkpoint_dir = str(log_dir), str(ckpt_dir)
    if is_main:
        (log_dir / "images").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for folder in dict.fromkeys((log_dir, ckpt_dir)):
            removed = remove_stale_temps(folder)
            if removed:
                print(f"[train] removed {len(removed)} temporary file(s) left by a killed process in {folder}: "
                      + ", ".join(p.name for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
        if resume is None:
            atomic_write_json(log_dir / "options.json", {k: v for k, v in vars(opt).items() if k != "explicit"})
    dist.barrier()
    return log_dir, ckpt_dir


def record_resume(resume: Resume, world: int) -> None:
    """Append the resume (time, step, checkpoint, processes, changed options) to resumes.jsonl."""
    record = {"time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "step": resume.state["step"], "checkpoint": str(resume.checkpoint),
              "world_size": world, "changed": resume.changed}
    with open(resume.log_dir / "resumes.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def load_run(opt: Namespace, needs_data: bool = True) -> LoadedRun:
    """The run in --test_dir ready to evaluate: its options and the generator with the weights of
    --ckpt (default the newest) on the device; needs_data: refuse a moved data folder."""
    from dataloader.datasets import dataset_dir
    from models import VidODE
    run_opt = merge_run_options(opt, read_options(opt.test_dir))
    folder = Path(dataset_dir(run_opt))
    if needs_data and "data_root" in run_opt.data_from_run and not folder.is_dir():
        raise RunError(f"the run's data ({run_opt.dataset}) is not in {folder.resolve()}: --data_root "
                       f"{run_opt.data_root} comes from the run's options.json. If the data moved, give "
                       f"--data_root NEW_FOLDER (the folder holding {folder.name}/{{train,test}})")
    _, _, device = start_process(run_opt)
    path = resolve_checkpoint(run_opt.checkpoint_dir, opt.ckpt)  # a missing folder has no checkpoint
    obj = load_checkpoint(path, map_location="cpu")
    model = VidODE(run_opt, device)
    try:
        model.load_state_dict(generator_state_from(obj), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the run's options ({str(e).splitlines()[0]}); "
                              "was it written with other --init_dim/--n_downs/--n_layers?") from e
    # the reference never calls eval(): BatchNorm keeps batch statistics unless asked otherwise
    model.train(not opt.bn_running_stats)
    apply_speed_options(run_opt, model)  # --channels_last, --compile
    return LoadedRun(run_opt, model, path, obj.get("step") if "netG" in obj else None, device)


def configure_threads(opt: Namespace | SimpleNamespace) -> None:
    """--num_threads: torch's CPU threads (0 leaves torch's default); --malloc_reuse_mb."""
    if getattr(opt, "num_threads", 0):
        torch.set_num_threads(opt.num_threads)
    malloc.reuse_freed_memory(getattr(opt, "malloc_reuse_mb", 0))


def describe_run(opt: Namespace | SimpleNamespace, device: torch.device) -> str:
    """The first log line: device, threads, precision, torch version and the decoder solver."""
    where = (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f", {torch.get_num_threads()} threads, {malloc.describe()}")
    dtype = amp_dtype(opt)
    precision = "float32" if dtype is None else f"autocast {opt.amp}"
    if dtype == torch.bfloat16 and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        precision += " (this CPU has no bf16 instructions: expect it slower than float32)"
    solver = " -> torchdiffeq 'implicit_adams' (its variable-step Adams was removed)" if opt.dec_diff == "adams" else ""
    return (f"device {device}{where}, {precision}, torch {torch.__version__}; "
            f"decoder solver: {opt.dec_diff}{solver}")
