"""SEAM network (Wang et al., CVPR 2020): ResNet-38, a CAM head over all classes and the PCM (wsss-methods.md §3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.wideresnet38 import WideResNet38
from darkseg.models.ops.init import kaiming_init
from darkseg.models.ops.pcm import SEAM_EPS, PixelCorrelation, pcm_input
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD, Segmenter


class SEAM(Segmenter):
    """WideResNet-38 → Dropout2d → bias-free 1×1 ``classifier`` to C channels (channel 0 = background, which SEAM
    never trains) → raw CAM; PCM over [image, ReLU(1×1 conv of b4), ReLU(1×1 conv of b5)] at feature resolution.

    The b4/b5 features are the activated (BN-ReLU) inputs of the next block, PSA's ``conv4``/``conv5``, detached.
    Outputs at the output stride: ``cls`` = GAP of the raw CAM, foreground channels; ``logits`` = raw CAM (B, C, h, w);
    ``cam_rv`` = PCM output (B, C, h, w); ``masks``: channel 0 the constant ``bg_score``, channels 1.. ReLU(cam_rv)
    divided by its per-image spatial max (the CAM protocol); ``feats``: ``layer3`` (b3) and ``layer6`` (conv6).
    """

    def __init__(
        self,
        backbone: WideResNet38,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        *,
        normalize_input: bool = True,
        dropout: float = 0.5,
        pcm_channels: tuple[int, int] = (64, 128),
        pcm_dim: int = 192,
        bg_score: float = 0.26,
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        self.mask_stride = backbone.strides[backbone.out_tap]
        self.bg_score = bg_score
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(backbone.channels[backbone.out_tap], num_classes, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)
        self.pcm_b4 = nn.Conv2d(backbone.channels["b4"], pcm_channels[0], 1, bias=False)
        self.pcm_b5 = nn.Conv2d(backbone.channels["b5"], pcm_channels[1], 1, bias=False)
        kaiming_init(self.pcm_b4)
        kaiming_init(self.pcm_b5)
        self.pcm = PixelCorrelation(3 + sum(pcm_channels), pcm_dim)

    def _activated(self, taps: dict[str, Tensor], stage: str) -> Tensor:
        """ReLU(BN) of stage ``stage``'s output with the next block's ``bn_branch2a``, detached; its running
        statistics are not updated a second time (wsss-methods.md §3.1, ``forward_as_dict``)."""
        names = self.backbone.stage_names
        bn = getattr(self.backbone, names[names.index(stage) + 1]).bn_branch2a
        batch_stats = bn.training or bn.running_mean is None
        weight = None if bn.weight is None else bn.weight.detach()
        bias = None if bn.bias is None else bn.bias.detach()
        x = F.batch_norm(
            taps[stage].detach(), None if batch_stats else bn.running_mean, None if batch_stats else bn.running_var,
            weight, bias, batch_stats, 0.0, bn.eps,
        )
        return F.relu(x)

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict[str, Tensor | dict[str, Tensor]]:
        taps = self.backbone_taps(image, depth)
        feats = taps[self.backbone.out_tap]
        cam = self.classifier(self.dropout(feats))
        h, w = cam.shape[-2:]
        small = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=True)
        small = (small - self.mean) / self.std if self.normalize_input else small
        f = torch.cat(
            [small, F.relu(self.pcm_b4(self._activated(taps, "b4"))), F.relu(self.pcm_b5(self._activated(taps, "b5")))],
            dim=1,
        )
        cam_rv = self.pcm(pcm_input(cam), f)
        fg = F.relu(cam_rv[:, 1:])
        fg = fg / (fg.amax(dim=(2, 3), keepdim=True) + SEAM_EPS)
        masks = torch.cat([fg.new_full((fg.shape[0], 1, h, w), self.bg_score), fg], dim=1)
        return {
            "cls": cam[:, 1:].mean(dim=(2, 3)),
            "logits": cam,
            "cam_rv": cam_rv,
            "masks": masks,
            "feats": {"layer3": taps[self.backbone.skip_tap], "layer6": feats},
        }
