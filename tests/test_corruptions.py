"""The corruption commands end to end: `mgnet-corrupt` writes an ImageNet-C style tree (deterministic, resumable),
`mgnet-corruptions` evaluates checkpoints on it, `mgnet-imagenet100`/`mgnet-imagenet100c` link class subsets."""
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import in_process, run_mgnet, snapshot
from PIL import Image

import mgnet
from mgnet.corruption_commands import corrupt_main, corruptions_main
from mgnet.imagenet100 import imagenet100_main, imagenet100c_main

CORR = ["gaussian_noise", "impulse_noise", "contrast", "motion_blur"]   # given out of the standard order on purpose
STANDARD = ["gaussian_noise", "impulse_noise", "motion_blur", "contrast"]
SEV = ["1", "4"]
LIMIT = 4                                                              # images per class


def corrupt(*args, installed=False):
    """`mgnet-corrupt` as the installed command, or (by default) its function in this process (the same code without
    the seconds a new Python spends importing torch)."""
    return run_mgnet(*args, command="mgnet-corrupt", timeout=300) if installed else in_process(corrupt_main, *args)


def pngs(root):
    return {p.relative_to(root): p.read_bytes() for p in Path(root).rglob("*.png")}


def one_line_error(r, prog, culprit):
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error:") and culprit in last, last


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("corr") / "digits-c"
    r = corrupt(out, "--corruptions", *CORR, "--severities", *SEV, "--limit", LIMIT, installed=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{10 * LIMIT * (len(CORR) * len(SEV) + 1)} images written" in r.stdout, r.stdout
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A 2-glimpse MGNet and the baseline, one short epoch each (trained in this process: the `mgnet` command itself
    is tested in test_cli.py). A tiny learning rate keeps their predictions dependent on the input, so that
    accuracies on different folders can tell the folders apart."""
    d = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name, kw in [("MGNet", dict(n_iter=2)), ("baseline", dict(n_iter=1, scale=1.0))]:
        cfg = mgnet.MGNetConfig(epochs=1, limit_train=3, limit_val=2, learning_rate=1e-4, log_dir=str(d), **kw)
        out[name] = {"checkpoint": str(mgnet.fit(cfg, progress=False).best_checkpoint)}
    return out


def test_layout(tree):
    meta = json.loads((tree / "corruption_tree.json").read_text())
    assert (meta["dataset"], meta["seed"], meta["translate"], meta["data_seed"]) == ("digits", 0, 0.4, 0)
    assert sorted(p.name for p in tree.iterdir()) == sorted(CORR + ["clean", "corruption_tree.json",
                                                                    "object_boxes.json"])
    for c in CORR:
        assert sorted(p.name for p in (tree / c).iterdir()) == SEV
        for s in SEV:
            classes = sorted(p.name for p in (tree / c / s).iterdir())
            assert classes == [str(i) for i in range(10)]
            assert all(len(list((tree / c / s / k).glob("*.png"))) == LIMIT for k in classes)
    files = sorted((tree / "clean").rglob("*.png"))
    assert len(files) == 10 * LIMIT
    assert not list(tree.rglob("*.tmp"))
    with Image.open(tree / "gaussian_noise/4" / files[0].relative_to(tree / "clean")) as im:
        assert (im.mode, im.size) == ("L", (64, 64))


def test_clean_copy_is_the_validation_set(tree):
    """clean/<class>/<index>.png is validation image <index>, un-normalised, to within uint8 rounding; its class
    folder is its label; and the corrupted copies differ from it."""
    val = mgnet.TranslatedDigits(train=False)
    for f in sorted((tree / "clean").rglob("*.png"))[::7]:
        i = int(f.stem)
        x, y = val[i]
        with Image.open(f) as im: a = np.asarray(im, dtype=np.float32) / 255
        assert int(f.parent.name) == int(y)
        assert np.abs(a - (x[0].numpy() * val.std + val.mean)).max() <= 0.5 / 255 + 1e-5
        with Image.open(tree / "gaussian_noise/4" / f.relative_to(tree / "clean")) as im:
            assert np.abs(np.asarray(im, dtype=np.float32) / 255 - a).mean() > 0.05


def test_deterministic(tree, tmp_path):
    """Same seed: the same bytes, also from worker processes; another seed: other noise, the same deterministic
    corruptions."""
    r = corrupt(tmp_path / "again", "--corruptions", *CORR, "--severities", *SEV, "--limit", LIMIT, "--workers", 2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert pngs(tmp_path / "again") == pngs(tree)
    r = in_process(corrupt_main, tmp_path / "seed1", "--corruptions", "gaussian_noise", "contrast", "--severities", 1,
                   "--limit", 2, "--seed", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    other, ref = pngs(tmp_path / "seed1"), pngs(tree)
    noise = [p for p in other if p.parts[0] == "gaussian_noise"]
    assert len(noise) == 20 and all(other[p] != ref[p] for p in noise)
    contrast = [p for p in other if p.parts[0] == "contrast"]
    assert len(contrast) == 20 and all(other[p] == ref[p] for p in contrast)


def test_resume(tmp_path):
    out = tmp_path / "t"
    args = ("--corruptions", "gaussian_noise", "impulse_noise", "--severities", 2, "--limit", 2)
    assert in_process(corrupt_main, out, *args).returncode == 0
    full = pngs(out)
    victim = sorted(p for p in full if p.parts[0] == "impulse_noise")[3]
    (out / victim).unlink()
    before = snapshot(out)
    r = corrupt(out, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 images written" in r.stdout, r.stdout
    after = snapshot(out)
    assert set(after) - set(before) == {out / victim}
    assert all(after[p] == before[p] for p in before)          # nothing else rewritten (sizes and mtimes)
    assert pngs(out) == full                                   # and the file came back byte for byte

    # a different seed would mix two trees: refused, nothing touched
    r = in_process(corrupt_main, out, *args, "--seed", 5)
    one_line_error(r, "mgnet corrupt", "--seed")
    assert snapshot(out) == after


def test_imagefolder_source(tmp_path):
    src = tmp_path / "val set"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (src / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray((rng.random((260, 300, 3)) * 255).astype(np.uint8)).save(src / cls / f"img {i}.jpg")
    before = snapshot(src)
    r = corrupt(tmp_path / "out", "--dataset", "imagenet", "--val_dir", src, "--corruptions", "fog", "jpeg_compression",
                "--severities", 3)
    assert r.returncode == 0, r.stderr[-3000:]
    assert snapshot(src) == before
    files = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.png"))
    assert len(files) == 12 and Path("fog/3/dog/img 1.png") in files and Path("clean/cat/img 0.png") in files
    with Image.open(tmp_path / "out/fog/3/dog/img 1.png") as im:
        assert (im.mode, im.size) == ("RGB", (224, 224))
    # at the models' own size: --img_size crops folder images to it, and a tree keeps one size
    r = corrupt(tmp_path / "small", "--dataset", "imagenet", "--val_dir", src, "--corruptions", "fog",
                "--severities", 3, "--img_size", 96)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ("clean/cat/img 0.png", "fog/3/dog/img 1.png"):
        with Image.open(tmp_path / "small" / f) as im: assert im.size == (96, 96)
    r = in_process(corrupt_main, tmp_path / "small", "--dataset", "imagenet", "--val_dir", src, "--corruptions",
                   "contrast", "--severities", 3)
    one_line_error(r, "mgnet corrupt", "--img_size")
    assert not (tmp_path / "small" / "contrast").exists()
    # refuses to write inside the source
    r = in_process(corrupt_main, src / "cat" / "c", "--dataset", "imagenet", "--val_dir", src, "--corruptions", "fog")
    one_line_error(r, "mgnet corrupt", "inside the source")
    assert snapshot(src) == before


def test_corrupt_invalid_input(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    before = snapshot(tmp_path)
    one_line_error(corrupt(tmp_path / "out", "--corruptions", "rain"), "mgnet corrupt", "--corruptions")
    for args, culprit in [(["--severities", "6"], "--severities"), (["--dataset", "imagenet"], "--val_dir"),
                          (["--dataset", "imagenet", "--val_dir", "/no/such/dir"], "/no/such/dir"),
                          (["--limit", "0"], "--limit"), (["--translate", "2"], "--translate"),
                          (["--workers", "-1"], "--workers"), (["--img_size", "4"], "--img_size")]:
        one_line_error(in_process(corrupt_main, tmp_path / "out", *args), "mgnet corrupt", culprit)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()
    r = in_process(corrupt_main, tmp_path, "--limit", 1)       # a folder it did not make, not empty
    one_line_error(r, "mgnet corrupt", "not empty")
    assert snapshot(tmp_path) == before


def _direct_accuracy(model, folder, mean, std):
    """Accuracy per glimpse computed without the package's loaders: PNG → [0, 1] → normalised, label = class folder."""
    files = sorted(folder.rglob("*.png"))
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(f), dtype=np.float32) / 255) for f in files])[:, None]
    y = torch.tensor([int(f.parent.name) for f in files])
    with torch.no_grad(): pred = model((x - mean) / std).logits.argmax(-1)
    return (pred == y).double().mean(1).tolist(), pred


