"""What to convert: the items (videos) of each public release, their split and their reader."""
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from dataloader.errors import DataError
from dataloader.video import (GIF_EXTS, VIDEO_EXTS, SkipItem, image_files, read_any, read_gif,
                              read_video)

from .resize import resize_shorter_antialiased, square

KTH_NAME = re.compile(r"person(\d+)_([a-z]+)_d(\d+)", re.IGNORECASE)
KTH_TRAIN_PERSONS = {"default": 16, "svg": 20}  # persons 1..N train, N+1..25 test


class PrepareError(DataError):
    """The source is not what the chosen preparation expects."""


@dataclass
class Item:
    """One source video. load() -> [(output name, array)]; names: outputs if known in advance."""
    split: str
    source: str
    names: Optional[List[str]]
    load: Callable[[], list]


def _skip(split, source, reason):
    def load():
        raise SkipItem(reason)
    return Item(split, source, None, load)


def _safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"


def seeded_split(names, test_ratio, seed):
    """{name: 'train' | 'test'}: a seeded random share `test_ratio` goes to test."""
    names = sorted(names)
    n_test = int(round(len(names) * test_ratio))
    if test_ratio > 0 and len(names) >= 2:
        n_test = min(max(n_test, 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    test = {names[i] for i in order[:n_test]}
    return {n: "test" if n in test else "train" for n in names}


# --- an existing {train,test}/*.npy layout (e.g. the Vid-ODE authors' preprocessed archives) ---

def has_npy_layout(src):
    return os.path.isdir(src) and any(
        os.path.isdir(os.path.join(src, s)) and any(n.endswith(".npy") for n in os.listdir(os.path.join(src, s)))
        for s in ("train", "test"))


def _checked_npy(path):
    try:
        arr = np.load(path)
    except Exception as exc:
        raise SkipItem(f"not a readable .npy file ({exc})") from None
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise SkipItem(f"expected uint8 frames (T, H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def npy_layout_items(src):
    items = []
    for split in ("train", "test"):
        folder = os.path.join(src, split)
        if not os.path.isdir(folder):
            continue
        for n in sorted(os.listdir(folder)):
            if n.endswith(".npy"):
                path, stem = os.path.join(folder, n), n[:-4]
                items.append(Item(split, path, [stem], lambda p=path, s=stem: [(s, _checked_npy(p))]))
    return items


# --- KTH ---

def _kth_item(name, source, read, scheme):
    m = KTH_NAME.search(name)
    if not m:
        return _skip("train", source, "name does not follow personNN_action_dN")
    person = int(m.group(1))
    if not 1 <= person <= 25:
        return _skip("train", source, f"person {person} is not one of KTH's 25")
    split = "train" if person <= KTH_TRAIN_PERSONS[scheme] else "test"
    stem = f"person{person:02d}_{m.group(2).lower()}_d{m.group(3)}"
    return Item(split, source, [stem], lambda: [(stem, read())])


def _zip_reader(zpath, member):
    def read():
        tmp = tempfile.mkdtemp(prefix="kth-")
        try:
            out = os.path.join(tmp, "video.avi")
            with zipfile.ZipFile(zpath) as zf, zf.open(member) as f, open(out, "wb") as g:
                shutil.copyfileobj(f, g)
            return read_video(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return read


def kth_items(src, scheme="default"):
    """Per-action zips of .avi, folders of .avi, or an existing npy layout."""
    if has_npy_layout(src):
        return npy_layout_items(src)
    paths = [src] if os.path.isfile(src) else [
        os.path.join(d, n) for d, _, files in sorted(os.walk(src)) for n in sorted(files)]
    avis = [p for p in paths if p.lower().endswith(".avi")]
    zips = [p for p in paths if p.lower().endswith(".zip")]
    items, seen = [], set()
    for path in avis:
        name = os.path.basename(path)
        if name not in seen:
            seen.add(name)
            items.append(_kth_item(name, path, lambda p=path: read_video(p), scheme))
    for z in zips:
        try:
            with zipfile.ZipFile(z) as zf:
                members = [m for m in zf.namelist() if m.lower().endswith(".avi")]
        except zipfile.BadZipFile:
            raise PrepareError(f"{z}: not a readable zip archive (a partial download?)") from None
        for m in members:
            name = os.path.basename(m)
            if name not in seen:
                seen.add(name)
                items.append(_kth_item(name, f"{z}:{m}", _zip_reader(z, m), scheme))
    if not items:
        raise PrepareError(f"{src}: no KTH videos found. Expected the per-action zip files "
                           "(walking.zip, jogging.zip, ...) or folders of personNN_action_dN_uncomp.avi, "
                           "or a train/ and test/ layout of .npy clips")
    return items


# --- Penn Action ---

def _penn_label_splits(label_dir, videos):
    from scipy.io import loadmat
    splits = {}
    for v in videos:
        path = os.path.join(label_dir, v + ".mat")
        if not os.path.exists(path):
            continue
        try:
            flag = int(np.ravel(loadmat(path)["train"])[0])
        except Exception:
            continue
        splits[v] = "train" if flag == 1 else "test"
    return splits


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
    if has_npy_layout(src):
        return npy_layout_items(src)
    frames = os.path.join(src, "frames") if os.path.isdir(os.path.join(src, "frames")) else src
    videos = sorted(v for v in os.listdir(frames)
                    if os.path.isdir(os.path.join(frames, v)) and image_files(os.path.join(frames, v)))
    if not videos:
        raise PrepareError(f"{src}: no frame folders; expected Penn_Action/frames/0001/000001.jpg, ... "
                           "(and Penn_Action/labels/0001.mat for the official split)")
    if split_file:
        splits = _read_split_file(split_file)
    else:
        label_dir = os.path.join(src, "labels")
        splits = _penn_label_splits(label_dir, videos) if os.path.isdir(label_dir) else {}
        rest = [v for v in videos if v not in splits]
        if rest:
            print(f"penn: no readable train flag for {len(rest)} of {len(videos)} videos: "
                  f"seeded split of those (--test_ratio {test_ratio}, --seed {seed})")
            splits.update(seeded_split(rest, test_ratio, seed))
    items = []
    for v in videos:
        folder = os.path.join(frames, v)
        if v not in splits:
            items.append(_skip("train", folder, "not listed in --split_file"))
            continue
        items.append(Item(splits[v], folder, [_safe(v)],
                          lambda f=folder, n=_safe(v): [(n, resize_shorter_antialiased(read_any(f), size))]))
    return items


# --- Moving GIF, custom footage ---

def _media(src, with_videos=True, with_gifs=True, with_folders=True):
    """Video files, GIFs and frame folders under src (recursive) -> sorted paths."""
    found = []
    for d, dirs, files in os.walk(src):
        dirs.sort()
        if with_folders and d != src and image_files(d):
            found.append(d)
        for n in sorted(files):
            low = n.lower()
            if (with_videos and low.endswith(VIDEO_EXTS)) or (with_gifs and low.endswith(GIF_EXTS)):
                found.append(os.path.join(d, n))
    return found


def _name(path, base):
    rel = os.path.relpath(path, base)
    stem = rel if os.path.isdir(path) else os.path.splitext(rel)[0]
    return _safe(stem.replace(os.sep, "__"))


def _split_media(src, find, test_ratio, seed):
    """[(split, path, name)]: train/ and test/ subfolders kept, else a seeded split."""
    if any(os.path.isdir(os.path.join(src, s)) for s in ("train", "test")):
        out = []
        for split in ("train", "test"):
            base = os.path.join(src, split)
            if os.path.isdir(base):
                out += [(split, p, _name(p, base)) for p in find(base)]
        return out
    found = find(src)
    names = {_name(p, src): p for p in found}
    splits = seeded_split(list(names), test_ratio, seed)
    return [(splits[n], p, n) for n, p in sorted(names.items())]


def mgif_items(src, size=0, test_ratio=0.1, seed=0):
    if has_npy_layout(src):
        return npy_layout_items(src)
    media = _split_media(src, lambda d: _media(d, with_videos=False, with_folders=False),
                         test_ratio, seed)
    if not media:
        raise PrepareError(f"{src}: no .gif files (expected moving-gif/train/*.gif and moving-gif/test/*.gif)")
    return [Item(split, p, [n], lambda p=p, n=n: [(n, resize_shorter_antialiased(read_gif(p), size))])
            for split, p, n in media]


def _chunks(name, frames, clip_len):
    if not clip_len:
        return [(name, frames)]
    n = len(frames) // clip_len
    if not n:
        raise SkipItem(f"{len(frames)} frames, shorter than --clip_len {clip_len}")
    return [(f"{name}_{k:04d}", frames[k * clip_len:(k + 1) * clip_len]) for k in range(n)]


def custom_items(src, size=128, clip_len=0, test_ratio=0.1, seed=0):
    if has_npy_layout(src):
        return npy_layout_items(src)
    if os.path.isfile(src):
        raise PrepareError(f"{src}: give a folder of videos (avi, mp4, gif, ...) or of frame folders")
    media = _split_media(src, _media, test_ratio, seed)
    if not media:
        raise PrepareError(f"{src}: no videos ({', '.join(VIDEO_EXTS + GIF_EXTS)}) "
                           "and no folders of frames (jpg, png, bmp)")
    return [Item(split, p, None if clip_len else [n],
                 lambda p=p, n=n: _chunks(n, square(read_any(p), size), clip_len))
            for split, p, n in media]


# --- Hurricane ---

def _split_token(path):
    low = path.lower()
    return "test" if "test" in low else "train" if "train" in low else None


def hurricane_items(src, test_ratio=0.1, seed=0):
    """Arrays (N, T, H, W, C) (or one (T, H, W, C)) -> one float32 file per sequence."""
    files = [src] if os.path.isfile(src) else [
        os.path.join(d, n) for d, _, fs in sorted(os.walk(src)) for n in sorted(fs) if n.endswith(".npy")]
    if not files:
        raise PrepareError(f"{src}: no .npy arrays of shape (N, T, H, W, C)")
    seqs = []
    for path in files:
        try:
            arr = np.load(path, mmap_mode="r")
        except Exception as exc:
            raise PrepareError(f"{path}: not a readable .npy array ({exc})") from None
        if arr.ndim == 4:
            arr = arr[None]
        if arr.ndim != 5 or arr.shape[-1] < 3 or arr.dtype.kind not in "fiu":
            raise PrepareError(f"{path}: {arr.dtype} {arr.shape}; expected numbers of shape "
                               "(N, T, H, W, C) with C >= 3")
        rel = os.path.basename(path) if os.path.isfile(src) else os.path.relpath(path, src)
        stem = _safe(os.path.splitext(rel)[0].replace(os.sep, "__"))
        seqs += [(path, i, f"{stem}_{i:05d}", _split_token(rel)) for i in range(arr.shape[0])]
    if all(s[3] is None for s in seqs):
        splits = seeded_split([s[2] for s in seqs], test_ratio, seed)
        seqs = [(p, i, n, splits[n]) for p, i, n, _ in seqs]
    return [Item(split or "train", f"{p}[{i}]", [n],
                 lambda p=p, i=i, n=n: [(n, np.asarray(np.load(p, mmap_mode="r")[i], dtype=np.float32))])
            for p, i, n, split in seqs]
