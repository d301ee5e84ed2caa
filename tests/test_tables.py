"""`archstat analyze --style lecture|paper`: the lecture's per-layer table and the papers'
architecture tables, checked against hand computation from the layer shapes and against
the lecture's and the papers' printed figures."""

from __future__ import annotations

import csv
import io

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import archstat
from archstat.cli import app, main
from archstat.lecture import COLUMNS, lecture_table
from archstat.paper import paper_table
from archstat.paper.googlenet import COLUMNS as GOOGLENET_COLUMNS
from archstat.zoo import get_model_info, list_models
from archstat.zoo.googlenet import TABLE1_MODULES
from archstat.zoo.vgg import cfgs as vgg_cfgs

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def _lecture(model, **kwargs):
    return lecture_table(archstat.analyze(model, convention="lecture", **kwargs)).frame


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- lecture ------------------------------------------------------------------------------

def test_alexnet_matches_the_lecture_table_by_hand() -> None:
    """EECS 498 Lecture 8, AlexNet at 227x227: conv1 64 filters 11x11/4 pad 2 -> 56x56,
    memory 784 KB, params 23k, flop 73M; pool1 0.4 MFLOP; fc6 37,753k params, 38M flop."""
    frame = _lecture("alexnet").set_index("layer")
    assert list(frame.index) == ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4",
                                 "conv5", "pool5", "flatten", "fc6", "fc7", "fc8"]
    out = (227 - 11 + 2 * 2) // 4 + 1
    conv1 = frame.loc["conv1"]
    assert (conv1.in_channels, conv1.in_size, conv1.filters, conv1.kernel, conv1.stride,
            conv1.pad, conv1.out_channels, conv1.out_size) == (3, 227, 64, 11, 4, 2, 64, out)
    assert conv1.memory_kb == 64 * 56 * 56 * 4 / 1024 == 784
    assert conv1.params_k == (11 * 11 * 3 * 64 + 64) / 1000  # 23.296
    assert conv1.flop_m == 64 * 56 * 56 * 11 * 11 * 3 / 1e6  # 72.86
    pool1 = frame.loc["pool1"]
    assert (pool1.kernel, pool1.stride, pool1.pad, pool1.out_size) == (3, 2, 0, 27)
    assert pool1.flop_m == 64 * 27 * 27 * 3 * 3 / 1e6  # 0.42
    assert pool1.memory_kb == 64 * 27 * 27 * 4 / 1024  # 182.25 -> "182"
    assert frame.loc["flatten", "out_channels"] == 9216 and frame.loc["flatten", "memory_kb"] == 36
    fc6 = frame.loc["fc6"]
    assert (fc6.in_channels, fc6.filters, fc6.out_size) == (9216, 4096, None)
    assert fc6.params_k == (9216 * 4096 + 4096) / 1000  # 37,753
    assert fc6.flop_m == 9216 * 4096 / 1e6  # 38


def test_lecture_terminal_rounds_like_the_slides() -> None:
    result = invoke("analyze", "alexnet", "--style", "lecture")
    assert result.exit_code == 0, result.output
    conv1 = next(line for line in result.output.splitlines() if "conv1" in line)
    cells = [c.strip() for c in conv1.split("│") if c.strip()]
    # the last cell is the receptive field: one 11x11 kernel sees 11 pixels
    assert cells == ["conv1", "3", "227", "64", "11", "4", "2", "64", "56", "784", "23", "73",
                     "11"]
    fc6 = next(line for line in result.output.splitlines() if "fc6" in line)
    assert "37,753" in fc6 and fc6.rstrip(" │").endswith("38")
    pool1 = next(line for line in result.output.splitlines() if "pool1" in line)
    # flop 0.4, then the field: 11 + (3 - 1) x 4 = 19
    assert pool1.rstrip(" │").endswith("0.4 │  19")


