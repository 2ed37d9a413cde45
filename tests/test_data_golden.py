"""make_batch reproduces the reference's batches stored in the golden folder.

The folder is tests/golden (VIDODE_GOLDEN_DIR overrides it); every case_*.pt there is checked,
one test per case and per batch key. A missing folder is an error, not a skip.
"""
import os
from types import SimpleNamespace

import pytest
import torch

from dataloader import make_batch
from tests.golden_utils import case_files, load

CASES = [str(p) for p in case_files()]
KEYS = ("observed_data", "observed_tp", "observed_mask", "data_to_predict", "tp_to_predict",
        "mask_predicted_data", "original_data_to_predict", "mode")

_cache = {}


def _case(path):
    if path not in _cache:
        _cache[path] = load(path)
    return _cache[path]


def _frames(case):
    """The full clip of each sample, float in [0, 1]: (b, T, C, H, W)."""
    b = case["batch"]
    cfg = case["config"]
    test_interp = cfg["phase"] == "test_met" and not cfg["extrap"] and not cfg["irregular"]
    if test_interp or "orignal_data_to_predict_u8" not in b:
        u8 = b["data_to_predict_u8"]
    elif cfg["extrap"]:
        u8 = torch.cat([b["observed_data_u8"], b["orignal_data_to_predict_u8"]], dim=1)
    else:
        u8 = b["orignal_data_to_predict_u8"]
    return u8.to(torch.float32) / 255, test_interp


def _built(path):
    key = ("built", path)
    if key not in _cache:
        case = _case(path)
        cfg = case["config"]
        opt = SimpleNamespace(**cfg)
        data, test_interp = _frames(case)
        _cache[key] = make_batch(data, case["collate_mask"], case["collate_time_steps"], opt,
                                 test_interp=test_interp, mode=case["batch"]["mode"])
    return _cache[key]


def _expected(case, key):
    b = case["batch"]
    if key == "original_data_to_predict":
        if "orignal_data_to_predict_u8" in b:
            return b["orignal_data_to_predict_u8"].to(torch.float32) / 255
        return b["data_to_predict_u8"].to(torch.float32) / 255  # test case: the full clip
    if key + "_u8" in b:
        return b[key + "_u8"].to(torch.float32) / 255
    return b[key]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[5:-3])
def test_golden_batch(path, key):
    case = _case(path)
    got = _built(path)[key]
    want = _expected(case, key)
    if key == "mode":
        assert got == want
        return
    if key == "mask_predicted_data" and want.dtype == torch.bool:
        # the reference's test batch holds a bool (b, T) mask; ours is float (b, T, 1)
        assert got.shape == (*want.shape, 1)
        assert torch.equal(got[..., 0] > 0.5, want)
        assert set(got.unique().tolist()) <= {0.0, 1.0}
        return
    assert got.dtype == torch.float32
    assert got.shape == want.shape
    assert torch.equal(got, want.to(torch.float32)), f"{key}: max |diff| {(got - want).abs().max()}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[5:-3])
def test_golden_sampling_rules(path):
    """The reference's collated time grid, masks and frame positions follow our sampling rules."""
    from dataloader import make_plan, time_steps
    case = _case(path)
    opt = SimpleNamespace(**case["config"])
    plan = make_plan(opt, "test" if opt.phase != "train" else "train")
    assert torch.equal(time_steps(plan), case["collate_time_steps"])
    mask = case["collate_mask"][..., 0]  # (b, T)
    frames = case["source_frame_index"]  # (b, T), absolute frame numbers
    s, w = opt.sample_size, opt.window_size
    step = 2 if not (opt.irregular or opt.extrap or plan.test_interp) else 1
    assert torch.all(frames[:, 1:] - frames[:, :-1] == step)
    if not plan.random_start:
        assert torch.all(frames[:, 0] == 0)
    if opt.irregular:
        assert mask.shape[1] == w and torch.all(mask.sum(1) == s)
        assert torch.all(mask[:, 0] == 1) and torch.all(mask[:, -1] == 1)
        if opt.extrap:
            assert torch.all(mask[:, : w // 2].sum(1) == s // 2)
    elif plan.test_interp:
        assert mask.shape[1] == s and torch.all(mask[:, 0::2] == 1) and torch.all(mask[:, 1::2] == 0)
    else:
        assert mask.shape[1] == (s if opt.extrap else s // 2) and torch.all(mask == 1)
