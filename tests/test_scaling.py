"""`archstat scale`: compound scaling (Tan and Le 2019, Section 3.3) as a measurement.

The scaled networks are checked against two independent sources:

* hand counts written here: EfficientNet from the paper's Table 1 with the reference
  implementation's rounding rule, ResNet from He et al. Table 1, VGG from Simonyan and
  Zisserman Table 1, each first checked against torchvision's documented parameters and
  GFLOPS of the unscaled models, then evaluated at the scaled widths, depths and sides;
* the zoo's own variants (torchvision-exact): EfficientNet-B0 at B<n>'s multipliers is
  B<n>, VGG-11 at depth 2 is VGG-19 and at depth 1.5 VGG-16.

The published figures (torchvision's documentation, the paper's Table 2) are copied into
this file, not read from archstat.
"""

from __future__ import annotations

import csv
import io
import json
import math
from fractions import Fraction

import pytest
from torch import nn

import archstat
from archstat.analysis import analyze
from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.render import render
from archstat.scaling import scale, scale_sweep
from archstat.zoo import list_models

# -- hand counts -----------------------------------------------------------------------


def make_divisible(value: Fraction | float, divisor: int = 8) -> int:
    """The reference implementation's channel rounding (``round_filters``, torchvision's
    ``_make_divisible``): nearest multiple of 8, never more than 10% down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class Count:
    """Parameters and multiply-adds (conv and fc weights x output positions), batch 1."""

    def __init__(self) -> None:
        self.params = self.macs = 0

    def conv(self, cin: int, cout: int, k: int, side: int, groups: int = 1,
             bias: bool = False, norm: bool = True) -> None:
        weights = cout * (cin // groups) * k * k
        self.params += weights + (cout if bias else 0) + (2 * cout if norm else 0)
        self.macs += weights * side * side

    def fc(self, cin: int, cout: int) -> None:
        self.params += cin * cout + cout
        self.macs += cin * cout


def down(side: int) -> int:
    """The side after a stride-2 conv or pool padded to keep ceil(side / 2)."""
    return (side - 1) // 2 + 1


# EfficientNet-B0, Table 1: (expand, kernel, stride, output channels, layers) per stage.
B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
      (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def efficientnet(width: Fraction, depth: Fraction, side: int) -> Count:
    """EfficientNet as the reference implementation builds it: MBConv blocks with SE
    squeezing to a quarter of the block's input, a head of 4x the last stage."""
    count = Count()
    side = down(side)
    cin = make_divisible(32 * width)
    count.conv(3, cin, 3, side)
    for expand, k, stride, cout, layers in B0:
        cout = make_divisible(cout * width)
        for i in range(math.ceil(layers * depth)):
            hidden = make_divisible(cin * expand)
            if hidden != cin:
                count.conv(cin, hidden, 1, side)
            if i == 0 and stride == 2:
                side = down(side)
            count.conv(hidden, hidden, k, side, groups=hidden)
            squeeze = max(1, cin // 4)
            count.conv(hidden, squeeze, 1, 1, bias=True, norm=False)
            count.conv(squeeze, hidden, 1, 1, bias=True, norm=False)
            count.conv(hidden, cout, 1, side)
            cin = cout
    count.conv(cin, 4 * cin, 1, side)
    count.fc(4 * cin, 1000)
    return count


def resnet(bottleneck: bool, layers: tuple[int, ...], widths: tuple[int, ...], stem: int,
           side: int = 224) -> Count:
    """torchvision's ResNet (stride on the bottleneck's 3x3) with the given stem width,
    stage widths and blocks per stage."""
    count = Count()
    side = down(side)
    count.conv(3, stem, 7, side)
    side = down(side)  # 3x3/2 max pool
    cin = stem
    for i, (planes, blocks) in enumerate(zip(widths, layers, strict=True)):
        out = 4 * planes if bottleneck else planes
        for b in range(blocks):
            stride = 2 if i > 0 and b == 0 else 1
            before = side
            if stride == 2:
                side = down(side)
            if bottleneck:
                count.conv(cin, planes, 1, before)
                count.conv(planes, planes, 3, side)
                count.conv(planes, out, 1, side)
            else:
                count.conv(cin, planes, 3, side)
                count.conv(planes, planes, 3, side)
            if stride == 2 or cin != out:
                count.conv(cin, out, 1, side)
            cin = out
    count.fc(cin, 1000)
    return count


def vgg(stages: list[tuple[int, int]], norm: bool = False, side: int = 224) -> Count:
    """VGG: (width, convolutions) per stage, a 2x2 max pool after each, the classifier
    on a 7x7 adaptive pool."""
    count = Count()
    cin = 3
    for width, convs in stages:
        for _ in range(convs):
            count.conv(cin, width, 3, side, bias=True, norm=norm)
            cin = width
        side //= 2
    count.fc(cin * 49, 4096)
    count.fc(4096, 4096)
    count.fc(4096, 1000)
    return count


# torchvision's documentation: parameters and GFLOPS (multiply-adds) at its crop.
TORCHVISION = {
    "efficientnet_b0": (5_288_548, 0.39), "efficientnet_b1": (7_794_184, 0.69),
    "efficientnet_b2": (9_109_994, 1.09), "efficientnet_b3": (12_233_232, 1.83),
    "efficientnet_b4": (19_341_616, 4.39), "efficientnet_b5": (30_389_784, 10.27),
    "efficientnet_b6": (43_040_704, 19.07), "efficientnet_b7": (66_347_960, 37.75),
    "resnet18": (11_689_512, 1.81), "resnet50": (25_557_032, 4.09),
    "vgg11": (132_863_336, 7.61), "vgg16": (138_357_544, 15.47), "vgg19": (143_667_240, 19.63),
    "vgg19_bn": (143_678_248, 19.63),
}
# The reference implementation's (width, depth, resolution) per variant; torchvision
# evaluates B2 at 288.
VARIANTS = {
    "efficientnet_b0": (1.0, 1.0, 224), "efficientnet_b1": (1.0, 1.1, 240),
    "efficientnet_b2": (1.1, 1.2, 260), "efficientnet_b3": (1.2, 1.4, 300),
    "efficientnet_b4": (1.4, 1.8, 380), "efficientnet_b5": (1.6, 2.2, 456),
    "efficientnet_b6": (1.8, 2.6, 528), "efficientnet_b7": (2.0, 3.1, 600),
}
CROPS = {"efficientnet_b2": 288}
VGG_STAGES = {"vgg11": [(64, 1), (128, 1), (256, 2), (512, 2), (512, 2)],
              "vgg16": [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)],
              "vgg19": [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]}