def test_vgg16_lecture_totals_by_hand() -> None:
    """138M params; the lecture convention's count is the MACs plus 2x2 pools; memory is
    every conv, pool, flatten and fc output at 4 bytes."""
    frame = _lecture("vgg16")
    convs, pools, side, channels = [], [], 224, 3
    memory = macs = 0
    for v in vgg_cfgs["D"]:
        if v == "M":
            side //= 2
            pools.append(channels * side * side * 4)  # 2x2 window per output element
            memory += channels * side * side
        else:
            convs.append(v)
            macs += v * side * side * channels * 9
            memory += v * side * side
            channels = v
    memory += 25088 + 4096 + 4096 + 1000  # flatten, fc6..fc8
    macs += 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    adaptive = 512 * 7 * 7  # the 7x7 -> 7x7 adaptive pool: folded, 1 per output element
    assert len(frame) == 13 + 5 + 1 + 3
    assert round(frame["params_k"].sum() * 1000) == 138_357_544
    assert macs == 15_470_264_320
    assert frame["flop_m"].sum() == pytest.approx((macs + sum(pools) + adaptive) / 1e6)
    assert frame["memory_kb"].sum() == memory * 4 / 1024  # 59,032 KB = 57.6 MiB
    assert frame["layer"].tolist()[-3:] == ["fc14", "fc15", "fc16"]


def test_branching_models_use_paths_grouped_by_module() -> None:
    table = lecture_table(archstat.analyze("googlenet", convention="lecture"))
    frame = table.frame
    assert list(frame.columns) == COLUMNS
    # 57 convs, 4 max pools + 9 branch pools + avg pool, flatten, fc
    assert len(frame) == 57 + 14 + 1 + 1
    names = frame["layer"].tolist()
    assert names[:3] == ["conv1.0", "maxpool1", "conv2.0"]
    assert names[-2:] == ["flatten", "fc"]
    groups = dict(zip(names, table.groups, strict=True))
    assert groups["inception3a.branch2.2"] == "inception3a" and groups["maxpool3"] is None
    output = invoke("analyze", "googlenet", "--style", "lecture").output
    assert "\n│ inception4e " in output and "│   branch3.2 " in output
    resnet = lecture_table(archstat.analyze("resnet50", convention="lecture"))
    assert resnet.groups[resnet.frame["layer"].tolist().index("layer2.0.downsample.0")] == \
        "layer2.0"


# The whole zoo is `slow`; the first model of each family stays in the development loop.
FIRST_OF_FAMILY = {get_model_info(n).family: n for n in reversed(list_models())}.values()


@pytest.mark.parametrize("name", [n if n in FIRST_OF_FAMILY else
                                  pytest.param(n, marks=pytest.mark.slow) for n in list_models()])
def test_lecture_rows_account_for_every_param_and_flop(name) -> None:
    analysis = archstat.analyze(name, convention="lecture")
    frame = lecture_table(analysis).frame
    assert round(frame["params_k"].sum() * 1000) == analysis.totals["params"]
    assert frame["flop_m"].sum() == pytest.approx(analysis.totals["flops"] / 1e6)


