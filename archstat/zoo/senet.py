"""SE-ResNet (Hu et al. 2018): ResNet bottlenecks with a squeeze-and-excitation block.

An SE block squeezes each channel to one number (global average pool), passes the
vector through an fc layer to C/r channels, ReLU, an fc layer back to C channels and a
sigmoid, and scales each channel of its input by the result (r = 16). In SE-ResNet it
acts on the residual branch, after the last BatchNorm and before the addition (Figure 3).

This is the authors' released layout (Caffe, reproduced by timm's ``legacy_seresnet50``
and ``legacy_seresnet101``, the numeric references): the bottleneck strides its first
1x1 conv (as ``resnet50_v1``), the SE block's fc layers are 1x1 convolutions with
biases, and the stem's max pool rounds up (``ceil_mode``) instead of padding, which gives
the same 56x56 map. Module names follow ``archstat.zoo.resnet`` (conv1 ... layer4, fc).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archstat.zoo.registry import imagenet_error, register_model
from archstat.zoo.resnet import BLOCKS_PER_STAGE, PAPER_FLOPS, Bottleneck, ResNet

SENET_PAPER = "Hu et al. 2018, arXiv:1709.01507, Table 1 and Figure 3"
REDUCTION = 16

#: Table 2's GFLOPs (multiply-adds, 224x224) of the SE variants. Section 5: SE-ResNet-50
#: costs 0.26% more than ResNet-50's 3.86 GFLOPs and adds ~2.5M parameters to its ~25M.
PAPER_GFLOPS = {50: 3.87, 101: 7.60}
PAPER_EXTRA_PARAMS_M = {50: 2.5}
#: Table 2, "Single-crop error rates (%) on the ImageNet validation set", SENet column:
#:   SE-ResNet-50 | top-1 err. 23.29(1.51) | top-5 err. 6.62(0.86) | GFLOPs 3.87
#:   SE-ResNet-101 | 22.38(0.79) | 6.07(0.45) | 7.60
#: Section 5.1: "we apply centre-cropping so that 224 x 224 pixels are cropped from each
#: image, after its shorter edge is first resized to 256". The authors' released models
#: (this layout) score 22.37 / 6.36 and 21.75 / 5.72 in their README, not the paper's.
PAPER_ERRORS = {50: (23.29, 6.62), 101: (22.38, 6.07)}


class SEBlock(nn.Module):
    """Squeeze (global average pool), excite (1x1 conv to C/r, ReLU, 1x1 conv to C,
    sigmoid), scale the input's channels."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x)))))


class SEBottleneck(Bottleneck):
    """A ResNet bottleneck whose residual branch ends in an SE block."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, stride_in_1x1: bool = True) -> None:
        super().__init__(inplanes, planes, stride, downsample, stride_in_1x1)
        self.se = SEBlock(planes * self.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        # the shortcut after the branch, then SE and the addition, in the authors' order
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se(out) + identity)


class SEResNet(ResNet):
    def __init__(self, layers: tuple[int, int, int, int], num_classes: int = 1000) -> None:
        super().__init__(SEBottleneck, layers, num_classes=num_classes, stride_in_1x1=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


def _register(depth: int, params: int) -> Any:
    return register_model(
        family="senet", input_shape=(3, 224, 224), source=SENET_PAPER,
        reference={"params": params, "paper_gflops": PAPER_GFLOPS[depth],
                   **({"paper_extra_params_m": PAPER_EXTRA_PARAMS_M[depth]}
                   if depth in PAPER_EXTRA_PARAMS_M else {}),
                   "resnet_paper_flops": PAPER_FLOPS[depth],
                   "imagenet": imagenet_error(
                       *PAPER_ERRORS[depth],
                       source=f"Hu et al. 2018, arXiv:1709.01507, Table 2 (SE-ResNet-{depth})",
                       evaluation="single centre crop 224x224 after resizing the shorter side "
                                  "to 256")})


# Parameter totals: timm's legacy_seresnet50 / legacy_seresnet101 (the authors' weights).
@_register(50, 28_088_024)
def se_resnet50(**config: Any) -> SEResNet:
    return SEResNet(BLOCKS_PER_STAGE[50], **config)


@_register(101, 49_326_872)
def se_resnet101(**config: Any) -> SEResNet:
    return SEResNet(BLOCKS_PER_STAGE[101], **config)
