"""ASDT's tables as ``darkseg reproduce asdt`` runs them on the built-in benchmark: RRM (the baseline every row is
compared with) and Table 4's distillation strategies; ``--ablation components``: Table 5 (without R^ct, without
L_str, without the CRF post-processing, mean / multiply fusion) against the full model; ``--two-stage``: DeepLab-v2
retrained on the pseudo masks of RRM and of ASDT (Table 1's retrain step). Scores are the deployed prediction of each
model on the test split, without retraining (Tables 4-5)."""

from __future__ import annotations

from darkseg.reproduce.tables import Column, Figures, Paper, Suite, Table
from darkseg.reproduce.two_stage import pseudo_mask_export, retrain

#: Table 5's rows without the full model: (column key, label, config under configs/asdt/ablations/)
COMPONENTS = (
    ("no_reliability", "without R^ct", "scenes_asdt_no_reliability"),
    ("no_structure", "without L_str", "scenes_asdt_no_structure"),
    ("no_crf", "without CRF post-processing", "scenes_asdt_no_crf"),
    ("fusion_mean", "fusion: mean", "scenes_asdt_fusion_mean"),
    ("fusion_multiply", "fusion: multiply", "scenes_asdt_fusion_multiply"),
)


def scenes_suite() -> Suite:
    """Table 4 with the RRM baseline, Table 5 (``components``) and the two-stage table."""
    rrm = Column("rrm", "RRM (class-teacher + seg-branch, no student)", "asdt/scenes_rrm.yaml",
                 export=pseudo_mask_export())
    asdt = Column("asdt", "alternative dual teacher (ASDT)", "asdt/scenes_asdt.yaml", export=pseudo_mask_export())
    main = Table("Table 4: distillation strategies (baseline: RRM)", (
        rrm,
        Column("class_teacher", "single class-teacher", "asdt/scenes_class_teacher.yaml"),
        Column("seg_teacher", "single seg-teacher", "asdt/scenes_seg_teacher.yaml"),
        Column("naive_max", "naive dual teacher (max)", "asdt/scenes_naive_max.yaml"),
        Column("naive_mean", "naive dual teacher (mean)", "asdt/scenes_naive_mean.yaml"),
        asdt,
    ), baseline="rrm", figures=Figures(grid=("rrm", "asdt")))
    components = Table("Table 5: components of ASDT (baseline: the full model, max fusion)", (
        asdt,
        *(Column(key, label, f"asdt/ablations/{config}.yaml") for key, label, config in COMPONENTS),
    ), baseline="asdt")
    two_stage = Table("Table 1's retrain step: DeepLab-v2 on the pseudo masks of RRM and of ASDT", (
        retrain("rrm_deeplabv2", "DeepLab-v2 on RRM masks", "segmenters/scenes_deeplabv2.yaml", "rrm"),
        retrain("asdt_deeplabv2", "DeepLab-v2 on ASDT masks", "segmenters/scenes_deeplabv2.yaml", "asdt"),
    ), baseline="rrm_deeplabv2")
    return Suite("scenes", main, {"components": components, "two-stage": two_stage}, default_seeds=(0, 1, 2, 3, 4),
                 quick_seeds=(0, 1), quick=("train.iterations=200",))


PAPER = Paper("asdt", "ASDT", {"scenes": scenes_suite()})
