"""Dense CRF post-processing of SSSS inference (Krähenbühl & Koltun 2011 through pydensecrf2), ssss.md §5."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from darkseg.errors import DarksegError
from darkseg.schema import StrictModel


class CRFConfig(StrictModel):
    """Dense CRF settings; the defaults are SSSS's (ssss.md §5)."""

    iterations: int = Field(10, ge=1)
    gauss_sxy: float = Field(3.0, gt=0)
    gauss_compat: float = Field(3.0, ge=0)
    bilateral_sxy: float = Field(80.0, gt=0)
    bilateral_srgb: float = Field(13.0, gt=0)
    bilateral_compat: float = Field(10.0, ge=0)


CRF_MISSING = "dense CRF needs pydensecrf2: pip install 'darkseg[crf]'"


def require_dense_crf() -> None:
    """Fail before any work when pydensecrf2 is missing: a method whose training needs the CRF checks when built."""
    try:
        from pydensecrf import densecrf, utils  # noqa: F401
    except ImportError:
        raise DarksegError(CRF_MISSING) from None


def dense_crf(
    image: np.ndarray,
    probs: np.ndarray,
    iterations: int = 10,
    gauss_sxy: float = 3,
    gauss_compat: float = 3,
    bilateral_sxy: float = 80,
    bilateral_srgb: float = 13,
    bilateral_compat: float = 10,
) -> np.ndarray:
    """Mean-field dense CRF, unary -log(probs), Gaussian + bilateral pairwise terms, SSSS inference (ssss.md §5)."""
    return dense_crf_many(image, [probs], iterations, gauss_sxy, gauss_compat, bilateral_sxy, bilateral_srgb,
                          bilateral_compat)[0]


def dense_crf_many(
    image: np.ndarray,
    probs: list[np.ndarray],
    iterations: int = 10,
    gauss_sxy: float = 3,
    gauss_compat: float = 3,
    bilateral_sxy: float = 80,
    bilateral_srgb: float = 13,
    bilateral_compat: float = 10,
) -> list[np.ndarray]:
    """:func:`dense_crf` of several same-shape ``probs`` on one image, building the pairwise terms once.

    Each result equals its own :func:`dense_crf` call: pydensecrf's inference starts from the unary alone and the
    pairwise terms depend only on the image and the settings. Building the bilateral lattice is about a third of a
    small CRF's cost (ASDT's two reliable-label CRFs per image share it).
    """
    require_dense_crf()
    from pydensecrf import densecrf
    from pydensecrf.utils import unary_from_softmax

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"dense_crf expects a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    if not probs or any(p.ndim != 3 or p.shape != probs[0].shape or p.shape[1:] != image.shape[:2] for p in probs):
        shapes = [p.shape for p in probs]
        raise ValueError(f"dense_crf expects C x H x W probabilities of one shape for a {image.shape[:2]} image, "
                         f"got {shapes}")
    classes, height, width = probs[0].shape
    crf = densecrf.DenseCRF2D(width, height, classes)
    crf.addPairwiseGaussian(sxy=gauss_sxy, compat=gauss_compat)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=np.ascontiguousarray(image), compat=bilateral_compat
    )
    out = []
    for p in probs:
        crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(p.astype(np.float32, copy=False))))
        out.append(np.asarray(crf.inference(iterations), dtype=np.float32).reshape(classes, height, width))
    return out
