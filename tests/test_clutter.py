"""Cluttered and textured canvases keep the object's box and are seeded; the evidence centring loss trains; a cluttered
model's canvases reach its corruption tree, predict and the explorer (CPU, s)."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import in_process
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mgnet import MGNet, MGNetConfig, load_checkpoint
from mgnet.cli import main
from mgnet.corruption_commands import corrupt_main
from mgnet.data import canvas_datasets
from mgnet.datamodule import MGNetData
from mgnet.lab.explorer import ImageExplorer
from mgnet.localisation import object_boxes
from mgnet.losses import mgnet_loss
from mgnet.predict_command import predict_main


def _raw(ds, i):
    return ds[i][0] * ds.std + ds.mean


@pytest.mark.parametrize("kw", [dict(clutter=6), dict(clutter=2, background="blur"), dict(background="tiles")])
def test_clutter_keeps_the_box_and_the_object_and_is_seeded(kw):
    c = MGNetConfig(translate=1.0, data_seed=0, **kw).resolved()
    train, val = canvas_datasets(c)
    plain = canvas_datasets(c.replace(clutter=0, background="none"))[1]
    assert torch.equal(val.object_boxes(), plain.object_boxes())           # the boxes are the empty canvas's
    for i in (0, 7):
        a, b = _raw(val, i), _raw(plain, i)
        assert (a >= b - 1e-5).all() and (a > b + 0.05).sum() > 10        # the object whole, more laid around it
        assert torch.equal(val[i][0], canvas_datasets(c)[1][i][0])        # validation: fixed by the seed
    assert not torch.equal(val[0][0], canvas_datasets(c.replace(data_seed=1))[1][0][0])
    assert not torch.equal(train[0][0], train[0][0])                      # training: drawn afresh
    fresh = val.placed_anew(1, seed=5)
    assert not torch.equal(fresh[0][0], val[0][0]) and fresh.object_boxes().shape == (len(val), 4)


def test_clutter_on_mnist_format_files(mnist_format_files):
    c = MGNetConfig(dataset="fashion-mnist", train_dir=str(mnist_format_files), clutter=4,
                    background="blur").resolved()
    _, val = canvas_datasets(c)
    x = _raw(val, 3)
    assert x.shape == (1, 112, 112) and (x > 0.05).float().mean() > 0.5   # a background under the whole canvas
    assert val.object_boxes().shape == (20, 4)


def test_evidence_loss_moves_the_head_and_leaves_the_model_the_papers():
    torch.manual_seed(0)
    c = MGNetConfig(translate=1.0, clutter=8, n_iter=3, scale=4.0, loc_init="zero", evidence_coef=1000.0).resolved()
    train, _ = canvas_datasets(c)
    model = MGNet(c)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    w0 = model.loc_network.fc.weight.detach().clone()
    for step in range(3):
        x, y = map(torch.stack, zip(*train.__getitems__(list(range(step * 32, step * 32 + 32)))))
        parts = mgnet_loss(model(x), y, c, model, x)
        assert torch.isfinite(parts.loss) and parts.extra["evidence"] > 0
        opt.zero_grad(); parts.loss.backward(); opt.step()
    assert not torch.equal(model.loc_network.fc.weight, w0)                # the head learned where to look
    assert c.model_config() == c.replace(evidence_coef=0.0).model_config()
    with pytest.raises(ValueError, match="evidence_coef"): mgnet_loss(model(x), y, c, None, x)


def test_clutter_and_evidence_flags_end_to_end_on_held_out_canvases(tmp_path, mnist_format_files):
    """The flags end to end on held-out settings: MNIST-format files of another dataset (kmnist; tiny files written
    here), 2 pieces of clutter on a blurred background, a 100 px canvas, the evidence loss. Trained one epoch of one
    step, tested with the glimpse IoU; its corruption tree written from the checkpoint alone is its own validation set,
    boxes kept; predict reads the tree's images; the explorer shows the checkpoint's cluttered canvases with their
    boxes, and a model of other canvases beside it its own. A bad value is one line naming the flag."""
    raw = mnist_format_files / "FashionMNIST" / "raw"
    r = in_process(main, "--dataset", "kmnist", "--train_dir", raw, "--img_size", 100, "--scale", 4, "--n_iter", 2,
                   "--clutter", 2, "--background", "blur", "--evidence_coef", 100, "--epochs", 1, "--limit_train", 1,
                   "--limit_val", 1, "--batch_size", 8, "--log_dir", tmp_path / "logs",
                   "--results", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    run_dir = Path(res["run_dir"])
    for part in ("cl2", "bg-blur", "evd100"): assert part in run_dir.parent.name
    acc = EventAccumulator(str(run_dir)); acc.Reload()
    assert "train/evidence" in acc.Tags()["scalars"]
    assert (res["config"]["clutter"], res["config"]["background"], res["config"]["img_size"]) == (2, "blur", 100)
    assert res["localisation"]["images"] == 20 and len(res["localisation"]["glimpse_iou"]) == 2
    printed = next(line for line in r.stdout.splitlines() if line.startswith("IoU with the object")).split()[-2:]
    assert printed == [f"{v:.4f}" for v in res["localisation"]["glimpse_iou"]], r.stdout   # the table shows it
    ck = run_dir / "checkpoints" / "last.ckpt"
    m = load_checkpoint(ck)
    val = MGNetData(m.run.replace(test=True, limit_val=1.0)).val_ds

    tree = tmp_path / "tree"
    c = in_process(corrupt_main, tree, "--checkpoint", ck, "--corruptions", "contrast", "--severities", 1)
    assert c.returncode == 0, c.stderr[-3000:]
    meta = json.loads((tree / "corruption_tree.json").read_text())
    assert (meta["dataset"], meta["clutter"], meta["background"], meta["image_size"]) == ("kmnist", 2, "blur", 100)
    png = next((tree / "clean").rglob("*.png"))
    x = torch.from_numpy(np.array(Image.open(png))).float() / 255
    assert torch.allclose(x, _raw(val, int(png.stem))[0], atol=0.5 / 255 + 1e-5)
    boxes = json.loads((tree / "object_boxes.json").read_text())["boxes"]
    assert boxes[png.relative_to(tree / "clean").as_posix()] == val.object_boxes()[int(png.stem)].tolist()

    p = in_process(predict_main, tree / "clean", "--checkpoint", ck, "--json", tmp_path / "p.json", "--device", "cpu")
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(json.loads((tmp_path / "p.json").read_text())["predictions"]) == 20

    plain = copy.deepcopy(m)
    plain.run = m.run.replace(clutter=0, background="none")
    ex = ImageExplorer(m, compare=plain)
    shown, other = ex.dataset_at(0), ex.dataset_at(1)
    assert torch.equal(shown[3][0], val[3][0]) and object_boxes(shown).shape == (len(shown), 4)
    assert not torch.equal(other[3][0], shown[3][0])          # each model its own canvases
    assert ex.panel(0, 3, "")["obj"] == val.object_boxes()[3].tolist()          # the object's box, drawn
    on_tree = ImageExplorer(m, images=tree / "clean")                  # the tree's folder: the same boxes, the IoU
    i = on_tree.files.index(png)
    pred, _, _, iou, box = on_tree.prediction(0, i)
    assert box == boxes[png.relative_to(tree / "clean").as_posix()]
    assert iou == pytest.approx(ex.prediction(0, int(png.stem))[3], abs=0.02)   # as on the canvas it was written from
    listed = ImageExplorer(m, images=sorted((tree / "clean").rglob("*.png"))[:3] + [png])   # its files listed
    assert listed.prediction(0, 3)[4] == box

    bad = in_process(main, "--clutter", -2, cwd=tmp_path)
    assert bad.returncode != 0 and "--clutter" in bad.stderr
