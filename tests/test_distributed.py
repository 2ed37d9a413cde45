"""torchrun / DistributedDataParallel on the CPU (gloo): two processes against one.

One torchrun launch (2 processes) runs this file as a script: the worker below plays every
distributed scenario through main.main(), one after the other in the same process group, and
writes what each process saw (per-step losses, the clips of each step, exit codes) as JSON.
The single-process references run in the pytest process. Tiny sizes, --num_threads 1.

What must match, and how closely (2 processes x --batch_size 2 against 1 process x 4, the
same 4 clips per step; a fixed-step solver, euler, so that no step size depends on the batch):
  * the clips of every step, the learning rate, the number of steps: exactly;
  * with --sync_bn (every BatchNorm synchronised, the decoder's per-step one included), the
    losses of step 1 (same weights, same clips, global statistics) to the float rounding of
    another summation order: relative 1e-5 (measured: 1e-7); later steps to relative 1e-3
    (measured: 2e-5, on the small adversarial term): the gradients are averaged over
    processes instead of summed in one batch, and Adamax divides each gradient by its own
    magnitude, so rounding-level differences in near-zero components become parameter
    differences of up to lr, which grow from step to step;
  * with per-process BatchNorm (the default) the losses must differ: each process normalises
    with the statistics of its own 2 clips, not of the 4 (measured: 1e-2 on the generator's
    loss at step 1);
  * a distributed resume gives the uninterrupted run's losses and weights exactly (the same
    processes doing the same arithmetic); sharded test_met gives one process's numbers
    exactly (whole batches per process; the means are exactly rounded sums).
"""
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LOSSES = ("loss_G", "loss_G_recon", "loss_recon", "loss_diff", "loss_D", "loss_D_seq", "loss_D_img",
          "loss_adv_G")
N_TRAIN, N_TEST = 8, 5  # 8 clips: 2 steps per epoch at 4 clips per step
STEPS = 4               # two epochs: the second one reshuffled
STOP_AT = 3             # the interrupted run stops mid-epoch 2
STEP1_RTOL, LATER_RTOL = 1e-5, 1e-3


def base_args(data_root, storage, batch_size, *extra):
    return ["--phase", "train", "--dataset", "shapes", "--data_root", str(data_root), "--storage", str(storage),
            "--input_size", "16", "--init_dim", "4", "--sample_size", "6", "--batch_size", str(batch_size),
            "--dec_diff", "euler", "--workers", "0", "--num_threads", "1", "--log_print_freq", "1",
            "--ckpt_save_freq", "1000", "--image_print_freq", "1000", *extra]


def run_dir(storage, kind="logs"):
    found = sorted((Path(storage) / kind).glob("*/*"))
    assert len(found) == 1, found
    return found[0]


@contextlib.contextmanager
def recording(records):
    """Record every training step's clips, losses and learning rate (trainer.train_step wrapped)."""
    import trainer
    real = trainer.train_step

    def step(model, netD_img, netD_seq, optG, optD, batch, opt, *args, **kwargs):
        out = real(model, netD_img, netD_seq, optG, optD, batch, opt, *args, **kwargs)
        records.append({"clips": batch["clip_index"].tolist(), "lr": optG.param_groups[0]["lr"],
                        **{k: float(out[k]) for k in LOSSES}})
        return out

    trainer.train_step = step
    try:
        yield
    finally:
        trainer.train_step = real


# ---------------------------------------------------------------------------- worker (torchrun)

