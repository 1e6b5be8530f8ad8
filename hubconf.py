"""torch.hub entry point: `torch.hub.load(REPO_DIR, "mgnet", source="local", weights=DIR)`.

`weights` is a weights folder (config.json, model.safetensors, README.md: as `mgnet export` or `save_pretrained` write
it); without it, a new MGNet is built from keyword arguments (any `MGNetConfig` field). The mgnet package must be
installed (`pip install -e .` in the repository).
"""
dependencies = ["torch", "torchvision", "safetensors", "timm", "huggingface_hub"]


def mgnet(weights=None, **kwargs):
    """A Multi-Glimpse Network: the one saved in the weights folder `weights`, or a new one configured by `kwargs`."""
    from mgnet.model import MGNet

    if weights is not None:
        return MGNet.from_pretrained(weights, **kwargs)
    return MGNet(**kwargs)
