"""CCDistill: cross-domain correlation distillation for day→night adaptation (Gao et al., CVPR 2022).

Four domains per iteration: S_d (labelled source day, ``source/image``), S_n (S_d with the LAB mean and std of a
target night image), T_d and T_n (the target pair, ``target/day`` and ``target/image``). M_d sees S_d and T_d,
M_n sees S_n and T_n; M_n is the deployed network. Total loss, Eq. 8 of CCDistill:
L = L_seg_n + L_seg_d + L_pseudo + λ1·L_CDC + λ2·L_CDS, with class-weighted CE on S_n and S_d, the shared static
loss (``methods.static_loss``) on T_n from M_d's prediction on T_d, the content correlations of the projected
embeddings (Eq. 1-4) and the style correlations of Gram matrices (Eq. 5-7), both on ``feats[feature]``.

Paired seeds: M_n is built from the run's RNG exactly as the source-only model is; M_d starts as a copy of M_n
(both from ``init`` when set); the projection head is built under its own seed; M_d's forward passes (dropout) and
the choice of each LAB reference image draw from generators seeded by (run seed, iteration), never from the
global RNG the deployed M_n draws from.
"""

from __future__ import annotations

import copy
from typing import Literal

import kornia.color
import torch
import torch.nn.functional as F
from pydantic import Field

from darkseg.data.registry import static_classes
from darkseg.errors import ConfigError
from darkseg.methods import correlation_losses as C
from darkseg.methods.base import METHODS, DatasetInfo, Method, StepOutput, TrainDomain
from darkseg.methods.static_loss import StaticLossConfig, class_weights, static_loss
from darkseg.methods.supervised import segmentation_ce
from darkseg.models.factory import build_segmenter
from darkseg.models.ops.project_head import ProjectHead
from darkseg.models.weights import load_into, read_weights
from darkseg.rng import own_rng, stream_seed
from darkseg.schema import StrictModel

DOMAINS = ("sd", "sn", "td", "tn")
_HEAD_STREAM, _DAY_STREAM, _LAB_STREAM = 19_1, 19_2, 19_3  # numbered random streams of this method


class CDCConfig(StrictModel):
    """Cross-domain content distillation, Eq. 1-4 (``weight`` = λ1); switches for the Table 3 ablations."""

    weight: float = Field(2.0, ge=0, description="λ1 of Eq. 8; 0 = w/o CDC")
    project_head: bool = Field(True, description="false = embeddings are the L2-normalised features themselves")
    embed_dim: int = Field(256, ge=1, description="output size of the projection head")
    head_hidden: int | None = Field(None, ge=1, description="hidden 1×1-conv width; None = the feature's channels")
    head_batch_norm: bool = Field(True, description="BatchNorm after the head's first conv ([47]); false collapses")
    granularity: C.Granularity = Field("patch", description="positions of an embedding e_D: pixel, patch, image")
    patch_grid: int = Field(4, ge=1, description="patch granularity: a grid×grid average-pooled grid")
    correlation: C.CorrelationForm = Field(
        "paired", description="paired: cosine of the same position in both domains; graph: every position pair")
    illumination: bool = Field(True, description="the Cor_illu term (Eq. 2); false = w/o illuminance correlation")
    inherent: bool = Field(True, description="the Cor_in term (Eq. 3); false = w/o inherent correlation")
    js: bool = Field(True, description="the L_JS term (Eq. 1); false = w/o L_JS")
    js_lambda: float = Field(4.0, ge=0, description="λ of Eq. 1")
    js_temperature: float = Field(0.1, gt=0, description="temperature of the softmax that makes e_D a distribution")
    js_axis: C.JSAxis = Field("channels", description="softmax over the channels of a position, or the positions")
    detach_guide: bool = Field(True, description="Cor_illu_S and Cor_in_d are fixed targets (no gradient)")


class CDSConfig(StrictModel):
    """Cross-domain style distillation, Eq. 5-7 (``weight`` = λ2)."""

    weight: float = Field(1.0, ge=0, description="λ2 of Eq. 8; 0 = w/o CDS")
    guide: Literal["source", "target"] = Field(
        "target", description="which of Cor_G_S / Cor_G_T is the fixed target (target: S_n takes T_n's style)")
    detach_guide: bool = True


class PseudoConfig(StrictModel):
    """L_pseudo: the shared static loss on T_n with M_d's prediction on T_d (fused with M_n's) as pseudo labels."""

    weight: float = Field(1.0, ge=0)
    static: StaticLossConfig = StaticLossConfig()
    use_flow: bool = Field(False, description="warp M_d's T_d prediction along target/flow (darkseg align)")


