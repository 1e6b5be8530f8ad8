"""The `mgnet` command end to end, on the embedded digits and on small datasets the tests make: once as the installed
command, otherwise through its function in this process (conftest's `in_process`, the same code)."""
import configparser
import gzip
import json
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from conftest import in_process, snapshot
from PIL import Image

import mgnet
from mgnet.cli import main
from mgnet.corruption_commands import corrupt_main

ROOT = Path(__file__).resolve().parents[1]


def test_package_api():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    assert mgnet.__version__ == cfg["DEFAULT"]["version"]
    for name in ("MGNet", "load_checkpoint", "MGNetConfig", "fit", "evaluate"):
        assert hasattr(mgnet, name), name


def test_digits_train_then_test_from_checkpoint(tmp_path, mgnet_cmd, monkeypatch):
    r = mgnet_cmd("--epochs", 1, "--limit_train", 4, "--n_iter", 3, "--log_dir", "logs", "--results", "train.json",
                  "--flop_count", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "train.json").read_text())
    assert len(res["clean_acc"]) == 3 and all(0 <= a <= 1 for a in res["clean_acc"])
    assert len(res["gflops"]) == 3 and res["gflops"][0] < res["gflops"][1] < res["gflops"][2]
    loc = res["localisation"]                      # the digits' boxes are known: where the glimpses landed
    assert len(loc["glimpse_iou"]) == 3 and loc["glimpse_sigma"][0] == 1.0 and loc["images"] == 359
    ckpt = Path(res["checkpoint"])
    assert ckpt.is_file() and ckpt.name.startswith("best-") and (ckpt.parent / "last.ckpt").is_file()
    run_dir = Path(res["run_dir"])
    assert run_dir.is_relative_to((tmp_path / "logs" / "digits10" / "vanilla").resolve())
    assert list(run_dir.glob("events.out.tfevents.*")), "no TensorBoard log"
    assert "glimpse 3" in r.stdout and "GFLOPs" in r.stdout

    # --test from the run directory: the same best checkpoint, the same validation images, the same accuracies (this
    # and the checks below run the command's function in this process: the installed command was run just above)
    resolutions, resolve = [], mgnet.MGNetConfig.resolved     # a test's run is the checkpoint's stored run, flags on
    monkeypatch.setattr(mgnet.MGNetConfig, "resolved", lambda c: resolutions.append(c) or resolve(c))   # top: checked
    t = in_process(main, "--test", "--checkpoint", run_dir, "--results", "test.json", cwd=tmp_path)
    assert t.returncode == 0, t.stderr[-3000:]
    assert resolutions == [], f"testing the checkpoint resolved its settings again ({len(resolutions)} times)"
    monkeypatch.undo()
    tres = json.loads((tmp_path / "test.json").read_text())
    assert tres["clean_acc"] == pytest.approx(res["clean_acc"])
    assert tres["gflops"] == pytest.approx(res["gflops"])
    assert tres["localisation"]["glimpse_iou"] == pytest.approx(loc["glimpse_iou"])
    assert Path(tres["checkpoint"]).resolve() == ckpt.resolve()

    # the last epoch's checkpoint, reported beside the best: the same numbers as testing last.ckpt
    t1 = in_process(main, "--test", "--checkpoint", ckpt.parent / "last.ckpt", "--results", "t1.json", cwd=tmp_path)
    assert t1.returncode == 0, t1.stderr[-3000:]
    assert json.loads((tmp_path / "t1.json").read_text())["clean_acc"] == pytest.approx(res["last_acc"])

    # fewer glimpses at test time: a prefix of the same predictions
    t2 = in_process(main, "--test", "--checkpoint", ckpt, "--n_iter", 2, "--results", "t2.json", cwd=tmp_path)
    assert t2.returncode == 0, t2.stderr[-3000:]
    assert json.loads((tmp_path / "t2.json").read_text())["clean_acc"] == pytest.approx(res["clean_acc"][:2])

    # --limit_val keeps the first batches for --test too, as in training's validation
    t3 = in_process(main, "--test", "--checkpoint", ckpt, "--limit_val", 2, "--batch_size", 50, "--results", "t3.json",
                   cwd=tmp_path)
    assert t3.returncode == 0, t3.stderr[-3000:]
    r3 = json.loads((tmp_path / "t3.json").read_text())
    assert r3["localisation"]["images"] == 100
    assert all(round(a * 100, 6) == round(a * 100) for a in r3["clean_acc"])     # counts out of 100 images

    # the checkpoint loads in Python as the trained configuration
    m = mgnet.load_checkpoint(ckpt)
    assert (m.cfg.n_iter, m.cfg.alpha, m.cfg.s, m.training) == (3, 0.6, 0.02, False)


