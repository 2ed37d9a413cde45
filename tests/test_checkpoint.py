"""Safe checkpoint files: atomic writes, finding by step, loading, RNG states."""
import json
import os
import random
from collections import OrderedDict

import numpy as np
import pytest
import torch

from utils.atomic import atomic_save_npy, atomic_write_json, atomic_write_text
from utils.checkpoint import (CheckpointError, atomic_save, checkpoint_path, checkpoint_step,
                              generator_state_from, list_checkpoints, load_checkpoint,
                              newest_checkpoint, resolve_checkpoint, rng_state,
                              save_checkpoint, set_rng_state)


class Opaque:  # a Python object that weights_only loading refuses
    def __init__(self):
        self.x = 1


def _touch_ckpt(folder, name, step=0):
    torch.save({"w": torch.full((2,), float(step))}, folder / name)


# ---------------------------------------------------------------- atomic writes

def test_atomic_save_round_trip(tmp_path):
    obj = {"a": torch.arange(5), "lr": 1e-3, "step": 7}
    atomic_save(obj, tmp_path / "sub" / "ckpt_00000007.pth")  # creates the folder
    back = load_checkpoint(tmp_path / "sub" / "ckpt_00000007.pth")
    assert torch.equal(back["a"], obj["a"]) and back["lr"] == 1e-3 and back["step"] == 7
    assert os.listdir(tmp_path / "sub") == ["ckpt_00000007.pth"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt_00000010.pth"
    atomic_save({"v": torch.tensor([1.0])}, path)
    real_save = torch.save

    def half_then_disk_full(obj, f, *a, **k):
        import io
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_save({"v": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [path.name]
    assert load_checkpoint(path)["v"].item() == 1.0


def test_keyboard_interrupt_mid_write_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({}, tmp_path / "ckpt_00000001.pth")
    assert os.listdir(tmp_path) == []


def test_atomic_text_and_json(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_json(tmp_path / "r.json", {"psnr": 30.5, "lpips": None, "bad": float("nan"),
                                            "per_index": [{"x": float("inf")}]})
    back = json.loads((tmp_path / "r.json").read_text())
    assert back == {"psnr": 30.5, "lpips": None, "bad": None, "per_index": [{"x": None}]}
    atomic_write_text(tmp_path / "a.txt", "second")  # replaces
    assert (tmp_path / "a.txt").read_text() == "second"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "r.json"]


def test_atomic_save_npy(tmp_path, monkeypatch):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)[:, ::-1]  # not contiguous
    atomic_save_npy(tmp_path / "x.npy", a)
    assert np.array_equal(np.load(tmp_path / "x.npy"), a)

    def interrupted(f, arr, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save_npy(tmp_path / "x.npy", a + 1)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["x.npy"] and np.array_equal(np.load(tmp_path / "x.npy"), a)


# ---------------------------------------------------------------- finding checkpoints

@pytest.fixture
def ckpt_dir(tmp_path):
    # written in an order unlike the step order; names that sort differently from steps
    for step, name in [(1000, "ckpt_00001000.pth"), (20, "ckpt_00000020.pth"),
                       (900, "ckpt_900.pth"), (100, "ckpt_00000100.pth")]:
        _touch_ckpt(tmp_path, name, step)
    for other in ["ckpt_latest.pth", ".ckpt_00005000.pth.1.abcd.tmp.pth", "notes.txt",
                  "ckpt_00003000.pth.tmp", "options.json"]:
        (tmp_path / other).write_bytes(b"x")
    (tmp_path / "ckpt_00009999.pth").mkdir()  # a folder is not a checkpoint
    return tmp_path


def test_list_sorted_by_step(ckpt_dir):
    found = list_checkpoints(ckpt_dir)
    assert [checkpoint_step(p) for p in found] == [20, 100, 900, 1000]
    assert newest_checkpoint(ckpt_dir).name == "ckpt_00001000.pth"
    assert sorted(p.name for p in found)[-1] == "ckpt_900.pth"  # name order would be wrong
    assert list_checkpoints(ckpt_dir / "missing") == []
    assert newest_checkpoint(ckpt_dir / "missing") is None


def test_checkpoint_names(tmp_path):
    assert checkpoint_path(tmp_path, 42).name == "ckpt_00000042.pth"
    assert checkpoint_step("x/ckpt_00000042.pth") == 42 and checkpoint_step("ckpt_a.pth") is None
    p = save_checkpoint({"netG": {}}, tmp_path, 3)
    assert p == tmp_path / "ckpt_00000003.pth" and p.is_file()


def test_resolve_variants(ckpt_dir, monkeypatch):
    assert resolve_checkpoint(ckpt_dir).name == "ckpt_00001000.pth"
    assert resolve_checkpoint(ckpt_dir, None).name == "ckpt_00001000.pth"
    assert resolve_checkpoint(ckpt_dir, "100").name == "ckpt_00000100.pth"
    assert resolve_checkpoint(ckpt_dir, 900).name == "ckpt_900.pth"
    assert resolve_checkpoint(ckpt_dir, "ckpt_00000020.pth").name == "ckpt_00000020.pth"
    absolute = ckpt_dir / "ckpt_00000100.pth"
    assert resolve_checkpoint("/nonexistent", str(absolute)) == absolute
    monkeypatch.chdir(ckpt_dir)
    assert resolve_checkpoint("/nonexistent", "ckpt_00000020.pth").name == "ckpt_00000020.pth"


def test_resolve_errors_say_what_was_looked_for(ckpt_dir, tmp_path_factory):
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint(ckpt_dir, "555")
    msg = str(e.value)
    assert "555" in msg and "ckpt_00000555.pth" in msg and "20, 100, 900, 1000" in msg
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(CheckpointError, match="not found: nope.pth"):
        resolve_checkpoint(ckpt_dir, "nope.pth")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(CheckpointError, match=str(empty)):
        resolve_checkpoint(empty)


# ---------------------------------------------------------------- loading

def test_corrupt_and_truncated_files(tmp_path):
    good = tmp_path / "ckpt_00000001.pth"
    torch.save({"w": torch.randn(100, 100)}, good)
    data = good.read_bytes()
    bad = {"ckpt_00000002.pth": data[: len(data) // 2], "ckpt_00000003.pth": b"garbage",
           "ckpt_00000004.pth": b""}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(tmp_path / name)
        assert name in str(e.value) and "--ckpt" in str(e.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "ckpt_00000009.pth")


def test_weights_only_loading(tmp_path):
    opt = {"state": {0: {"step": torch.tensor(3.0)}},
           "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}
    obj = {"netG": OrderedDict(w=torch.randn(3)), "optimizer_G": opt,
           "lr": 1e-3, "epoch": 2, "step": 10, "rng": rng_state(), "name": "run"}
    atomic_save(obj, tmp_path / "ckpt_00000010.pth")
    back = load_checkpoint(tmp_path / "ckpt_00000010.pth")  # weights_only=True
    assert back["step"] == 10 and back["optimizer_G"]["param_groups"][0]["betas"] == (0.9, 0.999)
    torch.save({"thing": Opaque()}, tmp_path / "ckpt_00000011.pth")
    with pytest.raises(CheckpointError, match="Python objects that weights_only loading refuses"):
        load_checkpoint(tmp_path / "ckpt_00000011.pth")


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    np.random.standard_normal()  # and in numpy's
    atomic_save({"rng": rng_state()}, tmp_path / "ckpt_00000001.pth")

    def draws():
        return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(),
                np.random.standard_normal(), torch.rand(3).tolist(),
                torch.randint(0, 9, (4,)).tolist())

    first = draws()
    draws()
    set_rng_state(load_checkpoint(tmp_path / "ckpt_00000001.pth")["rng"])
    assert draws() == first


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_rng_state_round_trip_cuda():
    state = rng_state()
    a = torch.rand(3, device="cuda")
    set_rng_state(state)
    assert torch.equal(torch.rand(3, device="cuda"), a)


# ---------------------------------------------------------------- generator state dicts

def test_generator_state_from_both_formats():
    sd = OrderedDict([("encoder.model.0.weight", torch.ones(2)), ("decoder.b", torch.zeros(1))])
    assert list(generator_state_from(sd)) == list(sd)
    full = {"netG": sd, "netD_img": {}, "netD_seq": {}, "optimizer_G": {}, "optimizer_D": {},
            "lr": 1e-3, "epoch": 1, "step": 5, "rng": {}}
    assert list(generator_state_from(full)) == list(sd)
    prefixed = OrderedDict([("module.encoder.model.0.weight", torch.ones(2)),
                            ("_orig_mod.module.decoder.b", torch.zeros(1))])
    out = generator_state_from({"netG": prefixed})
    assert list(out) == ["encoder.model.0.weight", "decoder.b"]
    assert torch.equal(out["encoder.model.0.weight"], torch.ones(2))
    with pytest.raises(CheckpointError, match="netG"):
        generator_state_from({"lr": 1e-3, "epoch": 1})
    with pytest.raises(CheckpointError):
        generator_state_from([1, 2])
