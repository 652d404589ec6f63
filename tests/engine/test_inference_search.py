"""Inference thresholds chosen on a validation split: the grid, the choice, and the refusal to choose on test."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from darkseg.engine.config import InferenceConfig, InferenceSearchConfig
from darkseg.engine.evaluator import evaluate
from darkseg.engine.inference import filter_classes, labels_from_probs, predict_probs
from darkseg.engine.inference_search import candidates, grid_labels, search_inference


class _Net(nn.Module):
    """Masks and class scores that depend on the image, so every threshold changes some predictions."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.cls = nn.Linear(3, 3)
        self.register_buffer("mean", torch.full((3,), 0.5))

    def forward(self, x):
        return {"masks": F.softmax(self.conv(x), 1), "cls": 3 * self.cls(x.mean((2, 3)))}


class _Split:
    class_names = ("background", "a", "b", "c")

    def __init__(self, seed: int, n: int = 10) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 16, 16, generator=g)  # a multiple of 8: no padding
        self.y = torch.randint(0, 4, (n, 16, 16), generator=g)
        self.y[:, :4] = 0  # a background band, so the background power matters

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "mask": self.y[i], "labels": torch.ones(3)}


def _reference_probs(model, image, cfg):
    """The documented procedure (ssss.md §5) computed version by version: filter each version, average, bg power."""
    versions = []
    for s in cfg.scales:
        size = (round(image.shape[-2] * s), round(image.shape[-1] * s))
        y = F.interpolate(image, size=size, mode="bicubic", align_corners=False) if s != 1 else image
        versions += [(y, False), (y.flip(-1), True)] if cfg.flip else [(y, False)]
    outs = [model(v.clamp(0, 1)) for v, _ in versions]
    score = torch.stack([torch.sigmoid(o["cls"]) for o in outs]).amax(0)
    keep = torch.cat([torch.ones(len(image), 1), (score > cfg.score_cut).float()], 1)[:, :, None, None]
    total = 0
    for (v, flipped), o in zip(versions, outs):
        m = F.interpolate(o["masks"], size=image.shape[-2:], mode="bilinear", align_corners=False)
        total = total + (m.flip(-1) if flipped else m) * keep
    total = total / len(versions)
    total[:, 0] = total[:, 0] ** cfg.bg_pow
    return total


def test_predict_probs_matches_the_version_by_version_procedure():
    model, x = _Net().eval(), _Split(1).x[:4]
    cfg = InferenceConfig(scales=[1.0], flip=True, class_filter="pred", score_cut=0.4, bg_pow=2.0)
    with torch.no_grad():
        assert torch.allclose(predict_probs(model, x, cfg), _reference_probs(model, x, cfg), atol=1e-6)


def test_grid_covers_every_filter_and_power():
    search = InferenceSearchConfig(score_cuts=[0.1, 0.3], no_filter=True, bg_pows=[1.0, 2.0])
    grid = [(c.class_filter, c.score_cut, c.bg_pow) for c in candidates(InferenceConfig(score_cut=0.2), search)]
    assert grid == [("pred", 0.1, 1.0), ("pred", 0.1, 2.0), ("pred", 0.3, 1.0), ("pred", 0.3, 2.0),
                    ("none", 0.2, 1.0), ("none", 0.2, 2.0)]
    gt = candidates(InferenceConfig(class_filter="gt"), search)
    assert [(c.class_filter, c.bg_pow) for c in gt] == [("gt", 1.0), ("gt", 2.0)]


def test_search_scores_each_setting_as_a_full_evaluation_and_keeps_the_best():
    model, val = _Net().eval(), _Split(2)
    base = InferenceConfig(flip=True, batch_size=4)
    search = InferenceSearchConfig(score_cuts=[0.2, 0.5, 0.8], bg_pows=[0.5, 1.0, 3.0])
    chosen, scored = search_inference(model, val, "image", base, search, torch.device("cpu"))
    reference = [evaluate(model, val, "image", cand, torch.device("cpu"), progress=False).miou
                 for cand, _ in scored]
    assert [m for _, m in scored] == pytest.approx(reference, abs=1e-9)
    assert len(set(round(m, 6) for m in reference)) > 3  # the grid really changes the predictions
    best = max(range(len(reference)), key=reference.__getitem__)
    assert chosen == scored[best][0]


@pytest.mark.parametrize("class_filter", ["pred", "none", "gt"])
def test_grid_labels_equal_the_argmax_of_every_filtered_setting(class_filter):
    """The search's shortcut (one foreground max per class filter) against the full argmax of each setting, with
    ties (quarter steps), all-zero pixels, NaN in the background and in a foreground channel, and a cut that keeps
    no class."""
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(3, 5, 8, 8, generator=g) * 4).round() / 4
    masks[2, :, 3, 3] = 0
    masks[0, 0, 0, 0] = float("nan")
    masks[1, 2, 0, 1] = float("nan")
    scores, labels = torch.rand(3, 4, generator=g), (torch.rand(3, 4, generator=g) > 0.5).float()
    search = InferenceSearchConfig(score_cuts=[0.0, 0.3, 0.7, 1.0], bg_pows=[0.25, 1.0, 2.0])
    grid = candidates(InferenceConfig(class_filter=class_filter), search)
    fast = list(grid_labels(masks, scores, grid, labels))
    assert len(fast) == len(grid)
    for setting, pred in zip(grid, fast):
        reference = labels_from_probs(filter_classes(masks, scores, setting, labels), None, setting)
        assert torch.equal(pred, reference), (setting.class_filter, setting.score_cut, setting.bg_pow)
    assert len({tuple(p.flatten().tolist()) for p in fast}) >= 3  # the settings really differ


def test_grid_labels_refuse_crf_settings():
    setting = InferenceConfig(crf={})
    with pytest.raises(ValueError, match="CRF"):
        next(grid_labels(torch.rand(1, 3, 4, 4), torch.rand(1, 2), [setting]))
