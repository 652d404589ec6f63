"""Config sections owned by the engine: training loop and evaluation/inference."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from darkseg.data.config import DataConfig
from darkseg.methods.static_loss import FusionConfig
from darkseg.engine.optim import OptimConfig, ScheduleConfig
from darkseg.models.ops.crf import CRFConfig
from darkseg.schema import AmpMode, StrictModel


class TrainConfig(StrictModel):
    """Iteration-based training loop."""

    iterations: PositiveInt = 1000
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    extra_optim: dict[str, OptimConfig] = Field(
        default_factory=dict, description="optimisers of other phases (e.g. a discriminator), by phase name"
    )
    grad_clip: float | None = Field(None, gt=0, description="max global grad norm per phase; None = off")
    amp: AmpMode = "off"
    compile: bool = False
    channels_last: bool = False
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    threads: PositiveInt | Literal["auto"] = Field(
        "auto", description="torch CPU threads per process; auto = min(4, CPUs available / processes on the node). "
        "More threads than free cores make CPU work many times slower on a busy machine"
    )
    log_every: PositiveInt = 20
    val_every: int = Field(0, ge=0, description="validate every N iterations (0 = only at the end)")
    ckpt_every: int = Field(500, ge=0, description="periodic checkpoint every N iterations (0 = only the final)")
    keep_last: PositiveInt = 2
    sync_bn: bool = False
    find_unused_parameters: bool = False
    deterministic: bool = True
    progress: bool = True


class ReweightConfig(StrictModel):
    """Test-time class re-weighting of DANNet/DANIA: the merged class probabilities × w (Eq. 1-2 of DANIA) before
    the argmax. DANIA picks std on the validation split (0.12 DeepLab-v2, 0.14 PSPNet, 0.10 RefineNet)."""

    frequencies: tuple[float, ...] = Field(..., min_length=2, description="a_k of Eq. (1): labelled pixel share "
                                           "of each class in the source train split (as method.class_frequencies)")
    std: float = Field(0.12, ge=0, description="std of Eq. (2) at test time")
    avg: float = Field(1.0, gt=0, description="avg of Eq. (2)")


class DayPairConfig(StrictModel):
    """Day-night-pair inference (DANIA Table 9): the paired day image's prediction, warped onto the night view by
    the split's `darkseg align` flow, fused with the night prediction (Eq. 10-11); a pixel takes the fused label
    where it is a static class, the night prediction elsewhere (moving objects differ between the two captures) and
    where the warp has no correspondence (holes; pairs whose alignment failed)."""

    enabled: bool = False
    fusion: FusionConfig = FusionConfig()


class InferenceConfig(StrictModel):
    """How the deployed model turns an image into a label map (ssss.md §5)."""

    scales: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    flip: bool = False
    class_filter: Literal["pred", "gt", "none"] = Field(
        "pred", description="zero absent classes by predicted score (pred), by GT image labels (gt), or not at all"
    )
    score_cut: float = Field(0.1, ge=0, le=1, description="a class is present if max sigmoid(score) > score_cut")
    bg_pow: float = Field(1.0, gt=0, description="background probability raised to this power before argmax")
    crf: CRFConfig | None = None
    reweight: ReweightConfig | None = Field(None, description="test-time class re-weighting (DANNet/DANIA)")
    day_pair: DayPairConfig = DayPairConfig()
    batch_size: PositiveInt = 8

    @model_validator(mode="after")
    def _positive_scales(self) -> InferenceConfig:
        if any(s <= 0 for s in self.scales):
            raise ValueError("scales must be positive")
        return self


class InferenceSearchConfig(StrictModel):
    """Inference thresholds chosen on a validation split before every evaluation of another split: each
    combination of class filter (by predicted score at each ``score_cuts`` value, and none when ``no_filter``)
    and background power is scored on ``split`` and the best mIoU (the first on ties) is used."""

    split: str = "val"
    score_cuts: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3, 0.5, 0.7])
    no_filter: bool = True
    bg_pows: list[float] = Field(default_factory=lambda: [0.125, 0.25, 0.35, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0],
                                 min_length=1)

    @model_validator(mode="after")
    def _valid_grid(self) -> InferenceSearchConfig:
        if any(not 0 <= c <= 1 for c in self.score_cuts):
            raise ValueError("score_cuts must lie in [0, 1]")
        if any(p <= 0 for p in self.bg_pows):
            raise ValueError("bg_pows must be positive")
        if not self.score_cuts and not self.no_filter:
            raise ValueError("give score_cuts or set no_filter: true (nothing to search)")
        return self


class EvalConfig(StrictModel):
    """Evaluation settings: split, inference, and optionally another dataset (e.g. train on VOC, test on LIS)."""

    split: str = "val"
    inference: InferenceConfig = InferenceConfig()
    inference_search: InferenceSearchConfig | None = Field(
        None, description="choose class filter and background power on a validation split before evaluating")
    data: DataConfig | None = Field(None, description="dataset of `darkseg eval` if not the training one")