RESNET18 = (False, (2, 2, 2, 2))
RESNET50 = (True, (3, 4, 6, 3))


def exact(value: float) -> Fraction:
    return Fraction(str(value))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_hand_efficientnet_is_torchvisions(name: str) -> None:
    """The hand count reproduces torchvision's documented figures for B0-B7."""
    width, depth, _ = VARIANTS[name]
    params, gflops = TORCHVISION[name]
    count = efficientnet(exact(width), exact(depth), CROPS.get(name, VARIANTS[name][2]))
    assert count.params == params
    assert round(count.macs / 1e9, 2) == gflops


@pytest.mark.parametrize(("count", "name"), [
    (lambda: resnet(*RESNET18, (64, 128, 256, 512), 64), "resnet18"),
    (lambda: resnet(*RESNET50, (64, 128, 256, 512), 64), "resnet50"),
    *((lambda n=n: vgg(VGG_STAGES[n]), n) for n in VGG_STAGES),
    (lambda: vgg(VGG_STAGES["vgg19"], norm=True), "vgg19_bn"),
])
def test_the_hand_resnet_and_vgg_are_torchvisions(count, name: str) -> None:
    params, gflops = TORCHVISION[name]
    assert count().params == params
    assert round(count().macs / 1e9, 2) == gflops


# -- EfficientNet ----------------------------------------------------------------------

ALPHA, BETA, GAMMA = Fraction(6, 5), Fraction(11, 10), Fraction(23, 20)


def at_phi(phi: int) -> tuple[Fraction, Fraction, int]:
    """(depth, width, side) for a compound coefficient: the side rounded half up."""
    return ALPHA**phi, BETA**phi, math.floor(224 * GAMMA**phi + Fraction(1, 2))


