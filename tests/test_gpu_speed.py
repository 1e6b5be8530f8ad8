"""tools/gpu_speed.py, the GPU figures' script: its tiny run on the CPU prints and writes every figure (no speed is
asserted: a benchmark, not a timed test)."""
import importlib.util
import json
from pathlib import Path

import pytest


def _tool():
    spec = importlib.util.spec_from_file_location("gpu_speed", Path(__file__).parents[1] / "tools" / "gpu_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_speed_tiny(tmp_path, capsys):
    assert _tool().main(["--tiny", "--device", "cpu", "--json", str(tmp_path / "g.json")]) == 0
    r = json.loads((tmp_path / "g.json").read_text())
    m = r["models"]["resnet18"]
    assert sorted(m["inference"]) == ["baseline", "mgnet_1", "mgnet_2", "mgnet_3", "mgnet_4"]
    assert all(v > 0 for v in [*m["inference"].values(), *m["training"].values()])
    assert m["gflops"] == sorted(m["gflops"]) and m["gflops"][-1] < m["baseline_gflops"]
    assert len(m["early_exit_wall_per_flop"]) == 4 and all(v > 0 for v in m["early_exit_wall_per_flop"])
    assert r["data"]["images"] == 24 and r["data"]["images_per_s"] > 0      # every JPEG decoded (6 batches of 4)
    out = capsys.readouterr().out
    for text in ("training images/s", "early exit wall/FLOP", "JPEGs of 80×60", "data pipeline", r["cpu"]):
        assert text in out, text


def test_gpu_speed_bad_flags(capsys):
    with pytest.raises(SystemExit) as e: _tool().main(["--steps", "0"])
    assert e.value.code == 2 and "--steps" in capsys.readouterr().err.splitlines()[-1]
