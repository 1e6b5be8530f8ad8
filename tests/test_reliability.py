"""Reliability: bad input gets one clear line and changes nothing; interrupted runs lose at most the work since the
last checkpoint; runs are deterministic; a diverging run stops and keeps its last good checkpoint."""
import json
import signal
import subprocess
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BIN, in_process, snapshot
from PIL import Image

from mgnet.checkpoint import read_checkpoint
from mgnet.cli import main

COMMON = ["--dataset", "imagenet", "--model", "resnet18", "--epochs", 1, "--batch_size", 4, "--n_iter", 2,
          "--workers", 0]


def _tree(root, spec, size=36, seed=0):
    """An ImageFolder tree: spec maps class → list of (file name, kind)."""
    rng = np.random.default_rng(seed)
    for cls, files in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, kind in files:
            p = root / cls / name
            a = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            if kind == "rgb":
                Image.fromarray(a).save(p)
            elif kind == "gray":
                Image.fromarray(a[..., 0]).save(p)
            elif kind == "rgba":
                Image.fromarray(np.concatenate([a, a[..., :1]], -1), "RGBA").save(p)
            elif kind == "truncated":
                Image.fromarray(a).save(p, format="PNG")
                p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2])
            elif kind == "garbage":
                p.write_bytes(b"this is not an image at all")
            elif kind == "text":
                p.write_text("notes about this class")
    return root


GOOD = {"cat": [("a.png", "rgb"), ("b.png", "gray")], "dog": [("c.png", "rgba"), ("d.png", "rgb")]}


def _expect_clean_failure(tmp_path, r, *culprits, code=2):
    assert r.returncode == code, (r.returncode, r.stdout[-1500:], r.stderr[-3000:])
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mgnet: error:"), last
    for c in culprits:
        assert str(c) in last, (c, last)
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("case",
                         ["no_class_folders", "class_without_images", "truncated", "garbage", "truncated_workers"])
def test_bad_image_folders(tmp_path, mgnet_cmd, case):
    train = tmp_path / "my data" / "train"
    if case == "no_class_folders":
        train.mkdir(parents=True)
        (train / "image.png").write_bytes(b"")
        culprit = "no class folders"
    elif case == "class_without_images":
        _tree(train, {**GOOD, "empty": [("readme.txt", "text")]})
        culprit = "empty"
    else:
        bad = "truncated" if case.startswith("truncated") else "garbage"
        _tree(train, {**GOOD, "dog": GOOD["dog"] + [("bad file é.png", bad)]})
        culprit = train / "dog" / "bad file é.png"
    (tmp_path / "keep.json").write_text("{}")
    before = snapshot(tmp_path)
    workers = ["--workers", 2] if case == "truncated_workers" else []
    args = (*COMMON, *workers, "--train_dir", train, "--log_dir", tmp_path / "logs",
            "--results", tmp_path / "keep.json")
    # one case through the installed command, the others through its function in this process (no new Python)
    r = mgnet_cmd(*args, cwd=tmp_path) if case == "truncated_workers" else in_process(main, *args, cwd=tmp_path)
    _expect_clean_failure(tmp_path, r, culprit)
    if not case.startswith(("truncated", "garbage")):       # detected before anything is written
        assert snapshot(tmp_path) == before
    assert (tmp_path / "keep.json").read_text() == "{}"     # the results file was not touched


