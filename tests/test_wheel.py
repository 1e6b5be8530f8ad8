"""A wheel runs everything: built from this checkout (`pip wheel --no-deps .`) and installed into a folder of its own,
it runs outside any checkout, finding its recipes and its experiment notebooks inside the package: `mgnet recipes`,
`mgnet benchmark --list` (the benchmark's parameters read from the shipped notebook) and a papermill run of the
shipped training notebook. The dependencies are this environment's (installed with --no-deps, offline)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def copy(a: Path, b: Path):
    b.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(a, b)


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"                 # what a source distribution holds, copied so the build writes nothing here
    for f in ("setup.py", "settings.ini", "README.md", "pyproject.toml", "MANIFEST.in"): copy(ROOT / f, src / f)
    for d in ("mgnet", "nbs/experiments"):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                    "-w", str(tmp / "dist")], check=True, capture_output=True, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("mgnet-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp / "site"),
                    str(wheel)], check=True, capture_output=True)
    away = tmp / "elsewhere"          # no checkout here, nor above
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MGNET_NOTEBOOKS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(tmp / "site"), PYTHONWARNINGS="ignore")
    return tmp, away, env


def mgnet(env, cwd, *args, timeout=900):
    code = "import sys; from mgnet.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_wheel_holds_and_uses_its_own_files(wheel_env):
    tmp, away, env = wheel_env
    probe = "import mgnet.lab.notebooks as n; print(n.notebook_path('benchmark'))"
    where = subprocess.run([sys.executable, "-c", probe], cwd=away, env=env, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert Path(where).is_relative_to(tmp / "site" / "mgnet"), where      # the wheel's copy, not the checkout's
    r = mgnet(env, away, "recipes")
    assert r.returncode == 0 and "digits-benchmark" in r.stdout, r.stderr[-2000:]
    r = mgnet(env, away, "benchmark", "--list")
    assert r.returncode == 0, r.stderr[-2000:]
    assert any(line.startswith("seeds = ") for line in r.stdout.splitlines()), r.stdout


def test_the_wheel_runs_a_shipped_notebook(wheel_env):
    tmp, away, env = wheel_env
    r = mgnet(env, away, "benchmark", "--notebook", "train", "--out", "run", "--no-html", "-p", "epochs", 1,
              "-p", "limit_train", 2, "-p", "limit_val", 1, "-p", "gallery", 0, "-p", "n_iter", 2)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    executed = json.loads((away / "run" / "train.ipynb").read_text())
    out = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                  for c in executed["cells"] for o in c.get("outputs", []))
    assert '"clean_acc"' in out and '"checkpoint"' in out, out[-2000:]
    assert list((away / "run").rglob("*.ckpt")), "no checkpoint written"
