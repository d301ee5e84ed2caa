"""The families after ResNet (issue 12): DenseNet-BC, SE-ResNet, EfficientNet and
deformable convolution. Totals are counted by hand here from the papers' tables and
checked against archstat's trace and the published references (torchvision's documented
parameters and GFLOPS, timm's legacy SE-ResNets); the real-world corpus also compares
each model with torchvision's and timm's own, layer for layer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import archstat
from archstat.zoo import get_model_info, list_models
from archstat.zoo.deformable import DeformConv2d
from archstat.zoo.densenet import DenseNet

# -- DenseNet-BC (Huang et al. 2017, Table 1) ------------------------------------------

# Table 1 (and torchvision's densenet161): layers per block, growth rate k.
DENSENETS = {121: ((6, 12, 24, 16), 32), 169: ((6, 12, 32, 32), 32),
             201: ((6, 12, 48, 32), 32), 264: ((6, 12, 64, 48), 32),
             161: ((6, 12, 36, 24), 48)}


def _densenet_by_hand(blocks: tuple[int, ...], k: int, side: int = 224) -> tuple[int, int]:
    """(params, MACs at side x side) of DenseNet-BC: stem 7x7/2 conv to 2k and a 3x3/2 max
    pool; each layer BN, 1x1 conv to 4k, BN, 3x3 conv to k; transitions BN and a 1x1 conv
    halving the channels before a 2x2/2 average pool; BN, global pool and an fc layer to
    1000 at the end. Convs have no bias; a BN holds 2 parameters per channel."""
    hw = (side // 2) ** 2
    params, macs = 3 * 2 * k * 49, hw * 2 * k * 3 * 49 + 0
    params += 2 * 2 * k
    channels, hw = 2 * k, (side // 4) ** 2
    for i, layers in enumerate(blocks):
        for _ in range(layers):
            params += 2 * channels + channels * 4 * k + 2 * 4 * k + 4 * k * k * 9
            macs += hw * (channels * 4 * k + 4 * k * k * 9)
            channels += k
        if i < len(blocks) - 1:
            params += 2 * channels + channels * (channels // 2)
            macs += hw * channels * (channels // 2)
            channels //= 2
            hw //= 4
    params += 2 * channels + channels * 1000 + 1000
    return params, macs + channels * 1000


@pytest.mark.parametrize("depth", sorted(DENSENETS))
def test_densenet_params_and_macs_by_hand(depth: int) -> None:
    blocks, k = DENSENETS[depth]
    params, macs = _densenet_by_hand(blocks, k)
    totals = archstat.analyze(f"densenet{depth}").totals
    assert (totals["params"], totals["flops"]) == (params, macs)
    reference = get_model_info(f"densenet{depth}").reference
    if depth != 264:  # torchvision documents the others; densenet264 has only the hand count
        assert params == reference["params"]
        assert round(macs / 1e9, 3) == pytest.approx(reference["torchvision_gmacs"], abs=1e-9)


def _tiny_densenet_saved(memory_efficient: bool) -> int:
    return archstat.estimate_memory(
        DenseNet((2, 3), growth=4, num_classes=10, memory_efficient=memory_efficient),
        (3, 32, 32), train=True).estimates[0].saved_concat_bytes


def test_densenet_concatenation_copies_are_named_in_training_memory() -> None:
    """Every dense layer concatenates its block's maps anew and its BatchNorm saves the
    copy; so does the transition (or the final BN) with the block's output. By hand, for
    blocks of 2 and 3 layers, k = 4, stem 2k = 8 channels at 8x8, then 4x4 after the
    transition (8 + 2*4 = 16 channels compressed to 8): float32 bytes of each copy.
    Checkpointing (memory_efficient, Pleiss et al. 2017) keeps only the blocks' outputs."""
    block1 = [8, 12, 16]  # layer 1's, layer 2's inputs, the block's output (8x8)
    block2 = [8, 12, 16, 20]  # at 4x4
    naive = 4 * (sum(block1) * 64 + sum(block2) * 16)
    assert _tiny_densenet_saved(False) == naive
    assert _tiny_densenet_saved(True) == 4 * (block1[-1] * 64 + block2[-1] * 16)


# -- SE-ResNet (Hu et al. 2018) ----------------------------------------------------------

RESNET50_PARAMS = 25_557_032  # torchvision's documented resnet50
BLOCK_WIDTHS_50 = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3  # bottleneck outputs


