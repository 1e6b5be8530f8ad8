#!/usr/bin/env python3
"""How close a digits baseline's training step runs to what this CPU core can compute at all.

    python tools/flop_rate.py [--repeats 15] [--batch_size 64]

One thread. Interleaves a training step of the benchmark's baseline (the digits CNN on 64 px canvases, batch 64,
channels_last, SGD) with a 2048 x 2048 float32 matrix product (the core's practical peak: oneDNN/MKL's best kernel) and
prints the best of each, in GFLOP/s, and their ratio. A training step is counted as three forward passes (forward,
input gradient, weight gradient) of fvcore's count (one multiply-add = 2 FLOPs here). Interleaving makes the ratio hold
on a busy machine, where the seconds do not.

What it is for: the benchmark's wall time is mostly these steps (docs/speed.md, "The benchmark's wall time"); a step
running near the matrix product's rate cannot be made much faster without doing fewer FLOPs.
"""
from __future__ import annotations

import argparse
import os
import time

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=15, help="timed pairs (step, product); the best of each counts")
    p.add_argument("--batch_size", type=int, default=64, help="the benchmark's batch (64)")
    a = p.parse_args(argv)
    from mgnet import MGNetConfig
    from mgnet.bench import cpu_name
    from mgnet.flops import glimpse_gflops
    from mgnet.model import MGNet, baseline_config

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = baseline_config(MGNetConfig(dataset="digits", translate=0.4, n_iter=4, scale=4.0, model="vanilla"))
    model = MGNet(cfg).to(memory_format=torch.channels_last)
    gflop = glimpse_gflops(model.eval(), 64)[-1]           # fvcore: multiply-adds, in billions, one image
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch_size, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch_size,))
    m1, m2 = torch.randn(2048, 2048), torch.randn(2048, 2048)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x).logits[-1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3): step(); m1 @ m2
    steps, products = [], []
    for _ in range(a.repeats):
        t = time.perf_counter(); step(); steps.append(time.perf_counter() - t)
        t = time.perf_counter(); m1 @ m2; products.append(time.perf_counter() - t)
    peak = 2 * 2048**3 / min(products) / 1e9
    rate = 3 * 2 * gflop * a.batch_size / min(steps)
    print(f"CPU: {cpu_name()}; one thread; load average {os.getloadavg()[0]:.2f}")
    print(f"baseline training step (batch {a.batch_size}): best {min(steps) * 1e3:.0f} ms, "
          f"median {sorted(steps)[len(steps) // 2] * 1e3:.0f} ms, {rate:.1f} GFLOP/s")
    print(f"matrix product 2048 x 2048: {peak:.1f} GFLOP/s")
    print(f"the step runs at {rate / peak:.2f} of the matrix product's rate: at most {peak / rate:.2f}x faster "
          f"without fewer FLOPs")


if __name__ == "__main__":
    main()
