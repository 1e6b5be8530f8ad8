"""Which encoders MGNet helps: timm encoders on one recipe, MGNet against the same encoder's baseline, several seeds.

    python docs/encoder_study.py run [--epochs E] [--seeds 0 1 2] [--encoders timm/a timm/b] [--out docs/encoders.jsonl]
    python docs/encoder_study.py table [--out docs/encoders.jsonl]     # docs/encoders.md's tables, from the records
    python docs/encoder_study.py gflops                                 # fvcore GFLOPs per glimpse of every encoder

One thread (the study is sized for one CPU core); every run appends one JSON line to the records, a run already
recorded is not trained again, and a run that fails is recorded with its error (what did not work stays in the records).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ENCODERS = ["timm/mobilenetv3_small_100", "timm/resnet18", "timm/vit_tiny_patch16_224", "timm/convnext_atto"]
# the digits benchmark's recipe (nbs/experiments/benchmark.ipynb's parameters), fewer epochs (--epochs)
RECIPE = dict(dataset="digits", translate=0.4, n_iter=4, scale=4.0, alpha=0.6, s=0.02, loc_init="zero",
              centre_coef=1000.0, batch_size=64, learning_rate=0.05, optimizer="sgd", scheduler="one-cycle",
              data_seed=0)


def parse_sets(sets) -> dict:
    "`--set key=value ...` as config values (numbers where they parse as numbers)."
    out = {}
    for kv in sets or []:
        k, v = kv.split("=", 1)
        try: out[k] = json.loads(v)
        except json.JSONDecodeError: out[k] = v
    return out


def configs(encoder: str, seed: int, epochs: int, sets: dict | None = None, base_sets: dict | None = None):
    "MGNet's and the baseline's config of one encoder and seed (validated once, at the end: the final model)."
    from mgnet import MGNetConfig
    from mgnet.model import baseline_config
    cfg = MGNetConfig(**{**RECIPE, **(sets or {})}, model=encoder, seed=seed, epochs=epochs, val_per_n=epochs)
    return {"mgnet": cfg, "baseline": baseline_config(cfg).replace(**(base_sets or {}))}


def train_one(cfg, log_dir: str) -> dict:
    "Train `cfg`; accuracy per glimpse of the final model on the validation canvases, GFLOPs per glimpse."
    import mgnet
    from mgnet.data import data_info
    from mgnet.flops import glimpse_gflops
    from mgnet.train import fit
    t0 = time.time()
    res = fit(cfg.replace(log_dir=log_dir), progress=False)
    seconds = time.time() - t0
    model = mgnet.load_checkpoint(res.last_checkpoint or res.best_checkpoint)
    return {"clean_acc": res.last_acc or res.clean_acc, "gflops": glimpse_gflops(model, data_info(res.cfg).img_size),
            "train_seconds": round(seconds, 1)}


OLD_RECIPE = "benchmark"   # records without a recipe name: the digits benchmark's recipe as it is (RECIPE)


def done(out: Path, status: str | None = None) -> set:
    "The runs recorded in `out` (those with `status` only, when given)."
    if not out.is_file(): return set()
    return {(r["encoder"], r["model"], r["seed"], r["epochs"], r.get("recipe", OLD_RECIPE))
            for r in map(json.loads, out.read_text().splitlines()) if status is None or r["status"] == status}


def run(a) -> None:
    import torch

    from mgnet.bench import cpu_name
    from mgnet.resume import RunInterrupted
    torch.set_num_threads(1)
    out = Path(a.out)
    have = done(out)
    sets, base_sets = parse_sets(a.set), parse_sets(a.base_set)
    for seed in a.seeds:
        for enc in a.encoders:
            for name, cfg in configs(enc, seed, a.epochs, sets, base_sets).items():
                if name not in a.models or (enc, name, seed, a.epochs, a.recipe) in have: continue
                if name == "baseline" and (enc, "mgnet", seed, a.epochs, a.recipe) in done(out, "failed"):
                    print(f"{enc} seed {seed}: MGNet failed, its baseline is not trained (nothing to compare)")
                    continue
                rec = {"encoder": enc, "model": name, "seed": seed, "epochs": a.epochs, "recipe": a.recipe,
                       "changes": {**sets, **(base_sets if name == "baseline" else {})},
                       "config": {k: getattr(cfg, k) for k in ("n_iter", "scale", "img_size", "translate", "alpha",
                                                               "centre_coef", "evidence_coef", "learning_rate",
                                                               "batch_size", "optimizer", "scheduler",
                                                               "weight_decay")},
                       "torch_threads": torch.get_num_threads(), "cpu": cpu_name()}
                with tempfile.TemporaryDirectory() as d:
                    try: rec.update(status="ok", **train_one(cfg, d))
                    except RunInterrupted: raise             # stopped by a signal: not a result, the study stops
                    except Exception as e:
                        first = str(e).splitlines()[0] if str(e) else ""
                        rec.update(status="failed", error=f"{type(e).__name__}: {first}")
                        traceback.print_exc()
                with out.open("a") as f: f.write(json.dumps(rec) + "\n")
                print(json.dumps({k: rec.get(k) for k in ("encoder", "model", "seed", "status", "clean_acc",
                                                          "train_seconds", "error")}), flush=True)


STUDY = "adam"        # the recipe of the study's tables (the others: what was tried first, docs/encoders-probes.jsonl)
PROBES = Path(__file__).with_name("encoders-probes.jsonl")


def records(path) -> list[dict]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def comparison(recs: list[dict]) -> list[str]:
    "Per encoder: MGNet against its baseline over the seeds both have (tables: summary, per seed, per glimpse)."
    import numpy as np

    from mgnet.evaluation import paired_interval
    head = ("| encoder | epochs | seeds | baseline, last | MGNet, last | MGNet − baseline (95% interval) | "
            "seeds MGNet ≥ baseline | GFLOPs MGNet / baseline |")
    lines, per_seed, glimpses = [head, "|---|---|---|---|---|---|---|---|"], [], []
    for enc in dict.fromkeys(r["encoder"] for r in recs):
        for epochs in sorted({r["epochs"] for r in recs if r["encoder"] == enc}):
            ok = {(r["model"], r["seed"]): r for r in recs
                  if r["encoder"] == enc and r["epochs"] == epochs and r["status"] == "ok"}
            seeds = sorted(s for (m, s) in ok if m == "mgnet" and ("baseline", s) in ok)
            if not seeds: continue
            m = [ok["mgnet", s]["clean_acc"][-1] for s in seeds]
            b = [ok["baseline", s]["clean_acc"][0] for s in seeds]
            mean, lo, hi = paired_interval([x - y for x, y in zip(m, b)])
            ms = lambda v: f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else f"{v[0]:.4f} (one seed)"
            ci = f"({lo:+.4f} to {hi:+.4f})" if len(seeds) > 1 else "(one seed: no interval)"
            gm, gb = ok["mgnet", seeds[0]]["gflops"], ok["baseline", seeds[0]]["gflops"][0]
            lines.append(f"| `{enc}` | {epochs} | {len(seeds)} | {ms(b)} | {ms(m)} | {mean:+.4f} {ci} | "
                         f"{sum(x >= y for x, y in zip(m, b))} of {len(seeds)} | "
                         f"{gm[-1]:.4f} / {gb:.4f} ({gm[-1] / gb:.0%}) |")
            per_seed.append((enc, epochs, {s: f"{ok['mgnet', s]['clean_acc'][-1]:.4f} vs "
                                             f"{ok['baseline', s]['clean_acc'][0]:.4f}" for s in seeds}))
            acc = np.array([ok["mgnet", s]["clean_acc"] for s in seeds])
            sd = acc.std(0, ddof=1) if len(seeds) > 1 else None
            glimpses.append(f"| `{enc}` | {epochs} | " + " | ".join(
                f"{acc[:, k].mean():.4f}" + (f" ± {sd[k]:.4f}" if sd is not None else "") + f" ({g:.4f})"
                for k, g in enumerate(gm)) + f" | {np.mean(b):.4f}" + (f" ± {np.std(b, ddof=1):.4f}" if len(b) > 1
                                                                        else "") + f" ({gb:.4f}) |")
    all_seeds = sorted({s for _, _, cells in per_seed for s in cells})
    return [*lines, "", "Per seed (MGNet's last glimpse vs the baseline, the same seed):", "",
            "| encoder | epochs | " + " | ".join(f"seed {s}" for s in all_seeds) + " |",
            "|---|---|" + "---|" * len(all_seeds),
            *[f"| `{enc}` | {epochs} | " + " | ".join(cells.get(s, "") for s in all_seeds) + " |"
              for enc, epochs, cells in per_seed], "",
            "Accuracy after each glimpse, mean ± std over the seeds (cumulative GFLOPs of one image), and the "
            "baseline's:", "",
            "| encoder | epochs | glimpse 1 | glimpse 2 | glimpse 3 | glimpse 4 | baseline |",
            "|---|---|---|---|---|---|---|", *glimpses]


def failures(recs: list[dict]) -> list[str]:
    bad = [r for r in recs if r["status"] != "ok"]
    if not bad: return []
    return ["", "Runs that failed:", "", "| encoder | recipe | model | epochs | seed | error |",
            "|---|---|---|---|---|---|",
            *[f"| `{r['encoder']}` | {r.get('recipe', OLD_RECIPE)} | {r['model']} | {r['epochs']} | {r['seed']} | "
              f"{r['error'][:150]} |" for r in bad]]


def footer(recs: list[dict], path: str) -> str:
    cpus = sorted({r.get("cpu", "?") for r in recs})
    secs = sum(r.get("train_seconds") or 0 for r in recs)
    return (f"Records: `{path}` ({len(recs)} runs, {secs / 60:.0f} min of training, wall clock, on one thread of "
            f"{', '.join(cpus)}, shared). Chance is 0.10 (ten classes).")


def table(a) -> str:
    "The study's tables (recipe `STUDY`), from the records: per seed, mean ± std, paired interval, per glimpse."
    recs = [r for r in records(a.out) if r.get("recipe", OLD_RECIPE) == STUDY]
    return "\n".join(["### MGNet against the same encoder's baseline (final models, validation canvases)", "",
                      *comparison(recs), *failures(recs), "", footer(recs, "docs/encoders.jsonl")])


def change_text(r: dict) -> str:
    ch = dict(r.get("changes") or {})
    return ", ".join(f"{k} {v}" for k, v in ch.items()) or "as it is"


def probes_table(a) -> str:
    "What was tried before the study's recipe, one row per run (one seed): the changes, accuracy per glimpse, time."
    recs = [r for r in records(a.out) if r.get("recipe", OLD_RECIPE) != STUDY]
    if PROBES.is_file(): recs += records(PROBES)
    out = ["| encoder | recipe (changes to the benchmark's) | epochs | model | seed | accuracy per glimpse | seconds |",
           "|---|---|---|---|---|---|---|"]
    for r in recs:
        acc = " ".join(f"{v:.3f}" for v in r["clean_acc"]) if r["status"] == "ok" else f"failed: {r['error'][:70]}"
        out.append(f"| `{r['encoder']}` | {r.get('recipe', OLD_RECIPE)}: {change_text(r)} | {r['epochs']} | "
                   f"{r['model']} | {r['seed']} | {acc} | {r.get('train_seconds') or ''} |")
    return "\n".join(out + ["", footer(recs, "docs/encoders-probes.jsonl")])


GFLOPS_OUT = Path(__file__).with_name("encoders-gflops.jsonl")
PAGE = Path(__file__).with_name("encoders.md")


def page(a) -> None:
    "Write both tables into docs/encoders.md, between their markers."
    text = PAGE.read_text()
    for name, body in (("gflops", gflops_table()), ("study", table(a)), ("probes", probes_table(a))):
        start, end = f"<!-- {name} table: docs/encoder_study.py page -->", f"<!-- end of {name} table -->"
        i, j = text.index(start) + len(start), text.index(end)
        text = text[:i] + "\n" + body + "\n" + text[j:]
    PAGE.write_text(text)
GFLOPS_ENCODERS = ["vanilla", "resnet18", *ENCODERS, "timm/test_resnet", "timm/test_efficientnet", "timm/test_vit"]


def gflops(a) -> None:
    "fvcore GFLOPs of one digits canvas (64 px) per glimpse, n_iter 4, at scale 4 and 2, beside the baseline's look."
    import torch

    from mgnet import MGNet, MGNetConfig
    from mgnet.flops import baseline_gflops, glimpse_gflops
    torch.set_num_threads(1)
    with GFLOPS_OUT.open("w") as f:
        for enc in GFLOPS_ENCODERS:
            for scale in (4.0, 2.0):
                cfg = MGNetConfig(model=enc, n_iter=4, scale=scale)
                rec = {"encoder": enc, "img_size": 64, "scale": scale, "glimpse_px": int(64 // scale)}
                try:
                    rec.update(gflops=glimpse_gflops(MGNet(cfg), 64), baseline_gflops=baseline_gflops(cfg, 64))
                except Exception as e:
                    rec.update(error=f"{type(e).__name__}: {str(e).splitlines()[0]}")
                f.write(json.dumps(rec) + "\n")
                f.flush()
                print(json.dumps(rec), flush=True)


def gflops_table() -> str:
    recs = [json.loads(ln) for ln in GFLOPS_OUT.read_text().splitlines()]
    out = ["| encoder | glimpse | one glimpse | 4 glimpses (cumulative) | baseline's look (64 px) | 4 / baseline |",
           "|---|---|---|---|---|---|"]
    for r in recs:
        if "error" in r:
            out.append(f"| `{r['encoder']}` | {r['glimpse_px']} px | cannot look: {r['error'][:90]} | | | |")
            continue
        g, b = r["gflops"], r["baseline_gflops"]
        out.append(f"| `{r['encoder']}` | {r['glimpse_px']} px | {g[0]:.4f} | {g[-1]:.4f} | {b:.4f} | "
                   f"{g[-1] / b:.0%} |")
    return "\n".join(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["run", "table", "gflops", "page"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--encoders", nargs="+", default=ENCODERS)
    p.add_argument("--out", default=str(Path(__file__).with_name("encoders.jsonl")))
    p.add_argument("--recipe", default=OLD_RECIPE, help="the name these runs are recorded under")
    p.add_argument("--set", nargs="*", help="changes to RECIPE, key=value (both models)")
    p.add_argument("--base_set", nargs="*", help="changes for the baseline only, key=value")
    p.add_argument("--models", nargs="+", default=["mgnet", "baseline"])
    a = p.parse_args()
    if a.what == "run": run(a)
    elif a.what == "gflops": gflops(a)
    elif a.what == "page": page(a)
    else: print(table(a) + "\n\n" + probes_table(a) + "\n\n### GFLOPs per glimpse (fvcore, one 64 px canvas)\n\n"
                + gflops_table())
    sys.exit(0)
