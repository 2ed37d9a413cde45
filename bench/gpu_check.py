"""One prepared check for a machine with a GPU; prints one JSON object.

    python bench/gpu_check.py                          # CUDA, default options (meant to finish in < 8 min)
    python bench/gpu_check.py --device cpu --quick     # the same code path on tiny options (tested in CI)

It reports:
  card       the device, torch and CUDA versions;
  golden     every case in tests/golden run on the device in float32: the max |difference| of each
             forward output against the tensors the paper's code produced, beside the tolerance
             the golden tests use on the CPU (and whether it holds);
  train      seconds per training iteration (median after warm-up) and peak memory at the default
             options (--quick: the golden cases' size) for float32, --amp bf16, --channels_last,
             --compile and all three together, each on fresh networks; "fastest" names the best;
  test_met   frames per second of test_met's prediction and in-memory metrics (no LPIPS).
A variant that fails is reported with its error instead of stopping the check; a variant that
would start after --budget_s is reported as skipped. --quick skips --compile (inductor takes
minutes to compile on a CPU; tests/test_speed_options.py covers that path).
"""
import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

GOLDEN_KEYS = ("pred_x", "optical_flow", "warped_pred_x", "pred_intermediates", "pred_masks", "z0", "sol_y")
VARIANTS = {  # name -> extra command-line options
    "float32": [],
    "bf16": ["--amp", "bf16"],
    "channels_last": ["--channels_last"],
    "compile": ["--compile"],
    "bf16+channels_last+compile": ["--amp", "bf16", "--channels_last", "--compile"],
}
QUICK_OPTIONS = ["--input_size", "32", "--init_dim", "8", "--batch_size", "2"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def card(device: torch.device) -> dict:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return {"device": str(device), "name": p.name, "memory_gb": round(p.total_memory / 2 ** 30, 1),
                "capability": f"{p.major}.{p.minor}", "torch": torch.__version__, "cuda": torch.version.cuda}
    return {"device": "cpu", "name": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def golden(device: torch.device) -> dict:
    """Forward outputs of every golden case on `device`, float32, against the stored tensors."""
    from tests.golden_utils import batch_from_case, case_files, golden_dir, load, make_models
    init = load(golden_dir() / "shared_init.pt")
    out = {}
    for path in case_files():
        case = load(path)
        _, model, *_ = make_models(case, init)
        model.to(device)
        model.device = device
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch_from_case(case).items()}
        with torch.no_grad():
            pred, extra = model.get_reconstruction(batch["tp_to_predict"], batch["observed_data"],
                                                   batch["observed_tp"], batch["observed_mask"],
                                                   batch["mask_predicted_data"])
        got = {**{k: extra[k] for k in GOLDEN_KEYS if k in extra}, "pred_x": pred}
        diffs = {k: float((got[k].detach().float().cpu() - case[k]).abs().max()) for k in GOLDEN_KEYS if k in case}
        tol = 2e-3 if case["config"]["irregular"] else 5e-5  # tests/test_golden.py's forward tolerance
        out[path.stem] = {"max_abs_diff": diffs, "tolerance": tol,
                          "within": all(v <= tol for v in diffs.values())}
    return out


def train_variant(options: list, device: torch.device, iters: int, warmup: int) -> dict:
    """Median seconds per training iteration and peak memory of one option set, fresh networks."""
    import main
    from bench_train import random_batch
    from models import VidODE, create_netD, train_step
    from models.performance import apply_speed_options, make_grad_scaler
    opt = main.get_opt(options + ["--device", str(device)])
    torch.manual_seed(0)
    model = VidODE(opt, device)
    netD_img, netD_seq, optD = create_netD(opt, device)
    apply_speed_options(opt, model, netD_img, netD_seq)
    optG = torch.optim.Adamax(model.parameters(), lr=opt.lr)
    scaler = make_grad_scaler(opt, device)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in random_batch(opt).items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, first = [], None
    for i in range(warmup + iters):
        synchronize(device)
        t0 = time.perf_counter()
        out = train_step(model, netD_img, netD_seq, optG, optD, batch, opt, scaler)
        loss = float(out["loss_G"])
        synchronize(device)
        times.append(time.perf_counter() - t0)
        first = first if first is not None else times[0]
    r = {"median_s": statistics.median(times[warmup:]), "first_iteration_s": first, "loss_G": loss,
         "nfe_decoder": out["nfe_decoder"]}
    if device.type == "cuda":
        r["peak_gpu_gb"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    else:
        import resource
        r["peak_rss_gb_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return r


def test_met_speed(base: list, device: torch.device, n_batches: int) -> dict:
    """Frames per second of test_met's prediction plus in-memory metrics (model and baseline)."""
    import main
    from bench_eval import test_batches
    from models import VidODE
    from models.performance import apply_speed_options
    from tester import Evaluator
    opt = main.get_opt(base + ["--device", str(device)])
    torch.manual_seed(0)
    model = VidODE(opt, device)
    model.train()  # test_met's default: BatchNorm on batch statistics, as the reference
    apply_speed_options(opt, model)
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
               for b in test_batches(opt, n_batches)]
    ev = Evaluator(opt, model, device, None)
    ev.update(batches[0])  # warm-up
    synchronize(device)
    t0 = time.perf_counter()
    frames = 0
    for b in batches:
        pred, _, _ = ev.update(b)
        frames += pred.size(0) * pred.size(1)
    synchronize(device)
    return {"frames_per_s": frames / (time.perf_counter() - t0), "frames": frames}


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny options, one iteration, no --compile")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default 3; --quick 1)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 2; --quick 1)")
    p.add_argument("--budget_s", type=float, default=420.0, help="start no variant after this many seconds")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here; run with --device cpu --quick to check the script itself")
    iters = args.iters or (1 if args.quick else 3)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    base = QUICK_OPTIONS if args.quick else []
    start = time.perf_counter()
    report = {"card": card(device), "quick": args.quick, "options": base or "defaults",
              "iters": iters, "warmup": warmup}
    report["golden"] = golden(device)
    train = {}
    for name, extra in VARIANTS.items():
        if args.quick and "--compile" in extra:
            train[name] = {"skipped": "--quick: inductor compilation takes minutes on a CPU"}
            continue
        if time.perf_counter() - start > args.budget_s:
            train[name] = {"skipped": f"--budget_s {args.budget_s:g} reached"}
            continue
        try:
            train[name] = train_variant(base + extra, device, iters, warmup)
        except Exception as e:  # one variant's failure (e.g. no bf16 kernels) is a result, not the end
            train[name] = {"error": f"{type(e).__name__}: {e}",
                           "where": traceback.format_exc(limit=-1).strip().splitlines()[-2:]}
        if device.type == "cuda":
            torch.cuda.empty_cache()
    timed = {k: v["median_s"] for k, v in train.items() if "median_s" in v}
    report["train"] = train
    if timed:
        fastest = min(timed, key=timed.get)
        report["fastest"] = {"variant": fastest, "speedup_vs_float32":
                             timed["float32"] / timed[fastest] if "float32" in timed else None}
    report["test_met"] = test_met_speed(base, device, 2 if args.quick else 8)
    report["seconds"] = time.perf_counter() - start
    return report


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
