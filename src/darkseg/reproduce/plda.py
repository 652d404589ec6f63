"""PLDA's tables as ``darkseg reproduce plda`` runs them on the built-in benchmark. Main table: SEAM and SSSS, each
alone and + PLDA, on the normal and on the dark images; every + PLDA column is compared with its own host (same
seed, same light). Ablations on SEAM (Tab. VI-VIII, Fig. 7(a)) against SEAM (MaskAssign-OC's ordinary classifier is
the plain CAM baseline's run of the same seed), PLDA on the plain CAM baseline (``cam-host``), and DeepLabV1
retrained on the pseudo masks of SEAM and SEAM + PLDA (``--two-stage``).

Score (every table but the two-stage one): the paper's, CAM mIoU on the train split (the CAM seeds, PLDA Tab. I/VI)
at the background threshold that is best on that split's own sweep (engine/cam_sweep.py ``cam_score``). On the
benchmark: single scale + flip with SEAM's per-class min-max normalisation, the first ``SCORE_IMAGES`` train images.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from darkseg.reproduce.pretrained import ensure_pretrained_start
from darkseg.reproduce.tables import Column, Figures, Need, Paper, Suite, Table
from darkseg.reproduce.two_stage import pseudo_mask_export, retrain

if TYPE_CHECKING:
    from darkseg.config import ExperimentConfig

SCORE_IMAGES = 500  # the first 500 of the 2000 train images (the same for every run): 14-20 s of CPU per run
SCORE_SCALES = (1.0,)  # the images are 96 px, the size every column trains at


def cam_seeds(cfg: ExperimentConfig, run_dir: Path, split: str | None, scales: tuple[float, ...],
              max_images: int) -> dict:
    """``Column.score`` of PLDA's tables: ``engine.cam_sweep.cam_score`` (train split unless ``--split``)."""
    from darkseg.engine.cam_sweep import cam_score

    return cam_score(cfg, run_dir, split, scales=scales, flip=True, minmax=True, max_images=max_images)


#: one object shared by every scored column (a table refuses columns scored in different ways)
SCORE = functools.partial(cam_seeds, scales=SCORE_SCALES, max_images=SCORE_IMAGES)

#: main-table columns: (key, label, config under configs/plda/), each host before its + PLDA column
HOSTS = (
    ("seam", "SEAM", "scenes_seam", "seam_plda", "SEAM + PLDA", "scenes_plda"),
    ("ssss", "SSSS", "scenes_ssss", "ssss_plda", "SSSS + PLDA", "scenes_ssss_plda"),
)

ABLATIONS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "components": ("Tab. VI: components of PLDA", (
        ("da_only", "+ L_da"),
        ("da_cps_source", "+ L_da + L_cps^s"),
        ("da_cps_target", "+ L_da + L_cps^t"),
    )),
    "alignment": ("Tab. VII: domain alignment (pixel-level MMD, DANN, MADA vs class-conditional Eq. 5)", (
        ("mmd", "MMD (global)"),
        ("dann", "DANN (global, Eq. 2)"),
        ("mada", "MADA (class-wise)"),
    )),
    "assign": ("Tab. VIII: domain assignment", (
        ("simple_assign", "SimpleAssign"),
        ("mask_oc", "MaskAssign-OC"),
    )),
    "theta": ("Fig. 7(a): MaskAssign threshold θ (SEAM + PLDA: θ = 0.6)", (
        ("theta_0.4", "θ = 0.4"),
        ("theta_0.5", "θ = 0.5"),
        ("theta_0.7", "θ = 0.7"),
        ("theta_0.8", "θ = 0.8"),
    )),
}


#: the plain CAM baseline: the host of the ``cam-host`` table and MaskAssign-OC's ordinary classifier
CAM = Column("cam", "CAM", "plda/scenes_cam.yaml", score=SCORE)
#: ablation rows that read another column's run of the same seed
NEEDS = {"mask_oc": (Need("cam", "method.plda.oc.weights"),)}


def main_columns() -> tuple[tuple[Column, ...], tuple[tuple[str, str], ...]]:
    """The eight main-table columns (normal light, then ``dark_``) and their (+ PLDA column, host) pairs; the SEAM
    columns export pseudo masks for the two-stage table."""
    columns, pairs = [], []
    for prefix, label, suffix in (("", "", ""), ("dark_", " (dark)", "_dark")):
        for host, host_label, host_cfg, plug, plug_label, plug_cfg in HOSTS:
            export = pseudo_mask_export() if host == "seam" and not prefix else None
            columns += [Column(prefix + host, host_label + label, f"plda/{host_cfg}{suffix}.yaml", export=export,
                               score=SCORE),
                        Column(prefix + plug, plug_label + label, f"plda/{plug_cfg}{suffix}.yaml", export=export,
                               score=SCORE)]
            pairs.append((prefix + plug, prefix + host))
    return tuple(columns), tuple(pairs)


def scenes_suite() -> Suite:
    """The main table, the SEAM ablation tables (SEAM, the variants, SEAM + PLDA), PLDA on the plain CAM baseline and
    the two-stage table (DeepLabV1 on SEAM's masks is the baseline of DeepLabV1 on SEAM + PLDA's)."""
    columns, pairs = main_columns()
    by_key = {c.key: c for c in columns}
    seam, seam_plda = by_key["seam"], by_key["seam_plda"]
    main = Table("PLDA on SEAM and SSSS, normal light and dark: CAM train-split mIoU (Δ: each + PLDA column vs its "
                 "host alone)", columns, pairs=pairs, figures=Figures(cams=tuple(c.key for c in columns)))
    ablations = {
        key: Table(title, (seam, *(Column(row, label, f"plda/ablations/scenes_plda_{row}.yaml",
                                          needs=NEEDS.get(row, ()), score=SCORE)
                                   for row, label in rows), seam_plda), baseline="seam")
        for key, (title, rows) in ABLATIONS.items()
    }
    ablations["cam-host"] = Table("PLDA on the plain CAM baseline: CAM train-split mIoU", (
        CAM, Column("cam_plda", "CAM + PLDA", "plda/scenes_cam_plda.yaml", score=SCORE)), baseline="cam")
    ablations["two-stage"] = Table("Tab. III: DeepLabV1 retrained on the pseudo masks of SEAM and SEAM + PLDA", (
        retrain("seam_deeplabv1", "DeepLabV1 on SEAM masks", "segmenters/scenes_deeplabv1.yaml", "seam"),
        retrain("seam_plda_deeplabv1", "DeepLabV1 on SEAM + PLDA masks", "segmenters/scenes_deeplabv1.yaml",
                "seam_plda"),
    ), baseline="seam_deeplabv1")
    return Suite("scenes", main, ablations, default_seeds=(0, 1, 2, 3, 4), quick_seeds=(0, 1),
                 quick=("train.iterations=80",), prepare=ensure_pretrained_start)


PAPER = Paper("plda", "PLDA (SEAM + PLDA, SSSS + PLDA)", {"scenes": scenes_suite()})
