"""--frame_stride k: which frames training and test_met see, which are held out, their times, and
eval_continuous at the held-out frames (hand-computed baselines, the shapes' analytic path, a
video prepared with dataset.prepare custom)."""
import fractions
import glob
import json
import math
import os

import av
import numpy as np
import pytest
import torch

import main
from continuous import HeldOut, eval_continuous, frame_kinds, shapes_truth
from dataloader import build_test_loader, get_dataset, make_plan, sample_clip, time_steps
from dataloader.batch import Collate
from dataloader.sampling import _sample_frames
from dataloader.shapes import generate_shapes_dataset, load_meta
from dataloader.timeaxis import (stored_frames_per_slot, stored_length, strided_length,
                                 window_positions)
from dataset import prepare
from runs import load_run
from utils.metrics import psnr_from_mse

MODES = {
    "regular_interp": (),
    "regular_extrap": ("--extrap",),
    "irregular_interp": ("--irregular",),
    "irregular_extrap": ("--irregular", "--extrap"),
}
SIZES = ["--sample_size", "6", "--window_size", "8"]


def opt_for(mode, stride, phase="train", *extra):
    argv = list(MODES[mode]) + SIZES + ["--frame_stride", str(stride), "--phase", phase] + list(extra)
    if phase != "train":
        argv += ["--test_dir", "unused"]
    return main.get_opt(argv)


# ---------------------------------------------------------------- sampling


def test_stride_one_draws_exactly_what_it_drew_before():
    for mode in MODES:
        for phase in ("train", "test_met"):
            for split in ("train", "test"):
                plan = make_plan(opt_for(mode, 1, phase), split)
                a, b = np.random.default_rng(5), np.random.default_rng(5)
                for length in (8, 9, 30):
                    ia, ma = sample_clip(length, plan, a)
                    ib, mb = _sample_frames(length, plan, b)
                    assert np.array_equal(ia, ib) and np.array_equal(ma, mb)


@pytest.mark.parametrize("phase", ["train", "test_met"])
@pytest.mark.parametrize("mode", list(MODES))
def test_stride_sampling_in_every_mode(mode, phase):
    k = 3
    plan, plan1 = make_plan(opt_for(mode, k, phase), "test"), make_plan(opt_for(mode, 1, phase), "test")
    assert plan.min_stored_length == (plan1.min_length - 1) * k + 1
    for length in (plan.min_stored_length, plan.min_stored_length + 2, 40):
        # test split: offset 0, the strided clip sampled as a clip of the lower frame rate
        idx, mask = sample_clip(length, plan, np.random.default_rng(3))
        idx1, mask1 = sample_clip(strided_length(length, k), plan1, np.random.default_rng(3))
        assert np.array_equal(idx, k * idx1) and np.array_equal(mask, mask1)
        window = range(idx[0], idx[-1] + 1)
        held = [i for i in window if i not in set(idx.tolist())]
        if mode == "regular_interp" and phase == "train":  # every second strided frame
            assert np.all(np.diff(idx) == 2 * k)
            assert held == [i for i in window if i % (2 * k)]
        else:  # the frames between consecutive strided frames are held out
            assert np.all(np.diff(idx) == k)
            assert held == [i for i in window if i % k]
        # the time stamps are the stride-1 run's: a strided clip is a clip at a lower frame rate
        assert torch.equal(time_steps(plan), time_steps(plan1))
    # train split: a random offset in [0, k) among those that leave enough frames
    plan = make_plan(opt_for(mode, k, phase), "train")
    rng = np.random.default_rng(0)
    offsets = {int(sample_clip(40, plan, rng)[0][0]) % k for _ in range(200)}
    assert offsets == set(range(k))
    for _ in range(50):
        idx, _ = sample_clip(plan.min_stored_length + 1, plan, rng)
        assert idx[0] % k in (0, 1) and np.all(np.diff(idx) % k == 0)
        assert idx[-1] <= plan.min_stored_length
        idx, _ = sample_clip(plan.min_stored_length, plan, rng)  # only offset 0 fits
        assert idx[0] % k == 0 and idx[-1] <= plan.min_stored_length - 1


