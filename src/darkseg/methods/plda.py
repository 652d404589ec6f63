"""PLDA (Du, Fu, Liu; TIP 2024): pixel-level domain adaptation between discriminative (source) and
non-discriminative (target) object pixels of a CAM, plus confident pseudo-supervision (CPS). A plug-in: a host
method (SEAM, SSSS, the plain CAM baseline) with a ``plda`` config section builds it with :func:`attach` and calls
:class:`PLDA` once per view with its network, outputs and image (wsss-methods.md §3.4).

L_PLDA = da_weight·L_da (Eq. 5) + cps_source_weight·L_cps^s (Eq. 7) + cps_target_weight·L_cps^t (Eq. 8); weights 1.
The alternatives of the paper's ablations: L_da by pixel-level DANN (Eq. 2), MMD or MADA (Tab. VII); the target
domain by SimpleAssign or MaskAssign-OC (a frozen ordinary classifier scores the erased image, Tab. VIII).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import yaml
from pydantic import Field, ValidationError, model_validator
from torch import nn

from darkseg.errors import ConfigError
from darkseg.methods.base import DatasetInfo, StepOutput
from darkseg.methods.pixel_alignment import (
    SOURCE,
    TARGET,
    domain_labels,
    domain_loss,
    global_domain_loss,
    mada_loss,
    pixel_mmd,
)
from darkseg.methods.wsss_losses import PseudoLabelConfig, balanced_ce, clean_masks, pseudo_labels
from darkseg.metrics import IGNORE_INDEX
from darkseg.models.factory import CAMConfig, build_segmenter
from darkseg.models.ops.domain_classifier import ClassWiseDomainClassifiers, PixelDomainClassifier
from darkseg.models.ops.grl import dann_coefficient, reverse_gradient
from darkseg.models.ops.pamr import PAMR
from darkseg.models.ops.pcm import SEAM_EPS
from darkseg.models.ops.stochastic_gate import StochasticGate
from darkseg.models.weights import load_into, read_weights
from darkseg.rng import own_rng, stream_seed
from darkseg.schema import StrictModel

DOMAIN_NET = "domain"  # the host's ``nets`` key of the domain classifier
# random streams of a run (data.loader.stream_seed): PLDA's parts never draw from the host's global RNG, so a host
# run with and without PLDA (same seed) starts from the same weights and sees the same host draws
_CLASSIFIER_STREAM, _STEP_STREAM, _MMD_STREAM, _OC_STREAM = 0x504C4441, 0x504C4442, 0x504C4443, 0x504C4444
OC_WEIGHTS = "method.plda.oc.weights"  # the config key of MaskAssign-OC's classifier weights


class CPSConfig(PseudoLabelConfig):
    """CPS pseudo labels: SSSS's PAMR refinement and dynamic thresholds; no image gate by default (the public PLDA
    code has none, and without background supervision the SSSS gate would reject almost every image)."""

    image_gate: bool = False


class OCConfig(StrictModel):
    """MaskAssign-OC's ordinary classifier (PLDA Tab. VIII, after OC-CSE, Kweon et al. ICCV 2021): a separately
    trained plain CAM network, frozen, that scores the erased image in place of the host's erased pass."""

    model: CAMConfig | None = Field(
        None, description="its architecture (a `cam` model section); unset: the model section of the run that wrote "
        "the weights (the config.yaml next to them), so overrides of that run's architecture carry over"
    )
    weights: str | None = Field(None, description="its trained weights, e.g. <cam run>/model_final.safetensors")
    target_pseudo: Literal["oc", "host"] = Field(
        "oc", description="CPS target pseudo labels from the OC's CAM of the erased image, or from the host's own "
        "erased pass (one more no-grad forward of the host)"
    )


