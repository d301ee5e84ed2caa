"""`archstat bottleneck` on DenseNet-BC's dense blocks, MBConv blocks (EfficientNet,
MobileNet) and squeeze-and-excitation blocks.

Every figure is checked against a hand computation written here from the papers'
tables (DenseNet Table 1, EfficientNet-B0 Table 1, SE-ResNet Table 1), copied, not read
from the zoo, or against a user model's own layer sizes.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from archstat.bottlenecks import MODULE_COLUMNS, SE_COLUMNS, SE_TOTAL_COLUMNS
from archstat.cli import main
from archstat.render import render
from archstat.render.bottleneck import note_text


def conv_macs(positions: int, cin: int, cout: int, k: int) -> int:
    """Multiply-adds of a kxk (ungrouped) convolution."""
    return positions * cin * cout * k * k


def bn(channels: int) -> int:
    """BatchNorm parameters: a weight and a bias per channel (running stats are buffers)."""
    return 2 * channels


# -- DenseNet-BC ------------------------------------------------------------------------

# DenseNet Table 1 (DenseNet-121), copied: layers per dense block, growth rate k; the
# stem outputs 2k channels at 56x56 and every transition halves channels and size.
DENSENET121 = (6, 12, 24, 16)
K = 32


def densenet_blocks(blocks=DENSENET121, k=K):
    """(input channels, size, layers) of every dense block."""
    c, size, out = 2 * k, 56, []
    for i, n in enumerate(blocks):
        out.append((c, size, n))
        c += n * k
        if i < len(blocks) - 1:
            c, size = c // 2, size // 2
    return out


def dense_layer(c: int, hw: int, k: int = K, bottleneck: bool = True) -> tuple[int, int]:
    """(MACs, params) of a dense layer's convolutions reading C channels: the 1x1 to 4k
    then the 3x3 to k, or (without the bottleneck) the 3x3 straight from C to k."""
    if bottleneck:
        return hw * c * 4 * k + hw * 4 * k * k * 9, c * 4 * k + 4 * k * k * 9
    return hw * c * k * 9, c * k * 9


def densenet_totals(blocks=DENSENET121, k=K, bottleneck: bool = True) -> tuple[int, int]:
    """(MACs, params) of the whole DenseNet-BC (or, without the bottleneck, its plain
    counterpart at the same growth rate and compression), BatchNorm and fc included."""
    macs = conv_macs(112 * 112, 3, 2 * k, 7)
    params = 3 * 2 * k * 49 + bn(2 * k)
    for i, (c, size, n) in enumerate(densenet_blocks(blocks, k)):
        for j in range(n):
            cin = c + j * k
            m, p = dense_layer(cin, size * size, k, bottleneck)
            macs += m
            params += p + bn(cin) + (bn(4 * k) if bottleneck else 0)
        c += n * k
        if i < len(blocks) - 1:  # transition: BN, 1x1 to C/2 at the block's size, pool
            macs += conv_macs(size * size, c, c // 2, 1)
            params += bn(c) + c * (c // 2)
    macs += c * 1000
    params += bn(c) + c * 1000 + 1000
    return macs, params


@pytest.fixture(scope="module")
def densenet121():
    return archstat.bottleneck("densenet121")


def test_densenet121_dense_layers_are_pairs(densenet121) -> None:
    pairs = densenet121.pairs
    assert len(pairs) == sum(DENSENET121) == 58
    rows = pairs.set_index("spatial")
    first = rows.loc["features.denseblock1.denselayer1.conv2"]
    hw, c = 56 * 56, 64
    assert (first["in_channels"], first["reduced_channels"], first["out_channels"]) == (64, 128, 32)
    assert first["macs"] == hw * c * 128 + hw * 128 * 32 * 9 == 141_295_616
    assert first["direct_macs"] == hw * c * 32 * 9 == 57_802_752
    # the 1x1 pays off once the concatenation is wider than 4k * 9 / (9 - 4) ... here
    # when C > 4k: C * 4k + 4k * k * 9 < C * k * 9  <=>  C > 4k * 9 / 5 = 230.4
    for spatial, row in rows.iterrows():
        assert (row["macs_saving_ratio"] > 1) == (row["in_channels"] > 230.4), spatial
    last = rows.loc["features.denseblock4.denselayer16.conv2"]
    assert last["in_channels"] == 512 + 15 * 32
    assert last["direct_macs"] == 49 * (512 + 15 * 32) * 32 * 9


def test_densenet121_dense_blocks(densenet121) -> None:
    modules = densenet121.modules
    assert list(modules.columns) == MODULE_COLUMNS
    assert modules["module"].tolist() == [f"features.denseblock{i}" for i in (1, 2, 3, 4)]
    assert set(modules["kind"]) == {"dense"}  # the block's concatenation is no inception
    for row, (c, size, n) in zip(modules.to_dict("records"), densenet_blocks(), strict=True):
        hw = size * size
        layers = [dense_layer(c + j * K, hw) for j in range(n)]
        direct = [dense_layer(c + j * K, hw, bottleneck=False) for j in range(n)]
        assert row["input_shape"] == (1, c, size, size)
        assert row["out_channels"] == row["naive_out_channels"] == c + n * K
        assert (row["macs"], row["params"]) == (sum(m for m, _ in layers),
                                               sum(p for _, p in layers))
        assert (row["naive_macs"], row["naive_params"]) == (sum(m for m, _ in direct),
                                                           sum(p for _, p in direct))
    first = modules.iloc[0]
    assert (first["macs"], first["naive_macs"]) == (1_040_449_536, 780_337_152)
    assert first["macs_saving_ratio"] == pytest.approx(0.75)  # the 1x1s cost more here
    assert modules.iloc[3]["macs_saving_ratio"] > 1.6


def test_densenet121_network_counterfactual(densenet121) -> None:
    got = {r["variant"]: (r["macs"], r["params"]) for r in densenet121.network.to_dict("records")}
    assert got["actual"] == densenet_totals() == (2_834_161_664, 7_978_856)
    assert got["naive"] == densenet_totals(bottleneck=False)
    assert got["naive"] == (3_046_506_496, 10_869_096)


def test_densenet161_growth_48() -> None:
    """torchvision's densenet161: k = 48, a 96-channel stem, blocks (6, 12, 36, 24)."""
    report = archstat.bottleneck("densenet161", level="network")
    got = {r["variant"]: (r["macs"], r["params"]) for r in report.network.to_dict("records")}
    blocks = (6, 12, 36, 24)
    assert got == {"actual": densenet_totals(blocks, 48),
                   "naive": densenet_totals(blocks, 48, bottleneck=False)}
    assert got["actual"][1] == 28_681_000


