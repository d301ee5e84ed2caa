"""EfficientNet B0-B7 (Tan and Le 2019) in the torchvision layout.

B0 is Table 1: a 3x3/2 stem conv to 32 channels, seven stages of MBConv blocks, a 1x1
head conv to 1280, global average pool and fc. An MBConv block is a 1x1 expansion conv
(ratio 6; none for ratio 1), a depthwise kxk conv, squeeze-and-excitation (squeezing to a
quarter of the block's *input* channels), a 1x1 projection conv, and a residual addition
when the block keeps its shape; SiLU throughout. B1-B7 scale B0 by compound scaling:
channels by the width multiplier rounded to a multiple of 8, block repeats by the depth
multiplier rounded up, and the input resolution.

Where the model departs from the paper:

* Each entry's default input is the paper's resolution. torchvision evaluates its weights
  at its own crop sizes, which differ for B2 (288, the paper says 260); its documented
  GFLOPS are at those crops (``reference["torchvision_crop"]``).
* The paper's stochastic depth (drop connect) and dropout do nothing at inference and
  cost nothing; they are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from archstat.zoo.registry import ImageNetAccuracy, register_model

EFFICIENTNET_PAPER = "Tan and Le 2019, arXiv:1905.11946, Table 1 (B0) and Section 4"

#: Table 1 (B0): (expand ratio, kernel, stride, input channels, output channels, layers)
#: per stage 1..7.
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
SE_RATIO = 0.25
#: The compound-scaling constants of Section 3.3 (phi = 1 gives about 2x the FLOPs).
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15

#: (width multiplier, depth multiplier, paper resolution, torchvision crop) per variant,
#: as in the authors' reference implementation and torchvision.
VARIANTS: dict[str, tuple[float, float, int, int]] = {
    "b0": (1.0, 1.0, 224, 224),
    "b1": (1.0, 1.1, 240, 240),
    "b2": (1.1, 1.2, 260, 288),
    "b3": (1.2, 1.4, 300, 300),
    "b4": (1.4, 1.8, 380, 380),
    "b5": (1.6, 2.2, 456, 456),
    "b6": (1.8, 2.6, 528, 528),
    "b7": (2.0, 3.1, 600, 600),
}

#: torchvision's documented figures: parameters and GFLOPS (multiply-adds) at its crop.
TORCHVISION = {
    "b0": (5_288_548, 0.386), "b1": (7_794_184, 0.687), "b2": (9_109_994, 1.088),
    "b3": (12_233_232, 1.827), "b4": (19_341_616, 4.394), "b5": (30_389_784, 10.266),
    "b6": (43_040_704, 19.068), "b7": (66_347_960, 37.746),
}

#: Table 2, "EfficientNet Performance Results on ImageNet" (Top-1 Acc. | Top-5 Acc.):
#:   B0 77.1% 93.3% | B1 79.1% 94.4% | B2 80.1% 94.9% | B3 81.6% 95.7%
#:   B4 82.9% 96.4% | B5 83.6% 96.7% | B6 84.0% 96.8% | B7 84.3% 97.0%
#: Figure 1: "All numbers are for single-crop, single-model." These are the revised
#: paper's figures (abstract: B7 84.3%); its first arXiv version printed others (B0 76.3%).
#: torchvision's ported weights score differently and evaluate B2 at 288, not 260.
PAPER_ACCURACY = {
    "b0": (77.1, 93.3), "b1": (79.1, 94.4), "b2": (80.1, 94.9), "b3": (81.6, 95.7),
    "b4": (82.9, 96.4), "b5": (83.6, 96.7), "b6": (84.0, 96.8), "b7": (84.3, 97.0),
}

#: Table 2's "#Params" and "#FLOPS" (multiply-adds), as printed: millions, billions.
PAPER_COST = {
    "b0": (5.3, 0.39), "b1": (7.8, 0.70), "b2": (9.2, 1.0), "b3": (12, 1.8),
    "b4": (19, 4.2), "b5": (30, 9.9), "b6": (43, 19), "b7": (66, 37),
}


def round_channels(channels: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never going down by more than 10%
    (the reference implementation's ``round_filters``)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def round_repeats(layers: int, depth: float) -> int:
    return int(math.ceil(layers * depth))


class ConvBNAct(nn.Sequential):
    """Conv (no bias, 'same' padding), BatchNorm, then SiLU unless ``act`` is False."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3)]
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Global average pool, 1x1 conv to ``squeeze`` channels, SiLU, 1x1 conv back,
    sigmoid, scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion, depthwise kxk, SE, 1x1 projection."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = round_channels(cin * expand)
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, kernel, stride, groups=hidden),
                   SqueezeExcitation(hidden, max(1, int(cin * SE_RATIO))),
                   ConvBNAct(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out += x  # in place, as torchvision adds the residual
        return out


class EfficientNet(nn.Module):
    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        stem = round_channels(STAGES[0][3] * width)
        layers: list[nn.Module] = [ConvBNAct(3, stem, 3, stride=2)]
        cin = stem
        for expand, kernel, stride, _, cout, repeats in STAGES:
            cout = round_channels(cout * width)
            blocks = []
            for i in range(round_repeats(repeats, depth)):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        head = 4 * cin  # 1280 for B0
        layers.append(ConvBNAct(cin, head, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


Builder = Callable[..., nn.Module]


def _variant(name: str) -> Callable[[Builder], Builder]:
    width, depth, resolution, crop = VARIANTS[name]
    params, gmacs = TORCHVISION[name]
    source = EFFICIENTNET_PAPER
    if crop != resolution:  # B2: the paper's 260, torchvision's 288
        source += f"; input {resolution} as in the paper, torchvision evaluates at {crop}"
    imagenet = ImageNetAccuracy(
        *PAPER_ACCURACY[name], source="Tan and Le 2019, arXiv:1905.11946, Table 2 "
                                      f"(EfficientNet-{name.upper()})",
        evaluation="single crop, single model (Figure 1 caption)")
    return register_model(
        family="efficientnet", input_shape=(3, resolution, resolution), source=source,
        reference={"params": params, "torchvision_gmacs": gmacs, "torchvision_crop": crop,
                   "width": width, "depth": depth, "resolution": resolution,
                   "imagenet": imagenet})


def _build(name: str, **config: Any) -> EfficientNet:
    width, depth, _, _ = VARIANTS[name]
    return EfficientNet(width, depth, **config)


@_variant("b0")
def efficientnet_b0(**config: Any) -> EfficientNet:
    return _build("b0", **config)


@_variant("b1")
def efficientnet_b1(**config: Any) -> EfficientNet:
    return _build("b1", **config)


@_variant("b2")
def efficientnet_b2(**config: Any) -> EfficientNet:
    return _build("b2", **config)


@_variant("b3")
def efficientnet_b3(**config: Any) -> EfficientNet:
    return _build("b3", **config)


@_variant("b4")
def efficientnet_b4(**config: Any) -> EfficientNet:
    return _build("b4", **config)


@_variant("b5")
def efficientnet_b5(**config: Any) -> EfficientNet:
    return _build("b5", **config)


@_variant("b6")
def efficientnet_b6(**config: Any) -> EfficientNet:
    return _build("b6", **config)


@_variant("b7")
def efficientnet_b7(**config: Any) -> EfficientNet:
    return _build("b7", **config)
