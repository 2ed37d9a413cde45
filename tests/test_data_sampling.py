"""Sampling rules, time stamps and the batch dictionary (docs/algorithm.md section 2), without files."""
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import main  # noqa: E402
from dataloader import (DataError, batch_to_device, make_batch, make_plan,  # noqa: E402
                        sample_clip, time_steps)
from dataloader.batch import Collate  # noqa: E402


def opt_for(*args, **overrides):
    argv = list(args)
    if overrides.get("phase", "train") != "train":
        argv += ["--test_dir", "unused"]
    opt = main.get_opt(argv)
    for k, v in overrides.items():
        setattr(opt, k, v)
    return opt


MODES = {
    "regular_interp": (),
    "regular_extrap": ("--extrap",),
    "irregular_interp": ("--irregular",),
    "irregular_extrap": ("--irregular", "--extrap"),
}


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("phase", ["train", "test_met"])
@pytest.mark.parametrize("mode", list(MODES))
def test_sample_clip_invariants(mode, phase, split):
    opt = opt_for(*MODES[mode], phase=phase)
    plan = make_plan(opt, split)
    s, w = opt.sample_size, opt.window_size
    rng = np.random.default_rng(0)
    for length in [plan.min_length, plan.min_length + 1, 25, 60, 300]:
        for _ in range(30):
            idx, mask = sample_clip(length, plan, rng)
            assert idx.dtype == np.int64 and mask.dtype == np.float32
            assert idx.min() >= 0 and idx.max() <= length - 1
            assert np.all(np.diff(idx) > 0)
            assert set(np.unique(mask)) <= {0.0, 1.0}
            if split == "test":
                assert idx[0] == 0
            if mode == "regular_interp" and plan.test_interp:
                assert len(idx) == s and np.all(np.diff(idx) == 1)
                assert mask.tolist() == [1.0, 0.0] * (s // 2)
            elif mode == "regular_interp":
                assert len(idx) == s // 2 and np.all(np.diff(idx) == 2) and mask.sum() == s // 2
            elif mode == "regular_extrap":
                assert len(idx) == s and np.all(np.diff(idx) == 1) and mask.sum() == s
            else:
                assert len(idx) == w and np.all(np.diff(idx) == 1)
                assert mask.sum() == s and mask[0] == 1 and mask[-1] == 1
                if length > w:  # the reference's start range [0, L - Wn - 1]
                    assert idx[-1] <= length - 2
                if mode == "irregular_extrap":
                    assert mask[: w // 2].sum() == s // 2 and mask[w // 2:].sum() == s // 2


def test_random_start_covers_range():
    plan = make_plan(opt_for(), "train")
    rng = np.random.default_rng(1)
    starts = {int(sample_clip(14, plan, rng)[0][0]) for _ in range(300)}
    assert starts == set(range(0, 14 - 10 + 1))
    plan = make_plan(opt_for("--irregular"), "train")
    starts = {int(sample_clip(24, plan, rng)[0][0]) for _ in range(300)}
    assert starts == set(range(0, 24 - 20))


@pytest.mark.parametrize("mode,expected", [
    ("regular_interp", [k / 5 for k in range(5)]),
    ("regular_extrap", [k / 10 for k in range(10)]),
    ("irregular_interp", [k / 20 for k in range(20)]),
    ("irregular_extrap", [k / 20 for k in range(20)]),
])
def test_time_steps(mode, expected):
    for phase in ("train", "test_met"):
        ts = time_steps(make_plan(opt_for(*MODES[mode], phase=phase), "test"))
        assert ts.dtype == torch.float32
        assert torch.allclose(ts, torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-7)


def test_plan_flags():
    assert make_plan(opt_for(phase="test_met"), "test").test_interp
    assert not make_plan(opt_for(phase="test_met"), "train").test_interp
    assert not make_plan(opt_for(phase="train"), "test").test_interp
    assert not make_plan(opt_for("--extrap", phase="test_met"), "test").test_interp
    assert make_plan(opt_for("--irregular", phase="test_met"), "test").predict_unobserved
    assert not make_plan(opt_for("--irregular", "--extrap", phase="test_met"), "test").predict_unobserved
    with pytest.raises(ValueError):
        make_plan(opt_for(), "val")


@pytest.mark.parametrize("overrides,message", [
    (dict(sample_size=9), "must be even"),
    (dict(irregular=True, sample_size=21, window_size=20), "must not exceed"),
    (dict(irregular=True, extrap=True, sample_size=10, window_size=21), "even"),
    (dict(irregular=True, extrap=True, sample_size=9, window_size=20), "even"),
    (dict(irregular=True, sample_size=2), ">= 3"),
])
def test_bad_sizes(overrides, message):
    with pytest.raises(DataError, match=message):
        make_plan(opt_for(**overrides), "train")


def _clips(b, t, c=3, h=8, w=8):
    return torch.rand(b, t, c, h, w) + 0.1  # no exact zeros


def test_make_batch_interp_regular():
    opt = opt_for()
    data, mask = _clips(2, 5), torch.ones(2, 5, 1)
    ts = torch.arange(5).float() / 5
    b = make_batch(data, mask, ts, opt)
    assert b["mode"] == "train"
    assert torch.equal(b["observed_data"], data) and torch.equal(b["data_to_predict"], data)
    assert torch.equal(b["observed_tp"], ts) and torch.equal(b["tp_to_predict"], ts)
    assert "clip_index" not in b


def test_make_batch_extrap_halves():
    opt = opt_for("--irregular", "--extrap")
    data = _clips(3, 20)
    mask = torch.zeros(3, 20, 1)
    mask[:, [0, 3, 9, 12, 19]] = 1
    ts = torch.arange(20).float() / 20
    b = make_batch(data, mask, ts, opt, clip_index=[4, 5, 6])
    assert b["observed_data"].shape == (3, 10, 3, 8, 8) and b["data_to_predict"].shape == (3, 10, 3, 8, 8)
    assert torch.equal(b["observed_tp"], ts[:10]) and torch.equal(b["tp_to_predict"], ts[10:])
    assert torch.equal(b["observed_mask"], mask[:, :10]) and torch.equal(b["mask_predicted_data"], mask[:, 10:])
    assert torch.equal(b["observed_data"][:, 3], data[:, 3]) and b["observed_data"][:, 1].abs().sum() == 0
    assert b["data_to_predict"][:, 0].abs().sum() == 0 and torch.equal(b["data_to_predict"][:, 2], data[:, 12])
    assert torch.equal(b["original_data_to_predict"], data[:, 10:])
    assert b["clip_index"].dtype == torch.int64 and b["clip_index"].tolist() == [4, 5, 6]


def test_make_batch_test_interp():
    opt = opt_for(phase="test_met")
    data = _clips(2, 10)
    mask = torch.tensor([1.0, 0.0] * 5).reshape(1, 10, 1).repeat(2, 1, 1)
    b = make_batch(data, mask, torch.arange(5).float() / 5, opt, test_interp=True)
    assert b["mode"] == "test"
    assert torch.equal(b["observed_data"], data[:, ::2])
    assert torch.equal(b["observed_mask"], torch.ones(2, 5, 1))
    assert torch.equal(b["observed_tp"], torch.arange(5).float() / 5)
    assert torch.equal(b["tp_to_predict"], torch.arange(10).float() / 10)
    assert b["mask_predicted_data"][0, :, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 0]
    assert torch.equal(b["data_to_predict"], data)
    # frame 2k sits at the same time in both grids
    assert torch.equal(b["observed_tp"], b["tp_to_predict"][::2])


def test_make_batch_predict_unobserved():
    opt = opt_for("--irregular", phase="test_met")
    data = _clips(2, 20)
    mask = torch.zeros(2, 20, 1)
    mask[0, [0, 2, 4, 6, 8, 10, 12, 14, 16, 19]] = 1
    mask[1, [0, 1, 2, 3, 4, 5, 6, 7, 8, 19]] = 1
    b = make_batch(data, mask, torch.arange(20).float() / 20, opt, predict_unobserved=True)
    assert b["mode"] == "test"
    assert torch.equal(b["mask_predicted_data"], 1 - mask)
    assert torch.equal(b["observed_mask"], mask)
    assert (b["mask_predicted_data"].sum(1) == 10).all()
    assert torch.equal(b["data_to_predict"], data * (1 - mask)[..., None, None])
    assert torch.equal(b["observed_data"], data * mask[..., None, None])
    assert torch.equal(b["original_data_to_predict"], data)


def test_collate_and_to_device():
    opt = opt_for("--extrap")
    plan = make_plan(opt, "train")
    items = [(torch.rand(10, 3, 8, 8), torch.ones(10, 1), i) for i in (3, 1)]
    b = Collate(opt, plan, "train")(items)
    assert b["clip_index"].tolist() == [3, 1]
    moved = batch_to_device(b, torch.device("cpu"))
    assert set(moved) == set(b) and moved["mode"] == "train"
    for k, v in b.items():
        if torch.is_tensor(v):
            assert v.dtype in (torch.float32, torch.int64)


@pytest.mark.parametrize("flags", [
    ["--sample_size", "9"],
    ["--extrap", "--sample_size", "7"],
    ["--irregular", "--sample_size", "21"],
    ["--irregular", "--extrap", "--window_size", "21"],
    ["--irregular", "--extrap", "--sample_size", "9"],
    ["--irregular", "--sample_size", "2"],
])
def test_parse_time_and_data_set_refuse_sizes_alike(flags, capsys):
    """One size check: the command line (main.check_opt) and options read back from a run
    (make_plan) give the same message."""
    with pytest.raises(SystemExit) as e:
        main.get_opt(flags)
    err = capsys.readouterr().err
    opt = opt_for()
    for flag, value in zip(flags, flags[1:] + [None]):
        if flag in ("--irregular", "--extrap"):
            setattr(opt, flag[2:], True)
        elif flag.startswith("--"):
            setattr(opt, flag[2:], int(value))
    with pytest.raises(DataError) as d:
        make_plan(opt, "train")
    assert e.value.code == 2 and str(d.value) in err
