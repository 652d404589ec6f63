"""ASDT's tables as ``darkseg reproduce asdt`` runs them on the built-in benchmark: Table 4's distillation strategies
(the single class-teacher row, RRM-like, is the baseline every row is compared with; the score is the deployed
prediction P of each model, without retraining) and, with ``--two-stage``, DeepLab-v2 retrained on the pseudo masks
of the class-teacher-only model and of ASDT (Table 1's retrain step)."""

from __future__ import annotations

from darkseg.reproduce.tables import Column, Figures, Paper, Suite, Table
from darkseg.reproduce.two_stage import pseudo_mask_export, retrain


def scenes_suite() -> Suite:
    """Table 4 (five rows) and the two-stage table."""
    class_teacher = Column("class_teacher", "single class-teacher", "asdt/scenes_class_teacher.yaml",
                           export=pseudo_mask_export())
    asdt = Column("asdt", "alternative dual teacher (ASDT)", "asdt/scenes_asdt.yaml", export=pseudo_mask_export())
    main = Table("Table 4: distillation strategies (baseline: single class-teacher)", (
        class_teacher,
        Column("seg_teacher", "single seg-teacher", "asdt/scenes_seg_teacher.yaml"),
        Column("naive_max", "naive dual teacher (max)", "asdt/scenes_naive_max.yaml"),
        Column("naive_mean", "naive dual teacher (mean)", "asdt/scenes_naive_mean.yaml"),
        asdt,
    ), baseline="class_teacher", figures=Figures(grid=("class_teacher", "asdt")))
    two_stage = Table("Table 1's retrain step: DeepLab-v2 on the pseudo masks of the class-teacher model and of ASDT", (
        retrain("class_teacher_deeplabv2", "DeepLab-v2 on class-teacher masks", "segmenters/scenes_deeplabv2.yaml",
                "class_teacher"),
        retrain("asdt_deeplabv2", "DeepLab-v2 on ASDT masks", "segmenters/scenes_deeplabv2.yaml", "asdt"),
    ), baseline="class_teacher_deeplabv2")
    return Suite("scenes", main, {"two-stage": two_stage}, default_seeds=(0, 1, 2, 3, 4), quick_seeds=(0, 1),
                 quick=("train.iterations=700", "train.val_every=0"))


PAPER = Paper("asdt", "ASDT", {"scenes": scenes_suite()})
