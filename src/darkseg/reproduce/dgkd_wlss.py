"""DGKD-WLSS's tables as ``darkseg reproduce dgkd-wlss`` runs them: Table 1's columns and the ablation tables."""

from __future__ import annotations

import functools

from darkseg.reproduce.depth_maps import ensure_depth_maps
from darkseg.reproduce.pretrained import ensure_pretrained_start
from darkseg.reproduce.tables import Column, Figures, Need, Paper, Suite, Table
from darkseg.reproduce.two_stage import pseudo_mask_export, retrain

TEACHER = Need("teacher", "method.teacher.weights")

ABLATIONS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "kd-loss": ("Table 2(a): superiority of DGKD", (
        ("kd_mse", "+ MSE loss"),
        ("kd_kl", "+ KL div loss"),
        ("kd_dist", "+ DIST loss"),
        ("dgkd_feat", "+ DGKD(features)"),
        ("dgkd_mask", "+ DGKD(mask)"),
        ("dgkd_all", "+ DGKD(feature+mask)"),
    )),
    "dgf2": ("Table 2(b): superiority of DGF2", (
        ("sft_single", "+ DGKD + single SFT"),
        ("dgf2_single", "+ DGKD + single DGF2"),
        ("sft_multi", "+ DGKD + multiple SFT"),
        ("dgf2_multi", "+ DGKD + multiple DGF2"),
    )),
    "depth-model": ("Table 2(c): depth priors", (
        ("depth_anything", "+ DGKD + DGF2 with Depth Anything"),
        ("depth_zoedepth", "+ DGKD + DGF2 with ZoeDepth"),
        ("depth_midas", "+ DGKD + DGF2 with MiDaS"),
    )),
    "lambda": ("Table 8: fusion weight λ", (
        ("lambda_0.4", "λ = 0.4"),
        ("lambda_0.5", "λ = 0.5"),
        ("lambda_0.6", "λ = 0.6"),
    )),
    "steps": ("Table 9: DDIM steps T", (
        ("steps_4", "T = 4"),
        ("steps_5", "T = 5"),
        ("steps_6", "T = 6"),
    )),
}

# Training time of each run relative to the teacher's, for the order of `--jobs` only (`Column.cost`): measured on
# scenes (2 CPU cores, two one-thread processes, 2026-11-30): teacher 7.0 min, dark baseline 6.6, +DGKD 10.7,
# +DGKD+DGF2 14.1, a plain-KD row ≈ 8; the ablation rows cost what the column they vary costs.
COST = {"teacher": 1.0, "baseline": 0.95, "dgkd": 1.5, "dgkd_dgf2": 2.0, "plain_kd": 1.15}
ROW_COST = {"kd-loss": COST["dgkd"], "dgf2": COST["dgkd_dgf2"], "depth-model": COST["dgkd_dgf2"],
            "lambda": COST["dgkd_dgf2"], "steps": COST["dgkd"]}
PLAIN_KD_ROWS = ("kd_mse", "kd_kl", "kd_dist")

LADDER = "ladder"  # issue 13's sanity ladder: plain KD losses, then DGKD (Table 2(a) rows, paired with Table 1)
LADDER_ROWS = ("kd_kl", "kd_dist")  # Table 2(a)'s plain KL and DIST rows (feature KD without diffusion)
TEACHER_TARGETS = "teacher-targets"  # faithful vs improved teacher targets (the default follows its measurement)
TWO_STAGE = "two-stage"  # the table `darkseg reproduce dgkd-wlss --two-stage` adds (paper: 58.2 vs 57.1 on VOC)

# Depth maps each depth-model ablation row reads (written by `darkseg depth`, see the README).
DEPTH_MODELS = {"depth_anything": "depth-anything-small", "depth_zoedepth": "zoedepth", "depth_midas": "dpt-midas"}


