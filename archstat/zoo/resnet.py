"""ResNet (He et al. 2015) in the torchvision layout.

torchvision's bottleneck downsamples on its 3x3 conv ("ResNet v1.5"); the paper puts the
stride on the first 1x1. ``resnet50_v1`` is the paper's placement. Both have the same
parameters; v1.5 costs more multiply-adds because its 1x1 runs at the higher resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from archstat.zoo.registry import (
    ImageNetAccuracy,
    imagenet_error,
    register_model,
    torchvision_metrics,
)

RESNET_PAPER = "He et al. 2015, arXiv:1512.03385, Table 1"

#: Table 1's rows over this layout's module names: (layer name, modules); "head" is the
#: paper's unnamed last row (average pool, the model's own flatten "", the fc layer).
TABLE1_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conv1", ("conv1", "bn1", "relu")),
    ("conv2_x", ("maxpool", "layer1")),
    ("conv3_x", ("layer2",)),
    ("conv4_x", ("layer3",)),
    ("conv5_x", ("layer4",)),
    ("head", ("avgpool", "", "fc")),
)

# Table 1: blocks per stage conv2_x..conv5_x (stages layer1..layer4 below).
BLOCKS_PER_STAGE: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck blocks output 4x these

# Table 1, "FLOPs" row; the paper counts multiply-adds.
PAPER_FLOPS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        # He et al. 2015 stride the first 1x1 (v1); torchvision strides the 3x3 (v1.5),
        # which is slightly more accurate.
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, planes, stride_1x1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride_3x3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.stride_in_1x1 = stride_in_1x1
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, STAGE_WIDTHS[0], layers[0])
        self.layer2 = self._make_layer(block, STAGE_WIDTHS[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, STAGE_WIDTHS[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, STAGE_WIDTHS[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(STAGE_WIDTHS[3] * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # Projection shortcut (the paper's option B) wherever the shape changes.
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        # Only bottlenecks have a 1x1 to put the stride on.
        v1 = {"stride_in_1x1": True} if self.stride_in_1x1 else {}
        layers = [block(self.inplanes, planes, stride, downsample, **v1)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        # N x 64 x 112 x 112
        x = self.maxpool(x)
        # N x 64 x 56 x 56
        x = self.layer1(x)
        # N x 64 (basic) or 256 (bottleneck) x 56 x 56
        x = self.layer2(x)
        # N x 128 or 512 x 28 x 28
        x = self.layer3(x)
        # N x 256 or 1024 x 14 x 14
        x = self.layer4(x)
        # N x 512 or 2048 x 7 x 7
        x = self.avgpool(x)
        # N x 512 or 2048 x 1 x 1
        x = torch.flatten(x, 1)
        # N x 512 or 2048
        x = self.fc(x)
        # N x num_classes
        return x


def _build(block: type[BasicBlock | Bottleneck], depth: int, **kwargs: Any) -> ResNet:
    return ResNet(block, BLOCKS_PER_STAGE[depth], **kwargs)


Builder = Callable[..., nn.Module]


def _register(depth: int, params: int, imagenet: ImageNetAccuracy, source: str = RESNET_PAPER,
              ) -> Callable[[Builder], Builder]:
    return register_model(
        family="resnet",
        input_shape=(3, 224, 224),
        source=source,
        reference={"params": params, "paper_flops": PAPER_FLOPS[depth], "imagenet": imagenet},
    )


def _torchvision(depth: int, acc1: float, acc5: float) -> ImageNetAccuracy:
    return torchvision_metrics(f"ResNet{depth}_Weights.IMAGENET1K_V1", acc1, acc5)


# Parameter totals: torchvision documentation. ImageNet accuracy: torchvision resnet.py,
# each ResNet*_Weights.IMAGENET1K_V1 "_metrics": {"ImageNet-1K": {"acc@1": ..., "acc@5": ...}}
# (crop_size=224), weights for this (v1.5) layout. The paper prints no single-crop figure
# (Table 3 is 10-crop testing).
@_register(18, 11_689_512, _torchvision(18, 69.758, 89.078))
def resnet18(**config: Any) -> ResNet:
    return _build(BasicBlock, 18, **config)


@_register(34, 21_797_672, _torchvision(34, 73.314, 91.420))
def resnet34(**config: Any) -> ResNet:
    return _build(BasicBlock, 34, **config)


@_register(50, 25_557_032, _torchvision(50, 76.130, 92.862))
def resnet50(**config: Any) -> ResNet:
    return _build(Bottleneck, 50, **config)


@_register(101, 44_549_160, _torchvision(101, 77.374, 93.546))
def resnet101(**config: Any) -> ResNet:
    return _build(Bottleneck, 101, **config)


@_register(152, 60_192_808, _torchvision(152, 78.312, 94.046))
def resnet152(**config: Any) -> ResNet:
    return _build(Bottleneck, 152, **config)


# The paper's own placement of the stride; same parameters as resnet50. Its accuracy is that
# of the authors' released ResNet-50 (this layout), single crop: the README of
# github.com/KaimingHe/deep-residual-networks, "1-crop validation error on ImageNet (center
# 224x224 crop from resized image with shorter side=256)": ResNet-50 | 24.7% | 7.8%; Hu et
# al. 2018 (arXiv:1709.01507) quote it in Table 2's "original" column.
@_register(50, 25_557_032,
           imagenet_error(24.7, 7.8, source="He et al.'s released ResNet-50 "
                          "(github.com/KaimingHe/deep-residual-networks, 1-crop table; "
                          "Hu et al. 2018, Table 2, 'original')",
                          evaluation="single centre crop 224x224 after resizing the shorter "
                                     "side to 256"),
           RESNET_PAPER + " (stride on the first 1x1 of a bottleneck)")
def resnet50_v1(**config: Any) -> ResNet:
    return _build(Bottleneck, 50, stride_in_1x1=True, **config)
