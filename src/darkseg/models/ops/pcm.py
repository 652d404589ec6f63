"""SEAM's pixel correlation module (PCM): CAMs refined by a learned, column-normalised pixel affinity.

Wang et al., "Self-supervised Equivariant Attention Mechanism", CVPR 2020, §3.3; layer facts in wsss-methods.md §3.2.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: floor of SEAM's normalisations
SEAM_EPS = 1e-5


def pcm_input(cam: Tensor) -> Tensor:
    """The CAM fed to the PCM (detached): ReLU, per-class spatial max-normalisation, background = 1 − max fg,
    foreground values below the per-pixel foreground max zeroed (SEAM, wsss-methods.md §3.2)."""
    cam = F.relu(cam.detach().float())
    peak = cam.amax(dim=(2, 3), keepdim=True) + SEAM_EPS
    norm = F.relu(cam - SEAM_EPS) / peak
    fg = norm[:, 1:]
    fg_max = fg.amax(dim=1, keepdim=True)
    return torch.cat([1.0 - fg_max, torch.where(fg < fg_max, torch.zeros_like(fg), fg)], dim=1)


class PixelCorrelation(nn.Module):
    """PCM of SEAM §3.3: y = cam · A with A = column-normalised ReLU(cosine similarity of θ(features)).

    θ is a bias-free 1×1 conv (Xavier init, gain 4). ``forward(cam, feats)`` resizes ``cam`` (B, C, h', w') to the
    feature size (bilinear, corners aligned) and returns the refined maps (B, C, h, w), computed in float32.
    """

    def __init__(self, in_channels: int, dim: int = 192) -> None:
        super().__init__()
        self.theta = nn.Conv2d(in_channels, dim, 1, bias=False)
        nn.init.xavier_uniform_(self.theta.weight, gain=4)

    def forward(self, cam: Tensor, feats: Tensor) -> Tensor:
        n, _, h, w = feats.shape
        no_autocast = (
            torch.autocast(feats.device.type, enabled=False)
            if torch.amp.is_autocast_available(feats.device.type) else contextlib.nullcontext()
        )
        with no_autocast:
            cam = F.interpolate(cam.float(), size=(h, w), mode="bilinear", align_corners=True).flatten(2)
            f = F.conv2d(feats.float(), self.theta.weight.float()).flatten(2)
            f = f / (f.norm(dim=1, keepdim=True) + SEAM_EPS)
            aff = F.relu(f.transpose(1, 2) @ f)  # (B, hw, hw), symmetric
            aff = aff / (aff.sum(dim=1, keepdim=True) + SEAM_EPS)
            return (cam @ aff).view(n, -1, h, w)