def check_phi(phi: int) -> None:
    d, w, side = at_phi(phi)
    report = scale("efficientnet_b0", phi=phi)
    hand, base = efficientnet(w, d, side), efficientnet(Fraction(1), Fraction(1), 224)
    assert report.scaled.input_shape == (3, side, side)
    assert (report.scaled.params, report.scaled.flops) == (hand.params, hand.macs)
    assert (report.base.params, report.base.flops) == (base.params, base.macs)
    assert report.predicted_ratio == (ALPHA * BETA**2 * GAMMA**2) ** phi
    assert report.flops_ratio == hand.macs / base.macs
    assert report.params_ratio == hand.params / base.params
    # the rounding, stage by stage, as the reference rule gives it
    built = [(s.stage, s.scaled_channels, s.scaled_repeats) for s in report.stages]
    last = make_divisible(320 * w)
    assert built == [("stem", make_divisible(32 * w), 1),
                     *((str(i), make_divisible(c * w), math.ceil(n * d))
                       for i, (_, _, _, c, n) in enumerate(B0, 1)),
                     ("head", 4 * last, 1)]


def test_phi_1_against_the_hand_count() -> None:
    check_phi(1)
    # 5 x 1.2 is 6 blocks: the multipliers are exact (a float product would ceil to 7)
    report = scale("efficientnet_b0", depth=1.2)
    assert [s.scaled_repeats for s in report.stages[1:-1]] == [2, 3, 3, 4, 4, 5, 2]


@pytest.mark.slow
@pytest.mark.parametrize("phi", [0, 2, 3, 4, 5, 6, 7])
def test_every_phi_of_the_sweep_against_the_hand_count(phi: int) -> None:
    check_phi(phi)


@pytest.mark.parametrize("variant", [
    "efficientnet_b1", "efficientnet_b2",
    *(pytest.param(v, marks=pytest.mark.slow) for v in list(VARIANTS)[3:]),
])
def test_b0_at_a_variants_multipliers_is_that_variant(variant: str) -> None:
    """B0 scaled by B<n>'s own width, depth and resolution is the zoo's B<n>, whose
    parameters torchvision documents."""
    width, depth, resolution = VARIANTS[variant]
    report = scale("efficientnet_b0", depth=depth, width=width,
                   resolution=Fraction(resolution, 224))
    zoo = analyze(variant).totals
    assert report.scaled.input_shape == (3, resolution, resolution)
    assert report.scaled.params == TORCHVISION[variant][0] == zoo["params"]
    assert report.scaled.flops == zoo["flops"]


def test_phi_1_asks_for_b2s_width_and_depth() -> None:
    """alpha, beta = 1.2, 1.1 are B2's depth and width: phi 1 has B2's parameters."""
    assert scale("efficientnet_b0", phi=1).scaled.params == TORCHVISION["efficientnet_b2"][0]


# -- ResNet and VGG --------------------------------------------------------------------


def test_resnet18_deeper_and_wider() -> None:
    report = scale("resnet18", depth=1.5, width=2)
    hand = resnet(False, (3, 3, 3, 3), (128, 256, 512, 1024), 128)
    assert (report.scaled.params, report.scaled.flops) == (hand.params, hand.macs)
    assert report.base.params == TORCHVISION["resnet18"][0]
    assert report.predicted_ratio == Fraction(3, 2) * 4


def test_resnet50_width_rounds_to_multiples_of_8_and_the_side_follows_r() -> None:
    report = scale("resnet50", width=1.3, resolution=1.5)
    widths = tuple(make_divisible(exact(1.3) * c) for c in (64, 128, 256, 512))
    # the nearest multiples of 8 to 83.2, 166.4, 332.8 and 665.6
    assert widths == (80, 168, 336, 664)
    hand = resnet(*RESNET50, widths, make_divisible(exact(1.3) * 64), side=336)
    assert report.scaled.input_shape == (3, 336, 336)
    assert (report.scaled.params, report.scaled.flops) == (hand.params, hand.macs)
    stages = {s.stage: (s.exact_channels, s.scaled_channels) for s in report.stages}
    assert stages["layer4"] == (Fraction(3328, 5), 664)


def test_resnet50_v1_keeps_its_stride_on_the_1x1() -> None:
    report = scale("resnet50_v1", depth=1)
    assert report.scaled.flops == analyze("resnet50_v1").totals["flops"]
    assert report.scaled.flops < analyze("resnet50").totals["flops"]