def test_stride_lengths():
    assert [strided_length(n, 3) for n in (0, 1, 3, 4, 7)] == [0, 1, 1, 2, 3]
    assert strided_length(7, 3, offset=1) == 2 and strided_length(8, 3, offset=1) == 3
    assert stored_length(4, 3) == 10 and stored_length(1, 5) == 1
    assert [stored_frames_per_slot(opt_for(m, 2)) for m in MODES] == [4, 2, 2, 2]


def test_window_positions_by_index_and_by_real_time():
    extrap = opt_for("regular_extrap", 2)  # D = 2: a held-out frame in each slot interval
    pos, how = window_positions(5, extrap)
    assert how == "index" and pos.tolist() == [0, 0.5, 1, 1.5, 2]
    pos, how = window_positions(5, extrap, np.array([0, 0.1, 0.3, 0.4, 0.5]))
    assert how == "times" and pos == pytest.approx([0, 1 / 3, 1, 1.5, 2])  # grid frames stay put
    interp = opt_for("regular_interp", 2)  # D = 4: stored 2 is the odd strided frame (test_met's)
    pos, how = window_positions(5, interp, np.array([10, 10.05, 10.2, 10.25, 10.4]))
    assert how == "times" and pos == pytest.approx([0, 1 / 8, 0.5, 0.625, 1])
    pos, how = window_positions(5, extrap, np.array([0, 0.2, 0.2, 0.3, 0.4]))
    assert pos.tolist() == [0, 0.5, 1, 1.5, 2]
    assert how.startswith("index: frame times do not increase between stored frames 0 and 2")
    pos, how = window_positions(5, extrap, np.arange(4.0))
    assert pos.tolist() == [0, 0.5, 1, 1.5, 2] and how == "index: 4 frame times for 5 frames"


# ---------------------------------------------------------------- data sets


def write_clips(folder, clips, times=None):
    os.makedirs(folder, exist_ok=True)
    for name, levels in clips.items():
        levels = np.asarray(levels, np.uint8)
        frames = np.broadcast_to(levels[:, None, None, None], (len(levels), 16, 16, 3)).copy()
        np.save(os.path.join(folder, f"{name}.npy"), frames)
        if times and name in times:
            np.save(os.path.join(folder, f"{name}.times.npy"), np.asarray(times[name], np.float64))


def custom_opt(root, *args):
    return main.get_opt(["--dataset", "custom", "--data_root", str(root), "--custom_root", "c",
                         "--input_size", "16", "--workers", "0", "-b", "2"] + list(args))


def test_short_clips_counted_with_the_stride(tmp_path, capsys):
    write_clips(tmp_path / "c" / "test", {"a": range(10), "b": range(11), "c": range(12)})
    opt = custom_opt(tmp_path, "--sample_size", "6", "--frame_stride", "2", "--extrap")
    ds = get_dataset(opt, "test")  # 6 frames one in every 2 need 11 stored frames
    assert [os.path.basename(f) for f in ds.files] == ["b.npy", "c.npy"]
    assert ("skipped 1 of 3 clips shorter than 11 frames (6 frames, one in every 2: --sample_size "
            "with --frame_stride 2)") in capsys.readouterr().out
    with pytest.raises(Exception, match="all 3 clips are shorter than 16 frames"):
        get_dataset(custom_opt(tmp_path, "--sample_size", "6", "--frame_stride", "3", "--extrap"), "test")


