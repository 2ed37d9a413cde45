"""--resume restores the run (its options, its folders), the periodic test loss leaves no trace in
the networks, the partial last batch with its resume arithmetic, data_root from the run, the
workers' default, and the temp files of atomic writes. Tiny shapes runs (tests/test_cli.py's helpers)."""
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main
import tester
import trainer
from dataloader.loaders import ResumableSampler
from dataloader.shapes import generate_shapes_dataset
from test_cli import REPO, base_args, losses, train_run
from utils.atomic import TEMP_RE, remove_stale_temps, temp_path_for
from utils.checkpoint import list_checkpoints
from utils.train_state import TrainState, batches_per_epoch


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate_shapes_dataset(str(root / "shapes"), n_train=8, n_test=3, n_frames=22, size=24, seed=5,
                            progress=False)
    return root


def run_args(data_root, storage, *extra):
    """A run unlike the defaults in many options; --batch_size 3 on 8 clips: batches of 3, 3, 2."""
    return base_args(data_root, storage, "--extrap", "--batch_size", "3", "--seed", "7", "--lr", "2e-3",
                     "--name", "r", *extra)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------ resume restores the run

# mid-epoch, and right after the partial last batch with worker processes this time
@pytest.mark.parametrize("stop_at,workers", [(2, 0), (3, 2)])
def test_resume_alone_continues_exactly(stop_at, workers, data_root, tmp_path):
    full, _ = train_run(run_args(data_root, tmp_path / "a", "--max_steps", "5"))
    part, ckpt_dir = train_run(run_args(data_root, tmp_path / "b", "--max_steps", str(stop_at)))
    options = (part / "options.json").read_bytes()
    # only --resume and the new limit (and this machine's --workers): everything else is the run's
    opt = main.get_opt(["--phase", "train", "--resume", str(part), "--max_steps", "5", "--workers", str(workers)])
    trainer.train(opt)
    assert opt.dataset == "shapes" and opt.extrap and opt.batch_size == 3 and opt.input_size == 16
    a, b = losses(full), losses(part)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5] and [r["epoch"] for r in b] == [1, 1, 1, 2, 2]
    for ra, rb in zip(a, b):
        for k in ("loss_G", "loss_D", "loss_recon", "loss_adv_G", "lr"):
            assert ra[k] == rb[k], (ra["step"], k, ra[k], rb[k])
    assert (part / "options.json").read_bytes() == options  # never rewritten
    lines = [json.loads(x) for x in (part / "resumes.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["step"] == stop_at and lines[0]["time"]
    assert lines[0]["changed"] == {"max_steps": {"run": stop_at, "now": 5},
                                   **({"workers": {"run": 0, "now": 2}} if workers else {})}
    assert lines[0]["checkpoint"].endswith(f"ckpt_{stop_at:08d}.pth")
    ckpt = torch.load(ckpt_dir / "ckpt_00000005.pth", weights_only=True)
    assert ckpt["log_dir"] == str(part)


def test_resume_refuses_changed_options_in_one_message(data_root, tmp_path, capsys):
    log_dir, _ = train_run(run_args(data_root, tmp_path, "--max_steps", "1"))
    options = (log_dir / "options.json").read_bytes()
    code = main.main(["--phase", "train", "--resume", str(log_dir), "--dataset", "kth", "--init_dim", "8",
                      "--batch_size", "2", "--input_size", "16", "--extrap", "--max_steps", "3"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("error:") == 1
    assert "--dataset: run has shapes, command line says kth" in err
    assert "--init_dim: run has 4, command line says 8" in err
    assert "--batch_size: run has 3 x 1 process(es) = 3 clips per step, command line says 2 x 1" in err
    assert "--input_size:" not in err and "--extrap:" not in err  # given, but the run's values
    assert (log_dir / "options.json").read_bytes() == options and not (log_dir / "resumes.jsonl").exists()
    assert [p.name for p in list_checkpoints(Path(json.loads(options)["checkpoint_dir"]))] == ["ckpt_00000001.pth"]


def test_resume_of_a_finished_run_exits_0_with_one_line(data_root, tmp_path, capsys):
    """A scheduler that always passes --resume: a run at its --max_steps or --epoch is not a failure."""
    log_dir, _ = train_run(run_args(data_root, tmp_path, "--max_steps", "2"))
    capsys.readouterr()
    code = main.main(["--phase", "train", "--resume", str(log_dir), "--workers", "0"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and out.count("\n") == 1, (out, err)
    assert "already at step 2 of its --max_steps 2" in out and "give a larger --max_steps" in out
    done, _ = train_run(run_args(data_root, tmp_path / "e", "--epoch", "1"))  # 3 steps: one epoch
    capsys.readouterr()
    code = main.main(["--phase", "train", "--resume", str(done), "--workers", "0"])
    out, err = capsys.readouterr()
    assert code == 0 and "give a larger --epoch" in out.splitlines()[-1] and err == ""
    assert not (log_dir / "resumes.jsonl").exists() and not (done / "resumes.jsonl").exists()  # nothing resumed
    code = main.main(["--phase", "train", "--resume", str(done), "--workers", "0", "--epoch", "2", "--max_steps", "4"])
    assert code == 0 and [r["step"] for r in losses(done)] == [1, 2, 3, 4]


def test_checkpoint_whose_log_folder_moved_is_a_clear_error(data_root, tmp_path, capsys):
    log_dir, ckpt_dir = train_run(run_args(data_root, tmp_path, "--max_steps", "1"))
    shutil.move(str(log_dir), str(tmp_path / "moved"))
    path = ckpt_dir / "ckpt_00000001.pth"
    code = main.main(["--phase", "train", "--resume", str(path), "--max_steps", "3", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "has no options.json" in err and "--resume LOG_FOLDER" in err
    assert not list(ckpt_dir.glob("events.out*")) and not (ckpt_dir / "train_log.jsonl").exists()
    # given the moved log folder, the run goes on
    assert main.main(["--phase", "train", "--resume", str(tmp_path / "moved"), "--max_steps", "2",
                      "--workers", "0"]) == 0


def test_architecture_mismatch_is_a_clear_error(data_root, tmp_path, capsys):
    log_dir, ckpt_dir = train_run(run_args(data_root, tmp_path, "--max_steps", "1"))
    path = ckpt_dir / "ckpt_00000001.pth"
    obj = torch.load(path, weights_only=True)
    key = next(k for k in obj["netG"] if k.endswith("weight"))
    obj["netG"][key] = torch.zeros(3, 3)
    torch.save(obj, path)
    code = main.main(["--phase", "train", "--resume", str(log_dir), "--max_steps", "2", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "netG does not fit the network built from the run's options" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ BatchNorm and the test loss

def test_periodic_test_loss_leaves_every_buffer_bit_identical(data_root, tmp_path):
    opt = main.get_opt(["--phase", "train", *run_args(data_root, tmp_path, "--max_steps", "1")])
    tr = trainer.Trainer(opt)
    trainer.train_step(tr.model_ddp, tr.netD_img_ddp, tr.netD_seq_ddp, tr.state.optG, tr.state.optD,
                       next(iter(tr.train_loader)), opt, tr.state.scaler)  # running stats away from init
    model = tr.state.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    old = copy.deepcopy(model)  # what the loss was before the fix: the running stats updated
    with torch.no_grad():
        results = [float(old.compute_all_losses(b)["loss"]) for b in tr.test_loader]
    value = tr.test_loss()
    assert value == sum(results) / len(results)  # the same loss as before the fix
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    bn = [k for k in before if "running_mean" in k]
    assert bn and any(not torch.equal(before[k], old.state_dict()[k]) for k in bn)  # the test can fail
    assert model.training
    tr.log.finish("test", 1, Path("x"))


# ------------------------------------------------------------------ partial last batch, resume arithmetic

def _state(world, batch_size, batch_in_epoch):
    opt = type("O", (), {"batch_size": batch_size})()
    net = torch.nn.Linear(1, 1)
    st = TrainState(opt, net, net, net, None, None, rank=0, world=world)
    st.batch_in_epoch = batch_in_epoch
    return st


def _epoch_order(n_clips, world, batch_size, epoch=2):
    """The clips of each global step of an epoch (all processes' batches together)."""
    ds = list(range(n_clips))
    shares = []
    for r in range(world):
        s = ResumableSampler(ds, num_replicas=world, rank=r, seed=0)
        s.set_epoch(epoch)
        shares.append([i for i, _ in s])
    steps = batches_per_epoch(n_clips, world, batch_size)
    return [sorted(c for sh in shares for c in sh[k * batch_size:(k + 1) * batch_size]) for k in range(steps)]


@pytest.mark.parametrize("n,old,new", [(8, (1, 3), (1, 2)), (8, (1, 3), (2, 2)), (11, (2, 2), (1, 3)),
                                       (11, (1, 4), (3, 1)), (7, (1, 2), (1, 7))])
def test_resume_position_with_a_partial_last_batch(n, old, new):
    """After s steps of (world, batch) `old`, a resume with `new` starts at the first new global batch
    not fully consumed: it re-takes fewer than one new global batch of clips, skips none; after the
    epoch's last (partial) batch it starts the next epoch."""
    (ow, ob), (nw, nb) = old, new
    old_steps, new_steps = batches_per_epoch(n, ow, ob), batches_per_epoch(n, nw, nb)
    assert old_steps == -(-(n // ow) // ob)
    done_old = _epoch_order(n, ow, ob)
    for s in range(old_steps + 1):
        st = _state(nw, nb, s)
        st._convert_position({"world_size": ow, "batch_size": ob}, n, new_steps)
        if s == old_steps:
            assert st.batch_in_epoch == new_steps  # the epoch is closed
            continue
        consumed = [c for step in done_old[:s] for c in step]
        rest = [c for step in _epoch_order(n, nw, nb)[st.batch_in_epoch:] for c in step]
        assert len(consumed) == s * ob * ow  # only the last batch is partial
        skipped = set(range(n)) - set(consumed) - set(rest)
        assert skipped <= set(range(n)) - {c for step in _epoch_order(n, nw, nb) for c in step}  # dropped by N procs
        assert len(set(consumed) & set(rest)) < nb * nw


# ------------------------------------------------------------------ data options from the run, workers

def test_test_met_takes_data_root_from_the_run(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    generate_shapes_dataset(str(data / "shapes"), n_train=4, n_test=2, n_frames=22, size=24, seed=5, progress=False)
    log_dir, _ = train_run(base_args(data, tmp_path / "s", "--max_steps", "1"))
    monkeypatch.chdir(tmp_path)  # ./dataset does not hold it: the run's --data_root is used
    res = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--no_lpips",
                                        "--workers", "0"]))
    assert res["n_clips"] == 2
    shutil.move(str(data), str(tmp_path / "elsewhere"))
    for phase in ("test_met", "generate", "eval_continuous"):
        lpips = [] if phase == "generate" else ["--no_lpips"]  # generate reads no --no_lpips (a note)
        code = main.main(["--phase", phase, "--test_dir", str(log_dir), "--workers", "0"] + lpips)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--data_root" in err and "moved" in err, err
        assert not (data / "shapes").exists()  # not silently generated again at the old place
    res = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--no_lpips",
                                        "--workers", "0", "--data_root", str(tmp_path / "elsewhere")]))
    assert res["n_clips"] == 2


def test_run_options_given_on_the_command_line_are_reported(data_root, tmp_path, capsys):
    log_dir, _ = train_run(base_args(data_root, tmp_path, "--max_steps", "1"))
    capsys.readouterr()
    tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--no_lpips", "--workers", "0",
                                  "--input_size", "32", "--max_test_batches", "1"]))
    assert "--input_size 32 ignored (the run has 16)" in capsys.readouterr().out


def test_default_workers_fit_the_machine(monkeypatch, capsys):
    cpus = len(os.sched_getaffinity(0))
    assert main.get_opt([]).workers == min(4, cpus)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert main.get_opt([]).workers == 1
    assert main.get_opt(["-j", "3"]).workers == 3
    with pytest.raises(SystemExit):
        main.get_opt(["--help"])
    assert "CPUs available" in capsys.readouterr().out


def test_given_options_are_recorded():
    opt = main.get_opt(["--dataset", "kth", "-b", "8", "--no-run_backwards", "--extrap"])
    assert opt.explicit == ["batch_size", "dataset", "extrap", "run_backwards"]
    assert main.get_opt([]).explicit == []


# ------------------------------------------------------------------ temp files of atomic writes

def test_temp_names_never_end_in_pth_or_json(tmp_path):
    for name in ("ckpt_00000036.pth", "options.json", "x.npy", "grid.png"):
        tmp = Path(temp_path_for(tmp_path / name))
        assert tmp.name.endswith(".tmp") and tmp.name.startswith(f".{name}.") and TEMP_RE.match(tmp.name)
    assert temp_path_for(tmp_path / "v.mp4", keep_suffix=True).endswith(".tmp.mp4")
    for name in ("c.pth", "r.json"):
        with pytest.raises(ValueError, match="must not end in"):
            temp_path_for(tmp_path / name, keep_suffix=True)
    assert not TEMP_RE.match("ckpt_00000036.pth") and not TEMP_RE.match("ckpt_00003000.pth.tmp")


def test_kill_9_during_a_checkpoint_write_leaves_a_temp_that_a_resume_removes(data_root, tmp_path, capsys):
    log_dir, ckpt_dir = train_run(run_args(data_root, tmp_path, "--max_steps", "1"))
    code = ("import sys, time\n"
            "from utils import atomic\n"
            "def slow(f):\n"
            "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
            "atomic.atomic_write_with(sys.argv[1], slow)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ckpt_dir / "ckpt_00000036.pth")], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in ckpt_dir.iterdir() if p.name.startswith(".")]
    assert len(left) == 1 and left[0].endswith(".tmp") and f".{proc.pid}." in left[0]
    # earlier naming, one in the log folder, and one of a process still running (kept)
    pid = dead_pid()
    (ckpt_dir / f".ckpt_00000037.pth.{pid}.0123abcd.tmp.pth").write_bytes(b"half")
    (log_dir / "images" / f".train_00000002.png.{pid}.89abcdef.tmp").write_bytes(b"half")
    live = log_dir / f".results.json.{os.getpid()}.deadbeef.tmp"
    live.write_bytes(b"being written")
    capsys.readouterr()
    assert main.main(["--phase", "train", "--resume", str(log_dir), "--max_steps", "2", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert f"removed 2 temporary file(s) left by a killed process in {ckpt_dir}" in out
    assert f"removed 1 temporary file(s) left by a killed process in {log_dir}" in out
    assert [p.name for p in ckpt_dir.iterdir() if p.name.startswith(".")] == []
    assert live.exists() and remove_stale_temps(log_dir) == []
