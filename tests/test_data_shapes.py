"""The built-in moving-shapes data set and its continuous-time renderer."""
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import main  # noqa: E402
from dataloader import build_loaders  # noqa: E402
from dataloader import shapes  # noqa: E402


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shapes"))
    shapes.generate_shapes_dataset(root, n_train=4, n_test=3, n_frames=20, size=64, seed=11, progress=False)
    return root


def test_layout_and_meta(small):
    meta = json.load(open(os.path.join(small, "meta.json")))
    assert meta["frame_dt"] == 1.0 and meta["time_unit"] == "frames" and meta["size"] == 64
    assert len(meta["train"]) == 4 and len(meta["test"]) == 3
    for split, n in (("train", 4), ("test", 3)):
        files = sorted(os.listdir(os.path.join(small, split)))
        assert files == [f"{i:05d}.npy" for i in range(n)]
        clip = np.load(os.path.join(small, split, files[0]))
        assert clip.shape == (20, 64, 64, 3) and clip.dtype == np.uint8
    assert shapes.is_complete(small)


def test_renderer_matches_clip_frames(small):
    meta = shapes.load_meta(small)
    for split in ("train", "test"):
        for i, params in enumerate(meta[split]):
            clip = np.load(os.path.join(small, split, f"{i:05d}.npy"))
            k = np.arange(len(clip))
            assert np.array_equal(shapes.render_clip(params, k * meta["frame_dt"], 64), clip)
            # one frame at a time, in any order
            for j in (7, 0, 19):
                assert np.array_equal(shapes.render_clip(meta[split][i], [j], meta["size"])[0], clip[j])


def test_real_valued_times(small):
    clip = np.load(os.path.join(small, "test", "00001.npy"))
    test = shapes.load_meta(small)["test"]
    mid = shapes.render_clip(test[1], np.array([4.5]), 64)[0].astype(float)
    a, b = clip[4].astype(float), clip[5].astype(float)
    assert mid.shape == (64, 64, 3)
    assert not np.array_equal(mid, a) and not np.array_equal(mid, b)
    # between its neighbours: closer to their mean than they are to each other
    assert np.abs(mid - (a + b) / 2).mean() < np.abs(a - b).mean()
    assert shapes.render_clip(test[1], [0.0, 2.25], size=32).shape == (2, 32, 32, 3)


def test_deterministic(small, tmp_path):
    other = str(tmp_path / "again")
    shapes.generate_shapes_dataset(other, n_train=4, n_test=3, n_frames=20, size=64, seed=11, progress=False)
    for split in ("train", "test"):
        for n in os.listdir(os.path.join(small, split)):
            assert np.array_equal(np.load(os.path.join(small, split, n)), np.load(os.path.join(other, split, n)))
    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    assert shapes.make_clip_params(rng1) == shapes.make_clip_params(rng2)


def test_motion_is_visible_and_smooth(small):
    meta = shapes.load_meta(small)
    speeds = []
    for params in meta["train"] + meta["test"]:
        assert 2 <= len(params["shapes"]) <= 3
        for s in params["shapes"]:
            for t in range(19):
                x0, y0, r0, _ = shapes._shape_state(s, t)
                x1, y1, r1, _ = shapes._shape_state(s, t + 1)
                speeds.append(np.hypot(x1 - x0, y1 - y0) * 64)
                rmax = s["radius"] * (1 + s["pulse_amp"])
                assert rmax - 1e-9 <= x0 <= 1 - rmax + 1e-9 and rmax - 1e-9 <= y0 <= 1 - rmax + 1e-9
                assert r0 <= rmax + 1e-12
    speeds = np.array(speeds)
    assert speeds.max() <= 3.0 and np.median(speeds) >= 1.5  # a few pixels per frame
    clip = np.load(os.path.join(small, "test", "00000.npy")).astype(float)
    assert np.abs(np.diff(clip, axis=0)).mean(axis=(1, 2, 3)).min() > 0  # every frame moves


def test_bounce_is_closed_form():
    lo, hi = 0.2, 0.8
    for t in np.linspace(0, 100, 57):
        p = shapes._bounce(0.3, 0.05, t, lo, hi)
        assert lo - 1e-12 <= p <= hi + 1e-12
    # reflection: symmetric around the wall hit at t = (1 - 0.3) * 0.6 / 0.05
    t_hit = 0.7 * 0.6 / 0.05
    assert shapes._bounce(0.3, 0.05, t_hit - 1.3, lo, hi) == pytest.approx(shapes._bounce(0.3, 0.05, t_hit + 1.3, lo, hi))


def test_resume_after_interruption(small, tmp_path):
    root = str(tmp_path / "partial")
    shapes.generate_shapes_dataset(root, n_train=4, n_test=3, n_frames=20, size=64, seed=11, progress=False)
    os.remove(os.path.join(root, "train", "00002.npy"))
    open(os.path.join(root, "train", ".partial-x.tmp"), "wb").write(b"half")  # an interrupted write
    assert not shapes.is_complete(root)
    shapes.generate_shapes_dataset(root, progress=False)  # parameters come from meta.json
    assert np.array_equal(np.load(os.path.join(root, "train", "00002.npy")),
                          np.load(os.path.join(small, "train", "00002.npy")))


def test_generated_on_first_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shapes, "N_TRAIN", 4)
    monkeypatch.setattr(shapes, "N_TEST", 2)
    monkeypatch.setattr(shapes, "N_FRAMES", 22)
    opt = main.get_opt(["--dataset", "shapes", "--data_root", str(tmp_path), "--input_size", "32",
                        "-b", "2", "-j", "0", "--device", "cpu"])
    train_loader, test_loader = build_loaders(opt)
    assert "generating the moving-shapes data set" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "shapes" / "train")) == 4
    batch = next(iter(train_loader))
    assert batch["observed_data"].shape == (2, 5, 3, 32, 32)
    build_loaders(opt)  # second use: nothing generated
    assert "generating" not in capsys.readouterr().out

