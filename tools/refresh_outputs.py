#!/usr/bin/env python3
"""Keep the saved outputs of the core chapters in step with the code.

    python tools/refresh_outputs.py            # re-run the chapters in place, then nbdev_clean them
    python tools/refresh_outputs.py --check    # re-run into memory; fail if a text output differs from the saved one
                                               # (what pytest runs: tests/test_saved_outputs.py)
    python tools/refresh_outputs.py 01_geometry 14_anytime    # only these chapters
    python tools/refresh_outputs.py --check --jobs 1          # one chapter at a time (default: one per core)

Each chapter runs top to bottom in a fresh Python kernel (nbclient), with `nbs/` as the working directory as
`nbdev_test` does, on the CPU, and skips the cells
`nbdev_test` skips (settings.ini `tst_flags`). What is saved: standard output, results and pictures. Standard error
(warnings, progress bars) is not saved: it names local paths and changes from run to run.

`--check` compares text only: picture bytes change with the matplotlib version, so a picture is compared by where it
is, not by its pixels. It names the chapter and the cell of the first difference in each chapter and exits 1.
"""
from __future__ import annotations

import argparse
import configparser
import multiprocessing
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"

# The chapters whose outputs are kept: those with a picture, and a few whose printed checks are worth reading
# (tests/test_docs_site.py: every chapter that keeps a picture is one, and at least 12 do). Each says so in its
# frontmatter, `skip_exec: true` (a raw cell after its title): `nbdev_test` skips it, and pytest runs it here instead
# (tests/test_saved_outputs.py), which checks its outputs too, so that CI runs each chapter once.
def kept_chapters() -> tuple[str, ...]:
    "The chapters whose frontmatter says `skip_exec: true`: their outputs are kept and checked here."
    def marked(path: Path) -> bool:
        nb = nbformat.read(path, as_version=4)
        return any(c.cell_type == "raw" and re.search(r"^skip_exec:\s*true\b", c.source, re.M) for c in nb.cells)
    return tuple(p.stem for p in sorted(NBS.glob("*.ipynb")) if marked(p))


CHAPTERS = kept_chapters()

# The same environment for every run: no GPU, no colour codes, a fixed hash seed. (Not one thread: some checks compare
# floats that were computed with torch's default threads; so a thread limit set around this script, as pytest's
# workers set one, is not passed on: `THREAD_VARS`.)
ENV = {"CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0",
       "MPLBACKEND": "Agg", "TQDM_DISABLE": "1", "NO_COLOR": "1", "PYTHONWARNINGS": "ignore"}
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

_ID = re.compile(r" at 0x[0-9a-fA-F]+")        # object ids, as nbdev_clean removes them


def test_flags() -> set[str]:
    "The cell flags `nbdev_test` skips (settings.ini `tst_flags`)."
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    return set(cfg["DEFAULT"].get("tst_flags", "").split())


def skipped(cell, flags: set[str]) -> bool:
    "Is `cell` one that `nbdev_test` does not run?"
    if cell.cell_type != "code": return True
    for line in cell.source.splitlines():
        m = re.match(r"\s*#\s*\|\s*(.*)", line)
        if not m: continue
        words = m.group(1).replace(":", " ").split()
        if any(w in flags for w in words) or words[:2] == ["eval", "false"]: return True
    return False


def execute(name: str, timeout: int = 600) -> nbformat.NotebookNode:
    "Chapter `name` run top to bottom in a fresh kernel; stderr streams dropped."
    nb = nbformat.read(NBS / f"{name}.ipynb", as_version=4)
    flags = test_flags()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NBS)}})
    # the kernel's environment is ENV over this process's (given to the kernel, not set here: chapters run side by
    # side); its own start-up warnings are dropped
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    with client.setup_kernel(env={**env, **ENV}, stderr=subprocess.DEVNULL):
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code": continue
            if skipped(cell, flags):
                cell.outputs = []
                continue
            try: client.execute_cell(cell, i)
            except CellExecutionError as e:
                first = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
                raise SystemExit(f"{name}, cell {i} (id {cell.get('id', '?')}) {first!r} failed: "
                                 f"{e.ename}: {e.evalue}") from None
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    return nb


def _text(s) -> str:
    s = "".join(s) if isinstance(s, list) else s
    return "\n".join(line.rstrip() for line in _ID.sub("", s).strip().splitlines())


