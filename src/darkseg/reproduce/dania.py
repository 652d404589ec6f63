"""DANIA's tables as ``darkseg reproduce dania`` runs them on the built-in day→night benchmark: source-only (the
baseline), DANNet (DANIA without alignment) and DANIA, each adapted model starting from the source-only model of its
seed (the paper's Table 4: without a pretrained segmenter adaptation fails); Table 4/5 and Table 8 ablations."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from darkseg.reproduce.daynight import SOURCE_ONLY_INIT, align_target_pairs, source_only
from darkseg.reproduce.tables import Column, Figures, Paper, Suite, Table

if TYPE_CHECKING:
    from darkseg.reproduce.runner import Plan

DANNET = Column("dannet", "DANNet", "dania/scenes_dannet_deeplabv2.yaml", needs=(SOURCE_ONLY_INIT,))
DANIA = Column("dania", "DANIA", "dania/scenes_dania_deeplabv2.yaml", needs=(SOURCE_ONLY_INIT,))

ABLATIONS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "alignment": ("Table 8: image alignment (DANIA: fine flow on the day prediction, Eq. 9)", (
        ("no_alignment", "w/o alignment"),
        ("coarse_flow", "homography only (Eq. 18)"),
        ("warp_image", "day image warped (Eq. 19)"),
        ("warp_night", "night prediction warped to the day view (Eq. 20)"),
    )),
    "components": ("Table 4: components", (
        ("no_relight", "w/o relighting network & L_light"),
        ("no_light_loss", "w/o L_light"),
        ("no_day", "w/o target day images"),
    )),
    "static": ("Table 5: the static loss", (
        ("no_static", "w/o L_static"),
        ("no_fusion", "w/o prediction fusion"),
        ("no_reweight_labels", "w/o re-weighting on pseudo labels"),
        ("no_reweight_prediction", "w/o re-weighting on prediction"),
        ("static_ce", "cross-entropy in L_static"),
        ("static_focal", "focal loss in L_static (no 3×3 region)"),
    )),
}


def relight_figure(plan: Plan, table: Table, labels: dict[str, str], out: Path, n: int = 4) -> Path:
    """Night image, relit image, day image warped onto the night view, DANIA's prediction (first seed, aligned
    night_train pairs: the alignment exists for the train split)."""
    import numpy as np
    import torch

    from darkseg.align.warp import warp_by_flow
    from darkseg.data.registry import build_dataset
    from darkseg.data.transforms import EvalTransform
    from darkseg.engine.inference import labels_from_probs, predict_probs
    from darkseg.engine.runner import load_deployed
    from darkseg.reproduce.report import colour_labels, display_image, save_figure, plt

    cfg = plan.config(DANIA, plan.seeds[0])
    model = load_deployed(cfg, None, torch.device("cpu"))
    target = cfg.data.target
    dataset = build_dataset(target, target.train_split, ("image", "day", "flow"), EvalTransform())
    headers = ["night", "relit (DANIA)", "day warped onto night", labels["dania"]]
    fig, axes = plt.subplots(n, len(headers), figsize=(2 * len(headers), 2 * n), squeeze=False)
    with torch.no_grad():
        for row in range(min(n, len(dataset))):
            s = dataset[row]
            night = s["image"][None]
            res = model(night)
            day, _ = warp_by_flow(s["day"][None], s["flow"][None])
            pred = labels_from_probs(predict_probs(model, night, cfg.eval.inference), night, cfg.eval.inference)[0]
            panels = [display_image(s["image"]), display_image(res["relit"][0].clamp(0, 1)), display_image(day[0]),
                      colour_labels(pred.numpy().astype(np.uint8))]
            for col, img in enumerate(panels):
                ax = axes[row][col]
                ax.imshow(img)
                ax.set_xticks([]), ax.set_yticks([])
                if row == 0:
                    ax.set_title(headers[col], fontsize=8)
    return save_figure(fig, out / "relight.png")


def scenes_suite() -> Suite:
    """Source-only vs DANNet vs DANIA (DeepLab-v2, small), and the ablation tables against DANIA."""
    main = Table("Night test: source-only vs DANNet vs DANIA (DeepLab-v2, small)",
                 (source_only(), DANNET, DANIA), baseline="source_only",
                 figures=Figures(grid=("source_only", "dannet", "dania"), extra=(relight_figure,)))
    ablations = {
        key: Table(f"{title}; baseline DANIA", (DANIA, *(Column(row, label, f"dania/ablations/scenes_dania_deeplabv2_"
                                                                 f"{row}.yaml", needs=(SOURCE_ONLY_INIT,))
                                                          for row, label in rows)), baseline="dania")
        for key, (title, rows) in ABLATIONS.items()
    }
    return Suite("scenes", main, ablations, default_seeds=(0, 1, 2, 3, 4), quick_seeds=(0, 1),
                 # the scenes camera moves by a similarity between day and night (`darkseg align --model similarity`)
                 prepare=functools.partial(align_target_pairs, settings={"model": "similarity"}))


PAPER = Paper("dania", "DANIA (and DANNet)", {"scenes": scenes_suite()})
