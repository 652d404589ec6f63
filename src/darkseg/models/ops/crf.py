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
    try:
        from pydensecrf import densecrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError:
        raise DarksegError(CRF_MISSING) from None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"dense_crf expects a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"dense_crf expects C x H x W probabilities for a {image.shape[:2]} image, got {probs.shape}")
    classes, height, width = probs.shape
    crf = densecrf.DenseCRF2D(width, height, classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs.astype(np.float32, copy=False))))
    crf.addPairwiseGaussian(sxy=gauss_sxy, compat=gauss_compat)
    crf.addPairwiseBilateral(
        sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=np.ascontiguousarray(image), compat=bilateral_compat
    )
    return np.asarray(crf.inference(iterations), dtype=np.float32).reshape(classes, height, width)
