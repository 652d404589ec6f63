"""The PLDA, ASDT and two-stage declarations of `darkseg reproduce`: every column resolves to an existing config that
trains what its label says, retrained columns read the pseudo masks of their source run, the CLI lists the papers."""

from pathlib import Path

import pytest

from darkseg.cli import main
from darkseg.reproduce.papers import PAPERS
from darkseg.reproduce.runner import Plan
from darkseg.reproduce.two_stage import PSEUDO_DIR

CONFIGS = Path("configs")


def _configs(paper: str, suite: str, tmp_path: Path) -> tuple[Plan, dict]:
    plan = Plan(PAPERS[paper].suites[suite], CONFIGS, tmp_path, (4,), quick=False)
    return plan, {key: plan.config(col, 4) for key, col in plan.suite.columns().items()}


@pytest.mark.parametrize(("paper", "suite"), [("dgkd-wlss", "scenes"), ("plda", "scenes"), ("asdt", "scenes")])
def test_retrained_columns_read_the_pseudo_masks_of_their_source_run(paper, suite, tmp_path):
    plan, cfgs = _configs(paper, suite, tmp_path)
    columns = plan.suite.columns()
    table = plan.suite.ablations["two-stage"]
    retrained = [c for c in table.columns if any(n.path == PSEUDO_DIR for n in c.needs)]
    assert retrained and table.baseline in columns
    for col in retrained:
        (need,) = col.needs
        source = columns[need.column]
        assert source.export is not None, f"{source.key} must export the pseudo masks {col.key} trains on"
        cfg, src = cfgs[col.key], cfgs[source.key]
        assert cfg.method.name == "supervised" and cfg.model.name in ("deeplabv1", "deeplabv2")
        assert cfg.data.train_mask_dir == str(plan.run_dir(source, 4) / PSEUDO_DIR)
        # the segmenter learns from the images the pseudo masks were made from and is scored like its source
        assert cfg.method.input == src.method.input and cfg.eval.split == src.eval.split
        assert (cfg.data.root, cfg.data.scenes, cfg.data.train_split) == (src.data.root, src.data.scenes,
                                                                           src.data.train_split)


def test_asdt_two_stage_is_beside_its_single_stage_model_and_table_1_compares_the_retrained_ones():
    ablations = PAPERS["asdt"].suites["scenes"].ablations
    two_stage, retrained = ablations["two-stage"], ablations["retrained"]
    assert [c.key for c in two_stage.columns] == ["asdt", "asdt_deeplabv2"] and two_stage.baseline == "asdt"
    assert two_stage.columns[1].needs[0].column == "asdt"
    assert [c.key for c in retrained.columns] == ["rrm_deeplabv2", "asdt_deeplabv2"]
    assert retrained.baseline == "rrm_deeplabv2" and retrained.columns[0].needs[0].column == "rrm"
    assert retrained.columns[1] is two_stage.columns[1]  # one column: its runs are shared by both tables


def test_dgkd_two_stage_is_table_6_deeplabv2_on_the_dark_pseudo_masks_of_dgkd_dgf2(tmp_path):
    plan, cfgs = _configs("dgkd-wlss", "scenes", tmp_path)
    table = plan.suite.ablations["two-stage"]
    assert [c.key for c in table.columns] == ["dgkd_dgf2", "two_stage", "two_stage_scratch"]
    assert table.baseline == "dgkd_dgf2"
    assert table.columns[0] is plan.suite.main.columns[3]  # the Table 1 run, trained once
    for key in ("two_stage", "two_stage_scratch"):
        assert cfgs[key].model.name == "deeplabv2" and cfgs[key].method.input == "dark"
    # the second stage starts from the students' pretrained backbone, like every scenes recipe
    assert cfgs["two_stage"].model.backbone.name == "wideresnet38"
    assert cfgs["two_stage"].model.backbone.pretrained == cfgs["dgkd_dgf2"].model.backbone.pretrained
    assert "two-stage" in PAPERS["dgkd-wlss"].suites["voc"].ablations
    voc = Plan(PAPERS["dgkd-wlss"].suites["voc"], CONFIGS, tmp_path, (0,), quick=False)
    cfg = voc.config(voc.suite.columns()["two_stage"], 0)
    assert cfg.method.input == "dark" and cfg.data.train_split == "train_aug" and cfg.eval.split == "val"


