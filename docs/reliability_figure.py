"""Make docs/reliability.png: an interrupted (kill -9) and resumed digits run against an uninterrupted one, and the
bad inputs the test suite tries. Run from the repository root after the README's install:
python docs/reliability_figure.py"""
import ast
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mgnet.checkpoint import read_checkpoint

BIN = Path(sys.executable).parent
ARGS = ["--epochs", "8", "--limit_train", "20", "--n_iter", "3", "--batch_size", "32", "--learning_rate", "0.03",
        "--seed", "1"]


def val_curve(run_dir):
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    ev = acc.Scalars("val/acc")
    return [e.step for e in ev], [e.value for e in ev]


def count_bad_inputs():
    """Bad-input cases in tests/: parametrized invalid-flag cases plus the named bad-file tests."""
    n = 0
    for f in Path("tests").glob("test_*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(w in node.name
                                                         for w in ("invalid", "bad", "unwritable", "refus", "not_fit")):
                params = [d for d in node.decorator_list if isinstance(d, ast.Call)
                          and getattr(d.func, "attr", "") == "parametrize"]
                n += sum(len(p.args[1].elts) for p in params if isinstance(p.args[1], ast.List)) or 1
    return n


def main():
    tmp = Path(tempfile.mkdtemp())
    subprocess.run([BIN / "mgnet", *ARGS, "--log_dir", tmp / "a"], check=True, capture_output=True)
    proc = subprocess.Popen([BIN / "mgnet", *ARGS, "--log_dir", tmp / "b"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    killed_after = None
    while killed_after is None:
        for f in (tmp / "b").rglob("last.ckpt"):
            try:
                if read_checkpoint(f)["epoch"] >= 3:
                    proc.send_signal(signal.SIGKILL)
                    killed_after = read_checkpoint(f)["global_step"]
            except Exception:
                pass
        time.sleep(0.05)
    proc.wait()
    run_b = next((tmp / "b").rglob("last.ckpt")).parent.parent
    subprocess.run([BIN / "mgnet", "--resume", run_b], check=True, capture_output=True)
    run_a = next((tmp / "a").rglob("last.ckpt")).parent.parent

    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    xa, ya = val_curve(run_a)
    xb, yb = val_curve(run_b)
    ax.plot(xa, ya, "o-", lw=4, alpha=0.4, label="uninterrupted")
    ax.plot(xb, yb, "k.--", label="killed (kill -9), then --resume")
    ax.axvline(killed_after, color="red", ls=":", label="last checkpoint before the kill")
    ax.set_xlabel("training step"); ax.set_ylabel("validation accuracy (last glimpse)"); ax.legend(fontsize=8)
    ax.set_title("interrupted run: nothing lost")
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.axis("off")
    n = count_bad_inputs()
    ax2.text(0, 0.95, f"{n} bad inputs tried by the test suite", fontsize=13, weight="bold", va="top")
    ax2.text(0, 0.75, "each: one line naming the flag or file,\nnon-zero exit, no file on disk changed\n\n"
                      "missing/empty directories, class folders\nwithout images, truncated and corrupt images,\n"
                      "wrong --num_class, another backbone,\nempty/truncated/unsafe checkpoints,\n"
                      "invalid hyperparameters, unwritable --results", fontsize=10, va="top")
    fig.tight_layout()
    fig.savefig("docs/reliability.png", dpi=110)
    shutil.rmtree(tmp)
    print(f"docs/reliability.png written ({n} bad inputs; killed after step {killed_after})")


if __name__ == "__main__":
    main()
