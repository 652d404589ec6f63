"""PLDA (Du, Fu, Liu; TIP 2024): pixel-level domain adaptation between discriminative (source) and
non-discriminative (target) object pixels of a CAM, plus confident pseudo-supervision (CPS). A plug-in: a host
method (SEAM, SSSS) with a ``plda`` config section builds it with :func:`attach` and calls :class:`PLDA` once per
view with its network, outputs and image (wsss-methods.md §3.4).

L_PLDA = da_weight·L_da (Eq. 5) + cps_source_weight·L_cps^s (Eq. 7) + cps_target_weight·L_cps^t (Eq. 8); weights 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from darkseg.methods.base import DatasetInfo, StepOutput
from darkseg.methods.wsss_losses import PseudoLabelConfig, balanced_ce, clean_masks, pseudo_labels
from darkseg.metrics import IGNORE_INDEX
from darkseg.models.ops.domain_classifier import PixelDomainClassifier
from darkseg.models.ops.grl import dann_coefficient, reverse_gradient
from darkseg.models.ops.pamr import PAMR
from darkseg.models.ops.pcm import SEAM_EPS
from darkseg.models.ops.stochastic_gate import StochasticGate
from darkseg.rng import own_rng, stream_seed
from darkseg.schema import StrictModel

SOURCE, TARGET = 0, 1
DOMAIN_NET = "domain"  # the host's ``nets`` key of the domain classifier
# random streams of a run (data.loader.stream_seed): PLDA's parts never draw from the host's global RNG, so a host
# run with and without PLDA (same seed) starts from the same weights and sees the same host draws
_CLASSIFIER_STREAM, _STEP_STREAM = 0x504C4441, 0x504C4442


class CPSConfig(PseudoLabelConfig):
    """CPS pseudo labels: SSSS's PAMR refinement and dynamic thresholds; no image gate by default (the public PLDA
    code has none, and without background supervision the SSSS gate would reject almost every image)."""

    image_gate: bool = False


class PLDAConfig(StrictModel):
    """PLDA settings (paper §III-IV, wsss-methods.md §3.4); the defaults are the paper's/public code's."""

    assign: Literal["mask", "simple"] = Field(
        "mask", description="MaskAssign (erase the source, second pass) or SimpleAssign (dual thresholds), Table VIII"
    )
    theta: float = Field(0.6, gt=0, lt=1, description="source = normalised CAM > theta (Fig. 7a)")
    simple_low: float = Field(0.3, gt=0, lt=1, description="SimpleAssign: target = simple_low < CAM <= theta")
    erased_pass_dropout: bool = Field(
        False, description="dropout (and SSSS's stochastic gate) active in the no-grad erased pass (public code: true)"
    )
    hidden: tuple[int, int] = (1024, 512)
    dropout: float = Field(0.5, ge=0, lt=1)
    ramp_gamma: float = Field(10.0, gt=0, description="GRL coefficient 2/(1+exp(-gamma p)) - 1")
    alignment: Literal["class", "global"] = Field(
        "class", description="class-conditional heads (Eq. 5) or one global head with plain CE (Eq. 2, Table VII DANN)"
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


def domain_labels(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-class domain label (B, K, h, w): 0 source, 1 target, 255 unassigned; source wins on overlap (§III-D)."""
    label = torch.full(source.shape, IGNORE_INDEX, dtype=torch.long, device=source.device)
    label[target] = TARGET
    label[source] = SOURCE
    return label


def domain_loss(logits: torch.Tensor, domain: torch.Tensor, reduction: str = "labelled") -> torch.Tensor:
    """Class-conditional domain loss, Eq. (5) of PLDA: per class head, CE weighted by (1 + exp(−H)) (H = entropy of
    the detached prediction) and by the per-image balance (N − N_d)/(1 + N); mean per class, summed over classes."""
    logp = F.log_softmax(logits.float(), dim=2)  # (B, K, 2, h, w)
    entropy = -(logp.detach().exp() * logp.detach()).sum(dim=2)
    valid = domain != IGNORE_INDEX
    safe = torch.where(valid, domain, torch.zeros_like(domain))
    ce = -logp.gather(2, safe.unsqueeze(2)).squeeze(2)
    n_src = (domain == SOURCE).flatten(2).sum(-1).float()  # (B, K)
    n_tgt = (domain == TARGET).flatten(2).sum(-1).float()
    n_tot = (n_src + n_tgt)[:, :, None, None]
    n_own = torch.where(safe == SOURCE, n_src[:, :, None, None], n_tgt[:, :, None, None])
    weight = (1.0 + torch.exp(-entropy)) * (n_tot - n_own) / (1.0 + n_tot) * valid
    per_class = (weight * ce).sum(dim=(0, 2, 3))
    count = valid.sum(dim=(0, 2, 3)) if reduction == "labelled" else torch.full_like(per_class, valid[:, 0].numel())
    return (per_class / count.clamp_min(1)).sum()