class PLDAConfig(StrictModel):
    """PLDA settings (paper §III-IV, wsss-methods.md §3.4); the defaults are the paper's/public code's."""

    assign: Literal["mask", "simple", "mask_oc"] = Field(
        "mask", description="MaskAssign (erase the source, second pass), SimpleAssign (dual thresholds) or "
        "MaskAssign-OC (a frozen ordinary classifier, section oc, scores the erased image), Table VIII"
    )
    oc: OCConfig | None = Field(None, description="MaskAssign-OC's ordinary classifier (assign: mask_oc only)")
    theta: float = Field(0.6, gt=0, lt=1, description="source = normalised CAM > theta (Fig. 7a)")
    simple_low: float = Field(0.3, gt=0, lt=1, description="SimpleAssign: target = simple_low < CAM <= theta")
    erased_pass_dropout: bool = Field(
        False, description="dropout (and SSSS's stochastic gate) active in the no-grad erased pass (public code: true)"
    )
    hidden: tuple[int, int] = (1024, 512)
    dropout: float = Field(0.5, ge=0, lt=1)
    ramp_gamma: float = Field(10.0, gt=0, description="GRL coefficient 2/(1+exp(-gamma p)) - 1")
    alignment: Literal["class", "global", "mmd", "mada"] = Field(
        "class", description="Table VII: class-conditional heads (Eq. 5), one global head with plain CE (Eq. 2, "
        "DANN), multi-kernel MMD between source and target pixel features (no classifier), or MADA's class-wise "
        "discriminators on probability-weighted features"
    )
    mmd_pixels: int = Field(256, gt=1, description="MMD: at most this many pixels of each domain per view")
    mmd_bandwidths: tuple[float, ...] = Field(
        (0.25, 0.5, 1.0, 2.0, 4.0), min_length=1,
        description="MMD: Gaussian bandwidths as multiples of the mean pairwise squared distance (DAN's 2^-2..2^2)"
    )
    da_reduction: Literal["labelled", "all"] = Field(
        "labelled", description="per-class mean of Eq. 5 over the class's labelled pixels or over all pixels"
    )
    da_weight: float = Field(1.0, ge=0)
    cps_source_weight: float = Field(1.0, ge=0)
    cps_target_weight: float = Field(1.0, ge=0)
    cps_background: bool = Field(False, description="CPS also supervises background pixels (the public code: no)")
    cps_balanced: bool = Field(True, description="class-balanced CE (SSSS weights) or plain CE over labelled pixels")
    pseudo: CPSConfig = CPSConfig()

    @model_validator(mode="after")
    def _thresholds(self) -> PLDAConfig:
        if self.assign == "simple" and self.simple_low >= self.theta:
            raise ValueError(f"simple_low ({self.simple_low}) must be below theta ({self.theta})")
        if (self.assign == "mask_oc") != (self.oc is not None):
            raise ValueError("oc (the ordinary classifier) is needed by, and only by, assign: mask_oc")
        if any(b <= 0 for b in self.mmd_bandwidths):
            raise ValueError(f"mmd_bandwidths must be positive, got {self.mmd_bandwidths}")
        return self


def normalised_cam(cam: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Foreground CAM for domain assignment: ReLU, per-class spatial min-max, × image labels (PLDA §III-D).

    ``cam`` (B, C, h, w), channel 0 (background) unused: the host's ``masks`` (SEAM: its PCM-refined CAM, max-
    normalised, which min-max maps to the values of the raw ``cam_rv`` up to the 1e-5 floor; SSSS: its
    softmax masks)."""
    fg = F.relu(cam[:, 1:].detach().float())
    lo, hi = fg.amin(dim=(2, 3), keepdim=True), fg.amax(dim=(2, 3), keepdim=True)
    return (fg - lo) / (hi - lo + SEAM_EPS) * labels.float()[:, :, None, None]


def erase(image: torch.Tensor, source: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Masked image, Eq. (6) of PLDA: pixels of any class's source region (nearest-upsampled) set to the mean colour."""
    region = F.interpolate(source.any(dim=1, keepdim=True).float(), size=image.shape[-2:], mode="nearest") > 0
    return torch.where(region, mean.view(1, 3, 1, 1).to(image), image)


def cps_target(pseudo: torch.Tensor, region: torch.Tensor, background: bool) -> torch.Tensor:
    """Pseudo label restricted to a domain's pixels (Eq. 7/8 of PLDA); background ignored unless ``background``."""
    keep = region & (pseudo != IGNORE_INDEX)
    if not background:
        keep &= pseudo != 0
    return torch.where(keep, pseudo, torch.full_like(pseudo, IGNORE_INDEX))


_STOCHASTIC = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
               StochasticGate)


@contextlib.contextmanager
def erased_pass_mode(module: nn.Module, dropout: bool = False) -> Iterator[None]:
    """The state of the erased pass: batch norms normalise with the batch but keep their running statistics (the
    erased images never enter the evaluation statistics; the reference's BN is frozen); unless ``dropout``, every
    dropout layer and stochastic gate in eval mode. Everything is restored afterwards."""
    stochastic = [] if dropout else [m for m in module.modules() if isinstance(m, _STOCHASTIC) and m.training]
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
             and m.track_running_stats]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in stochastic:
        m.eval()
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m in stochastic:
            m.train()
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)