def test_full_rate_items(tmp_path):
    write_clips(tmp_path / "c" / "test", {"a": np.arange(9) * 20, "b": np.arange(9) * 20,
                                          "c": np.arange(9) * 20},
                times={"b": [0, 0.05, 0.2, 0.25, 0.4, 0.6, 0.8, 0.9, 1.0], "c": np.arange(8.0)})
    opt = custom_opt(tmp_path, "--sample_size", "4", "--frame_stride", "2", "--phase", "test_met",
                     "--test_dir", "unused")
    plain, full = get_dataset(opt, "test"), get_dataset(opt, "test", full_rate=True)
    for i in range(2):
        x, m, _ = plain[i]
        x2, m2, _, (frames, pos, how) = full[i]
        assert torch.equal(x, x2) and torch.equal(m, m2)  # the item is the one training sees
        assert frames.shape == (7, 3, 16, 16) and torch.equal(frames[::2], x)  # stored 0..6
        assert torch.allclose(frames[:, 0, 0, 0] * 255, torch.arange(7.0) * 20)
    assert full[0][3][2] == "index" and full[0][3][1].tolist() == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]
    pos, how = full[1][3][1], full[1][3][2]
    assert how == "times" and pos == pytest.approx([0, 0.125, 0.5, 0.625, 1, 1.25, 1.5])
    pos, how = full[2][3][1], full[2][3][2]  # a times file of the wrong length: index, and why
    assert how == "index: c.times.npy holds (8,) frame times for a clip of 9 frames"
    assert pos.tolist() == full[0][3][1].tolist()
    batch = Collate(opt, full.plan, "test")([full[0], full[1]])
    assert batch["full_rate_data"].shape == (2, 7, 3, 16, 16)
    assert batch["full_rate_positions"].dtype == torch.float32
    assert batch["full_rate_placement"] == ["index", "times"]
    assert batch["observed_data"].shape[1] == 2  # test_met: the even strided frames, stored 0 and 4


# ---------------------------------------------------------------- the evaluation, by hand


class StubModel(torch.nn.Module):
    """Returns a constant grey frame at each kept time and records the model times it was asked."""

    def __init__(self, level):
        super().__init__()
        self.level, self.asked = level, []

    def get_reconstruction(self, tp, truth, tp_obs, mask, keep):
        self.asked.append((tp.clone(), keep.clone()))
        k = int(keep.sum(1)[0])
        return torch.full((truth.size(0), k) + truth.shape[2:], self.level / 255.0), {}


def expected(pred_levels, truth_levels):
    """(mse mean, PSNR of the mean) of constant frames given as grey levels."""
    mse = [((p - t) / 255.0) ** 2 for p, t in zip(pred_levels, truth_levels)]
    m = math.fsum(mse) / len(mse)
    return m, psnr_from_mse(m)


def test_held_out_metrics_against_hand_computed_blends(tmp_path):
    # stride 2, regular interpolation, S = 4: observed stored frames 0 and 4 (slots 0 and 1),
    # scored stored frames 0..4 at 0, 1/4, 1/2 (test_met's odd frame), 3/4, 1 (observed again)
    a = [0, 60, 90, 160, 200, 0, 0, 0, 0]
    b = [40, 70, 120, 140, 240, 0, 0, 0, 0]
    write_clips(tmp_path / "c" / "test", {"a": a, "b": b},
                times={"b": [0, 0.05, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]})  # b's frame 1 at 1/8
    opt = custom_opt(tmp_path, "--sample_size", "4", "--frame_stride", "2", "--phase", "eval_continuous",
                     "--test_dir", "unused")
    batch = next(iter(build_test_loader(opt, full_rate=True)))
    model = StubModel(100)
    held = HeldOut(opt, None, torch.device("cpu"))
    held.update(model, batch)
    # one solve over both clips' times (slots / R, R = 2), each clip decoded at its own five
    (tp, keep), = model.asked
    assert tp.tolist() == pytest.approx([t / 2 for t in (0, 0.125, 0.25, 0.5, 0.75, 1)])
    assert keep.tolist() == [[True, False, True, True, True, True],
                             [True, True, False, True, True, True]]
    rows = {r["row"]: r for r in held.rows()}
    assert list(rows) == ["observed", "held out 1/4", "grid 1/2", "held out 3/4", "held out, all"]
    # blends by hand: a at 1/4, 1/2, 3/4 of 0 -> 200; b at 1/8 (its real time), 1/2, 3/4 of 40 -> 240
    blend = {"held out 1/4": ([50], [65]), "grid 1/2": ([100], [140]), "held out 3/4": ([150], [190])}
    copy = {"held out 1/4": ([0], [40]), "grid 1/2": ([0], [40]), "held out 3/4": ([0], [40])}
    for name, (ba, bb) in blend.items():
        i = ["held out 1/4", "grid 1/2", "held out 3/4"].index(name) + 1
        truth = [a[i], b[i]]
        assert rows[name]["n_frames"] == 2
        mse, psnr = expected(ba + bb, truth)
        assert rows[name]["blend"]["mse"] == pytest.approx(mse, abs=1e-12)
        assert rows[name]["blend"]["psnr"] == pytest.approx(psnr)
        mse, _ = expected(copy[name][0] + copy[name][1], truth)
        assert rows[name]["copy_last"]["mse"] == pytest.approx(mse, abs=1e-12)
        mse, _ = expected([100, 100], truth)
        assert rows[name]["model"]["mse"] == pytest.approx(mse, abs=1e-12)
    assert rows["held out 1/4"]["mean_position"] == pytest.approx((0.25 + 0.125) / 2)
    assert rows["held out 3/4"]["mean_position"] == pytest.approx(0.75)
    assert rows["observed"]["n_frames"] == 4 and rows["observed"]["blend"]["mse"] == 0
    all_mse, _ = expected([50, 150, 65, 190], [a[1], a[3], b[1], b[3]])
    assert rows["held out, all"]["blend"]["mse"] == pytest.approx(all_mse, abs=1e-12)
    assert held.placement == {"index": 1, "times": 1}


