"""The CAM protocol's threshold sweep (engine/cam_sweep.py): all thresholds at once equal one pseudo mask and one
confusion matrix per threshold."""

import pytest
import torch

from darkseg.engine.cam_sweep import pseudo_mask, threshold_confusions
from darkseg.metrics import IGNORE_INDEX, ConfusionMatrix


@pytest.mark.parametrize("seed", [0, 1])
def test_threshold_confusions_equal_one_pseudo_mask_per_threshold(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    fg = torch.rand(3, 9, 11, generator=g)
    fg[:, :2] = torch.round(fg[:, :2] * 10) / 10  # map values equal to thresholds: background wins the tie
    fg[1, 4, :3] = fg[2, 4, :3]  # class ties: the first class wins
    fg[:, 6] = 0.0  # all-zero pixels
    mask = torch.randint(0, 4, (9, 11), generator=g)
    mask[0, :4] = IGNORE_INDEX
    thresholds = [0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.95]
    got = threshold_confusions(fg, mask, torch.tensor(thresholds))
    assert got.shape == (len(thresholds), 4, 4)
    for i, t in enumerate(thresholds):
        cm = ConfusionMatrix(4)
        cm.update(pseudo_mask(fg, t), mask)
        assert torch.equal(got[i], cm.mat), t


def test_threshold_confusions_refuse_labels_outside_the_classes() -> None:
    with pytest.raises(ValueError, match="outside"):
        threshold_confusions(torch.rand(2, 3, 3), torch.full((3, 3), 5), torch.tensor([0.5]))
