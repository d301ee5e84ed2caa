"""`archstat factorize`: stride-1 conv stacks against one conv of their receptive field
(VGG's argument) and large kernels against small factors (Inception v3's).

Every figure is a hand computation written here: the VGG-16 configuration, GoogLeNet's
Table 1 5x5 branches and AlexNet's layers are copied into this file, not read from the
zoo, and the published parameter totals come from the torchvision documentation.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from torch import nn
from typer.testing import CliRunner

import archstat
from archstat.cli import app, main
from archstat.errors import ArchstatError
from archstat.factorize import factorize_model
from archstat.render import render
from archstat.render.factorize import NETWORK_COLUMNS, STACK_COLUMNS


def conv_params(cin: int, cout: int, kh: int, kw: int | None = None, bias: bool = True) -> int:
    return cin * cout * kh * (kh if kw is None else kw) + (cout if bias else 0)


def conv_macs(positions: int, cin: int, cout: int, kh: int, kw: int | None = None) -> int:
    """Multiply-adds of a convolution: output positions x C_in x C_out x kernel area."""
    return positions * cin * cout * kh * (kh if kw is None else kw)


# -- the hand example: C -> C stacks -----------------------------------------------------


def stack(convs: int, c: int, norm: bool = False, bias: bool = False,
          dilation: int = 1) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers.append(nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=bias))
        if norm:
            layers.append(nn.BatchNorm2d(c))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@pytest.mark.parametrize(("convs", "field", "built", "one"), [(2, 5, 18, 25), (3, 7, 27, 49)])
def test_the_lectures_hand_example(convs: int, field: int, built: int, one: int) -> None:
    """Two 3x3 convs C -> C cost 18 C^2 per output position, one 5x5 25 C^2; three 3x3
    27 C^2, one 7x7 49 C^2."""
    c, side = 16, 8
    result = factorize_model(stack(convs, c), input_shape=(c, side, side))
    (row,) = result.stacks
    assert row.direction == "merge"
    assert row.layers == tuple(str(2 * i) for i in range(convs))
    assert row.receptive_field == (field, field)
    assert row.alt_kernel == ((field, field),) and row.alt_stride == ((1, 1),)
    assert (row.params, row.alt_params) == (built * c * c, one * c * c)
    assert (row.flops, row.alt_flops) == (built * c * c * side**2, one * c * c * side**2)
    assert result.params == built * c * c and result.alt_params == one * c * c


def test_norms_inside_a_stack_go_with_it_and_biases_count() -> None:
    c = 8
    result = factorize_model(stack(2, c, norm=True, bias=True), input_shape=(c, 6, 6))
    (row,) = result.stacks
    # two biased 3x3 convs and the BatchNorm between them (the last one stays)
    assert row.params == 2 * conv_params(c, c, 3) + 2 * c
    assert row.alt_params == conv_params(c, c, 5)
    assert result.params == row.params + 2 * c
    assert result.alt_params == row.alt_params + 2 * c


def test_dilation_widens_the_field() -> None:
    (row,) = factorize_model(stack(2, 4, dilation=2), input_shape=(4, 12, 12)).stacks
    assert row.receptive_field == (9, 9)  # 1 + 2 x (3 - 1) x 2
    assert row.alt_flops == conv_macs(144, 4, 4, 9)


class Branching(nn.Module):
    """conv1's output feeds conv2 and a residual add: no stack across it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv4 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv1(x)
        z = self.conv2(y) + y
        return self.conv4(self.conv3(z).relu())


@pytest.mark.parametrize(("model", "expected"), [
    (Branching(), [("conv3", "conv4")]),
    # a stride, a 1x1 and a pool each end a stack
    (nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                   nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)),
     [("2", "3")]),
    (nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1),
                   nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3)), []),
    # a depthwise conv is left alone
    (nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=4),
                   nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)),
     [("2", "3")]),
])
def test_stacks_are_chains_of_stride_1_convs(model: nn.Module, expected: list) -> None:
    if not expected:
        with pytest.raises(ArchstatError, match="no stride-1 stack of two or more"):
            factorize_model(model, input_shape=(4, 16, 16), direction="merge")
        return
    result = factorize_model(model, input_shape=(4, 16, 16))
    assert [row.layers for row in result.stacks] == expected


