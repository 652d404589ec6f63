"""Weight initialisation shared by the new (non-pretrained) layers."""

from __future__ import annotations

from torch import nn


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal conv weights, zero biases, BN weight 1 / bias 0 (ssss.md §2, "Decoder")."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """Bias-free conv (same padding) + BN + ReLU, the unit of the SSSS decoder (ssss.md §2)."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )
