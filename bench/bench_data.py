"""Data-loading speed: clips per second at the default options on KTH-shaped files.

    python bench/bench_data.py [--clips 16] [--batches 6] [--workers 0 2]

Writes 16 synthetic videos of (200..400, 120, 160, 3) uint8 to a temporary folder (each
listed under 8 names, so that an epoch is long enough to reach the steady state), then
times the train loader (128 px, flip + rotation on) in regular interpolation and irregular
interpolation. Prints one JSON object and a one-line summary.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import main  # noqa: E402
from dataloader import build_loaders  # noqa: E402


def make_videos(root, n, seed=0, links=8):
    """n videos in train/ (each also under `links` names: an epoch of realistic length), 2 in test/."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", 2)):
        folder = os.path.join(root, "kth_action", split)
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            t = int(rng.integers(200, 401))
            base = rng.integers(0, 256, (1, 120, 160, 3), dtype=np.uint8)
            shift = (np.arange(t)[:, None, None, None] * 2).astype(np.uint8)
            path = os.path.join(folder, f"person01_walking_d{i:02d}.npy")
            np.save(path, base + shift)
            for k in range(1, links if split == "train" else 1):
                os.symlink(path, os.path.join(folder, f"person01_walking_d{i:02d}_{k}.npy"))


def clips_per_second(data_root, workers, extra, batches, batch_size):
    opt = main.get_opt(["--data_root", data_root, "-j", str(workers), "-b", str(batch_size),
                        "--device", "cpu"] + extra)
    train_loader, _ = build_loaders(opt)
    it = iter(train_loader)
    next(it)  # start-up (worker processes) not counted
    n, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(train_loader)
            batch = next(it)
        n += batch["observed_data"].shape[0]
    return n / (time.perf_counter() - start)


def main_(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = p.parse_args(argv)
    modes = {"regular_interp": [], "irregular_interp": ["--irregular"]}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_videos(tmp, args.clips)
        for mode, extra in modes.items():
            for w in args.workers:
                results[f"{mode}_workers{w}"] = round(
                    clips_per_second(tmp, w, extra, args.batches, args.batch_size), 1)
    out = {"unit": "clips/s", "input_size": 128, "batch_size": args.batch_size,
           "cpu_count": os.cpu_count(), "results": results}
    print(json.dumps(out))
    print("data loading (clips/s): " + ", ".join(f"{k} {v}" for k, v in results.items()))
    return out


if __name__ == "__main__":
    main_()
