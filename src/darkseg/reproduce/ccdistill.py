"""CCDistill's tables as ``darkseg reproduce ccdistill`` runs them on the built-in day→night benchmark: source-only
(the baseline: the same segmenter, data, iterations and optimiser, trained on the day source alone), CCDistill without
its two distillations (CDC and CDS: segmentation losses and the static pseudo loss only) and the full method; the
other rows of Table 3 as an ablation table against the full method. Every model trains from scratch, as the
source-only model does (the scenes segmenters have no pretrained weights)."""

from __future__ import annotations

from darkseg.reproduce.daynight import source_only
from darkseg.reproduce.tables import Column, Figures, Paper, Suite, Table

NO_CDC_CDS = Column("no_cdc_cds", "w/o CDC and CDS", "ccdistill/scenes_no_cdc_cds.yaml")
CCDISTILL = Column("ccdistill", "CCDistill", "ccdistill/scenes_ccdistill.yaml")

TABLE_3 = (
    ("no_cdc", "w/o CDC"),
    ("no_project_head", "w/o project head in CDC"),
    ("no_js", "w/o L_JS in CDC"),
    ("no_illumination", "w/o illuminance correlation"),
    ("no_inherent", "w/o inherent correlation"),
    ("no_cds", "w/o CDS"),
    ("no_lab", "w/o LAB-based transfer"),
)


def scenes_suite() -> Suite:
    """Source-only vs w/o CDC and CDS vs CCDistill (Table 3's first, last-but-one and last rows), and Table 3."""
    main = Table("Night test: source-only vs CCDistill w/o CDC and CDS vs CCDistill (DeepLab-v2, small)",
                 (source_only(), NO_CDC_CDS, CCDISTILL), baseline="source_only",
                 figures=Figures(grid=("source_only", "no_cdc_cds", "ccdistill")))
    table_3 = Table("Table 3: ablations of CCDistill; baseline the full method", (
        CCDISTILL, *(Column(key, label, f"ccdistill/scenes_{key}.yaml") for key, label in TABLE_3),
        NO_CDC_CDS), baseline="ccdistill")
    return Suite("scenes", main, {"table-3": table_3}, default_seeds=(0, 1, 2, 3, 4), quick_seeds=(0, 1))


PAPER = Paper("ccdistill", "CCDistill", {"scenes": scenes_suite()})