def test_skip_bad_images_counts_them(tmp_path):
    spec = {**GOOD, "dog": GOOD["dog"] + [("t.png", "truncated"), ("g.jpg", "garbage")],
            "cat": GOOD["cat"] + [("notes.txt", "text")]}
    train = _tree(tmp_path / "train", spec)
    r = in_process(main, *COMMON, "--workers", 2, "--train_dir", train, "--skip_bad_images",
                   "--log_dir", tmp_path / "logs", "--results", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["skipped_images"] == 2                        # two distinct files, whatever the epochs and workers
    assert "skipped 2 unreadable images" in r.stdout


def test_bad_checkpoints(tmp_path):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    torch.save({"state_dict": {"model.x": torch.zeros(1000)}}, tmp_path / "whole.ckpt")
    (tmp_path / "truncated.ckpt").write_bytes((tmp_path / "whole.ckpt").read_bytes()[:500])
    before = snapshot(tmp_path)
    for name, what in (("empty.ckpt", "empty"), ("truncated.ckpt", "truncated or corrupt")):
        r = in_process(main, "--test", "--checkpoint", tmp_path / name, cwd=tmp_path)
        _expect_clean_failure(tmp_path, r, name, what)
    assert snapshot(tmp_path) == before


def test_results_in_unwritable_directory(tmp_path):
    r = in_process(main, "--epochs", 1, "--results", "/sys/results.json", "--log_dir", tmp_path / "logs", cwd=tmp_path)
    _expect_clean_failure(tmp_path, r, "--results", "/sys")
    assert not (tmp_path / "logs").exists()


def _train_args(log_dir, epochs, extra=()):
    return ["--epochs", epochs, "--limit_train", 6, "--n_iter", 2, "--batch_size", 32, "--seed", 3,
            "--learning_rate", 0.02,
            "--log_dir", log_dir, *extra]


def _weights(ckpt):
    return {k: v for k, v in read_checkpoint(ckpt)["state_dict"].items()}


def _start(args, cwd):
    return subprocess.Popen([str(BIN / "mgnet"), *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_epoch(log_dir, epoch, proc, timeout=300):
    """Wait until some last.ckpt under log_dir records `epoch` (atomic writes: a file that exists is whole)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        for f in Path(log_dir).rglob("last.ckpt"):
            try:
                if read_checkpoint(f)["epoch"] >= epoch:
                    return f
            except Exception:
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise TimeoutError


def test_kill_9_then_resume_matches_uninterrupted(tmp_path):
    # the run that is killed is the installed command; the uninterrupted one and the resumption run in this process
    a = in_process(main, *_train_args(tmp_path / "a", 4, ["--results", tmp_path / "a.json"]), cwd=tmp_path)
    assert a.returncode == 0, a.stderr[-3000:]
    ra = json.loads((tmp_path / "a.json").read_text())

    proc = _start(_train_args(tmp_path / "b", 4), tmp_path)
    last = _wait_for_epoch(tmp_path / "b", 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_checkpoint(last)["epoch"] < 3                # it really was cut short
    run_dir = last.parent.parent
    with warnings.catch_warnings(record=True) as warned:
        r = in_process(main, "--resume", run_dir, "--results", tmp_path / "b.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not [w for w in warned if "not empty" in str(w.message)]   # its own checkpoint folder: nothing to warn of
    rb = json.loads((tmp_path / "b.json").read_text())
    assert Path(rb["run_dir"]) == run_dir.resolve()         # continued in the same run directory
    wa, wb = _weights(Path(ra["checkpoint"]).parent / "last.ckpt"), _weights(run_dir / "checkpoints" / "last.ckpt")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)
    assert rb["clean_acc"] == pytest.approx(ra["clean_acc"])
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 3


def test_kill_9_in_the_first_epoch_then_resume_finishes(tmp_path):
    """`kill -9` a few steps into the first epoch: `last.ckpt` was written after the first training step (and every
    MGNET_SAVE_SECONDS after), so `--resume` continues from that step and ends the run."""
    import os
    args = ["--epochs", 1, "--limit_train", 30, "--limit_val", 2, "--batch_size", 8, "--n_iter", 2, "--seed", 3,
            "--log_dir", tmp_path / "logs"]
    proc = subprocess.Popen([str(BIN / "mgnet"), *map(str, args)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "MGNET_SAVE_SECONDS": "0.2"})
    last = _wait_for_epoch(tmp_path / "logs", 0, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ck = read_checkpoint(last)
    assert ck["epoch"] == 0 and 0 < ck["global_step"] < 30 and ck["optimizer_states"], ck["global_step"]  # mid-epoch
    assert _processed(last) == 0                                     # the first epoch had not ended
    r = in_process(main, "--resume", last.parent.parent, "--results", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    end = read_checkpoint(last)
    assert _processed(last) == 1 and end["global_step"] == 30       # the epoch ended: its remaining steps trained
    assert json.loads((tmp_path / "r.json").read_text())["run_dir"] == str(last.parent.parent.resolve())


def test_sigterm_saves_and_stops(tmp_path):
    proc = _start(_train_args(tmp_path / "logs", 200), tmp_path)
    _wait_for_epoch(tmp_path / "logs", 0, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    ck = read_checkpoint(last)
    assert 0 < ck["global_step"] < 200 * 6 and "mgnet_rng" in ck and ck["optimizer_states"]
    assert not list((tmp_path / "logs").rglob("*.tmp"))     # no half-written files left


def test_same_seed_same_run(tmp_path, mgnet_cmd):
    res = []
    for d, run in (("x", mgnet_cmd), ("y", partial(in_process, main))):     # a new process, and this one
        r = run(*_train_args(tmp_path / d, 2, ["--results", tmp_path / f"{d}.json"]), cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        res.append(json.loads((tmp_path / f"{d}.json").read_text()))
    assert res[0]["clean_acc"] == res[1]["clean_acc"]
    wx, wy = (_weights(Path(x["checkpoint"])) for x in res)
    assert all(torch.equal(wx[k], wy[k]) for k in wx)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    r = in_process(main, "--epochs", 10, "--limit_train", 3, "--n_iter", 2, "--learning_rate", 3,
                   "--log_dir", tmp_path / "logs", cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    last_line = r.stderr.strip().splitlines()[-1]
    assert ("non-finite loss" in last_line
            or "non-finite weights" in last_line) and "at step" in last_line and "last.ckpt" in last_line
    good = Path(last_line.split("Last good checkpoint: ")[1])
    ck = read_checkpoint(good)
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


# --- no work lost (issue 40, item 1) ---------------------------------------------------------------------------------

TINY_RUN = dict(n_iter=2, limit_train=2, limit_val=2, batch_size=16, seed=1)


def _processed(ckpt):
    return read_checkpoint(ckpt)["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]


@pytest.mark.parametrize("epochs,val_per_n", [(1, 2), (3, 2)])
def test_last_epoch_saved_whatever_the_validation_schedule(tmp_path, epochs, val_per_n):
    from mgnet.config import MGNetConfig
    from mgnet.train import fit
    res = fit(MGNetConfig(**TINY_RUN, epochs=epochs, val_per_n=val_per_n, log_dir=str(tmp_path)), progress=False)
    assert res.last_checkpoint is not None and res.last_checkpoint.name == "last.ckpt"
    assert read_checkpoint(res.last_checkpoint)["epoch"] == epochs - 1       # the last epoch, not a validated one
    assert _processed(res.last_checkpoint) == epochs
    assert res.best_checkpoint.is_file() and len(res.clean_acc) == 2 and len(res.last_acc) == 2


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """A finished two-epoch run through the command, with its results file (resumed and refused below)."""
    root = tmp_path_factory.mktemp("resume")
    old = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        r = in_process(main, "--epochs", 2, "--limit_train", 2, "--limit_val", 2, "--n_iter", 2, "--batch_size", 16,
                       "--log_dir", root / "logs", "--results", root / "first.json", cwd=root)
    finally: torch.set_num_threads(old)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, Path(json.loads((root / "first.json").read_text())["run_dir"])


def test_resume_writes_only_in_its_run_or_where_told(two_epoch_run):
    root, run = two_epoch_run
    outside = {p: v for p, v in snapshot(root).items() if run not in p.parents}
    r = in_process(main, "--resume", run, cwd=root)                           # no --results: none written
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: v for p, v in snapshot(root).items() if run not in p.parents} == outside   # first.json untouched
    r = in_process(main, "--resume", run, "--results", root / "second.json", cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((root / "second.json").read_text())["run_dir"] == str(run)


@pytest.mark.parametrize("flags,culprit", [(["--n_iter", 3], "--n_iter: 3 differs"),
                                           (["--model", "resnet18"], "--model"),
                                           (["--alpha", 0.0], "--alpha"),
                                           (["--epochs", 1], "--epochs: 1 is fewer than the 2 epochs"),
                                           (["--epochs", 5], "--epochs: the run being resumed")])
def test_resume_refuses_another_run(two_epoch_run, flags, culprit):
    root, run = two_epoch_run
    before = snapshot(root)
    r = in_process(main, "--resume", run, *flags, cwd=root)
    _expect_clean_failure(root, r, culprit, "--checkpoint" if "differs" in culprit else "")
    assert snapshot(root) == before


def test_resume_refuses_weights_only_and_damaged_checkpoints(two_epoch_run, tmp_path):
    from mgnet.checkpoint import load_checkpoint, save_checkpoint
    root, run = two_epoch_run
    save_checkpoint(load_checkpoint(run / "checkpoints" / "last.ckpt"), tmp_path / "weights.ckpt")
    r = in_process(main, "--resume", tmp_path / "weights.ckpt", cwd=tmp_path)
    _expect_clean_failure(tmp_path, r, "weights.ckpt", "weights only", "--checkpoint")
    ck = read_checkpoint(run / "checkpoints" / "last.ckpt")
    ck["state_dict"]["model.global_fc.fc.weight"][0, 0] = float("nan")
    torch.save(ck, tmp_path / "nan.ckpt")
    r = in_process(main, "--resume", tmp_path / "nan.ckpt", cwd=tmp_path)
    _expect_clean_failure(tmp_path, r, "nan.ckpt", "global_fc.fc.weight holds 1 non-finite")


def test_crash_after_training_starts_leaves_a_checkpoint_and_says_how(tmp_path):
    from mgnet.config import MGNetConfig
    from mgnet.train import fit
    cfg = MGNetConfig(**TINY_RUN, epochs=3, log_dir=str(tmp_path))

    def crash(epoch):
        if epoch == 1: raise RuntimeError("simulated crash in epoch 1")
    with pytest.raises(RuntimeError, match="simulated crash") as e:
        fit(cfg, progress=False, on_epoch=crash)
    note = " ".join(getattr(e.value, "__notes__", []))
    assert "continue with: mgnet --resume" in note, note
    run = Path(note.split("mgnet --resume ")[1].strip())
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 1       # the state where it stopped
    res = fit(cfg.replace(resume=str(run)), progress=False)
    assert res.run_dir == run.resolve() and read_checkpoint(res.last_checkpoint)["epoch"] == 2
    assert _processed(res.last_checkpoint) == 3