def global_domain_loss(logits: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """Pixel-level DANN loss, Eq. (2) of PLDA: one head, CE over the pixels of either domain (any class; source wins)."""
    merged = torch.full_like(domain[:, 0], IGNORE_INDEX)
    merged[(domain == TARGET).any(dim=1)] = TARGET
    merged[(domain == SOURCE).any(dim=1)] = SOURCE
    if not bool((merged != IGNORE_INDEX).any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits[:, 0].float(), merged, ignore_index=IGNORE_INDEX)


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



class PLDA:
    """PLDA's losses for one view: domain assignment, the adversarial class-conditional domain loss, and CPS.

    The host network's outputs must hold ``logits`` (B×C×h×w, background logit constant: SEAM's raw CAM, SSSS's
    mask logits), ``masks`` (the localisation map the domains are assigned on, same grid) and ``feats["layer6"]``
    (the last feature, which the domain classifier reads; its logits are bilinearly resized to the ``masks`` grid
    when that is finer, e.g. SSSS's stride-4 masks over stride-8 features). Every random draw of PLDA (classifier
    init, its dropout, the erased pass) comes from generators seeded by ``run_seed``.
    """

    def __init__(self, cfg: PLDAConfig, feature_channels: int, info: DatasetInfo, total_iterations: int,
                 run_seed: int) -> None:
        self.cfg = cfg
        self.feature_channels = feature_channels
        self.num_fg = info.num_classes - 1
        self.mean = torch.tensor(info.mean, dtype=torch.float32)
        self.total = total_iterations
        self.run_seed = run_seed
        self.pamr = PAMR(cfg.pseudo.pamr_iters, cfg.pseudo.pamr_dilations, cfg.pseudo.pamr_dilation_grid)

    def build_classifier(self) -> PixelDomainClassifier | None:
        """The domain classifier (a training-only network of the host method), or None when L_da is off; initialised
        from its own seed, so the host's global RNG stream is untouched."""
        if self.cfg.da_weight <= 0:
            return None
        heads = self.num_fg if self.cfg.alignment == "class" else 1
        with own_rng(stream_seed(self.run_seed, _CLASSIFIER_STREAM), torch.device("cpu")):
            return PixelDomainClassifier(self.feature_channels, heads, self.cfg.hidden, self.cfg.dropout)


    @torch.no_grad()
    def pseudo_label(self, image: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CPS pseudo label at feature resolution: softmax of the raw CAM with background logit 1, PAMR on the image
        resized to the feature size, × labels, dynamic per-class thresholds (PLDA §III-E; wsss-methods.md §3.4)."""
        p = self.cfg.pseudo
        logits = logits.detach().float()
        probs = torch.softmax(torch.cat([torch.ones_like(logits[:, :1]), logits[:, 1:]], dim=1), dim=1)
        small = F.interpolate(image.float(), size=logits.shape[-2:], mode="bilinear", align_corners=True)
        refined = self.pamr(small, probs)
        return pseudo_labels(clean_masks(refined, labels), p.fg_cut, p.bg_cut, p.floor)

    def _ce(self, logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE of Eq. (7)/(8): SSSS's class-balanced CE, or plain CE over the labelled pixels."""
        if self.cfg.cps_balanced:
            return balanced_ce(logits, target, labels, self.cfg.pseudo.image_gate)[0]
        if not bool((target != IGNORE_INDEX).any()):
            return logits.float().sum() * 0.0
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX)

    def assign(self, model: nn.Module | None, image: torch.Tensor, out: dict, labels: torch.Tensor,
               depth: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, dict | None]:
        """Domain labels (B, K, h, w) by MaskAssign or SimpleAssign (§III-D, Table VIII), with the erased image and
        the outputs of the no-grad pass on it (MaskAssign) or the original image and None (SimpleAssign)."""
        cfg = self.cfg
        score = normalised_cam(out["masks"], labels)
        source = score > cfg.theta
        if cfg.assign == "simple":
            return domain_labels(source, (score > cfg.simple_low) & ~source), image, None
        erased = erase(image, source, self.mean)
        with torch.no_grad(), erased_pass_mode(model, cfg.erased_pass_dropout):
            erased_out = model(erased) if depth is None else model(erased, depth)
        target = normalised_cam(erased_out["masks"], labels) > cfg.theta
        return domain_labels(source, target), erased, erased_out

    def __call__(self, model: nn.Module | None, classifier: nn.Module | None, image: torch.Tensor, out: dict,
                 labels: torch.Tensor, iteration: int, view: int = 0, depth: torch.Tensor | None = None
                 ) -> StepOutput:
        """PLDA's weighted losses for one view (``view`` numbers the host's views of one iteration): L_da (Eq. 5)
        behind the GRL, L_cps on source (Eq. 7) and target (Eq. 8) pixels; the target's pseudo label comes from the
        erased pass (MaskAssign) or the original CAM. Draws from a generator seeded by (run seed, iteration, view)."""
        with own_rng(stream_seed(self.run_seed, _STEP_STREAM, iteration, view), image.device):
            return self._losses(model, classifier, image, out, labels, iteration, depth)

    def _losses(self, model: nn.Module | None, classifier: nn.Module | None, image: torch.Tensor, out: dict,
                labels: torch.Tensor, iteration: int, depth: torch.Tensor | None) -> StepOutput:
        cfg = self.cfg
        domain, target_image, target_out = self.assign(model, image, out, labels, depth)
        target_out = target_out or out
        losses: dict[str, torch.Tensor] = {}
        alpha = dann_coefficient(iteration / max(self.total, 1), cfg.ramp_gamma)
        if classifier is not None:
            d_logits = classifier(reverse_gradient(out["feats"]["layer6"], alpha))
            if d_logits.shape[-2:] != domain.shape[-2:]:
                b, k = d_logits.shape[:2]
                d_logits = F.interpolate(d_logits.flatten(1, 2), size=domain.shape[-2:], mode="bilinear",
                                         align_corners=True).view(b, k, 2, *domain.shape[-2:])
            loss = (domain_loss(d_logits, domain, cfg.da_reduction) if cfg.alignment == "class"
                    else global_domain_loss(d_logits, domain))
            losses["da"] = cfg.da_weight * loss
        for name, weight, dom, img, src in (("cps_source", cfg.cps_source_weight, SOURCE, image, out),
                                            ("cps_target", cfg.cps_target_weight, TARGET, target_image, target_out)):
            if weight > 0:
                pseudo = self.pseudo_label(img, src["logits"], labels)
                tgt = cps_target(pseudo, (domain == dom).any(dim=1), cfg.cps_background)
                losses[name] = weight * self._ce(out["logits"], tgt, labels)
        metrics = {
            "plda/alpha": alpha,
            "plda/source_frac": (domain == SOURCE).any(dim=1).float().mean(),
            "plda/target_frac": (domain == TARGET).any(dim=1).float().mean(),
        }
        return StepOutput(losses=losses, metrics=metrics)


def attach(cfg: PLDAConfig | None, model: nn.Module, info: DatasetInfo, total_iterations: int, run_seed: int,
           nets: nn.ModuleDict) -> PLDA | None:
    """PLDA for a host method's ``plda`` section (None: no PLDA) on the host network ``model``; its domain classifier,
    if any, joins the host's ``nets`` as ``domain`` (a training-only net: never in the deployed model)."""
    if cfg is None:
        return None
    plda = PLDA(cfg, model.feature_channels["layer6"], info, total_iterations, run_seed)
    classifier = plda.build_classifier()
    if classifier is not None:
        nets[DOMAIN_NET] = classifier
    return plda


def classifier_of(nets: nn.ModuleDict) -> nn.Module | None:
    """The host's domain classifier (None when L_da is off)."""
    return nets[DOMAIN_NET] if DOMAIN_NET in nets else None