def _scenario_sync_bn_module(work, rank):
    """SyncStepBatchNorm2d over 2 processes against StepBatchNorm2d / BatchNorm2d on the union."""
    import torch.distributed as tdist
    from models.decoder import StepBatchNorm2d
    from models.sync_batchnorm import SyncStepBatchNorm2d, convert_sync_batchnorm
    res = {}
    for n_steps in (3, 1):
        g = torch.Generator().manual_seed(n_steps)
        K, b, C = n_steps, 4, 5
        x = torch.randn(K, b, C, 6, 7, generator=g) * 3 + 1
        gy = torch.randn(K, b, C, 6, 7, generator=g)
        w, bias = torch.rand(C, generator=g) + 0.5, torch.randn(C, generator=g)

        def make(bn):
            with torch.no_grad():
                bn.weight.copy_(w)
                bn.bias.copy_(bias)
            return bn

        ref = make(StepBatchNorm2d(C) if n_steps > 1 else torch.nn.BatchNorm2d(C))
        xr = x.reshape(K * b, C, 6, 7).requires_grad_()
        yr = ref(xr, n_steps) if n_steps > 1 else ref(xr)
        (yr * gy.reshape_as(yr)).sum().backward()
        mine = slice(rank * b // 2, (rank + 1) * b // 2)
        net = convert_sync_batchnorm(torch.nn.Sequential(make(StepBatchNorm2d(C) if n_steps > 1
                                                              else torch.nn.BatchNorm2d(C))))
        bn = net[0]
        assert type(bn) is SyncStepBatchNorm2d
        xl = x[:, mine].reshape(-1, C, 6, 7).requires_grad_()
        yl = bn(xl, n_steps)
        (yl * gy[:, mine].reshape_as(yl)).sum().backward()
        grads = torch.cat([bn.weight.grad, bn.bias.grad])
        tdist.all_reduce(grads)  # what DDP sums (then averages) over processes

        def err(a, c):
            return float((a - c).abs().max())
        res[n_steps] = {
            "y": err(yl.detach().reshape(K, -1, C, 6, 7), yr.detach().reshape(K, b, C, 6, 7)[:, mine]),
            "grad_x": err(xl.grad.reshape(K, -1, C, 6, 7), xr.grad.reshape(K, b, C, 6, 7)[:, mine]),
            "grad_wb": err(grads, torch.cat([ref.weight.grad, ref.bias.grad])),
            "running": max(err(bn.running_mean, ref.running_mean), err(bn.running_var, ref.running_var)),
            "tracked": [int(bn.num_batches_tracked), int(ref.num_batches_tracked)],
        }
    return res


def _scenario_shapes_race(work, rank):
    """Both processes ask for the (not yet generated) shapes data set at the same moment."""
    import torch.distributed as tdist
    from dataloader import shapes
    shapes.N_TRAIN, shapes.N_TEST, shapes.N_FRAMES, shapes.SIZE = 6, 2, 4, 16  # this process only
    root = work / "race" / "shapes"
    tdist.barrier()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        shapes.ensure_shapes_dataset(str(root))
    tdist.barrier()
    return {"generated": "generating" in buf.getvalue(), "complete": shapes.is_complete(str(root)),
            "n_train": len(list((root / "train").glob("*.npy")))}


def _train(argv, records, poison=None):
    import main
    err = io.StringIO()
    with recording(records), contextlib.redirect_stderr(err):
        if poison:
            import trainer
            inner = trainer.train_step

            def poisoned(*a, **k):
                out = inner(*a, **k)
                poison(len(records), out)  # the step just recorded
                return out
            trainer.train_step = poisoned
            try:
                code = main.main(argv)
            finally:
                trainer.train_step = inner
        else:
            code = main.main(argv)
    return code, err.getvalue()


def _worker(work, data_root):
    import torch.distributed as tdist
    import trainer
    from utils import distributed as udist
    rank = int(os.environ["RANK"])
    real_cleanup = udist.cleanup
    udist.cleanup = lambda: None  # one process group for every scenario; destroyed at the end
    test_losses = []
    real_test_loss = trainer.Trainer.test_loss

    def test_loss(self):
        test_losses.append(real_test_loss(self))
        return test_losses[-1]
    trainer.Trainer.test_loss = test_loss
    out = {}
    torch.set_num_threads(1)
    udist.init_distributed(torch.device("cpu"))
    out["bn_module"] = _scenario_sync_bn_module(work, rank)
    out["shapes_race"] = _scenario_shapes_race(work, rank)

    for name, extra in (("sync", ["--sync_bn", "--test_every_epochs", "1"]), ("plain", [])):
        records = []
        code, _ = _train(base_args(data_root, work / name, 2, "--max_steps", str(STEPS), "--name", name, *extra),
                         records)
        out[name] = {"code": code, "steps": records}
    out["sync"]["test_losses"] = test_losses

    records = []  # the distributed resume: stop at STOP_AT, resume to STEPS
    code1, _ = _train(base_args(data_root, work / "resume", 2, "--max_steps", str(STOP_AT), "--name", "part"),
                      records)
    log_dir = str(run_dir(work / "resume"))
    code2, _ = _train(base_args(data_root, work / "resume", 2, "--max_steps", str(STEPS), "--resume", log_dir),
                      records)
    out["resume"] = {"code": [code1, code2], "steps": records}

    import main
    import tester
    results = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(run_dir(work / "plain")),
                                            "--workers", "0", "--num_threads", "1", "--data_root", str(data_root),
                                            "--no_lpips"]))
    out["test_met"] = {k: results[k] for k in ("model", "baseline", "n_clips", "step")}

    def nan_on_rank1(step, o):
        if rank == 1 and step == 2:
            o["loss_G"] = torch.tensor(float("nan"))
    records = []
    code, err = _train(base_args(data_root, work / "nan", 2, "--max_steps", "3"), records, nan_on_rank1)
    out["nan"] = {"code": code, "err": err, "steps": len(records)}

    def ctrl_c_on_rank1(step, o):
        if rank == 1 and step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if only this process got Ctrl-C
    records = []
    code, _ = _train(base_args(data_root, work / "stop", 2, "--max_steps", "6"), records, ctrl_c_on_rank1)
    out["stop"] = {"code": code, "steps": len(records),
                   "ckpts": sorted(p.name for p in run_dir(work / "stop", "checkpoints").glob("ckpt_*.pth"))}

    tdist.barrier()
    udist.cleanup = real_cleanup
    real_cleanup()
    out["destroyed"] = not tdist.is_initialized()
    (work / f"rank{rank}.json").write_text(json.dumps(out))