def test_evaluate_tree(tree, checkpoints, tmp_path):
    r = run_mgnet("--checkpoint", checkpoints["MGNet"]["checkpoint"],
                  "--checkpoint", checkpoints["baseline"]["checkpoint"],
                  "--corruption_dir", tree, "--results", tmp_path / "c.json", "--csv", tmp_path / "c.csv",
                  command="mgnet-corruptions", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "c.json").read_text())
    assert list(res["models"]) == ["MGNet", "baseline"]
    val = mgnet.TranslatedDigits(train=False)
    preds = set()
    for name, n_glimpses in [("MGNet", 2), ("baseline", 1)]:
        m = res["models"][name]
        assert list(m["corruption_acc"]) == STANDARD                # standard ImageNet-C order
        assert all(list(m["corruption_acc"][c]) == SEV for c in STANDARD)
        assert all(len(m["corruption_acc"][c][s]) == n_glimpses for c in STANDARD for s in SEV)
        model = mgnet.load_checkpoint(m["checkpoint"])
        for c in STANDARD:
            for s in SEV:
                direct, pred = _direct_accuracy(model, tree / c / s, val.mean, val.std)
                assert m["corruption_acc"][c][s] == pytest.approx(direct), (name, c, s)
                preds.add(pred.numpy().tobytes())
        # clean: the PNG round trip against the validation tensors themselves (rounding may flip at most a few)
        files = sorted((tree / "clean").rglob("*.png"))
        xs = torch.stack([val[int(f.stem)][0] for f in files])
        ys = torch.tensor([int(val[int(f.stem)][1]) for f in files])
        with torch.no_grad(): ref = (model(xs).logits.argmax(-1) == ys).double().mean(1).tolist()
        assert m["clean_acc"] == pytest.approx(ref, abs=2 / len(files))
        avg = [np.mean([np.mean([m["corruption_acc"][c][s][t] for s in SEV]) for c in STANDARD])
               for t in range(n_glimpses)]
        assert m["mean_corruption_acc"] == pytest.approx(avg)
    assert len(preds) > 3, "the models' predictions do not depend on their input: the comparison above proves little"

    rows = list(csv.reader((tmp_path / "c.csv").open()))
    assert rows[0] == ["corruption", "MGNet g1", "MGNet g2", "baseline g1"]
    assert [r_[0] for r_ in rows[1:]] == STANDARD + ["average", "clean"]
    table = {r_[0]: [float(v) for v in r_[1:]] for r_ in rows[1:]}
    mg, bl = res["models"]["MGNet"], res["models"]["baseline"]
    for c in STANDARD:                                         # each row: the severities' mean, per model and glimpse
        want = [np.mean([m["corruption_acc"][c][s][t] for s in SEV]) for m in (mg, bl)
                for t in range(len(m["clean_acc"]))]
        assert table[c] == pytest.approx(want, abs=1e-6), c
    assert table["average"] == pytest.approx([*mg["mean_corruption_acc"], *bl["mean_corruption_acc"]], abs=1e-6)
    assert table["clean"] == pytest.approx([*mg["clean_acc"], *bl["clean_acc"]], abs=1e-6)

    lines = r.stdout.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("corruption"))
    body = [l for l in lines[head + 1:] if l and not l.startswith("-")][:len(STANDARD) + 2]
    assert [l.split()[0] for l in body] == STANDARD + ["average", "clean"]
    for l in body:                                             # the best of the row, and only it, marked
        vals = [float(v.rstrip("*")) for v in l.split()[1:]]
        marked = [float(v.rstrip("*")) for v in l.split()[1:] if v.endswith("*")]
        assert marked and all(v == max(vals) for v in marked), l