def test_frame_kinds_of_each_mode():
    for mode, want in [("regular_extrap", [("grid", 0), ("held_out", 1)]),
                       ("irregular_interp", [("observed", 0), ("held_out", 1), ("grid", 0)])]:
        opt = opt_for(mode, 2, "eval_continuous")
        n_obs = 3 if mode == "regular_extrap" else 8
        mask = torch.ones(1, n_obs, 1)
        if mode == "irregular_interp":
            mask[0, 1] = 0
        tf = 2 * (6 - 1) + 1 if mode == "regular_extrap" else 2 * (8 - 1) + 1
        scored, keys, rows = frame_kinds(opt, tf, n_obs, mask)
        assert keys == want
        if mode == "regular_extrap":  # stored 6..10: slots 3, 3.5, 4, 4.5, 5
            assert scored.nonzero().flatten().tolist() == [6, 7, 8, 9, 10]
            assert rows.tolist() == [[0, 1, 0, 1, 0]]
        else:  # every stored frame of the window; slot 1 unobserved
            assert int(scored.sum()) == tf and rows[0, :4].tolist() == [0, 1, 2, 1]


# ---------------------------------------------------------------- shapes: both truths agree

COMMON = ["--dataset", "shapes", "--input_size", "16", "--init_dim", "4", "--batch_size", "2",
          "--workers", "0", "--seed", "1", "--num_threads", "1", "--frame_stride", "2",
          "--sample_size", "6"]


@pytest.fixture(scope="module")
def shape_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stride")
    data = tmp / "data"
    generate_shapes_dataset(str(data / "shapes"), n_train=4, n_test=4, n_frames=12, size=16, progress=False)
    threads = torch.get_num_threads()
    out = {"data": str(data)}
    for kind, extra in (("interp", []), ("extrap", ["--extrap"])):
        storage = tmp / kind
        assert main.main(["--phase", "train", "--data_root", str(data), "--storage", str(storage),
                          "--max_steps", "1", "--name", kind] + COMMON + extra) == 0
        out[kind] = glob.glob(str(storage / "logs" / "*" / "*"))[0]
    yield out
    torch.set_num_threads(threads)


def eval_opt(runs, kind, *args):
    return main.get_opt(["--phase", "eval_continuous", "--test_dir", runs[kind], "--data_root", runs["data"],
                         "--workers", "0", "--num_threads", "1", "--no_lpips"] + list(args))


@pytest.mark.parametrize("kind", ["interp", "extrap"])
def test_shapes_stored_frames_are_the_analytic_truth(shape_runs, kind):
    run_opt = load_run(eval_opt(shape_runs, kind))[0]
    assert run_opt.frame_stride == 2
    batch = next(iter(build_test_loader(run_opt, full_rate=True)))
    meta = load_meta(os.path.join(shape_runs["data"], "shapes"))
    pos = batch["full_rate_positions"][0].tolist()
    gt = shapes_truth(meta, batch["clip_index"].tolist(), pos, run_opt)
    assert torch.equal(gt, batch["full_rate_data"])  # rendered at integer frames = stored frames


