"""CCDistill's cross-domain correlation losses (Eq. 1-7 of CCDistill) on embeddings of the four domains.

The four domains are keyed ``sd``, ``sn``, ``td``, ``tn`` (S_d source day, S_n source made night, T_d target day,
T_n target night). Content embeddings are (B, N, C): N positions (pixels, patches or the whole image, see
:func:`position_embeddings`) of C-dimensional unit vectors. Style embeddings are (B, C, C) Gram matrices.
In every correlation pair one side is the *guide* (detached when ``detach_guide``) and the other is trained.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Granularity = Literal["pixel", "patch", "image"]
CorrelationForm = Literal["paired", "graph"]
JSAxis = Literal["channels", "positions"]


def position_embeddings(emb: Tensor, granularity: Granularity, grid: int) -> Tensor:
    """(B, C, h, w) embedding map → (B, N, C) unit vectors at N positions: every pixel, the cells of a
    ``grid``×``grid`` average-pooled patch grid, or one average over the image (then re-normalised)."""
    if granularity == "patch":
        emb = F.adaptive_avg_pool2d(emb, grid)
    elif granularity == "image":
        emb = emb.mean(dim=(2, 3), keepdim=True)
    return F.normalize(emb.flatten(2).transpose(1, 2), dim=-1)


def js_divergence(a: Tensor, b: Tensor, temperature: float, axis: JSAxis) -> Tensor:
    """JS(p‖q) = ½KL(p‖m) + ½KL(q‖m), m = (p + q)/2, p = softmax(a/T), q = softmax(b/T): Eq. 1 of CCDistill.

    ``a``, ``b``: (B, N, C) embeddings; the softmax runs over the C channels of each position (``channels``) or over
    the N positions of each channel (``positions``). Returns the mean JS (natural log, at most log 2).
    """
    dim = -1 if axis == "channels" else 1
    log_p = F.log_softmax(a.float() / temperature, dim=dim)
    log_q = F.log_softmax(b.float() / temperature, dim=dim)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - torch.log(torch.tensor(2.0))
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(dim)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(dim)
    return (0.5 * (kl_pm + kl_qm)).mean()


def js_loss(e: dict[str, Tensor], lam: float, temperature: float, axis: JSAxis) -> Tensor:
    """L_JS = λ(JS(e_Sd‖e_Sn) + JS(e_Td‖e_Tn)) − (JS(e_Sd‖e_Td) + JS(e_Sn‖e_Tn)), Eq. 1 of CCDistill."""

    def js(x: str, y: str) -> Tensor:
        return js_divergence(e[x], e[y], temperature, axis)

    return lam * (js("sd", "sn") + js("td", "tn")) - (js("sd", "td") + js("sn", "tn"))


def cosine_correlation(a: Tensor, b: Tensor, form: CorrelationForm) -> Tensor:
    """cos(x, y) = xᵀy / (‖x‖‖y‖) of two domains' embeddings, Eq. 2-3 (Eq. 6 on flattened Gram matrices).

    ``a``, ``b``: (B, N, C). ``paired``: the cosine of the embeddings at the same position, (B, N); ``graph``: the
    cosine of every position of ``a`` with every position of ``b``, (B, N, N).
    """
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    return (a * b).sum(-1) if form == "paired" else a @ b.transpose(1, 2)


def correlation_gap(guide: Tensor, trained: Tensor, detach_guide: bool) -> Tensor:
    """‖Cor_guide − Cor_trained‖²₂ averaged over its entries, one term of Eq. 4 and Eq. 7 of CCDistill."""
    if detach_guide:
        guide = guide.detach()
    return (guide - trained).pow(2).mean()


def cdc_terms(
    e: dict[str, Tensor], form: CorrelationForm, detach_guide: bool
) -> dict[str, Tensor]:
    """The correlation terms of L_CDC, Eq. 2-4 of CCDistill: ``illumination`` ‖Cor_illu_S − Cor_illu_T‖²
    (Cor_illu_S guides) and ``inherent`` ‖Cor_in_d − Cor_in_n‖² (Cor_in_d guides)."""
    illu_s = cosine_correlation(e["sd"], e["sn"], form)
    illu_t = cosine_correlation(e["td"], e["tn"], form)
    in_d = cosine_correlation(e["sd"], e["td"], form)
    in_n = cosine_correlation(e["sn"], e["tn"], form)
    return {"illumination": correlation_gap(illu_s, illu_t, detach_guide),
            "inherent": correlation_gap(in_d, in_n, detach_guide)}


def gram(feats: Tensor) -> Tensor:
    """G_D = Σ_p F^{ip} F^{jp}, Eq. 5 of CCDistill, divided by the pixel count (cosines unchanged): (B, C, C)."""
    f = feats.float().flatten(2)
    return f @ f.transpose(1, 2) / f.shape[-1]


def cds_loss(g: dict[str, Tensor], guide: Literal["source", "target"], detach_guide: bool) -> Tensor:
    """L_CDS = ‖Cor_G_S − Cor_G_T‖²₂, Cor_G_k = cos(G_kd, G_kn), Eq. 6-7 of CCDistill (mean over the batch)."""
    flat = {k: v.flatten(1).unsqueeze(1) for k, v in g.items()}  # (B, 1, C·C): one position per image
    cor_s = cosine_correlation(flat["sd"], flat["sn"], "paired")
    cor_t = cosine_correlation(flat["td"], flat["tn"], "paired")
    return correlation_gap(cor_s, cor_t, detach_guide) if guide == "source" \
        else correlation_gap(cor_t, cor_s, detach_guide)
