"""DGKD-WLSS parity switches: label-cleaned student masks at the mask level, fp32 teacher inside bf16 training."""

import pytest
import torch
from torch import nn

from darkseg import precision
from darkseg.config import load_config
from darkseg.engine.runner import build_method

TINY = ["model.backbone.width=0.0625", "model.backbone.pretrained=null", "model.aspp_channels=8", "model.decoder_channels=8", "model.skip_channels=8",
        "data.augment.crop_size=48"]


class Recorder(nn.Module):
    """Stands in for the distiller: keeps what the method passes to the levels."""

    def forward(self, student, teacher, generator=None):
        self.student, self.teacher = student, teacher
        return {"mask/kd": torch.zeros(())}


def _method(*overrides: str):
    torch.manual_seed(0)
    return build_method(load_config("configs/dgkd_wlss/scenes_dgkd.yaml", TINY + list(overrides)),
                        load_external=False)


def _batch():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 48, 48, generator=g)
    labels = torch.tensor([[1.0, 0, 0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]])
    return {"image": image, "dark": 0.1 * image, "labels": labels}


@pytest.mark.parametrize("clean", [True, False])
def test_student_masks_are_label_cleaned_before_the_mask_level(clean):
    method = _method(f"method.clean_student_masks={str(clean).lower()}")
    method.nets["distill"] = Recorder()
    batch = _batch()
    method.training_step("main", batch, 0, {})
    absent = torch.cat([torch.zeros(2, 1), 1 - batch["labels"]], 1).bool()  # background is never cleaned

    def largest_absent(masks):
        return float(masks.detach().permute(1, 0, 2, 3)[absent.t()].abs().max())

    seen = method.nets["distill"]
    assert largest_absent(seen.teacher["mask"]) == 0.0
    assert (largest_absent(seen.student["mask"]) == 0.0) == clean


def test_teacher_precision_off_is_fp32_even_inside_bf16_training(monkeypatch):
    # bf16 as on a CPU with native bfloat16 (elsewhere darkseg runs float32: darkseg.precision)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    batch = _batch()
    fp32 = _method("method.teacher.amp=off")
    bf16 = _method("method.teacher.amp=bf16")
    bf16.nets["teacher"].load_state_dict(fp32.nets["teacher"].state_dict())
    reference = fp32._teacher_targets(batch["image"], batch["labels"])  # no autocast anywhere
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fp32._teacher_targets(batch["image"], batch["labels"])
        low = bf16._teacher_targets(batch["image"], batch["labels"])
    for key in reference:
        assert torch.equal(inside[key], reference[key]), key
    assert any(not torch.allclose(low[k], reference[k], atol=1e-6) for k in reference)
