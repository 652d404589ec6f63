"""KD distances against independent NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darkseg.distill.losses import dist_loss, kd_distance, kl_loss, mse_loss


def _softmax(z: np.ndarray, tau: float) -> np.ndarray:
    e = np.exp((z - z.max(axis=1, keepdims=True)) / tau)
    return e / e.sum(axis=1, keepdims=True)


def _as_rows(x: torch.Tensor) -> np.ndarray:
    a = x.detach().double().numpy()
    return a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1]) if a.ndim == 4 else a


def _dist_np(s: np.ndarray, t: np.ndarray, beta: float, gamma: float, tau: float) -> float:
    ys, yt = _softmax(s, tau), _softmax(t, tau)
    inter = 1 - np.mean([np.corrcoef(ys[i], yt[i])[0, 1] for i in range(len(ys))])
    intra = 1 - np.mean([np.corrcoef(ys[:, c], yt[:, c])[0, 1] for c in range(ys.shape[1])])
    return tau**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize("shape", [(40, 7), (2, 5, 3, 4)])
@pytest.mark.parametrize(("beta", "gamma", "tau"), [(1.0, 1.0, 1.0), (2.0, 0.5, 4.0)])
def test_dist_matches_numpy_corrcoef(shape, beta, gamma, tau):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g) * 3
    expected = _dist_np(_as_rows(s), _as_rows(t), beta, gamma, tau)
    assert dist_loss(s, t, beta=beta, gamma=gamma, tau=tau).item() == pytest.approx(expected, rel=1e-5)


def test_dist_of_identical_inputs_is_zero_and_of_independent_inputs_about_two():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 16, 16, generator=g)
    assert dist_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert dist_loss(x, torch.randn(x.shape, generator=g)).item() == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("tau", [1.0, 2.5])
def test_kl_matches_numpy(tau):
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(2, 6, 3, 5, generator=g), torch.randn(2, 6, 3, 5, generator=g)
    ps, pt = _softmax(_as_rows(s), tau), _softmax(_as_rows(t), tau)
    expected = tau**2 * np.sum(pt * (np.log(pt) - np.log(ps))) / ps.shape[0]
    assert kl_loss(s, t, tau=tau).item() == pytest.approx(expected, rel=1e-5)


def test_mse_matches_numpy():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    assert mse_loss(s, t).item() == pytest.approx(float(np.mean((s.numpy() - t.numpy()) ** 2)), rel=1e-6)


@pytest.mark.parametrize("name", ["dist", "kl", "mse"])
def test_teacher_is_detached_and_student_gets_gradients(name):
    s = torch.randn(2, 5, 4, 4, requires_grad=True)
    t = torch.randn(2, 5, 4, 4, requires_grad=True)
    kd_distance(name, s, t, tau=2.0).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_shape_mismatch_and_unknown_name_raise():
    with pytest.raises(ValueError, match="shapes differ"):
        dist_loss(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="allowed: dist, kl, mse"):
        kd_distance("l1", torch.randn(4, 3), torch.randn(4, 3))
