"""Loading checkpoints in the original MGNet repository's layout (PyTorch Lightning 1.0.8), safely and faithfully."""
import argparse
import json
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import in_process
from PIL import Image
from reference import reference_forward

import mgnet
from mgnet.checkpoint import CheckpointError
from mgnet.cli import main

NUM_CLASS = 5


def _fake_lightning():
    """Modules and classes named as Lightning 1.0.8 names them, so pickles refer to them as the original's did."""
    mods = {n: types.ModuleType(n) for n in ["pytorch_lightning", "pytorch_lightning.utilities",
                                             "pytorch_lightning.utilities.parsing", "pytorch_lightning.callbacks",
                                             "pytorch_lightning.callbacks.model_checkpoint"]}

    class AttributeDict(dict):
        def __getattr__(self, k):
            return self[k]

    class ModelCheckpoint:
        pass

    AttributeDict.__module__ = "pytorch_lightning.utilities.parsing"
    ModelCheckpoint.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
    AttributeDict.__qualname__, ModelCheckpoint.__qualname__ = "AttributeDict", "ModelCheckpoint"
    mods["pytorch_lightning.utilities.parsing"].AttributeDict = AttributeDict
    mods["pytorch_lightning.callbacks.model_checkpoint"].ModelCheckpoint = ModelCheckpoint
    return mods, AttributeDict, ModelCheckpoint


def original_weights(n_iter=3, alpha=0.6, trans_method="tight-crop", seed=0, model="resnet18"):
    """Random weights with the original's key names (built without mgnet), glimpses pushed off-centre."""
    torch.manual_seed(seed)
    if model == "vanilla":    # the original's digits CNN: 1 channel in, 128 features out
        D = 128
        sd = OrderedDict()
        for i, (cin, cout, k) in enumerate([(1, 16, 5), (16, 32, 5), (32, 64, 3), (64, 128, 3)], 1):
            sd[f"backbone.conv{i}.weight"] = torch.randn(cout, cin, k, k) * (2 / (cin * k * k)) ** 0.5
            sd[f"backbone.conv{i}.bias"] = torch.randn(cout) * 0.1
    else:
        import torchvision
        bb, D = torchvision.models.resnet18(), 512
        sd = OrderedDict((f"backbone.{k}", v) for k, v in bb.state_dict().items() if not k.startswith("fc."))
        for k, v in sd.items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 1.5)
            elif k.endswith("running_mean") or k.endswith("bias"):
                v.normal_(0, 0.1)
    E = D + 3
    sd["feat_fusion.mha.in_proj_weight"] = torch.randn(3 * E, E) * (2 / E) ** 0.5
    sd["feat_fusion.mha.in_proj_bias"] = torch.randn(3 * E) * 0.1
    sd["feat_fusion.mha.out_proj.weight"] = torch.randn(E, E) * (2 / E) ** 0.5
    sd["feat_fusion.mha.out_proj.bias"] = torch.randn(E) * 0.1
    sd["feat_fusion.norm.weight"] = 1 + 0.1 * torch.randn(E)
    sd["feat_fusion.norm.bias"] = 0.1 * torch.randn(E)
    sd["loc_network.fc.weight"] = torch.randn(3, E) * 0.3
    sd["loc_network.fc.bias"] = torch.tensor([0.5, 1.0, -1.5])
    sd["global_fc.fc.weight"] = torch.randn(NUM_CLASS, E) * 0.1
    sd["global_fc.fc.bias"] = torch.randn(NUM_CLASS) * 0.1
    if alpha > 0:
        sd["glimpse_fc.fc.weight"] = torch.randn(NUM_CLASS, D) * 0.1
        sd["glimpse_fc.fc.bias"] = torch.randn(NUM_CLASS) * 0.1
    hp = dict(dataset="imagenet", num_class=NUM_CLASS, model=model, n_iter=n_iter, scale=2.33, alpha=alpha,
              s=0.02, scale_min=0.2, scale_max=0.5, trans_method=trans_method, dropout=0.0, no_detach=False,
              no_spatial_clue=False, pretrained=False, gpus="0,1,2,3", world_size=4, batch_size=64, aux=alpha > 0,
              scale_range=0.3, trans_range=1.6, trans_min=-0.8, n_iter_coef=[1] * n_iter, ge=None, ge_final=None,
              log_dir="logs/imagenet100/resnet18", train_dir="/data/train", val_dir="/data/val")
    if model == "vanilla":
        hp.update(dataset="mnist", scale=2.0, log_dir="logs/mnist/vanilla", train_dir=None, val_dir=None)
    return sd, hp


