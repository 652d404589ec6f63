"""Shared segmenter mechanics: input normalisation, depth prior, pretrained prefixes (architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from darkseg.errors import DarksegError
from darkseg.models.backbones.base import Backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Segmenter(nn.Module):
    """Backbone + head; images in [0, 1] are normalised by the ``mean``/``std`` buffers unless ``normalize_input``
    is False (the DGKD reference quirk of feeding [0, 1] RGB, dgkd-official.md §8.1).

    Depth hook: with a ``prior_net`` (e.g. DGF2's CondNet), ``prior = prior_net(depth)`` is computed once per call
    and passed to the backbone, whose ``fusions`` (stage name -> module) use it; without one, depth is ignored.
    """

    num_classes: int
    mask_stride: int

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        normalize_input: bool = True,
        prior_net: nn.Module | None = None,
        fusions: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.normalize_input = normalize_input
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.backbone = backbone
        if fusions is not None:
            backbone.set_fusions(fusions)
        self.prior_net = prior_net

    @property
    def pretrained_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes covered by ImageNet weights: the backbone without its fusion modules."""
        return tuple(f"backbone.{name}." for name in self.backbone.pretrained_children())

    @property
    def uses_depth(self) -> bool:
        """Whether ``forward`` needs ``depth`` (the model has a depth-prior module)."""
        return self.prior_net is not None

    @property
    def feature_channels(self) -> dict[str, int]:
        """Channels of the ``feats`` outputs: ``layer3`` (stride-4 tap) and ``layer6`` (deepest tap)."""
        bb = self.backbone
        return {"layer3": bb.channels[bb.skip_tap], "layer6": bb.channels[bb.out_tap]}

    @property
    def min_input_size(self) -> int:
        """Smallest input side: one cell of the deepest feature map."""
        return self.backbone.strides[self.backbone.out_tap]

    def backbone_taps(self, image: Tensor, depth: Tensor | None) -> dict[str, Tensor]:
        """Check the size, normalise, compute the depth prior if the model has one, run the backbone."""
        h, w = image.shape[-2:]
        if min(h, w) < self.min_input_size:
            raise DarksegError(
                f"input {h}x{w} is smaller than the model's minimum {self.min_input_size}x{self.min_input_size} "
                f"(output stride); use a larger crop or test size"
            )
        x = (image - self.mean) / self.std if self.normalize_input else image
        prior = None
        if self.prior_net is not None:
            if depth is None:
                raise DarksegError(
                    "this model has a depth-prior module (DGF2) but no depth was given; add depth to the data views"
                )
            prior = self.prior_net(depth)
        return self.backbone(x, prior)
