"""Pixel-level domain alignment between the source (discriminative) and target (non-discriminative) object pixels
of a CAM: PLDA's class-conditional loss (Eq. 5) and the alternatives of its Tab. VII (pixel-level DANN, MADA, MMD).
Domain labels are per class (B, K, h, w): 0 source, 1 target, 255 unassigned."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from darkseg.metrics import IGNORE_INDEX

SOURCE, TARGET = 0, 1


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


def merged_domain(domain: torch.Tensor) -> torch.Tensor:
    """Class-agnostic domain label (B, h, w) of per-class labels (B, K, h, w): source where any class is source,
    else target where any class is target, else unassigned (PLDA §III-B, the global alignment)."""
    merged = torch.full_like(domain[:, 0], IGNORE_INDEX)
    merged[(domain == TARGET).any(dim=1)] = TARGET
    merged[(domain == SOURCE).any(dim=1)] = SOURCE
    return merged


def global_domain_loss(logits: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """Pixel-level DANN loss, Eq. (2) of PLDA: one head, CE over the pixels of either domain (any class; source wins)."""
    merged = merged_domain(domain)
    if not bool((merged != IGNORE_INDEX).any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits[:, 0].float(), merged, ignore_index=IGNORE_INDEX)


def mada_loss(logits: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """Pixel-level MADA loss, Eq. (3) of Pei et al. (AAAI 2018; PLDA Tab. VII): each class-wise discriminator's CE
    against the class-agnostic domain label, mean over the pixels of either domain, summed over the discriminators."""
    merged = merged_domain(domain)
    if not bool((merged != IGNORE_INDEX).any()):
        return logits.float().sum() * 0.0
    k = logits.shape[1]
    target = merged[:, None].expand(-1, k, -1, -1)
    return k * F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=IGNORE_INDEX)


def gaussian_mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...]) -> torch.Tensor:
    """Multi-kernel MMD² between samples ``x`` (n, d) and ``y`` (m, d): the biased estimate of Gretton et al. (JMLR
    2012, Eq. 5) with DAN's kernel family (Long et al., ICML 2015, Eq. 3; equal kernel weights): k(a, b) = mean over
    s of exp(−‖a − b‖² / (s·D)), D = mean squared distance between distinct points of the pooled (detached) sample."""
    z = torch.cat([x, y]).float()
    sq = z.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp_min(0.0)
    n = z.shape[0]
    scale = (d2.detach().sum() / max(n * n - n, 1)).clamp_min(1e-12)
    kernel = torch.stack([torch.exp(-d2 / (s * scale)) for s in bandwidths]).mean(dim=0)
    nx = x.shape[0]
    return kernel[:nx, :nx].mean() + kernel[nx:, nx:].mean() - 2.0 * kernel[:nx, nx:].mean()


def pixel_mmd(feats: torch.Tensor, domain: torch.Tensor, max_pixels: int, bandwidths: tuple[float, ...],
              generator: torch.Generator) -> torch.Tensor:
    """Pixel-level MMD alignment (PLDA Tab. VII "MMD"): :func:`gaussian_mmd` between the features of up to
    ``max_pixels`` source and as many target pixels (class-agnostic domains), drawn with ``generator``; ``feats`` are
    bilinearly resized to the grid of ``domain`` when that differs. 0 when a domain is empty."""
    if feats.shape[-2:] != domain.shape[-2:]:
        feats = F.interpolate(feats, size=domain.shape[-2:], mode="bilinear", align_corners=True)
    flat = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    merged = merged_domain(domain).reshape(-1)
    picked = []
    for d in (SOURCE, TARGET):
        idx = (merged == d).nonzero().squeeze(1)
        if len(idx) == 0:
            return feats.float().sum() * 0.0
        if len(idx) > max_pixels:
            idx = idx[torch.randperm(len(idx), generator=generator)[:max_pixels].to(idx.device)]
        picked.append(flat[idx])
    return gaussian_mmd(picked[0], picked[1], bandwidths)
