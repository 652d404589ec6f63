"""DeepLab-v2 (Chen et al., TPAMI 2017): ResNet + ASPP classifier of four dilated 3×3 convs whose outputs are
summed; as AdaptSegNet's "DeeplabMulti" (night-uda.md §3), optionally with a second classifier on layer3."""

from __future__ import annotations

from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD
from darkseg.models.segmenters.dense import DenseSegmenter


class ASPPSum(nn.Module):
    """Parallel 3×3 convs (with bias) at dilations ``rates``, summed: the DeepLab-v2 classifier.

    All four branches are summed, as the paper defines it (the AdaptSegNet/DANNet code returns after two,
    night-uda.md §2.10); weights N(0, 0.01), biases 0 as in the reference.
    """

    def __init__(self, cin: int, num_classes: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in rates)
        for conv in self.convs:
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        return out


class DeepLabV2(DenseSegmenter):
    """Backbone (Caffe-style ResNet-101 in the references) → ASPP-sum on the deepest tap, output stride 8.

    ``aux_head``: a second ASPP-sum on the stage before the deepest (layer3), returned as ``aux_logits`` in
    training (DeeplabMulti's multi-level output; it counts in the 44.60 M of night-uda.md §3).
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        *,
        normalize_input: bool = True,
        rates: tuple[int, ...] = (6, 12, 18, 24),
        aux_head: bool = False,
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        self.mask_stride = backbone.strides[backbone.out_tap]
        self.aux_tap = backbone.stage_names[-2]
        self.classifier = ASPPSum(backbone.channels[backbone.out_tap], num_classes, rates)
        self.aux_classifier = ASPPSum(backbone.channels[self.aux_tap], num_classes, rates) if aux_head else None

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict:
        taps = self.backbone_taps(image, depth)
        logits = self.classifier(taps[self.backbone.out_tap])
        aux = None
        if self.training and self.aux_classifier is not None:
            aux = self.aux_classifier(taps[self.aux_tap])
        return self.outputs(logits, taps, aux)
