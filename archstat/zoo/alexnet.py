"""AlexNet and its close relatives: the torchvision single-tower layout, the 2012 original
with its two-GPU grouping and LRN, and ZFNet.

Spatial sizes in the shape comments are for each model's default input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archstat.zoo.registry import imagenet_error, register_model, torchvision_metrics

ALEXNET_OWT = "Krizhevsky 2014, arXiv:1404.5997 (single-tower layout, as torchvision)"
ALEXNET_2012 = "Krizhevsky, Sutskever, Hinton 2012, NeurIPS, Section 3 and Figure 2"
ZFNET = "Zeiler and Fergus 2013, arXiv:1311.2901, Figure 3"

# Filters per conv layer, conv1..conv5.
cfgs: dict[str, tuple[int, ...]] = {
    "owt": (64, 192, 384, 256, 256),
    "2012": (96, 256, 384, 384, 256),
    "zfnet": (96, 256, 384, 384, 256),
}


def _lrn() -> nn.LocalResponseNorm:
    # Krizhevsky 2012 Section 3.3: n=5, alpha=1e-4, beta=0.75, k=2. torch (like Caffe's
    # bvlc_alexnet) divides alpha by n, the paper's formula does not; we keep Caffe's values.
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """fc6-relu-dropout-fc7-relu-dropout-fc8, as in the 2012 paper and Caffe."""
    return nn.Sequential(
        nn.Linear(in_features, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, num_classes),
    )


class AlexNet(nn.Module):
    """torchvision's AlexNet: the single-tower layout of Krizhevsky 2014."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        # Known deviation: the 2014 paper's footnote gives conv4 384 filters; torchvision
        # (after Krizhevsky's cuda-convnet2 layers-imagenet-1gpu.cfg) uses 256.
        # See pytorch/vision PRs 463 and 704.
        c1, c2, c3, c4, c5 = cfgs["owt"]
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        # Known deviation kept from torchvision: dropout sits before fc6 and fc7 rather
        # than after their ReLUs (pytorch/vision issue 549; harmless at inference).
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c5 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 227 x 227
        x = self.features(x)
        # N x 256 x 6 x 6
        x = self.avgpool(x)
        # N x 256 x 6 x 6
        x = torch.flatten(x, 1)
        # N x 9216
        x = self.classifier(x)
        # N x num_classes
        return x


class AlexNet2012(nn.Module):
    """The original AlexNet: two-group convolutions where the paper's two GPUs do not talk
    (conv2, conv4, conv5), LRN after the ReLUs of conv1 and conv2, overlapping max pools."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = cfgs["2012"]
        # The paper says 224x224, but 11x11/4 without padding only gives its 55x55 maps
        # on 227x227 (as Caffe's bvlc_alexnet uses).
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4),
            nn.ReLU(inplace=True),
            _lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=2),
            nn.ReLU(inplace=True),
            _lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            # conv3 connects to all kernel maps of conv2, across both GPUs.
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.classifier = _classifier(c5 * 6 * 6, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 227 x 227
        x = self.features(x)
        # N x 256 x 6 x 6
        x = torch.flatten(x, 1)
        # N x 9216
        x = self.classifier(x)
        # N x num_classes
        return x


class ZFNet(nn.Module):
    """Zeiler and Fergus 2013, Figure 3: AlexNet with a 7x7/2 first layer, a strided conv2
    and dense (ungrouped) convolutions."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = cfgs["zfnet"]
        # The paper gives sizes, not paddings. conv1 pad 1 and ceil-mode pools (Caffe's
        # rounding) reproduce Figure 3's 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 13 -> 6.
        # The paper's "contrast normalization across feature maps" after pools 1 and 2 is
        # taken to be AlexNet's LRN; the paper gives no hyperparameters for it.
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=7, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            _lrn(),
            nn.Conv2d(c1, c2, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            _lrn(),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        )
        self.classifier = _classifier(c5 * 6 * 6, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.features(x)
        # N x 256 x 6 x 6
        x = torch.flatten(x, 1)
        # N x 9216
        x = self.classifier(x)
        # N x num_classes
        return x


@register_model(
    family="alexnet",
    input_shape=(3, 227, 227),  # as in the EECS 498-007 Lecture 8 table
    source=ALEXNET_OWT,
    reference={"params": 61_100_840,
               # torchvision alexnet.py, AlexNet_Weights.IMAGENET1K_V1 "_metrics":
               # {"ImageNet-1K": {"acc@1": 56.522, "acc@5": 79.066}}, crop_size=224
               "imagenet": torchvision_metrics(
                   "AlexNet_Weights.IMAGENET1K_V1", 56.522, 79.066,
                   note="evaluated at 224x224; the zoo input is the lecture's 227x227")},
)
def alexnet(**config: Any) -> AlexNet:
    return AlexNet(**config)


@register_model(
    family="alexnet",
    input_shape=(3, 227, 227),
    source=ALEXNET_2012,
    # "60 million parameters" in the paper's abstract; 60,965,224 is Caffe's bvlc_alexnet.
    reference={"params": 60_965_224, "paper_params_m": 60,
               # Table 2, "Comparison of error rates on ILSVRC-2012 validation and test sets":
               #   Model | Top-1 (val) | Top-5 (val) | Top-5 (test)
               #   1 CNN | 40.7%       | 18.2%       | --
               # Section 4.1: "At test time, the network makes a prediction by extracting
               # five 224 x 224 patches ... as well as their horizontal reflections (hence
               # ten patches in all), and averaging the predictions".
               "imagenet": imagenet_error(
                   40.7, 18.2,
                   source="Krizhevsky, Sutskever, Hinton 2012, NeurIPS, Table 2 (1 CNN)",
                   evaluation="average over ten 224x224 patches (corners, centre, and their "
                              "reflections; Section 4.1)", crops=10)},
)
def alexnet2012(**config: Any) -> AlexNet2012:
    return AlexNet2012(**config)


# Table 2, "ImageNet 2012 classification error rates" (Val Top-1 | Val Top-5 | Test Top-5):
#   1 convnet as per Fig. 3 | 38.4 | 16.5 | --
# The paper's test-time crops are not stated; Section 3 trains on "10 different sub-crops
# of size 224x224 (corners + center with(out) horizontal flips)".
@register_model(family="alexnet", input_shape=(3, 224, 224), source=ZFNET,
                reference={"imagenet": imagenet_error(
                    38.4, 16.5, source="Zeiler and Fergus 2013, arXiv:1311.2901, Table 2 "
                                       "(1 convnet as per Fig. 3)",
                    evaluation="224x224 crops; single- or multi-crop testing not stated",
                    crops=None)})
def zfnet(**config: Any) -> ZFNet:
    return ZFNet(**config)
