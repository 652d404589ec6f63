"""The declaration frame of `darkseg reproduce`: run order from needs, need overrides, exports, paired summaries."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy import stats as sps

from darkseg.errors import ConfigError
from darkseg.reproduce.papers import PAPERS
from darkseg.reproduce.report import summarise
from darkseg.reproduce.runner import EXPORT_DONE, METRICS_FILE, Plan, Progress, RunResult, run_one, run_plan
from darkseg.reproduce.tables import Column, Need, Suite, Table, order_runs, schedule_order

CONFIGS = Path("configs")


def _two_stage_suite(exports: list) -> Suite:
    """A CAM column whose exported pseudo masks a supervised column reads, declared as a new method would."""

    def export(cfg, run_dir):
        exports.append(run_dir)
        (run_dir / "pseudo").mkdir()

    cam = Column("cam", "CAM", "dgkd_wlss/scenes_teacher.yaml", export=export)
    sup = Column("retrain", "supervised retrain", "dgkd_wlss/scenes_dgkd.yaml",
                 needs=(Need("cam", "method.teacher.weights", "pseudo"),))
    return Suite("toy", Table("toy table", (sup, cam), baseline="cam"))


def test_needed_columns_run_first_and_cycles_are_refused():
    suite = _two_stage_suite([])
    assert [c.key for c in order_runs(suite.columns(), ("retrain",))] == ["cam", "retrain"]
    a = Column("a", "A", "a.yaml", needs=(Need("b", "x"),))
    b = Column("b", "B", "b.yaml", needs=(Need("a", "x"),))
    with pytest.raises(ValueError, match="cycle"):
        order_runs({"a": a, "b": b}, ("a",))
    with pytest.raises(ValueError, match="no table"):
        order_runs({"a": a}, ("a",))


def test_jobs_take_needed_runs_first_then_the_long_ones_and_the_cheap_independent_ones_last():
    a = Column("a", "A", "a.yaml", cost=1.0)
    b = Column("b", "B", "b.yaml", needs=(Need("a", "x"),), cost=0.5)
    c = Column("c", "C", "c.yaml", cost=1.2)
    d = Column("d", "D", "d.yaml")
    e = Column("e", "E", "e.yaml")
    # upward ranks: a 1.0 + 0.5 (b needs it) = 1.5, c 1.2, d and e 1.0 (declaration order), b 0.5
    order = [col.key for col in schedule_order({k.key: k for k in (a, b, c, d, e)}, ("b", "c", "d", "e"))]
    assert order == ["a", "c", "d", "e", "b"]
    with pytest.raises(ValueError, match="cost must be positive"):
        Column("x", "X", "x.yaml", cost=0.0)
    suite = PAPERS["dgkd-wlss"].suites["scenes"]
    order = [col.key for col in schedule_order(suite.columns(), ("baseline", "dgkd", "dgkd_dgf2"))]
    assert order == ["teacher", "dgkd_dgf2", "dgkd", "baseline"]


def test_dgkd_declaration_trains_the_teacher_first_and_points_students_at_it(tmp_path):
    suite = PAPERS["dgkd-wlss"].suites["scenes"]
    order = [c.key for c in order_runs(suite.columns(), ("dgkd", "baseline"))]
    assert order == ["teacher", "dgkd", "baseline"]
    plan = Plan(suite, CONFIGS, tmp_path, (3,), quick=True)
    cfg = plan.config(suite.columns()["dgkd_dgf2"], 3)
    full = Plan(suite, CONFIGS, tmp_path, (3,), quick=False)
    assert len(suite.quick_seeds) >= 2 and len(suite.default_seeds) >= 5  # issue 13: intervals even in --quick
    # --quick: the teacher and the retrain at 0.2 of their full length, the students at 120 of 900, each validated at
    # its end only, from the full suites' backbone
    for key, column in suite.columns().items():
        short, long = plan.config(column, 3), full.config(column, 3)
        assert short.seed == 3 and short.output_dir == long.output_dir
        fraction = 0.2 if key in ("teacher", "two_stage", "two_stage_scratch") else 120 / 900
        assert long.train.iterations > short.train.iterations == round(fraction * long.train.iterations), key
        assert short.train.val_every == 0, key
        assert short.model == long.model and short.method == long.method, key
    assert cfg.method.teacher.weights == str(tmp_path / "runs" / "teacher" / "seed3" / "model_final.safetensors")
    assert set(suite.ablations) == {"kd-loss", "dgf2", "depth-model", "lambda", "steps", "teacher-targets", "ladder",
                                    "two-stage"}
    two_stage = suite.ablations["two-stage"]  # both second stages against the single stage whose masks they learn
    assert [c.key for c in two_stage.columns] == ["dgkd_dgf2", "two_stage", "two_stage_scratch"]
    assert two_stage.compared() == ("two_stage", "two_stage_scratch")
    second = {k: full.config(suite.columns()[k], 3) for k in ("two_stage", "two_stage_scratch")}
    assert str(second["two_stage"].model.backbone.pretrained) == "data/scenes_pretrain/run/backbone.safetensors"
    assert second["two_stage_scratch"].model.backbone.pretrained is None
    targets = suite.ablations["teacher-targets"]  # faithful targets against the default ones, the same +DGKD run
    assert targets.columns[1] is suite.main.columns[2] and targets.baseline_of("dgkd_faithful") == "dgkd"
    ladder = suite.ablations["ladder"]  # plain KD rows, then the Table 1 +DGKD run compared with plain DIST
    assert ladder.columns[0] is suite.main.columns[1] and ladder.columns[-1] is suite.main.columns[2]
    assert ladder.baseline_of("kd_kl") == "baseline" and ladder.baseline_of("dgkd") == "kd_dist"
    for name, table in suite.ablations.items():  # every ablation row is compared with the Table 1 baseline run
        if name not in ("two-stage", "teacher-targets", "ladder"):
            assert table.columns[0] is suite.main.columns[1]
            assert table.compared() == tuple(c.key for c in table.columns[1:])


def test_export_runs_once_after_training_and_feeds_the_next_column(tmp_path):
    exports = []
    suite = _two_stage_suite(exports)
    plan = Plan(suite, CONFIGS, tmp_path, (0,), quick=False)
    cam = suite.columns()["cam"]
    run_dir = plan.run_dir(cam, 0)
    run_dir.mkdir(parents=True)
    (run_dir / "model_final.safetensors").write_bytes(b"")  # a finished run: reused, not trained
    metrics = {"split": "test", "miou": 40.0, "pixacc": 80.0, "per_class_iou": {}, "params": 1, "gmac": 0.1,
               "input_view": "image"}
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics))
    for _ in range(2):
        result = run_one(plan, cam, 0, Progress(1))
    assert exports == [run_dir] and (run_dir / "pseudo").is_dir() and result.metrics["miou"] == 40.0
    assert plan.config(suite.columns()["retrain"], 0).method.teacher.weights == str(run_dir / "pseudo")


def test_an_export_runs_only_when_a_column_of_the_plan_needs_it(tmp_path):
    exports = []
    suite = _two_stage_suite(exports)
    plan = Plan(suite, CONFIGS, tmp_path, (0,), quick=False)
    metrics = {"split": "test", "miou": 40.0, "pixacc": 80.0, "per_class_iou": {}, "params": 1, "gmac": 0.1,
               "input_view": "image"}
    for column in suite.columns().values():  # finished runs: reused, not trained
        run_dir = plan.run_dir(column, 0)
        run_dir.mkdir(parents=True)
        (run_dir / "model_final.safetensors").write_bytes(b"")
        (run_dir / METRICS_FILE).write_text(json.dumps(metrics))
    run_plan(plan, ("cam",))
    assert exports == []
    run_plan(plan, ("retrain",))
    assert exports == [plan.run_dir(suite.columns()["cam"], 0)]


def test_changed_evaluation_settings_re_evaluate_a_finished_run_and_a_training_change_is_refused(tmp_path,
                                                                                                  monkeypatch):
    import darkseg.reproduce.runner as runner

    column = Column("student", "S", "dgkd_wlss/scenes_student.yaml")
    plan = Plan(Suite("toy", Table("toy table", (column,))), CONFIGS, tmp_path, (0,), quick=False)
    run_dir = plan.run_dir(column, 0)
    run_dir.mkdir(parents=True)
    (run_dir / "model_final.safetensors").write_bytes(b"")  # a finished run, its metrics cached by an older version
    cfg = plan.config(column, 0)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    metrics = {"split": "test", "miou": 40.0, "pixacc": 80.0, "per_class_iou": {}, "params": 1, "gmac": 0.1,
               "input_view": "dark"}
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics))
    evaluated = []

    def fake_evaluate(cfg, weights, split, progress):
        evaluated.append(cfg.eval.inference_search.bg_pows)
        return SimpleNamespace(to_dict=lambda: {"miou": 41.0 + len(evaluated), "pixacc": 81.0, "per_class_iou": {}})

    monkeypatch.setattr(runner, "evaluate_config", fake_evaluate)
    monkeypatch.setattr(runner, "profile", lambda cfg, size: SimpleNamespace(deploy_params=1, deploy_gmac=0.1))
    monkeypatch.setattr(runner, "train", lambda *a, **k: pytest.fail("a finished run must not be retrained"))
    assert run_one(plan, column, 0, Progress(1)).metrics["miou"] == 40.0 and evaluated == []  # same settings
    plan.overrides = ["eval.inference_search.bg_pows=[0.25,0.5]"]
    assert run_one(plan, column, 0, Progress(1)).metrics["miou"] == 42.0 and evaluated == [[0.25, 0.5]]
    assert run_one(plan, column, 0, Progress(1)).metrics["miou"] == 42.0 and len(evaluated) == 1  # cached
    plan.overrides = ["eval.inference_search.bg_pows=[0.25,0.5]", "train.optim.lr=0.02"]
    with pytest.raises(ConfigError, match="train.optim.lr"):
        run_one(plan, column, 0, Progress(1))
    exported = Column("student", "S", "dgkd_wlss/scenes_student.yaml", export=lambda cfg, run_dir: None)
    plan = Plan(Suite("toy", Table("toy table", (exported,))), CONFIGS, tmp_path, (0,), quick=False,
                overrides=["eval.inference_search.bg_pows=[0.25,0.5]"])
    assert run_one(plan, exported, 0, Progress(1), export=False).metrics["miou"] == 42.0  # no export made yet
    (run_dir / EXPORT_DONE).write_bytes(b"")
    plan.overrides = ["eval.inference_search.bg_pows=[0.5]"]
    with pytest.raises(ConfigError, match="bg_pows"):  # its pseudo masks were made with the old settings
        run_one(plan, exported, 0, Progress(1))


def test_an_unfinished_run_resumes_with_the_evaluation_settings_it_started_with(tmp_path, monkeypatch):
    import darkseg.reproduce.runner as runner

    column = Column("student", "S", "dgkd_wlss/scenes_student.yaml")
    plan = Plan(Suite("toy", Table("toy table", (column,))), CONFIGS, tmp_path, (0,), quick=False,
                overrides=["eval.inference_search.bg_pows=[0.25,0.5]"])
    run_dir = plan.run_dir(column, 0)
    run_dir.mkdir(parents=True)
    started = Plan(plan.suite, CONFIGS, tmp_path, (0,), quick=False).config(column, 0)
    (run_dir / "config.yaml").write_text(started.to_yaml())
    trained = []

    def fake_train(cfg, resume):
        trained.append(cfg.eval.inference_search.bg_pows)
        (run_dir / "model_final.safetensors").write_bytes(b"")
        return SimpleNamespace(completed=True)

    monkeypatch.setattr(runner, "train", fake_train)
    monkeypatch.setattr(runner, "evaluate_config", lambda cfg, weights, split, progress: SimpleNamespace(
        to_dict=lambda: {"miou": 30.0 + cfg.eval.inference_search.bg_pows[0], "pixacc": 80.0, "per_class_iou": {}}))
    monkeypatch.setattr(runner, "profile", lambda cfg, size: SimpleNamespace(deploy_params=1, deploy_gmac=0.1))
    result = run_one(plan, column, 0, Progress(1))
    assert trained == [started.eval.inference_search.bg_pows] and result.metrics["miou"] == 30.25


def _results(key: str, mious: dict[int, float]) -> list[RunResult]:
    return [RunResult(key, seed, Path("."), {"miou": m, "pixacc": 50.0 + m / 10, "per_class_iou": {"bg": m},
                                             "split": "test"}, 10, 0.5, "dark") for seed, m in mious.items()]


def test_summary_has_per_seed_values_and_paired_intervals():
    table = PAPERS["dgkd-wlss"].suites["scenes"].main
    teacher = {0: 70.0, 1: 71.0, 2: 69.0}
    base = {0: 20.0, 1: 33.0, 2: 38.0}
    dgkd = {2: 41.0, 0: 24.0, 1: 34.0}  # another seed order: paired by seed, not by position
    summary = summarise({"teacher": _results("teacher", teacher), "baseline": _results("baseline", base),
                         "dgkd": _results("dgkd", dgkd), "dgkd_dgf2": _results("dgkd_dgf2", base)}, table)
    col = summary["dgkd"]
    assert col["seeds"] == [2, 0, 1] and col["miou_per_seed"] == [41.0, 24.0, 34.0]
    assert col["miou"] == pytest.approx(33.0) and col["miou_std"] == pytest.approx(sps.tstd([41.0, 24.0, 34.0]))
    ref = sps.ttest_rel([24.0, 34.0, 41.0], [20.0, 33.0, 38.0]).confidence_interval(0.95)
    assert col["diff_vs_baseline"]["mean"] == pytest.approx(8.0 / 3)
    assert col["diff_vs_baseline"]["ci95"] == pytest.approx([ref.low, ref.high])
    assert summary["dgkd_dgf2"]["diff_vs_baseline"] == {"mean": 0.0, "ci95": [0.0, 0.0]}
    assert "diff_vs_baseline" not in summary["baseline"] and "diff_vs_baseline" not in summary["teacher"]
    assert col["gap_recovered"] == pytest.approx((33.0 - 30.333333) / (70.0 - 30.333333), rel=1e-5)
    seed_gaps = [4.0 / 50.0, 1.0 / 38.0, 3.0 / 31.0]
    ref = sps.t.interval(0.95, 2, loc=sum(seed_gaps) / 3, scale=sps.sem(seed_gaps))
    assert col["gap_recovered_ci95"] == pytest.approx(ref)


def test_trust_note_names_the_interval_or_its_absence(tmp_path):
    from darkseg.reproduce.report import trust_note

    suite = PAPERS["dgkd-wlss"].suites["scenes"]
    one = " ".join(trust_note(Plan(suite, CONFIGS, tmp_path, (0,), quick=True)))
    assert "one seed (0)" in one and "null" in one and "Quick mode" in one
    # each column's own quick overrides, grouped: the teacher's, the retrain's, then the students' as the rest
    assert ("teacher: `train.iterations=200`, `train.val_every=0`; two_stage, two_stage_scratch: "
            "`train.iterations=160`, "
            "`train.val_every=0`; the other columns: `train.iterations=120`") in one
    plda = " ".join(trust_note(Plan(PAPERS["plda"].suites["scenes"], CONFIGS, tmp_path, (0, 1), quick=True)))
    assert "(overrides `train.iterations=80`)" in plda  # suite-wide overrides only
    five = " ".join(trust_note(Plan(suite, CONFIGS, tmp_path, (0, 1, 2, 3, 4), quick=False)))
    assert "5 seeds" in five and "t(0.975, 4) = 2.78" in five and "Quick mode" not in five


def test_summary_reports_the_quality_of_exported_pseudo_masks(tmp_path):
    from darkseg.reproduce.report import _pseudo_lines
    from darkseg.reproduce.two_stage import PSEUDO_SCORE

    table = PAPERS["dgkd-wlss"].suites["scenes"].main
    runs = []
    for seed, miou in ((0, 40.0), (1, 46.0)):
        run_dir = tmp_path / f"s{seed}"
        run_dir.mkdir()
        (run_dir / PSEUDO_SCORE).write_text(json.dumps({"split": "train", "images": 3, "crf": False, "miou": miou}))
        runs.append(RunResult("dgkd_dgf2", seed, run_dir, {"miou": 30.0, "pixacc": 50.0, "per_class_iou": {"bg": 1.0},
                                                           "split": "test"}, 10, 0.5, "dark"))
    summary = summarise({"dgkd_dgf2": runs, "baseline": _results("baseline", {0: 20.0, 1: 21.0})}, table)
    quality = summary["dgkd_dgf2"]["pseudo_masks"]
    assert quality["miou"] == pytest.approx(43.0) and quality["miou_per_seed"] == [40.0, 46.0]
    assert quality["miou_std"] == pytest.approx(sps.tstd([40.0, 46.0])) and quality["split"] == "train"
    assert "pseudo_masks" not in summary["baseline"]  # no export, no line
    lines = _pseudo_lines([("+DGKD +DGF2", summary["dgkd_dgf2"]), ("baseline", summary["baseline"])])
    assert any(line.startswith("- +DGKD +DGF2: 43.0 ± 4.2 (40.0 / 46.0), train split") for line in lines)
    assert not any("baseline" in line for line in lines)


def test_summary_reports_the_last_fifth_change_of_validation(tmp_path):
    from darkseg.reproduce.report import _convergence_lines

    table = PAPERS["dgkd-wlss"].suites["scenes"].main
    curves = {0: {180: 30.0, 360: 40.0, 540: 44.0, 720: 47.5, 900: 48.0},  # last 900, 80% of it 720: +0.5
              1: {200: 31.0, 400: 41.0, 600: 45.0, 800: 43.0, 900: 46.0}}  # nothing at 720: from 600, +1.0
    runs, short = [], []
    for seed, curve in curves.items():
        for name, rows in (("long", curve), ("short", {120: 20.0})):  # one validation only: nothing to compare
            run_dir = tmp_path / f"{name}{seed}"
            run_dir.mkdir()
            lines = ["iteration,miou,pixacc"] + [f"{i},{m},80.0" for i, m in rows.items()]
            (run_dir / "val_log.csv").write_text("\n".join(lines) + "\n")
            (runs if name == "long" else short).append(RunResult(
                "dgkd", seed, run_dir, {"miou": 30.0, "pixacc": 50.0, "per_class_iou": {"bg": 1.0}, "split": "test"},
                10, 0.5, "dark"))
    summary = summarise({"dgkd": runs, "baseline": short}, table)
    change = summary["dgkd"]["val_last_fifth_change"]
    assert change["per_seed"] == pytest.approx([0.5, 1.0]) and change["mean"] == pytest.approx(0.75)
    ref = sps.t.interval(0.95, 1, loc=0.75, scale=sps.sem([0.5, 1.0]))
    assert change["ci95"] == pytest.approx(list(ref)) and change["std"] == pytest.approx(sps.tstd([0.5, 1.0]))
    assert "val_last_fifth_change" not in summary["baseline"]
    line = " ".join(_convergence_lines([("+DGKD", summary["dgkd"]), ("baseline", summary["baseline"])]))
    assert "+DGKD: +0.75 ± 0.35" in line and "(+0.50 / +1.00)" in line and "baseline" not in line


def test_processes_share_out_runs_once_each_and_after_what_they_need(tmp_path, monkeypatch):
    """`reproduce --jobs`: processes (here threads) working through one plan take each (column, seed) run once, and
    start a run only once the runs it needs (same seed) are finished, whoever trained those."""
    import threading
    import time

    import darkseg.reproduce.runner as runner

    teacher = Column("teacher", "T", "t.yaml")
    student = Column("student", "S", "s.yaml")
    distilled = Column("distilled", "D", "d.yaml", needs=(Need("teacher", "method.teacher.weights"),))
    suite = Suite("toy", Table("toy table", (teacher, student, distilled)))
    plan = Plan(suite, CONFIGS, tmp_path, (0, 1, 2), quick=False)
    claims = tmp_path / "claims"
    claims.mkdir()
    log, early, lock = [], [], threading.Lock()

    def fake_run_one(plan, run, seed, progress, export=True):  # noqa: ANN001, ANN202
        early.extend((run.key, seed) for need in run.needs
                     if not (claims / f"{need.column}-seed{seed}.done").is_file())
        with lock:
            log.append((run.key, seed, threading.current_thread().name))
        time.sleep(0.05 if run.key == "teacher" else 0.01)

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    threads = [threading.Thread(target=runner.run_claimed, args=(plan, ("distilled", "student"), claims, 0.01),
                                name=f"p{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = sorted((key, seed) for key, seed, _ in log)
    assert early == []
    assert runs == sorted((k, s) for k in ("teacher", "student", "distilled") for s in (0, 1, 2))
    assert {name for _, _, name in log} == {"p0", "p1"}  # both took a share
    assert sorted(p.name for p in claims.glob("*.done")) == sorted(f"{k}-seed{s}.done" for k, s in runs)
