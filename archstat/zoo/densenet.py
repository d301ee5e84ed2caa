"""DenseNet-BC (Huang et al. 2017) in the torchvision layout.

Each dense layer reads the concatenation of every earlier feature map of its block: BN,
ReLU, a 1x1 conv to ``bn_size * k`` channels (the "B" of DenseNet-BC), BN, ReLU, a 3x3
conv to the growth rate ``k``. Transitions (BN, ReLU, 1x1 conv, 2x2 average pool) halve
the channels (compression 0.5, the "C"). The stem is a 7x7/2 conv to 2k channels and a
3x3/2 max pool; the head a global average pool and one fc layer.

Where the model departs from Table 1:

* Table 1 does not list the BatchNorm and ReLU after the last dense block; the authors'
  Torch code and torchvision apply them before the global pool, and so does this model.
* Table 1 writes the pool as "7x7 global average pool"; it is global, whatever the input.
* Each layer concatenates all earlier maps anew (the paper's formulation, torchvision's
  default): activation memory grows quadratically with the layers of a block. With
  ``memory_efficient=True`` the concatenation and 1x1 conv are recomputed in the backward
  pass (checkpointing, Pleiss et al. 2017, arXiv:1707.06990), as torchvision does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import nn

from archstat.zoo.registry import (
    ImageNetAccuracy,
    imagenet_error,
    register_model,
    torchvision_metrics,
)

DENSENET_PAPER = "Huang et al. 2017, arXiv:1608.06993, Table 1 (DenseNet-BC)"

#: Table 1: layers per dense block (growth rate 32); densenet161 is torchvision's (k = 48).
BLOCKS: dict[int, tuple[int, int, int, int]] = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
    161: (6, 12, 36, 24),
}
GROWTH = {121: 32, 169: 32, 201: 32, 264: 32, 161: 48}
BN_SIZE = 4  # the 1x1 bottleneck outputs 4k channels
COMPRESSION = 0.5


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv to ``bn_size * growth`` channels, then BN-ReLU-3x3 conv to
    ``growth``, on the concatenation of the block's earlier maps."""

    def __init__(self, in_channels: int, growth: int, bn_size: int = BN_SIZE,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, kernel_size=3, padding=1, bias=False)
        self.memory_efficient = memory_efficient

    def bottleneck(self, *features: torch.Tensor) -> torch.Tensor:
        concatenated = torch.cat(features, 1)  # held until conv1 returns, as in torchvision
        return self.conv1(self.relu1(self.norm1(concatenated)))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and any(f.requires_grad for f in features):
            out = cp.checkpoint(self.bottleneck, *features, use_reentrant=False)
        else:
            out = self.bottleneck(*features)
        return self.conv2(self.relu2(self.norm2(out)))


class DenseBlock(nn.ModuleDict):
    """``layers`` dense layers; the block outputs the concatenation of its input and
    every layer's ``growth`` new channels."""

    def __init__(self, layers: int, in_channels: int, growth: int,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(in_channels + i * growth, growth,
                                       memory_efficient=memory_efficient))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (compression), then a 2x2/2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], growth: int = 32, num_classes: int = 1000,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        channels = 2 * growth
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, channels, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(channels)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        for i, layers in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}",
                                     DenseBlock(layers, channels, growth, memory_efficient))
            channels += layers * growth
            if i != len(blocks) - 1:
                out = int(channels * COMPRESSION)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out))
                channels = out
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224 -> N x 2k x 56 x 56 after the stem; blocks at 56, 28, 14, 7
        x = F.relu(self.features(x), inplace=True)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


Builder = Callable[..., nn.Module]


def _register(depth: int, params: int, gmacs: float, imagenet: ImageNetAccuracy,
              source: str = DENSENET_PAPER) -> Callable[[Builder], Builder]:
    reference: dict[str, Any] = {"blocks": BLOCKS[depth], "growth": GROWTH[depth],
                                 "imagenet": imagenet}
    if params:  # torchvision's documented figures (num_params, GFLOPS = GMACs at 224)
        reference.update(params=params, torchvision_gmacs=gmacs)
    return register_model(family="densenet", input_shape=(3, 224, 224), source=source,
                          reference=reference)


def _build(depth: int, **config: Any) -> DenseNet:
    return DenseNet(BLOCKS[depth], GROWTH[depth], **config)


# Table 3, "The top-1 and top-5 error rates on the ImageNet validation set, with
# single-crop / 10-crop testing":
#   Model        | top-1         | top-5
#   DenseNet-121 | 25.02 / 23.61 | 7.71 / 6.66
#   DenseNet-169 | 23.80 / 22.08 | 6.85 / 5.92
#   DenseNet-201 | 22.58 / 21.46 | 6.34 / 5.54
#   DenseNet-264 | 22.15 / 20.80 | 6.12 / 5.29
# The single-crop figures are used. The table does not print the crop size (Section 4.4
# adopts fb.resnet.torch's setup; the authors' README gives "224x224 1-crop test errors" of
# their released models, slightly different figures).
def _paper(depth: int, top1_error: float, top5_error: float) -> ImageNetAccuracy:
    return imagenet_error(top1_error, top5_error,
                          source=f"Huang et al. 2017, arXiv:1608.06993, Table 3 (DenseNet-{depth}, "
                                 "single-crop)",
                          evaluation="single crop (crop size not printed)")


@_register(121, 7_978_856, 2.834, _paper(121, 25.02, 7.71))
def densenet121(**config: Any) -> DenseNet:
    return _build(121, **config)


@_register(169, 14_149_480, 3.36, _paper(169, 23.80, 6.85))
def densenet169(**config: Any) -> DenseNet:
    return _build(169, **config)


@_register(201, 20_013_928, 4.291, _paper(201, 22.58, 6.34))
def densenet201(**config: Any) -> DenseNet:
    return _build(201, **config)


# Not in torchvision: its parameter total is checked by a hand count in the tests.
@_register(264, 0, 0.0, _paper(264, 22.15, 6.12))
def densenet264(**config: Any) -> DenseNet:
    return _build(264, **config)


# Not in the paper's Table 3. torchvision densenet.py, DenseNet161_Weights.IMAGENET1K_V1
# "_metrics": {"ImageNet-1K": {"acc@1": 77.138, "acc@5": 93.560}} (crop_size=224).
@_register(161, 28_681_000, 7.728,
           torchvision_metrics("DenseNet161_Weights.IMAGENET1K_V1", 77.138, 93.560),
           "torchvision densenet161 (DenseNet-BC, k = 48, stem 96; " + DENSENET_PAPER + ")")
def densenet161(**config: Any) -> DenseNet:
    return _build(161, **config)
