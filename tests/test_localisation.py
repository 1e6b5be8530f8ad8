"""Localisation scores, the zero-initialised head, fixed data across seeds, position-aware options (CPU, seconds)."""
import pytest
import torch

from mgnet import MGNet, MGNetConfig
from mgnet.canvases import TranslatedDigits
from mgnet.datamodule import MGNetData
from mgnet.geometry import pixel_to_norm
from mgnet.localisation import box_centre, dataset_localisation, glimpse_iou, localisation_stats, object_boxes
from mgnet.train import data_config


def _on(boxes, size):
    """Glimpse parameters exactly on each box (its centre, its larger side)."""
    c = box_centre(boxes) - 0.5                      # pixel-edge frame -> pixel-centre frame
    half = (boxes[:, 2:] - boxes[:, :2]).max(1).values / 2
    return torch.stack([half / ((size - 1) / 2), pixel_to_norm(c[:, 0], size), pixel_to_norm(c[:, 1], size)], 1)


def test_scores_tell_a_glimpse_on_the_object_from_one_beside_it():
    ds = TranslatedDigits(train=False, translate=1.0, seed=0)
    b = object_boxes(ds)
    on = _on(b, 64)
    away = on.clone(); away[:, 1:] = -on[:, 1:]      # mirrored through the centre: off the digit for most images
    s = localisation_stats(torch.stack([torch.tensor([1.0, 0, 0]).expand_as(on), on, away]), b, 64)
    assert s["centre_distance_px"][1] < 1e-3 and s["glimpse_cover"][1] > 0.999
    assert s["glimpse_iou"][1] > 0.7 > s["glimpse_iou"][2] and s["glimpse_iou"][0] < 0.2
    assert s["centre_distance_px"][2] > s["still_distance_px"] > 5


@pytest.mark.parametrize("seed", [3, 1])
def test_zero_init_starts_every_later_glimpse_at_the_centre(seed):
    ds = TranslatedDigits(train=False, translate=0.4, seed=0)
    torch.manual_seed(seed); orig = MGNet(n_iter=2, scale=4.0)
    torch.manual_seed(seed); zero = MGNet(n_iter=2, scale=4.0, loc_init="zero")
    lo, lz = dataset_localisation(orig, ds), dataset_localisation(zero, ds)
    assert abs(lz["centre_distance_px"][1] - lz["still_distance_px"]) < 1e-3       # at the centre
    assert lz["glimpse_iou"][1] > 0.3 > lo["glimpse_iou"][1]                        # these seeds start off the digit
    assert torch.equal(orig.backbone.conv1.weight, zero.backbone.conv1.weight)     # the rest starts the same


def test_data_seed_keeps_the_images_across_training_seeds():
    boxes = lambda c: object_boxes(MGNetData(data_config(c.resolved())).val_ds)
    assert torch.equal(boxes(MGNetConfig(seed=3, data_seed=0)), boxes(MGNetConfig(seed=0)))
    assert not torch.equal(boxes(MGNetConfig(seed=3)), boxes(MGNetConfig(seed=0)))


def test_per_image_iou():
    ds = TranslatedDigits(train=False, translate=0.4, seed=0)
    x = torch.stack([ds[i][0] for i in range(5)])
    m = MGNet(n_iter=3, scale=4.0, loc_init="zero")
    iou = glimpse_iou(m, x, object_boxes(ds)[:5])
    assert iou.shape == (3, 5) and bool((iou[1] > iou[0]).all())


def test_position_aware_options_are_off_by_default_and_change_the_model_when_on():
    cfg = MGNetConfig()
    assert (cfg.loc_init, cfg.keypoints, cfg.loc_anchor, cfg.anchor_map, cfg.data_seed) == ("kaiming", 0, False,
                                                                                            "soft-argmax", None)
    torch.manual_seed(0); a = MGNet(n_iter=2)
    torch.manual_seed(0); b = MGNet(n_iter=2, keypoints=2, loc_anchor=True)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad(): assert not torch.allclose(a(x).logits, b(x).logits)
    with pytest.raises(Exception, match="--loc_anchor"): MGNetConfig(loc_anchor=True).validate()
    for removed in ("coord_channels", "anchor_offset", "loc_lr", "s_warmup"):     # measured, did not work: removed
        with pytest.raises(Exception, match=f"--{removed}: was removed"): MGNetConfig(**{removed: 1})