@pytest.mark.parametrize("args,culprit", [
    (["--scale", "0"], "--scale"), (["--scale", "-1"], "--scale"), (["--alpha", "1.5"], "--alpha"),
    (["--alpha", "-0.1"], "--alpha"), (["--s", "0"], "--s:"), (["--s", "1.5"], "--s:"),
    (["--scale_min", "0.5", "--scale_max", "0.3"], "--scale_min"), (["--n_iter", "0"], "--n_iter"),
    (["--trans_method", "diagonal"], "--trans_method"), (["--epochs", "0"], "--epochs"),
    (["--scheduler", "multi-step"], "--schedule"), (["--dataset", "imagenet"], "--train_dir"),
    (["--dataset", "imagenet", "--train_dir", "/no/such/dir"], "/no/such/dir"),
    (["--model", "resnet9000"], "--model"), (["--gpus", "zero"], "--gpus"), (["--num_class", "7"], "--num_class"),
    (["--test"], "--checkpoint"), (["--test", "--checkpoint", "/no/such.ckpt"], "/no/such.ckpt"),
    (["--results", "/no/such/dir/r.json"], "--results"), (["--n_iter", "four"], "--n_iter"),
])
def test_invalid_input_one_line_exit_2(tmp_path, mgnet_cmd, args, culprit):
    (tmp_path / "keep.txt").write_text("precious")
    before = snapshot(tmp_path)
    if args == ["--scale", "0"]: r = mgnet_cmd(*args, "--log_dir", tmp_path / "logs", cwd=tmp_path, timeout=120)
    else: r = in_process(main, *args, "--log_dir", tmp_path / "logs", cwd=tmp_path)     # the same code, no new Python
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mgnet: error:") and culprit in last, last
    assert "Traceback" not in r.stderr
    assert snapshot(tmp_path) == before          # nothing written, nothing changed
    assert not (tmp_path / "logs").exists()


def test_pretrained_offline_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(mgnet.ConfigError,
                       match=r"--pretrained: could not download torchvision's resnet18 weights.*checkpoints"):
        mgnet.create_backbone("resnet18", pretrained=True)
    assert main(["--model", "resnet18", "--pretrained", "--epochs", "1", "--log_dir", str(tmp_path / "logs")]) == 2


def _image_folder(root, classes, per_class, size=40, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            a = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            a[..., ci % 3] += 180                      # a learnable colour cue per class
            Image.fromarray(a).convert(mode).save(root / c / f"img {i}.png")
    return root


def test_imagefolder_train_and_test(tmp_path):
    train = _image_folder(tmp_path / "data set" / "train", ["cat", "dog"], 4)
    val = _image_folder(tmp_path / "data set" / "val", ["cat", "dog"], 2, seed=1)
    r = in_process(main, "--dataset", "imagenet", "--train_dir", train, "--val_dir", val, "--model", "resnet18",
                   "--epochs", 1, "--batch_size", 4, "--workers", 0, "--n_iter", 2, "--scale", 2.33,
                   "--log_dir", tmp_path / "logs", "--results", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["config"]["num_class"] == 2 and len(res["clean_acc"]) == 2
    assert "imagenet2/resnet18" in res["run_dir"]
    t = in_process(main, "--dataset", "imagenet", "--val_dir", val, "--test", "--checkpoint", res["checkpoint"],
                   "--results", tmp_path / "t.json", cwd=tmp_path)
    assert t.returncode == 0, t.stderr[-3000:]
    assert json.loads((tmp_path / "t.json").read_text())["clean_acc"] == pytest.approx(res["clean_acc"])
    # val classes that differ from train's are refused
    other = _image_folder(tmp_path / "other", ["cat", "cow"], 1)
    bad = in_process(main, "--dataset", "imagenet", "--train_dir", train, "--val_dir", other, cwd=tmp_path)
    assert bad.returncode == 2 and "--val_dir" in bad.stderr and "different class folders" in bad.stderr


def _write_idx(path, arr):
    dims = arr.shape
    code = 0x08
    with gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + arr.tobytes())


def test_mnist_from_local_files(tmp_path):
    """A tiny MNIST the test writes in the official idx format, in torchvision's layout (<root>/MNIST/raw/)."""
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 32), ("t10k", 16)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, (n,), dtype=np.uint8))
    r = in_process(main, "--dataset", "mnist", "--train_dir", tmp_path / "mnist", "--epochs", 1, "--batch_size", 16,
                   "--workers", 0, "--n_iter", 2, "--scale", 4, "--log_dir", tmp_path / "logs",
                   "--results", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["clean_acc"]) == 2 and "mnist10/vanilla" in res["run_dir"]


