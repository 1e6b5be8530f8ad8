"""Storage faults for real (issue 40, item 3): a small tmpfs filled to the brim. A write that does not fit leaves the
old state or nothing — never half a weights folder, a cut checkpoint or a results file that passes for whole — and the
command says in one line which path failed and what to do; a training run that fills the disk says how to resume, and
resumes once there is room. Needs root to mount the tmpfs; skipped, with the reason, otherwise."""
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import in_process

from mgnet.cli import main
from mgnet.config import MGNetConfig
from mgnet.files import StorageError, run_command, write_json


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0: pytest.skip("a real full disk needs a small tmpfs, and mounting one needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode: pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a filler file until the disk is full (or only `leave` bytes are left); delete it to free the space."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                st = os.statvfs(disk)
                room = st.f_bavail * st.f_frsize - leave
                if room <= 0: break
                f.write(b"\0" * min(room, 1 << 20)); f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def files(d: Path):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.name != "filler")


def one_line_storage_error(r, path):
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("mgnet") and ": error: " in last and str(path) in last and "storage is full" in last, last
    return last


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import mgnet
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    mgnet.save_checkpoint(mgnet.MGNet(n_iter=2), p)
    return p


def test_export_onto_a_full_disk_leaves_nothing(small_disk, checkpoint):
    fill(small_disk, leave=64 << 10)                      # room for a little, not for the weights
    r = in_process(main, "export", checkpoint, small_disk / "w")
    one_line_storage_error(r, small_disk / "w")
    assert files(small_disk) == []                       # no folder, no config.json alone, no temporary file


def test_export_over_a_model_on_a_full_disk_keeps_the_old_one(small_disk, checkpoint, tmp_path):
    import mgnet
    r = in_process(main, "export", checkpoint, small_disk / "w")
    assert r.returncode == 0, r.stderr
    before = {p: p.read_bytes() for p in (small_disk / "w").iterdir()}
    filler = fill(small_disk, leave=64 << 10)
    torch.manual_seed(1)
    mgnet.save_checkpoint(mgnet.MGNet(n_iter=2), tmp_path / "other.ckpt")
    r = in_process(main, "export", tmp_path / "other.ckpt", small_disk / "w", "--force")
    one_line_storage_error(r, small_disk / "w")
    assert {p: p.read_bytes() for p in (small_disk / "w").iterdir()} == before   # the old model, whole
    assert files(small_disk) == ["w", "w/README.md", "w/config.json", "w/model.safetensors"]   # the card too
    filler.unlink()


def test_results_file_on_a_full_disk_keeps_the_old_one(small_disk):
    write_json({"clean_acc": [0.5]}, small_disk / "r.json")
    fill(small_disk)
    with pytest.raises(StorageError, match="r.json: cannot write .*storage is full"):
        write_json({"clean_acc": [0.9] * 100_000}, small_disk / "r.json")
    assert json.loads((small_disk / "r.json").read_text()) == {"clean_acc": [0.5]}
    assert files(small_disk) == ["r.json"]


def test_training_fills_the_disk_then_resumes(small_disk, capsys):
    from mgnet.train import fit
    cfg = MGNetConfig(n_iter=2, epochs=3, limit_train=2, limit_val=2, batch_size=16, log_dir=str(small_disk / "logs"))
    filler = []

    def fill_in_epoch_1(epoch):
        if epoch == 1: filler.append(fill(small_disk))
    code = run_command("mgnet", lambda: fit(cfg, progress=False, on_epoch=fill_in_epoch_1))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and "storage is full" in last and "continue with: mgnet --resume" in last, last
    run = Path(last.split("mgnet --resume ")[1])
    assert run.is_relative_to(small_disk / "logs")
    filler[0].unlink()                                    # room again: the run continues where it stopped
    res = fit(cfg.replace(resume=str(run)), progress=False)
    assert res.run_dir == run.resolve()
    from mgnet.checkpoint import read_checkpoint
    assert read_checkpoint(res.last_checkpoint)["epoch"] == 2
    assert not list(small_disk.rglob("*.tmp"))


def test_corruption_tree_on_a_full_disk_is_not_read_as_whole(small_disk):
    from mgnet.corruption_trees import tree_folders
    from mgnet.corruptions import generate_corruptions
    fill(small_disk, leave=200 << 10)
    with pytest.raises(StorageError, match="storage is full"):
        generate_corruptions(small_disk / "tree", corruptions=["fog"], severities=[1, 2], limit=200, progress=False)
    with pytest.raises(Exception, match="unfinished"):
        tree_folders(small_disk / "tree")
