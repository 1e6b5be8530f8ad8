"""Train the clutter experiments one run at a time and append each run's record to a jsonl file.

    python docs/clutter_runs.py RECORDS.jsonl GROUP VARIANT SEED [--flag value ...]
    python docs/clutter_runs.py RECORDS.jsonl --queue FILE [--after PID]   # the lines of FILE, one process

With `--queue`, every line of FILE (`GROUP VARIANT SEED [--flag value ...]`; the file may grow while it runs) is run in
this one process, after process PID has ended; the lines taken are counted in FILE.pos. One process saves the start-up
(imports) of every run, minutes each on a loaded machine.

Every run trains with `mgnet.train.fit` on one thread, then scores the last epoch's model ("final model") per glimpse
on the validation objects placed anew (`placed_anew(copies, seed=1000 + data seed)`: other placements and other clutter
than any run saw) and measures its glimpses there against the objects' boxes. A record holds the group, variant,
flags, seed, the full config, per-glimpse accuracy (best checkpoint on the validation canvases: `clean_acc`; last:
`last_acc`; final model on fresh canvases: `fresh_acc`), GFLOPs, localisation, time and machine. A (group, variant,
seed) already in the file is skipped.
"""
import json
import os
import sys
import time

import torch
from torch.utils.data import DataLoader

from mgnet.bench import cpu_name
from mgnet.checkpoint import load_checkpoint
from mgnet.config import MGNetConfig
from mgnet.data import canvas_datasets
from mgnet.evaluation import evaluate
from mgnet.flops import baseline_gflops, glimpse_gflops
from mgnet.localisation import dataset_localisation
from mgnet.train import fit


def parse(argv):
    out, flags = {}, []
    fields = MGNetConfig.__dataclass_fields__
    it = iter(argv)
    for a in it:
        k = a.lstrip("-"); v = next(it)
        flags.append(f"--{k} {v}")
        if k == "fresh_copies": out[k] = int(v); continue
        t = fields[k].type
        out[k] = (v.lower() in ("1", "true", "yes")) if "bool" in str(t) else \
            json.loads(v) if v.startswith(("[", "{")) else \
            int(v) if t in (int, "int", "int | None") else float(v) if "float" in str(t) else v
    return out, " ".join(flags)


def machine():
    return f"{os.cpu_count()}-core CPU ({cpu_name()}), one thread per run, niced, shared with other jobs"


def main(records, group, variant, seed, *rest):
    torch.set_num_threads(1)
    seed = int(seed)
    done = [json.loads(l) for l in open(records)] if os.path.exists(records) else []
    if any(r["group"] == group and r["variant"] == variant and r["seed"] == seed for r in done):
        print(f"{group}/{variant}/seed {seed}: already recorded"); return
    kw, flags = parse(rest)
    copies = int(kw.pop("fresh_copies", 10))
    cfg = MGNetConfig(seed=seed, data_seed=kw.pop("data_seed", 0), log_dir=f"/tmp/clutter/logs/{group}", **kw)
    t0 = time.time()
    res = fit(cfg, progress=False)
    secs = time.time() - t0
    c = res.cfg
    final = load_checkpoint(res.last_checkpoint or res.best_checkpoint)
    val = canvas_datasets(c)[1]
    fresh = val.placed_anew(copies, seed=1000 + (c.data_seed if c.data_seed is not None else c.seed))
    loader = DataLoader(fresh, batch_size=256, shuffle=False)
    fresh_acc = evaluate(final, loader, progress=False)
    rec = dict(group=group, variant=variant, flags=flags, seed=seed, machine=machine(), config=c.to_dict(),
               clean_acc=res.clean_acc, last_acc=res.last_acc, gflops=glimpse_gflops(final, c.img_size),
               baseline_gflops=baseline_gflops(c, c.img_size), localisation=res.localisation,
               fresh_acc=fresh_acc, fresh_images=len(fresh),
               fresh=f"the last epoch's model on the validation objects placed anew {copies} times, with new clutter "
                     f"(placed_anew({copies}, seed={1000 + (c.data_seed if c.data_seed is not None else c.seed)}))",
               fresh_localisation=dataset_localisation(final, fresh), train_seconds=round(secs, 1),
               torch=torch.__version__)
    with open(records, "a") as f: f.write(json.dumps(rec) + "\n")
    print(f"{group}/{variant}/seed {seed}: fresh {' '.join(f'{a:.4f}' for a in fresh_acc)} "
          f"IoU {' '.join(f'{a:.2f}' for a in rec['fresh_localisation']['glimpse_iou'])} in {secs:.0f} s", flush=True)


def queue(records, file, after=None):
    pos = file + ".pos"
    while after and os.path.exists(f"/proc/{after}"): time.sleep(10)
    while True:
        n = int(open(pos).read()) if os.path.exists(pos) else 0
        lines = [line.split() for line in open(file) if line.strip()]
        if n >= len(lines):
            if os.path.exists(file + ".stop"): return
            time.sleep(20); continue
        with open(pos, "w") as f: f.write(str(n + 1))
        print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {' '.join(lines[n])}", flush=True)
        try: main(records, *lines[n])
        except Exception as e: print(f"failed: {type(e).__name__}: {e}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "--queue":
        queue(sys.argv[1], sys.argv[3], int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--after" else None)
    else: main(*sys.argv[1:])
