"""Model behaviour beyond the golden cases: shapes, solvers, gradients, checkpoints, devices."""
import re

import pytest
import torch

import main
from models import VidODE, apply_performance, create_netD, train_step, update_learning_rate
from models.ode import EulerStep, solver_method
from tests.golden_utils import golden_dir


def small_opt(**kw):
    args = ["--input_size", "16", "--init_dim", "4", "--batch_size", "3"]
    opt = main.get_opt(args)
    for k, v in kw.items():
        setattr(opt, k, v)
    return opt


def random_batch(opt, b=3, h=None, w=None, T=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = h or opt.input_size
    w = w or opt.input_size
    T = T or (opt.sample_size // 2)
    tp = torch.arange(2 * T if opt.extrap else T, dtype=torch.float32) / (2 * T if opt.extrap else T)
    data = torch.rand(b, 2 * T if opt.extrap else T, 3, h, w, generator=g)
    obs, pred = (data[:, :T], data[:, T:]) if opt.extrap else (data, data)
    obs_tp, pred_tp = (tp[:T], tp[T:]) if opt.extrap else (tp, tp)
    return {"observed_data": obs, "observed_tp": obs_tp, "observed_mask": torch.ones(b, T, 1),
            "data_to_predict": pred, "tp_to_predict": pred_tp,
            "mask_predicted_data": torch.ones(b, pred.size(1), 1)}


@pytest.mark.parametrize("n_downs", [1, 2, 3])
@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_output_shapes(n_downs, n_layers):
    opt = small_opt(n_downs=n_downs, n_layers=n_layers, input_size=32)
    model = VidODE(opt)
    batch = random_batch(opt, b=3)
    res = model.compute_all_losses(batch)
    assert res["pred_y"].shape == (3, 5, 3, 32, 32)
    base = opt.init_dim * 2 ** n_downs
    assert res["z0"].shape == (3, base, 32 // 2 ** n_downs, 32 // 2 ** n_downs)
    assert res["optical_flow"].shape == (3, 5, 2, 32, 32)
    assert torch.isfinite(res["loss"])


@pytest.mark.parametrize("extrap", [False, True])
def test_non_square_frames_and_odd_batch(extrap):
    opt = small_opt(extrap=extrap)
    model = VidODE(opt)
    res = model.compute_all_losses(random_batch(opt, b=5, h=16, w=24))
    assert res["pred_y"].shape == (5, 5, 3, 16, 24)


@pytest.mark.parametrize("method", main.SOLVERS)
def test_every_solver(method):
    opt = small_opt(dec_diff=method)
    model = VidODE(opt)
    assert model.diffeq_solver.method == solver_method(method)
    res = model.compute_all_losses(random_batch(opt))
    assert res["pred_y"].shape[1] == 5 and torch.isfinite(res["loss"])


def test_adams_is_an_alias():
    assert solver_method("adams") == "implicit_adams"
    assert "implicit_adams" in main._build_parser().format_help()


def test_per_sample_step_selection():
    """Each sample keeps its own masked steps (irregular masks differ between samples)."""
    opt = small_opt(irregular=True)
    model = VidODE(opt)
    batch = random_batch(opt, b=2, T=6)
    m = torch.tensor([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1]], dtype=torch.float32).unsqueeze(-1)
    batch["mask_predicted_data"] = m
    pred, extra = model.get_reconstruction(batch["tp_to_predict"], batch["observed_data"],
                                           batch["observed_tp"], batch["observed_mask"], m)
    assert pred.shape[1] == 4
    for i in range(2):
        kept = extra["sol_y"][i][m[i, :, 0].bool()]
        assert torch.equal(kept, extra["sol_y"][i, m[i, :, 0].bool()])
    bad = m.clone()
    bad[0, 0] = 0
    with pytest.raises(ValueError, match="same number of steps"):
        model.get_reconstruction(batch["tp_to_predict"], batch["observed_data"], batch["observed_tp"],
                                 batch["observed_mask"], bad)


@pytest.mark.parametrize("extrap,irregular", [(False, False), (True, False), (False, True), (True, True)])
def test_training_step_reaches_every_parameter(extrap, irregular):
    opt = small_opt(extrap=extrap, irregular=irregular)
    model = VidODE(opt)
    netD_img, netD_seq, optD = create_netD(opt)
    optG = torch.optim.Adamax(model.parameters(), lr=opt.lr)
    T = opt.sample_size if irregular else opt.sample_size // 2
    batch = random_batch(opt, b=2, T=T)
    if irregular:  # same count per sample, different positions
        m = torch.zeros(2, T, 1)
        m[0, [0, 2, 3, T - 1]] = 1
        m[1, [0, 1, 5, T - 1]] = 1
        batch["observed_mask"] = m
        batch["observed_data"] = batch["observed_data"] * m.unsqueeze(-1).unsqueeze(-1)
        if not extrap:
            batch["mask_predicted_data"] = m
            batch["data_to_predict"] = batch["observed_data"]
        else:
            batch["mask_predicted_data"] = m.flip(1)
    # the sequence discriminator's width follows sample_size: match it to the kept steps
    opt.sample_size = int(batch["mask_predicted_data"][0].sum()) * (1 if irregular and not extrap else 2)
    netD_img, netD_seq, optD = create_netD(opt)
    out = train_step(model, netD_img, netD_seq, optG, optD, batch, opt)
    for k, v in out.items():
        if isinstance(v, torch.Tensor) and v.dim() == 0:
            assert torch.isfinite(v), k
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    # no parameter is left with an all-zero gradient (the unused z0 std half is only half a tensor)
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert zero == [], zero
    for net in (netD_img, netD_seq):
        assert all(p.grad is not None for p in net.parameters())


def test_learning_rate_decay():
    opt = small_opt()
    model = VidODE(opt)
    optG = torch.optim.Adamax(model.parameters(), lr=1e-3)
    lrs = [update_learning_rate(optG, 0.99, 1e-4) for _ in range(300)]
    assert lrs[0] == pytest.approx(0.99e-3)
    assert lrs[-1] == pytest.approx(1e-4)


@pytest.mark.parametrize("performance", [None, {"recompute": True},
                                         {"channels_last": True, "compile": True}])
def test_state_dict_matches_reference_keys_at_default_options(performance):
    """The reference's keys and shapes, also with the speed and memory options applied."""
    path = golden_dir() / "state_dict_keys_default.txt"
    want = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^(\S+) \(([\d, ]*)\) (\w+)$", line)
        if m and not m.group(1).startswith(("layer_", "last_conv")):
            shape = tuple(int(s) for s in m.group(2).split(",") if s.strip())
            want[m.group(1)] = shape
    model = VidODE(main.get_opt([]))
    plain_order = list(model.state_dict())
    if performance is not None:
        apply_performance(model, **performance)
        assert list(model.state_dict()) == plain_order
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    # the encoder ODE's function is used by one Euler step per frame, under the reference's key
    assert isinstance(model.encoder_z0.z0_diffeq_solver, EulerStep)
    n_params = sum(p.numel() for p in model.parameters())
    assert f"VidODE: {n_params}" in path.read_text()
    netD_img, netD_seq, _ = create_netD(main.get_opt([]))
    assert f"netD_img (in_ch=3): {sum(p.numel() for p in netD_img.parameters())}" in path.read_text()


def test_reference_layout_checkpoint_round_trip(tmp_path):
    opt = small_opt()
    a = VidODE(opt)
    a.compute_all_losses(random_batch(opt))  # move the BatchNorm buffers
    torch.save(a.state_dict(), tmp_path / "ckpt.pth")  # the reference saves the bare state dict
    b = VidODE(opt)
    b.load_state_dict(torch.load(tmp_path / "ckpt.pth", weights_only=True), strict=True)
    batch = random_batch(opt, seed=3)
    a.eval(), b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a.compute_all_losses(batch)["pred_y"], b.compute_all_losses(batch)["pred_y"],
                                   rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_same_forward_on_cuda():
    opt = small_opt()
    cpu = VidODE(opt, "cpu")
    gpu = VidODE(opt, "cuda")
    gpu.load_state_dict(cpu.state_dict())
    batch = random_batch(opt)
    with torch.no_grad():
        a = cpu.compute_all_losses(batch)["pred_y"]
        b = gpu.compute_all_losses(batch)["pred_y"].cpu()
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
