"""DeepLab-v1 LargeFOV (Chen et al., ICLR 2015) on WideResNet-38: the network PSA/SEAM/PLDA retrain on pseudo
masks (wsss-methods.md §3): fc6 3×3 conv at dilation 12 → ReLU → Dropout → fc7 1×1 → ReLU → Dropout → fc8 1×1."""

from __future__ import annotations

from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone
from darkseg.models.ops.init import kaiming_init
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD
from darkseg.models.segmenters.dense import DenseSegmenter


class DeepLabV1(DenseSegmenter):
    """Backbone (WideResNet-38, output stride 8) → LargeFOV head with ``fc_channels`` (1024 in DeepLab-v1)."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        *,
        normalize_input: bool = True,
        fc_channels: int = 1024,
        rate: int = 12,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        self.mask_stride = backbone.strides[backbone.out_tap]
        self.head = nn.Sequential(
            nn.Conv2d(backbone.channels[backbone.out_tap], fc_channels, 3, padding=rate, dilation=rate),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(fc_channels, fc_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(fc_channels, num_classes, 1),
        )
        kaiming_init(self.head)

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict:
        taps = self.backbone_taps(image, depth)
        return self.outputs(self.head(taps[self.backbone.out_tap]), taps)
