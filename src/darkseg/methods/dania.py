"""DANIA (one-stage day→night adaptation with image alignment) and DANNet, its special case without alignment.

Per iteration (DANIA §3, Fig. 1): a labelled source image I_s, a night image I_tn and its paired day image I_td go
through one generator G = relighting network + segmenter (``model``, a ``relit`` model config). Phase ``main`` trains
G with Eq. (15): β1·L_light (Eq. 3-7, summed over the three domains) + β2·L_seg (Eq. 8) + β3·L_static (Eq. 9-13,
``methods/static_loss.py``) + β4·L_adv (Eq. 14). Phase ``disc`` trains the discriminators D_d (source vs day) and
D_n (source vs night) with Eq. (16)-(17) on the detached predictions of phase ``main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import kornia
import torch
import torch.nn.functional as F
from pydantic import Field

from darkseg.align.warp import warp_by_flow
from darkseg.data.registry import static_classes
from darkseg.errors import ConfigError
from darkseg.methods.base import METHODS, DatasetInfo, Method, OptimizerSpec, StepOutput, TrainDomain
from darkseg.methods.static_loss import StaticLossConfig, class_weights, static_loss
from darkseg.methods.supervised import segmentation_ce
from darkseg.models.factory import build_segmenter
from darkseg.models.ops.discriminator import FCDiscriminator
from darkseg.models.weights import load_into, read_weights
from darkseg.rng import own_rng
from darkseg.schema import StrictModel

SOURCE_LABEL, TARGET_LABEL = 0.0, 1.0  # r and f of Eq. (14), (16), (17) (DANNet's values)


class LightLossConfig(StrictModel):
    """Weights α of Eq. (7) (DANIA: 10, 1, 10, 1; DANNet has no style term) and the exposure patch of Eq. (4)."""

    tv: float = Field(10.0, ge=0)
    exposure: float = Field(1.0, ge=0)
    style: float = Field(10.0, ge=0)
    ssim: float = Field(1.0, ge=0)
    patch: int = Field(32, ge=1, description="side of the average pooling φ of Eq. (4)")
    ssim_window: int = Field(3, ge=3, description="SSIM window of Eq. (6) (kornia, Gaussian)")


class LossWeights(StrictModel):
    """β of Eq. (15)."""

    light: float = Field(0.01, ge=0)
    seg: float = Field(1.0, ge=0)
    static: float = Field(1.0, ge=0)
    adv: float = Field(0.01, ge=0)


class DANIAConfig(StrictModel):
    """DANIA/DANNet settings (defaults: DANIA's)."""

    name: Literal["dania"] = "dania"
    input: Literal["image"] = "image"
    align: Literal["flow", "image", "night", "none"] = Field(
        "flow", description="flow: warp the day prediction along the data's flow view (Eq. 9; align_flow coarse = "
        "Eq. 18); image: warp the day image instead (Eq. 19); night: warp the night prediction onto the day view "
        "and take the loss there (Eq. 20; needs data.target.align_flow=fine_back); none: take the pair as aligned "
        "(DANNet)")
    class_frequencies: tuple[float, ...] | None = Field(
        None, description="a_k of Eq. (1): share of labelled source pixels per class (e.g. from `darkseg data "
        "check ... --json`); None = no re-weighting (w = 1)")
    reweight_std: float = Field(0.1, ge=0, description="std of Eq. (2) in training (DANNet 0.05)")
    reweight_avg: float = Field(1.0, gt=0, description="avg of Eq. (2)")
    weighted_seg: bool = Field(True, description="Eq. (8) with the class weights w; false = plain CE")
    light: LightLossConfig = LightLossConfig()
    static: StaticLossConfig = StaticLossConfig()
    weights: LossWeights = LossWeights()
    day_domain: bool = Field(True, description="false: no day images (no D_d, no static loss; Table 4 row 'w/o "
                             "Dark Zurich-D')")
    disc_channels: tuple[int, ...] = Field((64, 128, 256, 256), min_length=1)
    init: Path | None = Field(None, description="segmenter weights to start from (e.g. a Cityscapes-trained "
                              "model_final.safetensors of `supervised`), loaded into the segmenter")


def total_variation_loss(light: torch.Tensor) -> torch.Tensor:
    """L_tv = 1/N ‖(∇x(I − R))² + (∇y(I − R))²‖₁ on the light image I − R = −r, Eq. (3) of DANIA."""
    dx = light[..., :, 1:] - light[..., :, :-1]
    dy = light[..., 1:, :] - light[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def exposure_loss(relit: torch.Tensor, level: torch.Tensor, patch: int) -> torch.Tensor:
    """L_exp = 1/M ‖φ(R) − E‖₁ with φ a patch×patch average pooling of the intensity, Eq. (4) of DANIA."""
    y = relit.mean(1, keepdim=True)
    k = min(patch, *y.shape[-2:])
    return (F.avg_pool2d(y, k) - level).abs().mean()


def gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrices F·Fᵀ/(H·W) of B×C×H×W images (B×C×C)."""
    f = x.flatten(2)
    return f @ f.transpose(1, 2) / f.shape[-1]


def style_loss(relit: torch.Tensor, night_gram: torch.Tensor) -> torch.Tensor:
    """L_style = ‖G_R − G_Itn‖₂ (per image, averaged), Eq. (5) of DANIA; ``night_gram`` C×C of the night batch."""
    return (gram(relit) - night_gram).flatten(1).norm(dim=1).mean()


def ssim_loss(image: torch.Tensor, relit: torch.Tensor, window: int) -> torch.Tensor:
    """L_ssim = 1/(2N) ‖1 − SSIM(I, R)‖₁, Eq. (6) of DANIA (kornia's SSIM)."""
    return kornia.losses.ssim_loss(image, relit, window_size=window, max_val=1.0)


def light_loss(image: torch.Tensor, out: dict, level: torch.Tensor, night_gram: torch.Tensor,
               cfg: LightLossConfig) -> torch.Tensor:
    """L_light = α_tv·L_tv + α_exp·L_exp + α_style·L_style + α_ssim·L_ssim, Eq. (7) of DANIA."""
    relit = out["relit"]
    total = cfg.tv * total_variation_loss(out["light"]) + cfg.exposure * exposure_loss(relit, level, cfg.patch)
    if cfg.style:
        total = total + cfg.style * style_loss(relit, night_gram)
    return total + cfg.ssim * ssim_loss(image, relit, cfg.ssim_window)


def generator_adv_loss(score: torch.Tensor) -> torch.Tensor:
    """One term (D(P_t) − r)² of L_adv (least squares, mean over the score map), Eq. (14) of DANIA."""
    return (score - SOURCE_LABEL).pow(2).mean()


def discriminator_loss(score_source: torch.Tensor, score_target: torch.Tensor) -> torch.Tensor:
    """L_d = ½(D(P_s) − r)² + ½(D(P_t) − f)² (means over the score maps), Eq. (16)/(17) of DANIA."""
    return 0.5 * (score_source - SOURCE_LABEL).pow(2).mean() + 0.5 * (score_target - TARGET_LABEL).pow(2).mean()


def _prob(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False).softmax(1)


@METHODS.register("dania")
class DANIAMethod(Method):
    """Generator (``model``: relighting network + segmenter) and discriminators ``d_day``/``d_night``."""

    name = "dania"
    Config = DANIAConfig
    deploy_net = "model"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        self.mcfg: DANIAConfig = cfg.method
        m = self.mcfg
        names = static_classes(cfg.data)
        if not names:
            raise ConfigError(f"data.dataset: {cfg.data.dataset!r} names no static classes; DANIA's static loss "
                              "needs them (a driving dataset, scenes_daynight, or a folder dataset listing them)")
        self.static_ids = [info.class_names.index(n) for n in names]
        target = cfg.data.target
        if m.align == "night" and (target is None or target.align_flow != "fine_back"):
            raise ConfigError("method.align=night (Eq. 20) warps the night prediction along the day→night flow: set "
                              "data.target.align_flow=fine_back")
        freq = m.class_frequencies
        if freq is not None and len(freq) != info.num_classes:
            raise ConfigError(f"method.class_frequencies: {len(freq)} values for {info.num_classes} classes "
                              f"({', '.join(info.class_names)}); give one share per class")
        self.weights = class_weights(freq, m.reweight_std, m.reweight_avg) if freq is not None else None
        self.nets["model"] = build_segmenter(cfg.model, info.num_classes, info.mean, info.std,
                                             load_pretrained=load_external)
        self.relit = hasattr(self.nets["model"], "relight")
        if m.weights.light > 0 and not self.relit:
            raise ConfigError("method.weights.light: the light loss needs a relighting network; use a 'relit' "
                              "model config or set method.weights.light=0")
        if load_external and m.init is not None:
            target = self.nets["model"].segmenter if self.relit else self.nets["model"]
            load_into(target, read_weights(m.init, "method.init"), str(m.init),
                      hint="method.init must be a segmenter of the same model config (its exported "
                      "model_final.safetensors)")
        # Training-only parts: their own seed, the global RNG untouched (paired seeds, architecture.md).
        with own_rng(torch.initial_seed() + 3):
            if m.day_domain:
                self.nets["d_day"] = FCDiscriminator(info.num_classes, m.disc_channels)
            self.nets["d_night"] = FCDiscriminator(info.num_classes, m.disc_channels)

    def train_views(self) -> tuple[str, ...]:
        return ("image", "mask")

    def train_domains(self) -> dict[str, TrainDomain]:
        target = ("image", "day") if self.mcfg.day_domain else ("image",)
        if self.mcfg.day_domain and self.mcfg.align != "none":
            target += ("flow",)
        return {"source": TrainDomain("data", ("image", "mask")), "target": TrainDomain("target", target)}

    def optimizers(self) -> list[OptimizerSpec]:
        model = self.nets["model"]
        gen = [(f"model.{k}", p) for k, p in model.named_parameters() if p.requires_grad]
        prefixes = tuple(f"model.{p}" for p in getattr(model, "pretrained_prefixes", ()))
        disc = [(f"{n}.{k}", p) for n in ("d_day", "d_night") if n in self.nets
                for k, p in self.nets[n].named_parameters()]
        return [OptimizerSpec("main", gen, prefixes), OptimizerSpec("disc", disc)]

    def phases(self) -> list[str]:
        return ["main", "disc"]

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        return self._generator_step(batch, ctx) if phase == "main" else self._discriminator_step(ctx)

    def _generator_step(self, batch: dict, ctx: dict) -> StepOutput:
        m, model = self.mcfg, self.nets["model"]
        src, mask, night = batch["source/image"], batch["source/mask"], batch["target/image"]
        weights = self.weights.to(src.device) if self.weights is not None else None
        level = night.mean().detach()  # E of Eq. (4): mean intensity of this iteration's night inputs
        night_gram = gram(night).mean(0).detach()
        losses: dict[str, torch.Tensor] = {}
        metrics: dict[str, torch.Tensor | float] = {}

        out_s = model(src)
        losses["seg"] = m.weights.seg * segmentation_ce(out_s["logits"], mask, weights if m.weighted_seg else None)
        out_n = model(night)
        p_s, p_n = _prob(out_s["logits"], src.shape[-2:]), _prob(out_n["logits"], night.shape[-2:])
        adv = generator_adv_loss(self.nets["d_night"](p_n))
        light_terms = [(src, out_s), (night, out_n)]
        ctx.update(p_s=p_s.detach(), p_n=p_n.detach())

        if m.day_domain:
            day, flow = batch["target/day"], batch.get("target/flow")
            valid = None
            if m.align == "image":  # Eq. (19): the day image itself is warped onto the night view
                day, valid = warp_by_flow(day, flow)
            out_d = model(day)
            p_d = _prob(out_d["logits"], day.shape[-2:])
            adv = adv + generator_adv_loss(self.nets["d_day"](p_d))
            light_terms.append((day, out_d))
            ctx["p_d"] = p_d.detach()
            if m.weights.static > 0:
                night_logits, size = out_n["logits"], tuple(night.shape[-2:])
                if m.align == "night":  # Eq. (20): the night prediction warped onto the day view, loss taken there
                    night_logits = F.interpolate(night_logits, size=size, mode="bilinear", align_corners=False)
                    night_logits, valid = warp_by_flow(night_logits, flow)
                loss, labels = static_loss(night_logits, out_d["logits"], self.static_ids, weights, m.static,
                                           flow=flow if m.align == "flow" else None, valid=valid, size=size)
                losses["static"] = m.weights.static * loss
                metrics["static_px"] = (labels != 255).float().mean().detach()
        losses["adv"] = m.weights.adv * adv
        if self.relit and m.weights.light > 0:
            light = sum(light_loss(x, o, level, night_gram, m.light) for x, o in light_terms)
            losses["light"] = m.weights.light * light
        return StepOutput(losses=losses, metrics=metrics)

    def _discriminator_step(self, ctx: dict) -> StepOutput:
        losses = {"d_night": discriminator_loss(self.nets["d_night"](ctx["p_s"]), self.nets["d_night"](ctx["p_n"]))}
        if "p_d" in ctx:
            losses["d_day"] = discriminator_loss(self.nets["d_day"](ctx["p_s"]), self.nets["d_day"](ctx["p_d"]))
        return StepOutput(losses=losses)
