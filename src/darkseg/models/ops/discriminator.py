"""Fully convolutional output-space discriminator of DANNet/DANIA (DANIA §3.2; night-uda.md §2.7)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class FCDiscriminator(nn.Module):
    """Five 4×4 convs (``channels``, default 64/128/256/256/1), strides 2, 2, 1, 1, 1, padding 1, LeakyReLU(0.2)
    after every conv but the last. ``forward(p)`` maps a B×C×H×W class-probability map to B×1×h×w scores
    (1.73 M parameters for 19 classes at the default widths)."""

    def __init__(self, num_classes: int, channels: Sequence[int] = (64, 128, 256, 256),
                 strides: Sequence[int] = (2, 2, 1, 1, 1)) -> None:
        super().__init__()
        widths = [num_classes, *channels, 1]
        if len(strides) != len(widths) - 1:
            raise ValueError(f"{len(widths) - 1} convs need as many strides, got {list(strides)}")
        layers: list[nn.Module] = []
        for i, s in enumerate(strides):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 4, stride=s, padding=1))
            if i < len(strides) - 1:
                layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, p: Tensor) -> Tensor:
        return self.net(p)