def oc_architecture(cfg: OCConfig) -> CAMConfig:
    """The ordinary classifier's model section: ``cfg.model``, else that of the run whose folder holds
    ``cfg.weights`` (its ``config.yaml``)."""
    if cfg.model is not None:
        return cfg.model
    if not cfg.weights:
        raise ConfigError(f"{OC_WEIGHTS}: MaskAssign-OC needs a trained plain CAM network; train e.g. "
                          "configs/plda/scenes_cam.yaml and pass its model_final.safetensors")
    saved = Path(cfg.weights).parent / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{saved}: not found, so the architecture of {cfg.weights} is unknown; set "
                          "method.plda.oc.model to the model section of the CAM run that wrote the weights")
    try:
        return CAMConfig.model_validate((yaml.safe_load(saved.read_text()) or {}).get("model"))
    except (yaml.YAMLError, ValidationError, AttributeError):
        raise ConfigError(f"{saved}: its model section is not a plain CAM network (model.name: cam); MaskAssign-OC's "
                          f"{OC_WEIGHTS} must come from a `cam` run") from None


def ordinary_classifier(cfg: OCConfig, info: DatasetInfo, run_seed: int, load: bool = True) -> nn.Module:
    """MaskAssign-OC's frozen ordinary classifier: the plain CAM network of :func:`oc_architecture` with its trained
    weights (from ``cfg.weights`` unless ``load`` is off, e.g. for profiling), in eval mode without gradients; built
    from its own seed, so the host's RNG stream is untouched."""
    if load and not cfg.weights:
        raise ConfigError(f"{OC_WEIGHTS}: MaskAssign-OC needs a trained plain CAM network; train e.g. "
                          "configs/plda/scenes_cam.yaml and pass its model_final.safetensors")
    with own_rng(stream_seed(run_seed, _OC_STREAM), torch.device("cpu")):
        oc = build_segmenter(oc_architecture(cfg), info.num_classes, info.mean, info.std, load_pretrained=False)
    if load:
        load_into(oc, read_weights(cfg.weights, OC_WEIGHTS), cfg.weights,
                  hint="method.plda.oc.model (or the run's config.yaml) must describe the CAM run that wrote the file")
    return oc.requires_grad_(False).eval()


