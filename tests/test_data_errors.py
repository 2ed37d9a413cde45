"""Bad data and options: a DataError with a clear message, raised before any worker starts."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import main  # noqa: E402
from dataloader import DataError, build_loaders, get_dataset  # noqa: E402


def make_opt(root, *args, dataset="kth", **overrides):
    opt = main.get_opt(["--data_root", str(root), "--dataset", dataset, "--input_size", "32",
                        "-b", "2", "-j", "2", "--device", "cpu", *args])
    for k, v in overrides.items():
        setattr(opt, k, v)
    return opt


def put(root, sub, split, name, array):
    folder = os.path.join(str(root), sub, split)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    np.save(path, array)
    return path


def good(t=30, hwc=(120, 160, 3)):
    return np.zeros((t, *hwc), np.uint8)


@pytest.fixture
def kth(tmp_path):
    for i in range(3):
        put(tmp_path, "kth_action", "train", f"v{i}.npy", good())
    put(tmp_path, "kth_action", "test", "t0.npy", good())
    return tmp_path


def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as e:
        build_loaders(make_opt(tmp_path))
    msg = str(e.value)
    assert "kth_action/train" in msg and "does not exist" in msg
    assert "train/*.npy" in msg and "test/*.npy" in msg
    assert "python -m dataset.prepare kth" in msg and os.path.join(str(tmp_path), "kth_action") in msg


def test_missing_custom_folder_names_custom_root(tmp_path):
    with pytest.raises(DataError, match="python -m dataset.prepare custom .*mine"):
        get_dataset(make_opt(tmp_path, "--custom_root", "mine", dataset="custom"), "train")


def test_empty_split(kth):
    os.makedirs(kth / "kth_action" / "empty" / "train")
    for f in os.listdir(kth / "kth_action" / "test"):
        os.remove(kth / "kth_action" / "test" / f)
    with pytest.raises(DataError, match="holds no .npy clips"):
        build_loaders(make_opt(kth))


def test_truncated_npy(kth):
    path = put(kth, "kth_action", "train", "v9.npy", good())
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 1000)
    with pytest.raises(DataError, match="v9.npy: truncated"):
        build_loaders(make_opt(kth))


def test_not_an_npy(kth):
    with open(kth / "kth_action" / "train" / "junk.npy", "wb") as f:
        f.write(b"this is not numpy")
    with pytest.raises(DataError, match="junk.npy: not a readable .npy file"):
        build_loaders(make_opt(kth))


def test_object_array(kth):
    np.save(kth / "kth_action" / "train" / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Python objects"):
        build_loaders(make_opt(kth))


def test_wrong_rank(kth):
    put(kth, "kth_action", "train", "flat.npy", np.zeros((30, 57600), np.uint8))
    with pytest.raises(DataError, match=r"flat.npy: shape \(30, 57600\), expected \(T, H, W, C\)"):
        build_loaders(make_opt(kth))


def test_wrong_dtype(kth):
    put(kth, "kth_action", "train", "f.npy", np.zeros((30, 120, 160, 3), np.float32))
    with pytest.raises(DataError, match="f.npy: dtype float32, expected uint8"):
        build_loaders(make_opt(kth))


def test_wrong_channels(kth):
    put(kth, "kth_action", "test", "rgba.npy", np.zeros((30, 120, 160, 4), np.uint8))
    with pytest.raises(DataError, match="rgba.npy: 4 channels"):
        build_loaders(make_opt(kth))


def test_hurricane_needs_float_and_three_channels(tmp_path):
    put(tmp_path, "Hurricane", "train", "a.npy", np.zeros((30, 30, 32, 3), np.uint8))
    with pytest.raises(DataError, match="hurricane clips are float"):
        get_dataset(make_opt(tmp_path, dataset="hurricane"), "train")
    put(tmp_path, "Hurricane", "train", "a.npy", np.zeros((30, 30, 32, 2), np.float32))
    with pytest.raises(DataError, match="C>=3"):
        get_dataset(make_opt(tmp_path, dataset="hurricane"), "train")


def test_hurricane_frame_sizes(tmp_path):
    put(tmp_path, "Hurricane", "train", "a.npy", np.zeros((30, 31, 32, 3), np.float32))
    with pytest.raises(DataError, match="not divisible by 2\\*\\*n_downs"):
        get_dataset(make_opt(tmp_path, dataset="hurricane"), "train")
    put(tmp_path, "Hurricane", "train", "a.npy", np.zeros((30, 30, 32, 3), np.float32))
    put(tmp_path, "Hurricane", "train", "b.npy", np.zeros((30, 62, 64, 3), np.float32))
    with pytest.raises(DataError, match="different frame sizes"):
        get_dataset(make_opt(tmp_path, dataset="hurricane"), "train")


def test_kth_frames_too_small(tmp_path):
    put(tmp_path, "kth_action", "train", "a.npy", good(hwc=(100, 100, 3)))
    with pytest.raises(DataError, match="smaller than the 120x120 centre crop"):
        get_dataset(make_opt(tmp_path), "train")


def test_short_clips_skipped_with_count(kth, capsys):
    put(kth, "kth_action", "train", "short.npy", good(t=9))
    ds = get_dataset(make_opt(kth), "train")
    assert len(ds) == 3
    assert "kth train: skipped 1 of 4 clips shorter than 10 frames (--sample_size)" in capsys.readouterr().out


def test_all_clips_too_short(kth):
    with pytest.raises(DataError, match="all 3 clips are shorter than 40 frames"):
        get_dataset(make_opt(kth, "--irregular", window_size=40), "train")


@pytest.mark.parametrize("args,overrides,message", [
    ((), dict(sample_size=7), "--sample_size must be even"),
    (("--irregular",), dict(sample_size=12, window_size=10), r"--sample_size \(12\) must not exceed --window_size \(10\)"),
    (("--irregular", "--extrap"), dict(window_size=21), "irregular extrapolation needs even"),
])
def test_bad_sizes_before_reading(tmp_path, args, overrides, message):
    # raised even before the folder is looked at
    with pytest.raises(DataError, match=message):
        build_loaders(make_opt(tmp_path, *args, **overrides))


def test_batch_larger_than_split_trains_on_a_partial_batch(kth, monkeypatch):
    # the reference keeps the last partial batch: 3 clips with --batch_size 8 is one batch of 3
    train_loader, _ = build_loaders(make_opt(kth, "-j", "0", batch_size=8))
    assert len(train_loader) == 1
    # every process needs a clip of its own
    import dataloader.loaders as loaders
    monkeypatch.setattr(loaders.dist, "world_size", lambda: 4)
    with pytest.raises(DataError, match="3 clips, fewer than the 4 processes"):
        build_loaders(make_opt(kth, batch_size=8), distributed=True)


def test_unknown_dataset(kth):
    opt = make_opt(kth)
    opt.dataset = "ucf"
    with pytest.raises(DataError, match="unknown dataset"):
        get_dataset(opt, "train")