# -- VGG-16 ----------------------------------------------------------------------------

# Simonyan and Zisserman Table 1, configuration D: (input channels, conv widths, side).
VGG16_STACKS = [(3, [64, 64], 224), (64, [128, 128], 112), (128, [256, 256, 256], 56),
                (256, [512, 512, 512], 28), (512, [512, 512, 512], 14)]
VGG16_PARAMS = 138_357_544  # torchvision documentation
VGG16_MACS = 15_470_264_320  # torchvision's "15.47 GFLOPS", the multiply-adds


def test_vgg16_every_stage_is_a_stack_against_one_conv() -> None:
    result = factorize_model("vgg16")
    assert [row.direction for row in result.stacks] == ["merge"] * 5
    assert (result.params, result.flops) == (VGG16_PARAMS, VGG16_MACS)
    alt_params, alt_macs = VGG16_PARAMS, VGG16_MACS
    for row, (cin, widths, side) in zip(result.stacks, VGG16_STACKS, strict=True):
        ins = [cin, *widths[:-1]]
        field = 1 + 2 * len(widths)
        assert row.receptive_field == (field, field)
        assert row.params == sum(conv_params(i, o, 3) for i, o in zip(ins, widths, strict=True))
        assert row.flops == sum(conv_macs(side**2, i, o, 3)
                                for i, o in zip(ins, widths, strict=True))
        assert row.alt_params == conv_params(cin, widths[-1], field)
        assert row.alt_flops == conv_macs(side**2, cin, widths[-1], field)
        alt_params += row.alt_params - row.params
        alt_macs += row.alt_flops - row.flops
    assert (result.alt_params, result.alt_flops) == (alt_params, alt_macs)
    # conv5 is C -> C: 27 C^2 against 49 C^2, weights per output position
    last = result.stacks[-1]
    assert (last.flops / 14**2, last.alt_flops / 14**2) == (27 * 512**2, 49 * 512**2)


# -- GoogLeNet and AlexNet: large kernels split ----------------------------------------

# Table 1: (#5x5 reduce, #5x5, side) of inception 3a ... 5b.
GOOGLENET_5X5 = [(16, 32, 28), (32, 96, 28), (16, 48, 14), (24, 64, 14), (24, 64, 14),
                 (32, 64, 14), (32, 128, 14), (32, 128, 7), (48, 128, 7)]


def test_googlenet_5x5_branches_split_into_two_3x3() -> None:
    result = factorize_model("googlenet")
    conv1, *fives = result.stacks
    assert all(row.direction == "split" for row in result.stacks)
    # the 7x7/2 stem conv: 3x3/2 (pad 1) then 3x3 (pad 1), both at 112x112, 64 wide
    assert (conv1.layers, conv1.kernel, conv1.stride) == (("conv1.0",), ((7, 7),), ((2, 2),))
    assert conv1.alt_kernel == ((3, 3), (3, 3)) and conv1.alt_stride == ((2, 2), (1, 1))
    assert conv1.alt_params == conv_params(3, 64, 3) + conv_params(64, 64, 3)
    assert conv1.alt_flops == conv_macs(112**2, 3, 64, 3) + conv_macs(112**2, 64, 64, 3)
    assert [row.layers for row in fives] == [
        (f"inception{m}.branch3.2",) for m in ("3a", "3b", "4a", "4b", "4c", "4d", "4e",
                                               "5a", "5b")]
    for row, (reduce, out, side) in zip(fives, GOOGLENET_5X5, strict=True):
        assert row.receptive_field == (5, 5)
        assert (row.params, row.flops) == (conv_params(reduce, out, 5),
                                           conv_macs(side**2, reduce, out, 5))
        # the factors keep the output width: reduce -> out, then out -> out
        assert row.alt_params == conv_params(reduce, out, 3) + conv_params(out, out, 3)
        assert row.alt_flops == conv_macs(side**2, reduce, out, 3) + conv_macs(side**2, out,
                                                                              out, 3)
    assert result.notes == []


