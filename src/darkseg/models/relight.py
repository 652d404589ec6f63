"""The image relighting network of DANNet/DANIA and the segmenter that runs behind it.

``RelightNet`` (DANIA Fig. 2; night-uda.md §2.2): reflection-padded 7×7 conv, two stride-2 3×3 convs, three residual
blocks, two stride-2 transposed convs, a 7×7 conv and tanh; BatchNorm after every conv but the last. Its output
``r`` is added to the input: the relit image is ``x + r``. At ``width`` 64 it has 4.30 M parameters (DANNet).
Unlike DANNet, the last conv starts at zero (``r = 0``: the relit image is the input at the start of training).
"""

from __future__ import annotations

from pydantic import Field, PositiveInt
from torch import Tensor, nn

from darkseg.schema import StrictModel


class RelightConfig(StrictModel):
    """Relighting network size (DANNet: width 64, 3 residual blocks)."""

    width: PositiveInt = Field(64, description="channels of the first conv (ngf); 128/256 in the deeper layers")
    blocks: PositiveInt = Field(3, description="residual blocks at stride 4")


def _conv_bn_relu(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.BatchNorm2d(c),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class RelightNet(nn.Module):
    """``forward(x) -> r`` (B×3×H×W in [−1, 1]); the relit image is ``x + r``. H and W must be multiples of 4."""

    def __init__(self, width: int = 64, blocks: int = 3) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3), *_conv_bn_relu(nn.Conv2d(3, w, 7), w),
            *_conv_bn_relu(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), 2 * w),
            *_conv_bn_relu(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), 4 * w),
            *[_ResBlock(4 * w) for _ in range(blocks)],
            *_conv_bn_relu(nn.ConvTranspose2d(4 * w, 2 * w, 3, stride=2, padding=1, output_padding=1), 2 * w),
            *_conv_bn_relu(nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1), w),
            nn.ReflectionPad2d(3), nn.Conv2d(w, 3, 7), nn.Tanh(),
        )
        # Zero last conv: r = 0 at the start, so a pretrained segmenter behind it starts from its own accuracy.
        nn.init.zeros_(self.net[-2].weight)
        nn.init.zeros_(self.net[-2].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class RelitSegmenter(nn.Module):
    """A segmenter behind a relighting network: ``forward(image)`` = the segmenter's outputs on ``image + r`` plus
    ``relit`` (the relit image) and ``light`` (the residual ``r``). Images whose sides are not multiples of 4 are
    reflection-padded for the relighting network and cropped back."""

    def __init__(self, relight: RelightNet, segmenter: nn.Module) -> None:
        super().__init__()
        self.relight = relight
        self.segmenter = segmenter
        for attr in ("num_classes", "mask_stride"):
            setattr(self, attr, getattr(segmenter, attr))

    @property
    def pretrained_prefixes(self) -> tuple[str, ...]:
        return tuple(f"segmenter.{p}" for p in getattr(self.segmenter, "pretrained_prefixes", ()))

    @property
    def mean(self) -> Tensor:
        return self.segmenter.mean

    @property
    def uses_depth(self) -> bool:
        return bool(getattr(self.segmenter, "uses_depth", False))

    @property
    def feature_channels(self) -> dict[str, int]:
        return self.segmenter.feature_channels

    @property
    def min_input_size(self) -> int:
        return max(4, getattr(self.segmenter, "min_input_size", 1))

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict[str, Tensor]:
        h, w = image.shape[-2:]
        ph, pw = -h % 4, -w % 4
        x = nn.functional.pad(image, (0, pw, 0, ph), mode="reflect") if ph or pw else image
        light = self.relight(x)[..., :h, :w]
        relit = image + light
        out = dict(self.segmenter(relit, depth) if depth is not None else self.segmenter(relit))
        out["relit"] = relit
        out["light"] = light
        return out
