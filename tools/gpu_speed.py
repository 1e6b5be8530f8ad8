#!/usr/bin/env python3
"""GPU figures for docs/speed.md: one prepared run of a few minutes on the GPU at hand (issue 43, item 4).

    python tools/gpu_speed.py                      # on a CUDA machine: the figures of the speed page (under 5 minutes)
    python tools/gpu_speed.py --json gpu.json      # ... also written to a file
    python tools/gpu_speed.py --tiny               # anywhere, on the CPU too: the same code on tiny sizes, in seconds

It prints, for the named device:

- training and inference images/s of the baseline and of MGNet at the paper setting (224 px, 4 glimpses, scale 2.33,
  100 classes), ResNet-18 and ResNet-50, batch 256, with mixed precision (float16 with a gradient scaler on CUDA,
  bfloat16 on the CPU) and channels_last, as `mgnet --precision 16-mixed` trains;
- early exit: MGNet stopped after each glimpse, its inference time over the baseline's divided by its FLOPs over the
  baseline's (wall/FLOP 1.00: the time saved is the FLOPs saved);
- the data pipeline: ImageNet-style JPEGs (generated into a temporary folder; nothing is downloaded) decoded and
  augmented as mgnet trains ImageNet (`mgnet.data.imagenet_transform`: random resized crop, flip, AutoAugment), with a
  DataLoader on every core, in images/s, against the images/s each model's training consumes.

Every figure is timed in this one run: compare figures of the same run only.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mgnet.bench import SETTINGS, cpu_name
from mgnet.flops import glimpse_gflops
from mgnet.images import SafeImageFolder, imagenet_transform
from mgnet.losses import mgnet_loss
from mgnet.model import MGNet, baseline_config


def sync(dev: torch.device) -> None:
    if dev.type == "cuda": torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device, steps: int, warmup: int = 2) -> float:
    "Median seconds of `fn()` over `steps` calls after `warmup` ones."
    for _ in range(warmup): fn()
    ts = []
    for _ in range(steps):
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def autocast(dev: torch.device):
    "Mixed precision as Lightning's 16-mixed (CUDA) or bf16-mixed (CPU) runs it."
    return torch.autocast(dev.type, dtype=torch.float16 if dev.type == "cuda" else torch.bfloat16)


def model_figures(name: str, size: int, batch: int, steps: int, dev: torch.device) -> dict:
    "Inference and training images/s of the baseline and MGNet with backbone `name`, and early exit's wall/FLOP."
    cfg = SETTINGS["paper"]["cfg"].replace(model=name).resolved()      # channels_last: the config's default
    T = cfg.n_iter
    torch.manual_seed(0)
    models = {"baseline": MGNet(baseline_config(cfg)), "mgnet": MGNet(cfg)}
    gf = glimpse_gflops(models["mgnet"], size)                          # on the CPU, before moving
    bgf = glimpse_gflops(models["baseline"], size)[0]
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, cfg.num_class, (batch,), device=dev)
    out = {"gflops": gf, "baseline_gflops": bgf, "inference": {}, "training": {}}
    for key, m in models.items():
        m.to(dev).eval()
        with torch.inference_mode(), autocast(dev):
            if key == "baseline": out["inference"]["baseline"] = batch / timed(lambda: m(x), dev, steps)
            else:
                for k in range(1, T + 1):
                    out["inference"][f"mgnet_{k}"] = batch / timed(lambda k=k: m(x, k), dev, steps)
        m.train()
        c = m.run
        opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
        scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda")

        def step(m=m, c=c, opt=opt, scaler=scaler):
            opt.zero_grad(set_to_none=True)
            with autocast(dev): loss = mgnet_loss(m(x), y, c, m, x).loss
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        out["training"][key] = batch / timed(step, dev, steps)
        m.cpu()
        del opt
        if dev.type == "cuda": torch.cuda.empty_cache()
    base = out["inference"]["baseline"]
    out["early_exit_wall_per_flop"] = [(base / out["inference"][f"mgnet_{k}"]) / (gf[k - 1] / bgf)
                                       for k in range(1, T + 1)]
    return out


def make_jpegs(root: Path, n: int, width: int, height: int, classes: int = 10) -> None:
    "`n` JPEGs of `width × height` smooth random colour images in `classes` class folders (ImageFolder's layout)."
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % classes:02d}"
        d.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((width, height), Image.BILINEAR)     # photo-like: JPEG compresses it
        img.save(d / f"{i:05d}.jpg", quality=90)


def data_figures(n: int, width: int, height: int, size: int, batch: int, workers: int) -> dict:
    "Images/s of decoding and augmenting `n` JPEGs as mgnet trains ImageNet, with `workers` loader processes."
    from torch.utils.data import DataLoader
    with tempfile.TemporaryDirectory(prefix="mgnet-jpegs-") as tmp:
        make_jpegs(Path(tmp), n, width, height)
        ds = SafeImageFolder(tmp, imagenet_transform(True, size))
        loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                            persistent_workers=workers > 0)
        for _ in loader: break                                   # start the workers; their first batch is not timed
        t, seen = time.perf_counter(), 0
        for xb, _ in loader: seen += len(xb)
        return {"images_per_s": seen / (time.perf_counter() - t), "images": seen, "workers": workers,
                "jpeg_size": [width, height]}


def report(r: dict) -> str:
    L = [f"device: {r['device_name']} ({r['device']}); CPU: {r['cpu']}, {r['cores']} logical cores; torch "
         f"{r['torch']}; batch {r['batch_size']}, {r['img_size']} px, mixed precision ({r['precision']}), "
         f"channels_last; median of {r['steps']} timed steps"]
    for name, m in r["models"].items():
        inf, tr = m["inference"], m["training"]
        L.append(f"== {name}: MGNet (4 glimpses, scale 2.33) at {m['gflops'][-1] / m['baseline_gflops']:.3f} of the "
                 f"baseline's FLOPs")
        L.append(f"  training images/s:  baseline {tr['baseline']:.1f}, MGNet {tr['mgnet']:.1f} "
                 f"({tr['mgnet'] / tr['baseline']:.2f}×; FLOPs promise {m['baseline_gflops'] / m['gflops'][-1]:.2f}×)")
        L.append(f"  inference images/s: baseline {inf['baseline']:.1f}, MGNet "
                 + ", ".join(f"{k} glimpse{'s' * (k > 1)} {inf[f'mgnet_{k}']:.1f}"
                             for k in range(1, len(m["gflops"]) + 1)))
        L.append("  early exit wall/FLOP after 1..4 glimpses: "
                 + " ".join(f"{v:.2f}" for v in m["early_exit_wall_per_flop"]))
    d = r["data"]
    L.append(f"== data: {d['images']} JPEGs of {d['jpeg_size'][0]}×{d['jpeg_size'][1]} decoded and augmented "
             f"(random resized crop, flip, AutoAugment) with {d['workers']} loader processes: "
             f"{d['images_per_s']:.0f} images/s")
    for name, m in r["models"].items():
        for k in ("baseline", "mgnet"):
            need = m["training"][k]
            L.append(f"  {name} {k} trains {need:.0f} images/s: the data pipeline keeps up "
                     f"{d['images_per_s'] / need:.2f}× over" if d["images_per_s"] >= need else
                     f"  {name} {k} trains {need:.0f} images/s: the data pipeline delivers only "
                     f"{d['images_per_s'] / need:.2f} of it (data-bound)")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available, else cpu)")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--steps", type=int, default=10, help="timed steps per figure (median)")
    p.add_argument("--jpegs", type=int, default=3000, help="JPEGs generated for the data pipeline")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader processes (default: every core)")
    p.add_argument("--tiny", action="store_true",
                   help="a smoke run anywhere: 64 px, batch 4, 2 steps, ResNet-18, 24 small JPEGs, 2 workers")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    a = p.parse_args(argv)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available(): p.error(f"--device {a.device}: CUDA is not available")
    for flag in ("batch_size", "steps", "jpegs"):
        if getattr(a, flag) < 1: p.error(f"--{flag}: must be at least 1, got {getattr(a, flag)}")
    size, jpeg = 224, (500, 375)                                 # ImageNet's typical photo
    if a.tiny:
        size, jpeg, a.batch_size, a.steps, a.models, a.jpegs, a.workers = 64, (80, 60), 4, 2, ["resnet18"], 24, 2
    if dev.type == "cuda": torch.backends.cudnn.benchmark = True
    t0 = time.time()
    r = {"device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
         "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "batch_size": a.batch_size,
         "img_size": size, "steps": a.steps, "precision": "float16" if dev.type == "cuda" else "bfloat16",
         "models": {}}
    for name in a.models:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        r["models"][name] = model_figures(name, size, a.batch_size, a.steps, dev)
    print("timing the data pipeline ...", file=sys.stderr, flush=True)
    r["data"] = data_figures(a.jpegs, *jpeg, size, a.batch_size, a.workers)
    r["seconds"] = time.time() - t0
    print(report(r))
    print(f"({r['seconds']:.0f} s)")
    if a.json:
        tmp = Path(a.json).with_suffix(".tmp")
        tmp.write_text(json.dumps(r, indent=1))
        tmp.replace(a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
