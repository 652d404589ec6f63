"""ResNet-18/34/50/101 with dilation for output stride 8/16/32, in the three flavours the references use.

``variant`` (night-uda.md §3):

- ``torchvision``: 7×7 stem, stride on the 3×3 conv (v1.5); the first block of a dilated stage keeps the previous
  dilation. Names follow the torchvision checkpoint (``conv1``, ``bn1``, ``layer1.0.conv1``,
  ``layer1.0.downsample.0`` ...), so torchvision state dicts load by name (``fc.*`` dropped).
- ``caffe``: the Caffe-converted DeepLab ResNet ("DeeplabMulti" of AdaptSegNet/DANNet): stride on the first 1×1
  conv, max-pool with ceil mode, every block of a dilated stage at the stage dilation. Same names; the converted
  DeepLab file's ``Scale.`` prefix and its classifier ``layer5``/``layer6`` are handled by ``convert_pretrained``.
- ``deepstem``: PSPNet's ResNet: 3×3 stem 64-64-128 (``conv1``/``bn1``, ``conv2``/``bn2``, ``conv3``/``bn3``),
  ceil-mode max-pool, stride on the 3×3 conv, every block of a dilated stage at the stage dilation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

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
    """1×1 → 3×3 (dilation) → 1×1 (×4) with BN, identity or projection shortcut (ResNet-50/101); the stride sits on
    the 3×3 conv, or on the first 1×1 conv with ``stride_in_1x1`` (Caffe)."""

    expansion = 4

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int = 1,
        first_dilation: int = 1,
        dilation: int = 1,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        cout = width * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(cin, width, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, s3, first_dilation, first_dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


ResNetVariant = Literal["torchvision", "caffe", "deepstem"]

#: names of the converted Caffe DeepLab ResNet-101 file that are not backbone weights (its VOC/COCO classifier)
_CAFFE_HEADS = ("layer5.", "layer6.", "fc.")


class ResNet(Backbone):
    """ResNet trunk with taps ``layer1`` (stride 4) .. ``layer4``; strides of late stages become dilations.

    ``output_stride`` 8 dilates layer3 (2) and layer4 (4), 16 dilates layer4 (2), 32 is the plain network.
    ``variant`` picks the flavour (module docstring). ``width`` scales channels, ``blocks`` overrides the per-stage
    block counts of ``depth``. ``frozen_stages`` names among ``stem``, ``layer1``..``layer4``.
    ``freeze_block_bn_affine`` freezes the BN affine parameters inside layer1..layer4 while their statistics keep
    updating (DeeplabMulti: the stem BN stays trainable, night-uda.md §3).
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
        variant: ResNetVariant = "torchvision",
        freeze_block_bn_affine: bool = False,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"ResNet output_stride must be 8, 16 or 32, got {output_stride}")
        if variant not in ("torchvision", "caffe", "deepstem"):
            raise ValueError(f"ResNet variant must be torchvision, caffe or deepstem, got {variant!r}")
        bottleneck, default_blocks = RESNET_LAYOUTS[depth]
        if variant == "caffe" and not bottleneck:
            raise ValueError("the caffe ResNet variant exists for the bottleneck depths 50 and 101 only")
        blocks = tuple(blocks or default_blocks)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be 4 positive counts for layer1..layer4, got {blocks}")
        block_cls = Bottleneck if bottleneck else BasicBlock
        self.variant = variant
        self.stage_names = ("layer1", "layer2", "layer3", "layer4")
        self.skip_tap, self.out_tap = "layer1", "layer4"
        cin = self._build_stem(variant, width)
        self.channels: dict[str, int] = {}
        self.strides: dict[str, int] = {}
        stride, dilation = 4, 1
        extra = {"stride_in_1x1": True} if variant == "caffe" else {}
        for i, (name, n) in enumerate(zip(self.stage_names, blocks)):
            s = 1 if i == 0 else 2
            first_dilation = dilation
            if s == 2 and stride >= output_stride:
                s, dilation = 1, dilation * 2
                if variant != "torchvision":
                    first_dilation = dilation
            stride *= s
            w = scale_channels(64 * 2**i, width)
            layer = []
            for k in range(n):
                d0 = first_dilation if k == 0 else dilation
                layer.append(block_cls(cin, w, s if k == 0 else 1, d0, dilation, **extra))
                cin = w * block_cls.expansion
            self.add_module(name, nn.Sequential(*layer))
            self.channels[name], self.strides[name] = cin, stride
            self._stage_modules[name] = (name,)
        kaiming_init(self)
        self._setup(freeze_bn, frozen_stages, fusions)
        self.freeze_block_bn_affine = freeze_block_bn_affine
        if freeze_block_bn_affine:
            for name in self.stage_names:
                for m in getattr(self, name).modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.requires_grad_(False)

    def _build_stem(self, variant: str, width: float) -> int:
        """7×7/2 conv + BN, or the deep stem (three 3×3 convs + BN, the first with stride 2); returns its channels."""
        c64 = scale_channels(64, width)
        if variant != "deepstem":
            self.conv1 = nn.Conv2d(3, c64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(c64)
            self._stem = (("conv1", "bn1"),)
            self._stage_modules = {"stem": ("conv1", "bn1")}
            return c64
        c128 = scale_channels(128, width)
        self.conv1 = nn.Conv2d(3, c64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c64)
        self.conv2 = nn.Conv2d(c64, c64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c64)
        self.conv3 = nn.Conv2d(c64, c128, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c128)
        self._stem = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))
        self._stage_modules = {"stem": ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")}
        return c128

    def forward(self, x: Tensor, prior: Tensor | None = None) -> dict[str, Tensor]:
        taps: dict[str, Tensor] = {}
        for conv, bn in self._stem:
            x = F.relu(getattr(self, bn)(getattr(self, conv)(x)))
        x = F.max_pool2d(x, 3, 2, 1, ceil_mode=self.variant != "torchvision")
        for name in self.stage_names:
            x = self._fuse(name, getattr(self, name)(x), prior, taps)
        return taps

    def convert_pretrained(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """torchvision / PSPNet deep-stem layout: names kept, the ImageNet classifier ``fc.*`` dropped. The converted
        Caffe DeepLab file (``Scale.conv1.weight`` ...): the ``Scale.`` prefix removed, its classifier dropped."""
        out = {}
        for key, value in state.items():
            key = key.removeprefix("Scale.")
            if not key.startswith(_CAFFE_HEADS):
                out[key] = value
        return out
