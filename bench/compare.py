"""Side-by-side training speed of this checkout and another (e.g. main at an older commit).

    python bench/compare.py --against /work/wt/base               # both configurations
    python bench/compare.py --against /work/wt/base --configs default --rounds 3
    python bench/compare.py --against /work/wt/base --this_options "--amp bf16"  # this one in bf16

Alternates processes (other, this, other, this, ...) so that a machine whose speed drifts blurs
both alike; each process imports its own checkout's code, builds the networks as the trainer
does (apply_speed_options), trains on random data (bench_train.random_batch) and reports median
seconds per iteration after the warm-ups, process CPU seconds, peak resident memory and, with
phases, the seconds of each labelled phase of one more (profiled) iteration. Prints one JSON
line per process, then per configuration the medians over rounds and the ratios other / this.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CONFIGS = {  # name: (options, warm-ups, iterations, time the phases)
    "default": ([], 2, 3, True),  # batch 8, 128 px, interpolation
    "64px": (["--input_size", "64", "--init_dim", "8", "--extrap"], 1, 4, False),
}
PHASES = ("G_forward", "D_inputs", "D_losses", "D_backward_step", "G_adv_forward", "G_backward_step")


def child(root: str, options: list[str], warmup: int, iters: int, phases: bool, threads: int) -> dict:
    """One measurement with the code of checkout `root`, in this process."""
    sys.path.insert(0, root)
    import resource
    import time
    import dataloader, main, models, runs  # noqa: F401  root's, before bench_train puts this checkout first
    from models import train_step
    sys.path.insert(0, str(HERE / "bench"))
    from bench_train import training_setup
    opt, model, netD_img, netD_seq, optG, optD, batch = training_setup(options, threads)
    times, cpu = [], []
    for _ in range(warmup + iters):
        t0, c0 = time.perf_counter(), time.process_time()
        float(train_step(model, netD_img, netD_seq, optG, optD, batch, opt)["loss_G"])
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {"root": root, "median_s": statistics.median(times[warmup:]), "cpu_s": statistics.median(cpu[warmup:]),
           "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}  # before profiling
    if phases:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_step(model, netD_img, netD_seq, optG, optD, batch, opt)
        out["phases"] = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key in PHASES}
    return out


def main_cli() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", required=True, help="the other checkout's root (e.g. a worktree of main)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--this_options", default="", help="options added for this checkout only, e.g. '--amp bf16'")
    p.add_argument("--child", nargs=2, metavar=("ROOT", "CONFIG"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        options, warmup, iters, phases = CONFIGS[args.child[1]]
        # the parent passes --this_options to this checkout's children only
        print(json.dumps(child(args.child[0], options + shlex.split(args.this_options), warmup, iters,
                               phases, args.threads)))
        return
    roots = {"other": str(Path(args.against).resolve()), "this": str(HERE)}
    for config in args.configs:
        runs = {"other": [], "this": []}
        for r in range(args.rounds):
            for name, root in roots.items():
                cmd = [sys.executable, __file__, "--against", args.against, "--threads", str(args.threads),
                       "--this_options", args.this_options if name == "this" else "", "--child", root, config]
                res = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=os.environ.copy())
                if res.returncode:
                    sys.exit(f"{name} ({root}) failed:\n{res.stderr}")
                out = json.loads(res.stdout.strip().splitlines()[-1])
                print(json.dumps({"config": config, "round": r, "code": name, **out}), flush=True)
                runs[name].append(out)
        med = {n: {k: statistics.median(o[k] for o in runs[n]) for k in ("median_s", "cpu_s", "peak_gb")}
               for n in runs}
        for n in runs:
            if "phases" in runs[n][0]:
                med[n]["phases"] = {ph: statistics.median(o["phases"].get(ph, 0.0) for o in runs[n]) for ph in PHASES}
        print(f"== {config}: medians of {args.rounds} rounds (other = {roots['other']}"
              f"{'; this with ' + args.this_options if args.this_options else ''})")
        rows = [("seconds per iteration", "median_s"), ("process CPU seconds", "cpu_s"), ("peak memory GB", "peak_gb")]
        if "phases" in med["this"]:
            rows = [(ph, ph) for ph in PHASES] + rows
        print(f"{'':24s} {'other':>9s} {'this':>9s} {'other/this':>10s}")
        for label, key in rows:
            a, b = ((med[n]["phases"][key] if key in PHASES else med[n][key]) for n in ("other", "this"))
            print(f"{label:24s} {a:9.3f} {b:9.3f} {a / b if b else float('nan'):10.2f}")


if __name__ == "__main__":
    main_cli()
