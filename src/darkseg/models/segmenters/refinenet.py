"""RefineNet (Lin et al., CVPR 2017), the original 4-cascade network on ResNet (not Light-Weight RefineNet):
residual conv units (RCU), multi-resolution fusion and chained residual pooling (CRP), output stride 4
(night-uda.md §3: 118.05 M parameters with ResNet-101 and 19 classes)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone
from darkseg.models.ops.init import kaiming_init
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD
from darkseg.models.segmenters.dense import DenseSegmenter


def conv3x3(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


class RCU(nn.Module):
    """``units`` residual conv units, each x + conv(ReLU(conv(ReLU(x)))) (first conv with bias, second without)."""

    def __init__(self, channels: int, units: int) -> None:
        super().__init__()
        self.units = nn.ModuleList(
            nn.Sequential(nn.ReLU(), conv3x3(channels, channels, bias=True), nn.ReLU(), conv3x3(channels, channels))
            for _ in range(units)
        )

    def forward(self, x: Tensor) -> Tensor:
        for unit in self.units:
            x = x + unit(x)
        return x


class CRP(nn.Module):
    """Chained residual pooling: ``stages`` × (5×5 max-pool stride 1 → 3×3 conv), each stage's output added to x."""

    def __init__(self, channels: int, stages: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv3x3(channels, channels) for _ in range(stages))

    def forward(self, x: Tensor) -> Tensor:
        top = x
        for conv in self.convs:
            top = conv(F.max_pool2d(top, 5, 1, 2))
            x = x + top
        return x


class RefineBlock(nn.Module):
    """One cascade step: adapt the backbone feature (3×3 dim-reduction + 2 RCUs [+ 3×3 conv]), add the upsampled
    coarser path, ReLU, CRP, 3 RCUs [+ 3×3 dim-reduction for the next finer step]."""

    def __init__(self, cin: int, channels: int, fuse: bool, out_channels: int | None) -> None:
        super().__init__()
        self.reduce = conv3x3(cin, channels)
        self.adapt = RCU(channels, 2)
        self.fuse = conv3x3(channels, channels) if fuse else None
        self.crp = CRP(channels)
        self.output = RCU(channels, 3)
        self.out_conv = conv3x3(channels, out_channels) if out_channels is not None else None

    def forward(self, x: Tensor, coarser: Tensor | None = None) -> Tensor:
        x = self.adapt(self.reduce(x))
        if self.fuse is not None:
            x = self.fuse(x)
        if coarser is not None:
            x = x + F.interpolate(coarser, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self.output(self.crp(F.relu(x)))
        return self.out_conv(x) if self.out_conv is not None else x


class RefineNet(DenseSegmenter):
    """4-cascade RefineNet: layer4 → block 1 (``top_channels``), layer3..layer1 → blocks 2-4 (``channels``);
    Dropout(0.5) on layer3, layer4 and the final features; 3×3 classifier at the stride of ``skip_tap`` (4)."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        *,
        normalize_input: bool = True,
        top_channels: int = 512,
        channels: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        if len(backbone.stage_names) != 4:
            raise ValueError("RefineNet needs a backbone with four stages")
        self.mask_stride = backbone.strides[backbone.skip_tap]
        ch = [backbone.channels[s] for s in backbone.stage_names]
        self.dropout = nn.Dropout(dropout)
        self.refine = nn.ModuleList([
            RefineBlock(ch[3], top_channels, fuse=False, out_channels=channels),
            RefineBlock(ch[2], channels, fuse=True, out_channels=channels),
            RefineBlock(ch[1], channels, fuse=True, out_channels=channels),
            RefineBlock(ch[0], channels, fuse=True, out_channels=None),
        ])
        self.classifier = nn.Conv2d(channels, num_classes, 3, padding=1)
        kaiming_init(self.refine)
        nn.init.normal_(self.classifier.weight, std=0.01)  # as DeepLab's classifier: small initial logits
        nn.init.zeros_(self.classifier.bias)
        # The refinement path has no normalisation: with Kaiming weights every residual unit and pooling stage
        # doubles the variance (initial logits ~1e6 at scenes size, ~1e2 with the zero-init below alone). The last conv of each residual branch starts
        # at zero ("zero-init residual"), so each RCU and CRP starts as the identity and learns its residual.
        for m in self.refine.modules():
            if isinstance(m, RCU):
                for unit in m.units:
                    nn.init.zeros_(unit[-1].weight)
            elif isinstance(m, CRP):
                for conv in m.convs:
                    nn.init.zeros_(conv.weight)

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict:
        taps = self.backbone_taps(image, depth)
        l1, l2, l3, l4 = (taps[s] for s in self.backbone.stage_names)
        x = self.refine[0](self.dropout(l4))
        x = self.refine[1](self.dropout(l3), x)
        x = self.refine[2](l2, x)
        x = self.refine[3](l1, x)
        return self.outputs(self.classifier(self.dropout(x)), taps)
