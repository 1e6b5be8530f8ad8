"""`mgnet predict` end to end: a digits model trained in seconds, real digit images as files, JSON/CSV/pictures checked
against `mgnet.predict`, and bad input."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import in_process, run_mgnet, snapshot
from PIL import Image

import mgnet
from mgnet.anytime import early_exit
from mgnet.canvases import TranslatedDigits
from mgnet.cli import main
from mgnet.data import data_info
from mgnet.images import image_transform, to_pixels
from mgnet.predict import predict
from mgnet.predict_command import predict_main

T = 3


def predict_cmd(*args, cwd, installed=False):
    """`mgnet predict` as the installed command, or (by default) its function run in this process: the same code
    without the seconds a new Python spends importing torch."""
    return run_mgnet("predict", *args, cwd=cwd) if installed else in_process(predict_main, *args, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-glimpse digits checkpoint trained in seconds with the `mgnet` command's function."""
    d = tmp_path_factory.mktemp("train")
    r = in_process(main, "--epochs", 2, "--limit_train", 6, "--n_iter", T, "--optimizer", "adam",
                   "--learning_rate", 0.003, "--log_dir", "logs", "--results", "train.json", cwd=d)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(json.loads((d / "train.json").read_text())["checkpoint"])


@pytest.fixture(scope="module")
def digits(tmp_path_factory, trained):
    """Validation canvases of the digits as PNG files: four at 64×64, and the first again stretched to 128×96."""
    d = tmp_path_factory.mktemp("digits")
    cfg = mgnet.load_checkpoint(trained).run
    info = data_info(cfg)
    ds = TranslatedDigits(train=False, translate=cfg.translate, seed=cfg.seed)
    canvases = torch.stack([ds[i][0] for i in range(4)])
    pix = (to_pixels(canvases, info.mean, info.std).clamp(0, 1) * 255).round().byte()[:, 0].numpy()
    (d / "imgs").mkdir()
    for i, a in enumerate(pix): Image.fromarray(a).save(d / "imgs" / f"val{i}_label{int(ds[i][1])}.png")
    Image.fromarray(pix[0]).resize((128, 96), Image.NEAREST).save(d / "imgs" / "wide.png")
    return d / "imgs"


def test_predict_json_csv_pictures(tmp_path, trained, digits):
    r = predict_cmd(digits, "--checkpoint", trained, "--json", "p.json", "--csv", "p.csv", "--draw", "pics", "--gif",
                    "--topk", 2, cwd=tmp_path, installed=True)
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted(digits.glob("*.png"))
    doc = json.loads((tmp_path / "p.json").read_text())
    model = mgnet.load_checkpoint(trained)
    want = predict(model, files, topk=2)
    assert [p["source"] for p in doc["predictions"]] == [str(f) for f in files] == [p.source for p in want]
    assert doc["classes"] == list("0123456789") and doc["skipped"] == []
    for got, w in zip(doc["predictions"], want):
        assert len(got["glimpses"]) == T and got["exit_at"] is None
        assert [g["name"] for g in got["glimpses"]] == [g.name for g in w.glimpses]
        assert [g["prob"] for g in got["glimpses"]] == pytest.approx([g.prob for g in w.glimpses], abs=1e-5)
        assert [[t["name"] for t in g["top"]] for g in got["glimpses"]] == [[t.name for t in g.top] for g in w.glimpses]
        assert np.allclose([g["box"] for g in got["glimpses"]], [g.box for g in w.glimpses], atol=1e-3)
        assert f"{got['source']} ({got['size'][0]}×{got['size'][1]})" in r.stdout

    # the probabilities are the model's own on the canvas it was trained on
    x = torch.stack([image_transform(model.preprocessing)(Image.open(f).convert("L")) for f in files])
    with torch.no_grad(): probs = model(x).logits.softmax(-1)
    got = torch.tensor([[g["prob"] for g in p["glimpses"]] for p in doc["predictions"]]).T
    assert torch.allclose(got, probs.max(-1).values, atol=1e-5)

    # boxes in the original image's pixels: the first glimpse is the whole image; those of the 128×96 copy are its boxes
    # on the 64 px canvas the model saw, stretched by (2, 1.5)
    wide = next(p for p in doc["predictions"] if p["source"].endswith("wide.png"))
    assert wide["glimpses"][0]["box"] == [0, 0, 128, 96]
    on_canvas = predict(model, x[[i for i, f in enumerate(files) if f.name == "wide.png"]])[0]
    assert on_canvas.size == (64, 64)
    assert np.allclose([g["box"] for g in wide["glimpses"]],
                       np.array([g.box for g in on_canvas.glimpses]) * [2, 1.5, 2, 1.5], atol=2e-3)
    assert not np.allclose(wide["glimpses"][1]["box"], wide["glimpses"][0]["box"])     # the model did look elsewhere

    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == len(files) * T
    flat = [(p, g) for p in doc["predictions"] for g in p["glimpses"]]
    for row, (p, g) in zip(rows, flat):
        assert (row["source"], int(row["glimpse"]), row["class"]) == (p["source"], g["glimpse"], g["name"])
        assert float(row["prob"]) == pytest.approx(g["prob"])
        assert [float(row[k]) for k in ("x0", "y0", "x1", "y1")] == pytest.approx(g["box"])

    for f in files:
        png, gif = tmp_path / "pics" / f"{f.stem}.png", tmp_path / "pics" / f"{f.stem}.gif"
        with Image.open(png) as im: assert im.format == "PNG" and im.size[0] > 400
        with Image.open(gif) as im: assert (im.format, im.n_frames) == ("GIF", T)
    assert len(list((tmp_path / "pics").iterdir())) == 2 * len(files)


