"""PLDA's reproduce rows that need another run: MaskAssign-OC trains after, and reads, the plain CAM baseline's run of
the same seed (a `Need`), and PLDA on the CAM baseline; trained and scored by the runner on the tiny benchmark."""

from pathlib import Path

import yaml
from safetensors.torch import load_file

from darkseg.reproduce.papers import PAPERS
from darkseg.reproduce.runner import Plan, run_plan


def test_mask_oc_and_cam_host_rows_train_and_score(tmp_path, tiny):
    run = [a for a in tiny if not a.startswith(("model.aspp", "model.decoder", "model.skip"))]
    plan = Plan(PAPERS["plda"].suites["scenes"], Path("configs"), tmp_path, (2,), quick=True,
                overrides=[*run, "train.iterations=1", "train.val_every=0", "train.ckpt_every=0"])
    results = run_plan(plan, ("mask_oc", "cam_plda"))
    assert list(results) == ["cam", "mask_oc", "cam_plda"]  # the CAM run first: the OC of mask_oc
    columns = plan.suite.columns()
    cam_dir = plan.run_dir(columns["cam"], 2)
    saved = yaml.safe_load((plan.run_dir(columns["mask_oc"], 2) / "config.yaml").read_text())
    assert saved["method"]["plda"]["oc"]["weights"] == str(cam_dir / "model_final.safetensors")
    for key, [res] in results.items():
        assert res.metrics["split"] == "train" and 0 <= res.metrics["miou"] <= 100, key
    # the ordinary classifier (a width-overridden CAM, read from its run folder) is not part of the deployed model
    deployed = load_file(str(plan.run_dir(columns["mask_oc"], 2) / "model_final.safetensors"))
    assert "pcm_b4.weight" in deployed and not any(k.startswith(("oc.", "domain.")) for k in deployed)
