"""Phase generate (frames at any time stamps) and eval_continuous, on tiny shapes runs."""
import glob
import json
import math
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import main
from dataloader import build_test_loader, get_dataset, make_batch
from continuous import eval_continuous, shapes_truth
from dataloader.shapes import generate_shapes_dataset, load_meta
from dataloader.timeaxis import slots_per_unit, time_steps
from generate import generate
from runs import RunError, load_run
from tester import Evaluator
from utils.timeline import synthesize
from utils.visualize import to_uint8_hwc, write_gif

COMMON = ["--dataset", "shapes", "--input_size", "16", "--init_dim", "4", "--batch_size", "2",
          "--workers", "0", "--seed", "1", "--num_threads", "1"]
# one thread: tiny convolutions are ~100x slower with two threads on a busy 2-core machine


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of one training step each (interpolation, extrapolation) on 4+4 shapes clips."""
    tmp = tmp_path_factory.mktemp("gen")
    data = tmp / "data"
    generate_shapes_dataset(str(data / "shapes"), n_train=4, n_test=4, n_frames=12, size=16,
                            progress=False)
    threads = torch.get_num_threads()
    out = {"data": str(data), "tmp": tmp}
    for kind, extra in (("interp", []), ("extrap", ["--extrap"])):
        storage = tmp / kind
        assert main.main(["--phase", "train", "--data_root", str(data), "--storage", str(storage),
                          "--max_steps", "1", "--name", kind] + COMMON + extra) == 0
        out[kind] = glob.glob(str(storage / "logs" / "*" / "*"))[0]
    yield out
    torch.set_num_threads(threads)  # --num_threads set it for the whole process


def opt_for(runs, kind, *args, phase="generate"):
    return main.get_opt(["--phase", phase, "--test_dir", runs[kind], "--data_root", runs["data"],
                         "--workers", "0", "--num_threads", "1",
                         "--out", str(runs["tmp"] / "out" / kind)] + list(args))


def same(a, b, device):
    """Bit-exact on the CPU; cuDNN may pick other kernels between calls, so a tolerance there."""
    if device.type == "cpu":
        return torch.equal(a, b)
    return torch.allclose(a.float(), b.float(), atol=1e-4 if a.is_floating_point() else 1.0)


def read_times(out):
    with open(os.path.join(out, "times.json")) as f:
        return json.load(f)


def test_frames_at_off_grid_times_in_order(runs):
    res = generate(opt_for(runs, "interp", "--input", "1", "--times", "0,0.3,1.25,2.5,3.9"))
    assert res["frames"].shape == (5, 3, 16, 16)
    meta = read_times(res["out"])
    assert meta["times"] == [0, 0.3, 1.25, 2.5, 3.9]
    assert np.all(np.diff(meta["model_times"]) > 0)
    assert np.load(os.path.join(res["out"], "frames.npy")).shape == (5, 16, 16, 3)
    res = generate(opt_for(runs, "interp", "--fps_factor", "3"))  # 5 observed frames -> 13
    assert read_times(res["out"])["times"] == pytest.approx([j / 3 for j in range(13)])
    res = generate(opt_for(runs, "extrap", "--fps_factor", "2"))  # frames 5..9 at half steps
    assert read_times(res["out"])["times"] == pytest.approx([5 + j / 2 for j in range(9)])
    res = generate(opt_for(runs, "extrap", "--fps_factor", "4", "--horizon", "12"))
    assert len(res["times"]) == 29 and res["times"][-1] == 12


def test_observed_times_reproduce_the_test_path(runs):
    for kind in ("interp", "extrap"):
        opt = opt_for(runs, kind, phase="test_met")
        run_opt, model, _, _, device = load_run(opt)
        batch = next(iter(build_test_loader(run_opt)))
        ev = Evaluator(run_opt, model, device, None)
        rate = slots_per_unit(run_opt)
        obs, mask = batch["observed_data"], batch["observed_mask"]
        if kind == "interp":  # test_met predicts the odd frames 1, 3, 5, 7 = input frames k + 0.5
            times = [0.5, 1.5, 2.5, 3.5]
        else:  # the predicted half, frames 5..9
            times = [5, 6, 7, 8, 9]
        pred, _, _ = ev.predict(batch)
        assert same(synthesize(model, obs, mask, times, rate, run_opt.extrap), pred, device)
        if kind == "interp":  # the training grid: the observed frames at k / (S/2)
            clips = obs
            train_batch = make_batch(clips, torch.ones(clips.shape[:2] + (1,)), time_steps(
                get_dataset(run_opt, "test").plan), run_opt)
            pred, _, _ = ev.predict(train_batch)
            assert same(synthesize(model, obs, mask, range(5), rate, False), pred, device)
    # end to end, one clip: generate's frames.npy = the test path on that clip alone
    opt = opt_for(runs, "extrap", "--input", "2", "--fps_factor", "1")
    res = generate(opt)
    run_opt, model, _, _, device = load_run(opt)
    x, m, _ = get_dataset(run_opt, "test")[2]
    batch = make_batch(x[None], m[None], time_steps(get_dataset(run_opt, "test").plan), run_opt)
    pred, gt, _ = Evaluator(run_opt, model, device, None).predict(batch)
    assert res["times"] == [5, 6, 7, 8, 9]
    frames = torch.from_numpy(np.load(os.path.join(res["out"], "frames.npy")))
    assert same(frames, torch.from_numpy(to_uint8_hwc(pred[0])), device)


def test_truth_matches_the_data_at_grid_times(runs):
    for kind, times in (("interp", range(5)), ("extrap", range(5, 10))):
        run_opt = load_run(opt_for(runs, kind, phase="test_met"))[0]
        batch = next(iter(build_test_loader(run_opt)))
        meta = load_meta(os.path.join(runs["data"], "shapes"))
        gt = shapes_truth(meta, batch["clip_index"].tolist(), list(times), run_opt)
        want = batch["observed_data"] if kind == "interp" else batch["data_to_predict"]
        assert torch.equal(gt, want)


def test_files_written_and_readable(runs, tmp_path):
    out = generate(opt_for(runs, "extrap", "--input", "0", "--fps_factor", "2", "--out",
                           str(tmp_path / "o")))["out"]
    meta = read_times(out)
    n_show = len(meta["shown_times"])
    assert n_show == 5 + 9 and meta["shown_observed"][:5] == [True] * 5
    with Image.open(os.path.join(out, "generated.gif")) as im:
        assert im.n_frames == n_show
    cap = cv2.VideoCapture(os.path.join(out, "generated.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == n_show
    png = cv2.imread(os.path.join(out, "strip.png"))
    assert png is not None and png.shape[1] >= 96 * n_show
    assert np.load(os.path.join(out, "frames.npy")).dtype == np.uint8
    assert not glob.glob(os.path.join(out, "*.tmp*"))


def test_file_inputs(runs, tmp_path):
    clip = np.load(sorted(glob.glob(os.path.join(runs["data"], "shapes", "test", "*.npy")))[0])
    np.save(tmp_path / "c.npy", clip[:4].astype(np.float32) / 255)  # float in [0, 1]
    res = generate(opt_for(runs, "interp", "--input", str(tmp_path / "c.npy"), "--fps_factor", "2",
                           "--observed", "0,3"))
    assert res["frames"].shape[0] == 7 and read_times(res["out"])["observed_frames"] == [0, 3]
    big = np.repeat(np.repeat(clip[:3], 2, axis=1), 2, axis=2)  # 32x32: resized to 16
    write_gif(big, tmp_path / "c.gif")
    res = generate(opt_for(runs, "extrap", "--input", str(tmp_path / "c.gif"), "--times", "3,3.5"))
    assert res["frames"].shape == (2, 3, 16, 16)


def _bad_npy(tmp, name, arr):
    path = tmp / name
    np.save(path, arr)
    return str(path)


def test_errors(runs, tmp_path, capsys):
    z = np.zeros((4, 16, 16, 3), np.uint8)
    # the options on their own: refused by main when parsing, before any run is loaded
    option_cases = [
        ("generate", ["--times", ","], "no time stamps"),
        ("generate", ["--times", "0,1,0.5"], "must increase"),
        ("generate", ["--times", "0,1,1"], "duplicate time stamp 1"),
        ("generate", ["--times=-1,0"], "negative time stamp -1"),
        ("generate", ["--times", "0,a"], "comma-separated numbers"),
        ("generate", ["--times", "1", "--fps_factor", "2"], "either --times or --fps_factor"),
        ("generate", ["--fps_factor", "-2"], "must be >= 1"),
        ("generate", ["--observed", "0,4,4"], "twice"),
        ("generate", ["--horizon=-1"], "--horizon must be >= 0"),
        ("eval_continuous", ["--fps_factor", "1"], "eval_continuous needs --fps_factor >= 2"),
    ]
    for phase, args, message in option_cases:
        with pytest.raises(SystemExit) as e:
            opt_for(runs, "interp", *args, phase=phase)
        assert e.value.code == 2 and message in capsys.readouterr().err, (args, message)
    # what the run and its input cannot serve: refused when they are loaded
    cases = [
        ("interp", ["--times", "0,4.5"], "outside the observed span [0, 4]"),
        ("interp", ["--horizon", "6"], "trained only between"),
        ("extrap", ["--times", "4.5,6"], "extrapolation run"),
        ("extrap", ["--times", "2"], "cannot reconstruct or interpolate"),
        ("extrap", ["--horizon", "4"], "ends before"),
        ("interp", ["--input", "4"], "out of range, the test split of shapes has 4 clips"),
        ("interp", ["--input", str(tmp_path / "nope.npy")], "no such file"),
        ("interp", ["--input", _bad_npy(tmp_path, "r.npy", z[0])], "expected frames (T, H, W, 3)"),
        ("interp", ["--input", _bad_npy(tmp_path, "c.npy", np.zeros((4, 16, 16, 4), np.uint8))],
         "4 channels"),
        ("interp", ["--input", _bad_npy(tmp_path, "s.npy", np.zeros((4, 16, 24, 3), np.uint8))],
         "crop the input to a square"),
        ("interp", ["--input", _bad_npy(tmp_path, "f.npy", np.full((4, 16, 16, 3), 2.0))], "[0, 1]"),
        ("interp", ["--input", _bad_npy(tmp_path, "e.npy", z[:0])], "no frames"),
        ("interp", ["--input", _bad_npy(tmp_path, "i.npy", z.astype(np.int64))], "dtype int64"),
        ("interp", ["--observed", "0,2"], "must include 0 and 4"),
        ("interp", ["--observed", "0,4,9"], "index 9 is out of range"),
    ]
    for kind, args, message in cases:
        with pytest.raises(RunError) as e:
            generate(opt_for(runs, kind, *args))
        assert message in str(e.value), (args, str(e.value))
    # eval_continuous refuses data sets without a true frame at any time
    other = tmp_path / "run"
    other.mkdir()
    saved = json.load(open(os.path.join(runs["interp"], "options.json")))
    json.dump({**saved, "dataset": "kth"}, open(other / "options.json", "w"))
    with pytest.raises(RunError, match="or with --frame_stride k > 1"):
        eval_continuous(main.get_opt(["--phase", "eval_continuous", "--test_dir", str(other)]))
    with pytest.raises(RunError, match="must exceed the training horizon"):
        eval_continuous(opt_for(runs, "extrap", "--horizon", "9", "--no_lpips", phase="eval_continuous"))
    # the CLI turns them into one line on stderr and exit code 2
    assert main.main(["--phase", "generate", "--test_dir", runs["interp"], "--data_root", runs["data"],
                      "--times", "9"]) == 2


@pytest.mark.parametrize("kind", ["interp", "extrap"])
def test_eval_continuous_table(runs, kind):
    res = eval_continuous(opt_for(runs, kind, "--no_lpips", "--max_test_batches", "1",
                                  phase="eval_continuous"))
    names = [r["time_set"] for r in res["rows"]]
    assert names == (["grid", "between_x4", "beyond"] if kind == "extrap" else ["grid", "between_x4"])
    for row in res["rows"]:
        assert row["n_frames"] > 0
        for who in ("model", "baseline"):
            assert math.isfinite(row[who]["ssim"]) and math.isfinite(row[who]["psnr"])
        assert row["model"]["lpips"] is None
    between = res["rows"][1]
    assert all(t != int(t) for t in between["scored_times"])  # never on the training grid
    saved = json.load(open(os.path.join(runs[kind], "continuous", "results.json")))
    assert saved["rows"] == res["rows"]
    shutil.rmtree(os.path.join(runs[kind], "continuous"))
