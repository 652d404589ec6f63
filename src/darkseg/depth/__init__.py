"""Monocular depth priors for DGF2: transformers depth models and the ``darkseg depth`` tree writer.

``transformers`` is imported only when a :class:`DepthEstimator` is built (optional extra ``darkseg[depth]``).
"""

from darkseg.depth.estimators import DEPTH_MODELS, DepthEstimator, DepthModelSpec
from darkseg.depth.run import TreeSummary, estimate_tree

__all__ = ["DEPTH_MODELS", "DepthEstimator", "DepthModelSpec", "TreeSummary", "estimate_tree"]
