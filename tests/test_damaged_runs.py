"""Damaged runs in run, sweep and benchmark folders: skipped and named once by the loaders, shown as skipped by the
explorer, trained again when a sweep or the benchmark reuses the folder (issue 15, item 3)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from mgnet.config import MGNetConfig
from mgnet.errors import MGNetError
from mgnet.lab.runs import (
    RESULTS,
    DamagedRunError,
    load_run,
    load_runs,
    point_name,
    reusable_run,
    run_sweep,
    train_run,
    train_runs,
)

TINY = MGNetConfig(n_iter=2, epochs=1, limit_train=2, limit_val=2, batch_size=16)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """One real run (one epoch on two batches of the digits), trained once for the module; tests damage copies."""
    old = torch.get_num_threads(); torch.set_num_threads(1)
    try: return Path(train_run(TINY, tmp_path_factory.mktemp("whole") / "run")["run_dir"])
    finally: torch.set_num_threads(old)


def checkpoint_of(run_dir: Path) -> Path:
    return run_dir / json.loads((run_dir / RESULTS).read_text())["checkpoint"]


def cut_results(d):
    p = d / RESULTS
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    return p, "cut short or not JSON"

def not_json(d):
    p = d / RESULTS
    p.write_text("results: accuracy 0.9\n")
    return p, "cut short or not JSON"

def empty_results(d):
    p = d / RESULTS
    p.write_bytes(b"")
    return p, "cut short or not JSON"

def fields_missing(d):
    p = d / RESULTS
    r = json.loads(p.read_text()); del r["clean_acc"]
    p.write_text(json.dumps(r))
    return p, "lacks clean_acc"

def checkpoint_deleted(d):
    p = checkpoint_of(d); p.unlink()
    return p, "checkpoint missing"

def checkpoint_cut(d):
    p = checkpoint_of(d)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    return p, "checkpoint cut short or corrupt"

def checkpoint_empty(d):
    p = checkpoint_of(d); p.write_bytes(b"")
    return p, "checkpoint empty"

def checkpoint_flipped(d):
    """Same length, one byte of the last (largest) stored tensor changed: only its checksum tells."""
    p = checkpoint_of(d)
    b = bytearray(p.read_bytes()); i = len(b) * 2 // 3; b[i] ^= 0xFF
    p.write_bytes(bytes(b))
    return p, "checkpoint cut short or corrupt"

DAMAGES = [cut_results, not_json, empty_results, fields_missing, checkpoint_deleted, checkpoint_cut, checkpoint_empty,
           checkpoint_flipped]


def copy_run(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_load_run_names_the_damaged_file(whole_run, tmp_path, damage):
    d = copy_run(whole_run, tmp_path / "run")
    assert load_run(d)["clean_acc"]                      # whole before the damage
    file, reason = damage(d)
    with pytest.raises(DamagedRunError) as e:
        load_run(d)
    msg = str(e.value)
    assert msg.startswith(f"{file}: {reason}"), msg
    assert "\n" not in msg and "Traceback" not in msg
    assert (e.value.run_dir, e.value.file) == (d, file)
    assert isinstance(e.value, MGNetError)                  # a mistake the user can fix: one line from any command


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_load_runs_skips_and_names_each_once(whole_run, tmp_path, capsys, damage):
    sweep = tmp_path / "sweep"
    copy_run(whole_run, sweep / "a_whole")
    bad = copy_run(whole_run, sweep / "b_damaged")
    file, reason = damage(bad)
    (sweep / "c_unfinished").mkdir()                        # no results.json: not a run yet, not damaged either
    runs = load_runs(sweep)
    assert [Path(r["run_dir"]).name for r in runs] == ["a_whole"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"mgnet: skipping a damaged run: {file}: {reason}"), err
    skipped = []
    assert len(load_runs(sweep, skipped)) == 1
    assert capsys.readouterr().err == ""                     # handed to the caller instead of printed
    assert [(e.run_dir.name, e.file, e.reason[:len(reason)]) for e in skipped] == [("b_damaged", file, reason)]


def test_the_explorer_shows_the_rest_and_names_the_skipped(whole_run, tmp_path, capsys):
    from mgnet.lab.explorer import explore
    sweep = tmp_path / "sweep"
    for name, alpha in (("alpha0_s0.02_scale2", 0.0), ("alpha0.6_s0.02_scale2", 0.6)):
        d = copy_run(whole_run, sweep / name)
        r = json.loads((d / RESULTS).read_text()); r["config"]["alpha"], r["name"] = alpha, name
        (d / RESULTS).write_text(json.dumps(r))
    cut_results(copy_run(whole_run, sweep / "broken_results"))
    ckpt, _ = checkpoint_deleted(copy_run(whole_run, sweep / "lost_checkpoint"))
    ex = explore(sweep, train=False)
    assert capsys.readouterr().err == ""
    assert sorted(r["name"] for r in ex.runs) == ["alpha0.6_s0.02_scale2", "alpha0_s0.02_scale2"]
    note = (f"skipped 2 damaged runs: broken_results ({RESULTS}: cut short or not JSON), "
            f"lost_checkpoint ({ckpt.name}: checkpoint missing)")
    assert note in ex.status.value and "drawn in" in ex.status.value, ex.status.value
    ex.run.value = ex.names.index("alpha0.6_s0.02_scale2")   # another run shown: still named, once
    assert "run <b>alpha0.6_s0.02_scale2</b>" in ex.status.value and ex.status.value.count(note) == 1
    assert capsys.readouterr().err == ""


def test_reuse_retrains_a_damaged_run_and_keeps_a_whole_one(whole_run, tmp_path, capsys):
    whole = copy_run(whole_run, tmp_path / "whole")
    assert reusable_run(whole, TINY)["skipped"] is True
    for damage in (cut_results, checkpoint_deleted, checkpoint_cut):
        d = copy_run(whole_run, tmp_path / damage.__name__)
        file, _ = damage(d)
        assert reusable_run(d, TINY) is None
        assert capsys.readouterr().err.count(f"damaged run, training it again: {file}") == 1
    other = copy_run(whole_run, tmp_path / "other")
    with pytest.raises(ValueError, match="alpha=0.6"):          # a whole run of another configuration is still refused
        reusable_run(other, TINY.replace(alpha=0.3))
    # the benchmark notebook's call: one damaged, one whole; only the damaged one is trained
    runs = train_runs([(TINY, whole, "whole"), (TINY, tmp_path / "checkpoint_cut", "cut")], parallel=2, threads=1)
    assert [r["skipped"] for r in runs] == [True, False]
    assert capsys.readouterr().err.count("checkpoint_cut") == 1       # named once, by the parent, before training
    again = load_run(tmp_path / "checkpoint_cut")
    assert Path(again["checkpoint"]).is_file() and again["checkpoint"] == runs[1]["checkpoint"]
    assert reusable_run(tmp_path / "checkpoint_cut", TINY)["skipped"] is True


def test_a_sweep_resumes_over_a_damaged_point(whole_run, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    a, s, scale = TINY.alpha, TINY.s, TINY.scale
    kept = copy_run(whole_run, sweep / point_name(0.0, s, scale))       # a whole run of the point alpha 0
    r = json.loads((kept / RESULTS).read_text()); r["config"]["alpha"] = 0.0
    (kept / RESULTS).write_text(json.dumps(r))
    cut_results(copy_run(whole_run, sweep / point_name(a, s, scale)))   # the point alpha 0.6, its results cut short
    assert len(load_runs(sweep)) == 1
    capsys.readouterr()
    again = run_sweep(TINY, [0.0, a], [s], [scale], sweep, progress=False, threads=1)
    assert [r["skipped"] for r in again] == [True, False]
    assert capsys.readouterr().err.count("training it again") == 1
    assert [Path(r["run_dir"]).name for r in load_runs(sweep)] == [point_name(0.0, s, scale), point_name(a, s, scale)]
