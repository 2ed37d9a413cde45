"""Training-iteration benchmark: median seconds per iteration, peak memory, solver evaluations.

    python bench/bench_train.py                       # default and small options, interp regular
    python bench/bench_train.py --configs default --modes interp extrap irregular
    python bench/bench_train.py --one default interp  # one configuration in this process

Each configuration runs in its own process (peak resident memory is per process); random data,
float32, median of --iters iterations after --warmup. Prints one JSON line per configuration
and a summary.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {
    "default": [],  # batch 8, 128 px, init_dim 32, sample_size 10, dopri5
    "small": ["--input_size", "32", "--init_dim", "8", "--batch_size", "2"],  # the golden cases' size
}
PHASES = ("G_forward", "D_inputs", "D_losses", "D_backward_step", "G_adv_forward", "G_backward_step")
MODES = {"interp": [], "extrap": ["--extrap"], "irregular": ["--irregular"],
         "extrap_irregular": ["--extrap", "--irregular"]}


def random_batch(opt, seed=0):
    import torch
    g = torch.Generator().manual_seed(seed)
    b, s = opt.batch_size, opt.input_size
    if opt.irregular:
        T = opt.window_size
        tp = torch.arange(T) / T
        mask = torch.zeros(b, T, 1)
        for i in range(b):
            if opt.extrap:
                h = T // 2
                k = opt.sample_size // 2 - 1
                first = 1 + torch.randperm(h - 1, generator=g)[:k]
                second = h + torch.randperm(h - 1, generator=g)[:k]
                mask[i, torch.cat([torch.tensor([0, T - 1]), first, second])] = 1
            else:
                mid = 1 + torch.randperm(T - 2, generator=g)[:opt.sample_size - 2]
                mask[i, torch.cat([torch.tensor([0, T - 1]), mid])] = 1
    else:
        T = opt.sample_size if opt.extrap else opt.sample_size // 2
        tp = torch.arange(T) / T
        mask = torch.ones(b, T, 1)
    data = torch.rand(b, T, 3, s, s, generator=g)
    from dataloader import make_batch
    return make_batch(data, mask, tp.float(), opt)


def training_setup(options, threads):
    """Options, networks, optimisers and a random batch for one command line, on the CPU; the
    speed and memory options applied as the trainer applies them (apply_speed_options)."""
    import torch
    import main
    from models import VidODE, create_netD
    from models.performance import apply_speed_options
    from runs import configure_threads
    opt = main.get_opt(options)
    configure_threads(opt)  # as the trainer sets up the process (--malloc_reuse_mb)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = VidODE(opt, "cpu")
    netD_img, netD_seq, optD = create_netD(opt, "cpu")
    apply_speed_options(opt, model, netD_img, netD_seq)
    optG = torch.optim.Adamax(model.parameters(), lr=opt.lr)
    return opt, model, netD_img, netD_seq, optG, optD, random_batch(opt)


def run_one(config, mode, iters, warmup, threads, profile_phases=False, performance=None, step_options=None):
    """One configuration in this process. performance: apply_performance's switches, applied after
    the trainer's (e.g. {"recompute": False}); step_options: train_step's keyword switches."""
    import torch
    from models import apply_performance, train_step
    opt, model, netD_img, netD_seq, optG, optD, batch = training_setup(CONFIGS[config] + MODES[mode], threads)
    if performance:
        apply_performance(model, netD_img, netD_seq, **performance)
    step_options = step_options or {}
    times, cpu = [], []
    load = [os.getloadavg()[0]]
    for i in range(warmup + iters):
        t0, c0 = time.perf_counter(), time.process_time()
        out = train_step(model, netD_img, netD_seq, optG, optD, batch, opt, **step_options)
        float(out["loss_G"])
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    times, cpu = times[warmup:], cpu[warmup:]
    load.append(os.getloadavg()[0])
    phases = {}
    if profile_phases:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_step(model, netD_img, netD_seq, optG, optD, batch, opt, **step_options)
        phases = {e.key: round(e.cpu_time_total / 1e6, 3) for e in prof.key_averages() if e.key in PHASES}
    return {"config": config, "mode": mode, "median_s": statistics.median(times), "min_s": min(times),
            "iters": iters, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
            "nfe_decoder": out["nfe_decoder"], "device": "cpu", "threads": torch.get_num_threads(),
            "torch": torch.__version__, "phases_s": phases,
            # process CPU seconds (all threads) and the 1-minute load average before and after:
            # on a shared machine, compare runs made side by side (A, B, A, B), not across time
            "cpu_median_s": statistics.median(cpu), "load_avg": load}


def main_cli():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["default", "small"], choices=list(CONFIGS))
    p.add_argument("--modes", nargs="+", default=["interp"], choices=list(MODES))
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--phases", action="store_true", help="also time each phase of one iteration")
    p.add_argument("--one", nargs=2, metavar=("CONFIG", "MODE"))
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.iters, args.warmup, args.threads, args.phases)))
        return
    results = []
    for c in args.configs:
        for m in args.modes:
            cmd = [sys.executable, __file__, "--one", c, m, "--iters", str(args.iters),
                   "--warmup", str(args.warmup), "--threads", str(args.threads)] + (["--phases"] if args.phases else [])
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                raise SystemExit(out.returncode)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(r), flush=True)
            results.append(r)
    print("summary: " + "; ".join(f"{r['config']}/{r['mode']} {r['median_s']:.2f} s/iter, "
                                  f"{r['peak_rss_gb']:.2f} GB peak" for r in results)
          + f" (load average {results[0]['load_avg'][0]:.1f} to {results[-1]['load_avg'][-1]:.1f})")


if __name__ == "__main__":
    main_cli()
