"""Convert the public releases (or any videos) to the layout the loaders read.

    python -m dataset.prepare kth  KTH_ZIPS_OR_FOLDER  dataset/kth_action  [--split svg]
    python -m dataset.prepare penn Penn_Action         dataset/penn_action [--size 128]
    python -m dataset.prepare mgif moving-gif          dataset/moving-gif
    python -m dataset.prepare hurricane ARRAYS.npy     dataset/Hurricane
    python -m dataset.prepare custom MY_VIDEOS         dataset/custom      [--size 128 --clip_len 0]
    python -m dataset.prepare shapes                   dataset/shapes

Output: DST/{train,test}/<name>.npy, one (T, H, W, 3) uint8 array per video (hurricane: the
float sequences as given). Each file is written atomically; files already present are kept,
so an interrupted run finishes when started again.
"""
import argparse
import os
import sys
from collections import Counter

from dataloader.errors import DataError
from utils.atomic import atomic_save_npy

from . import sources
from .sources import PrepareError


def run_items(items, dst, desc, progress=True):
    """Convert every item; return a summary dict (written, present, skipped)."""
    from tqdm import tqdm
    written, present, skipped = Counter(), Counter(), []
    for item in tqdm(items, desc=desc, unit="video", disable=not progress):
        names = item.names
        if names is not None and all(os.path.exists(_out(dst, item.split, n)) for n in names):
            present[item.split] += len(names)
            continue
        try:
            outputs = item.load()
        except sources.SkipItem as exc:
            skipped.append((item.source, str(exc)))
            continue
        for name, array in outputs:
            path = _out(dst, item.split, name)
            if os.path.exists(path):
                present[item.split] += 1
                continue
            atomic_save_npy(path, array)
            written[item.split] += 1
    return {"written": written, "present": present, "skipped": skipped}


def _out(dst, split, name):
    return os.path.join(dst, split, name + ".npy")


def report(name, dst, summary, out=None):
    """Print what was written and skipped; refuse a run that produced nothing usable."""
    out = out or sys.stdout
    w, p, s = summary["written"], summary["present"], summary["skipped"]
    print(f"prepare {name}: wrote {sum(w.values())} (train {w['train']}, test {w['test']}), "
          f"already present {sum(p.values())} (train {p['train']}, test {p['test']}), "
          f"skipped {len(s)}", file=out)
    for source, reason in s[:20]:
        print(f"  skipped {source}: {reason}", file=out)
    if len(s) > 20:
        print(f"  ... and {len(s) - 20} more", file=out)
    total = Counter(w) + Counter(p)
    if not total:
        raise PrepareError(f"nothing could be converted ({len(s)} sources skipped)")
    for split in ("train", "test"):
        if not total[split]:
            print(f"warning: the {split} split is empty", file=out)
    print(f"output: {os.path.join(dst, 'train')} and {os.path.join(dst, 'test')}", file=out)
    print(f"use it with: {usage_hint(name, dst)}", file=out)


def usage_hint(name, dst):
    """The main.py options that read the prepared folder."""
    from dataloader.datasets import DATASET_ROOTS
    parent, base = os.path.dirname(os.path.abspath(dst)), os.path.basename(os.path.abspath(dst))
    if name == "custom":
        return f"python main.py --dataset custom --data_root {parent} --custom_root {base}"
    if base != DATASET_ROOTS[name]:
        return (f"python main.py --dataset {name} --data_root DIR, with this folder moved to "
                f"DIR/{DATASET_ROOTS[name]}")
    return f"python main.py --dataset {name} --data_root {parent}"


def _parser():
    p = argparse.ArgumentParser(prog="python -m dataset.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="name", required=True)

    def add(name, help_, size=None, ratio=None):
        q = sub.add_parser(name, help=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name != "shapes":
            q.add_argument("src", help="source file or folder")
        q.add_argument("dst", help="output folder (gets train/ and test/)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")
        if size is not None:
            q.add_argument("--size", type=int, default=size,
                           help="frame size in pixels (0: keep the source's)")
        if ratio is not None:
            q.add_argument("--test_ratio", type=float, default=ratio,
                           help="share of test videos when the source has no split")
            q.add_argument("--seed", type=int, default=0, help="seed of that split")
        return q

    q = add("kth", "KTH action zips (or unzipped .avi folders, or a {train,test}/*.npy layout)")
    q.add_argument("--split", choices=("default", "svg"), default="default",
                   help="persons 1-16 train / 17-25 test (default, PredRNN), or 1-20 / 21-25 (svg)")
    q = add("penn", "Penn Action: frames/<id>/*.jpg and labels/<id>.mat", size=128, ratio=0.46)
    q.add_argument("--split_file", default=None,
                   help="text file of '<id> train|test' lines (else the labels' train flag)")
    add("mgif", "Moving GIF: .gif files (train/ and test/ subfolders kept)", size=0, ratio=0.1)
    add("hurricane", "arrays (N, T, H, W, C) in .npy files", ratio=0.1)
    q = add("custom", "any folder of videos (avi, mp4, gif, ...) or frame folders", size=128, ratio=0.1)
    q.add_argument("--clip_len", type=int, default=0,
                   help="cut videos into clips of this many frames (0: whole videos)")
    q = add("shapes", "generate the built-in moving-shapes data set")
    q.add_argument("--n_train", type=int, default=None)
    q.add_argument("--n_test", type=int, default=None)
    q.add_argument("--n_frames", type=int, default=None)
    q.add_argument("--size", type=int, default=None)
    q.add_argument("--seed", type=int, default=None)
    return p


def prepare(args):
    """Run one preparation from parsed arguments; returns the summary."""
    if args.name == "shapes":
        from dataloader import shapes
        kw = {k: getattr(args, k) for k in ("n_train", "n_test", "n_frames", "size", "seed")
              if getattr(args, k) is not None}
        meta = shapes.generate_shapes_dataset(args.dst, progress=not args.quiet, **kw)
        print(f"prepare shapes: {len(meta['train'])} train and {len(meta['test'])} test clips in {args.dst}")
        print(f"use it with: {usage_hint('shapes', args.dst)}")
        return None
    src = os.path.abspath(args.src)
    if not os.path.exists(src):
        raise PrepareError(f"source {args.src} does not exist")
    if args.name == "kth":
        if sources.has_npy_layout(src) and os.path.abspath(args.dst) == src:
            print(f"{src} already holds train/ and test/ .npy clips: nothing to do")
            return None
        items = sources.kth_items(src, args.split)
    elif args.name == "penn":
        items = sources.penn_items(src, args.size, args.split_file, args.test_ratio, args.seed)
    elif args.name == "mgif":
        items = sources.mgif_items(src, args.size, args.test_ratio, args.seed)
    elif args.name == "hurricane":
        items = sources.hurricane_items(src, args.test_ratio, args.seed)
    else:
        items = sources.custom_items(src, args.size, args.clip_len, args.test_ratio, args.seed)
    summary = run_items(items, args.dst, args.name, progress=not args.quiet)
    report(args.name, args.dst, summary)
    return summary


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        prepare(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