def test_mnist_files_missing_clear_error(tmp_path):
    """Nothing is downloaded: missing files are named, with where to put them, in one line and exit 2."""
    r = in_process(main, "--dataset", "kmnist", "--train_dir", tmp_path / "m", "--epochs", 1,
                   "--log_dir", tmp_path / "l")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "--train_dir" in last and "train-images-idx3-ubyte" in last and "KMNIST/raw" in last
    assert not (tmp_path / "l").exists()


def test_digits_test_on_a_corruption_folder(tmp_path):
    """The original's one-corruption-at-a-time evaluation (`--val_dir TREE/<corruption>/<severity>`) works on digits,
    glimpse IoU included (the tree keeps the objects' boxes)."""
    res = mgnet.fit(mgnet.MGNetConfig(epochs=2, limit_train=10, batch_size=32, learning_rate=0.02, n_iter=2,
                                      log_dir=str(tmp_path / "logs")), progress=False)
    g = in_process(corrupt_main, tmp_path / "tree", "--corruptions", "gaussian_noise", "--severities", 5)
    assert g.returncode == 0, g.stderr[-2000:]
    accs, ious = {}, {}
    for sub in ("clean", "gaussian_noise/5"):
        r = in_process(main, "--test", "--checkpoint", res.best_checkpoint, "--val_dir", tmp_path / "tree" / sub,
                       "--results", tmp_path / "r.json")
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads((tmp_path / "r.json").read_text())
        accs[sub], ious[sub] = out["clean_acc"], out["localisation"]["glimpse_iou"]
    assert accs["clean"] == pytest.approx(res.clean_acc, abs=0.01)        # the same images, up to 8-bit rounding
    assert ious["clean"] == pytest.approx(res.localisation["glimpse_iou"], abs=0.01)     # and the same boxes
    assert accs["gaussian_noise/5"] != accs["clean"]
    bad = in_process(main, "--test", "--checkpoint", res.best_checkpoint, "--val_dir", tmp_path / "tree")
    assert bad.returncode == 2 and "--val_dir" in bad.stderr.splitlines()[-1]


def test_verbs_each_with_its_own_flags():
    r = in_process(main, "--help")
    assert r.returncode == 0
    for verb in ("train", "test", "predict", "export", "recipes", "benchmark", "speed", "corrupt", "corruptions",
                 "imagenet100", "imagenet100c"):
        assert f"\n  {verb} " in r.stdout, verb
    train, test = in_process(main, "train", "--help").stdout, in_process(main, "test", "--help").stdout
    assert "--recipe" in train and "--print_config" in train and "digits: digits-benchmark" in train
    assert "--adv" not in train and "--exit_sweep" not in train          # evaluation flags are test's
    assert "--adv" in test and "--exit_sweep" in test and "--epochs" not in test and "--recipe" not in test
    bad = in_process(main, "train", "--adv")
    assert bad.returncode == 2 and "--adv" in bad.stderr.strip().splitlines()[-1]


def test_help_says_what_measured_options_gave():
    "Each note in measured.yaml names a flag, cites docs pages that exist and hold its numbers, and is in the help."
    import re

    import yaml
    data = yaml.safe_load((ROOT / "mgnet" / "resources" / "measured.yaml").read_text(encoding="utf-8"))
    assert len(data) >= 10
    helps = [in_process(main, verb, "--help") for verb in ("train", "test")]
    assert all(h.returncode == 0 for h in helps)
    for name, m in data.items():
        shown = [h.stdout for h in helps if f"\n  --{name}" in h.stdout]
        assert shown, f"--{name} is not a flag of mgnet train or mgnet test"
        flat = "".join(shown[0].split())              # argparse wraps lines (and breaks words at hyphens)
        pages = [m["page"]] if isinstance(m["page"], str) else m["page"]
        text = "".join((ROOT / "docs" / p).read_text(encoding="utf-8") for p in pages)   # a missing page fails here
        for number in re.findall(r"\d+\.\d+", m["note"]):          # every figure is one the cited pages state
            assert number in text, f"--{name}: {number} is in no page of {pages}"
        said = f"Measured:{''.join(m['note'].split())};see{','.join('docs/' + p for p in pages)}"
        assert said in flat, f"--help does not show --{name}'s measured note"


def test_recipes_listed_one_line_each():
    from mgnet.recipes import recipes
    r = in_process(main, "recipes")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == len(recipes())
    one = in_process(main, "recipes", "paper-resnet50")
    assert one.returncode == 0 and "model: resnet50" in one.stdout and "scale: 2.33" in one.stdout


