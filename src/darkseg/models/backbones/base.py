"""Shared backbone mechanics: named taps, per-stage fusion hooks, BN / stage freezing (architecture.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from torch import Tensor, nn

from darkseg.errors import ConfigError


class Backbone(nn.Module):
    """Base of darkseg backbones: ``forward(x, prior=None) -> dict`` of named taps (architecture.md, Model contract).

    Subclasses build their modules, fill ``channels``/``strides`` (tap name -> channels / stride), set
    ``stage_names`` (the keys a fusion may use), ``skip_tap`` (stride-4 features) and ``out_tap`` (deepest
    features), map every stage name (and stem names) to its top-level child names in ``_stage_modules`` and
    finish ``__init__`` with ``self._setup(freeze_bn, frozen_stages, fusions)``.
    """

    channels: dict[str, int]
    strides: dict[str, int]
    stage_names: tuple[str, ...]
    skip_tap: str
    out_tap: str
    _stage_modules: dict[str, tuple[str, ...]]

    def _setup(
        self,
        freeze_bn: bool,
        frozen_stages: tuple[str, ...],
        fusions: Mapping[str, nn.Module] | None,
    ) -> None:
        unknown = [s for s in frozen_stages if s not in self._stage_modules]
        if unknown:
            raise ConfigError(
                f"frozen_stages: unknown stage(s) {unknown} for {type(self).__name__}; "
                f"allowed: {', '.join(self._stage_modules)}"
            )
        self.freeze_bn = freeze_bn
        self.frozen_stages = tuple(frozen_stages)
        self.set_fusions(fusions)
        for name in self._frozen_children():
            getattr(self, name).requires_grad_(False)
        for bn in self._frozen_bns():
            bn.requires_grad_(False)
        self.train()

    def set_fusions(self, fusions: Mapping[str, nn.Module] | None) -> None:
        """Attach per-stage fusion modules ``fusion(x, prior) -> x`` (e.g. DGF2) keyed by stage name."""
        fusions = dict(fusions or {})
        unknown = [k for k in fusions if k not in self.stage_names]
        if unknown:
            raise ConfigError(
                f"fusions: unknown stage(s) {unknown} for {type(self).__name__}; allowed: {', '.join(self.stage_names)}"
            )
        self.fusions = nn.ModuleDict(fusions)

    def pretrained_children(self) -> tuple[str, ...]:
        """Top-level child names that pretrained weights cover (everything but the fusion modules)."""
        return tuple(name for name, _ in self.named_children() if name != "fusions")

    def _frozen_children(self) -> Iterator[str]:
        for stage in self.frozen_stages:
            yield from self._stage_modules[stage]

    def _frozen_bns(self) -> Iterator[nn.Module]:
        names = self.pretrained_children() if self.freeze_bn else tuple(self._frozen_children())
        for name in names:
            for m in getattr(self, name).modules():
                if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm)):
                    yield m

    def train(self, mode: bool = True) -> Backbone:
        """Set the mode; frozen BNs (``freeze_bn`` or in ``frozen_stages``) always stay in eval mode."""
        super().train(mode)
        for bn in self._frozen_bns():
            bn.eval()
        return self

    def _fuse(self, name: str, x: Tensor, prior: Tensor | None, taps: dict[str, Tensor]) -> Tensor:
        """Record stage ``name``'s output, then apply its fusion if any (post-fusion tap ``{name}_fused``)."""
        taps[name] = x
        if name in self.fusions:
            x = self.fusions[name](x, prior)
            taps[f"{name}_fused"] = x
        return x

    def forward(self, x: Tensor, prior: Tensor | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def convert_pretrained(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Map an external checkpoint's names to this backbone's names (identity by default)."""
        return dict(state)


def scale_channels(channels: int, width: float) -> int:
    """Channels × width, rounded to a multiple of 8 (at least 8)."""
    return max(8, int(round(channels * width / 8)) * 8)