@pytest.mark.parametrize("kind", ["interp", "extrap"])
def test_shapes_analytic_and_held_out_paths_agree(shape_runs, kind):
    d = 4 if kind == "interp" else 2  # stored frames per input-frame interval
    res = eval_continuous(eval_opt(shape_runs, kind, "--fps_factor", str(d)))
    between = next(r for r in res["rows"] if r["time_set"] == f"between_x{d}")
    rows = [r for r in res["held_out"]["rows"] if r["kind"] in ("grid", "held_out") and r["position"] != "0"]
    assert [r["position"] for r in rows] == [str(fractions.Fraction(m, d)) for m in range(1, d)]
    n = sum(r["n_frames"] for r in rows)
    assert n == between["n_frames"]
    for key in ("mse", "ssim"):  # the same frames at the same times: equal up to summation order
        pooled = math.fsum(r["model"][key] * r["n_frames"] for r in rows) / n
        assert pooled == pytest.approx(between["model"][key], rel=1e-9)
        base = "blend" if kind == "interp" else "copy_last"
        pooled = math.fsum(r[base][key] * r["n_frames"] for r in rows) / n
        assert pooled == pytest.approx(between["baseline"][key], rel=1e-9)
    saved = json.load(open(os.path.join(shape_runs[kind], "continuous", "results.json")))
    assert saved["held_out"]["rows"] == res["held_out"]["rows"] and saved["frame_stride"] == 2
    assert os.path.isfile(res["held_out"]["plot"])
    if kind == "extrap":
        assert all(r["blend"] is None for r in res["held_out"]["rows"])


# ---------------------------------------------------------------- a video, end to end


def make_video(path, n, size=32, rate=30):
    """A bright square sliding across a grey background, one pixel per frame."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=rate)
        s.width = s.height = size
        s.pix_fmt = "yuvj420p"
        s.time_base = fractions.Fraction(1, rate)
        for p in range(n):
            img = np.full((size, size, 3), 60, np.uint8)
            img[8:20, 2 + p % 16:14 + p % 16] = 220
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = p
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def test_video_prepare_train_and_eval_with_a_stride(tmp_path):
    src = tmp_path / "videos"
    make_video(src / "walk.avi", 48)
    dst = tmp_path / "data" / "mine"
    prepare.prepare(prepare._parser().parse_args(
        ["custom", str(src), str(dst), "--size", "16", "--clip_len", "12", "--split_by", "clip",
         "--test_ratio", "0.5", "--quiet"]))
    assert len(glob.glob(str(dst / "test" / "*.times.npy"))) == 2
    common = ["--dataset", "custom", "--data_root", str(tmp_path / "data"), "--custom_root", "mine",
              "--input_size", "16", "--init_dim", "4", "-b", "2", "-j", "0", "--num_threads", "1",
              "--sample_size", "6", "--frame_stride", "2"]
    threads = torch.get_num_threads()
    try:
        assert main.main(["--phase", "train", "--storage", str(tmp_path / "s"), "--max_steps", "2",
                          "--extrap"] + common) == 0
        run = glob.glob(str(tmp_path / "s" / "logs" / "*" / "*"))[0]
        assert json.load(open(os.path.join(run, "options.json")))["frame_stride"] == 2
        evaluation = ["--test_dir", run, "--data_root", str(tmp_path / "data"), "-j", "0", "--no_lpips",
                      "--num_threads", "1"]
        assert main.main(["--phase", "test_met"] + evaluation) == 0
        res = eval_continuous(main.get_opt(["--phase", "eval_continuous"] + evaluation))
    finally:
        torch.set_num_threads(threads)
    held = res["held_out"]
    assert res["dataset"] == "custom" and "rows" not in res  # no analytic truth for a video
    assert held["placement"] == {"times": 2}  # the prepared clips' frame times place the frames
    assert [r["row"] for r in held["rows"]] == ["grid 0", "held out 1/2", "held out, all"]
    # extrapolation, S = 6: slots 3..5 predicted, the held-out frames between them (2 per clip)
    assert [r["n_frames"] for r in held["rows"]] == [6, 4, 4]
    assert all(r["model"]["psnr"] > 0 and r["copy_last"]["psnr"] > 0 for r in held["rows"])
    assert os.path.isfile(os.path.join(run, "continuous", "held_out.png"))
    assert os.path.isfile(os.path.join(run, "continuous", "results.json"))