def test_asdt_declaration_is_table_4_with_the_rrm_baseline_and_table_5(tmp_path):
    plan, cfgs = _configs("asdt", "scenes", tmp_path)
    main_table = plan.suite.main
    assert [c.key for c in main_table.columns] == ["rrm", "class_teacher", "seg_teacher", "naive_max", "naive_mean",
                                                   "asdt"]
    strategies = {c.key: cfgs[c.key].method.strategy for c in main_table.columns}
    assert strategies == {"rrm": "none", "class_teacher": "class_teacher", "seg_teacher": "seg_teacher",
                          "naive_max": "naive_max", "naive_mean": "naive_mean", "asdt": "alternative"}
    assert main_table.baseline == "rrm" and main_table.compared() == tuple(strategies)[1:]
    rrm, class_teacher = cfgs["rrm"], cfgs["class_teacher"]
    assert (rrm.model.student, rrm.model.seg_teacher) == (False, True)
    assert (class_teacher.model.student, class_teacher.model.seg_teacher) == (True, False)
    assert rrm.method.structure.unlabelled_gate and not class_teacher.method.structure.unlabelled_gate
    # Table 5: each row differs from the full model in exactly its component
    table = plan.suite.ablations["components"]
    assert table.baseline == "asdt" and table.columns[0] is main_table.columns[-1]
    full = cfgs["asdt"].model_dump()
    changed = {}
    for key in table.compared():
        row = cfgs[key].model_dump()
        changed[key] = {(section, k) for section in ("model", "method", "eval") for k in full[section]
                        if full[section][k] != row[section][k]}
    assert changed == {"no_reliability": {("method", "knowledge")}, "no_structure": {("method", "structure")},
                       "no_crf": {("eval", "inference")}, "fusion_mean": {("model", "fusion")},
                       "fusion_multiply": {("model", "fusion")}}
    assert not cfgs["no_reliability"].method.knowledge.reliability and cfgs["no_structure"].method.structure.weight == 0
    assert cfgs["no_crf"].eval.inference.crf is None
    assert (cfgs["fusion_mean"].model.fusion, cfgs["fusion_multiply"].model.fusion) == ("mean", "multiply")


def test_reproduce_help_lists_the_papers_and_two_stage(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside the names
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "{asdt,ccdistill,dania,dgkd-wlss,plda}" in out and "--two-stage" in out
    for declared in ("dgkd-wlss scenes", "dgkd-wlss voc", "plda scenes", "asdt scenes"):
        assert declared in out, declared


def test_two_stage_on_a_suite_without_it_fails_in_one_line(capsys):
    assert main(["reproduce", "dgkd-wlss", "--suite", "lis", "--two-stage"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--two-stage" in err[0] and "scenes, voc" in err[0]


def test_retrained_columns_name_the_pseudo_masks_absolutely_under_a_relative_out(tmp_path, monkeypatch):
    """data.train_mask_dir is read under data.root: a relative --out must not become <root>/runs/..."""
    configs = CONFIGS.absolute()
    monkeypatch.chdir(tmp_path)
    plan = Plan(PAPERS["asdt"].suites["scenes"], configs, Path("runs/suite"), (1,), quick=False)
    column = plan.suite.columns()["asdt_deeplabv2"]
    mask_dir = Path(plan.config(column, 1).data.train_mask_dir)
    assert mask_dir.is_absolute() and mask_dir == tmp_path / "runs/suite/runs/asdt/seed1" / PSEUDO_DIR
    weights = plan.config(plan.suite.columns()["asdt"], 1).output_dir  # other paths stay as given
    assert not Path(weights).is_absolute()