class CCDistillConfig(StrictModel):
    """CCDistill training of M_d and M_n (deployed) on source day/night and target day/night images."""

    name: Literal["ccdistill"] = "ccdistill"
    input: Literal["image"] = Field("image", description="the deployed M_n reads the night image")
    init: str | None = Field(None, description="trained segmenter weights both M_d and M_n start from, e.g. a "
                             "source-only run's model_final.safetensors; None = model.backbone.pretrained")
    lab_transfer: bool = Field(True, description="S_n = S_d with a T_n image's LAB mean/std; false = S_n is S_d")
    feature: str = Field("layer6", description="the segmenter feats entry F_D used by CDC and CDS")
    class_frequencies: tuple[float, ...] | None = Field(
        None, description="pixel frequency of each class in the source; None = unweighted CE and static loss")
    class_weight_std: float = Field(0.05, ge=0, description="std of the class weights (DANNet: 0.05 in training)")
    aux_weight: float = Field(0.0, ge=0, description="CE weight of an auxiliary head (DANNet uses none)")
    cdc: CDCConfig = CDCConfig()
    cds: CDSConfig = CDSConfig()
    pseudo: PseudoConfig = PseudoConfig()


def lab_transfer(source: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """S_n: each source image with the per-channel LAB mean and std of its reference image (§3.2 of CCDistill).

    ``source``, ``reference``: (B, 3, H, W) RGB in [0, 1] (sizes may differ); returns RGB in [0, 1].
    """
    src, ref = kornia.color.rgb_to_lab(source.float()), kornia.color.rgb_to_lab(reference.float())
    mu_s, sd_s = src.mean((2, 3), keepdim=True), src.std((2, 3), unbiased=False, keepdim=True)
    mu_r, sd_r = ref.mean((2, 3), keepdim=True), ref.std((2, 3), unbiased=False, keepdim=True)
    out = (src - mu_s) * sd_r / (sd_s + eps) + mu_r
    return kornia.color.lab_to_rgb(out, clip=True).to(source.dtype)



@METHODS.register("ccdistill")
class CCDistillMethod(Method):
    """M_d and M_n trained jointly with cross-domain content and style correlation distillation; M_n is deployed."""

    name = "ccdistill"
    Config = CCDistillConfig
    deploy_net = "night"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        m: CCDistillConfig = cfg.method
        self.mcfg, self.run_seed = m, cfg.seed
        night = build_segmenter(cfg.model, info.num_classes, info.mean, info.std,
                                load_pretrained=load_external and m.init is None)
        if load_external and m.init:
            load_into(night, read_weights(m.init, "method.init"), m.init,
                      hint="method.init must be a segmenter of model's config")
        if m.feature not in night.feature_channels:
            raise ConfigError(f"method.feature: {m.feature!r} is not a feature of {cfg.model.name}; "
                              f"choose one of {', '.join(night.feature_channels)}")
        self.nets["night"] = night
        self.nets["day"] = copy.deepcopy(night)
        if m.cdc.weight > 0 and m.cdc.project_head:
            with own_rng(stream_seed(cfg.seed, _HEAD_STREAM)):
                self.nets["head"] = ProjectHead(night.feature_channels[m.feature], m.cdc.embed_dim,
                                                 m.cdc.head_hidden, m.cdc.head_batch_norm)
        self.static_ids = self._static_ids(cfg)
        freqs = m.class_frequencies
        if freqs is not None and len(freqs) != info.num_classes:
            raise ConfigError(f"method.class_frequencies: {len(freqs)} values for {info.num_classes} classes "
                              f"({', '.join(info.class_names)}); give one per class")
        with torch.device("cpu"):  # a constant, also when the networks are built on another device (profile)
            self.weights = class_weights(freqs, m.class_weight_std) if freqs is not None else None

    def _static_ids(self, cfg) -> tuple[int, ...]:  # noqa: ANN001
        """Indices of the target dataset's static classes (L_pseudo supervises only these)."""
        if self.mcfg.pseudo.weight == 0:
            return ()
        data = cfg.data.target or cfg.data
        names = static_classes(data)
        if not names:
            raise ConfigError(f"data.target.dataset: {data.dataset!r} names no static classes, which L_pseudo needs; "
                              "use a dataset with static classes or set method.pseudo.weight=0")
        return tuple(self.info.class_names.index(n) for n in names)

    def train_views(self) -> tuple[str, ...]:
        return ("image", "mask")

    def train_domains(self) -> dict[str, TrainDomain]:
        """Labelled source (S_d) and unlabelled target pairs (T_n ``image``, T_d ``day``, optional ``flow``)."""
        target = ("image", "day", "flow") if self.mcfg.pseudo.use_flow else ("image", "day")
        return {"source": TrainDomain("data", self.train_views()), "target": TrainDomain("target", target)}

    def input_view(self) -> str:
        return "image"

    def source_night(self, s_day: torch.Tensor, t_night: torch.Tensor, iteration: int) -> torch.Tensor:
        """S_n: every S_d image LAB-transferred to a T_n image of the batch drawn by a (seed, iteration) generator."""
        if not self.mcfg.lab_transfer:
            return s_day
        gen = torch.Generator().manual_seed(stream_seed(self.run_seed, _LAB_STREAM, iteration))
        pick = torch.randint(len(t_night), (len(s_day),), generator=gen).to(t_night.device)
        return lab_transfer(s_day, t_night.index_select(0, pick))

    def _embeddings(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.mcfg.cdc
        return {k: C.position_embeddings(self.nets["head"](f) if "head" in self.nets else F.normalize(f, dim=1),
                                         c.granularity, c.patch_grid) for k, f in feats.items()}

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        """The terms of L, Eq. 8 of CCDistill; each domain is its own forward pass (own BatchNorm statistics)."""
        m = self.mcfg
        s_day, mask = batch["source/image"], batch["source/mask"]
        t_night, t_day = batch["target/image"], batch["target/day"]
        images = {"sd": s_day, "sn": self.source_night(s_day, t_night, iteration), "td": t_day, "tn": t_night}
        with own_rng(stream_seed(self.run_seed, _DAY_STREAM, iteration), s_day.device):
            out = {k: self.nets["day"](images[k]) for k in ("sd", "td")}
        out.update({k: self.nets["night"](images[k]) for k in ("sn", "tn")})
        weight = self.weights.to(s_day.device) if self.weights is not None else None
        losses = {"seg_night": segmentation_ce(out["sn"]["logits"], mask, weight),
                  "seg_day": segmentation_ce(out["sd"]["logits"], mask, weight)}
        if m.aux_weight > 0 and "aux_logits" in out["sn"]:
            losses["aux"] = m.aux_weight * (segmentation_ce(out["sn"]["aux_logits"], mask, weight)
                                            + segmentation_ce(out["sd"]["aux_logits"], mask, weight))
        metrics: dict[str, torch.Tensor | float] = {}
        if m.pseudo.weight > 0:
            flow = batch["target/flow"] if m.pseudo.use_flow else None
            pseudo, labels = static_loss(out["tn"]["logits"], out["td"]["logits"], self.static_ids, weight,
                                         m.pseudo.static, flow=flow, size=tuple(t_night.shape[-2:]))
            losses["pseudo"] = m.pseudo.weight * pseudo
            metrics["pseudo_labelled"] = (labels != 255).float().mean().detach()
        feats = {k: out[k]["feats"][m.feature] for k in DOMAINS}
        if m.cdc.weight > 0:
            cdc, parts = self._cdc(feats)
            losses["cdc"] = m.cdc.weight * cdc
            metrics.update({f"cdc_{k}": v.detach() for k, v in parts.items()})
        if m.cds.weight > 0:
            grams = {k: C.gram(f) for k, f in feats.items()}
            cds = C.cds_loss(grams, m.cds.guide, m.cds.detach_guide)
            losses["cds"] = m.cds.weight * cds
            metrics["cds"] = cds.detach()
        return StepOutput(losses=losses, metrics=metrics)

    def _cdc(self, feats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_CDC of Eq. 4 with the ablation switches, and its terms for logging."""
        c = self.mcfg.cdc
        if c.granularity == "pixel" and len({tuple(f.shape[-2:]) for f in feats.values()}) > 1:
            raise ConfigError("method.cdc.granularity: pixel needs source and target features of one size "
                              f"(got {[tuple(f.shape[-2:]) for f in feats.values()]}); use patch or equal crops")
        e = self._embeddings(feats)
        terms = C.cdc_terms(e, c.correlation, c.detach_guide)
        parts = {k: v for k, v in terms.items() if getattr(c, k)}
        if c.js:
            parts["js"] = C.js_loss(e, c.js_lambda, c.js_temperature, c.js_axis)
        total = sum(parts.values(), torch.zeros((), device=next(iter(feats.values())).device))
        return total, parts