# ---------------------------------------------------------------------------- fixtures

def gloo_available():
    import torch.distributed as tdist
    return tdist.is_available() and tdist.is_gloo_available()


pytestmark = pytest.mark.skipif(not gloo_available(), reason="torch.distributed with gloo is unavailable")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from dataloader.shapes import generate_shapes_dataset
    root = tmp_path_factory.mktemp("ddp_data")
    generate_shapes_dataset(str(root / "shapes"), n_train=N_TRAIN, n_test=N_TEST, n_frames=14, size=24, seed=3,
                            progress=False)
    return root


@pytest.fixture(scope="module")
def ddp(tmp_path_factory, data_root):
    """The torchrun launch: every distributed scenario, 2 processes; {rank: what it saw}."""
    work = tmp_path_factory.mktemp("ddp_work")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    cmd = launcher + ["--standalone", "--nproc_per_node", "2", __file__, str(work), str(data_root)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return {r: json.loads((work / f"rank{r}.json").read_text()) for r in (0, 1)}, work, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def single(tmp_path_factory, data_root):
    """The one-process reference on the same global batch: --batch_size 4 (2 x 2)."""
    import main
    storage = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    records = []
    try:
        with recording(records):
            assert main.main(base_args(data_root, storage, 4, "--max_steps", str(STEPS), "--name", "single")) == 0
    finally:
        torch.set_num_threads(threads)
    return records


def union(ranks, step):
    return sorted(ranks[0]["steps"][step]["clips"] + ranks[1]["steps"][step]["clips"])


def mean_over_ranks(ranks, step, key):
    return (ranks[0]["steps"][step][key] + ranks[1]["steps"][step][key]) / 2


# ---------------------------------------------------------------------------- tests

def test_sync_step_batchnorm_equals_one_process(ddp):
    ranks, _, _ = ddp
    for r in (0, 1):
        for n_steps, e in ranks[r]["bn_module"].items():
            assert e["y"] < 1e-5 and e["grad_x"] < 1e-5, (r, n_steps, e)
            assert e["grad_wb"] < 1e-4 and e["running"] < 1e-6, (r, n_steps, e)  # sums of ~500 terms
            assert e["tracked"][0] == e["tracked"][1] == int(n_steps)


def test_shapes_generated_once_when_processes_race(ddp):
    ranks, _, _ = ddp
    seen = [ranks[r]["shapes_race"] for r in (0, 1)]
    assert sorted(s["generated"] for s in seen) == [False, True]
    assert all(s["complete"] and s["n_train"] == 6 for s in seen)


def test_same_clips_and_schedule_as_one_process(ddp, single):
    ranks, _, _ = ddp
    assert len(single) == STEPS
    for name in ("sync", "plain"):
        runs = [ranks[r][name] for r in (0, 1)]
        assert [x["code"] for x in runs] == [0, 0]
        assert all(len(x["steps"]) == STEPS for x in runs)
        for s in range(STEPS):
            assert not set(runs[0]["steps"][s]["clips"]) & set(runs[1]["steps"][s]["clips"])
            assert union(runs, s) == sorted(single[s]["clips"]), (name, s)
            assert runs[0]["steps"][s]["lr"] == runs[1]["steps"][s]["lr"] == single[s]["lr"]
    # per-epoch reshuffling: epoch 2 does not repeat epoch 1's order
    assert [sorted(single[s]["clips"]) for s in (0, 1)] != [sorted(single[s]["clips"]) for s in (2, 3)]


def test_sync_bn_losses_match_one_process(ddp, single):
    ranks, _, _ = ddp
    runs = [ranks[r]["sync"] for r in (0, 1)]
    for s in range(STEPS):
        rtol = STEP1_RTOL if s == 0 else LATER_RTOL
        for k in LOSSES:
            assert mean_over_ranks(runs, s, k) == pytest.approx(single[s][k], rel=rtol), (s, k)
    # the periodic test loss is reduced over processes: every process reports the same number
    assert len(runs[0]["test_losses"]) == 1 and runs[0]["test_losses"] == runs[1]["test_losses"]


def test_per_process_batchnorm_differs_from_one_process(ddp, single):
    """Without --sync_bn each process normalises with its own 2 clips' statistics (as the
    reference on one GPU with --batch_size 2): the generator's losses are not those of 4 clips."""
    ranks, _, _ = ddp
    runs = [ranks[r]["plain"] for r in (0, 1)]
    got, want = mean_over_ranks(runs, 0, "loss_G_recon"), single[0]["loss_G_recon"]
    assert abs(got - want) > 100 * STEP1_RTOL * abs(want)


def test_distributed_resume_equals_uninterrupted_run(ddp):
    ranks, work, _ = ddp
    for r in (0, 1):
        resumed, full = ranks[r]["resume"], ranks[r]["plain"]
        assert resumed["code"] == [0, 0]
        assert [x["clips"] for x in resumed["steps"]] == [x["clips"] for x in full["steps"]]
        for a, b in zip(resumed["steps"], full["steps"]):
            assert a == b  # losses, lr and clips, bit for bit
    a = torch.load(run_dir(work / "resume", "checkpoints") / f"ckpt_{STEPS:08d}.pth", weights_only=True)
    b = torch.load(run_dir(work / "plain", "checkpoints") / f"ckpt_{STEPS:08d}.pth", weights_only=True)
    for key in ("netG", "netD_img", "netD_seq"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in b[key]), key
    assert a["world_size"] == 2 and a["batch_size"] == 2 and len(a["rng_per_rank"]) == 2


def test_resume_with_another_process_count_keeps_the_clips(ddp, data_root, tmp_path):
    """A 2-process checkpoint taken mid-epoch, resumed by 1 process with --batch_size 4: the next
    step takes the next 4 clips of the epoch's order, the ones the 2 processes took together."""
    import main
    ranks, work, _ = ddp
    ckpt = tmp_path / "checkpoints" / f"ckpt_{STOP_AT:08d}.pth"
    ckpt.parent.mkdir()
    shutil.copy(run_dir(work / "resume", "checkpoints") / ckpt.name, ckpt)
    records, threads = [], torch.get_num_threads()
    try:
        with recording(records):
            assert main.main(base_args(data_root, tmp_path / "s", 4, "--max_steps", str(STOP_AT + 1),
                                       "--resume", str(ckpt))) == 0
    finally:
        torch.set_num_threads(threads)
    assert len(records) == 1 and sorted(records[0]["clips"]) == union([ranks[r]["plain"] for r in (0, 1)], STOP_AT)


def test_sharded_test_met_equals_one_process(ddp, data_root):
    import main
    import tester
    ranks, work, _ = ddp
    log_dir = run_dir(work / "plain")
    threads = torch.get_num_threads()
    try:
        one = tester.test_met(main.get_opt(["--phase", "test_met", "--test_dir", str(log_dir), "--workers", "0",
                                            "--num_threads", "1", "--data_root", str(data_root),
                                            "--no_lpips"]))
    finally:
        torch.set_num_threads(threads)
    assert one["n_clips"] == N_TEST
    for r in (0, 1):
        sharded = ranks[r]["test_met"]
        assert sharded["n_clips"] == N_TEST and sharded["step"] == one["step"] == STEPS
        assert sharded["model"] == one["model"] and sharded["baseline"] == one["baseline"]


def test_nan_on_one_process_stops_every_process(ddp):
    ranks, _, _ = ddp
    for r in (0, 1):
        nan = ranks[r]["nan"]
        assert nan["code"] == 2 and nan["steps"] == 2, nan
        assert "at step 2" in nan["err"] and "ckpt_00000001.pth" in nan["err"], nan["err"]


def test_ctrl_c_on_one_process_stops_every_process_at_the_same_step(ddp):
    ranks, _, _ = ddp
    for r in (0, 1):
        stop = ranks[r]["stop"]
        assert stop["code"] == 0 and stop["steps"] == 2, stop
        assert stop["ckpts"] == ["ckpt_00000001.pth", "ckpt_00000002.pth"]


def test_clean_exit_and_rank0_output(ddp):
    ranks, work, log = ddp
    assert ranks[0]["destroyed"] and ranks[1]["destroyed"]
    assert log.count("[train] 2 processes x --batch_size 2 = 4 clips per step") == 6  # rank 0 only, once a run
    assert [p.name for p in (run_dir(work / "sync") / "images").glob("test_*.png")] == ["test_00000002.png"]


if __name__ == "__main__":  # the torchrun worker: python tests/test_distributed.py WORK DATA_ROOT
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
