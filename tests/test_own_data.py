"""Your own data: real Fashion-MNIST files, ImageFolder trees at their own size, weights folders, torch.hub."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import in_process
from PIL import Image

import mgnet
from mgnet.canvases import idx_files, read_idx
from mgnet.cli import main
from mgnet.datamodule import MGNetData
from mgnet.datasets import DATASETS

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")   # Debian's dataset-fashion-mnist (.ci/run installs it)


def _need_fashion():
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI"): pytest.fail(f"{FASHION} missing: .ci/run installs Debian's dataset-fashion-mnist")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def test_fashion_mnist_real_files_train_test_export_predict(tmp_path):
    """Train on a small real subset of Fashion-MNIST at its own canvas size, test, export, predict (the commands'
    functions in this process: test_cli and test_predict run the installed commands)."""
    _need_fashion()
    common = ("--dataset", "fashion-mnist", "--train_dir", FASHION, "--img_size", 56, "--scale", 2)
    r = in_process(main, *common, "--n_iter", 2, "--epochs", 1, "--limit_train", 60, "--batch_size", 32,
                   "--learning_rate", 3e-3, "--optimizer", "adam", "--log_dir", "logs", "--results", "r.json",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["config"]["class_names"][9] == "Ankle boot" and res["config"]["img_size"] == 56
    assert len(res["clean_acc"]) == 2 and res["clean_acc"][-1] > 0.2      # 1,920 real images already beat chance (0.1)
    assert "fashion-mnist10/vanilla" in res["run_dir"]

    # the real 10,000 test images: --test on the checkpoint gives the accuracies training reported
    t = in_process(main, "--test", "--checkpoint", res["checkpoint"], "--results", "t.json", cwd=tmp_path)
    assert t.returncode == 0, t.stderr[-3000:]
    assert json.loads((tmp_path / "t.json").read_text())["clean_acc"] == pytest.approx(res["clean_acc"])

    # export to a weights folder; --test on the folder gives the same numbers
    e = in_process(main, "export", res["checkpoint"], tmp_path / "weights", cwd=tmp_path)
    assert e.returncode == 0, e.stderr[-2000:]
    weights = sorted(p.name for p in (tmp_path / "weights").iterdir())
    assert weights == ["README.md", "config.json", "model.safetensors"]   # the model card beside the weights
    # a weights folder holds the network and its preprocessing, not the run: where the data lies is given again
    t2 = in_process(main, "--test", "--checkpoint", tmp_path / "weights", "--train_dir", FASHION,
                    "--results", "t2.json", cwd=tmp_path)
    assert t2.returncode == 0, t2.stderr[-3000:]
    assert json.loads((tmp_path / "t2.json").read_text())["clean_acc"] == pytest.approx(res["clean_acc"])
    again = in_process(main, "export", res["checkpoint"], tmp_path / "weights", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr

    # predict on real test images written as PNGs, from the weights folder: the class names are Fashion-MNIST's
    imgs = read_idx(idx_files(FASHION, DATASETS["fashion-mnist"], "t10k")[0])[:3].numpy()
    for i, a in enumerate(imgs): Image.fromarray(a).save(tmp_path / f"item{i}.png")
    p = in_process(main, "predict", *[tmp_path / f"item{i}.png" for i in range(3)],
                   "--checkpoint", tmp_path / "weights", "--json", tmp_path / "p.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    names = set(DATASETS["fashion-mnist"].classes)
    assert any(n in p.stdout for n in names)


def test_imagefolder_at_its_own_size(tmp_path):
    """A tree of 40 px images trains and tests at --img_size 32 (not blown up to 224)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for ci, c in enumerate(("cat", "dog")):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
                a[..., ci] += 180
                Image.fromarray(a).save(tmp_path / split / c / f"{i}.png")
    cfg = mgnet.MGNetConfig(dataset="imagenet", train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "val"),
                            img_size=32)
    dm = MGNetData(cfg)
    assert dm.train_ds[0][0].shape == (3, 32, 32) and dm.val_ds[0][0].shape == (3, 32, 32)
    assert dm.cfg.eval_resize == 37                                    # the paper's 256/224 ratio
    r = in_process(main, "--dataset", "imagenet", "--train_dir", tmp_path / "train", "--val_dir", tmp_path / "val",
                   "--img_size", 32, "--model", "resnet18", "--scale", 2, "--n_iter", 2, "--epochs", 1,
                   "--batch_size", 4, "--workers", 0, "--flop_count", "--log_dir", "logs", "--results", "r.json",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["config"]["img_size"] == 32 and res["config"]["class_names"] == ["cat", "dog"]
    # FLOPs are those of 32 px images: the baseline at 224 px would cost (224/32)^2 = 49x more
    big = mgnet.flops.baseline_gflops(mgnet.MGNetConfig(dataset="imagenet", model="resnet18", num_class=2), 224)
    assert res["baseline_gflops"] < big / 30
    bad = in_process(main, "--dataset", "imagenet", "--train_dir", tmp_path / "train", "--img_size", 4, cwd=tmp_path)
    assert bad.returncode == 2 and "--img_size" in bad.stderr.strip().splitlines()[-1]
    empty = tmp_path / "empty"; empty.mkdir()
    bad = in_process(main, "--dataset", "imagenet", "--train_dir", empty, cwd=tmp_path)
    assert bad.returncode == 2 and "no class folders" in bad.stderr


def test_weights_folder_and_torch_hub(tmp_path):
    torch.manual_seed(0)
    m = mgnet.MGNet(n_iter=3).eval()
    m.save_pretrained(tmp_path / "w")
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    assert cfg["n_iter"] == 3 and "mgnet_version" in cfg
    hub = torch.hub.load(str(ROOT), "mgnet", source="local", weights=str(tmp_path / "w"))
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(hub(x).logits, m(x).logits)
    assert torch.hub.load(str(ROOT), "mgnet", source="local", n_iter=2).n_iter == 2
    # a weights folder that does not fit: the same one-line explanation as a checkpoint's
    with pytest.raises(mgnet.CheckpointError, match="the checkpoint has 10 classes, the model 7"):
        mgnet.load_checkpoint(tmp_path / "w", num_class=7)
    # no pickle anywhere: the safetensors file holds tensors only
    raw = (tmp_path / "w" / "model.safetensors").read_bytes()
    assert b"__reduce__" not in raw and raw[8:9] == b"{"
