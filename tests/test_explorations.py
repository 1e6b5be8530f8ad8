"""The exploration options (the original's, and the centring loss), end to end: flags reach the training, show in
TensorBoard and the run name."""
import json
from pathlib import Path

from conftest import in_process
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mgnet.cli import main


def _tags(run_dir):
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_all_explorations_on(tmp_path):
    # the `mgnet` command's function in this process (test_cli runs the installed command)
    r = in_process(main, "--epochs", 1, "--limit_train", 10, "--n_iter", 3, "--ss_coef", 0.1, "--ss_threshold", 5.0,
                   "--ssl_coef", 0.1, "--ssl_explore", 0.2, "--div_coef", 0.05, "--centre_coef", 10, "--ge", 2.0,
                   "--ge_final", 0.5, "--n_iter_coef", 1, 1, 2, "--clip", 0.5, "--dropout", 0.1,
                   "--log_dir", tmp_path / "logs", "--results", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    run_dir = Path(res["run_dir"])
    name = run_dir.parent.name
    for part in ("clip0.5", "w1-1-2", "ge2", "to0.5", "ss0.1-5", "ssl0.1-0.2", "div0.05", "ctr10", "drop0.1"):
        assert part in name, (part, name)
    tags = _tags(run_dir)
    for tag in ("train/ss", "train/ss_ratio", "train/ssl", "train/ssl_ratio", "train/div", "train/centre",
                "grad/ge_factor", "grad/scale_1", "grad/scale_2", "grad/cls_std_3"):
        assert tag in tags, (tag, sorted(tags))
    cfg = res["config"]
    assert (cfg["n_iter_coef"], cfg["ge_final"], cfg["clip"], cfg["dropout"]) == ([1.0, 1.0, 2.0], 0.5, 0.5, 0.1)


def test_step_by_step_and_plain_runs_differ_in_name_and_logs(tmp_path):
    r = in_process(main, "--epochs", 1, "--limit_train", 10, "--n_iter", 2, "--step_by_step",
                   "--log_dir", tmp_path / "logs", "--results", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(json.loads((tmp_path / "r.json").read_text())["run_dir"])
    assert "sbs" in run_dir.parent.name
    tags = _tags(run_dir)
    assert "train/loss" in tags and "train/ce_2" in tags
    assert not any(t.startswith(("train/ss", "train/div", "grad/")) for t in tags)   # off means off
