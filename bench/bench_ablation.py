"""What each training-speed change gives: the same iteration with one change turned back off.

    python bench/bench_ablation.py                      # default options, interpolation
    python bench/bench_ablation.py --config small --mode irregular --rounds 3
    python bench/bench_ablation.py --interleave --iters 3  # time only, one process, alternating

Every variant runs in its own process (peak resident memory is per process) and the variants
are interleaved round by round (A B C ... A B C ...), so slow periods of a shared machine hit
them alike; the table reports each variant's median over rounds of its per-round median
seconds per iteration, its peak memory, and its ratio to "all on" measured in the same rounds.

Variants (each turns one change off through its public switch, "all off" turns every one off):
  all on          the code as the trainer runs it
  no recompute    BatchNorm/ReLU/upsampling outputs and the decoder ODE's stages are kept
                  for the backward pass instead of recomputed
                  (apply_performance(..., recompute=False), models/recompute.py)
  no real dedupe  the sequence D scores the real clip once per predicted step (as the
                  reference does) instead of once (train_step(..., score_real_once=False))
  no frozen D     the generator's adversarial pass also computes the discriminators' weight
                  gradients (as the reference does; they are discarded)
                  (train_step(..., freeze_d=False))
  all off         all three
The decoder's fast upsampling (models.decoder.BilinearUp2, the same numbers) is on in
every variant.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = ("all on", "no recompute", "no real dedupe", "no frozen D", "all off")


OFF = {"all on": set(), "no recompute": {"recompute"}, "no real dedupe": {"dedupe"},
       "no frozen D": {"frozen"}, "all off": {"recompute", "dedupe", "frozen"}}


def variant_switches(name):
    """(apply_performance's switches, train_step's switches) with exactly the variant's changes off."""
    off = OFF[name]
    return ({"recompute": "recompute" not in off},
            {"score_real_once": "dedupe" not in off, "freeze_d": "frozen" not in off})


def interleaved(config, mode, variants, iters, warmup, threads):
    """Seconds per iteration of every variant, in one process, the variants alternating
    iteration by iteration (A B C A B C ...): the fairest time comparison on a machine whose
    speed drifts over minutes. Peak memory cannot be told apart this way."""
    import time

    from bench_train import CONFIGS, MODES, training_setup
    from models import apply_performance, train_step
    opt, model, netD_img, netD_seq, optG, optD, batch = training_setup(CONFIGS[config] + MODES[mode], threads)
    times = {v: [] for v in variants}
    for i in range(warmup + iters):
        for v in variants:
            performance, step_options = variant_switches(v)
            apply_performance(model, netD_img, netD_seq, **performance)  # sets the savers both ways
            t0 = time.perf_counter()
            float(train_step(model, netD_img, netD_seq, optG, optD, batch, opt, **step_options)["loss_G"])
            if i >= warmup:
                times[v].append(time.perf_counter() - t0)
    return times


def main_cli():
    from bench_train import CONFIGS, MODES, run_one
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="default", choices=list(CONFIGS))
    p.add_argument("--mode", default="interp", choices=list(MODES))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--interleave", action="store_true",
                   help="time only: all variants in one process, alternating iteration by iteration")
    p.add_argument("--one", metavar="VARIANT", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.interleave:
        times = interleaved(args.config, args.mode, args.variants, args.iters, args.warmup, args.threads)
        first = args.variants[0]
        print(json.dumps({"config": args.config, "mode": args.mode, "threads": args.threads, "s_per_iter": times}))
        print(f"\n{args.config}/{args.mode}, {args.threads} threads, one process, variants alternating "
              f"({args.iters} iterations each after {args.warmup} warm-up)")
        print(f"| variant | s/iter (median) | x '{first}' (median of adjacent pairs) |")
        print("|---|---|---|")
        for v, ts in times.items():
            ratio = statistics.median(t / b for t, b in zip(ts, times[first]))
            print(f"| {v} | {statistics.median(ts):.2f} | {ratio:.2f} |")
        return
    if args.one:
        performance, step_options = variant_switches(args.one)
        r = run_one(args.config, args.mode, args.iters, args.warmup, args.threads,
                    performance=performance, step_options=step_options)
        print(json.dumps({"variant": args.one, **r}))
        return
    runs = {v: [] for v in args.variants}
    for k in range(args.rounds):
        for v in args.variants:
            cmd = [sys.executable, __file__, "--one", v, "--config", args.config, "--mode", args.mode,
                   "--iters", str(args.iters), "--warmup", str(args.warmup), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                raise SystemExit(out.returncode)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["round"] = k
            print(json.dumps(r), flush=True)
            runs[v].append(r)
    base = runs[args.variants[0]]
    print(f"\n{args.config}/{args.mode}, {args.threads} threads, {args.rounds} rounds "
          f"(ratios against '{args.variants[0]}' of the same round)")
    print(f"| variant | s/iter (median of rounds) | x '{args.variants[0]}' | peak RSS GB |")
    print("|---|---|---|---|")
    for v, rs in runs.items():
        ratio = statistics.median(r["median_s"] / b["median_s"] for r, b in zip(rs, base))
        print(f"| {v} | {statistics.median(r['median_s'] for r in rs):.2f} | {ratio:.2f} | "
              f"{max(r['peak_rss_gb'] for r in rs):.2f} |")


if __name__ == "__main__":
    main_cli()