def test_recipe_records_give_the_measured_result():
    """Each recipe's result is what its records say: the mean and spread of the named metric over its seeds."""
    import statistics

    from mgnet.recipes import recipes
    rows = [json.loads(line) for line in (ROOT / "docs" / "localisation-grid.jsonl").read_text().splitlines()]
    checked = 0
    for r in recipes().values():
        rec = r.measured.get("records")
        if not rec: continue
        vals = [x[rec["metric"]][-1] for x in rows if x["group"] == rec["group"] and x["variant"] == rec["variant"]]
        assert len(vals) == r.measured["seeds"], r.name
        assert (round(statistics.mean(vals), 4), round(statistics.stdev(vals), 4)) == \
            (r.measured["mean"], r.measured["std"]), r.name
        assert f"{r.measured['mean']:.4f} ± {r.measured['std']:.4f}" in r.result, r.name
        cfg = r.to_config().resolved()          # the records' own settings are the recipe's
        one = next(x for x in rows if x["group"] == rec["group"] and x["variant"] == rec["variant"])
        for k, v in one["config"].items():
            if k in ("seed", "train_dir", "log_dir", "limit_train", "limit_val") or k not in r.config: continue
            assert getattr(cfg, k) == v, (r.name, k, getattr(cfg, k), v)
        checked += 1
    assert checked >= 6


def test_train_from_recipe_print_config_and_replay(tmp_path):
    """`--print_config` writes the full settings; `--config` replays them and the run trains exactly those."""
    p = in_process(main, "train", "--recipe", "digits-paper", "--epochs", 1, "--limit_train", 2, "--limit_val", 1,
                   "--log_dir", tmp_path / "logs", "--print_config")
    assert p.returncode == 0, p.stderr
    (tmp_path / "run.yaml").write_text(p.stdout)
    r = in_process(main, "train", "--config", tmp_path / "run.yaml", "--seed", 4, "--results", tmp_path / "r.json",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((tmp_path / "r.json").read_text())["config"]
    assert (cfg["scale"], cfg["loc_init"], cfg["learning_rate"], cfg["epochs"], cfg["centre_coef"], cfg["seed"]) == \
        (4.0, "zero", 0.05, 1, 0.0, 4)
    assert "recipe digits-paper" in r.stderr


def test_old_console_scripts_say_their_new_spelling():
    import mgnet.cli as cli
    for old, verb in (("bench", "speed"), ("benchmark", "benchmark"), ("corrupt", "corrupt"),
                      ("corruptions", "corruptions"), ("imagenet100", "imagenet100"),
                      ("imagenet100c", "imagenet100c")):
        r = in_process(getattr(cli, f"{old}_alias"), "--help")
        assert r.returncode == 0 and r.stderr.splitlines()[0] == \
            f"mgnet-{old} is now `mgnet {verb}` (the old name stays one release)", r.stderr
        assert f"usage: mgnet {verb}" in r.stdout or "usage:" in r.stdout


def test_docs_show_the_current_recipes():
    from mgnet.recipes import recipes_markdown
    text = (ROOT / "docs" / "recipes.md").read_text()
    assert recipes_markdown() in text, "stale docs/recipes.md: regenerate its table with mgnet.recipes.recipes_markdown"


def test_train_describes_the_data_once(tmp_path, monkeypatch):
    """Followed from the command line, the settings are resolved once and the data is described once, at the edge
    (`train_or_test`); that run description (a `RunSpec`) and that data description travel down to training, its data
    module, the model and the evaluation, and nothing below resolves again; a flag reaches the model. Loading the
    checkpoint rebuilds its stored run without resolving it."""
    import mgnet.commands
    import mgnet.data
    import mgnet.datamodule
    import mgnet.train
    from mgnet.config import MGNetConfig, RunSpec
    calls, resolutions, again = [], [], []
    real, resolve = mgnet.data.data_info, MGNetConfig.resolved

    def counting(*a, **k):
        calls.append(a[0].n_iter)
        return real(*a, **k)
    for mod in (mgnet.data, mgnet.datamodule, mgnet.train, mgnet.commands):
        if hasattr(mod, "data_info"): monkeypatch.setattr(mod, "data_info", counting)
    monkeypatch.setattr(MGNetConfig, "resolved", lambda self: resolutions.append(self.n_iter) or resolve(self))
    monkeypatch.setattr(RunSpec, "resolved", lambda self: again.append(self.n_iter) or self)
    r = in_process(main, "train", "--epochs", 1, "--limit_train", 1, "--limit_val", 1, "--n_iter", 3, "--workers", 0,
                   "--log_dir", tmp_path / "logs", "--results", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert calls == [3], f"the data was described {len(calls)} times: {calls}"
    assert (resolutions, again) == ([3], []), f"resolved {len(resolutions)} times, asked again {len(again)} times"
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["clean_acc"]) == 3
    model = mgnet.load_checkpoint(res["checkpoint"])
    assert model.cfg.n_iter == 3 and isinstance(model.run, RunSpec) and model.preprocessing.img_size == 64
    assert (resolutions, again) == ([3], []), "loading the checkpoint resolved its stored run again"