def test_alexnet_strided_11x11_carries_its_stride_on_the_first_factor() -> None:
    result = factorize_model("alexnet")
    conv1, conv2, stack3 = result.stacks
    # 11x11/4 pad 2 on 227 -> 56; 3x3/4 pad 2 -> 58, then 3x3 pad 0 -> 56
    assert (conv1.output_shape, conv1.alt_kernel, conv1.alt_stride) == (
        (1, 64, 56, 56), ((3, 3), (3, 3)), ((4, 4), (1, 1)))
    assert conv1.params == conv_params(3, 64, 11)
    assert conv1.alt_flops == conv_macs(58**2, 3, 64, 3) + conv_macs(56**2, 64, 64, 3)
    [note] = result.notes  # a 3x3 at stride 4 skips pixels
    assert (note.kind, note.layer, note.stride) == ("sparse", "features.0", (4, 4))
    assert conv2.alt_flops == conv_macs(27**2, 64, 192, 3) + conv_macs(27**2, 192, 192, 3)
    assert stack3.direction == "merge" and stack3.layers == ("features.6", "features.8",
                                                             "features.10")
    assert stack3.alt_params == conv_params(192, 256, 7)


def test_asymmetric_split_strides_each_axis_on_its_own_factor() -> None:
    result = factorize_model("alexnet", direction="split", split="asymmetric")
    conv1, conv2 = result.stacks
    assert conv1.alt_kernel == ((1, 11), (11, 1)) and conv1.alt_stride == ((1, 4), (4, 1))
    # 1x11/(1,4) pad (0,2): 227 x 56; 11x1/(4,1) pad (2,0): 56 x 56
    assert conv1.alt_flops == conv_macs(227 * 56, 3, 64, 1, 11) + conv_macs(56 * 56, 64, 64,
                                                                             11, 1)
    assert conv1.alt_params == conv_params(3, 64, 1, 11) + conv_params(64, 64, 11, 1)
    assert conv2.alt_params == conv_params(64, 192, 1, 5) + conv_params(192, 192, 5, 1)
    assert result.notes == []


def test_a_kernel_with_no_3x3_split_is_named() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2))
    with pytest.raises(ArchstatError, match=r"'0' \(5x5 at stride 2x2\).*`split` asymmetric"):
        factorize_model(model, input_shape=(3, 32, 32))
    (row,) = factorize_model(model, input_shape=(3, 32, 32), split="asymmetric").stacks
    assert row.alt_flops == conv_macs(32 * 14, 3, 8, 1, 5) + conv_macs(14 * 14, 8, 8, 5, 1)


# -- errors and interfaces -------------------------------------------------------------


@pytest.mark.parametrize(("model", "kwargs", "match"), [
    ("efficientnet_b0", {}, "efficientnet_b0 has nothing to factorize: no stride-1 stack"),
    (nn.Sequential(nn.Flatten(), nn.Linear(12, 4)), {"input_shape": (3, 2, 2)},
     "Sequential has nothing to factorize"),
    ("googlenet", {"direction": "merge"}, "googlenet has nothing to factorize: no stride-1"),
    ("vgg16", {"direction": "split"}, "vgg16 has nothing to factorize: no ungrouped kxk"),
    ("vgg16", {"direction": "sideways"}, "unknown `direction` 'sideways'"),
    ("vgg16", {"split": "2x2"}, "unknown `split` '2x2'"),
])
def test_nothing_to_factorize_is_one_clear_error(model, kwargs, match) -> None:
    with pytest.raises(ArchstatError, match=match) as info:
        factorize_model(model, **kwargs)
    assert "\n" not in str(info.value)


runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["factorize", *args], env={"COLUMNS": "200"})