class _FunctionalNet(nn.Module):
    def __init__(self, flatten_module: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(8)  # a no-op on the conv's 8x8 map
        self.flatten = nn.Flatten() if flatten_module else None
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.max_pool2d(self.pool(x), 2, 2)
        x = self.flatten(x) if self.flatten is not None else torch.flatten(x, 1)
        return self.fc(x)


@pytest.mark.parametrize("flatten_module", [True, False])
def test_flatten_and_functional_pools_get_rows(flatten_module) -> None:
    model = _FunctionalNet(flatten_module)
    analysis = archstat.analyze(model, input_shape=(3, 16, 16), convention="lecture")
    frame = lecture_table(analysis).frame
    assert frame["layer"].tolist() == ["conv1", "pool1", "flatten", "fc2"]
    pool = frame.iloc[1]
    # the identity adaptive pool folded into the conv row; F.max_pool2d is its own row
    assert (pool.in_size, pool.kernel, pool.stride, pool.out_size) == (8, 2, 2, 4)
    assert frame.iloc[0]["params_k"] == (8 * 27 + 8 + 16) / 1000  # conv + bn affine
    assert frame.iloc[2]["out_channels"] == 8 * 4 * 4


# -- paper --------------------------------------------------------------------------------

def test_googlenet_table1_recomputed() -> None:
    table = paper_table(archstat.analyze("googlenet"))
    frame = table.frame
    assert list(frame.columns) == GOOGLENET_COLUMNS
    assert frame["type"].tolist()[:5] == ["convolution", "max pool", "convolution", "max pool",
                                          "inception (3a)"]
    rows = frame.set_index("type")
    three_a = rows.loc["inception (3a)"]
    # the 3a row of Table 1, copied here by hand
    assert tuple(three_a[GOOGLENET_COLUMNS[4:10]]) == (64, 96, 128, 16, 32, 32)
    weights = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    assert three_a["params"] == weights == 163_328  # the paper's "159K" (K = 1024)
    assert three_a["ops"] == weights * 28 * 28  # 128M
    assert three_a["output_size"] == "28x28x256" and three_a["depth"] == 2
    conv = frame.iloc[0]
    assert (conv.patch_size_stride, conv.output_size, conv.params, conv.ops) == (
        "7x7/2", "112x112x64", 7 * 7 * 3 * 64, 7 * 7 * 3 * 64 * 112 * 112)
    assert frame.iloc[2][["n3x3_reduce", "n3x3"]].tolist() == [64, 192]
    assert frame["ops"].sum() == archstat.analyze("googlenet").totals["flops"]
    # every row that carries the paper's params covers the zoo's TABLE1_MODULES
    assert frame["depth"].sum() == 22  # a chain of rows: the network's depth
    notes = "\n".join(worded(table))
    assert "2.7K" in notes and "9,408 weights" in notes and "34M" in notes
    assert "463K" in notes and "509,440" in notes
    assert "1072K" in notes and "54M" in notes
    wrong = [n.values["row"] for n in table.notes if n.kind == "printed_differs"]
    assert wrong == ["convolution (conv1)", "inception (4c)", "inception (5a)"]


def worded(table) -> list[str]:
    from archstat.render.paper import note_text

    return [note_text(table, note) for note in table.notes]


def test_googlenet_rows_cover_table1_modules() -> None:
    from archstat.zoo.googlenet import TABLE1_ROWS

    covered = {key: set(modules) for _, modules, key in TABLE1_ROWS if key}
    for key, modules in TABLE1_MODULES.items():
        assert set(modules) <= covered[key], key


def test_googlenet_tv_is_not_compared_with_the_paper() -> None:
    notes = worded(paper_table(archstat.analyze("googlenet_tv")))
    assert any("3x3 convolution" in n for n in notes)
    assert not any("Table 1 prints" in n for n in notes)


def _resnet50_macs_by_hand(stride_in_1x1: bool) -> dict[str, int]:
    """He et al. Table 1's ResNet-50 at 224x224, per row, in multiply-adds (no biases:
    every conv feeds a batch norm). A conv costs output positions x out x in x k x k."""
    rows = {"conv1": 112 * 112 * 64 * 3 * 7 * 7}  # 7x7, 64, stride 2
    cin = 64  # after the 3x3 max pool, stride 2: 56x56
    # conv2_x..conv5_x: [1x1, w; 3x3, w; 1x1, 4w] x blocks on a side x side output map
    for row, w, side, blocks in (("conv2_x", 64, 56, 3), ("conv3_x", 128, 28, 4),
                                 ("conv4_x", 256, 14, 6), ("conv5_x", 512, 7, 3)):
        # The first block takes cin channels, at twice the side from conv3_x on, and adds
        # a projection shortcut (1x1, stride 2 from conv3_x on). v1 strides its first 1x1,
        # so that runs at the output side; v1.5 strides the 3x3 instead.
        reduce_side = side if stride_in_1x1 or row == "conv2_x" else 2 * side
        first = reduce_side**2 * w * cin + side**2 * (w * w * 9 + 4 * w * w + 4 * w * cin)
        rest = side**2 * (4 * w * w + w * w * 9 + 4 * w * w)  # from 4w channels
        rows[row] = first + (blocks - 1) * rest
        cin = 4 * w
    rows["head"] = 2048 * 1000  # average pool (0 multiply-adds), fc 1000
    return rows


def test_resnet_stage_table() -> None:
    table = paper_table(archstat.analyze("resnet50"))
    rows = table.frame.set_index("layer_name")
    assert list(rows.index) == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]
    assert rows.loc["conv2_x", "blocks"] == ("3x3 max pool, stride 2; "
                                             "[1x1, 64; 3x3, 64; 1x1, 256] x 3")
    assert rows.loc["conv4_x", "blocks"] == "[1x1, 256; 3x3, 256; 1x1, 1024] x 6"
    assert rows.loc["conv5_x", "output_size"] == "7x7"
    assert table.total["params"] == 25_557_032  # torchvision's documented num_params
    v15 = _resnet50_macs_by_hand(stride_in_1x1=False)
    assert rows["flops"].to_dict() == v15
    # 4.089 GFLOPS in torchvision's documentation
    assert table.total["flops"] == sum(v15.values()) == 4_089_184_256
    assert any("3.8x10^9" in n and "4.09x10^9" in n for n in worded(table))
    assert any("v1.5" in n for n in worded(table))
    v1 = paper_table(archstat.analyze("resnet50_v1"))
    by_hand = _resnet50_macs_by_hand(stride_in_1x1=True)
    assert v1.frame.set_index("layer_name")["flops"].to_dict() == by_hand
    assert v1.total["flops"] == sum(by_hand.values())  # 3,857,973,248: Table 1's "3.8x10^9"
    assert any("as the paper" in n for n in worded(v1))


