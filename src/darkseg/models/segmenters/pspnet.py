"""PSPNet (Zhao et al., CVPR 2017): deep-stem ResNet, pyramid pooling module (bins 1/2/3/6) and an auxiliary
(DSN) head on layer3 used in training only (night-uda.md §3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone
from darkseg.models.ops.init import conv_bn_relu, kaiming_init
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD
from darkseg.models.segmenters.dense import DenseSegmenter


class PyramidPooling(nn.Module):
    """Average-pool to each bin size → 1×1 conv-BN-ReLU (``channels``) → bilinear upsampling; concatenated with
    the input, then a 3×3 conv-BN-ReLU bottleneck and Dropout2d (PSPNet, Sec. 3.3 of the paper)."""

    def __init__(self, cin: int, channels: int, bins: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(conv_bn_relu(cin, channels, 1) for _ in bins)
        self.bottleneck = nn.Sequential(
            conv_bn_relu(cin + channels * len(bins), channels, 3), nn.Dropout2d(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear", align_corners=True)
            for b, stage in zip(self.bins, self.stages)
        ]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))


class PSPNet(DenseSegmenter):
    """Backbone → pyramid pooling → 1×1 classifier, output stride of the backbone (8 in the references).

    ``aux_head``: DSN on the stage before the deepest (3×3 conv-BN-ReLU, Dropout2d, 1×1 classifier), computed
    in training only and returned as ``aux_logits``; it counts in the 70.43 M of night-uda.md §3.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        *,
        normalize_input: bool = True,
        channels: int = 512,
        bins: tuple[int, ...] = (1, 2, 3, 6),
        dropout: float = 0.1,
        aux_head: bool = True,
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        self.mask_stride = backbone.strides[backbone.out_tap]
        self.aux_tap = backbone.stage_names[-2]
        self.ppm = PyramidPooling(backbone.channels[backbone.out_tap], channels, bins, dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.aux_classifier = None
        if aux_head:
            self.aux_classifier = nn.Sequential(
                conv_bn_relu(backbone.channels[self.aux_tap], channels, 3),
                nn.Dropout2d(dropout),
                nn.Conv2d(channels, num_classes, 1),
            )
        kaiming_init(self.ppm)
        kaiming_init(self.classifier)
        if self.aux_classifier is not None:
            kaiming_init(self.aux_classifier)

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict:
        taps = self.backbone_taps(image, depth)
        logits = self.classifier(self.ppm(taps[self.backbone.out_tap]))
        aux = None
        if self.training and self.aux_classifier is not None:
            aux = self.aux_classifier(taps[self.aux_tap])
        return self.outputs(logits, taps, aux)
