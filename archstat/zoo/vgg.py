"""VGG (Simonyan and Zisserman 2014) in the torchvision layout.

The configurations are the paper's Table 1 columns A, B, D and E. The ``_bn`` variants add
BatchNorm after every conv; they postdate the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from archstat.zoo.registry import ImageNetAccuracy, register_model, torchvision_metrics

VGG_PAPER = "Simonyan and Zisserman 2014, arXiv:1409.1556, Table 1 (config {}) and Table 2"

# Table 1: conv3x3 output channels, "M" for a 2x2/2 max pool.
# fmt: off
cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
    ],
}
# fmt: on

# Table 2, "Number of parameters (in millions)".
PAPER_PARAMS_M = {"A": 133, "B": 133, "D": 138, "E": 144}


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        # Adaptive so inputs other than 224 still reach the 7x7 the classifier expects.
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.features(x)
        # N x 512 x 7 x 7
        x = self.avgpool(x)
        # N x 512 x 7 x 7
        x = torch.flatten(x, 1)
        # N x 25088
        x = self.classifier(x)
        # N x num_classes
        return x


def make_layers(cfg: list[int | str], batch_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int)
            layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            in_channels = v
    return nn.Sequential(*layers)


def _build(config: str, batch_norm: bool, **kwargs: Any) -> VGG:
    return VGG(make_layers(cfgs[config], batch_norm=batch_norm), **kwargs)


Builder = Callable[..., nn.Module]


def _register(config: str, params: int, imagenet: ImageNetAccuracy,
              ) -> Callable[[Builder], Builder]:
    return register_model(
        family="vgg",
        input_shape=(3, 224, 224),
        source=VGG_PAPER.format(config),
        reference={"params": params, "config": config, "paper_params_m": PAPER_PARAMS_M[config],
                   "imagenet": imagenet},
    )


def _torchvision(weights: str, acc1: float, acc5: float) -> ImageNetAccuracy:
    return torchvision_metrics(f"{weights}_Weights.IMAGENET1K_V1", acc1, acc5)


# Parameter totals: torchvision documentation. ImageNet accuracy: torchvision vgg.py, each
# VGG*_Weights.IMAGENET1K_V1 "_metrics": {"ImageNet-1K": {"acc@1": ..., "acc@5": ...}}
# (crop_size=224). The paper has no 224 single-crop figure: its Table 3 tests at a single
# scale Q = 256 or 384 (the image's smallest side), Table 4 averages several scales.
@_register("A", 132_863_336, _torchvision("VGG11", 69.020, 88.628))
def vgg11(**config: Any) -> VGG:
    return _build("A", False, **config)


@_register("A", 132_868_840, _torchvision("VGG11_BN", 70.370, 89.810))
def vgg11_bn(**config: Any) -> VGG:
    return _build("A", True, **config)


@_register("B", 133_047_848, _torchvision("VGG13", 69.928, 89.246))
def vgg13(**config: Any) -> VGG:
    return _build("B", False, **config)


@_register("B", 133_053_736, _torchvision("VGG13_BN", 71.586, 90.374))
def vgg13_bn(**config: Any) -> VGG:
    return _build("B", True, **config)


@_register("D", 138_357_544, _torchvision("VGG16", 71.592, 90.382))
def vgg16(**config: Any) -> VGG:
    return _build("D", False, **config)


@_register("D", 138_365_992, _torchvision("VGG16_BN", 73.360, 91.516))
def vgg16_bn(**config: Any) -> VGG:
    return _build("D", True, **config)


@_register("E", 143_667_240, _torchvision("VGG19", 72.376, 90.876))
def vgg19(**config: Any) -> VGG:
    return _build("E", False, **config)


@_register("E", 143_678_248, _torchvision("VGG19_BN", 74.218, 91.842))
def vgg19_bn(**config: Any) -> VGG:
    return _build("E", True, **config)
