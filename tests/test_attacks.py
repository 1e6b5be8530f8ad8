"""Adversarial evaluation on a small trained digits model: correct by construction and by measurement."""
import json

import pytest
import torch
from conftest import in_process

import mgnet
from mgnet.attacks import pgd_adaptive, pgd_paper, robust_accuracy
from mgnet.cli import main
from mgnet.data import data_info
from mgnet.datamodule import MGNetData
from mgnet.images import to_pixels


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("attacks")
    # Adam for 5 epochs: 0.93 on every glimpse here, where 10 epochs of the default SGD reached 0.80 in twice the time
    cfg = mgnet.MGNetConfig(epochs=5, optimizer="adam", learning_rate=0.003, batch_size=32, n_iter=3,
                            log_dir=str(d / "logs"))
    res = mgnet.fit(cfg, progress=False)
    return res


def _batches(cfg, n=2):
    loader = MGNetData(cfg.replace(test=True)).val_dataloader()
    return [b for _, b in zip(range(n), loader)]


def test_trained_model_is_good_enough_to_attack(trained):
    assert trained.clean_acc[-1] > 0.8, trained.clean_acc


def test_adversarial_images_stay_in_budget(trained):
    model = mgnet.load_checkpoint(trained.best_checkpoint)
    info = data_info(model.run)
    (x, y), = _batches(model.run, 1)
    p = to_pixels(x, info.mean, info.std)
    for eps in (0.02, 0.1):
        pa = pgd_adaptive(model, x, y, info.mean, info.std, eps=eps, step_size=eps / 4, steps=5)
        assert (pa - p).abs().max() <= eps + 1e-6 and pa.min() >= 0 and pa.max() <= 1
        assert (pa - p).abs().max() > eps / 2          # it did move
        xa = pgd_paper(model, x, y, eps=eps, step_size=eps / 4, steps=5)
        assert (xa - x).abs().max() <= eps + 1e-6
    # the defences the adaptive attack switched off are back
    rescaler = model.loc_network.grad_rescaler
    assert rescaler.enabled and not model.cfg.no_detach and rescaler.s == 0.02


@pytest.mark.parametrize("protocol,eps,step", [("paper", 0.5, 0.125), ("adaptive", 0.1, 0.025)])
def test_attack_lowers_accuracy_never_raises_it(trained, protocol, eps, step):
    model = mgnet.load_checkpoint(trained.best_checkpoint)
    info = data_info(model.run)
    batches = _batches(model.run)
    r = robust_accuracy(model, batches, info.mean, info.std, protocol, eps, step, 10, progress=False)
    for c, a in zip(r["clean_acc"], r["adv_acc"]):
        assert a <= c
    assert r["adv_acc"][-1] < r["clean_acc"][-1] - 0.3, r       # clearly
    zero = robust_accuracy(model, batches, info.mean, info.std, protocol, 0.0, step, 3, progress=False)
    assert zero["adv_acc"] == pytest.approx(zero["clean_acc"])
    assert zero["clean_acc"] == pytest.approx(r["clean_acc"])


def test_attacking_one_glimpse(trained):
    model = mgnet.load_checkpoint(trained.best_checkpoint)
    info = data_info(model.run)
    batches = _batches(model.run)
    r = robust_accuracy(model, batches, info.mean, info.std, "adaptive", 0.1, 0.025, 10, glimpse=1, progress=False)
    assert r["attack"]["glimpse"] == 1 and r["adv_acc"][0] < r["clean_acc"][0] - 0.3


