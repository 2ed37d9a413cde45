"""What to convert: the items (videos) of each public release, their split and their reader."""
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from functools import partial
from typing import Callable, List, Optional

import numpy as np

from dataloader.errors import DataError
from dataloader.npyfiles import TIMES_SUFFIX, list_clips
from dataloader.video import (GIF_EXTS, VIDEO_EXTS, Decoded, SkipItem, decode_any, decode_frame_folder,
                              decode_video, image_files, probe_any)

from .resize import resize_shorter_antialiased, square
from .splits import clip_test_count, describe, empty_test, plan, seeded_split
from .timing import check, cut_clips, frame_sequence, has_grid, usable

KTH_NAME = re.compile(r"person(\d+)_([a-z]+)_d(\d+)", re.IGNORECASE)
KTH_TRAIN_PERSONS = {"default": 16, "svg": 20}  # persons 1..N train, N+1..25 test


class PrepareError(DataError):
    """The source is not what the chosen preparation expects."""


@dataclass
class Output:
    """One file to write: DST/<split>/<name>.npy, and <name>.times.npy when times are known."""
    split: str
    name: str
    array: np.ndarray               # (T, H, W, 3) uint8 (hurricane: float32 (T, H, W, C))
    times: Optional[np.ndarray] = None  # (T,) float64 seconds


Loaded = tuple[list[Output], dict]  # the outputs; the report: decoder, frames, gaps, ...


@dataclass
class Item:
    """One source video. load() -> (outputs, report); names: its outputs (all in `split`) if known
    in advance."""
    split: str
    source: str
    names: Optional[List[str]]
    load: Callable[[], Loaded]


def _skip(split, source, reason):
    def load():
        raise SkipItem(reason)
    return Item(split, source, None, load)


def _safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"


def one_split(split):
    """split_of for a video whose clips all go to `split`."""
    return lambda n: [split] * n


def video_outputs(decoded: Decoded, name, prep, clip_len, hold, split_of, note=None) -> Loaded:
    """The clips of a decoded video and its report (starting with `note`); clips that skip places of
    the frame grid are refused. prep: frames (T, H, W, 3) -> resized; split_of(n) -> their splits."""
    tl = decoded.timeline
    report = {**(note or {}), "decoder": tl.decoder, **check(tl)}
    if tl.fallback:
        report["fallback"] = tl.fallback
    index = frame_sequence(tl, hold)[0]
    if hold:
        if has_grid(tl):
            report["held"] = int(len(index) - len(np.unique(index)))  # repeated frames added
            report["dropped_duplicates"] = int(tl.decoded - len(np.unique(index)))
        else:
            report["hold_frames"] = "not applied: no frame grid (GIF or frame folder)"
    clips = cut_clips(tl, clip_len, hold)
    if not clips:
        raise SkipItem(f"{len(index)} frames, shorter than --clip_len {clip_len}", report)
    keep = usable(clips, hold)
    clip_name = (lambda c: f"{name}_{c.k:04d}") if clip_len else (lambda c: name)
    report.update(clips=len(clips), refused=len(clips) - len(keep))
    if len(keep) < len(clips):
        report["lacking"] = {clip_name(c): c.missing for c in clips if c.missing}  # per refused clip
        what = f"{len(clips) - len(keep)} of {len(clips)} clips skip" if clip_len else "the video skips"
        report["refused_reason"] = (
            f"{what} frames of the {report['rate']:g} fps grid ({report['missing']} of {report['on_grid']} "
            "frames missing: held frames?); they are not written, since their time would be "
            "compressed: --hold_frames repeats held frames instead")
        if not keep:
            raise SkipItem(report["refused_reason"], report)
    frames = prep(decoded.frames)
    outputs = [Output(split, clip_name(c), frames[c.index], c.times)
               for c, split in zip(keep, split_of(len(keep)))]
    return outputs, report


# --- an existing {train,test}/*.npy layout (e.g. the Vid-ODE authors' preprocessed archives) ---

_NPY_ERRORS = (OSError, ValueError, EOFError)  # what np.load raises on a file that is no array


