"""Pretrained loading: MXNet .params (written here from the format spec), .pth, .safetensors; key reports."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from darkseg.errors import CheckpointError
from darkseg.models import SSSSConfig, WideResNet38Config, build_segmenter, load_pretrained_backbone, read_mxnet_params
from darkseg.models.backbones import ResNet, WideResNet38

TINY = dict(width=0.125, blocks=(2, 1, 1, 2, 1, 1))
BN_MX = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_var"}


def mxnet_names(model: WideResNet38) -> dict[str, torch.Tensor]:
    """The model's tensors under MXNet model-A1 names (arg:/aux: prefixed), written independently of the loader."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        module, param = key.rsplit(".", 1)
        if module == "conv1a":
            out["arg:conv1a_weight"] = value
        elif module == "bn7":
            out[("aux:" if "running" in param else "arg:") + f"bn7_{BN_MX[param]}"] = value
        else:
            block, layer = module.split(".")
            stage, _, k = block[1:].partition("_")
            pos = "a" if not k else f"b{k}"
            kind, branch = layer.split("_", 1)  # conv/bn, branch2a ...
            if kind == "conv":
                out[f"arg:res{stage}{pos}_{branch}_weight"] = value
            else:
                prefix = "aux:" if "running" in param else "arg:"
                out[f"{prefix}bn{stage}{pos}_{branch}_{BN_MX[param]}"] = value
    out["arg:linear1000_weight"] = torch.randn(1000, 8)
    out["arg:linear1000_bias"] = torch.randn(1000)
    return out


def write_mxnet(path: Path, arrays: dict[str, np.ndarray], legacy: bool = False) -> None:
    """NDArray-list file: 0x112, reserved, arrays (V2 or legacy records), names (MXNet ndarray.cc layout)."""
    flags = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}
    buf = bytearray(struct.pack("<QQ", 0x112, 0))
    buf += struct.pack("<Q", len(arrays))
    for a in arrays.values():
        if legacy:
            buf += struct.pack(f"<I{a.ndim}I", a.ndim, *a.shape)
        else:
            buf += struct.pack(f"<IiI{a.ndim}q", 0xF993FAC9, 0, a.ndim, *a.shape)
        buf += struct.pack("<iii", 1, 0, flags[a.dtype])  # cpu, device 0, dtype flag
        buf += a.astype(a.dtype.newbyteorder("<")).tobytes()
    buf += struct.pack("<Q", len(arrays))
    for name in arrays:
        raw = name.encode()
        buf += struct.pack("<Q", len(raw)) + raw
    path.write_bytes(bytes(buf))


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Fill every float tensor with distinct random values (BN stats included) so a load is observable."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model


@pytest.mark.parametrize("legacy", [False, True])
def test_mxnet_params_roundtrip(tmp_path: Path, legacy: bool) -> None:
    src = randomized(WideResNet38(**TINY))
    named = mxnet_names(src)
    arrays = {k: v.numpy() for k, v in named.items()}
    arrays["arg:res4a_branch1_weight"] = arrays["arg:res4a_branch1_weight"].astype(np.float16)
    path = tmp_path / "ilsvrc-cls_rna-a1_cls1000_ep-0001.params"
    write_mxnet(path, arrays, legacy=legacy)
    raw = read_mxnet_params(path)
    assert list(raw) == list(arrays) and raw["arg:res4a_branch1_weight"].dtype == np.float16
    dst = WideResNet38(**TINY)
    report = load_pretrained_backbone(dst, path)
    assert report.complete and len(report.loaded) == len(named) - 2  # linear1000 dropped
    for key, value in src.state_dict().items():
        if key == "b4.conv_branch1.weight":
            assert torch.allclose(dst.state_dict()[key], value, atol=1e-3)
        elif not key.endswith("num_batches_tracked"):
            assert torch.equal(dst.state_dict()[key], value), key


def test_pth_and_safetensors_with_psa_names(tmp_path: Path) -> None:
    src = randomized(WideResNet38(**TINY))
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "a1.pth")
    save_file(state, str(tmp_path / "a1.safetensors"))
    for name in ("a1.pth", "a1.safetensors"):
        dst = WideResNet38(**TINY)
        assert load_pretrained_backbone(dst, tmp_path / name).complete
        assert torch.equal(dst.b7.conv_branch2b2.weight, src.b7.conv_branch2b2.weight)
        assert torch.equal(dst.bn7.running_var, src.bn7.running_var)


