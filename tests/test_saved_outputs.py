"""The chapters that keep their outputs, run top to bottom and compared with what they keep.

`nbdev_test` skips these chapters (their frontmatter says `skip_exec: true`): this test runs them instead, through
`tools/refresh_outputs.py --check`, so that a failing check in one of them fails here, and so does a saved output
that a fresh run no longer prints. `tests/conftest.py` starts this file first: it is the longest.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kept_chapters_run_and_match_their_saved_outputs():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "refresh_outputs.py"), "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    ran = [line for line in r.stdout.splitlines() if line.endswith(" s)")]     # "03_model: same (12 s)"
    assert len(ran) >= 12 and all(": same (" in line for line in ran), r.stdout