def summary(outputs) -> list[tuple[str, str]]:
    "The comparable part of a cell's outputs: `(kind, text)` per output; pictures by their type only."
    out = []
    for o in outputs:
        t = o.get("output_type")
        if t == "stream":
            if o.get("name") == "stderr": continue
            text = "".join(o.get("text", ""))
            if out and out[-1][0] == "stdout": out[-1] = ("stdout", out[-1][1] + text)   # a stream may arrive in pieces
            else: out.append(("stdout", text))
        elif t in ("execute_result", "display_data"):
            data = o.get("data", {})
            pics = sorted(k for k in data if k.startswith("image/"))
            if pics: out.append(("picture", " ".join(pics)))
            else: out.append((t, _text(data.get("text/plain", ""))))
        elif t == "error": out.append(("error", f"{o.get('ename')}: {o.get('evalue')}"))
    return [(k, _text(v) if k == "stdout" else v) for k, v in out]


def differences(name: str, saved, fresh) -> list[str]:
    "Where the saved chapter's outputs differ from a fresh run's, cell by cell (empty when they agree)."
    if [c.source for c in saved.cells] != [c.source for c in fresh.cells]:
        return [f"{name}: the chapter changed while it ran; run again"]
    found = []
    for i, (a, b) in enumerate(zip(saved.cells, fresh.cells)):
        if a.cell_type != "code": continue
        sa, sb = summary(a.get("outputs", [])), summary(b.get("outputs", []))
        if sa == sb: continue
        first = next((line for line in a.source.splitlines() if line.strip()), "")[:70]
        lines = [f"{name}, cell {i} (id {a.get('id', '?')}): {first!r}"]
        for k in range(max(len(sa), len(sb))):
            x, y = (sa[k] if k < len(sa) else ("nothing", "")), (sb[k] if k < len(sb) else ("nothing", ""))
            if x != y:
                lines.append(f"  saved: {x[0]}: {x[1][:300]!r}")
                lines.append(f"  fresh: {y[0]}: {y[1][:300]!r}")
                break
        found.append("\n".join(lines))
    return found


def refresh(name: str) -> None:
    "Run chapter `name` and save its outputs in place, cleaned as `nbdev_clean` cleans."
    path = NBS / f"{name}.ipynb"
    fresh = execute(name)
    now = nbformat.read(path, as_version=4)
    if [c.source for c in now.cells] != [c.source for c in fresh.cells]:
        raise SystemExit(f"{name}: the chapter changed while it ran; nothing written, run again")
    nbformat.write(fresh, path)
    subprocess.run(["nbdev_clean", "--fname", str(path)], cwd=ROOT, check=True)


def _one(name: str, check: bool) -> tuple[str, list[str], str, float]:
    "Check or refresh chapter `name`: its name, its differences, what happened, seconds."
    t0 = time.monotonic()
    if check:
        diff = differences(name, nbformat.read(NBS / f"{name}.ipynb", as_version=4), execute(name))
        return name, diff, "differs" if diff else "same", time.monotonic() - t0
    refresh(name)
    return name, [], "written", time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Re-run the chapters that keep their outputs; --check compares instead.")
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help=f"chapters to run (default: {' '.join(CHAPTERS)})")
    p.add_argument("--check", action="store_true",
                   help="do not write: fail if a saved text output differs from a fresh run")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="chapters run at once, each in its own kernel (default: one per core, at most 4)")
    a = p.parse_args(argv)
    if a.jobs < 1: p.error(f"--jobs: must be at least 1, got {a.jobs}")
    names = [Path(c).stem for c in a.chapters] or list(CHAPTERS)
    for n in names:
        if not (NBS / f"{n}.ipynb").is_file(): p.error(f"no chapter nbs/{n}.ipynb")
    failed = []
    # chapters run side by side, one kernel each (`--jobs`, default: one per core, at most 4); results print in order
    with ProcessPoolExecutor(min(a.jobs, len(names)), mp_context=multiprocessing.get_context("fork")) as pool:
        for n, diff, state, seconds in pool.map(partial(_one, check=a.check), names):
            failed += diff
            print(f"{n}: {state} ({seconds:.0f} s)", flush=True)
    if failed:
        print("\n".join(["", *failed, "", "FAIL: saved outputs differ from a fresh run; "
                         "run `python tools/refresh_outputs.py` and commit the chapters"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
