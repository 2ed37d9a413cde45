"""main.py end to end on tiny data: train, resume, test_met in every mode, and the errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import main
import tester
import trainer
from dataloader.shapes import generate_shapes_dataset
from utils.checkpoint import list_checkpoints
from utils.metrics import load_lpips

REPO = Path(__file__).resolve().parents[1]
MODES = {"interp": [], "extrap": ["--extrap"], "irregular": ["--irregular"],
         "extrap_irregular": ["--extrap", "--irregular"]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate_shapes_dataset(str(root / "shapes"), n_train=8, n_test=3, n_frames=22, size=24, seed=5)
    return root


def base_args(data_root, storage, *extra):
    return ["--dataset", "shapes", "--data_root", str(data_root), "--input_size", "16", "--init_dim", "4",
            "--batch_size", "2", "--workers", "0", "--storage", str(storage), "--log_print_freq", "1",
            "--image_print_freq", "2", "--ckpt_save_freq", "3", "--test_every_epochs", "2", *extra]


def train_run(args):
    opt = main.get_opt(["--phase", "train", *args])
    trainer.train(opt)
    return Path(opt.log_dir), Path(opt.checkpoint_dir)


def losses(log_dir):
    return [json.loads(line) for line in (log_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", list(MODES))
def test_train_resume_and_test_met(mode, data_root, tmp_path):
    log_dir, ckpt_dir = train_run(base_args(data_root, tmp_path, "--max_steps", "2", *MODES[mode]))
    assert [p.name for p in list_checkpoints(ckpt_dir)] == ["ckpt_00000001.pth", "ckpt_00000002.pth"]
    saved = json.loads((log_dir / "options.json").read_text())
    assert saved["extrap"] == ("--extrap" in MODES[mode]) and saved["checkpoint_dir"] == str(ckpt_dir)
    assert (log_dir / "images" / "train_00000002.png").is_file()
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(log_dir))
    # resume to step 3, then evaluate the newest checkpoint
    opt = main.get_opt(["--phase", "train", *base_args(data_root, tmp_path, "--max_steps", "3", *MODES[mode]),
                        "--resume", str(log_dir)])
    trainer.train(opt)
    assert list_checkpoints(ckpt_dir)[-1].name == "ckpt_00000003.pth"
    assert [r["step"] for r in losses(log_dir)] == [1, 2, 3]
    res = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--workers", "0",
                                        "--data_root", str(data_root), "--no_lpips"]))
    assert res["step"] == 3 and res["n_clips"] == 3
    for who in ("model", "baseline"):
        assert np.isfinite(res[who]["psnr"]) and 0 < res[who]["ssim"] <= 1
        assert res[who]["lpips"] is None
    written = json.loads((log_dir / "results.json").read_text())
    assert written["model"]["psnr"] == pytest.approx(res["model"]["psnr"])
    assert (log_dir / "metrics_by_index.csv").read_text().startswith("frame_index,ssim")
    assert (log_dir / "metrics_by_index.png").is_file()
    n_pred = {"interp": 4, "extrap": 5, "irregular": 10, "extrap_irregular": 5}[mode]
    assert res["model"]["n_frames"] == 3 * n_pred


@pytest.mark.parametrize("stop_at", [3, 4])  # mid-epoch and at an epoch boundary (4 batches per epoch)
def test_resume_gives_the_same_losses(stop_at, data_root, tmp_path):
    full, _ = train_run(base_args(data_root, tmp_path / "a", "--max_steps", "6", "--name", "full"))
    part, _ = train_run(base_args(data_root, tmp_path / "b", "--max_steps", str(stop_at), "--name", "part"))
    opt = main.get_opt(["--phase", "train", *base_args(data_root, tmp_path / "b", "--max_steps", "6"),
                        "--resume", str(part)])
    trainer.train(opt)
    a, b = losses(full), losses(part)
    assert [r["step"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b):
        for k in ("loss_G", "loss_D", "loss_recon", "loss_adv_G", "lr"):
            assert ra[k] == rb[k], (ra["step"], k, ra[k], rb[k])


def test_nan_loss_stops_and_names_the_step(data_root, tmp_path, monkeypatch):
    real = trainer.train_step
    calls = {"n": 0}

    def poisoned(*args, **kw):
        out = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            out["loss_G"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(trainer, "train_step", poisoned)
    with pytest.raises(trainer.RunError, match=r"at step 2.*Last good checkpoint: .*ckpt_00000001\.pth"):
        train_run(base_args(data_root, tmp_path, "--max_steps", "4"))


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(data_root, tmp_path):
    cmd = [sys.executable, "main.py", "--phase", "train",
           *base_args(data_root, tmp_path, "--epoch", "1000", "--ckpt_save_freq", "100000")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "step 3:" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    text = "".join(seen) + out
    assert proc.returncode == 0, text[-2000:]
    assert "stopped by request" in text
    ckpts = list((tmp_path / "checkpoints").rglob("ckpt_*.pth"))
    assert len(ckpts) == 2  # step 1 and the one written on stop


def test_lpips_path_in_test_met(data_root, tmp_path, monkeypatch):
    """test_met with LPIPS: the lpips package's linear weights over a random AlexNet."""
    log_dir, _ = train_run(base_args(data_root, tmp_path, "--max_steps", "1"))
    monkeypatch.setattr(tester, "load_lpips", lambda device, **kw: load_lpips(device, pretrained_backbone=False))
    res = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--workers", "0",
                                        "--data_root", str(data_root)]))
    assert res["model"]["lpips"] is not None and res["model"]["lpips"] > 0
    assert all(r["lpips"] is not None for r in res["model"]["per_index"])


