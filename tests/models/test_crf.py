"""Dense CRF wrapper: shapes, distributions, boundary snapping, missing extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from pydantic import ValidationError

from darkseg.errors import DarksegError
from darkseg.models.ops.crf import CRFConfig, dense_crf, dense_crf_many


def _two_regions(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-region image, its true labels and noisy 3-class probabilities."""
    rng = np.random.default_rng(seed)
    height, width = 32, 40
    image = np.empty((height, width, 3), np.float64)
    image[:, : width // 2] = (40, 60, 80)
    image[:, width // 2 :] = (200, 180, 160)
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((height, width), np.int64)
    truth[:, width // 2 :] = 1
    logits = (truth[None] == np.arange(3)[:, None, None]) + rng.normal(0, 0.9, (3, height, width))
    probs = np.exp(logits)
    return image, truth, (probs / probs.sum(0)).astype(np.float32)


def test_refines_towards_region_boundaries() -> None:
    pytest.importorskip("pydensecrf")
    image, truth, probs = _two_regions()
    refined = dense_crf(image, probs, **CRFConfig().model_dump())
    assert refined.shape == probs.shape and refined.dtype == np.float32
    assert np.all(refined >= 0)
    np.testing.assert_allclose(refined.sum(0), 1.0, atol=1e-5)
    before, after = (probs.argmax(0) == truth).mean(), (refined.argmax(0) == truth).mean()
    assert before < 0.8
    assert after > 0.98 and after > before


def test_single_iteration_and_class_count() -> None:
    pytest.importorskip("pydensecrf")
    image, _, probs = _two_regions(seed=1)
    refined = dense_crf(image, probs[:2] / probs[:2].sum(0), iterations=1)
    assert refined.shape == (2, 32, 40)
    np.testing.assert_allclose(refined.sum(0), 1.0, atol=1e-5)


def _own_crf(image: np.ndarray, probs: np.ndarray, cfg: CRFConfig) -> np.ndarray:
    """One CRF built from scratch with pydensecrf: unary first, then the pairwise terms."""
    from pydensecrf import densecrf
    from pydensecrf.utils import unary_from_softmax

    crf = densecrf.DenseCRF2D(image.shape[1], image.shape[0], probs.shape[0])
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    crf.addPairwiseGaussian(sxy=cfg.gauss_sxy, compat=cfg.gauss_compat)
    crf.addPairwiseBilateral(sxy=cfg.bilateral_sxy, srgb=cfg.bilateral_srgb, rgbim=np.ascontiguousarray(image),
                             compat=cfg.bilateral_compat)
    return np.asarray(crf.inference(cfg.iterations), dtype=np.float32).reshape(probs.shape)


def test_many_shares_the_pairwise_terms_and_equals_separate_crfs() -> None:
    """ASDT's two reliable-label CRFs share one lattice: each result is bit-identical to its own CRF."""
    pytest.importorskip("pydensecrf")
    image, _, probs = _two_regions(seed=2)
    other = np.roll(probs, 1, axis=0) ** 3
    other = (other / other.sum(0)).astype(np.float32)
    cfg = CRFConfig(bilateral_sxy=40.0, bilateral_srgb=9.0)
    many = dense_crf_many(image, [probs, other, probs], **cfg.model_dump())
    assert len(many) == 3
    np.testing.assert_array_equal(many[0], _own_crf(image, probs, cfg))
    np.testing.assert_array_equal(many[1], _own_crf(image, other, cfg))
    np.testing.assert_array_equal(many[2], many[0])  # a later inference does not see an earlier one's state
    assert not np.array_equal(many[0], many[1])
    with pytest.raises(ValueError, match="one shape"):
        dense_crf_many(image, [probs, probs[:2]])


def test_rejects_mismatched_inputs() -> None:
    pytest.importorskip("pydensecrf")
    image, _, probs = _two_regions()
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(image.astype(np.float32), probs)
    with pytest.raises(ValueError, match="probabilities"):
        dense_crf(image, probs[:, :10])


def test_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    image, _, probs = _two_regions()
    with pytest.raises(DarksegError, match=r"pip install 'darkseg\[crf\]'"):
        dense_crf(image, probs)


def test_config_defaults_and_validation() -> None:
    cfg = CRFConfig()
    assert cfg.model_dump() == {
        "iterations": 10,
        "gauss_sxy": 3.0,
        "gauss_compat": 3.0,
        "bilateral_sxy": 80.0,
        "bilateral_srgb": 13.0,
        "bilateral_compat": 10.0,
    }
    with pytest.raises(ValidationError):
        CRFConfig(iterations=0)
    with pytest.raises(ValidationError):
        CRFConfig(unknown=1)