def test_cli_adv_results(trained, tmp_path):
    r = in_process(main, "--test", "--checkpoint", trained.best_checkpoint, "--adv", "--step_k", 3,
                   "--attack", "adaptive", "--eps", 0.1, "--step_size", 0.05, "--square", "--square_queries", 30,
                   "--limit_val", 1, "--results", tmp_path / "adv.json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "adv.json").read_text())
    assert len(res["adv_acc"]) == len(res["clean_acc"]) == 3
    assert res["clean_acc"] == pytest.approx(trained.clean_acc)       # the clean accuracy on the same images
    assert all(a <= c for a, c in zip(res["adv_acc"], res["clean_acc"]))
    assert 0 <= res["square_acc"] <= 1 and isinstance(res["square_beats_pgd"], bool)
    assert res["square_beats_pgd"] == (res["square_acc"] < res["pgd_last_acc"]) and 0 <= res["pgd_last_acc"] <= 1
    assert res["attack"] == {"protocol": "adaptive", "eps": 0.1, "step_size": 0.05, "steps": 3, "glimpse": 0}
    assert "under attack" in r.stdout and "Square" in r.stdout
    bad = in_process(main, "--adv")
    assert bad.returncode == 2 and "--adv" in bad.stderr.splitlines()[-1]
    bad = in_process(main, "--test", "--checkpoint", trained.best_checkpoint, "--adv", "--attack_glimpse", 2)
    assert bad.returncode == 2 and "--attack_glimpse" in bad.stderr.splitlines()[-1]


def test_cli_autoattack(trained, tmp_path):
    """`mgnet --test --adv --attack autoattack` at tiny budgets: the budgets reach the attack and the report, one
    glimpse attacked, and the baseline's FLOPs still computed (its config drops --attack_glimpse)."""
    r = in_process(main, "--test", "--checkpoint", trained.best_checkpoint, "--adv", "--attack", "autoattack",
                   "--attack_glimpse", 3, "--eps", 0.1, "--aa_iters", 1, "--aa_queries", 5,
                   "--results", tmp_path / "aa.json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "aa.json").read_text())
    a = res["attack"]
    assert (a["protocol"], a["iters"], a["queries"], a["version"], a["glimpse"]) == \
        ("autoattack", 1, 5, "custom budgets", 3)
    assert len(res["adv_acc"]) == 3 and res["adv_acc"][2] <= res["clean_acc"][2] and res["images"] == 359
    assert res["baseline_gflops"] > res["gflops"][-1] > 0
    assert "AutoAttack (custom budgets" in r.stdout and "on glimpse 3" in r.stdout and "PGD (" not in r.stdout


def test_autoattack_per_glimpse(trained):
    """AutoAttack never raises accuracy, eps 0 changes nothing, and no image survives it that its first attack
    (APGD-CE with the same seed, on the same pixel-space model with the full gradient) alone breaks."""
    import torchattacks

    from mgnet.attacks import PixelModel, full_gradient
    model = mgnet.load_checkpoint(trained.best_checkpoint)
    info = data_info(model.run)
    (x, y), = _batches(model.run, 1)
    x, y = x[:16], y[:16]                              # 16 images: AutoAttack runs once per glimpse, 9 targets each
    batches = [(x, y)]
    kw = dict(progress=False, aa_iters=5, aa_queries=50)
    r = robust_accuracy(model, batches, info.mean, info.std, "autoattack", 0.05, glimpse=0, **kw)
    assert all(a <= c for a, c in zip(r["adv_acc"], r["clean_acc"])) and r["adv_acc"][-1] < r["clean_acc"][-1], r
    assert r["attack"]["version"] == "custom budgets" and r["attack"]["targets"] == 9
    zero = robust_accuracy(model, batches, info.mean, info.std, "autoattack", 0.0, glimpse=3, **kw)
    assert zero["adv_acc"] == pytest.approx(zero["clean_acc"])
    one = robust_accuracy(model, batches, info.mean, info.std, "autoattack", 0.05, glimpse=3, **kw)
    pm = PixelModel(model, info.mean, info.std, glimpse=3).eval()
    with full_gradient(model):
        ce = torchattacks.APGD(pm, eps=0.05, steps=5, seed=0)(to_pixels(x, info.mean, info.std).clamp(0, 1), y)
    with torch.no_grad(): apgd_acc = (pm(ce).argmax(-1) == y).double().mean().item()
    assert one["adv_acc"][2] <= apgd_acc
    assert one["adv_acc"][2] == pytest.approx(r["adv_acc"][2])        # glimpse 3 attacked the same way in both runs


def test_cli_autoattack_refuses_square(trained):
    bad = in_process(main, "--test", "--checkpoint", trained.best_checkpoint, "--adv", "--attack", "autoattack",
                     "--square")
    assert bad.returncode == 2 and "--square" in bad.stderr.splitlines()[-1]
    bad = in_process(main, "--test", "--checkpoint", trained.best_checkpoint, "--adv", "--attack", "autoattack",
                    "--aa_iters", 0)
    assert bad.returncode == 2 and "--aa_iters" in bad.stderr.splitlines()[-1]
