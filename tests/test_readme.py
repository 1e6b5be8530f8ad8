"""The README's quick start, run as written: its `## Quick start` bash block, in a fresh folder, with the installed
commands. It must print the per-glimpse table of both models and write a picture per image."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def readme_block(section: str) -> str:
    "The first bash block of the README's `## section`."
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README.md has no '## {section}' section"
    block = re.search(r"^```bash\n(.*?)^```", m.group(1), re.S | re.M)
    assert block, f"README.md's '## {section}' has no bash block"
    return block.group(1)


def test_readme_lengths():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; the front page keeps to 250"
    for section in ("Install", "Quick start", "Python", "Results", "Documentation", "Tests", "Citation"):
        assert f"## {section}" in lines, f"README.md lacks '## {section}'"
    first_screen = "\n".join(lines[:40])        # a newcomer finds these without scrolling (issue 41)
    for anchor in ("#install", "#quick-start", "#python", "#results", "#documentation"):
        assert f"]({anchor})" in first_screen, f"README.md's first 40 lines do not link to {anchor}"


def test_quick_start_runs_as_written(tmp_path):
    block = readme_block("Quick start")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    # the per-glimpse table of both models, then a line per image with the class after each glimpse
    assert re.search(r"MGNet: accuracy after each glimpse[^\n]*\n[^\n]*\naccuracy(\s+\d\.\d{4}){4}\n", r.stdout), \
        r.stdout[-3000:]
    assert re.search(r"baseline: accuracy after each glimpse[^\n]*\n[^\n]*\naccuracy\s+\d\.\d{4}\n", r.stdout), \
        r.stdout[-3000:]
    assert re.search(r"MGNet vs baseline, last glimpse:\n  accuracy \d\.\d{4} vs \d\.\d{4}", r.stdout), r.stdout[-3000:]
    assert re.search(r"glimpse 4: \d", r.stdout), r.stdout[-3000:]
    res = json.loads((tmp_path / "quickstart.json").read_text())
    assert len(res["clean_acc"]) == 4 and len(res["baseline"]["clean_acc"]) == 1
    assert res["gflops"][-1] < res["baseline"]["gflops"][-1]
    pictures = sorted((tmp_path / "quickstart" / "pictures").rglob("*.png"))
    assert len(pictures) == 10, pictures
    assert all(p.stat().st_size > 5000 for p in pictures)


FAKE_QUARTO = """#!/bin/sh
# quarto render FILE -o README.md ...: as quarto does from nbdev's cache folder, write _docs/README.md, if FILE exists
[ "$1" = render ] && [ -f "$2" ] || { echo "quarto: no such file $2" >&2; exit 1; }
mkdir -p _docs && echo "rendered from $2" > _docs/README.md
"""


def _nbdev_readme(tmp_path, readme_nb: str | None):
    "Run `nbdev_readme` in a copy of the project's settings, README and front notebook, with a quarto that works."
    proj = tmp_path / "proj"
    (proj / "nbs").mkdir(parents=True)
    settings = (ROOT / "settings.ini").read_text()
    if readme_nb: settings = re.sub(r"(?m)^readme_nb = .*$", f"readme_nb = {readme_nb}", settings)
    (proj / "settings.ini").write_text(settings)
    (proj / "README.md").write_text("hand-written\n")
    (proj / "nbs" / "index.ipynb").write_bytes((ROOT / "nbs" / "index.ipynb").read_bytes())
    (tmp_path / "bin").mkdir()
    quarto = tmp_path / "bin" / "quarto"
    quarto.write_text(FAKE_QUARTO)
    quarto.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{BIN}:{os.environ.get('PATH', '')}"}
    r = subprocess.run([str(BIN / "nbdev_readme")], cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    return r, (proj / "README.md").read_text()


def test_nbdev_readme_cannot_overwrite_the_readme(tmp_path):
    r, readme = _nbdev_readme(tmp_path, None)
    assert readme == "hand-written\n", "nbdev_readme rendered a notebook over README.md"
    assert r.returncode != 0


def test_nbdev_readme_would_overwrite_with_index(tmp_path):
    "The control: with nbdev's default `readme_nb = index.ipynb` the same run does overwrite it."
    r, readme = _nbdev_readme(tmp_path, "index.ipynb")
    assert readme.startswith("rendered from"), (r.returncode, r.stderr[-2000:])
