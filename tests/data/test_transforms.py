"""Paired augmentation: views stay aligned, padding values, per-seed determinism, flips, jitter on images only."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from darkseg.data.transforms import AugmentConfig, EvalTransform, JitterConfig, PairedTransform

H, W = 48, 64
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def coordinate_sample() -> dict:
    """Image R = 4x, G = 5y; depth = x / 63; mask = 8×8 block index: every view encodes its source coordinates."""
    y, x = np.mgrid[0:H, 0:W]
    image = np.stack([4 * x, 5 * y, np.zeros_like(x)], -1).astype(np.uint8)
    return {
        "id": "a",
        "image": image,
        "dark": image // 4,
        "depth": (x / (W - 1)).astype(np.float32),
        "mask": (x // 8 + 8 * (y // 8)).astype(np.uint8),
        "labels": np.array([1.0, 0.0], np.float32),
    }


def run(seed: int, **cfg) -> dict:
    return PairedTransform(AugmentConfig(**cfg), MEAN, STD)(coordinate_sample(), np.random.default_rng(seed))


@pytest.mark.parametrize("scale", [(0.6, 0.6), (1.5, 1.5), (0.7, 1.3)])
def test_views_stay_aligned(scale: tuple[float, float]):
    flips = set()
    for seed in range(6):
        out = run(seed, crop_size=40, scale_mode="relative", scale_range=scale, image_interp="bilinear")
        valid = out["mask"].numpy() != 255
        x_img = out["image"][0].numpy() * 255 / 4
        y_img = out["image"][1].numpy() * 255 / 5
        x_depth = out["depth"][0].numpy() * (W - 1)
        assert np.abs(x_img - x_depth)[valid].max() < 0.2
        np.testing.assert_allclose(out["dark"].numpy()[:, valid], (out["image"].numpy() * 255 // 4 / 255)[:, valid],
                                   atol=1.5 / 255)  # fmt: skip
        sure = valid & (np.abs(x_img - np.round(x_img)) < 0.35) & (np.abs(y_img - np.round(y_img)) < 0.35)
        expected = np.round(x_img).astype(int) // 8 + 8 * (np.round(y_img).astype(int) // 8)
        assert sure.sum() > 100 and (out["mask"].numpy()[sure] == expected[sure]).all()
        row = x_img[0][valid[0]]
        flips.add(bool(row[-1] < row[0]))
    assert flips == {True, False}


def test_output_contract_and_padding():
    sample = {k: (v[:20, :30] if k not in ("id", "labels") else v) for k, v in coordinate_sample().items()}
    t = PairedTransform(AugmentConfig(crop_size=40, scale_mode="relative", scale_range=(1, 1)), MEAN, STD)
    out = t(sample, np.random.default_rng(0))
    assert out["id"] == "a" and out["labels"].dtype == torch.float32
    assert out["image"].shape == out["dark"].shape == (3, 40, 40) and out["image"].dtype == torch.float32
    assert out["depth"].shape == (1, 40, 40) and out["mask"].shape == (40, 40) and out["mask"].dtype == torch.int64
    assert 0 <= out["image"].min() and out["image"].max() <= 1
    pad = np.ones((40, 40), bool)
    pad[:20, :30] = False
    assert (out["mask"].numpy()[pad] == 255).all() and (out["mask"].numpy()[~pad] != 255).all()
    assert (out["depth"][0].numpy()[pad] == 0).all()
    normalised = (out["image"] - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert normalised[:, torch.from_numpy(pad)].abs().max() < 1e-6  # padding is 0 after normalisation


def test_long_side_mode():
    out = run(0, crop_size=64, long_side=(32, 32), flip=False)
    assert (out["mask"][:24, :32] != 255).all() and (out["mask"][24:] == 255).all()
    assert (out["mask"][:, 32:] == 255).all()


def test_determinism_per_seed():
    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(a[k], b[k]) for k in ("image", "dark", "depth", "mask"))
    assert not torch.equal(a["image"], c["image"])


def test_jitter_only_on_images_with_shared_parameters():
    cfg = dict(crop_size=40, scale_mode="relative", scale_range=(0.8, 1.2))
    plain, jittered = run(5, **cfg), run(5, jitter=JitterConfig(), **cfg)
    assert torch.equal(plain["mask"], jittered["mask"]) and torch.equal(plain["depth"], jittered["depth"])
    assert not torch.equal(plain["image"], jittered["image"])
    sample = coordinate_sample()
    sample["dark"] = sample["image"].copy()
    out = PairedTransform(AugmentConfig(jitter=JitterConfig(), **cfg), MEAN, STD)(sample, np.random.default_rng(1))
    assert torch.equal(out["image"], out["dark"])
    never = run(5, jitter=JitterConfig(p=0.0), **cfg)
    assert torch.equal(plain["image"], never["image"])


def test_eval_transform():
    sample = coordinate_sample()
    out = EvalTransform()(sample)
    assert out["image"].shape == (3, H, W) and torch.equal(out["mask"], torch.from_numpy(sample["mask"]).long())
    assert torch.allclose(out["image"] * 255, torch.from_numpy(sample["image"]).permute(2, 0, 1).float())
    small = EvalTransform(long_side=32)(sample, np.random.default_rng(0))
    assert small["image"].shape == (3, 24, 32) and small["depth"].shape == (1, 24, 32)
    assert small["mask"].shape == (24, 32) and small["mask"].dtype == torch.int64


def test_config_validation():
    with pytest.raises(ValidationError):
        AugmentConfig(long_side=(640, 320))
    with pytest.raises(ValidationError):
        AugmentConfig(crop=321)
    with pytest.raises(ValueError):
        PairedTransform(AugmentConfig(), MEAN, (0.2, 0.0, 0.2))