class PLDA:
    """PLDA's losses for one view: domain assignment, the adversarial class-conditional domain loss, and CPS.

    The host network's outputs must hold ``masks`` (the localisation map the domains are assigned on),
    ``feats["layer6"]`` (the last feature, which the domain classifier reads; its logits are bilinearly resized to
    the ``masks`` grid when that is finer, e.g. SSSS's stride-4 masks over stride-8 features) and, under
    ``logits_key`` on the ``masks`` grid, the trainable score map CPS supervises, background logit constant (SEAM's
    ``logits`` = raw CAM, SSSS's mask ``logits``, the CAM network's ``raw_cam``). Every random draw of PLDA
    (classifier init, its dropout, the erased pass, MMD's pixel sample) comes from generators seeded by ``run_seed``.
    ``oc``: MaskAssign-OC's frozen ordinary classifier (:func:`ordinary_classifier`), never one of the host's nets.
    """

    def __init__(self, cfg: PLDAConfig, feature_channels: int, info: DatasetInfo, total_iterations: int,
                 run_seed: int, logits_key: str = "logits", oc: nn.Module | None = None) -> None:
        if (cfg.assign == "mask_oc") != (oc is not None):
            raise ValueError("PLDA needs the ordinary classifier exactly when assign is mask_oc")
        self.cfg = cfg
        self.feature_channels = feature_channels
        self.num_fg = info.num_classes - 1
        self.mean = torch.tensor(info.mean, dtype=torch.float32)
        self.total = total_iterations
        self.run_seed = run_seed
        self.logits_key = logits_key
        self.oc = oc
        self.pamr = PAMR(cfg.pseudo.pamr_iters, cfg.pseudo.pamr_dilations, cfg.pseudo.pamr_dilation_grid)

    def build_classifier(self) -> nn.Module | None:
        """The domain classifier (a training-only network of the host method), or None when L_da is off or needs
        none (MMD); initialised from its own seed, so the host's global RNG stream is untouched."""
        if self.cfg.da_weight <= 0 or self.cfg.alignment == "mmd":
            return None
        with own_rng(stream_seed(self.run_seed, _CLASSIFIER_STREAM), torch.device("cpu")):
            if self.cfg.alignment == "mada":
                return ClassWiseDomainClassifiers(self.feature_channels, self.num_fg, self.cfg.hidden,
                                                  self.cfg.dropout)
            heads = self.num_fg if self.cfg.alignment == "class" else 1
            return PixelDomainClassifier(self.feature_channels, heads, self.cfg.hidden, self.cfg.dropout)


    @torch.no_grad()
    def pseudo_label(self, image: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CPS pseudo label at feature resolution: softmax of the raw CAM with background logit 1, PAMR on the image
        resized to the feature size, × labels, dynamic per-class thresholds (PLDA §III-E; wsss-methods.md §3.4)."""
        p = self.cfg.pseudo
        small = F.interpolate(image.float(), size=logits.shape[-2:], mode="bilinear", align_corners=True)
        refined = self.pamr(small, self.class_probs(logits))
        return pseudo_labels(clean_masks(refined, labels), p.fg_cut, p.bg_cut, p.floor)

    @staticmethod
    def class_probs(logits: torch.Tensor) -> torch.Tensor:
        """Detached per-pixel class probabilities of a score map: softmax with the background logit set to 1 (CPS)."""
        logits = logits.detach().float()
        return torch.softmax(torch.cat([torch.ones_like(logits[:, :1]), logits[:, 1:]], dim=1), dim=1)

    def _ce(self, logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE of Eq. (7)/(8): SSSS's class-balanced CE, or plain CE over the labelled pixels."""
        if self.cfg.cps_balanced:
            return balanced_ce(logits, target, labels, self.cfg.pseudo.image_gate)[0]
        if not bool((target != IGNORE_INDEX).any()):
            return logits.float().sum() * 0.0
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX)

    def _erased_pass(self, model: nn.Module, erased: torch.Tensor, depth: torch.Tensor | None) -> dict:
        """The host network on the erased image: no gradient, in :func:`erased_pass_mode`."""
        with torch.no_grad(), erased_pass_mode(model, self.cfg.erased_pass_dropout):
            return model(erased) if depth is None else model(erased, depth)

    @torch.no_grad()
    def _oc_pass(self, erased: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The ordinary classifier on the erased image: its masks and raw CAM, bilinearly resized to ``size``."""
        oc = self.oc.to(erased.device).eval()
        out = oc(erased)
        maps = [out[key].float() for key in ("masks", "raw_cam")]
        if maps[0].shape[-2:] != size:
            maps = [F.interpolate(m, size=size, mode="bilinear", align_corners=True) for m in maps]
        return maps[0], maps[1]

    def assign(self, model: nn.Module | None, image: torch.Tensor, out: dict, labels: torch.Tensor,
               depth: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Domain labels (B, K, h, w) by MaskAssign, MaskAssign-OC or SimpleAssign (§III-D, Table VIII), with the
        image and the score map (None: the host's own) CPS labels the target pixels from: the erased image and the
        erased pass's ``logits_key`` map (MaskAssign), or the OC's raw CAM (MaskAssign-OC, ``oc.target_pseudo: oc``)
        or the host's erased pass (``host``); the original image and None (SimpleAssign)."""
        cfg = self.cfg
        score = normalised_cam(out["masks"], labels)
        source = score > cfg.theta
        if cfg.assign == "simple":
            return domain_labels(source, (score > cfg.simple_low) & ~source), image, None
        erased = erase(image, source, self.mean)
        if cfg.assign == "mask_oc":
            oc_masks, oc_logits = self._oc_pass(erased, out["masks"].shape[-2:])
            target = normalised_cam(oc_masks, labels) > cfg.theta
            if cfg.oc.target_pseudo == "host" and cfg.cps_target_weight > 0:
                oc_logits = self._erased_pass(model, erased, depth)[self.logits_key]
            return domain_labels(source, target), erased, oc_logits
        erased_out = self._erased_pass(model, erased, depth)
        target = normalised_cam(erased_out["masks"], labels) > cfg.theta
        return domain_labels(source, target), erased, erased_out[self.logits_key]

    def alignment_loss(self, classifier: nn.Module | None, out: dict, domain: torch.Tensor, labels: torch.Tensor,
                       alpha: float, generator: torch.Generator) -> torch.Tensor:
        """L_da by ``alignment``: Eq. (5), Eq. (2) or MADA behind the GRL (coefficient ``alpha``), or MMD (no GRL)."""
        cfg = self.cfg
        feats = out["feats"]["layer6"]
        if cfg.alignment == "mmd":
            return pixel_mmd(feats, domain, cfg.mmd_pixels, cfg.mmd_bandwidths, generator)
        if classifier is None:
            raise ValueError(f"alignment {cfg.alignment!r} needs the host's domain classifier")
        if cfg.alignment == "mada":
            probs = self.class_probs(out[self.logits_key])[:, 1:] * labels.float()[:, :, None, None]
            if probs.shape[-2:] != feats.shape[-2:]:
                probs = F.interpolate(probs, size=feats.shape[-2:], mode="bilinear", align_corners=True)
            d_logits = classifier(reverse_gradient(feats, alpha), probs)
        else:
            d_logits = classifier(reverse_gradient(feats, alpha))
        if d_logits.shape[-2:] != domain.shape[-2:]:
            b, k = d_logits.shape[:2]
            d_logits = F.interpolate(d_logits.flatten(1, 2), size=domain.shape[-2:], mode="bilinear",
                                     align_corners=True).view(b, k, 2, *domain.shape[-2:])
        if cfg.alignment == "class":
            return domain_loss(d_logits, domain, cfg.da_reduction)
        return global_domain_loss(d_logits, domain) if cfg.alignment == "global" else mada_loss(d_logits, domain)

    def __call__(self, model: nn.Module | None, classifier: nn.Module | None, image: torch.Tensor, out: dict,
                 labels: torch.Tensor, iteration: int, view: int = 0, depth: torch.Tensor | None = None
                 ) -> StepOutput:
        """PLDA's weighted losses for one view (``view`` numbers the host's views of one iteration): L_da (Eq. 5)
        behind the GRL, L_cps on source (Eq. 7) and target (Eq. 8) pixels; the target's pseudo label comes from the
        erased pass (MaskAssign), the OC (MaskAssign-OC) or the original CAM. Draws from generators seeded by (run
        seed, iteration, view)."""
        with own_rng(stream_seed(self.run_seed, _STEP_STREAM, iteration, view), image.device):
            generator = torch.Generator().manual_seed(stream_seed(self.run_seed, _MMD_STREAM, iteration, view))
            return self._losses(model, classifier, image, out, labels, iteration, depth, generator)

    def _losses(self, model: nn.Module | None, classifier: nn.Module | None, image: torch.Tensor, out: dict,
                labels: torch.Tensor, iteration: int, depth: torch.Tensor | None,
                generator: torch.Generator) -> StepOutput:
        cfg = self.cfg
        domain, target_image, target_logits = self.assign(model, image, out, labels, depth)
        own = out[self.logits_key]
        losses: dict[str, torch.Tensor] = {}
        alpha = dann_coefficient(iteration / max(self.total, 1), cfg.ramp_gamma)
        if cfg.da_weight > 0 and (classifier is not None or cfg.alignment == "mmd"):
            losses["da"] = cfg.da_weight * self.alignment_loss(classifier, out, domain, labels, alpha, generator)
        for name, weight, dom, img, src in (
                ("cps_source", cfg.cps_source_weight, SOURCE, image, own),
                ("cps_target", cfg.cps_target_weight, TARGET, target_image,
                 own if target_logits is None else target_logits)):
            if weight > 0:
                pseudo = self.pseudo_label(img, src, labels)
                tgt = cps_target(pseudo, (domain == dom).any(dim=1), cfg.cps_background)
                losses[name] = weight * self._ce(own, tgt, labels)
        metrics = {
            "plda/alpha": alpha,
            "plda/source_frac": (domain == SOURCE).any(dim=1).float().mean(),
            "plda/target_frac": (domain == TARGET).any(dim=1).float().mean(),
        }
        return StepOutput(losses=losses, metrics=metrics)


def attach(cfg: PLDAConfig | None, model: nn.Module, info: DatasetInfo, total_iterations: int, run_seed: int,
           nets: nn.ModuleDict, logits_key: str = "logits", load_external: bool = True) -> PLDA | None:
    """PLDA for a host method's ``plda`` section (None: no PLDA) on the host network ``model`` (its CPS score map
    under ``logits_key``); its domain classifier, if any, joins the host's ``nets`` as ``domain`` (a training-only
    net: never in the deployed model). MaskAssign-OC's classifier is loaded (unless ``load_external`` is off) and kept
    by the PLDA object: it is neither trained nor checkpointed."""
    if cfg is None:
        return None
    oc = ordinary_classifier(cfg.oc, info, run_seed, load_external) if cfg.oc is not None else None
    plda = PLDA(cfg, model.feature_channels["layer6"], info, total_iterations, run_seed, logits_key, oc)
    classifier = plda.build_classifier()
    if classifier is not None:
        nets[DOMAIN_NET] = classifier
    return plda


def classifier_of(nets: nn.ModuleDict) -> nn.Module | None:
    """The host's domain classifier (None when L_da is off or needs none)."""
    return nets[DOMAIN_NET] if DOMAIN_NET in nets else None
