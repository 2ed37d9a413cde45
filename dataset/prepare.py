"""python -m dataset.prepare NAME SRC DST (docs/data.md): a public release or any videos to the
layout the loaders read, DST/{train,test}/*.npy (+ .times.npy), and DST/prepare_report.json."""
import argparse
import json
import os
import sys
from collections import Counter

from dataloader.errors import DataError
from dataloader.npyfiles import TIMES_SUFFIX
from utils.atomic import atomic_save_npy, atomic_write_json

from . import sources
from .sources import PrepareError
from .splits import SPLIT_BY, empty_test

REPORT = "prepare_report.json"
SHOWN = 20  # sources and skips printed; the report holds them all
SHOWN_CLIPS = 5  # refused clips named per source
SHAPES_OPTIONS = ("n_train", "n_test", "n_frames", "size", "seed")  # of the shapes data set


def run_items(items, dst, desc, progress=True):
    """Convert every item; return a summary dict (written, present, skipped, sources)."""
    from tqdm import tqdm
    count, skipped, entries = {"written": Counter(), "present": Counter()}, [], []
    for item in tqdm(items, desc=desc, unit="video", disable=not progress):
        names = item.names
        if names is not None and all(os.path.exists(_out(dst, item.split, n)) for n in names):
            count["present"][item.split] += len(names)
            entries.append({"source": item.source, "status": "present", "split": item.split,
                            "present": names})
            continue
        try:
            outputs, found = item.load()
        except sources.SkipItem as exc:
            skipped.append((item.source, str(exc)))
            entries.append({"source": item.source, "status": "skipped", "reason": str(exc), **exc.report})
            continue
        entry = {"source": item.source, "status": "converted", **found, "written": {}, "present": {}}
        for out in outputs:
            path = _out(dst, out.split, out.name)
            done = "present" if os.path.exists(path) else "written"
            if done == "written":
                if out.times is not None:  # first, so that a clip file present has its times
                    atomic_save_npy(path[:-len(".npy")] + TIMES_SUFFIX, out.times)
                atomic_save_npy(path, out.array)
            count[done][out.split] += 1
            entry[done].setdefault(out.split, []).append(out.name)
        entries.append(entry)
    return {**count, "skipped": skipped, "sources": entries}


def _out(dst, split, name):
    return os.path.join(dst, split, name + ".npy")


def _frames_line(e):
    """One source's frames, for the printed summary."""
    if "decoded" not in e or e.get("decoder") == "npy":
        return None
    if e["decoder"] == "images":
        line = f"{e['decoded']} images"
    elif e.get("declared") is None:
        line = f"{e['decoder']}: {e['decoded']} frames decoded (the container declares no count)"
    else:
        line = f"{e['decoder']}: {e['declared']} frames declared, {e['decoded']} decoded"
    if e.get("rate"):
        line += f", {e['on_grid']} on the {e['rate']:g} fps grid"
    if e.get("gap"):
        line += f"; GAP: {e['missing']} missing ({100 * e['missing'] / max(e['on_grid'], 1):.1f}%)"
    elif e.get("missing"):
        line += f"; {e['missing']} missing"
    if e.get("duplicates"):
        line += f"; {e['duplicates']} duplicate timestamps"
    if e.get("held"):
        line += f"; --hold_frames repeated {e['held']}"
    if e.get("refused"):
        lacking = e.get("lacking", {})
        lacks = [f"{k}: {n}" for k, n in list(lacking.items())[:SHOWN_CLIPS]]
        more = f", {len(lacking) - SHOWN_CLIPS} more" if len(lacking) > SHOWN_CLIPS else ""
        line += (f"; {e['refused']} of {e['clips']} clips refused, frames lacking: "
                 f"{', '.join(lacks)}{more} (--hold_frames repeats held frames to keep them)")
    if e.get("variable_durations"):
        line += "; frames last unequally (GIF durations, kept in the times file)"
    if e.get("fallback"):
        line += f"; {e['fallback']}"
    return line


def report(name, dst, summary, test_ratio=None):
    """Print the summary; refuse a run with nothing usable or no test split (but --test_ratio 0)."""
    w, p, s = summary["written"], summary["present"], summary["skipped"]
    print(f"prepare {name}: wrote {sum(w.values())} (train {w['train']}, test {w['test']}), "
          f"already present {sum(p.values())} (train {p['train']}, test {p['test']}), skipped {len(s)}")
    entries = [e for e in summary.get("sources", []) if _frames_line(e)]
    flagged = [e for e in entries if any(e.get(k) for k in ("gap", "refused", "fallback", "duplicates",
                                                            "variable_durations"))]
    shown = entries if len(entries) <= SHOWN else flagged[:SHOWN]
    for e in shown:
        print(f"  {e['source']}: {_frames_line(e)}")
    gaps = sum(1 for e in entries if e.get("gap"))
    if len(entries) > len(shown) or gaps:
        print(f"  {len(entries)} sources decoded, {gaps} with gaps (> 1% of the grid's frames missing)"
              + (f"; every source in {os.path.join(dst, REPORT)}" if len(entries) > len(shown) else ""))
    for source, reason in s[:SHOWN]:
        print(f"  skipped {source}: {reason}")
    if len(s) > SHOWN:
        print(f"  ... and {len(s) - SHOWN} more")
    total = Counter(w) + Counter(p)
    if not total:
        raise PrepareError(f"nothing could be converted ({len(s)} sources skipped)")
    if not total["train"]:
        print("warning: the train split is empty")
    if not total["test"] and test_ratio == 0:
        print("the test split is empty, as --test_ratio 0 asks")
    elif not total["test"]:
        why = f"nothing in {os.path.join(dst, 'test')}: see the sources above"
        raise PrepareError(empty_test(why) if name in ("custom", "mgif") else
                           empty_test(why, "the source's test videos were skipped or are missing"))
    print(f"output: {os.path.join(dst, 'train')} and {os.path.join(dst, 'test')}")
    print(f"use it with: {usage_hint(name, dst)}")


