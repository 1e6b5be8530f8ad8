"""How far a ConvNeXt-Atto MGNet's float32 outputs are from themselves, from float64 and from onnxruntime, per glimpse.

    python docs/onnx_rounding.py        # prints docs/deploy.md's table (random weights, seed 0, one thread)
"""
import copy
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mgnet import MGNet, MGNetConfig
from mgnet.deploy import export_onnx


def per_glimpse(a, b) -> str:
    "Largest |a - b| of each glimpse's logits."
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(len(a), -1).max(1)
    return " | ".join(f"{v:.1e}" for v in d)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = MGNet(MGNetConfig(model="timm/convnext_atto", n_iter=4, scale=2.0, img_size=64)).eval()
    x = torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, r64, one = m(x).logits, copy.deepcopy(m).double()(x.double()).logits, m(x[:1]).logits
    rows = [("PyTorch float32 against PyTorch float64", per_glimpse(ref, r64)),
            ("PyTorch float32: batch of 1 against batch of 3", per_glimpse(one, ref[:, :1]))]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        export_onnx(m, path, 64)
        for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
            so = ort.SessionOptions()
            so.graph_optimization_level, so.intra_op_num_threads = getattr(ort.GraphOptimizationLevel, level), 1
            got = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(
                ["logits"], {"images": x.numpy()})[0]
            rows.append((f"onnxruntime (`{level}`) against PyTorch", per_glimpse(got, ref)))
        rows.append(("onnxruntime (`ORT_ENABLE_ALL`) against PyTorch float64", per_glimpse(got, r64)))
    print("| compared (largest logit difference) | glimpse 1 | 2 | 3 | 4 |\n|---|---|---|---|---|")
    for name, vals in rows: print(f"| {name} | {vals} |")


if __name__ == "__main__":
    main()
