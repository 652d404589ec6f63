"""``method.teacher.channels_last``: the teacher's targets are those of the default layout (a speed option only)."""

from __future__ import annotations

import torch

from darkseg.config import load_config
from darkseg.engine.runner import build_method

TINY = ["model.backbone.width=0.0625", "model.backbone.pretrained=null", "model.aspp_channels=8", "model.decoder_channels=8", "model.skip_channels=8",
        "data.augment.crop_size=48", "train.amp=off", "method.teacher.amp=off"]


def test_channels_last_teacher_gives_the_same_targets():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 48, 48, generator=g)
    labels = (torch.rand(2, 8, generator=g) < 0.4).float()
    targets = []
    for flag in ("false", "true"):
        cfg = load_config("configs/dgkd_wlss/scenes_dgkd.yaml", [*TINY, f"method.teacher.channels_last={flag}"])
        method = build_method(cfg, load_external=False)
        teacher_weight = next(method.nets["teacher"].parameters())
        assert (teacher_weight.dim() != 4 or flag == "false" or
                teacher_weight.is_contiguous(memory_format=torch.channels_last))
        targets.append(method._teacher_targets(image, labels))
    assert targets[0].keys() == targets[1].keys() == {"mask", "layer3", "layer6"}
    for key in targets[0]:
        torch.testing.assert_close(targets[1][key], targets[0][key], rtol=1e-4, atol=1e-4)  # summation order only
