"""timm encoders end to end, offline: a CNN and a ViT built without weights, trained a few steps, tested (GFLOPs per
glimpse, early exit), exported (weights folder with its card, ONNX checked against PyTorch), loaded back the Hugging
Face way, and predicted."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import in_process
from PIL import Image

import mgnet
from mgnet.cli import main
from mgnet.config import MGNetConfig
from mgnet.errors import ConfigError
from mgnet.train import fit

ENCODERS = ["timm/mobilenetv3_small_100", "timm/vit_tiny_patch16_224"]   # a CNN, a ViT (16 px glimpses: one patch)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing may download here: the Hub is off for the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("encoder", ENCODERS)
def test_timm_encoder_train_test_export_predict(tmp_path, encoder):
    r = in_process(main, "train", "--model", encoder, "--scale", 4, "--n_iter", 2, "--epochs", 1, "--limit_train", 2,
                   "--limit_val", 2, "--batch_size", 16, "--optimizer", "adam", "--learning_rate", 0.001,
                   "--log_dir", "logs", "--results", "train.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = Path(json.loads((tmp_path / "train.json").read_text())["checkpoint"])
    assert mgnet.load_checkpoint(ckpt).cfg.model == encoder

    # --test: accuracy and fvcore GFLOPs per glimpse (cumulative: the later glimpse costs more), early exit at a
    # threshold. (A 16 px glimpse of MobileNetV3 costs 60% of its 64 px look: its 1x1 head dominates; docs/encoders.md)
    t = in_process(main, "test", "--checkpoint", ckpt, "--limit_val", 2, "--results", "test.json",
                   "--exit_threshold", 0.5, cwd=tmp_path)
    assert t.returncode == 0, t.stderr[-3000:]
    res = json.loads((tmp_path / "test.json").read_text())
    assert len(res["clean_acc"]) == 2 and 0 < res["gflops"][0] < res["gflops"][1]
    assert res["baseline_gflops"] > res["gflops"][0]
    assert res["early_exit"] and "GFLOPs" in t.stdout

    # export: the weights folder (network and preprocessing, card with GFLOPs and accuracy) and ONNX, checked
    e = in_process(main, "export", ckpt, "w", "--results", "test.json", "--onnx", cwd=tmp_path)
    assert e.returncode == 0, e.stderr[-3000:]
    assert "onnxruntime matches PyTorch" in e.stdout and "real images" in e.stdout, e.stdout
    w = tmp_path / "w"
    assert sorted(p.name for p in w.iterdir()) == ["README.md", "config.json", "model.onnx", "model.safetensors"]
    cfg = json.loads((w / "config.json").read_text())
    assert cfg["model"] == encoder and "epochs" not in cfg and "log_dir" not in cfg and "pretrained" not in cfg
    card = (w / "README.md").read_text()
    assert f"{res['clean_acc'][-1]:.4f}" in card and "GFLOPs, cumulative" in card and "learning_rate" in card

    # the Hugging Face way, offline: the same function as the checkpoint
    m, ref = mgnet.MGNet.from_pretrained(w), mgnet.load_checkpoint(ckpt)
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad(): assert torch.equal(m(x).logits, ref(x).logits)

    # predict from the folder, as from the checkpoint
    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    for src, out in ((w, "w.json"), (ckpt, "c.json")):
        p = in_process(main, "predict", "imgs", "--checkpoint", src, "--json", out, cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
    pw, pc = (json.loads((tmp_path / f).read_text()) for f in ("w.json", "c.json"))
    skip = ("checkpoint", "config")                   # where the model came from; the predictions are the same
    assert {k: v for k, v in pw.items() if k not in skip} == {k: v for k, v in pc.items() if k not in skip}


def test_timm_bad_names_and_small_glimpses(tmp_path):
    r = in_process(main, "train", "--model", "timm/no_such_net", "--epochs", 1, cwd=tmp_path)
    assert r.returncode == 2 and "--model: timm has no model 'no_such_net'" in r.stderr
    # ConvNeXt's stride 32 cannot take 16 px glimpses: training stops before it starts, naming --img_size
    r = in_process(main, "train", "--model", "timm/convnext_atto", "--scale", 4, "--epochs", 1, cwd=tmp_path)
    assert r.returncode == 2 and "--img_size" in r.stderr and "16 px" in r.stderr, r.stderr
    # the Python API refuses it with the same line, before any work
    with pytest.raises(ConfigError) as e:
        fit(MGNetConfig(model="timm/convnext_atto", scale=4, epochs=1, log_dir=str(tmp_path / "api")), progress=False)
    assert str(e.value) in r.stderr and not (tmp_path / "api").exists(), (str(e.value), r.stderr)
    r = in_process(main, "train", "--model", "resnet18", "--pretrained_file", "w.pth", "--epochs", 1, cwd=tmp_path)
    assert r.returncode == 2 and "--pretrained_file" in r.stderr
    assert os.environ["HF_HUB_OFFLINE"] == "1"
