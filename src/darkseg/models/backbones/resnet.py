"""ResNet-18/34/50/101 (He et al., v1.5: stride on the 3×3 conv) with dilation for output stride 8/16/32.

Module and parameter names follow the torchvision checkpoint layout (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0`` ...), so torchvision-format state dicts from a local file load by name (``fc.*`` dropped).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone, scale_channels
from darkseg.models.ops.init import kaiming_init

#: depth -> (bottleneck?, blocks per stage)
RESNET_LAYOUTS: dict[int, tuple[bool, tuple[int, int, int, int]]] = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
}


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if cin == cout and stride == 1:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3×3 convs with BN, identity or 1×1 projection shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, cin: int, width: int, stride: int = 1, first_dilation: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, first_dilation, first_dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(cin, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride, dilation) → 1×1 (×4) with BN, identity or projection shortcut (ResNet-50/101)."""

    expansion = 4

    def __init__(
        self, cin: int, width: int, stride: int = 1, first_dilation: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, first_dilation, first_dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(Backbone):
    """ResNet trunk with taps ``layer1`` (stride 4) .. ``layer4``; strides of late stages become dilations.

    ``output_stride`` 8 dilates layer3 (2) and layer4 (4), 16 dilates layer4 (2), 32 is the plain network; the
    first 3×3 conv of a dilated stage keeps the previous dilation. ``width`` scales channels, ``blocks`` overrides
    the per-stage block counts of ``depth``. ``frozen_stages`` names among ``stem``, ``layer1``..``layer4``.
    """

    def __init__(
        self,
        depth: int = 50,
        output_stride: int = 8,
        width: float = 1.0,
        blocks: tuple[int, int, int, int] | None = None,
        freeze_bn: bool = True,
        frozen_stages: tuple[str, ...] = (),
        fusions: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"ResNet output_stride must be 8, 16 or 32, got {output_stride}")
        bottleneck, default_blocks = RESNET_LAYOUTS[depth]
        blocks = tuple(blocks or default_blocks)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be 4 positive counts for layer1..layer4, got {blocks}")
        block_cls = Bottleneck if bottleneck else BasicBlock
        self.stage_names = ("layer1", "layer2", "layer3", "layer4")
        self.skip_tap, self.out_tap = "layer1", "layer4"
        cin = scale_channels(64, width)
        self.conv1 = nn.Conv2d(3, cin, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.channels: dict[str, int] = {}
        self.strides: dict[str, int] = {}
        self._stage_modules = {"stem": ("conv1", "bn1")}
        stride, dilation = 4, 1
        for i, (name, n) in enumerate(zip(self.stage_names, blocks)):
            s = 1 if i == 0 else 2
            first_dilation = dilation
            if s == 2 and stride >= output_stride:
                s, dilation = 1, dilation * 2
            stride *= s
            w = scale_channels(64 * 2**i, width)
            layer = []
            for k in range(n):
                layer.append(block_cls(cin, w, s if k == 0 else 1, first_dilation if k == 0 else dilation, dilation))
                cin = w * block_cls.expansion
            self.add_module(name, nn.Sequential(*layer))
            self.channels[name], self.strides[name] = cin, stride
            self._stage_modules[name] = (name,)
        kaiming_init(self)
        self._setup(freeze_bn, frozen_stages, fusions)

    def forward(self, x: Tensor, prior: Tensor | None = None) -> dict[str, Tensor]:
        taps: dict[str, Tensor] = {}
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for name in self.stage_names:
            x = self._fuse(name, getattr(self, name)(x), prior, taps)
        return taps

    def convert_pretrained(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """torchvision layout: names kept, the ImageNet classifier ``fc.*`` dropped."""
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
