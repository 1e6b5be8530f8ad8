"""Anytime early exit through the command line: the real early exit agrees with the curve, the budget is respected."""
import json

import pytest
from conftest import in_process

import mgnet
from mgnet.cli import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("anytime")
    cfg = mgnet.MGNetConfig(epochs=3, limit_train=10, batch_size=32, learning_rate=0.02, n_iter=3, log_dir=str(d))
    return mgnet.fit(cfg, progress=False).best_checkpoint


def test_exit_sweep_threshold_and_budget(ckpt, tmp_path):
    r = in_process(main, "--test", "--checkpoint", ckpt, "--exit_threshold", 0.9, "--exit_sweep",
                   "--exit_plot", tmp_path / "curve.png", "--exit_budget", 0.008, "--results", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    ee = res["early_exit"]
    g = ee["glimpse_gflops"]
    assert len(g) == 3 and g[0] < g[1] < g[2] and ee["baseline_gflops"] > 0
    curve = {c["threshold"]: c for c in ee["curve"]}
    # the batch-shrinking early exit gives exactly what the probabilities say
    assert ee["threshold"]["acc"] == pytest.approx(curve[0.9]["acc"])
    assert ee["threshold"]["gflops"] == pytest.approx(curve[0.9]["gflops"])
    for c in ee["curve"]:
        assert g[0] - 1e-12 <= c["gflops"] <= g[-1] + 1e-12 and 1 <= c["mean_exit"] <= 3
    costs = [c["gflops"] for c in ee["curve"]]
    assert costs == sorted(costs)                            # a higher threshold never looks less
    b = ee["budget"]
    assert b["held_out"]["gflops"] <= 0.008 and b["threshold"] == b["held_out"]["threshold"]
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    assert "early exit" in r.stdout and "budget" in r.stdout


def test_exit_flags_need_test():
    r = in_process(main, "--exit_sweep")
    assert r.returncode == 2 and "--exit_sweep" in r.stderr.splitlines()[-1]
    r = in_process(main, "--test", "--checkpoint", "x", "--exit_threshold", 1.5)
    assert r.returncode == 2 and "--exit_threshold" in r.stderr.splitlines()[-1]
