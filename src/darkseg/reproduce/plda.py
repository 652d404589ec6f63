"""PLDA's tables as ``darkseg reproduce plda`` runs them on the built-in benchmark: SEAM (the baseline every row is
compared with) and SEAM + PLDA, their low-light versions, the ablations of Tab. VI-VIII and Fig. 7(a), and the
retraining of DeepLabV1 on the pseudo masks of both (``--two-stage``). Scores are the deployed model's mIoU on the
config's evaluation split (scenes: test), not the train-set CAM seeds of the paper's Tab. I."""

from __future__ import annotations

from darkseg.reproduce.tables import Column, Figures, Paper, Suite, Table
from darkseg.reproduce.two_stage import pseudo_mask_export, retrain

SEAM = Column("seam", "SEAM", "plda/scenes_seam.yaml", export=pseudo_mask_export())
PLDA = Column("plda", "SEAM + PLDA", "plda/scenes_plda.yaml", export=pseudo_mask_export())

ABLATIONS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "components": ("Tab. VI: components of PLDA", (
        ("da_only", "+ L_da"),
        ("da_cps_source", "+ L_da + L_cps^s"),
        ("da_cps_target", "+ L_da + L_cps^t"),
    )),
    "alignment": ("Tab. VII: domain alignment (pixel-level DANN vs class-conditional Eq. 5)", (
        ("dann", "DANN (global, Eq. 2)"),
    )),
    "assign": ("Tab. VIII: domain assignment", (
        ("simple_assign", "SimpleAssign"),
    )),
    "theta": ("Fig. 7(a): MaskAssign threshold θ (SEAM + PLDA: θ = 0.6)", (
        ("theta_0.4", "θ = 0.4"),
        ("theta_0.5", "θ = 0.5"),
        ("theta_0.7", "θ = 0.7"),
        ("theta_0.8", "θ = 0.8"),
    )),
}


def scenes_suite() -> Suite:
    """The main table (SEAM baseline), ablation tables (SEAM, the variants, the full method), the dark table and the
    two-stage table (DeepLabV1 on SEAM's masks is the baseline of DeepLabV1 on SEAM + PLDA's)."""
    main = Table("Tab. I (SEAM rows): SEAM vs SEAM + PLDA", (SEAM, PLDA), baseline="seam",
                 figures=Figures(grid=("seam", "plda"), cams=("seam", "plda")))
    ablations = {
        key: Table(title, (SEAM, *(Column(row, label, f"plda/ablations/scenes_plda_{row}.yaml") for row, label in rows),
                           PLDA), baseline="seam")
        for key, (title, rows) in ABLATIONS.items()
    }
    ablations["dark"] = Table("Low light: SEAM and SEAM + PLDA trained and evaluated on the dark images", (
        Column("seam_dark", "SEAM (dark)", "plda/scenes_seam_dark.yaml"),
        Column("plda_dark", "SEAM + PLDA (dark)", "plda/scenes_plda_dark.yaml"),
    ), baseline="seam_dark")
    ablations["two-stage"] = Table("Tab. III: DeepLabV1 retrained on the pseudo masks of SEAM and SEAM + PLDA", (
        retrain("seam_deeplabv1", "DeepLabV1 on SEAM masks", "segmenters/scenes_deeplabv1.yaml", "seam"),
        retrain("plda_deeplabv1", "DeepLabV1 on SEAM + PLDA masks", "segmenters/scenes_deeplabv1.yaml", "plda"),
    ), baseline="seam_deeplabv1")
    return Suite("scenes", main, ablations, default_seeds=(0, 1, 2, 3, 4), quick_seeds=(0, 1),
                 quick=("train.iterations=400", "train.val_every=0"))


PAPER = Paper("plda", "PLDA (SEAM + PLDA)", {"scenes": scenes_suite()})