def test_exit_threshold_stops_where_early_exit_does(tmp_path, trained, digits):
    files = sorted(digits.glob("*.png"))
    model = mgnet.load_checkpoint(trained)
    x = torch.stack([image_transform(model.preprocessing)(Image.open(f).convert("L")) for f in files])
    with torch.no_grad(): first = model(x).logits[0].softmax(-1).max(-1).values
    thr = float(first.sort().values[len(files) // 2])               # about half stop after the first glimpse
    e = early_exit(model, x, thr)
    assert 1 in e.exit_at.tolist() and any(a > 1 for a in e.exit_at.tolist())
    r = predict_cmd(*files, "--checkpoint", trained, "--exit_threshold", thr, "--json", "e.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "e.json").read_text())
    assert [p["exit_at"] for p in doc["predictions"]] == e.exit_at.tolist()
    assert [len(p["glimpses"]) for p in doc["predictions"]] == e.exit_at.tolist()
    assert [int(p["glimpses"][-1]["index"]) for p in doc["predictions"]] == e.pred.tolist()
    assert "stopped after glimpse 1" in r.stdout


def test_skip_bad_images_and_force(tmp_path, trained, digits):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for f in sorted(digits.glob("val*.png"))[:2]: (imgs / f.name).write_bytes(f.read_bytes())
    (imgs / "broken.png").write_bytes((imgs / f.name).read_bytes()[:60])          # truncated
    r = predict_cmd(imgs, "--checkpoint", trained, "--skip_bad_images", "--json", "s.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["skipped"] == [str(imgs / "broken.png")] and len(doc["predictions"]) == 2
    assert "skipped 1 unreadable image" in r.stdout
    r = predict_cmd(imgs / f.name, "--checkpoint", trained, "--json", "s.json", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p["source"] for p in json.loads((tmp_path / "s.json").read_text())["predictions"]] == [str(imgs / f.name)]


@pytest.mark.parametrize("case", ["missing file", "unreadable image", "empty folder", "checkpoint missing",
                                  "not a checkpoint", "json exists", "json in missing dir", "picture exists",
                                  "exit threshold", "gif without draw", "no cuda"])
def test_bad_input_one_line_exit_2(tmp_path, trained, digits, case):
    one = sorted(digits.glob("*.png"))[0]
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 100)
    (tmp_path / "old.json").write_text("keep me")
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / f"{one.stem}.png").write_text("keep me too")
    args, culprit = {
        "missing file": ([tmp_path / "nope.png", "--checkpoint", trained], "nope.png: no such file"),
        "unreadable image": ([one, tmp_path / "bad.png", "--checkpoint", trained, "--json", "p.json"],
                             "bad.png: cannot read image"),
        "empty folder": ([tmp_path / "empty", "--checkpoint", trained], "empty: no images inside"),
        "checkpoint missing": ([one, "--checkpoint", tmp_path / "none.ckpt"], "--checkpoint:"),
        "not a checkpoint": ([one, "--checkpoint", tmp_path / "junk.ckpt"], "junk.ckpt"),
        "json exists": ([one, "--checkpoint", trained, "--json", "old.json"], "--json: old.json exists"),
        "json in missing dir": ([one, "--checkpoint", trained, "--json", "no/dir/p.json"], "--json"),
        "picture exists": ([one, "--checkpoint", trained, "--draw", "pics"], f"--draw: pics/{one.stem}.png exists"),
        "exit threshold": ([one, "--checkpoint", trained, "--exit_threshold", 1.5], "--exit_threshold"),
        "gif without draw": ([one, "--checkpoint", trained, "--gif"], "--gif"),
        "no cuda": ([one, "--checkpoint", trained, "--device", "cuda"], "--device: cuda: no CUDA device here"),
    }[case]
    if case == "no cuda" and torch.cuda.is_available(): pytest.skip("there is a CUDA device here")
    before = snapshot(tmp_path)
    r = predict_cmd(*args, cwd=tmp_path, installed=case == "missing file")   # one case through the installed command
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mgnet predict: error:") and culprit in last, last
    assert "Traceback" not in r.stderr
    assert snapshot(tmp_path) == before                                  # nothing written, nothing changed


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_folder_model_boxes_through_resize_and_crop(tmp_path):
    """An ImageFolder model (32 px crop) on 56×40 Fashion-MNIST pictures: the first glimpse is the centre crop the model
    saw, in the pictures' own pixels, and the later glimpses lie inside it."""
    from mgnet.canvases import read_idx
    imgs = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")[:40]
    labels = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")[:40]
    for i, (a, y) in enumerate(zip(imgs, labels)):
        d = tmp_path / "tree" / f"class{int(y)}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a.numpy()).convert("RGB").resize((56, 40), Image.BILINEAR).save(d / f"{i:03d}.png")
    r = in_process(main, "--dataset", "imagenet", "--train_dir", tmp_path / "tree", "--img_size", 32, "--epochs", 1,
                   "--limit_train", 2, "--n_iter", 2, "--batch_size", 8, "--workers", 0, "--log_dir", "logs",
                   "--results", "t.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = json.loads((tmp_path / "t.json").read_text())["checkpoint"]
    r = predict_cmd(tmp_path / "tree", "--checkpoint", ckpt, "--json", "p.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["classes"] == sorted(p.name for p in (tmp_path / "tree").iterdir())
    assert len(doc["predictions"]) == 40
    short = round(32 * 256 / 224)                    # the evaluation resize of the short side (40 px → 37)
    for p in doc["predictions"]:
        assert p["size"] == [56, 40]
        (x0, y0, x1, y1), later = p["glimpses"][0]["box"], p["glimpses"][1]["box"]
        assert y1 - y0 == pytest.approx(32 * 40 / short, rel=1e-3)                 # 32 px of the resized picture
        assert x1 - x0 == pytest.approx(32 * 40 / short, rel=0.02)
        assert (x0 + x1) / 2 == pytest.approx(28, abs=1) and (y0 + y1) / 2 == pytest.approx(20, abs=1)   # centred
        assert x0 - 1e-6 <= later[0] < later[2] <= x1 + 1e-6 and y0 - 1e-6 <= later[1] < later[3] <= y1 + 1e-6


# --- inputs are sacred (issue 40, item 2) ----------------------------------------------------------------------------

def _folder_of(digits, d, n=2):
    d.mkdir()
    for f in sorted(digits.glob("val*.png"))[:n]: (d / f.name).write_bytes(f.read_bytes())
    return d


def test_draw_into_the_input_folder_never_replaces_an_input(tmp_path, trained, digits):
    imgs = _folder_of(digits, tmp_path / "photos")
    before = snapshot(tmp_path)
    r = predict_cmd(imgs, "--checkpoint", trained, "--draw", imgs, "--force", cwd=tmp_path)
    assert r.returncode == 2 and "is one of the input images" in r.stderr.strip().splitlines()[-1], r.stderr[-2000:]
    assert snapshot(tmp_path) == before
    one = sorted(imgs.iterdir())[0]
    r = predict_cmd(one, "--checkpoint", trained, "--json", one, "--force", cwd=tmp_path)     # not even --json
    assert r.returncode == 2 and "--json" in r.stderr and "input images" in r.stderr, r.stderr[-2000:]
    assert snapshot(tmp_path) == before


def test_pictures_inside_the_input_folder_are_not_read_back(tmp_path, trained, digits):
    imgs = _folder_of(digits, tmp_path / "photos", 1)
    for run in range(2):        # the second run finds the first run's pictures (and GIFs) in the folder it reads
        r = predict_cmd(imgs, "--checkpoint", trained, "--draw", imgs / "pics", "--gif", "--json", "p.json",
                        *(["--force"] if run else []), cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        doc = json.loads((tmp_path / "p.json").read_text())
        assert sorted(Path(p["source"]).name for p in doc["predictions"]) == sorted(f.name for f in imgs.glob("*.png"))
    assert len(list((imgs / "pics").glob("*.png"))) == 1 and len(list((imgs / "pics").glob("*.gif"))) == 1


def test_two_inputs_never_share_an_output_name(tmp_path, trained, digits):
    imgs = tmp_path / "photos"; imgs.mkdir()
    src = Image.open(sorted(digits.glob("val*.png"))[0])
    src.save(imgs / "a.png"); src.save(imgs / "a.jpg"); src.save(imgs / "A-2.png"); src.save(imgs / "a-2.bmp")
    r = predict_cmd(imgs, "--checkpoint", trained, "--draw", tmp_path / "pics", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "pics").glob("*.png"))) == 4          # one picture per input, none overwritten


def test_force_replaces_only_earlier_outputs(tmp_path, trained, digits):
    imgs = _folder_of(digits, tmp_path / "photos", 1)
    one = next(imgs.iterdir())
    (tmp_path / "pics").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "pics" / one.name)         # the user's own picture, same name
    (tmp_path / "notes.json").write_text('{"my": "notes"}')
    before = snapshot(tmp_path)
    for flags, culprit in ((["--draw", "pics"], "--draw"), (["--json", "notes.json"], "--json")):
        r = predict_cmd(imgs, "--checkpoint", trained, *flags, "--force", cwd=tmp_path)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 2 and culprit in last and "not an earlier output" in last, last
    assert snapshot(tmp_path) == before
    r = predict_cmd(imgs, "--checkpoint", trained, "--json", "p.json", cwd=tmp_path)
    assert r.returncode == 0
    r = predict_cmd(imgs, "--checkpoint", trained, "--json", "p.json", "--force", cwd=tmp_path)   # its own: replaced
    assert r.returncode == 0, r.stderr[-2000:]


# --- values checked at the edge (issue 40, item 5) -------------------------------------------------------------------

@pytest.mark.parametrize("device", ["mps", "xpu", "meta", "tpu"])
def test_unavailable_devices_one_line(tmp_path, trained, digits, device):
    r = predict_cmd(sorted(digits.glob("*.png"))[0], "--checkpoint", trained, "--device", device, cwd=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and last.startswith("mgnet predict: error: --device") and "Traceback" not in r.stderr


def test_thin_image_refused_by_name(tmp_path, trained, digits):
    Image.new("L", (9_000_000, 1), 128).save(tmp_path / "thin.png")     # under Pillow's bomb limit
    r = predict_cmd(tmp_path / "thin.png", "--checkpoint", trained, cwd=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "thin.png" in last and "too thin" in last, last
    one = sorted(digits.glob("*.png"))[0]
    r = predict_cmd(one, tmp_path / "thin.png", "--checkpoint", trained, "--skip_bad_images", cwd=tmp_path)
    assert r.returncode == 0 and "skipped 1 unreadable image" in r.stdout, r.stderr[-2000:]


def test_python_api_checks_its_arguments_like_the_command(trained, digits):
    from mgnet.errors import ConfigError, MGNetError
    model = mgnet.load_checkpoint(trained)
    one = sorted(digits.glob("val*.png"))[0]
    for kw, flag in ((dict(topk=0), "--topk"), (dict(batch_size=0), "--batch_size"),
                     (dict(batch_size=2.5), "--batch_size"), (dict(exit_threshold=1.5), "--exit_threshold")):
        with pytest.raises(ConfigError, match=flag):
            predict(model, one, **kw)
    a = np.asarray(Image.open(one))
    assert predict(model, a)[0].to_dict()["glimpses"] == predict(model, Image.open(one))[0].to_dict()["glimpses"]
    with pytest.raises(MGNetError, match="uint8"):
        predict(model, a.astype(np.float32))
    with pytest.raises(MGNetError, match="expected an image path"):
        predict(model, [42])
