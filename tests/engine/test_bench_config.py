"""``engine.profile.bench_config``: a recipe's precision mapped to the device (fp16 autocast exists only on CUDA)."""

from __future__ import annotations

from darkseg.engine.profile import bench_config

RECIPE = "configs/dgkd_wlss/voc_dgkd.yaml"


def test_fp16_recipe_runs_bf16_off_cuda_and_batch_1_keeps_aspp_pool_statistics():
    cfg, added = bench_config(RECIPE, "cpu", ["method.teacher.amp=fp16", "data.batch_size=1"])
    assert (cfg.train.amp, cfg.method.teacher.amp) == ("bf16", "bf16")
    assert cfg.model.freeze_aspp_bn_stats and cfg.train.device == "cpu"
    assert added == ["train.amp=bf16", "method.teacher.amp=bf16", "model.freeze_aspp_bn_stats=true"]


def test_cuda_keeps_the_recipe():
    cfg, added = bench_config(RECIPE, "cuda", ["method.teacher.amp=fp16"])
    assert (cfg.train.amp, cfg.method.teacher.amp, cfg.data.batch_size) == ("fp16", "fp16", 6)
    assert added == [] and not cfg.model.freeze_aspp_bn_stats