def _read_report(dst, options):
    """An earlier run's report or None; a warning when its options differ (its files are kept)."""
    path = os.path.join(dst, REPORT)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            previous = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"warning: {path} cannot be read ({exc}); it is replaced")
        return None
    old = previous.get("options", {})
    diffs = [f"--{k} {old.get(k)!r} -> {v!r}" for k, v in options.items() if old.get(k) != v]
    if diffs:
        print(f"warning: {dst} was prepared with other options ({', '.join(diffs)}); the files "
              "already there are kept as they are (delete the folder to redo them)")
    return previous


def write_report(dst, name, options, summary, split, previous=None):
    """DST/prepare_report.json: per source what was decoded and written, and the split."""
    before = {e["source"]: e for e in (previous or {}).get("sources", []) if "source" in e}
    entries = [{**before[e["source"]], "status": "present", "present": e["present"]}
               if e["status"] == "present" and e["source"] in before else e for e in summary["sources"]]
    atomic_write_json(os.path.join(dst, REPORT), {
        "preparation": name, "options": options,  # then the written and present files per split:
        **{k: {s: summary[k][s] for s in ("train", "test")} for k in ("written", "present")},
        "skipped": len(summary["skipped"]),
        "split": split if split is not None else (previous or {}).get("split"),
        "sources": entries})


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

    def add(name, help_, size=None, ratio=None, clips=False, hold=False):
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
                           help="test share of videos (of clips with --split_by) if there is no split")
            q.add_argument("--seed", type=int, default=0, help="seed of that split")
        if clips:
            q.add_argument("--clip_len", type=int, default=0,
                           help="cut videos into clips of this many frames (0: whole videos)")
            q.add_argument("--split_by", choices=SPLIT_BY, default=None,
                           help="no train/, test/ folders: whole videos to test (video, the default) "
                                "or the last clips of every video (clip), see docs/data.md")
        if hold:
            q.add_argument("--hold_frames", action="store_true", help="repeat held frames (else clips "
                           "that skip frames of the grid are refused)")
        return q

    q = add("kth", "KTH action zips (or unzipped .avi folders, or a {train,test}/*.npy layout)",
            hold=True)
    q.add_argument("--split", choices=("default", "svg"), default="default",
                   help="persons 1-16 train / 17-25 test (default, PredRNN), or 1-20 / 21-25 (svg)")
    q = add("penn", "Penn Action: frames/<id>/*.jpg and labels/<id>.mat", size=128, ratio=0.46)
    q.add_argument("--split_file", default=None,
                   help="text file of '<id> train|test' lines (else the labels' train flag)")
    add("mgif", "Moving GIF: .gif files (train/ and test/ subfolders kept)", size=0, ratio=0.1,
        clips=True)
    add("hurricane", "arrays (N, T, H, W, C) in .npy files", ratio=0.1)
    add("custom", "any folder of videos (avi, mp4, gif, ...) or frame folders", size=128, ratio=0.1,
        clips=True, hold=True)
    q = add("shapes", "generate the built-in moving-shapes data set")
    for k in SHAPES_OPTIONS:
        q.add_argument(f"--{k}", type=int, default=None)
    return p


def prepare(args):
    """Run one preparation from parsed arguments; returns the summary."""
    if args.name == "shapes":
        from dataloader import shapes
        kw = {k: getattr(args, k) for k in SHAPES_OPTIONS if getattr(args, k) is not None}
        meta = shapes.generate_shapes_dataset(args.dst, progress=not args.quiet, **kw)
        print(f"prepare shapes: {len(meta['train'])} train and {len(meta['test'])} test clips in {args.dst}")
        print(f"use it with: {usage_hint('shapes', args.dst)}")
        return None
    if getattr(args, "clip_len", 0) < 0:
        raise PrepareError(f"--clip_len {args.clip_len}: give a number of frames, or 0 for whole videos")
    split, src = None, os.path.abspath(args.src)
    if not os.path.exists(src):
        raise PrepareError(f"source {args.src} does not exist")
    layout = [] if args.name == "hurricane" else sources.npy_layout_items(src)  # the authors' archives
    if layout and args.name == "kth" and os.path.abspath(args.dst) == src:
        print(f"{src} already holds train/ and test/ .npy clips: nothing to do")
        return None
    if layout:
        items = layout
    elif args.name == "kth":
        items = sources.kth_items(src, args.split, args.hold_frames)
    elif args.name == "penn":
        items = sources.penn_items(src, args.size, args.split_file, args.test_ratio, args.seed)
    elif args.name == "hurricane":
        items = sources.hurricane_items(src, args.test_ratio, args.seed)
    else:  # mgif, custom
        items, split = sources.media_items(src, args.name == "mgif", args.size, args.clip_len,
                                           args.test_ratio, args.seed, args.split_by,
                                           getattr(args, "hold_frames", False))
    options = {k: v for k, v in sorted(vars(args).items()) if k not in ("quiet", "dst")}
    previous = _read_report(args.dst, options)
    summary = run_items(items, args.dst, args.name, progress=not args.quiet)
    write_report(args.dst, args.name, options, summary, split, previous)
    report(args.name, args.dst, summary, test_ratio=getattr(args, "test_ratio", None))
    return summary


def main(argv=None):
    try:
        prepare(_parser().parse_args(argv))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