def save_original(path, sd, hp, hparams_kind="namespace", legacy=False):
    mods, AttributeDict, ModelCheckpoint = _fake_lightning()
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        hparams = argparse.Namespace(**hp) if hparams_kind == "namespace" else AttributeDict(hp)
        state = OrderedDict((f"model.{k}", v) for k, v in sd.items())
        state["accs.0.correct"] = torch.tensor(7)
        state["accs.0.total"] = torch.tensor(9)
        ckpt = {"epoch": 399, "global_step": 12345, "pytorch-lightning_version": "1.0.8",
                "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.8), "best_model_path": "x.ckpt"}},
                "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}],
                "lr_schedulers": [{"last_epoch": 3}], "state_dict": state, "hparams_name": "hparams",
                "hyper_parameters": hparams}
        torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert "pytorch_lightning" not in sys.modules or saved["pytorch_lightning"] is not None


def assert_reference_function(model, sd, hp, x):
    """`model` on `x` gives the reference's glimpses and logits from the original weights `sd`; its output."""
    with torch.no_grad():
        out = model(x)
        ref_logits, ref_glimpses = reference_forward({f"model.{k}": v for k, v in sd.items()}, hp, x)
    torch.testing.assert_close(out.glimpses, ref_glimpses, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logits, ref_logits, atol=1e-4, rtol=1e-4)
    # The glimpses really moved: the comparison covers localisation, not only the first look
    assert (out.glimpses[1:, :, 0] < 0.5).all() and out.glimpses[1:, :, 1:].abs().max() > 0.05
    return out


@pytest.mark.parametrize("hparams_kind,legacy,trans_method", [
    ("namespace", False, "tight-crop"), ("attributedict", False, "tight-crop"), ("attributedict", True, "tight-crop"),
    ("namespace", True, "center-invariant"), ("namespace", False, "naive")])
def test_original_checkpoint_same_function(tmp_path, hparams_kind, legacy, trans_method):
    sd, hp = original_weights(trans_method=trans_method)
    save_original(tmp_path / "epoch=399.ckpt", sd, hp, hparams_kind, legacy)
    model = mgnet.load_checkpoint(tmp_path)           # a directory holding the file, like --checkpoint resnet18_ours
    assert not model.training
    assert (model.cfg.n_iter, model.cfg.scale, model.cfg.alpha, model.cfg.s, model.cfg.trans_method,
            model.cfg.num_class) \
        == (3, 2.33, 0.6, 0.02, trans_method, NUM_CLASS)
    torch.manual_seed(1)
    out = assert_reference_function(model, sd, hp, torch.randn(4, 3, 112, 112))
    assert out.logits.shape == (3, 4, NUM_CLASS) and out.aux_logits.shape == (2, 4, NUM_CLASS)


def test_original_vanilla_checkpoint_same_function(tmp_path):
    """The original's digits CNN (ReLU, then pooling) and mgnet's (pooling, then ReLU) give the same model."""
    sd, hp = original_weights(n_iter=4, model="vanilla")
    save_original(tmp_path / "best.ckpt", sd, hp)
    model = mgnet.load_checkpoint(tmp_path / "best.ckpt")
    assert (model.cfg.model, model.cfg.in_chans, model.cfg.n_iter) == ("vanilla", 1, 4)
    torch.manual_seed(1)
    x = torch.zeros(4, 1, 64, 64)
    x[:, :, 8:40, 20:52] = torch.rand(4, 1, 32, 32)        # an object on an empty canvas, off-centre
    assert_reference_function(model, sd, hp, x)


def test_original_checkpoint_without_aux_and_missing_options(tmp_path):
    sd, hp = original_weights(alpha=0.0)
    for k in ("scale_min", "scale_max", "trans_method", "dropout", "no_detach", "no_spatial_clue"):
        hp.pop(k)   # absent options take the original defaults
    hp["alpha"] = 0.0
    save_original(tmp_path / "m.ckpt", sd, hp)
    model = mgnet.load_checkpoint(tmp_path / "m.ckpt")
    assert model.glimpse_fc is None and model.cfg.trans_method == "tight-crop" and model.cfg.scale_min == 0.2


