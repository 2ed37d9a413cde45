"""Vid-ODE: the options (get_opt, checked in check_opt) and the dispatch to a phase module."""
import argparse
import importlib
import math
import os
import sys
from typing import Optional, Sequence

DATASETS = ("kth", "penn", "mgif", "hurricane", "shapes", "custom")
PHASES = ("train", "test_met", "generate", "eval_continuous")
SOLVERS = ("dopri5", "euler", "adams", "rk4", "midpoint", "bosh3", "dopri8", "implicit_adams")


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _numbers(cast, what):
    """An argparse type: comma-separated numbers -> a list (empty items are skipped)."""
    def parse(text):
        try:
            return [cast(p.strip()) for p in str(text).split(",") if p.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    return parse


def _build_parser():
    p = argparse.ArgumentParser(description="Vid-ODE (Park et al., AAAI 2021): train, evaluate and "
                                "generate video at any time stamps.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = p.add_argument
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # --- options of the paper's code, same names and defaults (docs/algorithm.md section 1) ---
    add("--name", default="vid_ode", help="experiment name")
    add("-j", "--workers", type=int, default=max(1, min(4, cpus)),
        help="data-loading processes (0: the main process); 4, or the CPUs available when fewer")
    add("-b", "--batch_size", type=_positive_int, default=8, help="clips per step (per process)")
    add("--epoch", type=_positive_int, default=500)
    add("--phase", default="train", choices=PHASES)
    add("--lr", type=float, default=1e-3, help="Adamax learning rate (G and D)")
    add("--window_size", type=_positive_int, default=20, help="frames in an irregular window")
    add("--sample_size", type=_positive_int, default=10, help="frames sampled from a clip")
    add("--lamb_adv", type=float, default=0.003, help="weight of every adversarial term")
    add("--input_size", type=_positive_int, default=128, help="frame side in pixels")
    add("--dec_diff", default="dopri5", choices=SOLVERS,
        help="decoder ODE solver (adams: implicit_adams)")
    add("--n_layers", type=int, default=2, help="hidden conv layers of each ODE function")
    add("--n_downs", type=_positive_int, default=2, help="encoder down-samplings")
    add("--init_dim", type=_positive_int, default=32, help="first encoder width")
    add("--input_norm", action="store_true", help="scale frames to [-1, 1]")
    add("--run_backwards", action=argparse.BooleanOptionalAction, default=True,
        help="encoder walks the frames backwards in time")
    add("--irregular", action="store_true", help="irregularly sampled frames")
    add("--extrap", action="store_true", help="extrapolation (default: interpolation)")
    add("--ckpt_save_freq", type=_positive_int, default=5000, help="steps between checkpoints")
    add("--log_print_freq", type=_positive_int, default=10, help="steps between log lines")
    add("--image_print_freq", type=_positive_int, default=1000, help="steps between saved image grids")
    add("--dataset", default="kth", choices=DATASETS)
    add("--test_dir", default=None, help="run folder (storage/logs/<MMDD>/<run>) to evaluate")
    # --- what a modern run needs ---
    add("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps, ...")
    add("--seed", type=int, default=0, help="seed of every random-number generator")
    add("--num_threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    add("--malloc_reuse_mb", type=int, default=64,
        help="glibc malloc reuses freed blocks under this size (CPU speed; 0: glibc's defaults)")
    add("--data_root", default="./dataset", help="folder holding <root>/{train,test}/*.npy")
    add("--frame_stride", type=_positive_int, default=1,
        help="see every k-th frame of a clip (eval_continuous scores the frames between)")
    add("--custom_root", default="custom", help="sub-folder of --data_root read by --dataset custom")
    add("--storage", default="./storage", help="where train writes logs/ and checkpoints/")
    add("--resume", default=None, help="continue a run: its log folder, checkpoint folder or file")
    add("--ckpt", default=None, help="checkpoint to evaluate (file or step; default: the newest)")
    add("--max_steps", type=int, default=0, help="stop training after this many steps (0: no limit)")
    add("--max_minutes", type=float, default=0, help="stop training after this long (0: no limit)")
    add("--test_every_epochs", type=_positive_int, default=100, help="epochs between test losses")
    add("--max_test_batches", type=int, default=0, help="evaluate at most this many batches (0: all)")
    add("--save_images", action="store_true", help="test_met: also write the PNG frames")
    add("--no_lpips", action="store_true", help="test_met, eval_continuous: skip LPIPS")
    add("--offline", action="store_true", help="never download LPIPS weights (or VIDODE_OFFLINE=1)")
    add("--bn_running_stats", action="store_true", help="evaluate with BatchNorm running statistics")
    add("--amp", default="off", choices=("off", "bf16", "fp16"), help="autocast (bf16: GPU or a bf16 CPU; fp16: GPU)")
    add("--channels_last", action="store_true", help="channels_last memory format")
    add("--compile", action="store_true", help="torch.compile the convolutional parts")
    add("--sync_bn", action="store_true", help="SyncBatchNorm across processes (torchrun)")
    # --- generation at any time stamps (phase generate / eval_continuous; times in input frames) ---
    add("--input", default=None, help="generate: a test-clip index (default 0), .npy or video file")
    add("--fps_factor", type=int, default=0, help="frames per input-frame interval (0: 4)")
    add("--times", default=None, type=_numbers(float, "--times"),
        help="generate: comma-separated increasing times (0 = first input frame, 0.5 half-way)")
    add("--horizon", type=float, default=0.0, help="extrapolate up to this time (0: the default)")
    add("--observed", default=None, type=_numbers(int, "--observed"),
        help="generate: comma-separated indices of the observed input frames")
    add("--out", default=None, help="generate: output folder (default: <run>/generated/...)")
    return p


def check_opt(opt: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Refuse impossible combinations at parse time, saying how to fix them."""
    from dataloader import DataError, check_sizes
    try:
        check_sizes(opt)
    except DataError as e:
        parser.error(str(e))
    if opt.input_size % (2 ** opt.n_downs):
        parser.error(f"--input_size ({opt.input_size}) must be divisible by 2**n_downs "
                     f"({2 ** opt.n_downs})")
    if opt.phase in ("test_met", "generate", "eval_continuous") and not opt.test_dir:
        parser.error(f"--phase {opt.phase} needs --test_dir, the run folder written by train "
                     "(storage/logs/<MMDD>/<run>)")
    if opt.lr <= 0:
        parser.error("--lr must be positive")
    zero = {"workers": "load in the main process", "num_threads": "torch's default",
            "malloc_reuse_mb": "glibc's defaults", "max_steps": "no limit",
            "max_minutes": "no limit", "max_test_batches": "all", "n_layers": "no hidden layer"}
    for name, meaning in zero.items():
        if getattr(opt, name) < 0:
            parser.error(f"--{name} must be >= 0 (0: {meaning}), got {getattr(opt, name):g}")
    check_generation_opt(opt, parser)
    note_unused_options(opt)
    return opt


def note_unused_options(opt: argparse.Namespace) -> list[str]:
    """Print one note naming the given options this phase does not read (runs.OPTIONS); return them."""
    from runs import ALL, OPTIONS
    phases = {k: OPTIONS.get(k, (ALL,))[0] for k in getattr(opt, "explicit", ())}
    unused = [k for k, p in phases.items() if opt.phase not in p]
    if unused and os.environ.get("RANK", "0") == "0":
        print(f"note: --phase {opt.phase} does not read " + ", ".join(
            f"--{k} (read by {' / '.join(phases[k])})" for k in unused), file=sys.stderr)
    return unused


def check_generation_opt(opt: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """--times, --fps_factor, --horizon, --observed on their own (the run's fit: when it is loaded)."""
    if opt.horizon < 0:
        parser.error(f"--horizon must be >= 0 (frame units of the input; 0: the default), got {opt.horizon:g}")
    if opt.phase == "eval_continuous" and opt.fps_factor and opt.fps_factor < 2:
        parser.error(f"eval_continuous needs --fps_factor >= 2 (frames between grid points), got {opt.fps_factor}")
    if opt.phase != "generate":
        return
    if opt.times is not None and opt.fps_factor:
        parser.error("give either --times or --fps_factor, not both")
    if opt.fps_factor < 0:
        parser.error(f"--fps_factor must be >= 1 (frames per observed interval), got {opt.fps_factor}")
    times = opt.times
    if times is not None:  # at least one, finite, >= 0, increasing, each once (input frame units)
        from utils.timeline import EPS  # times closer than EPS are one time
        if len(times) == 0:
            parser.error("no time stamps requested: give --times with at least one number "
                         "(frame units of the input, e.g. --times 0,0.5,1) or --fps_factor")
        if any(not math.isfinite(t) for t in times):
            parser.error(f"time stamps must be finite numbers, got {times}")
        if min(times) < 0:
            parser.error(f"negative time stamp {min(times):g}: times are in frame units of the "
                         "input, 0 being its first frame")
        for a, b in zip(times, times[1:]):
            if abs(b - a) < EPS:
                parser.error(f"duplicate time stamp {a:g} in --times; list each time once")
            if b < a:
                parser.error(f"time stamps must increase ({a:g} then {b:g}): the decoder's "
                             "ODE and warping chain run forward through them; sort --times")
    if opt.observed is not None and (not opt.observed or len(set(opt.observed)) != len(opt.observed)
                                     or min(opt.observed) < 0):
        parser.error("--observed lists the 0-based indices of the observed input frames, each once (none "
                     f"twice, none negative), got {','.join(map(str, opt.observed)) or 'none'}")


def get_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The checked options of argv; opt.explicit: those given on the command line; exit 2 if bad."""
    parser, given = _build_parser(), _build_parser()
    opt = parser.parse_args(argv)
    opt.input_dim = 3
    for action in given._actions:  # no defaults: only the options given are set
        action.default = argparse.SUPPRESS
    opt.explicit = sorted(vars(given.parse_args(argv)))
    return check_opt(opt, parser)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the phase the options name; exit code 0 when done, 2 (one line on stderr) on errors."""
    opt = get_opt(argv)
    from dataloader import DataError
    from runs import RunError, RunFinished
    from utils.checkpoint import CheckpointError
    module = {"train": "trainer", "test_met": "tester", "generate": "generate",
              "eval_continuous": "continuous"}[opt.phase]  # whose function opt.phase runs
    try:
        getattr(importlib.import_module(module), opt.phase)(opt)
    except RunFinished as e:
        if os.environ.get("RANK", "0") == "0":
            print(e)
    except (DataError, RunError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
