"""WideResNet-38 ("ResNet38", model A1 of Wu et al.), output stride 8, as used by SSSS (ssss.md §1).

Module names follow the PSA / 1-stage-wseg conversion (``conv1a``, ``b2``, ``b2_1``, ..., ``b7``, ``bn7``; inside a
block ``bn_branch2a``, ``conv_branch2a``, ``bn_branch2b1``, ``conv_branch2b1``, ``bn_branch2b2``, ``conv_branch2b2``,
``conv_branch1``), so converted ``.pth`` files load by name; MXNet ``.params`` names are converted by
:func:`convert_mxnet_a1`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone, scale_channels
from darkseg.models.ops.init import kaiming_init

#: (stage, out channels, mid channels or None, stride, first-conv dilation, dilation, dropout, bottleneck)
_STAGES = (
    ("b2", 128, None, 2, 1, 1, 0.0, False),
    ("b3", 256, None, 2, 1, 1, 0.0, False),
    ("b4", 512, None, 2, 1, 1, 0.0, False),
    ("b5", 1024, 512, 1, 1, 2, 0.0, False),
    ("b6", 2048, None, 1, 1, 4, 0.3, True),
    ("b7", 4096, None, 1, 1, 4, 0.5, True),
)


class BasicBlock(nn.Module):
    """Pre-activation block BN→ReLU→conv3×3→BN→ReLU→conv3×3, projection on the activated input (ssss.md §1)."""

    def __init__(
        self, cin: int, mid: int, cout: int, stride: int = 1, first_dilation: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, mid, 3, stride, first_dilation, first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid)
        self.conv_branch2b1 = nn.Conv2d(mid, cout, 3, 1, dilation, dilation, bias=False)
        self.conv_branch1 = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn_branch2a(x))
        shortcut = x if self.conv_branch1 is None else self.conv_branch1(a)
        y = self.conv_branch2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(a))))
        return shortcut + y


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck 1×1 (out/4) → 3×3 (out/2) → 1×1 (out), Dropout2d before the last two convs,
    projection shortcut always (ssss.md §1, b6/b7)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        w1, w2 = cout // 4, cout // 2
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, w1, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(w1)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(w1, w2, 3, 1, dilation, dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(w2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(w2, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn_branch2a(x))
        y = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(a)))))
        y = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(y))))
        return self.conv_branch1(a) + y


class WideResNet38(Backbone):
    """WideResNet-38 trunk, stride 8, taps ``b2``..``b7`` (``b3`` = "conv3"/"Layer 3") and ``conv6`` (ssss.md §1).

    ``width`` scales every channel count (rounded to a multiple of 8); ``blocks`` gives the number of blocks of
    stages b2..b7 (default (3, 3, 6, 3, 1, 1) = WRN-38). ``freeze_bn`` keeps every BN in eval mode with frozen
    affine parameters; ``frozen_stages`` (names among ``conv1a``, ``b2``..``b7``, ``bn7``) freezes those weights.
    """

    def __init__(
        self,
        width: float = 1.0,
        blocks: tuple[int, ...] = (3, 3, 6, 3, 1, 1),
        freeze_bn: bool = True,
        frozen_stages: tuple[str, ...] = ("conv1a", "b2"),
        fusions: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if len(blocks) != len(_STAGES) or min(blocks) < 1:
            raise ValueError(f"blocks must be 6 positive counts for b2..b7, got {blocks}")
        self.stage_names = tuple(s[0] for s in _STAGES)
        self.skip_tap, self.out_tap = "b3", "conv6"
        cin = scale_channels(64, width)
        self.conv1a = nn.Conv2d(3, cin, 3, padding=1, bias=False)
        self.channels, self.strides = {"conv1a": cin}, {"conv1a": 1}
        self._stage_modules: dict[str, tuple[str, ...]] = {"conv1a": ("conv1a",)}
        stride = 1
        for (name, cout, mid, s, d0, d, p, bottleneck), n in zip(_STAGES, blocks):
            cout = scale_channels(cout, width)
            mid = cout if mid is None else scale_channels(mid, width)
            names = tuple([name] + [f"{name}_{k}" for k in range(1, n)])
            for k, block_name in enumerate(names):
                first = k == 0
                if bottleneck:
                    block: nn.Module = BottleneckBlock(cin, cout, s if first else 1, d, p)
                else:
                    block = BasicBlock(cin, mid, cout, s if first else 1, d0 if first else d, d)
                self.add_module(block_name, block)
                cin = cout
            stride *= s
            self.channels[name], self.strides[name] = cout, stride
            self._stage_modules[name] = names
        self.bn7 = nn.BatchNorm2d(cin)
        self.channels["conv6"], self.strides["conv6"] = cin, stride
        self._stage_modules["bn7"] = ("bn7",)
        kaiming_init(self)
        self._setup(freeze_bn, frozen_stages, fusions)

    def forward(self, x: Tensor, prior: Tensor | None = None) -> dict[str, Tensor]:
        taps: dict[str, Tensor] = {}
        x = self.conv1a(x)
        for name in self.stage_names:
            for block_name in self._stage_modules[name]:
                x = getattr(self, block_name)(x)
            x = self._fuse(name, x, prior, taps)
        taps["conv6"] = F.relu(self.bn7(x))
        return taps

    def convert_pretrained(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Accept PSA/1-stage-wseg ``.pth`` names as they are and convert MXNet model-A1 names."""
        return convert_mxnet_a1(state)


_MX_PREFIX = re.compile(r"^(arg|aux):")
_MX_BRANCH = re.compile(r"^(res|bn)(\d)(a|b\d+)_branch(1|2a|2b1|2b2)_(weight|gamma|beta|moving_mean|moving_var)$")
_MX_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_var": "running_var"}


def convert_mxnet_a1(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename MXNet model-A1 keys to darkseg/PSA names, drop ``linear1000`` (ssss.md §1, "Weights").

    ``res{N}{a|bK}_branch{X}_weight`` → ``b{N}[_K].conv_branch{X}.weight``; ``bn{N}{a|bK}_branch{X}_{gamma|beta|
    moving_mean|moving_var}`` → ``b{N}[_K].bn_branch{X}.{weight|bias|running_mean|running_var}``; ``conv1a_weight``
    → ``conv1a.weight``; ``bn7_*`` → ``bn7.*``; optional ``arg:``/``aux:`` prefixes are removed. Other keys
    (e.g. already converted ``.pth`` names) pass through unchanged.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = _MX_PREFIX.sub("", key)
        if name.startswith("linear1000_"):
            continue
        m = _MX_BRANCH.match(name)
        if m and (m.group(1) == "res") == (m.group(5) == "weight"):
            kind, stage, pos, branch, param = m.groups()
            block = f"b{stage}" if pos == "a" else f"b{stage}_{pos[1:]}"
            param = "weight" if kind == "res" else _MX_BN.get(param, param)
            out[f"{block}.{'conv' if kind == 'res' else 'bn'}_branch{branch}.{param}"] = value
        elif name == "conv1a_weight":
            out["conv1a.weight"] = value
        elif name.startswith("bn7_") and name[4:] in _MX_BN:
            out[f"bn7.{_MX_BN[name[4:]]}"] = value
        else:
            out[key] = value
    return out