@pytest.mark.parametrize("change,expect", [
    (lambda sd, hp: hp.update(num_class=7), "the checkpoint has 5 classes, the model 7"),
    (lambda sd, hp: hp.update(model="resnet34"), "another --model"),
    (lambda sd, hp: sd.pop("loc_network.fc.bias"), "missing keys: loc_network.fc.bias"),
    (lambda sd, hp: sd.update({"extra.weight": torch.zeros(1)}), "unexpected keys: extra.weight"),
    (lambda sd, hp: hp.update(alpha=0.0), "has an auxiliary classifier"),
])
def test_checkpoint_that_does_not_fit(tmp_path, change, expect):
    sd, hp = original_weights()
    change(sd, hp)
    save_original(tmp_path / "m.ckpt", sd, hp)
    with pytest.raises(CheckpointError, match="m.ckpt") as e:
        mgnet.load_checkpoint(tmp_path / "m.ckpt")
    assert expect in str(e.value)


def test_loading_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    sd, hp = original_weights()
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "hyper_parameters": hp, "x": Evil()},
               tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refusing to load.*exec"):
        mgnet.load_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()


def _image_folder(root, classes, per_class, size=48, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_original_readme_test_command(tmp_path, mgnet_cmd):
    """The original README's test command, with `python3 main.py` replaced by `mgnet`, on an original checkpoint."""
    sd, hp = original_weights(n_iter=4)
    (tmp_path / "resnet18_ours").mkdir()
    save_original(tmp_path / "resnet18_ours" / "best.ckpt", sd, hp, "attributedict")
    classes = [f"n0{i}" for i in range(NUM_CLASS)]
    train = _image_folder(tmp_path / "ImageNet100" / "train", classes, 1)
    val = _image_folder(tmp_path / "ImageNet100" / "val", classes, 2, seed=1)
    r = mgnet_cmd("--train_dir", train, "--val_dir", val, "--dataset", "imagenet", "--num_class", NUM_CLASS, "--test",
                  "--n_iter", 4, "--scale", 2.33, "--model", "resnet18", "--checkpoint", "resnet18_ours",
                  "--alpha", 0.6,
                  "--s", 0.02, "--flop_count", "--results", "res.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "res.json").read_text())
    # The same accuracy as the reference forward on the same evaluation images
    from mgnet.images import image_folder
    ds = image_folder(val, train=False, flag="val_dir")
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        ref_logits, _ = reference_forward({f"model.{k}": v for k, v in sd.items()}, hp, x)
    ref_acc = (ref_logits.argmax(-1) == y).double().mean(1).tolist()
    assert res["clean_acc"] == pytest.approx(ref_acc)
    assert len(res["gflops"]) == 4 and res["gflops"] == sorted(res["gflops"])
    assert res["gflops"][-1] / res["baseline_gflops"] == pytest.approx(0.73, abs=0.02)   # docs/method.md §1 arithmetic
    assert "GFLOPs" in r.stdout and "glimpse 4" in r.stdout

    bad = in_process(main, "--train_dir", train, "--val_dir", val, "--dataset", "imagenet", "--num_class", 7, "--test",
                     "--n_iter", 4, "--model", "resnet18", "--checkpoint", "resnet18_ours", cwd=tmp_path)
    assert bad.returncode == 2 and "the checkpoint has 5 classes, the model 7" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("removed, expect", [
    ({"coord_channels": False, "anchor_offset": False, "loc_lr": 1.0, "s_warmup": 0}, None),   # neutral: dropped
    ({"loc_lr": 10.0, "s_warmup": 16}, None),              # training only: the network is the same, the model loads
    ({"coord_channels": True}, "its stored configuration is invalid: --coord_channels: True: the option was removed"),
])
def test_checkpoint_from_before_options_were_removed(tmp_path, removed, expect):
    """A checkpoint written while the removed options existed still loads (they are ignored where the network did not
    depend on them); one whose network did is refused in one line, not loaded wrong."""
    model = mgnet.MGNet(mgnet.MGNetConfig(n_iter=2))
    path = mgnet.save_checkpoint(model, tmp_path / "m.ckpt")
    ckpt = torch.load(path, weights_only=False)
    ckpt["hyper_parameters"] = {**ckpt["hyper_parameters"], **removed}
    torch.save(ckpt, path)
    if expect is None:
        loaded = mgnet.load_checkpoint(path)
        x = torch.randn(2, 1, 64, 64)
        with torch.no_grad(): assert torch.equal(loaded.eval()(x).logits, model.eval()(x).logits)
    else:
        with pytest.raises(CheckpointError, match=expect): mgnet.load_checkpoint(path)   # one line naming the file