class AppendLayer(nn.Module):
    """A user's dense layer (as many reimplementations write it): it concatenates its
    new maps *before* its input, so each layer reads a nested concatenation."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(4 * growth)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return torch.cat([out, x], 1)


class TinyDenseNet(nn.Module):
    def __init__(self, c: int = 16, growth: int = 8, layers: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.dense = nn.Sequential(*(AppendLayer(c + i * growth, growth) for i in range(layers)))
        self.head = nn.Conv2d(c + layers * growth, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dense(self.stem(x)))


def test_a_users_dense_block_with_nested_concatenations() -> None:
    report = archstat.bottleneck(TinyDenseNet(), input_shape=(3, 8, 8), level="module")
    [row] = report.modules.to_dict("records")  # one block, not three inception modules
    hw, c, k = 64, 16, 8
    assert (row["module"], row["kind"], row["in_channels"], row["out_channels"]) == (
        "dense", "dense", 16, 16 + 3 * 8)
    assert row["macs"] == sum(conv_macs(hw, c + j * k, 4 * k, 1) + conv_macs(hw, 4 * k, k, 3)
                              for j in range(3))
    assert row["naive_macs"] == sum(conv_macs(hw, c + j * k, k, 3) for j in range(3))
    assert row["params"] == sum((c + j * k) * 4 * k + 4 * k * k * 9 for j in range(3))
    assert row["naive_params"] == sum((c + j * k) * k * 9 for j in range(3))
    # one layer concatenated onto its input is no dense block (no layer reads a
    # concatenation): an identity branch beside a reduced branch, an inception-like module
    one = archstat.bottleneck(TinyDenseNet(layers=1), input_shape=(3, 8, 8), level="module")
    assert one.modules["kind"].tolist() == ["inception"]


def test_the_zoo_dense_block_alone_and_its_concatenations() -> None:
    """The paper's form (each layer concatenates the list of all earlier maps anew): its
    concatenations share ops between their inputs, so none is an inception module, even
    where the dense block is not looked for."""
    from archstat.bottlenecks.detect import convolutions, links, module_rows
    from archstat.trace.dataflow import DataFlow
    from archstat.zoo.densenet import DenseBlock

    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), DenseBlock(3, 16, 8))
    report = archstat.bottleneck(model, input_shape=(3, 8, 8), level="module")
    [row] = report.modules.to_dict("records")
    assert (row["module"], row["kind"], row["out_channels"]) == ("1", "dense", 16 + 3 * 8)
    assert row["naive_macs"] == sum(conv_macs(64, 16 + j * 8, 8, 3) for j in range(3))
    flow = DataFlow(archstat.analyze(model, input_shape=(3, 8, 8)).trace)
    convs = convolutions(flow)
    assert module_rows(flow, convs, links(flow, convs)) == ([], [])


class DownUp(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(c, 4, 1), nn.ReLU(),
                                  nn.Conv2d(4, 4, 3, padding=1), nn.Upsample(scale_factor=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Skips(nn.Module):
    """Concatenations shaped like a dense block, but each "layer" goes down and up."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.d1, self.d2 = DownUp(8), DownUp(12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        a = torch.cat([e, self.d1(e)], 1)
        return torch.cat([a, self.d2(a)], 1)


