"""ASDT's tables as ``darkseg reproduce asdt`` runs them on the built-in benchmark: RRM (the baseline every row is
compared with) and Table 4's distillation strategies; ``--ablation components``: Table 5 (without R^ct, without
L_str, without the CRF post-processing, mean / multiply fusion) against the full model; ``--two-stage``: DeepLab-v2
retrained on ASDT's pseudo masks beside ASDT itself (single stage); ``--ablation retrained``: DeepLab-v2 on the masks
of RRM and of ASDT (Table 1's retrain step); ``--ablation dark``: the main table's
six columns trained and scored on the dark images (keys ``dark_*``, baseline ``dark_rrm``). Scores are the deployed
prediction of each model on the test split, without retraining (Tables 4-5)."""

from __future__ import annotations

from darkseg.reproduce.pretrained import ensure_pretrained_start
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


#: Table 4's columns in order, RRM (the baseline) first: (key, label, config stem under configs/asdt/)
STRATEGIES = (
    ("rrm", "RRM (class-teacher + seg-branch, no student)", "scenes_rrm"),
    ("class_teacher", "single class-teacher", "scenes_class_teacher"),
    ("seg_teacher", "single seg-teacher", "scenes_seg_teacher"),
    ("naive_max", "naive dual teacher (max)", "scenes_naive_max"),
    ("naive_mean", "naive dual teacher (mean)", "scenes_naive_mean"),
    ("asdt", "alternative dual teacher (ASDT)", "scenes_asdt"),
)


def strategy_columns(prefix: str) -> tuple[Column, ...]:
    """Table 4's six columns in normal light (``prefix`` "") or on the dark images ("dark_": the ``*_dark``
    configs); RRM and ASDT in normal light export their pseudo masks for the two-stage table."""
    suffix, label = ("_dark", " (dark)") if prefix else ("", "")
    return tuple(Column(prefix + key, name + label, f"asdt/{stem}{suffix}.yaml",
                        export=pseudo_mask_export() if key in ("rrm", "asdt") and not prefix else None)
                 for key, name, stem in STRATEGIES)


def scenes_suite() -> Suite:
    """Table 4 with the RRM baseline, Table 5 (``components``), Table 4 in the dark and the two-stage table."""
    main = Table("Table 4: distillation strategies (baseline: RRM)", strategy_columns(""), baseline="rrm",
                 figures=Figures(grid=("rrm", "asdt")))
    dark = Table("Table 4 on the dark images (baseline: RRM on the dark images)", strategy_columns("dark_"),
                 baseline="dark_rrm", figures=Figures(grid=("dark_rrm", "dark_asdt")))
    asdt = main.columns[-1]
    components = Table("Table 5: components of ASDT (baseline: the full model, max fusion)", (
        asdt,
        *(Column(key, label, f"asdt/ablations/{config}.yaml") for key, label, config in COMPONENTS),
    ), baseline="asdt")
    rrm = main.columns[0]
    asdt_retrained = retrain("asdt_deeplabv2", "DeepLab-v2 on ASDT masks", "segmenters/scenes_deeplabv2.yaml", "asdt")
    two_stage = Table("Two-stage ASDT: DeepLab-v2 retrained on the pseudo masks of ASDT, beside ASDT (single stage)",
                      (asdt, asdt_retrained), baseline="asdt")
    retrained = Table("Table 1's retrain step: DeepLab-v2 on the pseudo masks of RRM and of ASDT", (
        retrain("rrm_deeplabv2", "DeepLab-v2 on RRM masks", "segmenters/scenes_deeplabv2.yaml", rrm.key),
        asdt_retrained,
    ), baseline="rrm_deeplabv2")
    return Suite("scenes", main, {"components": components, "dark": dark, "two-stage": two_stage,
                                  "retrained": retrained},
                 default_seeds=(0, 1, 2, 3, 4), quick_seeds=(0, 1),
                 quick=("train.iterations=300", "method.distill_start=50"), prepare=ensure_pretrained_start)


PAPER = Paper("asdt", "ASDT", {"scenes": scenes_suite()})