def test_wrong_architecture_errors(tmp_path: Path) -> None:
    resnet = ResNet(18, 32, width=0.25, blocks=(1, 1, 1, 1))
    torch.save(resnet.state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match=r"resnet\.pth: nothing in the file fits WideResNet38 \(0 loaded; "
                       r"\d+ missing .* unexpected \(conv1\.weight, .*another architecture"):
        load_pretrained_backbone(WideResNet38(**TINY), tmp_path / "resnet.pth", partial=True)
    torch.save(WideResNet38(width=0.25, blocks=TINY["blocks"]).state_dict(), tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match=r"wide\.pth: nothing in the file fits WideResNet38 .* shape mismatches "
                       r"\(conv1a\.weight: file \(16, 3, 3, 3\) vs model \(8, 3, 3, 3\)"):
        load_pretrained_backbone(WideResNet38(**TINY), tmp_path / "wide.pth")
    torch.save({"conv1a.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "stub.pth")
    with pytest.raises(CheckpointError, match=r"stub\.pth: does not fit WideResNet38: 1 loaded; \d+ missing .*"
                       r"pretrained_partial: true"):
        load_pretrained_backbone(WideResNet38(**TINY), tmp_path / "stub.pth")


def test_partial_load_reports_every_skipped_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    deeper = randomized(WideResNet38(width=0.125, blocks=(2, 1, 1, 3, 1, 1)))
    state = deeper.state_dict()
    state["extra.weight"] = torch.zeros(3)
    del state["b7.conv_branch1.weight"]
    torch.save(state, tmp_path / "deeper.pth")
    dst = WideResNet38(**TINY)
    with pytest.raises(CheckpointError, match=r"1 missing \(b7\.conv_branch1\.weight\); \d+ unexpected"):
        load_pretrained_backbone(dst, tmp_path / "deeper.pth")
    assert not torch.equal(dst.conv1a.weight, deeper.conv1a.weight)  # strict failure loads nothing
    with caplog.at_level(logging.WARNING, logger="darkseg.models.weights"):
        report = load_pretrained_backbone(dst, tmp_path / "deeper.pth", partial=True)
    assert report.missing == ["b7.conv_branch1.weight"]
    assert "extra.weight" in report.unexpected and "b5_2.conv_branch2a.weight" in report.unexpected
    (record,) = caplog.records  # one warning of one line: counts and the key report's path
    assert "\n" not in record.getMessage()
    key_file = Path(record.getMessage().rsplit("key list in ", 1)[1])
    listed = key_file.read_text()
    for key in report.unexpected + report.missing:
        assert key in listed
    assert torch.equal(dst.conv1a.weight, deeper.conv1a.weight)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained_backbone(WideResNet38(**TINY), tmp_path / "missing.params")
    (tmp_path / "bad.params").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"bad\.params: not an MXNet \.params file"):
        load_pretrained_backbone(WideResNet38(**TINY), tmp_path / "bad.params")
    good = tmp_path / "t.params"
    write_mxnet(good, {"arg:conv1a_weight": np.zeros((8, 3, 3, 3), np.float32)})
    (tmp_path / "trunc.params").write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"trunc\.params: truncated"):
        read_mxnet_params(tmp_path / "trunc.params")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"junk\.pth: cannot read weights"):
        load_pretrained_backbone(WideResNet38(**TINY), tmp_path / "junk.pth")


def test_torchvision_resnet_file(tmp_path: Path) -> None:
    src = randomized(ResNet(18, 32, width=0.25, blocks=(1, 1, 1, 1)))
    state = dict(src.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 128), torch.zeros(1000)
    torch.save(state, tmp_path / "resnet18.pth")
    dst = ResNet(18, 8, width=0.25, blocks=(1, 1, 1, 1))  # dilation does not change parameter shapes
    assert load_pretrained_backbone(dst, tmp_path / "resnet18.pth").complete
    assert torch.equal(dst.layer4[0].downsample[0].weight, src.layer4[0].downsample[0].weight)


def test_factory_loads_backbone_pretrained(tmp_path: Path) -> None:
    src = randomized(WideResNet38(**TINY))
    save_file({k: v for k, v in src.state_dict().items() if "num_batches" not in k}, str(tmp_path / "a1.safetensors"))
    bb = WideResNet38Config(width=0.125, blocks=TINY["blocks"], pretrained=tmp_path / "a1.safetensors")
    cfg = SSSSConfig(backbone=bb, aspp_channels=16, decoder_channels=16, skip_channels=8)
    model = build_segmenter(cfg, 3, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    assert torch.equal(model.backbone.b3.conv_branch2a.weight, src.b3.conv_branch2a.weight)
    missing = cfg.model_copy(update={"backbone": bb.model_copy(update={"pretrained": tmp_path / "nope.pth"})})
    with pytest.raises(CheckpointError, match=r"nope\.pth: pretrained weights file not found"):
        build_segmenter(missing, 3, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
