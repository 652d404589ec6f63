"""What ``darkseg reproduce dgkd-wlss`` runs: the columns of Table 1 and the ablation tables, per suite."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Run:
    """One trained model: a config (relative to the configs folder) and whether it distils from the teacher."""

    key: str
    label: str
    config: str
    needs_teacher: bool = False


@dataclass(frozen=True)
class Suite:
    """A dataset's Table 1 columns, its quick-mode overrides and where its data lives."""

    name: str
    prefix: str  # config file prefix, e.g. "scenes" -> configs/dgkd_wlss/scenes_teacher.yaml
    quick: tuple[str, ...] = ()
    default_seeds: tuple[int, ...] = (0,)
    needs_data_root: bool = False
    columns: tuple[Run, ...] = field(init=False)

    def __post_init__(self) -> None:
        p = self.prefix
        object.__setattr__(self, "columns", (
            Run("teacher", "tea. (normal light)", f"dgkd_wlss/{p}_teacher.yaml"),
            Run("baseline", "stu. (dark baseline)", f"dgkd_wlss/{p}_student.yaml"),
            Run("dgkd", "+DGKD", f"dgkd_wlss/{p}_dgkd.yaml", needs_teacher=True),
            Run("dgkd_dgf2", "+DGKD +DGF2", f"dgkd_wlss/{p}_dgkd_dgf2.yaml", needs_teacher=True),
        ))

    def ablation(self, name: str) -> tuple[str, tuple[Run, ...]]:
        """(table title, runs) of an ablation for this suite."""
        title, rows = ABLATIONS[name]
        return title, tuple(
            Run(key, label, f"dgkd_wlss/ablations/{self.prefix}_{key}.yaml", needs_teacher=True)
            for key, label in rows
        )


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

# Depth maps each depth-model ablation row reads (written by `darkseg depth`, see the README).
DEPTH_ROWS = {"depth_anything": "depth-anything-small", "depth_zoedepth": "zoedepth", "depth_midas": "dpt-midas"}

SUITES: dict[str, Suite] = {
    "scenes": Suite("scenes", "scenes", quick=("train.iterations=700", "train.val_every=0"), default_seeds=(0, 1, 2)),
    "voc": Suite("voc", "voc", needs_data_root=True),
    "lis": Suite("lis", "lis", needs_data_root=True),
    "voc-lis": Suite("voc-lis", "voc_lis", needs_data_root=True),
}
