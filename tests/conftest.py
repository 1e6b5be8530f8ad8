import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run_mgnet(*args, cwd=None, timeout=600, command="mgnet"):
    """Run an installed mgnet console command; return the CompletedProcess."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(BIN / command), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def mgnet_cmd():
    return run_mgnet


def snapshot(root):
    """Path → (size, mtime) of every file under root, to show nothing was changed."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(root).rglob("*") if p.is_file()}