@pytest.mark.parametrize(("base", "depth", "target"), [
    ("vgg11", 2, "vgg19"), ("vgg11", 1.5, "vgg16"), ("vgg11_bn", 2, "vgg19_bn"),
])
def test_vgg_depth_repeats_convolutions_per_stage(base: str, depth: float, target: str) -> None:
    """Table 1: A's convolutions per stage (1, 1, 2, 2, 2) x 2 are E's, x 1.5 rounded up D's."""
    report = scale(base, depth=depth)
    zoo = analyze(target).totals
    assert (report.scaled.params, report.scaled.flops) == (zoo["params"], zoo["flops"])
    assert report.scaled.params == TORCHVISION[target][0]


def test_vgg_width_scales_convs_and_the_first_fc_input_only() -> None:
    report = scale("vgg16", width=0.5, resolution=0.5)
    hand = vgg([(c // 2, n) for c, n in VGG_STAGES["vgg16"]], side=112)
    assert (report.scaled.params, report.scaled.flops) == (hand.params, hand.macs)


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for f in ("efficientnet", "resnet", "vgg")
                                   for m in list_models(f)])
def test_every_scalable_zoo_model_rebuilds_as_itself(model: str) -> None:
    report = scale(model, depth=1, width=1, resolution=1)
    zoo = analyze(model).totals
    assert (report.scaled.params, report.scaled.flops) == (zoo["params"], zoo["flops"])
    assert report.scaled == report.base and report.flops_ratio == 1.0


# -- the sweep -------------------------------------------------------------------------

# Table 2 of the paper: #Params (M) and #FLOPS (B, multiply-adds).
PAPER = [(5.3, 0.39), (7.8, 0.70), (9.2, 1.0), (12, 1.8), (19, 4.2), (30, 9.9), (43, 19),
         (66, 37)]


@pytest.mark.slow
def test_the_sweep_sits_beside_b0_to_b7() -> None:
    sweep = scale_sweep()
    assert [r.phi for r in sweep.rows] == list(range(8))
    for row, name, paper in zip(sweep.rows, VARIANTS, PAPER, strict=True):
        d, w, side = at_phi(row.phi)
        hand = efficientnet(w, d, side)
        assert (row.network.params, row.network.flops) == (hand.params, hand.macs)
        published = row.published
        assert published.variant == name.removeprefix("efficientnet_")
        assert (published.paper_params, published.paper_flops) == paper
        assert published.params == TORCHVISION[name][0]
        assert (published.width, published.depth, published.resolution) == VARIANTS[name]
        assert round(published.flops / 1e9, 2) == TORCHVISION[name][1] or name in CROPS
    # B0 at phi 7 costs more over B0 than the hand-picked B7 does: its depth rounds up
    # stage by stage (and alpha^7 is deeper than B7's 3.1)
    assert sweep.rows[7].published.flops_ratio < sweep.rows[7].flops_ratio


def test_a_short_sweep_from_the_cli(capsys) -> None:
    assert main(["scale", "efficientnet_b0", "--sweep", "--phi", "1", "-f", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["phi"] for r in rows] == ["0", "1"]
    d, w, side = at_phi(1)
    hand = efficientnet(w, d, side)
    assert (rows[1]["params"], rows[1]["flops"]) == (str(hand.params), str(hand.macs))
    assert (rows[1]["variant"], rows[1]["variant_params"]) == ("b1", "7794184")
    assert (rows[1]["variant_paper_params_m"], rows[1]["variant_paper_flops_g"]) == (
        "7.8", "0.7")
    assert rows[1]["blocks"] == str(sum(math.ceil(n * d) for *_, n in B0))
    # from another base: no published column
    assert main(["scale", "resnet18", "--sweep", "--phi", "1", "-f", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith("params_ratio") and "variant" not in header


# -- interfaces and errors -------------------------------------------------------------


def test_json_has_the_ratios_and_the_scaled_totals(capsys) -> None:
    assert main(["scale", "efficientnet_b0", "--phi", "1", "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    d, w, side = at_phi(1)
    hand, base = efficientnet(w, d, side), efficientnet(Fraction(1), Fraction(1), 224)
    assert (data["params"], data["flops"]) == (hand.params, hand.macs)
    assert data["input_shape"] == [3, side, side]
    assert data["predicted_ratio"] == float(ALPHA * BETA**2 * GAMMA**2)
    assert data["flops_ratio"] == hand.macs / base.macs
    assert data["params_ratio"] == hand.params / base.params
    assert (data["base"]["params"], data["base"]["flops"]) == (base.params, base.macs)
    stage3 = next(s for s in data["stages"] if s["stage"] == "3")
    assert (stage3["exact_channels"], stage3["scaled_channels"]) == (44.0, 48)


def test_the_table_shows_the_rounding(capsys) -> None:
    assert main(["scale", "resnet50", "--width", "1.3"]) == 0
    out = capsys.readouterr().out
    assert "measured over predicted" in out and "665.6" in out and "664" in out


@pytest.mark.parametrize(("args", "message"), [
    (["googlenet", "--phi", "1"], "googlenet (family googlenet) does not scale"),
    (["my_models:net", "--phi", "1"], "my_models:net cannot be scaled"),
    (["efficientnet_b0"], "give --phi, or one or more of the --depth, --width"),
    (["efficientnet_b0", "--phi", "1", "--width", "2"], "give --phi or the --depth"),
    (["vgg16", "--width", "0"], "--width is a finite multiplier above 0"),
    (["vgg16", "--width", "inf"], "--width is a finite multiplier above 0, not inf"),
    (["vgg16", "--depth", "nan"], "--depth is a finite multiplier above 0, not nan"),
    # past a float's range: EfficientNet's channel rounding adds a float to the width
    (["resnet18", "--width", "1e308"], "resnet18 scaled by depth 1 and width 1e+308 is too "
     "large to build"),
    # torch cannot size a 512e6 x 512e6 x 3 x 3 weight, nor trace 1.2^100 x 8 blocks in time
    (["resnet18", "--width", "1e6"], "resnet18 scaled by depth 1 and width 1e+06 would have "
     "512000000 channels in one layer; at most 65536"),
    (["resnet18", "--phi", "100"], "resnet18 scaled by depth 8.2818e+07"),
    # 1.2^1e9 as an exact fraction would take hours to compute
    (["resnet18", "--phi", "1000000000"], "--phi is a whole number from -100 to 100"),
    (["efficientnet_b0", "--depth", "1e5"], "efficientnet_b0 scaled by depth 100000 and "
     "width 1 would have 1600000 blocks; at most 4096 are built: give a smaller --depth"),
    # the sweep refuses before tracing phi = 0..59
    (["efficientnet_b0", "--sweep", "--phi", "60"], "efficientnet_b0 scaled by depth"),
    (["resnet18", "--sweep", "--depth", "2"], "--sweep steps --phi"),
    (["resnet18", "--sweep", "--phi", "-1"], "--sweep runs phi = 0..--phi"),
    # 224 x 0.01 rounds to 2 pixels, which VGG's fourth pool cannot halve
    (["vgg16", "--resolution", "0.01"], "vgg16 at resolution 0.01 (input 2x2): forward failed"),
    (["resnet18", "--resolution", "0.001"], "resnet18 at resolution 0.001 (input 0x0) has no"),
])
def test_a_model_or_argument_that_does_not_apply_is_one_line(args, message, capsys) -> None:
    assert main(["scale", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"archstat: error: {message}")


def test_a_module_cannot_be_scaled() -> None:
    with pytest.raises(ArchstatError, match="Sequential cannot be scaled"):
        scale(nn.Sequential(nn.Conv2d(3, 8, 3)), phi=1)


def test_output_is_deterministic_and_the_api_names_are_public() -> None:
    assert archstat.scale is scale and archstat.scale_sweep is scale_sweep
    first, again = scale("vgg11", phi=1), scale("vgg11", phi=1)
    assert isinstance(first, archstat.ScalingReport)
    for fmt in ("csv", "json", "markdown"):
        assert render(first, fmt) == render(again, fmt)
    sweep = scale_sweep("resnet18", range(2))
    assert isinstance(sweep, archstat.ScalingSweep)
    assert render(sweep, "csv") == render(scale_sweep("resnet18", range(2)), "csv")