def _copied_npy(split, path, stem):
    try:
        arr = np.load(path)
    except _NPY_ERRORS as exc:
        raise SkipItem(f"not a readable .npy file ({exc})") from None
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise SkipItem(f"expected uint8 frames (T, H, W, 3), got {arr.dtype} {arr.shape}")
    times_path, times = path[:-len(".npy")] + TIMES_SUFFIX, None
    if os.path.exists(times_path):
        try:
            times = np.load(times_path).astype(np.float64)
        except _NPY_ERRORS as exc:
            raise SkipItem(f"{os.path.basename(times_path)}: not a readable .npy file ({exc})") from None
        if times.shape != (len(arr),):
            raise SkipItem(f"{os.path.basename(times_path)}: shape {times.shape}, expected "
                           f"({len(arr)},) frame times")
    report = {"decoder": "npy", "decoded": len(arr), "times": times is not None}
    return [Output(split, stem, arr, times)], report


def npy_layout_items(src):
    clips = [(split, p, os.path.basename(p)[:-len(".npy")]) for split in ("train", "test")
             for p in list_clips(os.path.join(src, split))]  # none where the folder is missing
    return [Item(split, p, [stem], partial(_copied_npy, split, p, stem)) for split, p, stem in clips]


def _kth_item(name, source, decode, scheme, hold):
    m = KTH_NAME.search(name)
    if not m:
        return _skip("train", source, "name does not follow personNN_action_dN")
    person = int(m.group(1))
    if not 1 <= person <= 25:
        return _skip("train", source, f"person {person} is not one of KTH's 25")
    split = "train" if person <= KTH_TRAIN_PERSONS[scheme] else "test"
    stem = f"person{person:02d}_{m.group(2).lower()}_d{m.group(3)}"
    return Item(split, source, [stem],
                lambda: video_outputs(decode(), stem, lambda a: a, 0, hold, one_split(split)))


def _decode_zip_member(zpath, member):
    with tempfile.TemporaryDirectory(prefix="kth-", ignore_cleanup_errors=True) as tmp:
        out = os.path.join(tmp, "video.avi")
        with zipfile.ZipFile(zpath) as zf, zf.open(member) as f, open(out, "wb") as g:
            shutil.copyfileobj(f, g)
        return decode_video(out)


def kth_items(src, scheme="default", hold=False):
    """Per-action zips of .avi, or folders of .avi."""
    paths = [src] if os.path.isfile(src) else [
        os.path.join(d, n) for d, _, files in sorted(os.walk(src)) for n in sorted(files)]
    found = [(p, partial(decode_video, p)) for p in paths if p.lower().endswith(".avi")]
    for z in (p for p in paths if p.lower().endswith(".zip")):
        try:
            with zipfile.ZipFile(z) as zf:
                members = [m for m in zf.namelist() if m.lower().endswith(".avi")]
        except zipfile.BadZipFile:
            raise PrepareError(f"{z}: not a readable zip archive (a partial download?)") from None
        found += [(f"{z}:{m}", partial(_decode_zip_member, z, m)) for m in members]
    names = {}  # the first source of each video name
    for source, decode in found:
        names.setdefault(os.path.basename(source), (source, decode))
    items = [_kth_item(name, source, decode, scheme, hold) for name, (source, decode) in names.items()]
    if not items:
        raise PrepareError(f"{src}: no KTH videos found. Expected the per-action zip files "
                           "(walking.zip, jogging.zip, ...) or folders of personNN_action_dN_uncomp.avi, "
                           "or a train/ and test/ layout of .npy clips")
    return items


