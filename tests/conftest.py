import contextlib
import gzip
import io
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BIN = Path(sys.executable).parent

# pytest-xdist runs the test files on one worker per core (pyproject.toml's addopts): each worker's torch, and every
# process a test starts, gets its share of the cores instead of all of them, so that workers do not oversubscribe them
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // _WORKERS)))


def run_mgnet(*args, cwd=None, timeout=600, command="mgnet"):
    """Run an installed mgnet console command; return the CompletedProcess."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(BIN / command), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def in_process(main, *args, cwd=None):
    """The console command's function, run in this process from `cwd` (the same code as the installed command, without
    the seconds each new Python process spends importing torch): a CompletedProcess-like result."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = main([str(a) for a in args])
        except SystemExit as e: code = e.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture
def mgnet_cmd():
    return run_mgnet


def snapshot(root):
    """Path → (size, mtime) of every file under root, to show nothing was changed."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(root).rglob("*") if p.is_file()}


@pytest.fixture
def mnist_format_files(tmp_path):
    """A researcher's own files in the MNIST format, made here: 20 random images per split (two of each of the 10
    classes) under torchvision's layout for Fashion-MNIST, `<root>/FashionMNIST/raw/`."""
    files = tmp_path / "fm"
    (files / "FashionMNIST" / "raw").mkdir(parents=True)
    for split in ("train", "t10k"):
        for kind, arr in (("images-idx3", np.random.default_rng(0).integers(0, 255, (20, 28, 28), dtype=np.uint8)),
                          ("labels-idx1", np.arange(20, dtype=np.uint8) % 10)):
            with gzip.open(files / "FashionMNIST" / "raw" / f"{split}-{kind}-ubyte.gz", "wb") as f:
                f.write(struct.pack(">HBB", 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
                        + arr.tobytes())
    return files


@pytest.fixture
def fashion_mnist_files(request):
    """The folder of the Fashion-MNIST files: the real ones Debian's dataset-fashion-mnist ships (CI installs it), or,
    without it, the small stand-in `mnist_format_files` writes."""
    real = Path("/usr/share/datasets/fashion-mnist")
    if (real / "t10k-images-idx3-ubyte.gz").is_file(): return real
    return request.getfixturevalue("mnist_format_files")


def pytest_collection_modifyitems(session, config, items):
    """The saved-output chapters' file (minutes: 18 chapters run in kernels of their own) goes first, so that a worker
    starts it at once and the others share the rest instead of waiting for it at the end."""
    items.sort(key=lambda item: item.path.name != "test_saved_outputs.py")