def _se_params(c: int, r: int = 16) -> int:
    return c * (c // r) + c // r + (c // r) * c + c  # two 1x1 convs with biases


def test_se_resnet50_by_hand_against_timm_and_the_paper() -> None:
    """ResNet-50 plus one SE block per bottleneck (r = 16): 28,088,024 parameters, timm's
    legacy_seresnet50. The paper's Section 5: about 2.5M more than ResNet-50 (~10%), for a
    fraction of a percent more compute; under ``macs`` the only extra work is the SE fc
    layers' C^2/8 multiply-adds per block."""
    se = sum(_se_params(c) for c in BLOCK_WIDTHS_50)
    result = archstat.compare_models(["resnet50_v1", "se_resnet50"])
    base, ours = result.total_rows
    assert ours["params"] == RESNET50_PARAMS + se == get_model_info("se_resnet50").reference[
        "params"]
    assert abs(se / 1e6 - 2.5) < 0.1 and 1.09 < ours["params_ratio"] < 1.11
    assert ours["flops"] - base["flops"] == sum(2 * c * (c // 16) for c in BLOCK_WIDTHS_50)
    assert ours["depth"] == base["depth"] == 50  # the gating path does not deepen it


def test_se_resnet101_by_hand() -> None:
    widths = [256] * 3 + [512] * 4 + [1024] * 23 + [2048] * 3
    resnet101 = 44_549_160  # torchvision's documented resnet101
    assert archstat.analyze("se_resnet101").totals["params"] == resnet101 + sum(
        _se_params(c) for c in widths) == get_model_info("se_resnet101").reference["params"]


# -- EfficientNet (Tan and Le 2019) -------------------------------------------------------

# Table 1 (B0): (expansion, kernel, stride, output channels, layers) after the 3x3/2 stem
# conv to 32 channels; then a 1x1 conv to 1280, pool and fc.
B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
      (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def test_efficientnet_b0_by_hand_from_table_1() -> None:
    """Parameters and MACs of B0 from Table 1: MBConv = 1x1 expansion (if the ratio is
    not 1), depthwise kxk, SE squeezing to a quarter of the block's input channels (1x1
    convs with bias), 1x1 projection; BN (2 per channel) after every conv; 'same'
    padding."""
    params = 3 * 32 * 9 + 2 * 32
    side = 112
    macs = side * side * 32 * 3 * 9
    cin = 32
    for expand, k, stride, cout, layers in B0:
        for i in range(layers):
            hidden = cin * expand
            if expand != 1:
                params += cin * hidden + 2 * hidden
                macs += side * side * cin * hidden
            out_side = side // stride if i == 0 else side
            params += hidden * k * k + 2 * hidden
            macs += out_side * out_side * hidden * k * k
            squeeze = cin // 4
            params += hidden * squeeze + squeeze + squeeze * hidden + hidden
            macs += 2 * hidden * squeeze
            params += hidden * cout + 2 * cout
            macs += out_side * out_side * hidden * cout
            side, cin = out_side, cout
            stride = 1
    params += 320 * 1280 + 2 * 1280 + 1280 * 1000 + 1000
    macs += side * side * 320 * 1280 + 1280 * 1000
    totals = archstat.analyze("efficientnet_b0").totals
    assert (totals["params"], totals["flops"]) == (params, macs)
    assert params == get_model_info("efficientnet_b0").reference["params"]


@pytest.mark.parametrize("variant", [pytest.param(f"b{i}", marks=pytest.mark.slow)
                                     if i > 2 else f"b{i}" for i in range(8)])
def test_efficientnet_against_torchvision_documentation(variant: str) -> None:
    """torchvision's documented parameters, and its GFLOPS (multiply-adds, to 3 decimals)
    at its own crop size; the default input is the paper's resolution (B2: 260, where
    torchvision evaluates at 288)."""
    info = get_model_info(f"efficientnet_{variant}")
    ref = info.reference
    crop = ref["torchvision_crop"]
    totals = archstat.analyze(info.name, (3, crop, crop)).totals
    assert totals["params"] == ref["params"]
    assert round(totals["flops"] / 1e9, 3) == pytest.approx(ref["torchvision_gmacs"], abs=1e-9)
    paper = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456, "b6": 528,
             "b7": 600}
    assert info.input_shape == (3, paper[variant], paper[variant])
    # the zoo says where the two differ (only B2)
    assert (f"torchvision evaluates at {crop}" in info.source) == (crop != paper[variant])


# -- deformable convolution (Dai et al. 2017) ---------------------------------------------

def _deform_by_hand(n: int, c: int, o: int, k: int, out: tuple[int, int]) -> dict[str, int]:
    """MACs of the three steps: the offset conv (c -> 2k^2 channels, with bias), the
    bilinear sampling (4 multiply-adds for each of the c x k^2 samples per output
    position) and the kxk conv on the samples."""
    positions = n * out[0] * out[1]
    offset = positions * 2 * k * k * c * k * k
    sampling = 4 * positions * c * k * k
    conv = positions * o * c * k * k
    return {"offset": offset, "sampling": sampling, "conv": conv}


@pytest.mark.parametrize(("stride", "side", "out"), [(1, 9, (9, 9)), (2, 10, (5, 5))])
def test_deformable_conv_cost_under_every_convention_by_hand(stride: int, side: int,
                                                             out: tuple[int, int]) -> None:
    layer = DeformConv2d(8, 6, 3, stride=stride, padding=1)
    parts = _deform_by_hand(2, 8, 6, 3, out)
    macs = sum(parts.values())
    for convention, expected in (("macs", macs), ("flops", 2 * macs), ("lecture", macs),
                                 # fvcore: convs, and grid_sampler at 4 per output element
                                 ("fvcore", macs)):
        result = archstat.analyze(layer, (8, side, side), batch=2, convention=convention)
        assert result.totals["flops"] == expected, convention
    full = archstat.analyze(layer, (8, side, side), batch=2, convention="full").totals
    assert full["flops"] > 2 * macs  # plus the grid's arithmetic and the bias add
    params = archstat.analyze(layer, (8, side, side)).totals["params"]
    assert params == (8 * 18 * 9 + 18) + 6 * 8 * 9


def test_deformable_conv_backward_by_hand() -> None:
    """A training step of one deformable layer on the model's input (which needs no
    gradient), under macs: the conv on the samples costs its forward twice (the samples'
    gradient and the weight's); the sampling's backward computes only the grid's gradient,
    the 4 taps against both coordinates (8 multiply-adds a sample); the offset conv only
    its weight's gradient (its input needs none). The weight gradients are the two
    convs'; the rest is activation-gradient work."""
    parts = _deform_by_hand(2, 8, 6, 3, (9, 9))
    samples = parts["sampling"] // 4
    totals = archstat.analyze(DeformConv2d(8, 6, 3, padding=1), (8, 9, 9), batch=2,
                              train=True).totals
    assert totals["backward_weight_flops"] == parts["conv"] + parts["offset"]
    assert totals["backward_input_flops"] == parts["conv"] + 8 * samples
    assert totals["backward_flops"] == totals["backward_weight_flops"] + totals[
        "backward_input_flops"]


def test_deformable_resnet50_adds_offset_convs_to_conv5() -> None:
    """ResNet-50 with the three 3x3 convs of conv5 deformable: one offset conv (512 ->
    18 channels, 3x3, bias) each, and at 7x7 output the offset conv's and the sampling's
    multiply-adds on top of ResNet-50's."""
    result = archstat.analyze("deformable_resnet50").totals
    assert result["params"] == RESNET50_PARAMS + 3 * (512 * 18 * 9 + 18)
    extra = _deform_by_hand(1, 512, 512, 3, (7, 7))
    resnet50_macs = archstat.analyze("resnet50").totals["flops"]
    assert result["flops"] == resnet50_macs + 3 * (extra["offset"] + extra["sampling"])
    # the offset convs decide where to sample: 3 more weight layers, none deeper
    _, deformable = archstat.compare_models(["resnet50", "deformable_resnet50"]).total_rows
    assert (deformable["layers"], deformable["depth"]) == (54 + 3, 50)


def test_deformable_sampling_is_bilinear_and_zero_offsets_give_a_plain_conv() -> None:
    """With zero offsets the sampled grid is the regular one: the layer equals nn.Conv2d
    with the same weights. With an offset of half a pixel down, each sample is the mean of
    two rows (bilinear), which a hand-built input checks."""
    torch.manual_seed(0)
    layer = DeformConv2d(3, 4, 3, stride=2, padding=1)
    plain = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    plain.weight.data.copy_(layer.weight.data)
    x = torch.randn(2, 3, 11, 11)
    assert torch.allclose(layer(x), plain(x), atol=1e-5)
    from archstat.zoo.deformable import deformable_sample

    # a ramp: row r holds r; a dy of half a pixel on every tap (one offset group)
    ramp = torch.arange(11.0)[:, None].expand(11, 11).reshape(1, 1, 11, 11)
    offset = torch.zeros(1, 2 * 9, 11, 11)
    offset[:, 0::2] = 0.5
    sampled = deformable_sample(ramp, offset, (3, 3), (1, 1), (1, 1), (1, 1))
    # output row r's centre tap reads row r + 0.5: half row r, half row r + 1
    centre = sampled[0, 0, 1::3, 1::3]
    assert torch.allclose(centre[:10], torch.arange(10.0)[:, None] + 0.5)
    assert torch.allclose(centre[10], torch.tensor(5.0))  # row 11 is outside: zero


# -- the zoo lists them --------------------------------------------------------------------

def test_the_lecture_families_are_in_the_zoo() -> None:
    names = set(list_models())
    wanted = {"densenet121", "densenet161", "densenet169", "densenet201", "densenet264",
              "se_resnet50", "se_resnet101", "deformable_resnet50",
              *(f"efficientnet_b{i}" for i in range(8))}
    assert wanted <= names
    assert math.prod(get_model_info("efficientnet_b7").input_shape[1:]) == 600 * 600
