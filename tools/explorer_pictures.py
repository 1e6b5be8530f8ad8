#!/usr/bin/env python3
"""The explorer's pictures on the docs pages, made by the explorer itself (its `save`), not by hand.

    python tools/explorer_pictures.py --sweep_dir runs/sweep                 # docs/explorer*.png from these runs
    python tools/explorer_pictures.py --sweep_dir DIR --run mgnet --compare baseline --filter changed@4

It opens `explore(sweep_dir, run=..., compare=..., filter=...)` (no browser), shows the first image of the filter and
saves three views: `explorer.png` (the image, glimpse by glimpse), `explorer-set.png` (glimpses over the set, for the
same filter) and `explorer-compare.png` (the run compared, on the same image); then prints the one-line call that
reopens the image view.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweep_dir", type=Path, required=True, help="a folder of finished runs")
    ap.add_argument("--run", help="the run shown (default: the one with the most glimpses)")
    ap.add_argument("--compare", help="the run compared with (default: the one with the fewest glimpses)")
    ap.add_argument("--filter", default="wrong@1", help="the images walked through (default: wrong@1)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="the folder written to (default: docs/)")
    ap.add_argument("--dpi", type=int, default=80)
    a = ap.parse_args(argv)
    for flag, d in (("--sweep_dir", a.sweep_dir), ("--out", a.out)):
        if not d.is_dir(): ap.error(f"{flag} {d}: no such folder")
    os.environ.setdefault("MPLBACKEND", "Agg")
    from mgnet.lab.explorer import explore
    ex = explore(a.sweep_dir, train=False)
    by_glimpses = sorted(range(len(ex.names)), key=ex.T_at)
    run = a.run or ex.names[by_glimpses[-1]]
    compare = a.compare or ex.names[by_glimpses[0]]
    ex = explore(a.sweep_dir, train=False, run=run, filter=a.filter)      # the filter opens its first image
    written = [ex.save(a.out / "explorer.png", dpi=a.dpi)]
    call = ex.call()
    ex.view.value = "set"
    written.append(ex.save(a.out / "explorer-set.png", dpi=a.dpi))
    ex.compare.value = ex.names.index(compare)
    ex.view.value = "compare"
    written.append(ex.save(a.out / "explorer-compare.png", dpi=a.dpi))
    for p in written: print(f"wrote {p} ({p.stat().st_size // 1024} KiB)")
    print(f"image view: {call}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
