"""Warping tensors (images, class probabilities) along a night→day flow, for the losses that use a paired day view."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp_by_flow(x: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp of the day view onto the night view, DANIA Eq. (9): ``x`` sampled at ``p + flow(p)``, and validity.

    ``x`` is B×C×H×W (day image or prediction), ``flow`` B×2×H×W (NaN = none); bilinear. Pixels whose source is
    NaN or outside ``x`` (the warped holes) are zero and False in the returned B×H×W mask.
    """
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    finite = torch.isfinite(flow).all(1)
    sx = xs + torch.nan_to_num(flow[:, 0], nan=0.0)
    sy = ys + torch.nan_to_num(flow[:, 1], nan=0.0)
    hx, wx = x.shape[-2:]
    valid = finite & (sx >= 0) & (sx <= wx - 1) & (sy >= 0) & (sy <= hx - 1)
    gx = 2 * sx / max(wx - 1, 1) - 1
    gy = 2 * sy / max(hx - 1, 1) - 1
    out = F.grid_sample(x, torch.stack([gx, gy], -1).to(x.dtype), mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out * valid.unsqueeze(1).to(out.dtype), valid
