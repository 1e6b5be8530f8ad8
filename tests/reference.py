"""An independent, deliberately plain re-statement of the original MGNet forward pass (docs/method.md §1), used by the
tests to check that mgnet computes the same function from the same weights.

It works from a raw state dict with explicit tensor algebra: attention over *all* tokens with *every* query (the
original recomputed the whole sequence at each step), the glimpse grid built by hand, no mgnet code.
"""
import math

import torch
import torch.nn.functional as F
import torchvision


def _vanilla(W):
    """The original's small CNN for digits, in its own order: convolution, ReLU, then 2x2 max-pooling."""
    def f(x):
        for i, pad in ((1, 0), (2, 2), (3, 1)):
            x = F.max_pool2d(F.relu(F.conv2d(x, W[f"conv{i}.weight"], W[f"conv{i}.bias"], padding=pad)), 2)
        x = F.relu(F.conv2d(x, W["conv4.weight"], W["conv4.bias"], padding=1))
        return x.mean((2, 3))
    return f


def _backbone(name, sd, in_chans):
    if name == "vanilla":
        return _vanilla({k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")})
    if name != "resnet18":
        raise NotImplementedError(name)
    m = torchvision.models.resnet18()
    m.fc = torch.nn.Identity()
    if in_chans != 3:
        m.conv1 = torch.nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    m.load_state_dict({k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")})
    return m.eval()


def _glimpse(img, a, size):
    s, tx, ty = a[:, 0], a[:, 1], a[:, 2]
    lin = torch.linspace(-1, 1, size)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    x = s[:, None, None] * gx + tx[:, None, None]
    y = s[:, None, None] * gy + ty[:, None, None]
    return F.grid_sample(img, torch.stack([x, y], -1), align_corners=True)


def reference_forward(sd, hp, img):
    """Per-glimpse logits (T, B, K) and glimpse parameters (T, B, 3) as the original computes them."""
    T, scale = hp["n_iter"], hp["scale"]
    lo, hi, method = hp.get("scale_min", 0.2), hp.get("scale_max", 0.5), hp.get("trans_method", "tight-crop")
    W = {k[len("model."):] if k.startswith("model.") else k: v for k, v in sd.items()}
    f = _backbone(hp["model"], W, img.size(1))
    E = W["feat_fusion.norm.weight"].numel()
    size = int(img.size(2) // scale)
    a = torch.tensor([1.0, 0.0, 0.0]).repeat(img.size(0), 1)
    feats, params, logits = [], [], []
    for _ in range(T):
        feats.append(f(_glimpse(img, a, size)))
        params.append(a)
        z = torch.cat([torch.stack(feats), torch.stack(params)], 2)         # (t, B, E)
        q, k, v = (z @ W["feat_fusion.mha.in_proj_weight"][i * E:(i + 1) * E].T
                   + W["feat_fusion.mha.in_proj_bias"][i * E:(i + 1) * E]
                   for i in range(3))
        att = torch.softmax(torch.einsum("tbe,sbe->bts", q, k) / math.sqrt(E), -1)
        o = (torch.einsum("bts,sbe->tbe", att, v) @ W["feat_fusion.mha.out_proj.weight"].T
             + W["feat_fusion.mha.out_proj.bias"])
        o = F.layer_norm(o, (E,), W["feat_fusion.norm.weight"], W["feat_fusion.norm.bias"])[-1].relu()
        logits.append(o @ W["global_fc.fc.weight"].T + W["global_fc.fc.bias"])
        u = torch.sigmoid(o @ W["loc_network.fc.weight"].T + W["loc_network.fc.bias"])
        s = u[:, :1] * (hi - lo) + lo
        t = u[:, 1:]
        if method == "tight-crop":
            t = 2 * (t - 0.5) * (1 - s)
        elif method == "center-invariant":
            t = 2 * (t - 0.5) * (1 / lo - 1) * s
        else:
            t = t * 2 * (1 - lo) - (1 - lo)
        a = torch.cat([s, t], 1)
    return torch.stack(logits), torch.stack(params)
