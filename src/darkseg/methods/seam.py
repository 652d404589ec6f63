"""SEAM (Wang et al., CVPR 2020): CAMs trained with equivariant regularisation over two views and the PCM.

L = L_cls + L_ER + L_ECR, all weights 1 (wsss-methods.md §3.2): view 1 = the crop, view 2 = the crop rescaled by
``view_scale`` (0.3); every map is compared at view 2's size. With a ``plda`` section, PLDA's losses are added
(methods/plda.py), averaged over the two views.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from darkseg.errors import ConfigError
from darkseg.methods.base import METHODS, DatasetInfo, Method, StepOutput
from darkseg.methods.plda import PLDA, PLDAConfig, attach, classifier_of
from darkseg.methods.wsss_losses import classification_loss
from darkseg.models.factory import SEAMConfig, build_segmenter
from darkseg.models.ops.pcm import SEAM_EPS
from darkseg.schema import StrictModel


class SEAMMethodConfig(StrictModel):
    """SEAM training: the two views and the loss details of wsss-methods.md §3.2; ``plda`` adds PLDA on top."""

    name: Literal["seam"] = "seam"
    input: Literal["image", "dark"] = Field("image", description="which image view to learn from")
    view_scale: float = Field(0.3, gt=0, lt=1, description="rescale factor of the second view")
    ecr_top: float = Field(0.2, gt=0, le=1, description="fraction of the largest |differences| kept by L_ECR")
    min_pool_fraction: float = Field(0.25, gt=0, le=1, description="lowest fraction averaged by the min-pooling")
    plda: PLDAConfig | None = Field(None, description="PLDA plug-in (pixel-level domain adaptation + CPS)")


def max_norm(cam: torch.Tensor) -> torch.Tensor:
    """SEAM's per-class spatial min-max of the ReLU'd map: ReLU(p − min − ε)/(max − min + ε) (wsss-methods.md §3.2)."""
    p = F.relu(cam.float())
    lo, hi = p.amin(dim=(2, 3), keepdim=True), p.amax(dim=(2, 3), keepdim=True)
    return F.relu(p - lo - SEAM_EPS) / (hi - lo + SEAM_EPS)


def with_background(cam: torch.Tensor) -> torch.Tensor:
    """Channel 0 replaced by 1 − max over the foreground channels (SEAM, wsss-methods.md §3.2)."""
    return torch.cat([1.0 - cam[:, 1:].amax(dim=1, keepdim=True), cam[:, 1:]], dim=1)


def max_onehot(cam: torch.Tensor) -> torch.Tensor:
    """Foreground values below the per-pixel foreground maximum set to 0; background kept (SEAM's max_onehot)."""
    fg = cam[:, 1:]
    keep = fg == fg.amax(dim=1, keepdim=True)
    return torch.cat([cam[:, :1], fg * keep], dim=1)


def min_pooling_loss(cam_rv_fg: torch.Tensor, fraction: float = 0.25) -> torch.Tensor:
    """Adaptive min-pooling term of SEAM's L_cls: mean of the lowest ``fraction`` of ReLU(max_c cam_rv) per image
    (SEAM §3.4; wsss-methods.md §3.2)."""
    n, _, h, w = cam_rv_fg.shape
    k = max(1, int(h * w * fraction))
    low = torch.topk(cam_rv_fg.float().amax(dim=1).flatten(1), k, dim=-1, largest=False).values
    return F.relu(low).sum() / (k * n)


def equivariant_loss(cam_down: torch.Tensor, cam_small: torch.Tensor) -> torch.Tensor:
    """L_ER = mean |A(F(I)) − F(A(I))| over the foreground channels of the normalised CAMs (SEAM §3.2, §3.4)."""
    return (cam_down[:, 1:] - cam_small[:, 1:]).abs().mean()


def cross_regularisation(other: torch.Tensor, cam_rv: torch.Tensor, top: float = 0.2) -> torch.Tensor:
    """One direction of L_ECR: mean of the top ``top`` fraction of |max_onehot(other CAM) − cam_rv| per image
    (SEAM §3.4; the reference keeps k = C·h·w·0.2, wsss-methods.md §3.2)."""
    n, c, h, w = cam_rv.shape
    diff = (max_onehot(other.detach()) - cam_rv).abs().flatten(1)
    return torch.topk(diff, max(1, int(c * h * w * top)), dim=-1).values.mean()


def second_view(image: torch.Tensor, scale: float) -> torch.Tensor:
    """The crop rescaled by ``scale`` (bilinear, corners aligned; size floor(H·scale) × floor(W·scale))."""
    h, w = image.shape[-2:]
    return F.interpolate(image, size=(int(h * scale), int(w * scale)), mode="bilinear", align_corners=True)


class SEAMLosses:
    """L_cls, L_ER and L_ECR of SEAM from the network outputs of the two views (wsss-methods.md §3.2)."""

    def __init__(self, cfg: SEAMMethodConfig) -> None:
        self.cfg = cfg

    def __call__(self, out1: dict, out2: dict, size1: tuple[int, int], size2: tuple[int, int],
                 labels: torch.Tensor) -> dict[str, torch.Tensor]:
        def up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
            return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=True)

        keep = torch.cat([torch.ones_like(labels[:, :1]), labels], dim=1).float()[:, :, None, None]
        frac = self.cfg.min_pool_fraction
        cam_rv1, cam_rv2 = up(out1["cam_rv"], size1), up(out2["cam_rv"], size2)
        min_pool = 0.5 * (min_pooling_loss((cam_rv1 * keep)[:, 1:], frac)
                          + min_pooling_loss((cam_rv2 * keep)[:, 1:], frac))
        cls = 0.5 * (classification_loss(out1["cls"], labels) + classification_loss(out2["cls"], labels))
        cam1 = up(max_norm(up(out1["logits"], size1)), size2) * keep
        rv1 = up(max_norm(cam_rv1), size2) * keep
        cam2 = max_norm(up(out2["logits"], size2)) * keep
        rv2 = max_norm(cam_rv2) * keep
        er = equivariant_loss(cam1, cam2)
        cam1, cam2 = with_background(cam1), with_background(cam2)
        top = self.cfg.ecr_top
        ecr = cross_regularisation(cam2, rv1, top) + cross_regularisation(cam1, rv2, top)
        return {"cls": cls, "min_pool": min_pool, "er": er, "ecr": ecr}


