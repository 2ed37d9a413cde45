"""bench/gpu_check.py, the one command a session with a GPU runs, in its CPU mode so that it cannot rot."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def run_check(*args):
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", *args],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def report():
    return run_check()


def test_golden_cases_all_checked_and_within_tolerance(report):
    golden = report["golden"]
    assert len(golden) >= 4
    for case, r in golden.items():
        assert set(r["max_abs_diff"]) >= {"pred_x", "z0", "sol_y"}, case
        assert r["within"], (case, r)
        assert max(r["max_abs_diff"].values()) <= r["tolerance"]


def test_every_variant_is_timed_or_says_why_not(report):
    train = report["train"]
    assert set(train) == {"float32", "bf16", "channels_last", "compile", "bf16+channels_last+compile"}
    for name in ("float32", "bf16", "channels_last"):
        r = train[name]
        assert "error" not in r, r
        assert r["median_s"] > 0 and r["nfe_decoder"] > 0 and r["loss_G"] > 0
    for name in ("compile", "bf16+channels_last+compile"):
        assert "inductor" in train[name]["skipped"]
    assert report["fastest"]["variant"] in ("float32", "bf16", "channels_last")
    assert report["test_met"]["frames"] > 0 and report["test_met"]["frames_per_s"] > 0
    assert report["card"]["device"] == "cpu"


def test_budget_skips_the_variants_it_cannot_start():
    r = run_check("--budget_s", "0")
    assert all("skipped" in v for v in r["train"].values())
    assert "fastest" not in r


def test_refuses_cuda_without_a_gpu():
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal only applies without one")
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "no CUDA device" in out.stderr
