"""python -m dataset.prepare: every source kind, splits, re-runs and bad sources."""
import os
import shutil
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import main  # noqa: E402
from dataloader import DataError, build_loaders  # noqa: E402
from dataset import prepare  # noqa: E402
from dataset.sources import PrepareError  # noqa: E402


def run(*argv):
    return prepare.prepare(prepare._parser().parse_args(list(argv) + ["--quiet"]))


def frames(n, h, w, seed=0):
    """Smooth moving content, RGB uint8 (n, h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(n):
        r = (xx * 255 // max(w - 1, 1) + 9 * t + seed * 40) % 256
        g = (yy * 255 // max(h - 1, 1) + 5 * t) % 256
        out.append(np.stack([r, g, np.full_like(r, 60 + 10 * seed)], -1).astype(np.uint8))
    return np.stack(out)


def make_video(path, n=12, h=120, w=160, fourcc="MJPG", seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (w, h))
    assert writer.isOpened()
    for f in frames(n, h, w, seed):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == n  # the fixture reads back
    return path


def make_gif(path, n=8, h=40, w=48, seed=0):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    imgs = [Image.fromarray(f) for f in frames(n, h, w, seed)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=40, loop=0)
    return path


def make_jpeg_folder(folder, n=6, h=90, w=120, seed=0, ext=".jpg"):
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames(n, h, w, seed)):
        assert cv2.imwrite(os.path.join(folder, f"{i + 1:06d}{ext}"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


def listing(dst):
    """The clip files of each split (their *.times.npy files aside)."""
    return {s: sorted(n for n in os.listdir(os.path.join(dst, s)) if not n.endswith(".times.npy"))
            if os.path.isdir(os.path.join(dst, s)) else [] for s in ("train", "test")}


# --- KTH ---

@pytest.fixture
def kth_src(tmp_path):
    src = tmp_path / "kth_src"
    make_video(src / "walking" / "person01_walking_d1_uncomp.avi", n=12)
    make_video(src / "boxing" / "person17_boxing_d2_uncomp.avi", n=11, seed=1)
    make_video(src / "running" / "person20_running_d1_uncomp.avi", n=10, seed=2)
    make_video(src / "misc" / "readme.avi", n=3)
    tmpzip = make_video(tmp_path / "z" / "person05_handwaving_d3_uncomp.avi", n=12, seed=3)
    with zipfile.ZipFile(src / "handwaving.zip", "w") as zf:
        zf.write(tmpzip, "person05_handwaving_d3_uncomp.avi")
        zf.write(make_video(tmp_path / "z" / "person25_handwaving_d4_uncomp.avi", n=12, seed=4),
                 "person25_handwaving_d4_uncomp.avi")
    return src


def test_kth_zips_and_folders(kth_src, tmp_path, capsys):
    dst = tmp_path / "kth_action"
    summary = run("kth", str(kth_src), str(dst))
    assert listing(dst) == {
        "train": ["person01_walking_d1.npy", "person05_handwaving_d3.npy"],
        "test": ["person17_boxing_d2.npy", "person20_running_d1.npy", "person25_handwaving_d4.npy"]}
    out = capsys.readouterr().out
    assert "wrote 5 (train 2, test 3)" in out and "skipped 1" in out and "readme.avi" in out
    assert f"use it with: python main.py --dataset kth --data_root {tmp_path}" in out
    x = np.load(dst / "train" / "person01_walking_d1.npy")
    assert x.shape == (12, 120, 160, 3) and x.dtype == np.uint8
    # MJPG is lossy: compare with the source frames loosely
    assert np.abs(x.astype(int) - frames(12, 120, 160)).mean() < 6
    assert len(summary["skipped"]) == 1
    # the loader reads the result
    opt = main.get_opt(["--data_root", str(tmp_path), "-b", "1", "-j", "0", "--input_size", "32",
                        "--sample_size", "10"])
    train_loader, test_loader = build_loaders(opt)
    assert next(iter(train_loader))["observed_data"].shape == (1, 5, 3, 32, 32)


def test_kth_svg_split(kth_src, tmp_path):
    dst = tmp_path / "svg"
    run("kth", str(kth_src), str(dst), "--split", "svg")
    assert listing(dst)["test"] == ["person25_handwaving_d4.npy"]
    assert "person20_running_d1.npy" in listing(dst)["train"]


def test_rerun_skips_present_and_finishes_interrupted(kth_src, tmp_path, capsys):
    dst = tmp_path / "kth_action"
    run("kth", str(kth_src), str(dst))
    kept = dst / "test" / "person17_boxing_d2.npy"
    mtime = os.path.getmtime(kept)
    os.remove(dst / "train" / "person01_walking_d1.npy")  # as if interrupted
    capsys.readouterr()
    run("kth", str(kth_src), str(dst))
    out = capsys.readouterr().out
    assert "wrote 1 (train 1, test 0), already present 4" in out
    assert os.path.getmtime(kept) == mtime
    assert not [n for s in ("train", "test") for n in os.listdir(dst / s) if not n.endswith(".npy")]


def test_atomic_write_leaves_nothing_half_written(kth_src, tmp_path, monkeypatch):
    dst = tmp_path / "kth_action"
    calls = {"n": 0}
    real_save = np.save

    def failing_save(f, arr, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # the times file of the second video
            f.write(b"partial")
            raise KeyboardInterrupt
        return real_save(f, arr, *a, **k)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        run("kth", str(kth_src), str(dst))
    names = sorted(n for s in ("train", "test") if (dst / s).is_dir() for n in os.listdir(dst / s))
    # the first video's times and clip, complete; no temp file
    assert len(names) == 2 and names[0].endswith(".npy") and names[1] == names[0][:-4] + ".times.npy"
    for n in names:
        np.load(dst / "test" / n)
    monkeypatch.setattr(np, "save", real_save)
    run("kth", str(kth_src), str(dst))
    assert sum(len(v) for v in listing(dst).values()) == 5


def test_kth_npy_layout_accepted(tmp_path):
    src = tmp_path / "authors" / "kth_action"
    for split in ("train", "test"):
        os.makedirs(src / split)
        np.save(src / split / f"{split}_0.npy", frames(12, 120, 160))
    np.save(src / "train" / "bad.npy", np.zeros((3, 4), np.float32))
    dst = tmp_path / "out"
    run("kth", str(src), str(dst))
    assert listing(dst) == {"train": ["train_0.npy"], "test": ["test_0.npy"]}
    # and in place: the loader reads the archive as is
    os.remove(src / "train" / "bad.npy")
    np.save(src / "train" / "train_1.npy", frames(12, 120, 160))
    opt = main.get_opt(["--data_root", str(tmp_path / "authors"), "-b", "2", "-j", "0", "--input_size", "32"])
    assert len(build_loaders(opt)[0].dataset) == 2
    run("kth", str(src), str(src))  # nothing to do


# --- Penn Action ---

@pytest.fixture
def penn_src(tmp_path):
    from scipy.io import savemat
    src = tmp_path / "Penn_Action"
    for i in range(1, 5):
        make_jpeg_folder(src / "frames" / f"{i:04d}", n=6 + i, seed=i)
    os.makedirs(src / "labels")
    savemat(src / "labels" / "0001.mat", {"train": np.array([[1]]), "nframes": np.array([[7]])})
    savemat(src / "labels" / "0002.mat", {"train": np.array([[-1]]), "nframes": np.array([[8]])})
    savemat(src / "labels" / "0003.mat", {"train": np.array([[1]]), "nframes": np.array([[9]])})
    return src  # 0004 has no label: seeded split


def test_penn_official_flag(penn_src, tmp_path, capsys):
    dst = tmp_path / "penn_action"
    run("penn", str(penn_src), str(dst), "--size", "64", "--test_ratio", "1.0")
    got = listing(dst)
    assert "0001.npy" in got["train"] and "0003.npy" in got["train"] and "0002.npy" in got["test"]
    assert "0004.npy" in got["test"] or "0004.npy" in got["train"]
    assert "no readable train flag for 1 of 4" in capsys.readouterr().out
    x = np.load(dst / "train" / "0001.npy")
    assert x.shape == (7, 64, 85, 3) and x.dtype == np.uint8  # shorter side 64, aspect kept
    ref = cv2.resize(frames(7, 90, 120, 1)[0], (85, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(x[0].astype(int) - ref).mean() < 6  # JPEG


def test_penn_split_file_and_native_size(penn_src, tmp_path):
    split_file = tmp_path / "split.txt"
    split_file.write_text("# id split\n0001 test\n0002 train\n0004 train\n")
    dst = tmp_path / "penn2"
    summary = run("penn", str(penn_src), str(dst), "--size", "0", "--split_file", str(split_file))
    assert listing(dst) == {"train": ["0002.npy", "0004.npy"], "test": ["0001.npy"]}
    assert summary["skipped"][0][1] == "not listed in --split_file"
    assert np.load(dst / "test" / "0001.npy").shape == (7, 90, 120, 3)
    split_file.write_text("0001 validation\n")
    with pytest.raises(PrepareError, match="expected '<video id> train\\|test'"):
        run("penn", str(penn_src), str(tmp_path / "penn3"), "--split_file", str(split_file))


def test_penn_without_labels_seeded(penn_src, tmp_path):
    shutil.rmtree(penn_src / "labels")
    a, b = tmp_path / "a", tmp_path / "b"
    run("penn", str(penn_src), str(a), "--size", "32", "--seed", "3")
    run("penn", str(penn_src / "frames"), str(b), "--size", "32", "--seed", "3")
    assert listing(a) == listing(b) and len(listing(a)["test"]) == 2  # round(4 * 0.46)


# --- Moving GIF ---

def test_mgif_split_folders(tmp_path):
    src = tmp_path / "moving-gif"
    make_gif(src / "train" / "a.gif", seed=1)
    make_gif(src / "train" / "b.gif", seed=2)
    make_gif(src / "test" / "c.gif", seed=3)
    dst = tmp_path / "out"
    run("mgif", str(src), str(dst))
    assert listing(dst) == {"train": ["a.npy", "b.npy"], "test": ["c.npy"]}
    x = np.load(dst / "train" / "a.npy")
    assert x.shape == (8, 40, 48, 3) and x.dtype == np.uint8
    assert np.abs(x.astype(int) - frames(8, 40, 48, 1)).mean() < 12  # GIF palette


def test_mgif_flat_seeded_and_resized(tmp_path):
    src = tmp_path / "gifs"
    for i in range(5):
        make_gif(src / f"g{i}.gif", seed=i)
    dst = tmp_path / "out"
    run("mgif", str(src), str(dst), "--size", "20", "--test_ratio", "0.4")
    got = listing(dst)
    assert len(got["train"]) == 3 and len(got["test"]) == 2
    assert np.load(dst / "test" / got["test"][0]).shape == (8, 20, 24, 3)


# --- Hurricane ---

def test_hurricane_arrays(tmp_path):
    src = tmp_path / "hur"
    os.makedirs(src)
    rng = np.random.default_rng(0)
    train = rng.normal(size=(3, 8, 10, 12, 4))
    np.save(src / "train.npy", train)
    np.save(src / "test.npy", rng.normal(size=(2, 8, 10, 12, 4)).astype(np.float32))
    dst = tmp_path / "Hurricane"
    run("hurricane", str(src), str(dst))
    assert listing(dst) == {"train": ["train_00000.npy", "train_00001.npy", "train_00002.npy"],
                            "test": ["test_00000.npy", "test_00001.npy"]}
    x = np.load(dst / "train" / "train_00001.npy")
    assert x.dtype == np.float32 and np.array_equal(x, train[1].astype(np.float32))
    one = tmp_path / "one.npy"
    np.save(one, rng.normal(size=(10, 8, 10, 12, 3)))
    run("hurricane", str(one), str(tmp_path / "h2"))
    got = listing(tmp_path / "h2")
    assert len(got["train"]) == 9 and len(got["test"]) == 1


def test_hurricane_bad_arrays(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 10), np.float32))
    with pytest.raises(PrepareError, match="expected numbers of shape"):
        run("hurricane", str(tmp_path / "x.npy"), str(tmp_path / "out"))
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 10, 12, 2), np.float32))
    with pytest.raises(PrepareError, match="C >= 3"):
        run("hurricane", str(tmp_path / "x.npy"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no .npy arrays"):
        run("hurricane", str(tmp_path / "empty"), str(tmp_path / "out"))


# --- custom footage ---

@pytest.fixture
def custom_src(tmp_path):
    src = tmp_path / "footage"
    make_video(src / "cam" / "street.mp4", n=12, h=48, w=64, fourcc="mp4v", seed=1)
    make_video(src / "cam" / "park.avi", n=10, h=60, w=40, seed=2)
    make_gif(src / "fun.gif", n=9, seed=3)
    make_jpeg_folder(src / "shots" / "take1", n=8, h=50, w=50, seed=4, ext=".png")
    (src / "notes.txt").write_text("not a video")
    return src


def test_custom_mixed_sources(custom_src, tmp_path):
    dst = tmp_path / "data" / "mine"
    run("custom", str(custom_src), str(dst), "--size", "32", "--test_ratio", "0.25")
    got = listing(dst)
    names = sorted(got["train"] + got["test"])
    assert names == ["cam__park.npy", "cam__street.npy", "fun.npy", "shots__take1.npy"]
    assert len(got["test"]) == 1
    lengths = {}
    for s in ("train", "test"):
        for n in got[s]:
            x = np.load(dst / s / n)
            assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8
            lengths[n] = len(x)
    assert lengths == {"cam__park.npy": 10, "cam__street.npy": 12, "fun.npy": 9, "shots__take1.npy": 8}
    opt = main.get_opt(["--dataset", "custom", "--data_root", str(tmp_path / "data"), "--custom_root",
                        "mine", "-b", "2", "-j", "0", "--input_size", "32", "--sample_size", "8"])
    train_loader, test_loader = build_loaders(opt)
    assert next(iter(train_loader))["observed_data"].shape == (2, 4, 3, 32, 32)


def test_custom_clip_len_and_split_folders(tmp_path):
    src = tmp_path / "src"
    make_video(src / "train" / "a.avi", n=10, h=40, w=40)
    make_video(src / "train" / "short.avi", n=3, h=40, w=40)
    make_video(src / "test" / "b.avi", n=9, h=40, w=40)
    dst = tmp_path / "out"
    summary = run("custom", str(src), str(dst), "--size", "16", "--clip_len", "4")
    assert listing(dst) == {"train": ["a_0000.npy", "a_0001.npy"], "test": ["b_0000.npy", "b_0001.npy"]}
    assert "shorter than --clip_len 4" in summary["skipped"][0][1]
    assert np.load(dst / "train" / "a_0001.npy").shape == (4, 16, 16, 3)
    summary = run("custom", str(src), str(dst), "--size", "16", "--clip_len", "4")
    assert sum(summary["present"].values()) == 4 and not summary["written"]


# --- shapes ---

def test_prepare_shapes(tmp_path):
    run("shapes", str(tmp_path / "shapes"), "--n_train", "2", "--n_test", "1", "--n_frames", "12", "--size", "32")
    assert listing(tmp_path / "shapes") == {"train": ["00000.npy", "00001.npy"], "test": ["00000.npy"]}
    assert np.load(tmp_path / "shapes" / "test" / "00000.npy").shape == (12, 32, 32, 3)


# --- bad sources ---

def test_bad_sources(tmp_path):
    with pytest.raises(PrepareError, match="does not exist"):
        run("kth", str(tmp_path / "nope"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no KTH videos found"):
        run("kth", str(tmp_path / "empty"), str(tmp_path / "out"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "walking.zip").write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(PrepareError, match="walking.zip: not a readable zip archive"):
        run("kth", str(tmp_path / "broken"), str(tmp_path / "out"))
    with pytest.raises(PrepareError, match="no frame folders"):
        run("penn", str(tmp_path / "empty"), str(tmp_path / "out"))
    with pytest.raises(PrepareError, match="no .gif files"):
        run("mgif", str(tmp_path / "empty"), str(tmp_path / "out"))
    with pytest.raises(PrepareError, match="no videos"):
        run("custom", str(tmp_path / "empty"), str(tmp_path / "out"))
    (tmp_path / "file.avi").write_bytes(b"junk")
    with pytest.raises(PrepareError, match="give a folder"):
        run("custom", str(tmp_path / "file.avi"), str(tmp_path / "out"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "person01_walking_d1_uncomp.avi").write_bytes(b"not a video")
    with pytest.raises(PrepareError, match="nothing could be converted"):
        run("kth", str(tmp_path / "junk"), str(tmp_path / "out"))
    assert issubclass(PrepareError, DataError)


def test_cli_entry_point(tmp_path):
    (tmp_path / "empty").mkdir()
    res = subprocess.run([sys.executable, "-m", "dataset.prepare", "kth", str(tmp_path / "empty"),
                          str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "no KTH videos" in res.stderr
    res = subprocess.run([sys.executable, "-m", "dataset.prepare", "--help"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0 and "kth" in res.stdout and "custom" in res.stdout
