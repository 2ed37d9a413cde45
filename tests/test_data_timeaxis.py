"""The model's time axis (docs/algorithm.md section 2, "Time stamps"): slots, stored frames and model time."""
import pytest
import torch

import main
from dataloader import make_batch, make_plan
from dataloader.timeaxis import model_times, slots_per_unit, source_frames_per_unit, time_steps

MODES = {  # flags -> (R, F) with the defaults S = 10, Wn = 20
    (): (5, 10),
    ("--extrap",): (10, 10),
    ("--irregular",): (20, 20),
    ("--irregular", "--extrap"): (20, 20),
}


@pytest.mark.parametrize("flags", list(MODES))
def test_rates_from_options_and_from_a_plan(flags):
    opt = main.get_opt(list(flags))
    plan = make_plan(opt, "train")
    r, f = MODES[flags]
    assert slots_per_unit(opt) == slots_per_unit(plan) == r
    assert source_frames_per_unit(opt) == source_frames_per_unit(plan) == f


@pytest.mark.parametrize("flags", list(MODES))
@pytest.mark.parametrize("s,w", [(10, 20), (6, 12), (16, 30)])
def test_time_steps_are_the_references_bit_for_bit(flags, s, w):
    opt = main.get_opt(list(flags) + ["--sample_size", str(s), "--window_size", str(w)])
    n = w if opt.irregular else (s if opt.extrap else s // 2)
    ts = time_steps(opt)
    assert ts.dtype == torch.float32
    assert torch.equal(ts, torch.arange(n).float() / n)  # the reference's formula


def test_model_times_of_fractional_positions():
    t = model_times([0, 0.5, 2.25, 4], 5)
    assert t.dtype == torch.float32
    assert torch.equal(t, torch.tensor([0.0, 0.5, 2.25, 4.0]) / 5)
    assert model_times([], 5).shape == (0,)


def test_a_slot_and_its_stored_frame_share_one_time():
    opt = main.get_opt([])  # regular interpolation: slot k is stored frame 2k
    r, f = slots_per_unit(opt), source_frames_per_unit(opt)
    assert torch.equal(model_times(range(r), r), model_times(range(0, 2 * r, 2), f))


def test_test_time_interpolation_puts_targets_at_stored_frame_times():
    opt = main.get_opt(["--phase", "test_met", "--test_dir", "unused"])
    plan = make_plan(opt, "test")
    s = opt.sample_size
    data = torch.rand(2, s, 3, 4, 4)
    mask = (torch.arange(s) % 2 == 0).float().reshape(1, s, 1).expand(2, s, 1)
    batch = make_batch(data, mask, time_steps(plan), opt, test_interp=True)
    frame_times = model_times(range(s), source_frames_per_unit(opt))  # (S,): k / S
    assert torch.equal(batch["tp_to_predict"], frame_times)
    assert torch.equal(batch["observed_tp"], frame_times[::2])  # frame 2k at the same time