def test_saved_pngs_give_the_in_memory_metrics(data_root, tmp_path):
    """The reference's path (PNG files) and the in-memory quantisation agree exactly."""
    from PIL import Image
    from utils.metrics import MetricAccumulator
    log_dir, _ = train_run(base_args(data_root, tmp_path, "--max_steps", "1"))
    res = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--workers", "0",
                                        "--data_root", str(data_root), "--no_lpips", "--save_images"]))
    pred_dir, gt_dir = log_dir / "result_images" / "pred", log_dir / "result_images" / "gt"
    names = sorted(os.listdir(pred_dir))
    assert len(names) == res["model"]["n_frames"] == len(os.listdir(gt_dir))

    def load(path):
        return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255

    acc = MetricAccumulator(None, ssim_impl="skimage")
    for n in names:
        acc.update(load(pred_dir / n)[None, None], load(gt_dir / n)[None, None])
    s = acc.summary()
    assert s["ssim"] == pytest.approx(res["model"]["ssim"], abs=1e-9)
    assert s["mse"] == pytest.approx(res["model"]["mse"], abs=1e-12)


def test_paper_format_checkpoint_evaluates(data_root, tmp_path):
    """A bare generator state dict (the paper's checkpoints) loads and evaluates."""
    log_dir, ckpt_dir = train_run(base_args(data_root, tmp_path, "--max_steps", "1"))
    full = torch.load(ckpt_dir / "ckpt_00000001.pth", weights_only=True)
    torch.save(full["netG"], ckpt_dir / "ckpt_00000009.pth")
    res = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--workers", "0",
                                        "--data_root", str(data_root), "--no_lpips"]))
    assert res["checkpoint"].endswith("ckpt_00000009.pth") and np.isfinite(res["model"]["psnr"])
    res1 = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--workers", "0",
                                         "--data_root", str(data_root), "--no_lpips", "--ckpt", "1"]))
    assert res1["step"] == 1 and res1["model"]["psnr"] == pytest.approx(res["model"]["psnr"])


# ------------------------------------------------------------------ errors
def run_main(args, capsys):
    code = main.main(args)
    return code, capsys.readouterr().err


def test_error_test_dir_without_options(tmp_path, capsys):
    code, err = run_main(["--phase", "test_met", "--test_dir", str(tmp_path)], capsys)
    assert code == 2 and "has no options.json" in err


def test_error_run_without_checkpoints(data_root, tmp_path, capsys):
    log_dir, ckpt_dir = train_run(base_args(data_root, tmp_path, "--max_steps", "1"))
    for p in list_checkpoints(ckpt_dir):
        p.unlink()
    code, err = run_main(["--phase", "test_met", "--test_dir", str(log_dir), "--data_root", str(data_root)], capsys)
    assert code == 2 and "no checkpoint" in err.lower()


def test_error_corrupt_checkpoint(data_root, tmp_path, capsys):
    log_dir, ckpt_dir = train_run(base_args(data_root, tmp_path, "--max_steps", "1"))
    (ckpt_dir / "ckpt_00000005.pth").write_bytes(b"not a checkpoint")
    code, err = run_main(["--phase", "test_met", "--test_dir", str(log_dir), "--data_root", str(data_root)], capsys)
    assert code == 2 and "ckpt_00000005.pth" in err and "--ckpt" in err


def test_error_missing_dataset(tmp_path, capsys):
    code, err = run_main(["--phase", "train", "--dataset", "kth", "--data_root", str(tmp_path),
                          "--storage", str(tmp_path / "s")], capsys)
    assert code == 2 and "python -m dataset.prepare kth" in err and "train/*.npy" in err


def test_error_resume_missing(tmp_path, capsys):
    code, err = run_main(["--phase", "train", "--dataset", "shapes", "--resume", str(tmp_path / "nope"),
                          "--storage", str(tmp_path / "s")], capsys)
    assert code == 2 and "--resume" in err


@pytest.mark.parametrize("args,message", [
    (["--sample_size", "9"], "--sample_size must be even"),
    (["--irregular", "--sample_size", "24"], "must not exceed --window_size"),
    (["--input_size", "30"], "divisible by 2**n_downs"),
    (["--phase", "test_met"], "needs --test_dir"),
    (["--dataset", "ucf"], "invalid choice"),
    (["--no_such_option"], "unrecognized arguments"),
    (["--batch_size", "0"], "positive integer"),
    (["--max_steps", "-1"], "--max_steps must be >= 0"),
    (["--workers", "-2"], "--workers must be >= 0"),
])
def test_bad_options_refused_at_parse_time(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main.get_opt(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args,unused", [
    (["--phase", "train", "--times", "0,1", "--no_lpips"], ["no_lpips", "times"]),
    (["--phase", "test_met", "--test_dir", "RUN", "--fps_factor", "2", "--resume", "x"], ["fps_factor", "resume"]),
    (["--phase", "generate", "--test_dir", "RUN", "--times", "0,1", "--save_images"], ["save_images"]),
    (["--phase", "eval_continuous", "--test_dir", "RUN", "--fps_factor", "2", "--no_lpips"], []),
])
def test_options_a_phase_does_not_read_are_named(args, unused, capsys):
    opt = main.get_opt(args)
    err = capsys.readouterr().err
    assert main.note_unused_options(opt) == unused
    for k in unused:
        assert f"--{k} (read by" in err
    assert ("does not read" in err) == bool(unused)
