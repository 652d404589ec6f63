"""Shared output contract of the fully supervised segmenters (DeepLab-v1/v2, PSPNet, RefineNet).

They predict per-pixel logits over all C classes (channel 0 = background) from their own head. The Segmenter
contract (architecture.md) is filled as: ``logits`` the head output at ``mask_stride``; ``masks`` its softmax;
``cls`` (B, C−1) = logit of the largest foreground probability of each class anywhere in the image, so
sigmoid(cls_c) = max over pixels of p_c and ``class_filter: pred`` keeps a class that wins some pixel with
probability > ``score_cut``; ``feats`` = ``layer3`` (stride-4 tap) and ``layer6`` (deepest tap). In training mode
a network with an auxiliary head also returns ``aux_logits`` (PSPNet's DSN on layer3, DeepLab-v2's multi-level
classifier on layer3); losses on it live in the ``supervised`` method.
"""

from __future__ import annotations

import torch
from torch import Tensor

from darkseg.models.segmenters.base import Segmenter

#: log-probability ceiling before the logit transform (keeps cls finite where a class is certain)
_MAX_LOG_P = -1e-6


def max_prob_logit(logits: Tensor) -> Tensor:
    """(B, C−1) logit of max over pixels of softmax(logits)_c, for the foreground channels c ≥ 1."""
    m = torch.log_softmax(logits.float(), dim=1)[:, 1:].amax(dim=(2, 3)).clamp_max(_MAX_LOG_P)
    return m - torch.log(-torch.expm1(m))


class DenseSegmenter(Segmenter):
    """Base of the fully supervised segmenters: subclasses compute logits (and aux logits) from the taps."""

    def outputs(self, logits: Tensor, taps: dict[str, Tensor], aux: Tensor | None = None) -> dict:
        """The contract dict (module docstring) from the head's logits and the backbone taps."""
        bb = self.backbone
        out: dict = {
            "cls": max_prob_logit(logits),
            "logits": logits,
            "masks": logits.softmax(dim=1),
            "feats": {"layer3": taps[bb.skip_tap], "layer6": taps[bb.out_tap]},
        }
        if aux is not None:
            out["aux_logits"] = aux
        return out
