"""The pictures of docs/clutter.md: glimpses of final models on fresh cluttered canvases, one row per model.

    python docs/clutter_figure.py LOG_ROOT OUT.png SEED VARIANT=RUN_NAME [VARIANT=RUN_NAME ...]

LOG_ROOT is the runs' `--log_dir` (docs/clutter_runs.py's: /tmp/clutter/logs/<group>); a run is found by its run name
and, among its versions, the one trained with SEED. Each row: the same four fresh canvases (the validation objects
placed anew with new clutter, as the records score them), the glimpses numbered, the predicted class after the last.
"""
import sys
from pathlib import Path

import torch
import yaml
from matplotlib.figure import Figure

from mgnet.checkpoint import load_checkpoint
from mgnet.data import canvas_datasets
from mgnet.lab.figures import draw_glimpses, glimpse_pictures
from mgnet.localisation import params_iou


def find_run(root: Path, name: str, seed: int) -> Path:
    runs = root.glob(f"*/*/{name}/version_*")                                   # <data><classes>/<model>/<name>
    for v in sorted(runs, key=lambda v: -int(v.name.split("_")[1])):            # the latest first
        hp, last = yaml.safe_load((v / "hparams.yaml").read_text()), v / "checkpoints" / "last.ckpt"
        if hp.get("seed") == seed and last.is_file(): return last
    raise FileNotFoundError(f"{root}/{name}: no run of seed {seed}")


def main(root, out, seed, *rows, n=4):
    torch.set_num_threads(1)
    seed, rows = int(seed), [r.split("=", 1) for r in rows]
    fig = Figure(figsize=(1.6 * n + 1.4, 1.7 * len(rows)), layout="constrained")
    axs = fig.subplots(len(rows), n, squeeze=False)
    for (label, name), row in zip(rows, axs):
        model = load_checkpoint(find_run(Path(root), name, seed))
        c = model.run
        names = model.preprocessing.class_names or [str(k) for k in range(c.num_class)]
        fresh = canvas_datasets(c)[1].placed_anew(1, seed=1000 + (c.data_seed if c.data_seed is not None else c.seed))
        x, y = map(torch.stack, zip(*[fresh[i] for i in range(n)]))
        p = glimpse_pictures(model, x, c.mean, c.std)
        iou = params_iou(torch.as_tensor(p["glimpses"]), fresh.object_boxes()[:n], x.shape[-1])
        for b, ax in enumerate(row):
            draw_glimpses(ax, p["images"][b], p["boxes"][:, b])
            k = int(p["probs"][-1, b].argmax())
            ax.set_title(f"{names[k]} ({'right' if k == int(y[b]) else 'wrong'}), IoU {iou[-1, b]:.2f}", fontsize=8,
                         color="black" if k == int(y[b]) else "red")
        row[0].set_ylabel(label, fontsize=9)
    fig.savefig(out, dpi=90)


if __name__ == "__main__": main(*sys.argv[1:])