def _penn_label_splits(label_dir, videos):
    """({video: split} from labels/<id>.mat's train flag, {video: why it has none})."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError
    splits, missing = {}, {}
    for v in videos:
        path = os.path.join(label_dir, v + ".mat")
        if not os.path.exists(path):
            missing[v] = "no label file"
            continue
        try:
            splits[v] = "train" if int(np.ravel(loadmat(path)["train"])[0]) == 1 else "test"
            continue
        except KeyError:
            reason = "it has no 'train' field"
        except (MatReadError, OSError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        missing[v] = f"{path}: {reason}"
        print(f"penn: cannot read the train flag of {path} ({reason})")
    return splits, missing


def _read_split_file(path):
    splits = {}
    with open(path) as f:
        for k, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2 or parts[1] not in ("train", "test"):
                raise PrepareError(f"{path}:{k}: expected '<video id> train|test', got {line.strip()!r}")
            splits[parts[0]] = parts[1]
    return splits


def penn_items(src, size, split_file=None, test_ratio=0.46, seed=0):
    """frames/<id>/*.jpg; split by --split_file, the labels' train flag, or seeded."""
    frames = os.path.join(src, "frames") if os.path.isdir(os.path.join(src, "frames")) else src
    videos = sorted(v for v in os.listdir(frames)
                    if os.path.isdir(os.path.join(frames, v)) and image_files(os.path.join(frames, v)))
    if not videos:
        raise PrepareError(f"{src}: no frame folders; expected Penn_Action/frames/0001/000001.jpg, ... "
                           "(and Penn_Action/labels/0001.mat for the official split)")
    if split_file:
        splits = _read_split_file(split_file)
        why = {v: "--split_file" for v in splits}
    else:
        label_dir = os.path.join(src, "labels")
        splits, missing = (_penn_label_splits(label_dir, videos) if os.path.isdir(label_dir)
                           else ({}, {v: "no labels folder" for v in videos}))
        why = {v: "label" for v in splits}
        rest = [v for v in videos if v not in splits]
        if rest:
            print(f"penn: no readable train flag for {len(rest)} of {len(videos)} videos: "
                  f"seeded split of those (--test_ratio {test_ratio}, --seed {seed})")
            splits.update(seeded_split(rest, test_ratio, seed))
            why.update({v: f"seeded ({missing[v]})" for v in rest})
    return [_penn_item(os.path.join(frames, v), _safe(v), splits[v], why[v], size) if v in splits
            else _skip("train", os.path.join(frames, v), "not listed in --split_file")
            for v in videos]


def _penn_item(folder, name, split, why, size):
    prep = partial(resize_shorter_antialiased, size=size)
    return Item(split, folder, [name], lambda: video_outputs(
        decode_frame_folder(folder), name, prep, 0, False, one_split(split), {"split_from": why}))


# --- Moving GIF, custom footage ---

def _media(src, gifs_only):
    """Video files, GIFs and frame folders (gifs_only: GIFs) under src, recursive -> sorted paths."""
    exts = GIF_EXTS if gifs_only else VIDEO_EXTS + GIF_EXTS
    found = []
    for d, dirs, files in os.walk(src):
        dirs.sort()
        if not gifs_only and d != src and image_files(d):
            found.append(d)
        found += [os.path.join(d, n) for n in sorted(files) if n.lower().endswith(exts)]
    return found


def _names(base, gifs_only):
    """{output name: path} of the media under base; a name taken twice is refused."""
    names = {}
    for path in _media(base, gifs_only):
        rel = os.path.relpath(path, base)
        name = _safe((rel if os.path.isdir(path) else os.path.splitext(rel)[0]).replace(os.sep, "__"))
        if name in names:
            raise PrepareError(f"{names[name]} and {path} would both be written as {name}: rename one")
        names[name] = path
    return names


def media_items(src, gifs_only, size, clip_len, test_ratio, seed, split_by, hold):
    """(items, split record or None) of the videos, GIFs and frame folders under src (gifs_only:
    Moving GIF's .gif files, resized, not squared); train/ and test/ subfolders kept."""
    if os.path.isfile(src):
        raise PrepareError(f"{src}: give a folder of videos (avi, mp4, gif, ...) or of frame folders")
    prep = partial(resize_shorter_antialiased if gifs_only else square, size=size)
    folders = {s: _names(os.path.join(src, s), gifs_only) for s in ("train", "test")
               if os.path.isdir(os.path.join(src, s))}
    names = {} if folders else _names(src, gifs_only)
    if not names and not any(folders.values()):
        exts = ", ".join(VIDEO_EXTS + GIF_EXTS)
        raise PrepareError(f"{src}: no .gif files (expected moving-gif/train/*.gif and moving-gif/"
                           "test/*.gif)" if gifs_only else
                           f"{src}: no videos ({exts}) and no folders of frames (jpg, png, bmp)")
    if folders:
        if split_by:
            print(f"{src} has train/ and test/ folders: they are kept, --split_by {split_by} "
                  "does not apply")
        return [_media_item(split, p, n, prep, clip_len, hold, one_split(split))
                for split, found in folders.items() for n, p in found.items()], None
    by = split_by or "video"
    if by == "clip" and not clip_len:
        raise PrepareError("--split_by clip puts the last clips of every video in test: give "
                           "--clip_len N to cut the videos into clips (or use --split_by video)")
    videos = []  # the split is chosen over the clips that will be written: refused ones left out
    for n, p in sorted(names.items()):
        try:
            tl = probe_any(p)
        except SkipItem:  # reported when the item is converted
            videos.append((n, 0, 0))
            continue
        clips = usable(cut_clips(tl, clip_len, hold), hold)
        videos.append((n, len(frame_sequence(tl, hold)[0]), len(clips)))
    test_clips = plan(videos, by, test_ratio, seed)
    record = describe(videos, test_clips, by, test_ratio, seed, clip_len)
    if test_ratio > 0 and not sum(test_clips.values()) and any(c for _, _, c in videos):
        raise PrepareError(empty_test(f"videos with clips to write: {sum(1 for *_, c in videos if c)} "
                                      f"of {len(videos)}"))

    def last_to_test(n_clips):  # --split_by clip
        k = clip_test_count(n_clips, test_ratio)
        return ["train"] * (n_clips - k) + ["test"] * k
    items = []
    for n, _, _ in videos:
        split = "train+test" if by == "clip" else "test" if test_clips[n] else "train"
        split_of = last_to_test if by == "clip" else one_split(split)
        items.append(_media_item(split, names[n], n, prep, clip_len, hold, split_of))
    return items, record


def _media_item(split, path, name, prep, clip_len, hold, split_of):
    return Item(split, path, None if clip_len else [name],
                lambda: video_outputs(decode_any(path), name, prep, clip_len, hold, split_of))


def _split_token(rel):
    """'train' | 'test' | None: a word of the file name (x_test_2005.npy), else a folder name."""
    parts = rel.lower().split(os.sep)
    words = set(re.split(r"[^a-z]+", os.path.splitext(parts[-1])[0])) & {"train", "test"}
    if len(words) == 2:
        raise PrepareError(f"{rel}: the file name says both train and test; rename it")
    if words:
        return words.pop()
    return next((d for d in reversed(parts[:-1]) if d in ("train", "test")), None)


def hurricane_items(src, test_ratio=0.1, seed=0):
    """Arrays (N, T, H, W, C) or (T, H, W, C) -> one float32 item per sequence."""
    files = [src] if os.path.isfile(src) else [
        os.path.join(d, n) for d, _, fs in sorted(os.walk(src)) for n in sorted(fs)
        if n.endswith(".npy") and not n.endswith(TIMES_SUFFIX)]
    if not files:
        raise PrepareError(f"{src}: no .npy arrays of shape (N, T, H, W, C)")
    seqs = []
    for path in files:
        try:
            arr = np.load(path, mmap_mode="r")
        except _NPY_ERRORS as exc:
            raise PrepareError(f"{path}: not a readable .npy array ({exc})") from None
        if arr.ndim == 4:
            arr = arr[None]
        if arr.ndim != 5 or arr.shape[-1] < 3 or arr.dtype.kind not in "fiu":
            raise PrepareError(f"{path}: {arr.dtype} {arr.shape}; expected numbers of shape "
                               "(N, T, H, W, C) with C >= 3")
        rel = os.path.basename(path) if os.path.isfile(src) else os.path.relpath(path, src)
        stem = _safe(os.path.splitext(rel)[0].replace(os.sep, "__"))
        seqs += [(path, i, f"{stem}_{i:05d}", _split_token(rel)) for i in range(arr.shape[0])]
    rest = [n for _, _, n, split in seqs if split is None]
    if rest:
        if len(rest) < len(seqs):
            print(f"hurricane: {len(rest)} of {len(seqs)} sequences have no train/test in their path: "
                  f"seeded split of those (--test_ratio {test_ratio}, --seed {seed})")
        seeded = seeded_split(rest, test_ratio, seed)
        seqs = [(p, i, n, split or seeded[n]) for p, i, n, split in seqs]
    return [Item(split, f"{p}[{i}]", [n], partial(_hurricane_seq, p, i, n, split))
            for p, i, n, split in seqs]


def _hurricane_seq(path, i, name, split):
    arr = np.asarray(np.load(path, mmap_mode="r")[i], dtype=np.float32)
    return [Output(split, name, arr)], {"decoder": "npy", "decoded": len(arr)}
