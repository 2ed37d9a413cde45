"""Speed and memory options (models/performance, applied by apply_performance): the CPU memory
savers give the plain modules' numbers bit for bit and are really active when switched on (fewer
bytes kept for the backward pass); --amp bf16, --channels_last and --compile (traced with the
eager backend) train on tiny sizes."""
import copy

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

import main
import models.recompute as recompute
from dataloader import make_batch
from models import VidODE, apply_performance, create_netD, train_step
from models.decoder import BilinearUp2, Decoder, StepBatchNorm2d
from models.discriminator import Discriminator, lsgan_d_loss
from models.encoder import Encoder
from models.performance import apply_speed_options, autocast, make_grad_scaler
from models.recompute import batch_norm_again, bilinear_up2_backward
from tests.golden_utils import bias_feeding_norm


def tiny_opt(*args, **kw):
    opt = main.get_opt(["--input_size", "16", "--init_dim", "4", "--batch_size", "2", *args])
    for k, v in kw.items():
        setattr(opt, k, v)
    return opt


def tiny_batch(opt, b=2, seed=0):
    """A batch of random clips in opt's sampling mode, as the loaders give it."""
    g = torch.Generator().manual_seed(seed)
    s = opt.input_size
    if opt.irregular:
        T = opt.window_size
        mask = torch.zeros(b, T, 1)
        for i in range(b):
            mid = 1 + torch.randperm(T - 2, generator=g)[:opt.sample_size - 2]
            mask[i, torch.cat([torch.tensor([0, T - 1]), mid])] = 1
    else:
        T = opt.sample_size if opt.extrap else opt.sample_size // 2
        mask = torch.ones(b, T, 1)
    return make_batch(torch.rand(b, T, 3, s, s, generator=g), mask, torch.arange(T).float() / T, opt)


def one_step(opt, seed=0):
    torch.manual_seed(seed)
    model = VidODE(opt)
    netD_img, netD_seq, optD = create_netD(opt)
    apply_speed_options(opt, model, netD_img, netD_seq)
    optG = torch.optim.Adamax(model.parameters(), lr=opt.lr)
    out = train_step(model, netD_img, netD_seq, optG, optD, tiny_batch(opt), opt)
    return out, model


LOSSES = ("loss_G", "loss_recon", "loss_diff", "loss_D", "loss_adv_G")


# ------------------------------------------------------------------ exactness of the CPU savers

def _run(module, x, g, **kw):
    x = x.clone().requires_grad_(True)
    y = module(x, **kw)
    (y * g).sum().backward()
    out = {"y": y.detach(), "x.grad": x.grad}
    out.update({"grad." + n: p.grad for n, p in module.named_parameters()})
    out.update({"buf." + n: b.clone() for n, b in module.named_buffers()})
    return out


def _assert_identical(a, b):
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k}: max |diff| {(a[k] - b[k]).abs().max().item():.3g}"


@pytest.mark.parametrize("chunk_bytes", [None, 4096])  # 4096: many sample and channel chunks
@pytest.mark.parametrize("ch,K,b,h,n_ups", [(64, 5, 2, 8, 2), (32, 3, 2, 4, 3), (16, 1, 3, 6, 2),
                                            (128, 5, 2, 8, 1)])
