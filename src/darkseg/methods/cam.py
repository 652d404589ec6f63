"""CAM baseline: a classification network trained with the multi-label soft-margin loss; CAMs give the masks. With a
``plda`` section, PLDA's losses are added (methods/plda.py): domains assigned on the CAMs (``masks``), CPS on the
network's ``raw_cam``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from darkseg.methods.base import METHODS, DatasetInfo, Method, StepOutput
from darkseg.methods.plda import PLDA, PLDAConfig, attach, classifier_of
from darkseg.methods.wsss_losses import classification_loss
from darkseg.models.factory import build_segmenter
from darkseg.schema import StrictModel


class CAMMethodConfig(StrictModel):
    """The CAM baseline learns only from image labels; ``plda`` adds PLDA on top."""

    name: Literal["cam"] = "cam"
    input: Literal["image", "dark"] = Field("image", description="which image view to learn from")
    plda: PLDAConfig | None = Field(None, description="PLDA plug-in (pixel-level domain adaptation + CPS)")


@METHODS.register("cam")
class CAMMethod(Method):
    """Image-label classification; segmentation comes from class activation maps (SSSS's "CAM baseline")."""

    name = "cam"
    Config = CAMMethodConfig
    deploy_net = "model"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        self.mcfg: CAMMethodConfig = cfg.method
        self.model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=load_external)
        self.nets["model"] = self.model
        self.plda: PLDA | None = attach(self.mcfg.plda, self.model, info, cfg.train.iterations, cfg.seed, self.nets,
                                        logits_key="raw_cam", load_external=load_external)

    def train_views(self) -> tuple[str, ...]:
        return (self.mcfg.input, "labels")

    def input_view(self) -> str:
        return self.mcfg.input

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        image, labels = batch[self.mcfg.input], batch["labels"]
        model = self.nets["model"]
        out = model(image)
        step = StepOutput(losses={"cls": classification_loss(out["cls"], labels)})
        if self.plda is not None:
            extra = self.plda(model, classifier_of(self.nets), image, out, labels, iteration)
            step = StepOutput(losses={**step.losses, **extra.losses}, metrics=extra.metrics)
        return step
