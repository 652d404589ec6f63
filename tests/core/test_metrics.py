"""Metrics against an independent per-class NumPy computation on random data."""

import math

import numpy as np
import pytest
import torch

from darkseg.metrics import ConfusionMatrix, segmentation_metrics


def reference(pred: np.ndarray, gt: np.ndarray, c: int) -> tuple[float, float, float, list[float]]:
    valid = gt != 255
    p, g = pred[valid], gt[valid]
    ious, accs = [], []
    for k in range(c):
        inter = np.sum((p == k) & (g == k))
        union = np.sum((p == k) | (g == k))
        ious.append(inter / union if union else math.nan)
        accs.append(inter / np.sum(g == k) if np.sum(g == k) else math.nan)
    return 100 * np.nanmean(ious), 100 * np.mean(p == g), 100 * np.nanmean(accs), [100 * v for v in ious]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    c = 6
    gt = rng.integers(0, c, size=(5, 17, 23))
    gt[rng.random(gt.shape) < 0.1] = 255
    gt[gt == 4] = 3  # class 4 absent from the ground truth ...
    pred = rng.integers(0, c, size=gt.shape)
    pred[pred == 5] = 0  # ... class 5 absent from the prediction
    cm = ConfusionMatrix(c)
    for i in range(len(gt)):  # accumulated over several updates
        cm.update(torch.from_numpy(pred[i]), torch.from_numpy(gt[i]))
    m = cm.compute()
    miou, pixacc, macc, ious = reference(pred, gt, c)
    assert m.miou == pytest.approx(miou)
    assert m.pixacc == pytest.approx(pixacc)
    assert m.mean_acc == pytest.approx(macc)
    assert list(m.iou.values()) == pytest.approx(ious, nan_ok=True)


def test_class_absent_everywhere_is_nan_and_excluded():
    mat = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]])
    m = segmentation_metrics(mat, ("bg", "a", "b"))
    assert math.isnan(m.iou["b"])
    assert m.miou == pytest.approx(100 * np.mean([5 / 8, 7 / 10]))
    assert "n/a" in m.table()


def test_ignore_and_bad_labels():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 2]), torch.tensor([255, 1, 2]))
    assert int(cm.mat.sum()) == 2
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.tensor([0]), torch.tensor([7]))
    with pytest.raises(ValueError, match="predicted label outside"):
        cm.update(torch.tensor([0, 3]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="ground-truth label outside"):
        cm.update(torch.tensor([0, 0]), torch.tensor([1, -1]))
    cm.update(torch.tensor([9, -4]), torch.tensor([255, 255]))  # ignored pixels are not checked
    cm.update(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    assert int(cm.mat.sum()) == 2


@pytest.mark.parametrize("seed", [0, 1])
def test_target_offsets_give_the_counts_of_update(seed):
    """The search's path (ground truth prepared once, many predictions) counts as ``update`` does, ignores included."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 5, (3, 7, 9), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.2] = 255
    one, many = ConfusionMatrix(5), ConfusionMatrix(5)
    offsets = many.target_offsets(target)
    for _ in range(3):
        pred = torch.randint(0, 5, target.shape, generator=g)
        one.update(pred, target)
        many.update_from_offsets(pred, offsets)
    assert torch.equal(one.mat, many.mat) and int(many.mat.sum()) == 3 * int((target != 255).sum())


def test_target_offsets_refuse_bad_labels():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="ground-truth label outside"):
        cm.target_offsets(torch.tensor([0, 3]))
    offsets = cm.target_offsets(torch.tensor([255, 1]))
    for bad in ([0, 3], [-1, 0]):  # every predicted label is checked, an ignored pixel's too
        with pytest.raises(ValueError, match="predicted label outside"):
            cm.update_from_offsets(torch.tensor(bad), offsets)
    with pytest.raises(ValueError, match="predicted pixels"):
        cm.update_from_offsets(torch.tensor([0]), offsets)
    assert int(cm.mat.sum()) == 0