def test_extra_types_are_not_averaged_and_partial_trees_get_no_mce(tree, checkpoints, tmp_path):
    t = tmp_path / "t"
    shutil.copytree(tree, t)
    shutil.copytree(t / "gaussian_noise", t / "speckle_noise")       # one of ImageNet-C's extra types
    r = in_process(corruptions_main, "--checkpoint", checkpoints["MGNet"]["checkpoint"], "--corruption_dir", t,
                   "--results", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    rows, m = res["table"]["rows"], res["models"]["MGNet"]
    assert list(rows) == STANDARD + ["average", "speckle_noise", "clean"]
    assert rows["average"] == pytest.approx([np.mean([rows[c][t_] for c in STANDARD]) for t_ in range(2)])
    assert m["mean_corruption_acc"] == pytest.approx(rows["average"]) and m["mce"] is None and m["relative_mce"] is None
    assert res["summary"]["extra_types"] == ["speckle_noise"]
    assert "speckle_noise not averaged in" in r.stdout
    assert "no mCE: the tree holds 4 of the 15 standard types" in r.stdout


def test_mce_of_a_tree_whose_corruptions_change_nothing(tree, checkpoints, tmp_path):
    """Every <type>/<severity> folder a link to the clean copy: each type's error is the clean error, so the mCE is
    the mean of clean error / AlexNet's error per type and the relative mCE is 0 (the error does not rise)."""
    from mgnet.corruption_eval import ALEXNET_ERR
    t = tmp_path / "t"
    t.mkdir()
    (t / "clean").symlink_to(tree / "clean", target_is_directory=True)
    for c in ALEXNET_ERR:
        for s in range(1, 6):
            (t / c).mkdir(exist_ok=True)
            (t / c / str(s)).symlink_to(tree / "clean", target_is_directory=True)
    r = in_process(corruptions_main, "--checkpoint", checkpoints["MGNet"]["checkpoint"], "--checkpoint",
                   checkpoints["baseline"]["checkpoint"], "--corruption_dir", t, "--results", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    for name in ("MGNet", "baseline"):
        m = res["models"][name]
        err = [1 - a for a in m["clean_acc"]]
        assert m["mce"] == pytest.approx([np.mean([e / a for a in ALEXNET_ERR.values()]) for e in err])
        assert m["relative_mce"] == pytest.approx([0.0] * len(err), abs=1e-9)
    assert "mCE, AlexNet = 100" in r.stdout and "relative mCE" in r.stdout


def test_evaluate_invalid_input(tree, checkpoints, tmp_path):
    ck = checkpoints["MGNet"]["checkpoint"]
    few = tmp_path / "few"                                     # 3 classes for a 10-class model
    for k in "abc": (few / "fog" / "1" / k).mkdir(parents=True)
    for k in "abc": shutil.copy(next((tree / "clean" / "0").glob("*.png")), few / "fog" / "1" / k / "x.png")
    before = snapshot(tmp_path)
    cases = [(["--corruption_dir", tree, "--corruptions", "fog"], "--corruptions: fog"),
             (["--corruption_dir", few], "3 class folders"),
             (["--corruption_dir", tree, "--results", tmp_path / "no/such/r.json"], "--results")]
    for k, (args, culprit) in enumerate(cases):
        r = in_process(corruptions_main, "--checkpoint", ck, *args)        # test_evaluate_tree runs the installed one
        one_line_error(r, "mgnet corruptions", culprit)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------------------- ImageNet100 links

def _fake_imagenet(root, classes):
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            (root / split / c / f"{c}_0001.JPEG").write_bytes(b"")


def test_imagenet100_links(tmp_path):
    from mgnet.imagenet100 import default_classes
    default = default_classes()
    assert len(default) == 100 and default[0] == "n01440764" and default[-1] == "n01855672"
    src = tmp_path / "Image Net 'raw' \"ü\""
    _fake_imagenet(src, default + ["n09999999"])
    before = snapshot(src)
    out = tmp_path / "image net 100 ü"
    r = run_mgnet(src, out, command="mgnet-imagenet100")
    assert r.returncode == 0, r.stderr[-3000:]
    for split in ("train", "val"):
        links = sorted((out / split).iterdir())
        assert [p.name for p in links] == default                   # the extra class is not linked
        assert all(p.is_symlink() and Path(os.readlink(p)) == src.absolute() / split / p.name for p in links)
    assert (out / "val" / "n01440764" / "n01440764_0001.JPEG").is_file()
    assert snapshot(src) == before

    # an existing target: refused without --overwrite; with it the links are remade, the source untouched
    links_before = {p: os.readlink(p) for p in (out / "train").iterdir()}
    r = in_process(imagenet100_main, src, out)
    one_line_error(r, "mgnet imagenet100", "--overwrite")
    r = in_process(imagenet100_main, src, out, "--overwrite")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: os.readlink(p) for p in (out / "train").iterdir()} == links_before
    assert snapshot(src) == before

    # a real folder where a link would go is never replaced, even with --overwrite; nothing else is made
    (tmp_path / "cls.txt").write_text("n01443537\nn01484850\n")
    real = tmp_path / "o2" / "val" / "n01484850"
    real.mkdir(parents=True)
    (real / "mine.txt").write_text("keep")
    r = in_process(imagenet100_main, src, tmp_path / "o2", "--classes", tmp_path / "cls.txt", "--overwrite")
    one_line_error(r, "mgnet imagenet100", "never replaced")
    assert (real / "mine.txt").read_text() == "keep" and not (tmp_path / "o2" / "train").exists()

    # a class missing from the source, and an OUT_DIR inside the source: refused, nothing made
    (tmp_path / "bad.txt").write_text("n01443537\nn00000000\n")
    r = in_process(imagenet100_main, src, tmp_path / "o3", "--classes", tmp_path / "bad.txt")
    one_line_error(r, "mgnet imagenet100", "n00000000")
    assert not (tmp_path / "o3").exists()
    r = in_process(imagenet100_main, src, src / "train" / "sub")
    one_line_error(r, "mgnet imagenet100", "inside IMAGENET_DIR")
    assert snapshot(src) == before


def test_imagenet100c_links(tmp_path):
    src = tmp_path / "imagenet c ü"
    for t in ("fog", "gaussian_noise"):
        for s in "12345":
            for c in ("n01", "n02", "n03"):
                (src / t / s / c).mkdir(parents=True)
                (src / t / s / c / "a.JPEG").write_bytes(b"")
    before = snapshot(src)
    (tmp_path / "cls.txt").write_text("n01\nn03\n")
    out = tmp_path / "in100 c"
    r = run_mgnet(src, out, "--classes", tmp_path / "cls.txt", command="mgnet-imagenet100c")
    assert r.returncode == 0, r.stderr[-3000:]
    links = sorted(p.relative_to(out) for p in out.glob("*/*/*"))
    assert links == sorted(Path(t) / s / c for t in ("fog", "gaussian_noise") for s in "12345" for c in ("n01", "n03"))
    assert all((out / p).is_symlink() and Path(os.readlink(out / p)) == src.absolute() / p for p in links)
    r = in_process(imagenet100c_main, src, out, "--classes", tmp_path / "cls.txt")
    one_line_error(r, "mgnet imagenet100c", "--overwrite")
    r = in_process(imagenet100c_main, src, tmp_path / "x")     # default list: classes not in this source
    one_line_error(r, "mgnet imagenet100c", "n01440764")
    assert not (tmp_path / "x").exists()
    assert snapshot(src) == before


def test_mnist_family_tree(tmp_path, fashion_mnist_files):
    """A canvas dataset read from MNIST-format files (real Fashion-MNIST here, or tiny files written in that format):
    `mgnet-corrupt` writes its test canvases, `mgnet-corruptions` evaluates a Fashion-MNIST checkpoint on them, and the
    clean copy is the model's own validation canvases."""
    from mgnet.datamodule import MGNetData
    files = fashion_mnist_files
    out = tmp_path / "fm-c"
    r = in_process(corrupt_main, out, "--dataset", "fashion-mnist", "--train_dir", files, "--img_size", 56,
                   "--corruptions", "fog", "contrast", "--severities", 2, "--limit", 2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "20 source images, 10 classes" in r.stdout, r.stdout
    meta = json.loads((out / "corruption_tree.json").read_text())
    assert (meta["dataset"], meta["image_size"], meta["channels"]) == ("fashion-mnist", 56, 1)
    with Image.open(next((out / "fog" / "2").rglob("*.png"))) as im: assert (im.mode, im.size) == ("L", (56, 56))

    cfg = mgnet.MGNetConfig(dataset="fashion-mnist", train_dir=str(files), img_size=56, n_iter=2, scale=2).resolved()
    torch.manual_seed(0)
    ck = tmp_path / "ck" / "best.ckpt"
    mgnet.save_checkpoint(mgnet.MGNet(cfg).eval(), ck)
    e = in_process(corruptions_main, "--checkpoint", ck, "--corruption_dir", out, "--results", tmp_path / "r.json")
    assert e.returncode == 0, e.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())["models"]["MGNet"]
    assert list(res["corruption_acc"]) == ["fog", "contrast"] and len(res["corruption_acc"]["fog"]["2"]) == 2
    assert len(res["clean_acc"]) == 2

    val = MGNetData(cfg.replace(test=True)).val_dataloader().dataset     # the clean copy: the model's own canvases
    i = int(next((out / "clean").rglob("*.png")).stem)
    png = next((out / "clean").rglob(f"{i:04d}.png"))
    x = torch.from_numpy(np.array(Image.open(png))).float() / 255
    assert torch.allclose(x, val[i][0][0] * cfg.std[0] + cfg.mean[0], atol=0.5 / 255 + 1e-5)

    digits = tmp_path / "digits.ckpt"
    mgnet.save_checkpoint(mgnet.MGNet(mgnet.MGNetConfig(n_iter=2).resolved()), digits)
    bad = in_process(corruptions_main, "--checkpoint", digits, "--corruption_dir", out)
    one_line_error(bad, "mgnet corruptions", "made from fashion-mnist images")


def test_cluttered_tree_from_a_checkpoint(tmp_path):
    """`mgnet corrupt --checkpoint` writes the model's own validation canvases: its clutter (16 pieces here, a held-out
    count), background, canvas size (48 px) and data seed, with the objects' boxes, so that the glimpse IoU is measured
    on any folder of the tree; flags given as well win, and `mgnet corruptions` warns about a tree of other canvases;
    bad clutter values are one line naming the flag."""
    from mgnet.corruption_trees import corruption_dataset
    from mgnet.datamodule import MGNetData
    from mgnet.localisation import object_boxes
    cfg = mgnet.MGNetConfig(n_iter=2, scale=2, translate=1.0, clutter=16, background="tiles", img_size=48,
                            data_seed=2).resolved()
    torch.manual_seed(0)
    ck = tmp_path / "cl.ckpt"
    mgnet.save_checkpoint(mgnet.MGNet(cfg).eval(), ck)
    out = tmp_path / "cl-c"
    r = corrupt(out, "--checkpoint", ck, "--corruptions", "fog", "--severities", 2, "--limit", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "corruption_tree.json").read_text())
    assert ({k: meta[k] for k in ("clutter", "background", "image_size", "data_seed", "translate")}
            == dict(clutter=16, background="tiles", image_size=48, data_seed=2, translate=1.0))
    val = MGNetData(cfg.replace(test=True)).val_ds                       # the model's own validation canvases
    plain = MGNetData(cfg.replace(test=True, clutter=0, background="none")).val_ds
    for png in (out / "clean").rglob("*.png"):
        i, x = int(png.stem), torch.from_numpy(np.array(Image.open(png))).float() / 255
        assert torch.allclose(x, val[i][0][0] * cfg.std[0] + cfg.mean[0], atol=0.5 / 255 + 1e-5)
        assert (x - (plain[i][0][0] * cfg.std[0] + cfg.mean[0])).abs().max() > 0.5      # not the empty canvas
    ds = corruption_dataset(out / "fog" / "2", cfg)
    idx = [int(Path(p).stem) for p, _ in ds.samples]
    assert torch.equal(object_boxes(ds), val.object_boxes()[idx])        # the boxes, read back from the tree

    other = tmp_path / "plain-c"                                          # a flag wins over the checkpoint's
    r = corrupt(other, "--checkpoint", ck, "--clutter", 2, "--background", "none", "--corruptions", "fog",
                "--severities", 2, "--limit", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((other / "corruption_tree.json").read_text())["clutter"] == 2
    for tree, warned in ((out, False), (other, True)):
        e = in_process(corruptions_main, "--checkpoint", ck, "--corruption_dir", tree, "--results", tree / "r.json")
        assert e.returncode == 0, e.stderr[-3000:]
        assert ("--clutter 2 " in e.stderr and "--clutter 16 --clutter_size 0.25 --background tiles" in e.stderr) \
            == warned, e.stderr[-2000:]
    res = json.loads((out / "r.json").read_text())["models"]["MGNet"]                 # where the glimpses went
    assert len(res["corruption_iou"]["fog"]["2"]) == 2 and len(res["clean_iou"]) == 2
    assert "glimpse IoU with the object" in e.stdout

    for args, culprit in ((["--clutter", -1], "--clutter"), (["--clutter_size", 0], "--clutter_size"),
                          (["--background", "stripes"], "--background"), (["--checkpoint", tmp_path / "no.ckpt"],
                                                                         "--checkpoint"),
                          (["--checkpoint", ck, "--dataset", "mnist"], "--dataset"),
                          (["--dataset", "imagenet", "--val_dir", tmp_path, "--clutter", 2], "--clutter")):
        one_line_error(corrupt(tmp_path / "bad", *args), "mgnet corrupt", culprit)
    one_line_error(corrupt(out, "--checkpoint", ck, "--clutter", 3), "mgnet corrupt", "--clutter")   # resumed alike
    assert not (tmp_path / "bad").exists()