def test_decoder_recompute_is_bit_exact(monkeypatch, chunk_bytes, ch, K, b, h, n_ups):
    monkeypatch.setattr(recompute, "MIN_BYTES", 0)  # also at these small sizes
    if chunk_bytes:
        monkeypatch.setattr(recompute, "CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(recompute, "WEIGHT_GRAD_BYTES", chunk_bytes)
    torch.manual_seed(0)
    plain = Decoder(ch, 6, n_ups)
    fast = copy.deepcopy(plain)
    fast.recompute = True
    for i, m in enumerate(plain.model):  # the paper's plain nn.Upsample
        if isinstance(m, BilinearUp2):
            plain.model[i] = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    x = torch.randn(K * b, ch, h, h)
    g = torch.randn(K * b, 6, h * 2 ** n_ups, h * 2 ** n_ups)
    _assert_identical(_run(fast, x, g, n_steps=K), _run(plain, x, g, n_steps=K))


@pytest.mark.parametrize("chunk_bytes", [None, 4096])
def test_encoder_recompute_is_bit_exact(monkeypatch, chunk_bytes):
    monkeypatch.setattr(recompute, "MIN_BYTES", 0)
    if chunk_bytes:
        monkeypatch.setattr(recompute, "CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(recompute, "WEIGHT_GRAD_BYTES", chunk_bytes)
    torch.manual_seed(0)
    plain = Encoder(3, 8, 2)
    fast = copy.deepcopy(plain)
    fast.recompute = True
    x = torch.rand(10, 3, 32, 32)
    g = torch.randn(10, 32, 8, 8)
    _assert_identical(_run(fast, x, g), _run(plain, x, g))


def test_weight_gradient_groups():
    big = nn.Conv2d(128, 64, 3, 1, 1)
    assert recompute.weight_grad_groups(big, torch.empty(40, 128, 64, 64), True) == [
        (0, 32), (32, 64), (64, 96), (96, 128)]  # 335 MB upsampled: 4 groups
    assert recompute.weight_grad_groups(big, torch.empty(2, 128, 8, 8), True) == [(0, 128)]
    few_out = nn.Conv2d(64, 6, 3, 1, 1)  # oneDNN may split the batch over threads there
    assert recompute.weight_grad_groups(few_out, torch.empty(40, 64, 128, 128), False) == [(0, 64)]
    strided = nn.Conv2d(32, 64, 4, 2, 1)
    assert recompute.weight_grad_groups(strided, torch.empty(400, 32, 64, 64), False) == [(0, 32)]


@pytest.mark.parametrize("mode", [[], ["--extrap"], ["--irregular"]])
def test_training_step_with_recomputation_is_bit_exact(monkeypatch, mode):
    """A whole train_step (decoder, encoder, checkpointed ODE solve) with and without the
    memory savers: the same losses, gradients, parameters, buffers and solver evaluations."""
    opt = tiny_opt(*mode)
    monkeypatch.setattr(recompute, "MIN_BYTES", 0)
    monkeypatch.setattr(recompute, "CHUNK_BYTES", 16384)  # a few sample chunks

    def step(on):
        torch.manual_seed(0)
        model = VidODE(opt)
        netD_img, netD_seq, optD = create_netD(opt)
        apply_performance(model, netD_img, netD_seq, recompute=on)
        assert model.diffeq_solver.checkpoint == on
        optG = torch.optim.Adamax(model.parameters(), lr=opt.lr)
        batch = tiny_batch(opt)
        outs = [train_step(model, netD_img, netD_seq, optG, optD, batch, opt) for _ in range(2)]
        grads = {n: p.grad for n, p in model.named_parameters()}
        return outs[-1], grads, model.state_dict(), netD_img.state_dict()

    (a, ga, sa, da), (b, gb, sb, db) = step(True), step(False)
    assert a["nfe_decoder"] == b["nfe_decoder"]
    for k in a:
        if torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k
    for x, y in ((ga, gb), (sa, sb), (da, db)):
        for k in x:
            assert torch.equal(x[k], y[k]), k


def test_recompute_only_where_it_applies(monkeypatch):
    monkeypatch.setattr(recompute, "MIN_BYTES", 0)
    dec = Decoder(16, 6, 2)
    x = torch.randn(4, 16, 4, 4)
    layers = dec.model
    assert recompute.can_recompute(layers, x, (StepBatchNorm2d,))
    monkeypatch.setattr(recompute, "MIN_BYTES", 2 ** 20)
    assert not recompute.can_recompute(layers, x, (StepBatchNorm2d,))  # too small to matter
    monkeypatch.setattr(recompute, "MIN_BYTES", 0)
    with torch.no_grad():
        assert not recompute.can_recompute(layers, x, (StepBatchNorm2d,))
    assert not recompute.can_recompute(layers, x.contiguous(memory_format=torch.channels_last), (StepBatchNorm2d,))
    assert not recompute.can_recompute(layers, x.double(), (StepBatchNorm2d,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not recompute.can_recompute(layers, x, (StepBatchNorm2d,))
    assert not recompute.can_recompute(layers, x)  # StepBatchNorm2d not declared


# ------------------------------------------------------------------ each saver is really on (or off)

def saved_bytes(fn):
    """Bytes of the distinct storages autograd keeps for the backward pass while fn() runs
    (of 1 kB or more: the adaptive solver's scalars vary by a few bytes from run to run)."""
    kept = {}

    def pack(t):
        if t.untyped_storage().nbytes() >= 1024:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(kept.values())


def saver_inputs(seed=0):
    """A VidODE at init_dim 8 and inputs of at least recompute.MIN_BYTES (1 MB) for its encoder
    (8 frames of 128 px: 1.5 MB), decoder (4 steps x 2 clips: 2 MB) and decoder ODE (1 MB)."""
    torch.manual_seed(seed)
    model = VidODE(tiny_opt("--init_dim", "8"))
    frames = torch.rand(8, 3, 128, 128)
    latents = torch.randn(8, 64, 32, 32)
    z0 = torch.randn(8, 32, 32, 32, requires_grad=True)
    for t in (frames, latents, z0):
        assert t.numel() * t.element_size() >= recompute.MIN_BYTES
    return model, frames, latents, z0, torch.tensor([0.0, 0.1])


def kept_by_part(model, frames, latents, z0, times):
    return {"encoder": saved_bytes(lambda: model.encoder(frames)),
            "decoder": saved_bytes(lambda: model.decoder(latents, n_steps=4)),
            "decoder ODE": saved_bytes(lambda: model.diffeq_solver(z0, times))}


def test_recompute_keeps_less_for_the_backward_pass():
    """recompute=True: the encoder keeps its input and each strided conv's input (not the
    BatchNorm/ReLU outputs), the decoder each segment's input (not the upsampled maps, BatchNorm
    and ReLU outputs), the checkpointed ODE solve nothing of its stages. Measured: 0.36, 0.29 and
    0.014 of the plain modules' bytes. recompute=False (also after True): the plain modules' bytes."""
    model, *inputs = saver_inputs()
    plain = kept_by_part(model, *inputs)
    apply_performance(model, recompute=True)
    on = kept_by_part(model, *inputs)
    assert on["encoder"] < 0.45 * plain["encoder"], (on, plain)
    assert on["decoder"] < 0.4 * plain["decoder"], (on, plain)
    assert on["decoder ODE"] < 0.05 * plain["decoder ODE"], (on, plain)
    apply_performance(model, recompute=False)
    assert kept_by_part(model, *inputs) == plain


def test_recompute_is_idle_below_the_threshold_and_without_gradients():
    """Under recompute.MIN_BYTES, or without autograd, the savers run the plain modules."""
    model, frames, latents, z0, times = saver_inputs()
    small = (frames[:4, :, :64].clone(), latents[:, :, :8].clone(),
             z0[:, :, :16].detach().clone().requires_grad_(), times)  # 0.4, 0.5 and 0.5 MB
    assert all(t.numel() * t.element_size() < recompute.MIN_BYTES for t in small[:3])
    plain = kept_by_part(model, *small)
    apply_performance(model, recompute=True)
    assert kept_by_part(model, *small) == plain
    calls, base = [], recompute.PreConv

    class Counted(base):
        @staticmethod
        def forward(ctx, *args):
            calls.append(None)
            return base.forward(ctx, *args)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(recompute, "PreConv", Counted)
        with torch.no_grad():
            model.encoder(frames), model.decoder(latents, n_steps=4)
        assert calls == []
        model.encoder(frames)
        assert len(calls) == 2  # the encoder's two segments: conv0-BN-ReLU-conv1, BN-ReLU-conv2


class OpLog(TorchDispatchMode):
    """The aten ops run inside, with whether their first argument is channels_last."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        x = args[0] if args and torch.is_tensor(args[0]) else None
        self.ops.append((func.__name__, x is not None and x.dim() == 4 and x.size(1) > 1
                         and x.is_contiguous(memory_format=torch.channels_last)))
        return func(*args, **(kwargs or {}))


def upsampling_inputs_channels_last(model, latents):
    with torch.no_grad(), OpLog() as log:
        model.decoder(latents, n_steps=4)
    return [cl for name, cl in log.ops if name.startswith("upsample_bilinear2d")]


def test_bilinear_up2_runs_the_channels_last_kernel():
    """The decoder's first x2 upsampling (32 -> 64 px) runs on a channels_last copy
    (BilinearUp2's faster path), the second (64 -> 128 px) as it is."""
    model, _, latents, _, _ = saver_inputs()
    assert sum(isinstance(m, BilinearUp2) for m in model.decoder.model) == 2
    assert upsampling_inputs_channels_last(model, latents) == [True, False]


def test_channels_last_converts_weights_and_encoder_input():
    """channels_last=True: every 4-D weight and the encoder's input in channels_last layout (so
    every encoder convolution gets a channels_last input); off by default."""
    opt = tiny_opt()
    model = VidODE(opt)
    netD_img, netD_seq, _ = create_netD(opt)
    frames = torch.rand(4, 3, 16, 16)

    def conv_inputs():
        with torch.no_grad(), OpLog() as log:
            model.encoder(frames)
        return [cl for name, cl in log.ops if name.startswith("convolution")]
    assert conv_inputs() == [False, False, False]
    apply_performance(model, netD_img, netD_seq)
    assert conv_inputs() == [False, False, False]
    apply_performance(model, netD_img, netD_seq, channels_last=True)
    apply_performance(model, netD_img, netD_seq, channels_last=True)  # twice: one input conversion
    assert conv_inputs() == [True, True, True]
    for m in (model, netD_img, netD_seq):
        for n, p in m.named_parameters():
            if p.dim() == 4:
                assert p.is_contiguous(memory_format=torch.channels_last), n


def test_apply_performance_sets_the_savers_both_ways():
    """The savers are attributes the modules' own forwards read: the same modules, parameters
    (an optimiser made before stays valid) and keys; off by default and off again."""
    model = VidODE(tiny_opt())
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    keys = list(model.state_dict())
    savers = lambda: (model.encoder.recompute, model.decoder.recompute, model.diffeq_solver.checkpoint)
    assert savers() == (False, False, False)
    assert apply_performance(model) == [model]
    assert savers() == (True, True, True)
    assert dict(model.named_modules()) == modules and list(model.state_dict()) == keys
    assert all(p is params[n] for n, p in model.named_parameters())
    apply_performance(model, recompute=False)
    assert savers() == (False, False, False)
    with pytest.raises(TypeError, match="VidODE"):
        apply_performance(model.decoder)


@pytest.mark.parametrize("shape", [(40, 256, 32, 32), (10, 64, 8, 8), (10, 32, 16, 16), (4, 128, 64, 64),
                                   (3, 3, 5, 7), (2, 8, 33, 31)])
def test_bilinear_up2_matches_upsample(shape):
    """The same numbers as nn.Upsample, forward and backward (also where the layout trick runs)."""
    x = torch.randn(*shape)
    g = torch.randn(shape[0], shape[1], 2 * shape[2], 2 * shape[3])
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = up(xa), BilinearUp2()(xb)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    assert torch.equal(ya, yb) and yb.is_contiguous()
    assert torch.equal(xa.grad, xb.grad)
    assert torch.equal(bilinear_up2_backward(g, shape), xa.grad)


def test_step_batchnorm_is_per_step_batchnorm():
    """StepBatchNorm2d == one nn.BatchNorm2d call per step (the reference's loop), bit for bit."""
    torch.manual_seed(0)
    K, b = 4, 3
    step = StepBatchNorm2d(8)
    ref = nn.BatchNorm2d(8)
    ref.load_state_dict(step.state_dict())
    with torch.no_grad():
        step.weight.uniform_(0.5, 1.5)
        step.bias.uniform_(-0.5, 0.5)
        ref.weight.copy_(step.weight)
        ref.bias.copy_(step.bias)
    x = torch.randn(K * b, 8, 5, 5)
    g = torch.randn_like(x)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = step(xa, n_steps=K)
    yb = torch.cat([ref(xk) for xk in xb.split(b)])
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)
    for k in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(step, k), getattr(ref, k)), k
    # the recomputation leaves the running statistics alone and gives the same output
    before = {k: v.clone() for k, v in step.state_dict().items()}
    with torch.no_grad():
        again = batch_norm_again(step, x, K)
    assert torch.equal(again, ya.detach())
    assert all(torch.equal(before[k], v) for k, v in step.state_dict().items())


def test_batch_norm_again_is_the_first_call():
    """batch_norm_again == the BatchNorm call it recomputes (training: batch statistics, the
    running ones untouched; evaluation: the running statistics)."""
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8)
    x = torch.randn(6, 8, 5, 5)
    y = bn(x)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    assert torch.equal(batch_norm_again(bn, x), y)
    assert all(torch.equal(before[k], v) for k, v in bn.state_dict().items())
    bn.eval()
    assert torch.equal(batch_norm_again(bn, x), bn(x))


def test_discriminators_one_after_the_other_match_one_backward():
    """train_step's D step (a backward per D) == loss_D.backward(), bit for bit."""
    torch.manual_seed(0)
    d_img, d_seq = Discriminator(3), Discriminator(15)
    real_i, fake_i = torch.rand(6, 3, 32, 32), torch.rand(6, 3, 32, 32)
    real_s, fake_s = torch.rand(2, 15, 32, 32), torch.rand(6, 15, 32, 32)
    a = (copy.deepcopy(d_img), copy.deepcopy(d_seq))
    (0.003 * lsgan_d_loss(a[1], real_s, fake_s) + 0.003 * lsgan_d_loss(a[0], real_i, fake_i)).backward()
    b = (copy.deepcopy(d_img), copy.deepcopy(d_seq))
    (0.003 * lsgan_d_loss(b[1], real_s, fake_s)).backward()
    (0.003 * lsgan_d_loss(b[0], real_i, fake_i)).backward()
    for ma, mb in zip(a, b):
        for (n, pa), pb in zip(ma.named_parameters(), mb.parameters()):
            assert torch.equal(pa.grad, pb.grad), n


# ------------------------------------------------------------------ the options on tiny sizes

def test_amp_bf16_step_close_to_float32():
    """--amp bf16 on the CPU: finite losses within 2% (relative) of float32's; the prediction
    comes out float32. bf16 keeps 8 bits of mantissa (0.4% per rounding); measured: <= 0.6%."""
    ref, _ = one_step(tiny_opt())
    out, _ = one_step(tiny_opt("--amp", "bf16"))
    assert out["pred_y"].dtype == torch.float32
    for k in LOSSES:
        assert torch.isfinite(out[k]), k
        torch.testing.assert_close(out[k], ref[k], rtol=2e-2, atol=1e-4, msg=k)


def test_channels_last_step_close_to_float32():
    """--channels_last: other convolution kernels, so other rounding: losses within 1e-4
    (relative) of the default layout's, the prediction within 1e-5, every generator gradient
    within 1e-4 (relative norm; but the conv biases feeding a normalisation, whose true
    gradient is 0: there the rounding noise is all there is, within 1e-6)."""
    ref, ref_model = one_step(tiny_opt())
    out, model = one_step(tiny_opt("--channels_last"))
    assert model.decoder.model[1].weight.is_contiguous(memory_format=torch.channels_last)
    for k in LOSSES:
        assert torch.isfinite(out[k]), k
        torch.testing.assert_close(out[k], ref[k], rtol=1e-4, atol=1e-6, msg=k)
    torch.testing.assert_close(out["pred_y"], ref["pred_y"], rtol=0, atol=1e-5)
    noise = set(bias_feeding_norm(model))
    for (n, a), b in zip(model.named_parameters(), ref_model.parameters()):
        if n in noise:
            assert (a.grad - b.grad).abs().max().item() <= 1e-6, n
        else:
            assert ((a.grad - b.grad).norm() / b.grad.norm()).item() <= 1e-4, n


def test_compile_traces_the_conv_parts(monkeypatch):
    """--compile compiles the conv sub-modules in place (keys unchanged); traced here with the
    eager backend (no C++ build): the step gives the uncompiled numbers within float rounding."""
    orig = nn.Module.compile
    compiled = []

    def eager_compile(self, *a, **k):
        compiled.append(self)
        return orig(self, backend="eager")
    monkeypatch.setattr(nn.Module, "compile", eager_compile)
    torch._dynamo.reset()
    ref, ref_model = one_step(tiny_opt())
    out, model = one_step(tiny_opt("--compile"))
    assert len(compiled) == 7  # encoder, decoder, 2 ODE nets, ConvGRU cell, 2 discriminators
    assert list(model.state_dict()) == list(ref_model.state_dict())
    for k in LOSSES:
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-7, msg=k)
    torch._dynamo.reset()


def test_amp_fp16_needs_cuda():
    opt = tiny_opt("--amp", "fp16")
    with pytest.raises(ValueError, match="CUDA"):
        make_grad_scaler(opt, "cpu")
    assert make_grad_scaler(tiny_opt(), "cpu") is None
    assert make_grad_scaler(tiny_opt("--amp", "bf16"), "cpu") is None


def test_autocast_off_by_default():
    opt = tiny_opt()
    assert opt.amp == "off" and not opt.channels_last and not opt.compile
    with autocast(opt, "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(tiny_opt("--amp", "bf16"), "cpu"):
        assert torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_savers_on_cuda_give_the_plain_numbers(monkeypatch):
    """On a GPU the savers run too (whole-batch convolutions, no chunks): the same outputs,
    gradients and BatchNorm buffers as the plain modules (deterministic cuDNN)."""
    monkeypatch.setattr(recompute, "MIN_BYTES", 0)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    torch.manual_seed(0)
    for plain, x, g, kw in ((Decoder(64, 6, 2), torch.randn(10, 64, 8, 8), torch.randn(10, 6, 32, 32), {"n_steps": 5}),
                            (Encoder(3, 8, 2), torch.rand(10, 3, 32, 32), torch.randn(10, 32, 8, 8), {})):
        plain = plain.to("cuda")
        fast = copy.deepcopy(plain)
        fast.recompute = True
        x, g = x.to("cuda"), g.to("cuda")
        _assert_identical(_run(fast, x, g, **kw), _run(plain, x, g, **kw))


def test_malloc_reuse_is_set_and_reported():
    """--malloc_reuse_mb: glibc's mallopt takes it and the run's first log line says so; 0
    changes nothing. (A process-wide setting: it changes no number, only where memory comes from.)"""
    import platform
    import runs
    from utils import malloc
    before = malloc.reuse_freed_memory(0)
    assert malloc.reuse_freed_memory(0) == before  # 0: nothing changed
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: the allocator is left as it is")
    opt = main.get_opt(["--malloc_reuse_mb", "64"])
    runs.configure_threads(opt)
    assert "malloc reuses freed blocks under 64 MB" in runs.describe_run(opt, torch.device("cpu"))
    with pytest.raises(SystemExit):
        main.get_opt(["--malloc_reuse_mb", "-1"])


def test_first_log_line_names_the_precision(monkeypatch):
    """The run's first log line says float32 or the autocast dtype, and warns where a CPU without
    bf16 instructions is asked for --amp bf16."""
    import runs
    assert ", float32, " in runs.describe_run(main.get_opt([]), torch.device("cpu"))
    bf16 = main.get_opt(["--amp", "bf16"])
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    line = runs.describe_run(bf16, torch.device("cpu"))
    assert ", autocast bf16, " in line and "slower" not in line
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert "no bf16 instructions" in runs.describe_run(bf16, torch.device("cpu"))