def test_vgg_configuration_column() -> None:
    table = paper_table(archstat.analyze("vgg16"))
    labels = table.frame["layer"].tolist()
    expected = ["input (224 x 224 RGB image)"]
    for v in vgg_cfgs["D"]:
        expected.append("maxpool" if v == "M" else f"conv3-{v}")
    expected += ["FC-4096", "FC-4096", "FC-1000", "soft-max"]
    assert labels == expected
    assert table.total["params"] == 138_357_544
    assert any("138M" in n and "agrees" in n for n in worded(table))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "alexnet", "--style", "paper"], "'alexnet' has no paper layout"),
        (["analyze", "vgg16", "--style", "paper", "-c", "flops"], "counts multiply-adds"),
        (["analyze", "vgg16", "--style", "lecture", "--batch", "2"], "per image"),
        (["analyze", "vgg16", "--style", "lecture", "--depth", "1"], "--depth applies"),
        (["analyze", "vgg16", "--style", "slides"], "unknown style"),
    ],
)
def test_style_errors_are_one_line_and_exit_2(args, message, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_styles_in_every_format(tmp_path) -> None:
    rows = _csv_rows(invoke("analyze", "googlenet", "--style", "paper", "-f", "csv").output)
    assert rows[0]["params"] == "9408" and rows[0]["n1x1"] == ""
    data = invoke("analyze", "alexnet", "-s", "lecture", "-f", "json").output
    assert '"style": "lecture"' in data and '"layer": "conv1"' in data
    markdown = invoke("analyze", "resnet18", "-s", "paper", "-f", "markdown").output
    assert "| conv2_x |" in markdown and "1.8x10^9" in markdown
    target = tmp_path / "lecture.csv"
    assert main(["analyze", "vgg16", "-s", "lecture", "-o", str(target)]) == 0
    assert target.read_text().splitlines()[0] == ",".join(COLUMNS)
