#!/usr/bin/env python3
"""The explorer's redraw time (issue 45.6: the median redraw at or under 0.3 s on the project's 2-core CPU).

    python tools/explorer_speed.py                         # trains two tiny runs in a temporary folder first (~30 s)
    python tools/explorer_speed.py --sweep_dir runs/sweep  # the runs of a sweep folder
    python tools/explorer_speed.py --redraws 20 --threads 1

It opens the explorer over the runs (`GlimpseExplorer`, no browser), steps through images in each view (image,
glimpses over the set, compare), and prints per view and over all redraws the median wall time of a redraw as the
explorer measures it (forward pass of a new image, figure, PNG, status line) and the process CPU time per redraw; then,
in the same run on the same images, the explorer's earlier picture (`mgnet.pictures.prediction_figure` built anew and
saved as a PNG at the same dpi) as a reference. It names the CPU and the load average: a loaded machine's wall times
are not a quiet machine's; the ratio to the reference, measured in the same run, travels better.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def tiny_runs(root: Path) -> Path:
    "A 4-glimpse MGNet and a 1-glimpse baseline trained for a moment on the embedded digits, in `root`."
    from mgnet.config import MGNetConfig
    from mgnet.lab.runs import run_sweep, train_run
    small = dict(dataset="digits", epochs=1, limit_train=4, batch_size=16)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"): logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_sweep(MGNetConfig(n_iter=4, **small), [0.6], [1.0], [2.0], root, progress=False)
        train_run(MGNetConfig(n_iter=1, **small), root / "baseline", name="baseline")
    return root


def measure(sweep_dir: Path, redraws: int) -> dict:
    "Median wall and CPU time per redraw in each view, and of the earlier picture on the same images."
    from mgnet.lab.explorer import explore
    from mgnet.pictures import figure_png, prediction_figure
    ex = explore(sweep_dir, train=False)
    ex.run.value = max(range(len(ex.names)), key=ex.T_at)                  # the run with the most glimpses
    n = ex.n_own_at(ex.j)
    images = [i % n for i in range(1, redraws + 1)]
    out, every = {}, []
    for view in ("image", "set", "compare"):
        ex.view.value = view
        if view == "compare": ex.compare.value = min(range(len(ex.names)), key=ex.T_at)
        ex.image.value = 0                                                 # warm: the view's figure is made once
        ex.redraw_times.clear()
        c0 = time.process_time()
        for i in images: ex.image.value = i
        out[view] = (statistics.median(ex.redraw_times), (time.process_time() - c0) / len(images))
        every += ex.redraw_times
    out["all"] = statistics.median(every), None
    ref, c0 = [], time.process_time()
    for i in images:
        p, shown, label = ex.prediction(ex.j, i)[:3]                       # cached: only the picture is timed
        t0 = time.perf_counter()
        figure_png(prediction_figure(p, shown, None, ex.T_at(ex.j), label, "reference"), dpi=80)
        ref.append(time.perf_counter() - t0)
    out["reference"] = statistics.median(ref), (time.process_time() - c0) / len(images)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweep_dir", type=Path, help="a folder of runs (default: two tiny runs trained first)")
    ap.add_argument("--redraws", type=int, default=12, help="redraws timed in each view")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the explorer's kernel: 1 by default here)")
    a = ap.parse_args(argv)
    if a.redraws < 1: ap.error(f"--redraws {a.redraws}: at least 1")
    if a.sweep_dir is not None and not a.sweep_dir.is_dir(): ap.error(f"--sweep_dir {a.sweep_dir}: no such folder")
    torch.set_num_threads(a.threads)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from mgnet.bench import cpu_name
    with tempfile.TemporaryDirectory() as tmp:
        sweep = a.sweep_dir or tiny_runs(Path(tmp))
        r = measure(sweep, a.redraws)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"explorer redraw on {cpu_name()} ({os.cpu_count()} cores, load average {load}), torch threads {a.threads}, "
          f"{a.redraws} redraws per view:")
    for v in ("image", "set", "compare"):
        print(f"  {v:8s} median {r[v][0]:.3f} s wall, {r[v][1]:.3f} s CPU per redraw")
    print(f"  the earlier picture alone (figure + PNG, no forward pass): median {r['reference'][0]:.3f} s wall, "
          f"{r['reference'][1]:.3f} s CPU")
    print(f"median redraw {r['all'][0]:.3f} s (all {3 * a.redraws} redraws); "
          f"image view / earlier picture: {r['image'][0] / r['reference'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