@METHODS.register("seam")
class SEAMMethod(Method):
    """SEAM on ``input`` images from image labels; with ``plda`` set, SEAM + PLDA (one extra no-grad pass per view)."""

    name = "seam"
    Config = SEAMMethodConfig
    deploy_net = "model"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        self.mcfg: SEAMMethodConfig = cfg.method
        if not isinstance(cfg.model, SEAMConfig):
            raise ConfigError(f"model.name: method 'seam' needs model 'seam' (PCM and raw CAM), got "
                              f"{cfg.model.name!r}; set model.name: seam")
        self.model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=load_external)
        self.nets["model"] = self.model
        self.losses = SEAMLosses(self.mcfg)
        self.plda: PLDA | None = attach(self.mcfg.plda, self.model, info, cfg.train.iterations, cfg.seed, self.nets,
                                          load_external=load_external)

    def train_views(self) -> tuple[str, ...]:
        return (self.mcfg.input, "labels")

    def input_view(self) -> str:
        return self.mcfg.input

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        image, labels = batch[self.mcfg.input], batch["labels"]
        small = second_view(image, self.mcfg.view_scale)
        model = self.nets["model"]
        out1, out2 = model(image), model(small)
        losses = self.losses(out1, out2, image.shape[-2:], small.shape[-2:], labels)
        metrics: dict[str, torch.Tensor | float] = {}
        if self.plda is not None:
            classifier = classifier_of(self.nets)
            views = [self.plda(model, classifier, x, out, labels, iteration, view)
                     for view, (x, out) in enumerate(((image, out1), (small, out2)))]
            for key in views[0].losses:
                losses[key] = 0.5 * (views[0].losses[key] + views[1].losses[key])
            metrics = {k: 0.5 * (views[0].metrics[k] + views[1].metrics[k]) for k in views[0].metrics}
        return StepOutput(losses=losses, metrics=metrics)
