"""Every convention against an independent counter run in the same test: fvcore's
FlopCountAnalysis (TorchScript tracing on real CPU tensors), torch's FlopCounterMode,
and hand computation from the layer shapes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import archstat
from archstat.render import render
from archstat.zoo import get_model, get_model_info, list_models

# Every zoo model on real CPU tensors is `slow` (pytest -m "not slow" skips it); resnet18
# stays in the development loop.
ZOO = [n if n == "resnet18" else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]


def _real_model_and_input(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = get_model(name).eval()
    x = torch.randn(1, *get_model_info(name).input_shape)
    return model, x


def _by_top_module(layers) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, flops in zip(layers["name"], layers["flops"], strict=True):
        top = name.split(".")[0]
        out[top] = out.get(top, 0) + int(flops)
    return out


@pytest.mark.parametrize("name", ZOO)
def test_fvcore_convention_equals_fvcore(name: str) -> None:
    from fvcore.nn import FlopCountAnalysis

    model, x = _real_model_and_input(name)
    counter = FlopCountAnalysis(model, x)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_total = counter.total()
        by_module = counter.by_module()
    result = archstat.analyze(name, convention="fvcore")
    assert result.totals["flops"] == expected_total
    ours = _by_top_module(result.layers)
    for child, _ in model.named_children():
        assert ours.get(child, 0) == by_module[child], child


def _bilinear_sampling_flops(*args, out_shape, **kwargs) -> int:
    """A bilinear sample is a weighted sum of 4 pixels: 4 multiply-adds, 8 FLOPs, per
    output element of grid_sample (FlopCounterMode has no formula for it)."""
    assert args[2] == 0  # bilinear
    return 8 * math.prod(out_shape)


#: torch's FlopCounterMode plus the one formula archstat adds that a zoo model reaches:
#: deformable_resnet50's offset sampling (docs: conventions).
_SAMPLING = {torch.ops.aten.grid_sampler_2d: _bilinear_sampling_flops}


@pytest.mark.parametrize("name", ZOO)
def test_flops_convention_equals_flop_counter_mode(name: str) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model, x = _real_model_and_input(name)
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_SAMPLING) as counter:
        model(x)
    counts = counter.get_flop_counts()
    result = archstat.analyze(name, convention="flops")
    assert result.totals["flops"] == counter.get_total_flops()
    ours = _by_top_module(result.layers)
    prefix = type(model).__name__
    for child, _ in model.named_children():
        expected = sum(counts.get(f"{prefix}.{child}", {}).values())
        assert ours.get(child, 0) == expected, child
    # and macs is exactly half of it
    assert archstat.analyze(name).totals["flops"] * 2 == result.totals["flops"]


def test_alexnet_lecture_rows_by_hand() -> None:
    """EECS 498 Lecture 8's AlexNet table (227x227 input), computed from the shapes."""
    layers = archstat.analyze("alexnet", convention="lecture").layers.set_index("name")
    conv1_out = (227 - 11 + 2 * 2) // 4 + 1
    assert conv1_out == 56
    assert layers.loc["features.0", "flops"] == 64 * conv1_out**2 * 11 * 11 * 3  # 72.9M ("73")
    assert layers.loc["features.0", "params"] == 11 * 11 * 3 * 64 + 64  # 23,296 ("23k")
    assert layers.loc["features.0", "activation_bytes"] == 64 * 56 * 56 * 4  # 784 KB
    assert layers.loc["features.2", "flops"] == 64 * 27 * 27 * 3 * 3  # pool1: 0.4M
    assert layers.loc["features.3", "flops"] == 192 * 27 * 27 * 5 * 5 * 64  # conv2: 224M
    assert layers.loc["classifier.1", "flops"] == 9216 * 4096  # fc6: 38M
    assert layers.loc["classifier.1", "params"] == 9216 * 4096 + 4096  # 37,753k


def test_lecture_counts_adaptive_and_global_pools_by_window() -> None:
    model = nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.AdaptiveMaxPool2d(1))
    layers = archstat.analyze(model, input_shape=(2, 7, 7), convention="lecture").layers
    # 7 -> 3 adaptive windows: [0,3), [2,5), [4,7): 3 + 3 + 3 = 9 per row/col
    assert layers["flops"].tolist() == [2 * 9 * 9, 2 * 3 * 3]
    assert archstat.analyze(model, input_shape=(2, 7, 7)).totals["flops"] == 0


def test_fvcore_rules_for_norms_by_hand() -> None:
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1, bias=False),  # 8*8*8 * 4*9 MACs
        nn.BatchNorm2d(8),  # eval, affine: 2 per element
        nn.GroupNorm(2, 8),  # affine: 5 per element
        nn.BatchNorm2d(8, affine=False),  # eval: 1 per element
    )
    n = 8 * 8 * 8
    result = archstat.analyze(model, input_shape=(4, 8, 8), convention="fvcore")
    assert result.layers["flops"].tolist() == [n * 36, 2 * n, 5 * n, n]
    assert result.layers["flops_norm"].sum() == 8 * n


def test_unknown_convention_is_a_user_error() -> None:
    with pytest.raises(archstat.ArchstatError, match="did you mean: macs"):
        archstat.analyze("alexnet", convention="mac")


def test_unhandled_op_is_reported_not_silently_zero() -> None:
    class Scan(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.svdvals(self.fc(x))

    result = archstat.analyze(Scan(), input_shape=(4, 16))
    assert result.totals["flops"] == 4 * 16 * 16
    row = result.unhandled.iloc[0]
    assert "svd" in row["op"] and row["calls"] == 1 and row["modules"] == "(root)"
    assert result.layers["unhandled_ops"].sum() == 1
    assert "unhandled" in render(result, "json")


def test_conventions_are_data_and_extendable_without_mutation() -> None:
    from archstat.conventions import CONVENTIONS

    aten = torch.ops.aten
    custom = CONVENTIONS["macs"].with_rules({aten.relu: lambda e: 1}, name="macs+relu")
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
    assert archstat.analyze(model, (3,), convention=custom).totals["flops"] == 15 + 1
    assert aten.relu not in CONVENTIONS["macs"].rules
    assert archstat.analyze(model, (3,)).totals["flops"] == 15


def test_attention_matmuls_are_counted() -> None:
    class Attention(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return nn.functional.scaled_dot_product_attention(q, q, q)

    b, h, s, d = 2, 4, 10, 8
    result = archstat.analyze(Attention(), input_shape=(h, s, d), batch=b)
    assert result.totals["flops"] == 2 * b * h * s * s * d  # QK^T and AV
    assert result.unhandled.empty


def test_macs_are_half_of_torch_flops_for_every_registry_formula() -> None:
    from archstat.conventions import CONVENTIONS

    macs, flops = CONVENTIONS["macs"], CONVENTIONS["flops"]
    assert set(macs.rules) == set(flops.rules)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 5, stride=2, groups=3), nn.Flatten(), nn.Linear(6 * 15 * 15, 7)
    )
    shape = (3, 33, 33)
    out = (33 - 5) // 2 + 1
    expected = 6 * out * out * 5 * 5 * 1 + 6 * out * out * 7
    assert archstat.analyze(model, shape, convention="macs").totals["flops"] == expected
    assert archstat.analyze(model, shape, convention="flops").totals["flops"] == 2 * expected
    assert math.prod((1, 6, out, out)) * 4 in archstat.analyze(model, shape).layers[
        "activation_bytes"
    ].tolist()
