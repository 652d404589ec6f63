"""Single-stage WSSS (SSSS, Araslanov & Roth, CVPR 2020; model "ae"): backbone + head composed (ssss.md §2)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone
from darkseg.models.ops.aspp import ASPP
from darkseg.models.ops.gci import GCI
from darkseg.models.ops.init import conv_bn_relu, kaiming_init
from darkseg.models.ops.stochastic_gate import StochasticGate
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD, Segmenter


def ngwp_focal_scores(logits: Tensor, masks: Tensor, eps: float = 1.0, p: float = 3.0, lam: float = 0.01) -> Tensor:
    """Class scores nGWP_c + (1 − m̄_c)^p·log(λ + m̄_c) for every channel (ssss.md §2, "Class scores")."""
    ngwp = (masks * logits).sum(dim=(2, 3)) / (eps + masks.sum(dim=(2, 3)))
    mean = masks.mean(dim=(2, 3))
    return ngwp + (1 - mean).pow(p) * torch.log(lam + mean)


class SSSS(Segmenter):
    """SSSS: ASPP on the deepest tap, skip fusion with the stride-4 tap, GCI, stochastic gate, last_conv, constant
    background logit, softmax masks and nGWP + focal class scores (ssss.md §2).

    ``forward(image, depth=None)`` returns ``cls`` (B, C−1), ``logits``/``masks`` (B, C, H/4, W/4) and ``feats``
    with ``layer3`` (the stride-4 tap, "conv3"; post-fusion if ``skip_fused``) and ``layer6`` (the deepest tap,
    "conv6"). ``aspp_rates`` are the dilations at output stride 8, scaled by 8 / output stride.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        *,
        normalize_input: bool = True,
        aspp_channels: int = 256,
        aspp_rates: tuple[int, ...] = (12, 24, 36),
        aspp_dropout: float = 0.5,
        freeze_aspp_bn_stats: bool = True,
        skip_channels: int = 48,
        decoder_channels: int = 256,
        last_dropout: tuple[float, float] = (0.5, 0.1),
        sg_psi: float = 0.3,
        bg_logit: float = 1.0,
        ngwp_eps: float = 1.0,
        focal_p: float = 3.0,
        focal_lambda: float = 0.01,
        skip_fused: bool = False,
        prior_net: nn.Module | None = None,
        fusions: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input, prior_net, fusions)
        out_stride = backbone.strides[backbone.out_tap]
        rates = tuple(max(1, round(r * 8 / out_stride)) for r in aspp_rates)
        skip_in = backbone.channels[backbone.skip_tap]
        self.mask_stride = backbone.strides[backbone.skip_tap]
        self.skip_fused = skip_fused
        self.bg_logit = bg_logit
        self.ngwp_eps, self.focal_p, self.focal_lambda = ngwp_eps, focal_p, focal_lambda
        self.aspp = ASPP(backbone.channels[backbone.out_tap], aspp_channels, rates, aspp_dropout, freeze_aspp_bn_stats)
        self.fc8_skip = conv_bn_relu(skip_in, skip_channels, 1)
        self.fc8_x = conv_bn_relu(aspp_channels + skip_channels, decoder_channels, 3)
        self.gci = GCI(decoder_channels, skip_in, decoder_channels)
        self.sg = StochasticGate(sg_psi)
        self.last_conv = nn.Sequential(
            conv_bn_relu(decoder_channels, decoder_channels, 3),
            nn.Dropout(last_dropout[0]),
            conv_bn_relu(decoder_channels, decoder_channels, 3),
            nn.Dropout(last_dropout[1]),
            nn.Conv2d(decoder_channels, num_classes - 1, 1),
        )
        kaiming_init(self.fc8_skip)
        kaiming_init(self.fc8_x)
        kaiming_init(self.last_conv)

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict[str, Tensor | dict[str, Tensor]]:
        taps = self.backbone_taps(image, depth)
        name = self.backbone.skip_tap
        conv3 = taps.get(f"{name}_fused", taps[name]) if self.skip_fused else taps[name]
        conv6 = taps[self.backbone.out_tap]
        skip = self.fc8_skip(conv3)
        x = F.interpolate(self.aspp(conv6), size=skip.shape[-2:], mode="bilinear", align_corners=True)
        deep = self.fc8_x(torch.cat([x, skip], dim=1))
        fg = self.last_conv(self.sg(deep, self.gci(deep, conv3)))
        bg = fg.new_full((fg.shape[0], 1, *fg.shape[2:]), self.bg_logit)
        logits = torch.cat([bg, fg], dim=1)
        masks = logits.softmax(dim=1)
        scores = ngwp_focal_scores(logits, masks, self.ngwp_eps, self.focal_p, self.focal_lambda)
        return {"cls": scores[:, 1:], "logits": logits, "masks": masks, "feats": {"layer3": conv3, "layer6": conv6}}


#: 1-stage-wseg (SoftMaxAE) parameter names -> darkseg SSSS names (regex, replacement), applied in order
_ONE_STAGE_NAMES = (
    (r"^(conv1a|bn7|b\d(?:_\d+)?)\.", r"backbone.\1."),
    (r"^aspp\.aspp([1-4])\.atrous_conv\.", lambda m: f"aspp.branches.{int(m[1]) - 1}.0."),
    (r"^aspp\.aspp([1-4])\.bn\.", lambda m: f"aspp.branches.{int(m[1]) - 1}.1."),
    (r"^aspp\.global_avg_pool\.([12])\.", lambda m: f"aspp.pool.{int(m[1]) - 1}."),
    (r"^aspp\.conv1\.", "aspp.project.0.0."),
    (r"^aspp\.bn1\.", "aspp.project.0.1."),
    (r"^shallow_mask\.", "gci."),
    (r"^last_conv\.([0145])\.", lambda m: f"last_conv.{2 * (int(m[1]) // 4)}.{int(m[1]) % 4}."),
    (r"^last_conv\.8\.", "last_conv.4."),
)


def convert_1stage_wseg(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a 1-stage-wseg SSSS checkpoint (e.g. the released ``model_enc_e020Xs0.928.pth``, the DGKD teacher)
    to :class:`SSSS` names; PAMR buffers (``_aff.*``) are dropped (ssss.md §2, dgkd-official.md §3)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("_aff."):
            continue
        for pattern, repl in _ONE_STAGE_NAMES:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        out[key] = value
    return out