def test_cli_table_csv_and_json(tmp_path) -> None:
    table = invoke("vgg16")
    assert table.exit_code == 0, table.output
    assert "features.24 -> features.26 -> features.28" in table.stdout
    assert "3x3 -> 3x3 -> 3x3" in table.stdout and "1.81x" in table.stdout
    rows = list(csv.DictReader(io.StringIO(invoke("vgg16", "-f", "csv").stdout)))
    assert list(rows[0]) == STACK_COLUMNS and len(rows) == 5
    assert rows[0]["layers"] == "features.0 -> features.2" and rows[0]["alt_kernel"] == "5x5"
    assert (rows[4]["params"], rows[4]["alt_params"]) == ("7079424", "12845568")
    target = tmp_path / "alexnet.json"
    assert invoke("alexnet", "-o", str(target)).exit_code == 0
    data = json.loads(target.read_text())
    assert {"model", "stacks", "network"} <= set(data)
    assert {"layers", "receptive_field", "params", "flops", "alt_kernel", "alt_params",
            "alt_flops"} <= set(data["stacks"][0])
    assert list(data["network"]) == NETWORK_COLUMNS[1:]
    assert data["stacks"][0]["alt_kernel"] == [[3, 3], [3, 3]]
    assert data["stacks"][0]["receptive_field"] == 11
    assert data["notes"][0].startswith("features.0: the first factor, 3x3 at stride 4")
    markdown = invoke("googlenet", "-f", "markdown").stdout
    assert "| split | conv1.0 | 3 | 64 |" in markdown and "3x3/2 -> 3x3" in markdown


def test_cli_errors_are_one_line_in_flags(capsys) -> None:
    assert main(["factorize", "vgg16", "--direction", "up"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("archstat: error: unknown --direction 'up'; choose one of both, "
                            "merge, split\n")
    assert main(["factorize", "efficientnet_b0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archstat: error: efficientnet_b0 has nothing to factorize")
    assert err.count("\n") == 1


USER_MODEL = """\
from torch import nn


def net():
    # two 3x3 convs 8 -> 8 (a stack), a 7x7/2 conv (split: 3x3/2 then 3x3), a head
    return nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 7, stride=2, padding=3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def head_only():
    return nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
"""


def test_a_users_model_by_its_spec(tmp_path, monkeypatch, capsys) -> None:
    """MODEL as package.module:callable, as for every other command."""
    (tmp_path / "my_models.py").write_text(USER_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["factorize", "my_models:net", "--input", "8x16x16", "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "my_models:net"
    merge, split = data["stacks"]
    assert (merge["layers"], merge["receptive_field"]) == (["0", "2"], 5)
    assert (merge["params"], merge["alt_params"]) == (2 * conv_params(8, 8, 3),
                                                      conv_params(8, 8, 5))
    assert (merge["flops"], merge["alt_flops"]) == (18 * 8 * 8 * 16**2, 25 * 8 * 8 * 16**2)
    assert (split["layers"], split["alt_kernel"]) == (["4"], [[3, 3], [3, 3]])
    assert split["flops"] == conv_macs(8 * 8, 8, 16, 7)
    assert split["alt_flops"] == conv_macs(8 * 8, 8, 16, 3) + conv_macs(8 * 8, 16, 16, 3)
    network = data["network"]
    head = conv_params(16, 10, 1)  # the Linear's weights and biases
    assert network["params"] == 2 * conv_params(8, 8, 3) + conv_params(8, 16, 7) + head
    assert network["alt_params"] == (conv_params(8, 8, 5) + conv_params(8, 16, 3)
                                     + conv_params(16, 16, 3) + head)
    assert main(["factorize", "my_models:head_only", "--input", "8x4x4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archstat: error: my_models:head_only has nothing to factorize")
    assert err.count("\n") == 1


def test_the_api_names() -> None:
    assert archstat.factorize_model is factorize_model
    assert isinstance(factorize_model("alexnet"), archstat.Factorization)


def test_output_is_deterministic() -> None:
    first = factorize_model("googlenet")
    again = factorize_model("googlenet")
    for fmt in ("csv", "json", "markdown"):
        assert render(first, fmt) == render(again, fmt)
