"""Tests that bite (issue 40, item 7): every behaviour a reported result rests on has a test here that fails when the
behaviour breaks. Each was checked by planting the bug it names in the module and watching the test fail (the lead's
record: docs/reliability.md, "Tests that bite"). Small and fast: untrained models, a few images."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mgnet
from mgnet.anytime import early_exit, exit_points, exit_stats
from mgnet.config import MGNetConfig
from mgnet.evaluation import evaluate, glimpse_hits
from mgnet.files import atomic_write, write_json
from mgnet.layers import GradientRescaler, scale_grad
from mgnet.losses import centring_loss, mgnet_loss


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def digits(n=8, seed=0):
    torch.manual_seed(seed)
    return torch.randn(n, 1, 64, 64)


# --- attacks that attack ---------------------------------------------------------------------------------------------

def test_square_attack_moves_the_images_and_flips_predictions():
    from mgnet.attacks import PixelModel, square_attack, to_pixels
    model = mgnet.MGNet(n_iter=2).eval()
    mean, std = model.preprocessing.mean, model.preprocessing.std
    x = digits(6)
    pm = PixelModel(model, mean, std, glimpse=-1).eval()
    p = to_pixels(x, mean, std).clamp(0, 1)
    with torch.no_grad(): y = pm(p).argmax(-1)                    # labels the model gets right: clean accuracy 1
    eps = 0.3
    adv = square_attack(model, x, y, mean, std, eps=eps, n_queries=60, seed=0)
    assert adv.shape == p.shape
    assert (adv - p).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1     # in budget
    assert (adv - p).abs().amax((1, 2, 3)).min() > eps / 2            # every image was changed
    with torch.no_grad(): fooled = (pm(adv).argmax(-1) != y).sum().item()
    assert fooled >= 1, "Square left every prediction as it was"


# --- the early-exit boundary: a confidence equal to the threshold exits ----------------------------------------------

def test_exit_points_boundary_is_inclusive():
    probs = torch.tensor([[[0.5, 0.5, 0.0], [0.7, 0.2, 0.1]],      # glimpse 1: image 0 exactly at 0.5
                          [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1]]])     # glimpse 2
    assert exit_points(probs, 0.5).tolist() == [1, 1]
    assert exit_points(probs, 0.7).tolist() == [2, 1]             # 0.7 at glimpse 1 is enough for image 1
    assert exit_points(probs, 0.70001).tolist() == [2, 2]
    s = exit_stats(probs, torch.tensor([0, 0]), [1.0, 3.0], 0.5)
    assert s["mean_exit"] == 1.0 and s["gflops"] == 1.0


def test_early_exit_boundary_is_inclusive():
    model = mgnet.MGNet(n_iter=3).eval()
    x = digits(4)
    first = early_exit(model, x, threshold=2.0, n_iter=1)           # every image stops after glimpse 1
    c = first.confidence[0].item()                                   # image 0's confidence there, exactly
    r = early_exit(model, x, threshold=c)
    assert r.exit_at[0].item() == 1, "a confidence equal to the threshold must stop the image"
    above = early_exit(model, x, threshold=float(np.nextafter(np.float32(c), np.float32(2))))
    assert above.exit_at[0].item() > 1
    # and the batch implementation agrees with the probabilities' one, image by image
    probs = F.softmax(model(x).logits, -1)
    assert r.exit_at.tolist() == exit_points(probs, c).tolist()


# --- the gradient re-scaler scales -----------------------------------------------------------------------------------

def test_scale_grad_multiplies_the_gradient():
    x = torch.ones(3, requires_grad=True)
    (scale_grad(x, 0.02) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.02, 0.04, 0.06]))
    y = torch.ones(2, requires_grad=True)
    (GradientRescaler(0.5)(y) * 3).sum().backward()
    torch.testing.assert_close(y.grad, torch.tensor([1.5, 1.5]))


def test_model_localisation_gradient_is_rescaled_by_s():
    a, b = mgnet.MGNet(n_iter=2, s=1.0), mgnet.MGNet(n_iter=2, s=0.02)   # one move: one path through it
    b.load_state_dict(a.state_dict())
    x, y = digits(4), torch.tensor([0, 1, 2, 3])
    grads = []
    for m in (a, b):
        m.train().zero_grad()
        F.cross_entropy(m(x).logits[-1], y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.loc_network.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], 0.02 * grads[0], rtol=1e-4, atol=1e-9)


# --- loss terms that train -------------------------------------------------------------------------------------------

def test_centring_loss_is_added_and_trains_the_glimpses():
    cfg = MGNetConfig(n_iter=3).resolved()
    model = mgnet.MGNet(cfg).train()
    x, y = digits(4), torch.tensor([0, 1, 2, 3])
    out = model(x)
    plain = mgnet_loss(out, y, cfg, model, x)
    with_c = mgnet_loss(out, y, cfg.replace(centre_coef=10.0), model, x)
    term = centring_loss(out.glimpses, x)
    assert term > 0
    torch.testing.assert_close(with_c.extra["centre"], term.detach())
    torch.testing.assert_close(with_c.loss, plain.loss + 10.0 * term)          # logged and added
    model.zero_grad()
    (with_c.loss - plain.loss).backward()                                       # the term alone moves the head
    assert sum(p.grad.abs().sum() for p in model.loc_network.parameters() if p.grad is not None) > 0


# --- corruption severities -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["contrast", "brightness"])
def test_corruption_severity_is_the_libraries(name):
    from imagecorruptions import corrupt

    from mgnet.corruptions import SEVERITIES, corrupt_image
    img = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    outs = []
    for s in SEVERITIES:
        mine = corrupt_image(img, name, s, seed=0)
        theirs = np.asarray(corrupt(img, corruption_name=name, severity=s))
        assert np.array_equal(mine, theirs), f"{name} severity {s} is not the library's severity {s}"
        outs.append(np.abs(mine.astype(int) - img).mean())
    assert outs == sorted(outs) and outs[0] < outs[-1]                   # stronger as the severity rises
    with pytest.raises(Exception, match="severity"):
        corrupt_image(img, name, 0, seed=0)
    with pytest.raises(Exception, match="severity"):
        corrupt_image(img, name, 6, seed=0)


# --- atomic writes ---------------------------------------------------------------------------------------------------

def test_atomic_write_never_shows_half_a_file(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("old")
    seen = []

    def write(f):
        f.write(b"new, half")
        seen.append(p.read_text())                   # while writing, readers still see the old file
        raise RuntimeError("killed mid-write")
    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(p, write)
    assert seen == ["old"] and p.read_text() == "old"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["r.json"]      # no temporary file left
    write_json({"a": 1}, p)
    assert json.loads(p.read_text()) == {"a": 1}


def test_checkpoint_and_weights_writers_are_atomic(tmp_path, monkeypatch):
    model = mgnet.MGNet(n_iter=2)
    ck = mgnet.save_checkpoint(model, tmp_path / "m.ckpt")
    model.save_pretrained(tmp_path / "w")
    before = {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()}
    def boom(*a, **k): raise RuntimeError("killed mid-write")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError): mgnet.save_checkpoint(model, ck)
    monkeypatch.setattr("mgnet.weights.safetensors_bytes", boom)
    with pytest.raises(RuntimeError): model.save_pretrained(tmp_path / "w", overwrite=True)
    with pytest.raises(RuntimeError): model.save_pretrained(tmp_path / "w2")
    assert {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt", "w"]


# --- per-glimpse scoring -------------------------------------------------------------------------------------------

class Scripted(torch.nn.Module):
    """A stand-in model whose glimpse t gets exactly the first `right[t]` images of each batch right."""
    def __init__(self, right):
        super().__init__()
        self.right, self.w = right, torch.nn.Parameter(torch.zeros(1))
        self.n_iter = len(right)

    def forward(self, x, n_iter=None):
        B, K = len(x), 10
        y = x[:, 0, 0, 0].long()                     # the label is written in the image
        logits = torch.zeros(self.n_iter, B, K)
        for t, r in enumerate(self.right):
            pred = torch.where(torch.arange(B) < r, y, (y + 1) % K)
            logits[t] = F.one_hot(pred, K).float()
        return SimpleNamespace(logits=logits[:n_iter] if n_iter else logits)


def test_per_glimpse_accuracy_keeps_the_glimpse_order():
    y = torch.arange(8) % 10
    x = torch.zeros(8, 1, 4, 4); x[:, 0, 0, 0] = y.float()
    loader = [(x[:4], y[:4]), (x[4:], y[4:])]
    assert evaluate(Scripted([0, 2, 4]), loader, progress=False) == [0.0, 0.5, 1.0]
    assert evaluate(Scripted([4, 1, 3]), loader, progress=False) == [1.0, 0.25, 0.75]
    assert evaluate(Scripted([4, 1, 3]), loader, n_iter=2, progress=False) == [1.0, 0.25]
    logits = torch.stack([F.one_hot(torch.tensor([1, 1]), 3), F.one_hot(torch.tensor([0, 1]), 3)]).float()
    assert glimpse_hits(logits, torch.tensor([0, 1])).tolist() == [1, 2]


def test_per_glimpse_accuracy_of_a_real_model_is_its_logits_in_order():
    model = mgnet.MGNet(n_iter=3).eval()
    x = digits(16)
    with torch.no_grad(): y = model(x).logits[0].argmax(-1)       # labels glimpse 1 gets all right
    acc = evaluate(model, [(x, y)], progress=False)
    with torch.no_grad(): logits = model(x).logits
    assert acc == [(logits[t].argmax(-1) == y).float().mean().item() for t in range(3)]
    assert acc[0] == 1.0                                        # glimpse 1 scores 1, wherever the others land