def test_layers_that_change_size_are_no_dense_block() -> None:
    report = archstat.bottleneck(Skips(), input_shape=(3, 8, 8), level="module")
    assert "dense" not in report.modules["kind"].tolist()


# -- EfficientNet-B0 and MBConv ---------------------------------------------------------

# EfficientNet Table 1 (B0), copied: (expand ratio, kernel, stride, in, out, layers) per
# MBConv stage; SE squeezes to a quarter of the block's input channels.
B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
      (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


def b0_blocks():
    """Per MBConv block of B0: (module, cin, cout, expand, kernel, input size, output size)."""
    size, out = 112, []
    for stage, (e, k, s, cin, cout, n) in enumerate(B0, start=1):
        for i in range(n):
            stride = s if i == 0 else 1
            out.append((f"features.{stage}.{i}", cin, cout, e, k, size, size // stride))
            cin, size = cout, size // stride
    return out


def mbconv(cin: int, cout: int, e: int, k: int, size_in: int, size_out: int):
    """(conv MACs, conv params, SE MACs, SE params, hidden, squeezed) of one block."""
    hidden, squeezed = cin * e, max(1, cin // 4)
    macs = conv_macs(size_out ** 2, hidden, 1, k) + conv_macs(size_out ** 2, hidden, cout, 1)
    params = hidden * k * k + hidden * cout
    if e != 1:
        macs += conv_macs(size_in ** 2, cin, hidden, 1)
        params += cin * hidden
    se_params = 2 * hidden * squeezed + squeezed + hidden
    return macs, params, 2 * hidden * squeezed, se_params, hidden, squeezed


def efficientnet_b0_totals(standard: bool = False) -> tuple[int, int]:
    """(MACs, params) of B0 (BatchNorm and fc included), or with a standard kxk conv +
    BN in place of every MBConv block."""
    macs, params = conv_macs(112 * 112, 3, 32, 3), 3 * 32 * 9 + bn(32)
    for _, cin, cout, e, k, size_in, size_out in b0_blocks():
        if standard:
            macs += conv_macs(size_out ** 2, cin, cout, k)
            params += cin * cout * k * k + bn(cout)
            continue
        m, p, se_m, se_p, hidden, _ = mbconv(cin, cout, e, k, size_in, size_out)
        macs += m + se_m
        params += p + se_p + bn(hidden) * (2 if e != 1 else 1) + bn(cout)
    macs += conv_macs(49, 320, 1280, 1) + 1280 * 1000
    params += 320 * 1280 + bn(1280) + 1280 * 1000 + 1000
    return macs, params


@pytest.fixture(scope="module")
def b0():
    return archstat.bottleneck("efficientnet_b0")


def test_efficientnet_b0_mbconv_blocks(b0) -> None:
    modules = b0.modules
    blocks = b0_blocks()
    assert modules["module"].tolist() == [b[0] for b in blocks]
    assert set(modules["kind"]) == {"mbconv"}
    for row, (name, cin, cout, e, k, size_in, size_out) in zip(
            modules.to_dict("records"), blocks, strict=True):
        m, p, se_m, se_p, _, _ = mbconv(cin, cout, e, k, size_in, size_out)
        assert row["input_shape"] == (1, cin, size_in, size_in), name
        assert (row["in_channels"], row["out_channels"]) == (cin, cout)
        assert (row["macs"], row["params"]) == (m + se_m, p + se_p), name
        # the counterpart: one standard kxk conv, cin -> cout, at the block's stride
        assert row["naive_macs"] == conv_macs(size_out ** 2, cin, cout, k), name
        assert row["naive_params"] == cin * cout * k * k, name
    stage2 = modules.iloc[1]  # 16 -> 24 at stride 2: the 6x expansion costs more
    assert stage2["macs"] == (112 * 112 * 16 * 96 + 56 * 56 * 96 * 9 + 2 * 96 * 4
                              + 56 * 56 * 96 * 24) == 29_203_200
    assert stage2["naive_macs"] == 56 * 56 * 16 * 24 * 9 == 10_838_016
    assert stage2["macs_saving_ratio"] < 1 < modules.iloc[9]["macs_saving_ratio"]


def test_efficientnet_b0_pairs_note(b0) -> None:
    assert b0.pairs.empty and "no_pairs" not in b0.notes
    assert b0.notes == ["no_pairs_depthwise"]
    assert "depthwise" in note_text(b0, "no_pairs_depthwise")


def test_efficientnet_b0_network_counterfactual(b0) -> None:
    got = {r["variant"]: (r["macs"], r["params"]) for r in b0.network.to_dict("records")}
    assert got["actual"] == efficientnet_b0_totals() == (385_814_752, 5_288_548)
    assert got["naive"] == efficientnet_b0_totals(standard=True) == (551_234_048, 6_625_512)


def test_efficientnet_b0_se_blocks(b0) -> None:
    se = b0.se
    assert list(se.columns) == SE_COLUMNS
    blocks = b0_blocks()
    assert len(se) == len(blocks) == 16
    total_macs = total_params = 0
    for row, (name, cin, cout, e, k, size_in, size_out) in zip(
            se.to_dict("records"), blocks, strict=True):
        _, _, se_m, se_p, hidden, squeezed = mbconv(cin, cout, e, k, size_in, size_out)
        assert row["module"] == f"{name}.block.{1 if e == 1 else 2}"
        assert row["input_shape"] == (1, hidden, size_out, size_out)
        assert (row["channels"], row["squeezed"]) == (hidden, squeezed)
        assert (row["macs"], row["params"]) == (se_m, se_p)
        total_macs, total_params = total_macs + se_m, total_params + se_p
    [total] = b0.se_total.to_dict("records")
    assert list(b0.se_total.columns) == SE_TOTAL_COLUMNS
    assert (total["se_blocks"], total["se_macs"], total["se_params"]) == (
        16, total_macs, total_params)
    assert (total["model_macs"], total["model_params"]) == (385_814_752, 5_288_548)
    assert total["params_share"] == pytest.approx(total_params / 5_288_548)
    assert 0.12 < total["params_share"] < 0.121 and total["macs_share"] < 0.002


class MobileNetV1(nn.Module):
    """Depthwise separable convolutions in a chain: dw, pw, dw, pw. A pointwise conv is
    the projection of one block, not the expansion of the next."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.dw1 = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.pw1 = nn.Conv2d(8, 16, 1, bias=False)
        self.dw2 = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False)
        self.pw2 = nn.Conv2d(16, 32, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.pw1(F.relu(self.dw1(x))))
        return F.relu(self.pw2(F.relu(self.dw2(x))))


class InvertedResidual(nn.Module):
    """MobileNetV2's block without SE: 1x1 expand x6, depthwise 3x3, linear 1x1 projection,
    identity shortcut."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(c, 6 * c, 1, bias=False)
        self.dw = nn.Conv2d(6 * c, 6 * c, 3, padding=1, groups=6 * c, bias=False)
        self.project = nn.Conv2d(6 * c, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(F.relu6(self.dw(F.relu6(self.expand(x)))))


def test_depthwise_separable_chain_and_inverted_residual() -> None:
    report = archstat.bottleneck(MobileNetV1(), input_shape=(3, 16, 16), level="module")
    first, second = report.modules.to_dict("records")
    assert (first["module"], first["in_channels"], first["out_channels"]) == ("", 8, 16)
    assert first["macs"] == conv_macs(256, 8, 1, 3) + conv_macs(256, 8, 16, 1)
    assert first["naive_macs"] == conv_macs(256, 8, 16, 3)
    assert (second["in_channels"], second["out_channels"]) == (16, 32)
    assert second["macs"] == conv_macs(64, 16, 1, 3) + conv_macs(64, 16, 32, 1)
    assert second["naive_macs"] == conv_macs(64, 16, 32, 3)
    assert second["params"] == 16 * 9 + 16 * 32 and second["naive_params"] == 16 * 32 * 9

    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), InvertedResidual(8))
    [row] = archstat.bottleneck(block, input_shape=(3, 8, 8), level="module").modules.to_dict(
        "records")
    assert (row["module"], row["kind"]) == ("1", "mbconv")
    assert row["macs"] == 64 * (8 * 48 + 48 * 9 + 48 * 8)
    assert row["naive_macs"] == conv_macs(64, 8, 8, 3)


# -- squeeze-and-excitation -------------------------------------------------------------

# SE-ResNet-50 (Hu et al. Table 1): the bottleneck widths 256 ... 2048, blocks per
# stage, reduction r = 16; each SE block: fc C -> C/r and C/r -> C, with biases.
SE_RESNET50 = ((256, 56, 3), (512, 28, 4), (1024, 14, 6), (2048, 7, 3))


def se_params(c: int, r: int) -> int:
    return 2 * c * c // r + c // r + c


@pytest.fixture(scope="module")
def se_resnet50():
    return archstat.bottleneck("se_resnet50")


def test_se_resnet50_se_blocks(se_resnet50) -> None:
    rows = se_resnet50.se.to_dict("records")
    expected = [(f"layer{s}.{b}.se", c, size) for s, (c, size, n) in
                enumerate(SE_RESNET50, start=1) for b in range(n)]
    assert [r["module"] for r in rows] == [e[0] for e in expected]
    for row, (_, c, size) in zip(rows, expected, strict=True):
        assert row["input_shape"] == (1, c, size, size)
        assert (row["channels"], row["squeezed"]) == (c, c // 16)
        assert row["params"] == se_params(c, 16)
        assert row["macs"] == 2 * c * c // 16  # two fc layers on a 1x1 map
    [total] = se_resnet50.se_total.to_dict("records")
    params = sum(n * se_params(c, 16) for c, _, n in SE_RESNET50)
    macs = sum(n * 2 * c * c // 16 for c, _, n in SE_RESNET50)
    assert (total["se_params"], total["se_macs"]) == (params, macs) == (2_530_992, 2_514_944)
    # the rest of the model is ResNet-50 (v1 layout: stride on the first 1x1)
    assert total["model_params"] == 25_557_032 + params == 28_088_024
    assert total["model_macs"] == 3_857_973_248 + macs
    assert total["params_share"] == pytest.approx(params / 28_088_024)  # about 9%
    assert total["macs_share"] == pytest.approx(macs / (3_857_973_248 + macs))  # 0.065%


def test_se_resnet50_residual_blocks_keep_the_se_on_both_sides(se_resnet50) -> None:
    block = se_resnet50.modules.set_index("module").loc["layer1.1"]
    hw, se = 56 * 56, se_params(256, 16)
    assert block["macs"] == hw * (256 * 64 + 64 * 64 * 9 + 64 * 256) + 2 * 256 * 16
    assert block["naive_macs"] == 2 * conv_macs(hw, 256, 256, 3) + 2 * 256 * 16
    assert block["params"] == 256 * 64 + 64 * 64 * 9 + 64 * 256 + se
    assert block["naive_params"] == 2 * 9 * 256 * 256 + se
    lecture = se_resnet50.lecture.set_index("module").loc["layer1.1"]
    assert lecture["macs_hwc2"] == 17.0  # the SE's 1x1 convolutions are not the block's


class LinearSE(nn.Module):
    """A user's SE block on a flattened vector, with nn.Linear (biases)."""

    def __init__(self, c: int, r: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, c // r), nn.Linear(c // r, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        w = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w))))
        return x * w.view(n, c, 1, 1)


class LayerScale(nn.Module):
    """A learned per-channel scale: broadcast like a gate, but no SE block."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


def test_a_users_se_with_linear_layers() -> None:
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), LinearSE(32, 4), LayerScale(32),
                          nn.Conv2d(32, 8, 3, padding=1))
    report = archstat.bottleneck(model, input_shape=(3, 8, 8), batch=2, level="se")
    assert list(report.rows) == ["se", "se_total"] and report.notes == []
    [row] = report.se.to_dict("records")
    c, r = 32, 4
    assert (row["module"], row["input_shape"], row["channels"], row["squeezed"]) == (
        "1", (2, 32, 8, 8), 32, 8)
    assert row["params"] == 2 * c * c // r + c // r + c == 552
    assert row["macs"] == 2 * (2 * c * c // r)  # per image, times the batch of 2
    [total] = report.se_total.to_dict("records")
    model_params = (3 * 32 * 9 + 32) + 552 + 32 + (32 * 8 * 9 + 8)
    assert total["model_params"] == model_params
    assert total["params_share"] == pytest.approx(552 / model_params)


class FiLM(nn.Module):
    """A per-channel scale computed by an fc layer from a second input, not from the map:
    no global pool squeezes anything, so no SE block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(4, 8)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * torch.sigmoid(self.fc(z)).view(-1, 8, 1, 1)


def test_no_se_block() -> None:
    film = archstat.bottleneck(FiLM(), input_shape=[(3, 8, 8), (4,)], level="se")
    assert film.se.empty and film.notes == ["no_se"]
    report = archstat.bottleneck("resnet50", level="se")
    assert report.se.empty and report.se_total.empty and report.notes == ["no_se"]
    assert "no squeeze-and-excitation" in note_text(report, "no_se")
    # at the all level, no SE block is no news: resnet50's report has no note
    assert archstat.bottleneck("resnet50").notes == []


# -- output -----------------------------------------------------------------------------


def test_se_csv_json_and_table(se_resnet50, capsys, tmp_path) -> None:
    text = render(se_resnet50, "csv", level="se")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == SE_COLUMNS and len(rows) == 16
    assert rows[0]["module"] == "layer1.0.se" and rows[0]["input_shape"] == "1x256x56x56"
    assert rows[0]["params"] == str(se_params(256, 16))
    data = json.loads(render(se_resnet50, "json"))
    assert list(data) == ["model", "input_shape", "batch", "convention", "pairs", "modules",
                          "lecture", "network", "se", "se_total", "notes"]
    assert data["se_total"][0]["se_params"] == 2_530_992
    table = render(se_resnet50, "markdown", level="se")
    assert "| layer4.2.se | 1x2048x7x7 | 2048 | 128 |" in table
    assert "| se_resnet50 | 16 | 2.51M | 3.86G | 0.065% | 2.53M | 28.1M | 9.011% |" in table
    target = tmp_path / "se.csv"
    assert main(["bottleneck", "efficientnet_b0", "-l", "se", "-o", str(target)]) == 0
    assert len(target.read_text().splitlines()) == 1 + 16


def test_modules_title_names_the_new_counterparts(densenet121, b0) -> None:
    assert "dense layers without 1x1" in render(densenet121, "markdown", level="module")
    assert "standard kxk conv" in render(b0, "markdown", level="module")
