"""The static loss of DANIA (Eq. 1-2, 9-13) against direct NumPy computations on small examples."""

from __future__ import annotations

import math

import numpy as np
import torch

from darkseg.methods.static_loss import (
    FusionConfig,
    StaticLossConfig,
    class_weights,
    fuse_predictions,
    neighbourhood_focal_loss,
    pseudo_labels,
    static_loss,
)


def _focal_loop(prob: np.ndarray, labels: np.ndarray, gamma: float, w: np.ndarray | None, size: int) -> float:
    """Direct loop: for each pixel with a valid label, best weighted probability among its neighbours' labels."""
    b, c, h, wd = prob.shape
    r = size // 2
    total, count = 0.0, 0
    for n in range(b):
        for i in range(h):
            for j in range(wd):
                if labels[n, i, j] == 255:
                    continue
                cands = {int(labels[n, y, x]) for y in range(max(0, i - r), min(h, i + r + 1))
                         for x in range(max(0, j - r), min(wd, j + r + 1)) if labels[n, y, x] != 255}
                q = max(prob[n, k, i, j] * (1.0 if w is None else w[k]) for k in cands)
                q = min(max(q, 1e-7), 1 - 1e-7)
                total += -((1 - q) ** gamma) * math.log(q)
                count += 1
    return total / max(count, 1)


def test_neighbourhood_focal_matches_loop():
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(2, 4, 6, 7, generator=g).softmax(1).double()
    labels = torch.randint(0, 4, (2, 6, 7), generator=g)
    labels[torch.rand(2, 6, 7, generator=g) < 0.3] = 255
    w = torch.tensor([0.9, 1.1, 1.0, 1.2], dtype=torch.float64)
    for gamma, weights, size in [(1.0, w, 3), (0.0, None, 3), (2.0, w, 1), (1.0, None, 5)]:
        got = neighbourhood_focal_loss(prob, labels, gamma, weights, size).item()
        ref = _focal_loop(prob.numpy(), labels.numpy(), gamma, None if weights is None else weights.numpy(), size)
        assert math.isclose(got, ref, rel_tol=1e-9), (gamma, size, got, ref)


def test_neighbourhood_helps_misaligned_label_and_keeps_labels():
    # A one-pixel shift of the label: the 3×3 region still finds the night's class, the plain focal loss does not.
    prob = torch.full((1, 2, 5, 5), 0.05)
    prob[:, 0, :, :2] = 0.95
    prob[:, 1, :, 2:] = 0.95
    prob = prob / prob.sum(1, keepdim=True)
    labels = torch.ones(1, 5, 5, dtype=torch.long)
    labels[:, :, :3] = 0  # boundary one column to the right of the prediction's
    before = labels.clone()
    local = neighbourhood_focal_loss(prob, labels, 1.0, None, 3)
    plain = neighbourhood_focal_loss(prob, labels, 1.0, None, 1)
    assert local < plain
    assert torch.equal(labels, before)


def test_no_valid_pixel_gives_zero_with_graph():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = neighbourhood_focal_loss(logits.softmax(1), torch.full((1, 4, 4), 255), 1.0, None, 3)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_class_weights_eq_1_2():
    f = np.array([0.5, 0.3, 0.15, 0.05])
    w0 = -np.log(f)
    ref = (w0 - w0.mean()) / w0.std(ddof=1) * 0.1 + 1.0
    np.testing.assert_allclose(class_weights(f, 0.1).numpy(), ref, rtol=1e-6)
    assert class_weights(f, 0.1)[3] > class_weights(f, 0.1)[0]  # rarer class gets the larger weight


def test_fusion_eq_10_11():
    day = torch.tensor([[0.5, 0.3, 0.2]]).view(1, 3, 1, 1)
    night = torch.tensor([[0.1, 0.1, 0.8]]).view(1, 3, 1, 1)
    fused = fuse_predictions(day, night, FusionConfig()).flatten().tolist()
    ref = [0.8 * 0.5 + 0.2 * 0.1, 0.6 * 0.3 + 0.4 * 0.1, 0.6 * 0.2 + 0.4 * 0.8]
    np.testing.assert_allclose(fused, ref, rtol=1e-6)
    assert torch.equal(fuse_predictions(day, night, FusionConfig(enabled=False)), day)


def test_pseudo_labels_dynamic_and_holes_ignored():
    fused = torch.zeros(1, 4, 1, 3)
    fused[0, 0, 0, 0] = 1  # static class 0
    fused[0, 3, 0, 1] = 1  # dynamic class 3
    fused[0, 2, 0, 2] = 1  # static class 2, but a hole
    valid = torch.tensor([[[True, True, False]]])
    labels = pseudo_labels(fused, valid, [0, 1, 2], None)
    assert labels.tolist() == [[[0, 255, 255]]]
    # re-weighting can flip the argmax toward a rarer class
    fused = torch.tensor([0.5, 0.48, 0.0, 0.02]).view(1, 4, 1, 1)
    w = torch.tensor([0.9, 1.1, 1.0, 1.0])
    assert pseudo_labels(fused, torch.ones(1, 1, 1, dtype=torch.bool), [0, 1, 2], w).item() == 1


def test_static_loss_warps_day_prediction_and_ignores_holes():
    # Day view = night view shifted by 2 columns; the flow undoes it. Day predicts class 1 on the left half.
    g = torch.Generator().manual_seed(1)
    h, w = 6, 8
    day = torch.full((1, 3, h, w), -5.0)
    day[:, 1, :, : w // 2 + 2] = 5.0
    day[:, 0, :, w // 2 + 2:] = 5.0
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0] = 2.0  # night pixel x shows day pixel x + 2
    night = torch.randn(1, 3, h, w, generator=g, requires_grad=True)
    cfg = StaticLossConfig(fusion=FusionConfig(enabled=False), reweight_labels=False, reweight_prediction=False)
    loss, labels = static_loss(night, day, [0, 1], None, cfg, flow=flow)
    assert (labels[0, :, : w // 2] == 1).all() and (labels[0, :, w // 2: w - 2] == 0).all()
    assert (labels[0, :, w - 2:] == 255).all()  # outside the day image: holes
    ref = neighbourhood_focal_loss(night[:, :2].softmax(1), labels, 1.0, None, 3)
    assert torch.allclose(loss, ref)
    loss.backward()
    assert night.grad[:, 2].abs().sum() == 0  # only static channels get gradient
    # identity warp (DANNet): day labels taken as they are
    _, labels_id = static_loss(night, day, [0, 1], None, cfg)
    assert (labels_id[0, :, : w // 2 + 2] == 1).all()


def test_static_loss_nan_flow_pair_excluded():
    night = torch.randn(2, 3, 4, 4)
    flow = torch.zeros(2, 2, 4, 4)
    flow[1] = float("nan")  # a pair without a usable alignment
    _, labels = static_loss(night, torch.randn(2, 3, 2, 2), [0, 1], None, StaticLossConfig(), flow=flow)
    assert (labels[1] == 255).all() and (labels[0] != 255).any()
