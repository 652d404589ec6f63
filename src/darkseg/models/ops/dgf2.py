"""DGF2 depth-guided feature fusion (DGKD-WLSS §3.3): prior extractor M, SFT layers and attention fusion.

Layer sizes follow the official code (``dgkd-official.md`` §5): M is the SFT-GAN condition net (74,528
parameters, 64-channel prior at about 1/4 resolution), one SFT layer per fused stage (24,960 / 41,600 / 74,880
parameters at 128 / 256 / 512 channels) and a parameter-free attention fusion; with the default placement after
b2, b3 and b4 DGF2 adds 215,968 parameters and about 1.51 GMAC at 321x321.

SFT convention: the paper writes Eq. (10) as ``beta * F + gamma``; the official code (like SFT-GAN) computes
``F * (1 + scale) + shift``, i.e. the paper's multiplicative beta is ``1 + scale``. We code the latter: with a
zero-initialised last conv the layer starts as the identity. In this module ``gamma`` names the scale branch and
``beta`` the shift branch, as in the official code.

Single placement (Table 2(b) "single SFT" / "single DGF2"): the paper does not say which stage; darkseg uses
``stages: [b3]``, the stride-4 stage whose size matches the prior's own resolution (79x79 vs 81x81 at 321), in the
middle of the coarse-to-fine chain (b2, b3, b4) of the multiple placement.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from darkseg.errors import ConfigError
from darkseg.schema import StrictModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SLOPE = 0.1  # LeakyReLU negative slope of the official CondNet and SFT layers


class DGF2Config(StrictModel):
    """DGF2 settings: fused stages (default "multiple DGF2"; ``[b3]`` = single), SFT-only or full fusion, lambda."""

    stages: list[str] = Field(default_factory=lambda: ["b2", "b3", "b4"])
    mode: Literal["dgf2", "sft"] = "dgf2"
    lam: float = Field(0.5, ge=0.0, le=1.0)
    prior_channels: int = Field(64, ge=1)
    in_channels: Literal[1, 3] = 3

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, stages: list[str]) -> list[str]:
        if not stages or len(set(stages)) != len(stages):
            raise ValueError(f"must be a non-empty list of distinct stage names, got {stages}")
        return stages


class DepthPriorExtractor(nn.Module):
    """Depth prior extractor M, Eq. (8) of DGKD-WLSS (official CondNet: 3x3 no pad, 4x4/4, 3x 1x1, 1x1)."""

    def __init__(self, in_channels: int = 3, prior_channels: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.in_channels = in_channels
        mean = IMAGENET_MEAN if in_channels == 3 else (sum(IMAGENET_MEAN) / 3,) * in_channels
        std = IMAGENET_STD if in_channels == 3 else (sum(IMAGENET_STD) / 3,) * in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 8, 3),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(8, hidden, 4, stride=4),
            nn.LeakyReLU(_SLOPE, inplace=True),
        ]
        for _ in range(3):
            layers += [nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(_SLOPE, inplace=True)]
        layers.append(nn.Conv2d(hidden, prior_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, depth: Tensor) -> Tensor:
        """prior = M(I_depth), Eq. (8) of DGKD-WLSS; depth (B,1,H,W) in [0,1] is replicated and ImageNet-normalised."""
        if depth.shape[1] == 1:
            depth = depth.expand(-1, self.in_channels, -1, -1)
        return self.net((depth - self.mean) / self.std)


class SFTLayer(nn.Module):
    """Spatial feature transform, Eq. (9)-(10) of DGKD-WLSS (coded as F * (1 + gamma) + beta)."""

    def __init__(self, prior_channels: int = 64, channels: int = 256) -> None:
        super().__init__()
        self.gamma = self._branch(prior_channels, channels)
        self.beta = self._branch(prior_channels, channels)

    @staticmethod
    def _branch(prior_channels: int, channels: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(prior_channels, prior_channels, 1),
            nn.LeakyReLU(_SLOPE, inplace=True),
            nn.Conv2d(prior_channels, channels, 1),
        )

    def forward(self, x: Tensor, prior: Tensor) -> Tensor:
        """(beta, gamma) = (conv(conv(P)), conv(conv(P))), F_dbar = F_d * (1 + gamma) + beta: Eq. (9)-(10)."""
        prior = F.interpolate(prior, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * (1 + self.gamma(prior)) + self.beta(prior)


class DGF2Fusion(nn.Module):
    """Attention fusion, Eq. (11)-(13) of DGKD-WLSS (no parameters)."""

    def __init__(self, lam: float = 0.5) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, f_d: Tensor, f_dbar: Tensor) -> Tensor:
        """A = lam (1 - s(F_d))(1 - s(F_dbar)) + s(F_d) s(F_dbar); F_fuse = F_dbar + A (F_d + F_dbar): Eq. (11)-(13)."""
        att_d, att_dbar = torch.sigmoid(f_d), torch.sigmoid(f_dbar)
        att = self.lam * (1 - att_d) * (1 - att_dbar) + att_d * att_dbar
        return f_dbar + att * (f_d + f_dbar)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"


class DGF2Block(nn.Module):
    """One fused stage: SFT (Eq. 9-10), then attention fusion (Eq. 11-13) unless ``mode="sft"``."""

    def __init__(
        self, channels: int, prior_channels: int = 64, mode: Literal["dgf2", "sft"] = "dgf2", lam: float = 0.5
    ) -> None:
        super().__init__()
        self.sft = SFTLayer(prior_channels, channels)
        self.fusion = DGF2Fusion(lam) if mode == "dgf2" else None

    def forward(self, x: Tensor, prior: Tensor) -> Tensor:
        out = self.sft(x, prior)
        return out if self.fusion is None else self.fusion(x, out)


def build_dgf2(cfg: DGF2Config, stage_channels: dict[str, int]) -> tuple[DepthPriorExtractor, nn.ModuleDict]:
    """The shared prior extractor M and one DGF2 block per configured stage, keyed by stage name."""
    unknown = [s for s in cfg.stages if s not in stage_channels]
    if unknown:
        raise ConfigError(
            f"dgf2.stages: unknown stage(s) {', '.join(unknown)}; the backbone has {', '.join(stage_channels)}"
        )
    prior_net = DepthPriorExtractor(cfg.in_channels, cfg.prior_channels)
    blocks = nn.ModuleDict(
        {s: DGF2Block(stage_channels[s], cfg.prior_channels, cfg.mode, cfg.lam) for s in cfg.stages}
    )
    return prior_net, blocks
