"""Every data set through build_loaders in every sampling mode and phase; transforms."""
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import main  # noqa: E402
from dataloader import (DATASET_ROOTS, ResumableSampler, build_loaders,  # noqa: E402
                        build_test_loader, get_dataset)
from dataloader.shapes import generate_shapes_dataset  # noqa: E402

SIZE = 32
LENGTHS = {"train": [25, 30, 40, 22, 21], "test": [24, 26, 20]}
FRAMES = {  # (H, W, C), dtype of each data set's files
    "kth": ((120, 160, 3), np.uint8),
    "penn": ((90, 120, 3), np.uint8),
    "mgif": ((48, 48, 3), np.uint8),
    "hurricane": ((30, 32, 4), np.float32),
    "custom": ((40, 40, 3), np.uint8),
}
KEYS = {"observed_data", "observed_tp", "observed_mask", "data_to_predict", "tp_to_predict",
        "mask_predicted_data", "original_data_to_predict", "mode", "clip_index"}
MODES = {
    "regular_interp": (),
    "regular_extrap": ("--extrap",),
    "irregular_interp": ("--irregular",),
    "irregular_extrap": ("--irregular", "--extrap"),
}


def write_clips(folder, hwc, dtype, lengths, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, t in enumerate(lengths):
        if dtype == np.uint8:
            x = rng.integers(0, 256, (t, *hwc), dtype=np.uint8)
        else:
            x = rng.normal(size=(t, *hwc)).astype(dtype)
        np.save(os.path.join(folder, f"clip{i:03d}.npy"), x)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    for name, (hwc, dtype) in FRAMES.items():
        sub = "mine" if name == "custom" else DATASET_ROOTS[name]
        for split, lengths in LENGTHS.items():
            write_clips(os.path.join(root, sub, split), hwc, dtype, lengths, seed=len(split))
    generate_shapes_dataset(os.path.join(root, "shapes"), n_train=5, n_test=3, n_frames=24,
                            size=32, seed=3, progress=False)
    return root


def make_opt(root, dataset, *args, phase="train", **overrides):
    argv = ["--data_root", root, "--dataset", dataset, "--input_size", str(SIZE), "-b", "2",
            "-j", "0", "--custom_root", "mine", "--device", "cpu", *args]
    if phase != "train":
        argv += ["--phase", phase, "--test_dir", "unused"]
    opt = main.get_opt(argv)
    for k, v in overrides.items():
        setattr(opt, k, v)
    return opt


def expected_lengths(opt, test_time):
    s, w = opt.sample_size, opt.window_size
    if opt.irregular:
        return (w // 2, w // 2) if opt.extrap else (w, w)
    if opt.extrap:
        return s // 2, s // 2
    return (s // 2, s) if test_time else (s // 2, s // 2)


def check_batch(batch, opt, mode, test_time, n_clips):
    assert set(batch) == KEYS
    assert batch["mode"] == mode
    t_obs, t_pred = expected_lengths(opt, test_time)
    b = batch["observed_data"].shape[0]
    side = SIZE
    assert batch["observed_data"].shape == (b, t_obs, 3, side, side)
    assert batch["data_to_predict"].shape == (b, t_pred, 3, side, side)
    assert batch["original_data_to_predict"].shape == (b, t_pred, 3, side, side)
    assert batch["observed_tp"].shape == (t_obs,) and batch["tp_to_predict"].shape == (t_pred,)
    assert batch["observed_mask"].shape == (b, t_obs, 1)
    assert batch["mask_predicted_data"].shape == (b, t_pred, 1)
    for k, v in batch.items():
        if torch.is_tensor(v):
            assert v.device.type == "cpu"
            assert v.dtype == (torch.int64 if k == "clip_index" else torch.float32), k
    assert batch["clip_index"].min() >= 0 and batch["clip_index"].max() < n_clips
    om, pm = batch["observed_mask"], batch["mask_predicted_data"]
    assert (batch["observed_data"] * (1 - om)[..., None, None]).abs().sum() == 0
    if test_time and not opt.irregular and not opt.extrap:
        # the reference passes the full clip as data_to_predict here (golden test case)
        assert torch.equal(batch["data_to_predict"], batch["original_data_to_predict"])
    else:
        assert (batch["data_to_predict"] * (1 - pm)[..., None, None]).abs().sum() == 0
    assert torch.all(batch["observed_tp"][1:] > batch["observed_tp"][:-1])
    assert torch.all(batch["tp_to_predict"][1:] > batch["tp_to_predict"][:-1])
    s = opt.sample_size
    if opt.irregular and not opt.extrap:
        assert (om.sum(1) == s).all() and (om[:, 0] == 1).all() and (om[:, -1] == 1).all()
        assert (pm.sum(1) == (opt.window_size - s if test_time else s)).all()
    elif opt.irregular:
        assert (om.sum(1) == s // 2).all() and (pm.sum(1) == s // 2).all()
        assert (om[:, 0] == 1).all() and (pm[:, -1] == 1).all()
    elif test_time and not opt.extrap:
        assert (om == 1).all() and pm[0, :, 0].tolist() == [0, 1] * (s // 2 - 1) + [0, 0]
    else:
        assert (om == 1).all() and (pm == 1).all()


@pytest.mark.parametrize("phase", ["train", "test_met"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("dataset", list(FRAMES) + ["shapes"])
def test_loaders_every_mode(data_root, dataset, mode, phase):
    opt = make_opt(data_root, dataset, *MODES[mode], phase=phase)
    train_loader, test_loader = build_loaders(opt)
    n_train, n_test = len(train_loader.dataset), len(test_loader.dataset)
    batch = next(iter(train_loader))
    check_batch(batch, opt, "train", False, n_train)
    test_time = phase == "test_met"
    batches = list(test_loader)
    assert sum(b["observed_data"].shape[0] for b in batches) == n_test
    for b in batches:
        check_batch(b, opt, "test", test_time, n_test)
    if dataset != "hurricane":
        for b in batches:
            assert b["original_data_to_predict"].min() >= 0 and b["original_data_to_predict"].max() <= 1


def test_length_filter_counts(data_root, capsys):
    opt = make_opt(data_root, "kth", "--irregular", window_size=24, sample_size=10)
    ds = get_dataset(opt, "train")
    assert len(ds) == 3  # 25, 30, 40 of 25, 30, 40, 22, 21
    assert "skipped 2 of 5 clips shorter than 24 frames" in capsys.readouterr().out
    assert [os.path.basename(f) for f in ds.files] == ["clip000.npy", "clip001.npy", "clip002.npy"]


def test_files_sorted_and_lengths(data_root):
    ds = get_dataset(make_opt(data_root, "penn"), "train")
    assert ds.files == sorted(ds.files) and ds.lengths == LENGTHS["train"]


def _all(loader):
    return [b for b in loader]


@pytest.mark.parametrize("mode", ["irregular_interp", "irregular_extrap", "regular_interp"])
def test_test_split_deterministic(data_root, mode):
    opt = make_opt(data_root, "kth", *MODES[mode], phase="test_met")
    _, loader = build_loaders(opt)
    first, second = _all(loader), _all(loader)
    _, fresh = build_loaders(make_opt(data_root, "kth", *MODES[mode], phase="test_met"))
    for a, b, c in zip(first, second, _all(fresh)):
        for k in ("observed_data", "observed_mask", "mask_predicted_data", "data_to_predict"):
            assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k])
    if mode.startswith("irregular"):  # positions differ between clips
        masks = torch.cat([b["observed_mask"] for b in first])
        assert not all(torch.equal(masks[0], m) for m in masks[1:])


@pytest.mark.parametrize("workers", [0, 2])
def test_train_reproducible_given_seed(data_root, workers):
    def first_two():
        opt = make_opt(data_root, "kth", "--irregular", "-j", str(workers), "--seed", "5")
        loader, _ = build_loaders(opt)
        it = iter(loader)
        return [next(it) for _ in range(2)]
    a, b = first_two(), first_two()
    for x, y in zip(a, b):
        assert torch.equal(x["clip_index"], y["clip_index"])
        assert torch.equal(x["observed_mask"], y["observed_mask"])
        assert torch.equal(x["observed_data"], y["observed_data"])


def test_loader_options(data_root):
    opt = make_opt(data_root, "mgif", "-j", "2")
    train_loader, test_loader = build_loaders(opt)
    assert train_loader.num_workers == 2 and train_loader.persistent_workers
    assert not train_loader.drop_last and not test_loader.drop_last  # the reference keeps partial batches
    assert not train_loader.pin_memory  # --device cpu
    assert len(train_loader) == 3  # 5 clips, batches of 2: ceil(5 / 2), as the reference
    opt = make_opt(data_root, "mgif", "-j", "0")
    train_loader, _ = build_loaders(opt)
    assert train_loader.num_workers == 0 and not train_loader.persistent_workers


def test_train_sampler_epochs_and_resume(data_root):
    opt = make_opt(data_root, "kth")
    train_loader, _ = build_loaders(opt)
    sampler = train_loader.sampler
    assert isinstance(sampler, ResumableSampler)
    sampler.set_epoch(0)
    e0 = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == e0 and sorted(i for i, _ in e0) == list(range(5))
    assert all(epoch == 0 for _, epoch in e0)  # (clip index, epoch) pairs
    orders = set()
    for e in range(6):
        sampler.set_epoch(e)
        orders.add(tuple(sampler))
    assert len(orders) > 1  # reshuffled per epoch
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.set_epoch(3)
    sampler.set_start(2)
    assert list(sampler) == full[2:]
    sampler.set_epoch(3)
    assert list(sampler) == full  # set_start applies to one pass only
    sampler.set_epoch(4)
    auto = list(sampler)
    assert auto[0][1] == 4
    sampler.set_start(4)
    batches = list(train_loader)  # 1 sample left: the partial last batch, as the reference
    assert len(batches) == 1 and batches[0]["clip_index"].tolist() == [auto[4][0]]


def test_partial_last_batch_and_worker_count(data_root):
    """5 clips in batches of 2: 2 full batches and one of 1 per epoch, every clip once, and the same
    batches with 0 or 2 workers."""
    def epoch(workers):
        loader, _ = build_loaders(make_opt(data_root, "kth", "--irregular", "-j", str(workers), "--seed", "4"))
        loader.sampler.set_epoch(1)
        return list(loader)
    a, b = epoch(0), epoch(2)
    assert [x["clip_index"].size(0) for x in a] == [2, 2, 1]
    assert sorted(i for x in a for i in x["clip_index"].tolist()) == list(range(5))
    for x, y in zip(a, b):
        assert torch.equal(x["clip_index"], y["clip_index"]) and torch.equal(x["observed_data"], y["observed_data"])


def test_train_split_smaller_than_a_batch_trains(data_root):
    """Fewer clips than --batch_size: one partial batch per epoch (the reference trains on it)."""
    loader, _ = build_loaders(make_opt(data_root, "kth", "-b", "8"))
    assert [x["clip_index"].size(0) for x in loader] == [5]


def test_distributed_shares(data_root):
    ds = get_dataset(make_opt(data_root, "kth"), "train")
    shares = [[i for i, _ in ResumableSampler(ds, num_replicas=2, rank=r, seed=0)] for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 2 and not set(shares[0]) & set(shares[1])


def test_build_test_loader_alone(tmp_path):
    write_clips(os.path.join(str(tmp_path), "moving-gif", "test"), (32, 32, 3), np.uint8, [12, 14, 16])
    loader = build_test_loader(make_opt(str(tmp_path), "mgif", "--irregular", phase="test_met",
                                        window_size=12))
    batches = list(loader)
    assert [b["clip_index"].tolist() for b in batches] == [[0, 1], [2]]
    assert all(b["mode"] == "test" for b in batches)
    assert (batches[0]["mask_predicted_data"].sum(1) == 12 - 10).all()


# --- transforms ---

def _item(opt, split, index=0):
    return get_dataset(opt, split)[index][0]  # (T, C, H, W)


def test_kth_centre_crop(tmp_path):
    x = np.zeros((12, 120, 161, 3), np.uint8)
    x[..., 0] = np.arange(161, dtype=np.uint8)[None, None, :]  # column index in red
    for split in ("train", "test"):
        os.makedirs(tmp_path / "kth_action" / split)
        np.save(tmp_path / "kth_action" / split / "a.npy", x)
    opt = make_opt(str(tmp_path), "kth", input_size=120)
    frames = _item(opt, "test")  # test split: no flip or rotation
    assert frames.shape == (5, 3, 120, 120)
    # round((161 - 120) / 2) = round(20.5) = 20, as the reference rounds
    assert torch.equal(frames[0, 0, 0], torch.arange(20, 140).float() / 255)


def test_resize_to_input_size_and_square(data_root):
    for dataset in ("penn", "mgif", "custom", "kth", "shapes"):
        frames = _item(make_opt(data_root, dataset), "test")
        assert frames.shape[1:] == (3, SIZE, SIZE), dataset


def test_hurricane_channels_and_padding(data_root):
    opt = make_opt(data_root, "hurricane")
    raw = np.load(os.path.join(data_root, "Hurricane", "test", "clip000.npy"))
    frames = _item(opt, "test")  # (5, 3, 32, 32)
    assert frames.shape == (5, 3, 32, 32)
    assert (frames[:, :, 0] == 0).all() and (frames[:, :, -1] == 0).all()
    want = torch.from_numpy(raw[0:10:2, :, :, :3]).permute(0, 3, 1, 2)
    assert torch.equal(frames[:, :, 1:-1], want)  # not scaled, first 3 channels
    train = _item(opt, "train")
    assert (train[:, :, 0] == 0).all()  # no rotation for hurricane


def test_input_norm(data_root):
    a = _item(make_opt(data_root, "mgif"), "test")
    b = _item(make_opt(data_root, "mgif", "--input_norm"), "test")
    assert torch.allclose(b, (a - 0.5) / 0.5) and b.min() >= -1 and b.max() <= 1


def test_augmentation_only_on_train(data_root):
    opt = make_opt(data_root, "mgif", "--extrap", input_size=48)
    test_ds = get_dataset(opt, "test")
    raw = np.load(test_ds.files[0])
    assert torch.equal(test_ds[0][0], torch.from_numpy(raw[:10]).permute(0, 3, 1, 2).float() / 255)
    train_ds = get_dataset(opt, "train")
    changed = 0
    for i in range(len(train_ds)):
        frames = train_ds[i][0]
        raw = np.load(train_ds.files[i])
        # find the window: rotation + flip make the frames differ from every raw window
        windows = [torch.from_numpy(raw[s:s + 10]).permute(0, 3, 1, 2).float() / 255
                   for s in range(len(raw) - 9)]
        changed += not any(torch.equal(frames, w) for w in windows)
    assert changed == len(train_ds)


def test_shapes_not_augmented(data_root):
    opt = make_opt(data_root, "shapes", "--extrap")
    ds = get_dataset(opt, "train")
    for i in range(len(ds)):
        frames = ds[i][0]
        raw = np.load(ds.files[i])
        windows = [torch.from_numpy(raw[s:s + 10]).permute(0, 3, 1, 2).float() / 255
                   for s in range(len(raw) - 9)]
        assert any(torch.equal(frames, w) for w in windows)


def test_grey_rank3_clips(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        os.makedirs(tmp_path / "moving-gif" / split)
        np.save(tmp_path / "moving-gif" / split / "a.npy", rng.integers(0, 256, (12, 32, 32), dtype=np.uint8))
        np.save(tmp_path / "moving-gif" / split / "b.npy", rng.integers(0, 256, (12, 32, 32, 1), dtype=np.uint8))
    opt = make_opt(str(tmp_path), "mgif")
    for i in (0, 1):
        frames = _item(opt, "test", i)
        assert frames.shape == (5, 3, 32, 32)
        assert torch.equal(frames[:, 0], frames[:, 1]) and torch.equal(frames[:, 0], frames[:, 2])
