"""GoogLeNet (Szegedy et al. 2014): the paper's network, and torchvision's BatchNorm variant.

``googlenet`` follows Table 1 and Figure 3: biased convolutions each followed by ReLU, LRN
in the stem, 5x5 convolutions in the inception modules, and the two auxiliary classifiers
(always built, run only with ``aux=True``). ``googlenet_tv`` is torchvision's ``googlenet``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archstat.zoo.registry import imagenet_error, register_model, torchvision_metrics

GOOGLENET_PAPER = "Szegedy et al. 2014, arXiv:1409.4842, Table 1 and Figure 3"

# Table 1: inception module -> (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
# A module outputs #1x1 + #3x3 + #5x5 + pool proj channels.
TABLE1: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
    ]


class _Branches(nn.Module):
    """Runs ``branch1..branch4`` on the same input and concatenates them along channels."""

    branch1: nn.Module
    branch2: nn.Module
    branch3: nn.Module
    branch4: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)


class Inception(_Branches):
    """Figure 2(b): the inception module with dimension reductions."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(*_conv_relu(in_channels, ch1x1, 1))
        self.branch2 = nn.Sequential(
            *_conv_relu(in_channels, ch3x3red, 1), *_conv_relu(ch3x3red, ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            *_conv_relu(in_channels, ch5x5red, 1), *_conv_relu(ch5x5red, ch5x5, 5, padding=2)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            *_conv_relu(in_channels, pool_proj, 1),
        )


class InceptionAux(nn.Module):
    """The auxiliary classifier of Section 5, on the outputs of 4a and 4d."""

    def __init__(self, in_channels: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.conv = nn.Sequential(*_conv_relu(in_channels, 128, 1))
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(p=0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 512 x 14 x 14 (aux1), N x 528 x 14 x 14 (aux2)
        x = self.avgpool(x)
        # N x 512 x 4 x 4 (aux1), N x 528 x 4 x 4 (aux2)
        x = self.conv(x)
        # N x 128 x 4 x 4
        x = torch.flatten(x, 1)
        # N x 2048
        x = self.relu(self.fc1(x))
        # N x 1024
        x = self.dropout(x)
        x = self.fc2(x)
        # N x num_classes
        return x


class _GoogLeNetBody(nn.Module):
    """Table 1 from inception (3a) to the classifier, shared by both variants; each
    subclass defines its stem and whether its auxiliary heads run."""

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _aux_enabled(self) -> bool:
        raise NotImplementedError

    def _add_inceptions(self, block: type[nn.Module], maxpool4: int) -> None:
        """Table 1's inception modules and the max pools between them, built of ``block``
        (the paper's conv+ReLU or torchvision's conv+BN+ReLU)."""
        self.inception3a = block(192, *TABLE1["3a"])
        self.inception3b = block(256, *TABLE1["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = block(480, *TABLE1["4a"])
        self.inception4b = block(512, *TABLE1["4b"])
        self.inception4c = block(512, *TABLE1["4c"])
        self.inception4d = block(512, *TABLE1["4d"])
        self.inception4e = block(528, *TABLE1["4e"])
        self.maxpool4 = nn.MaxPool2d(maxpool4, stride=2, ceil_mode=True)

        self.inception5a = block(832, *TABLE1["5a"])
        self.inception5b = block(832, *TABLE1["5b"])

    def forward(
        self, x: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self._stem(x)
        # N x 192 x 28 x 28
        x = self.inception3a(x)
        # N x 256 x 28 x 28
        x = self.inception3b(x)
        # N x 480 x 28 x 28
        x = self.maxpool3(x)
        # N x 480 x 14 x 14
        x = self.inception4a(x)
        # N x 512 x 14 x 14
        aux1 = self.aux1(x) if self._aux_enabled() else None

        x = self.inception4b(x)
        # N x 512 x 14 x 14
        x = self.inception4c(x)
        # N x 512 x 14 x 14
        x = self.inception4d(x)
        # N x 528 x 14 x 14
        aux2 = self.aux2(x) if self._aux_enabled() else None

        x = self.inception4e(x)
        # N x 832 x 14 x 14
        x = self.maxpool4(x)
        # N x 832 x 7 x 7
        x = self.inception5a(x)
        # N x 832 x 7 x 7
        x = self.inception5b(x)
        # N x 1024 x 7 x 7

        x = self.avgpool(x)
        # N x 1024 x 1 x 1
        x = torch.flatten(x, 1)
        # N x 1024
        x = self.dropout(x)
        x = self.fc(x)
        # N x num_classes
        if aux1 is not None and aux2 is not None:
            return x, aux1, aux2
        return x


class GoogLeNet(_GoogLeNetBody):
    def __init__(self, num_classes: int = 1000, aux: bool = False) -> None:
        super().__init__()
        # The auxiliary heads are part of the trained network (and of its parameters)
        # whether or not this forward runs them; the paper discards them at inference.
        self.aux = aux
        # Max pools round up (Caffe's convention), which gives Table 1's 56, 28, 14, 7.
        self.conv1 = nn.Sequential(*_conv_relu(3, 64, 7, stride=2, padding=3))
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # LRN as in the paper's Caffe model (bvlc_googlenet: size 5, alpha 1e-4, beta 0.75).
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.conv2 = nn.Sequential(*_conv_relu(64, 64, 1))  # Table 1's "#3x3 reduce"
        self.conv3 = nn.Sequential(*_conv_relu(64, 192, 3, padding=1))
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self._add_inceptions(Inception, maxpool4=3)

        self.avgpool = nn.AvgPool2d(7, stride=1)
        self.dropout = nn.Dropout(p=0.4)
        self.fc = nn.Linear(1024, num_classes)

        self.aux1 = InceptionAux(512, num_classes)
        self.aux2 = InceptionAux(528, num_classes)

    def _aux_enabled(self) -> bool:
        return self.aux

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.conv1(x)
        # N x 64 x 112 x 112
        x = self.maxpool1(x)
        # N x 64 x 56 x 56
        x = self.norm1(x)
        x = self.conv2(x)
        # N x 64 x 56 x 56
        x = self.conv3(x)
        # N x 192 x 56 x 56
        x = self.norm2(x)
        return self.maxpool2(x)


class BasicConv2d(nn.Module):
    """torchvision's conv block: conv without bias, BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


class InceptionBN(_Branches):
    """torchvision's inception module (BatchNorm, and a 3x3 where the paper has a 5x5)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        # Known deviation kept from torchvision: the "5x5" branch uses a 3x3 conv (a bug
        # in the port its pretrained weights were trained with; pytorch/vision issue 906).
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )


class InceptionAuxBN(nn.Module):
    """torchvision's auxiliary classifier."""

    def __init__(self, in_channels: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 512 x 14 x 14 (aux1), N x 528 x 14 x 14 (aux2)
        x = F.adaptive_avg_pool2d(x, (4, 4))
        # N x 512 x 4 x 4 (aux1), N x 528 x 4 x 4 (aux2)
        x = self.conv(x)
        # N x 128 x 4 x 4
        x = torch.flatten(x, 1)
        # N x 2048
        x = F.relu(self.fc1(x), inplace=True)
        # N x 1024
        x = self.dropout(x)
        x = self.fc2(x)
        # N x num_classes
        return x


class GoogLeNetBN(_GoogLeNetBody):
    """torchvision's ``googlenet``: BatchNorm instead of LRN, no conv biases.

    torchvision returns the auxiliary outputs only in training mode; here, as for
    ``googlenet``, ``aux_logits=True`` always returns (logits, aux1, aux2).
    torchvision's ``transform_input`` (an input re-normalisation) is left out.
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        # Known deviation kept from torchvision: a 2x2/2 maxpool4 where the paper has 3x3/2
        # (both give 7x7 from 14x14).
        self._add_inceptions(InceptionBN, maxpool4=2)

        self.aux1 = InceptionAuxBN(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAuxBN(528, num_classes) if aux_logits else None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(1024, num_classes)

    def _aux_enabled(self) -> bool:
        return self.aux1 is not None

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.conv1(x)
        # N x 64 x 112 x 112
        x = self.maxpool1(x)
        # N x 64 x 56 x 56
        x = self.conv2(x)
        # N x 64 x 56 x 56
        x = self.conv3(x)
        # N x 192 x 56 x 56
        return self.maxpool2(x)


# Table 1's "params" and "ops" columns, as printed (2.7K -> 2_700, 34M -> 34_000_000); rows
# with blank cells (the pools, dropout, softmax) are left out. The printed K is evidently
# 1024 (3a: 163,328 weights / 1024 = 159.5 -> "159K") and biases are not counted; "ops" are
# multiply-adds, weights x output positions. Three cells disagree with the configuration:
# conv1 (2.7K / 34M, but 7x7x3x64 = 9,408 weights, 118M ops), 4c (463K, but 509,440
# weights = 497.5K; its 100M ops fit the configuration) and 5a (1072K / 54M, but
# 1,042,432 weights = 1018K, 51M ops).
PAPER_TABLE1: dict[str, dict[str, int]] = {
    "convolution 7x7/2": {"params": 2_700, "ops": 34_000_000},
    "convolution 3x3/1": {"params": 112_000, "ops": 360_000_000},
    "inception (3a)": {"params": 159_000, "ops": 128_000_000},
    "inception (3b)": {"params": 380_000, "ops": 304_000_000},
    "inception (4a)": {"params": 364_000, "ops": 73_000_000},
    "inception (4b)": {"params": 437_000, "ops": 88_000_000},
    "inception (4c)": {"params": 463_000, "ops": 100_000_000},
    "inception (4d)": {"params": 580_000, "ops": 119_000_000},
    "inception (4e)": {"params": 840_000, "ops": 170_000_000},
    "inception (5a)": {"params": 1_072_000, "ops": 54_000_000},
    "inception (5b)": {"params": 1_388_000, "ops": 71_000_000},
    "linear": {"params": 1_000_000, "ops": 1_000_000},
}

# Which modules of GoogLeNet each Table 1 row covers ("convolution 3x3/1" includes its
# 1x1 reduce, conv2).
TABLE1_MODULES: dict[str, tuple[str, ...]] = {
    "convolution 7x7/2": ("conv1",),
    "convolution 3x3/1": ("conv2", "conv3"),
    **{f"inception ({k})": (f"inception{k}",) for k in TABLE1},
    "linear": ("fc",),
}

#: Table 1's rows in order, over both GoogLeNet layouts' module names: (type, the modules
#: it covers, its key in PAPER_TABLE1 or None). The LRN layers of Figure 3, absent from
#: Table 1, join the row before them (googlenet_tv has none); the flatten in forward()
#: (the model's own code, "") joins the avg pool. softmax is not part of the model.
TABLE1_ROWS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("convolution", ("conv1",), "convolution 7x7/2"),
    ("max pool", ("maxpool1", "norm1"), None),
    ("convolution", ("conv2", "conv3", "norm2"), "convolution 3x3/1"),
    ("max pool", ("maxpool2",), None),
    *((f"inception ({k})", (f"inception{k}",), f"inception ({k})") for k in ("3a", "3b")),
    ("max pool", ("maxpool3",), None),
    *((f"inception ({k})", (f"inception{k}",), f"inception ({k})")
      for k in ("4a", "4b", "4c", "4d", "4e")),
    ("max pool", ("maxpool4",), None),
    *((f"inception ({k})", (f"inception{k}",), f"inception ({k})") for k in ("5a", "5b")),
    ("avg pool", ("avgpool", ""), None),
    ("dropout", ("dropout",), None),  # 40% in the paper; the trace does not see p
    ("linear", ("fc",), "linear"),
    ("softmax", (), None),
)


@register_model(
    family="googlenet",
    input_shape=(3, 224, 224),
    source=GOOGLENET_PAPER,
    # No published total: the paper only says "12 times fewer parameters" than AlexNet.
    reference={"paper_table1": PAPER_TABLE1,
               # Table 3, "GoogLeNet classification performance break down" (validation):
               #   Number of models | Number of Crops | Cost | Top-5 error
               #   1                | 1               | 1    | 10.07%
               # The paper prints no top-1 figure; its 6.67% is 7 models x 144 crops.
               "imagenet": imagenet_error(
                   None, 10.07, source="Szegedy et al. 2014, arXiv:1409.4842, Table 3 "
                                       "(1 model, 1 crop)",
                   evaluation="one model, one crop (Table 3)",
                   note="torchvision's googlenet weights are for its BatchNorm variant, "
                        "googlenet_tv")},
)
def googlenet(**config: Any) -> GoogLeNet:
    return GoogLeNet(**config)


@register_model(
    family="googlenet",
    input_shape=(3, 224, 224),
    source="torchvision googlenet (after " + GOOGLENET_PAPER + ")",
    reference={"params": 6_624_904,
               # torchvision googlenet.py, GoogLeNet_Weights.IMAGENET1K_V1 "_metrics":
               # {"ImageNet-1K": {"acc@1": 69.778, "acc@5": 89.530}}, crop_size=224
               "imagenet": torchvision_metrics("GoogLeNet_Weights.IMAGENET1K_V1", 69.778,
                                               89.530)},
)
def googlenet_tv(**config: Any) -> GoogLeNetBN:
    return GoogLeNetBN(**config)