def suite(name: str, prefix: str, two_stage_crf: bool | None = None, faithful: bool = False,
          two_stage_scratch: bool = False, quick_runs: dict[str, tuple[str, ...]] | None = None,
          **kwargs) -> Suite:  # noqa: ANN003
    """Table 1 (teacher, dark baseline, +DGKD, +DGKD+DGF2) and the ablations of one dataset's configs; with
    ``two_stage_crf`` set, also Table 6 (``--two-stage``): DeepLab-v2 retrained on the pseudo masks of +DGKD+DGF2
    (the paper's single-stage DGKD-WLSS, 57.1 in both tables), with or without a dense CRF on the masks; with
    ``faithful``, the ``teacher-targets`` table: +DGKD with the official random-projection teacher targets
    (``<prefix>_dgkd_faithful.yaml``) against the default targets in the teacher's own feature space; with
    ``two_stage_scratch``, Table 6 also retrains ``<prefix>_two_stage_scratch.yaml`` (a second stage without the
    pretrained start). ``quick_runs``: the ``--quick`` overrides of the ``teacher``, of every ``student`` column and
    of the ``two_stage`` retrains."""
    quick = quick_runs or {}
    teacher_quick, student_quick = quick.get("teacher", ()), quick.get("student", ())
    teacher = Column("teacher", "tea. (normal light)", f"dgkd_wlss/{prefix}_teacher.yaml", quick=teacher_quick,
                     cost=COST["teacher"])
    baseline = Column("baseline", "stu. (dark baseline)", f"dgkd_wlss/{prefix}_student.yaml", quick=student_quick,
                      cost=COST["baseline"])
    dgkd = Column("dgkd", "+DGKD", f"dgkd_wlss/{prefix}_dgkd.yaml", needs=(TEACHER,), quick=student_quick,
                  cost=COST["dgkd"])
    full = Column("dgkd_dgf2", "+DGKD +DGF2", f"dgkd_wlss/{prefix}_dgkd_dgf2.yaml", needs=(TEACHER,),
                  export=None if two_stage_crf is None else pseudo_mask_export(crf=two_stage_crf), quick=student_quick,
                  cost=COST["dgkd_dgf2"])
    main = Table(
        "Table 1", (teacher, baseline, dgkd, full),
        baseline="baseline", reference="teacher", gap_column="dgkd_dgf2", gap_note="paper, VOC: 0.84",
        figures=Figures(grid=("baseline", "dgkd", "dgkd_dgf2"), cams=("teacher", "baseline", "dgkd_dgf2")),
    )
    ablations = {
        key: Table(title, (baseline, *(
            Column(row, label, f"dgkd_wlss/ablations/{prefix}_{row}.yaml", needs=(TEACHER,), quick=student_quick,
                   cost=COST["plain_kd"] if row in PLAIN_KD_ROWS else ROW_COST[key])
            for row, label in rows
        )), baseline="baseline",
            check=functools.partial(ensure_depth_maps, models=DEPTH_MODELS) if key == "depth-model" else None)
        for key, (title, rows) in ABLATIONS.items()
    }
    kd_rows = {c.key: c for c in ablations["kd-loss"].columns}
    ablations[LADDER] = Table(
        "Sanity ladder: where the gain comes from (plain KL and DIST distillation without diffusion, then DGKD)",
        (baseline, *(kd_rows[row] for row in LADDER_ROWS), dgkd), baseline="baseline", pairs=(("dgkd", "kd_dist"),))
    if faithful:
        ablations[TEACHER_TARGETS] = Table(
            "Teacher targets: official random projections (faithful) vs the teacher's own feature space (default)",
            (baseline, dgkd, Column("dgkd_faithful", "+DGKD, official targets",
                                    f"dgkd_wlss/{prefix}_dgkd_faithful.yaml", needs=(TEACHER,),
                                    quick=student_quick, cost=COST["dgkd"])),
            baseline="baseline", pairs=(("dgkd_faithful", "dgkd"),))
    if two_stage_crf is not None:
        second = [retrain("two_stage", "DGKD-WLSS (two-stage)", f"dgkd_wlss/{prefix}_two_stage.yaml", full.key,
                          quick=quick.get("two_stage", ()))]
        if two_stage_scratch:
            second.append(retrain("two_stage_scratch", "DGKD-WLSS (two-stage, second stage from scratch)",
                                  f"dgkd_wlss/{prefix}_two_stage_scratch.yaml", full.key,
                                  quick=quick.get("two_stage", ())))
        ablations[TWO_STAGE] = Table(
            "Table 6: two-stage (DeepLab-v2 retrained on the pseudo masks of +DGKD +DGF2)", (full, *second),
            baseline=full.key)
    return Suite(name, main, ablations, **kwargs)


# --quick on scenes (issue 13: ≤ 20 min on 2 CPU cores, images and pretraining included): seeds 0 and 1 from the full
# suites' pretrained backbone (made once, ~9 min, and reused by every scenes suite), each run validated once, at its
# end: the teacher at 0.2 of its full length (200 of 1,000 iterations), the two-stage retrain too (160 of 800), and
# the students at the 120 iterations they had when the full students trained 600 (now 900, so 0.13 of the run: 180
# would take the quick mode past 20 min). The lengths follow from the time budget alone and were fixed before any run
# of them was scored. A first try (0.4 of each run, validated every fifth, from a backbone pretrained for 600 of 2,000
# iterations) took 22.5 min, with a teacher of 28.5 mIoU. The full recipe on seeds 0 and 1 is `--seeds 0,1`.
QUICK_RUNS = {"teacher": ("train.iterations=200", "train.val_every=0"),
              "student": ("train.iterations=120", "train.val_every=0"),
              "two_stage": ("train.iterations=160", "train.val_every=0")}

PAPER = Paper("dgkd-wlss", "DGKD-WLSS", {
    "scenes": suite("scenes", "scenes", two_stage_crf=False, faithful=True, two_stage_scratch=True,
                    default_seeds=(0, 1, 2, 3, 4),
                    quick_seeds=(0, 1), quick_runs=QUICK_RUNS, prepare=ensure_pretrained_start),
    "voc": suite("voc", "voc", two_stage_crf=True, faithful=True, needs_data_root=True),
    "lis": suite("lis", "lis", needs_data_root=True),
    "voc-lis": suite("voc-lis", "voc_lis", needs_data_root=True),
})
