"""CCDistill's losses (Eq. 1-7) and LAB transfer against independent NumPy / OpenCV computations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from darkseg.methods import correlation_losses as C
from darkseg.methods.ccdistill import lab_transfer
from darkseg.models.ops.project_head import ProjectHead


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _js_np(a: np.ndarray, b: np.ndarray, t: float, axis: int) -> float:
    p, q = _softmax(a / t, axis), _softmax(b / t, axis)
    m = (p + q) / 2
    return float((0.5 * (p * np.log(p / m)).sum(axis) + 0.5 * (q * np.log(q / m)).sum(axis)).mean())


def _domains(b: int = 2, n: int = 5, c: int = 7) -> dict[str, torch.Tensor]:
    return {k: _rand(b, n, c, seed=i) for i, k in enumerate(("sd", "sn", "td", "tn"))}


@pytest.mark.parametrize("axis", ["channels", "positions"])
def test_js_loss_matches_eq1_in_numpy(axis: str) -> None:
    e = _domains()
    ax = 2 if axis == "channels" else 1
    js = {(x, y): _js_np(e[x].numpy(), e[y].numpy(), 0.5, ax) for x, y in
          [("sd", "sn"), ("td", "tn"), ("sd", "td"), ("sn", "tn")]}
    want = 4 * (js["sd", "sn"] + js["td", "tn"]) - (js["sd", "td"] + js["sn", "tn"])
    assert C.js_loss(e, 4.0, 0.5, axis).item() == pytest.approx(want, rel=1e-5)
    same = C.js_divergence(e["sd"], e["sd"], 0.5, axis)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < C.js_divergence(e["sd"], e["tn"], 0.01, axis).item() <= np.log(2) + 1e-6


def test_cosine_correlations_and_cdc_terms_match_numpy() -> None:
    e = _domains()
    npe = {k: v.numpy().astype(np.float64) for k, v in e.items()}

    def cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))

    paired = C.cosine_correlation(e["sd"], e["tn"], "paired").numpy()
    np.testing.assert_allclose(paired, cos(npe["sd"], npe["tn"]), rtol=1e-5)
    graph = C.cosine_correlation(e["sd"], e["tn"], "graph").numpy()
    for i in range(5):
        for j in range(5):
            np.testing.assert_allclose(graph[:, i, j], cos(npe["sd"][:, i], npe["tn"][:, j]), rtol=1e-5)

    terms = C.cdc_terms(e, "paired", detach_guide=True)
    illu = ((cos(npe["sd"], npe["sn"]) - cos(npe["td"], npe["tn"])) ** 2).mean()
    inh = ((cos(npe["sd"], npe["td"]) - cos(npe["sn"], npe["tn"])) ** 2).mean()
    assert terms["illumination"].item() == pytest.approx(illu, rel=1e-5)
    assert terms["inherent"].item() == pytest.approx(inh, rel=1e-5)


def test_cdc_guides_get_no_gradient_when_detached() -> None:
    e = {k: v.requires_grad_() for k, v in _domains().items()}
    terms = C.cdc_terms(e, "paired", detach_guide=True)
    terms["illumination"].backward()  # Cor_illu_S = cos(Sd, Sn) guides Cor_illu_T = cos(Td, Tn)
    assert e["sd"].grad is None and e["sn"].grad is None
    assert e["td"].grad.abs().sum() > 0 and e["tn"].grad.abs().sum() > 0
    terms["inherent"].backward()  # Cor_in_d = cos(Sd, Td) guides Cor_in_n = cos(Sn, Tn)
    assert e["sd"].grad is None and e["sn"].grad.abs().sum() > 0


def test_gram_and_cds_match_numpy_and_train_the_chosen_side() -> None:
    feats = {k: _rand(2, 3, 4, 5, seed=10 + i).relu().requires_grad_() for i, k in enumerate(("sd", "sn", "td", "tn"))}
    f = feats["sd"].detach().numpy().astype(np.float64)
    want = np.stack([sum(np.outer(f[b, :, y, x], f[b, :, y, x]) for y in range(4) for x in range(5))
                     for b in range(2)]) / 20
    grams = {k: C.gram(v) for k, v in feats.items()}
    np.testing.assert_allclose(grams["sd"].detach().numpy(), want, rtol=1e-5)

    def cos_np(a: str, b: str) -> np.ndarray:
        x, y = (grams[k].detach().numpy().reshape(2, -1).astype(np.float64) for k in (a, b))
        return (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))

    loss = C.cds_loss(grams, "target", detach_guide=True)
    assert loss.item() == pytest.approx(((cos_np("sd", "sn") - cos_np("td", "tn")) ** 2).mean(), rel=1e-4)
    loss.backward()  # target guides: only S_d / S_n features are trained
    assert feats["td"].grad is None and feats["tn"].grad is None and feats["sn"].grad.abs().sum() > 0


def test_patch_embeddings_are_normalised_block_means() -> None:
    emb = _rand(2, 3, 4, 6)
    out = C.position_embeddings(emb, "patch", 2)
    block = emb[:, :, 2:4, 0:3].mean((2, 3))  # patch (row 1, col 0) of a 2×2 grid = position 2
    torch.testing.assert_close(out[:, 2], block / block.norm(dim=1, keepdim=True))
    assert C.position_embeddings(emb, "pixel", 2).shape == (2, 24, 3)
    assert C.position_embeddings(emb, "image", 2).shape == (2, 1, 3)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, 4))


def test_project_head_outputs_unit_256d_vectors() -> None:
    head = ProjectHead(12)
    out = head(_rand(2, 12, 3, 3))
    assert out.shape == (2, 256, 3, 3)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 3, 3))
    assert [type(m).__name__ for m in head.layers] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    assert [type(m).__name__ for m in ProjectHead(12, batch_norm=False).layers] == ["Conv2d", "ReLU", "Conv2d"]


def test_lab_transfer_matches_opencv_reinhard() -> None:
    rng = np.random.default_rng(0)
    src = rng.random((16, 20, 3), dtype=np.float32)
    ref = (rng.random((12, 10, 3), dtype=np.float32) * 0.3 + np.array([0.05, 0.02, 0.1], np.float32))
    lab_s, lab_r = cv2.cvtColor(src, cv2.COLOR_RGB2Lab), cv2.cvtColor(ref, cv2.COLOR_RGB2Lab)
    lab = (lab_s - lab_s.mean((0, 1))) / lab_s.std((0, 1)) * lab_r.std((0, 1)) + lab_r.mean((0, 1))
    want = np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0, 1)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(2, 0, 1)[None]

    got = lab_transfer(t(src), t(ref))[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).mean() < 2e-3 and np.abs(got - want).max() < 2e-2
    assert abs(got.mean() - ref.mean()) < 0.02 < abs(src.mean() - ref.mean())
