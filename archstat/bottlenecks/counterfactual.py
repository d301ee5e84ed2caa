"""Whole networks rebuilt without their 1x1 bottlenecks, as torch modules, so that the
same analyzer counts both sides.

* ``googlenet`` (and ``googlenet_tv``) with every inception module naive (Szegedy et al.
  2014, Figure 2(a)): 1x1, 3x3 and 5x5 convolutions on the full input channels and a
  pooling branch without projection. Each module then outputs n1x1 + n3x3 + n5x5 + C_in
  channels, and that wider output is the next module's input: the growth cascades
  (192 -> 416 -> 832 -> ... -> 4944 channels into the classifier), which is why the paper
  could not stack naive modules.
* ``resnet50``/``101``/``152`` (and ``resnet50_v1``) with a basic block (two 3x3
  convolutions) in place of every bottleneck, at the same stage widths: each block keeps
  its input/output channels (256, 512, 1024, 2048) and its stride, and the projection
  shortcuts stay where they were.
* ``densenet121``/``161``/``169``/``201``/``264`` as plain DenseNets at the same growth
  rate: every dense layer is BN-ReLU-3x3 convolution straight from its concatenated input
  to k channels, without the 1x1 to 4k (the "B" of DenseNet-BC) and its BN-ReLU. The
  transitions keep their 1x1 convolution and compression 0.5 (the "C"), so the channel
  counts of every block, transition and the classifier are unchanged and the comparison
  isolates the bottleneck layers: this is DenseNet-C, not the paper's plain DenseNet
  (which has no compression either).
* ``efficientnet_b0`` ... ``b7`` with every MBConv block replaced by one standard kxk
  convolution (+ BN + SiLU) from the block's input channels to its output channels at
  its kernel size and stride, the residual addition kept where the block had one: no
  expansion, no depthwise convolution, no squeeze-and-excitation. The stem, the head's
  1x1 convolution to 4x the last width and the classifier are unchanged.

These are deliberately not in the zoo: the zoo's tests run every model on real tensors,
and a naive GoogLeNet costs about 20 GMACs per image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from archstat.zoo.densenet import BLOCKS, GROWTH, DenseBlock, DenseNet
from archstat.zoo.efficientnet import VARIANTS, ConvBNAct, EfficientNet, MBConv
from archstat.zoo.googlenet import (
    TABLE1,
    BasicConv2d,
    GoogLeNet,
    GoogLeNetBN,
    InceptionAux,
    InceptionAuxBN,
    _Branches,
    _conv_relu,
)
from archstat.zoo.resnet import BLOCKS_PER_STAGE, BasicBlock, ResNet

ConvBlock = Callable[[int, int, int, int], nn.Module]  # (in, out, kernel, padding)


def _paper_conv(in_channels: int, out_channels: int, kernel: int, padding: int) -> nn.Module:
    return nn.Sequential(*_conv_relu(in_channels, out_channels, kernel, padding=padding))


def _bn_conv(in_channels: int, out_channels: int, kernel: int, padding: int) -> nn.Module:
    return BasicConv2d(in_channels, out_channels, kernel_size=kernel, padding=padding)


class NaiveInception(_Branches):
    """Figure 2(a): the inception module without dimension reductions. Outputs
    ``ch1x1 + ch3x3 + ch5x5 + in_channels`` channels (the pool branch passes its input on)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3: int,
        ch5x5: int,
        conv: ConvBlock = _paper_conv,
        kernel5: int = 5,
    ) -> None:
        super().__init__()
        self.branch1 = conv(in_channels, ch1x1, 1, 0)
        self.branch2 = conv(in_channels, ch3x3, 3, 1)
        self.branch3 = conv(in_channels, ch5x5, kernel5, kernel5 // 2)
        self.branch4 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True)


def _make_naive(
    model: GoogLeNet | GoogLeNetBN, conv: ConvBlock, kernel5: int,
    aux: type[InceptionAux] | type[InceptionAuxBN],
) -> nn.Module:
    """Swap every inception module of ``model`` for a naive one, widening each next
    module, the auxiliary heads (after 4a and 4d) and the classifier to match."""
    channels = next(m for m in model.inception3a.modules() if isinstance(m, nn.Conv2d)).in_channels
    num_classes = model.fc.out_features
    for name, (ch1x1, _, ch3x3, _, ch5x5, _) in TABLE1.items():
        setattr(model, f"inception{name}",
                NaiveInception(channels, ch1x1, ch3x3, ch5x5, conv, kernel5))
        channels += ch1x1 + ch3x3 + ch5x5
        head = {"4a": "aux1", "4d": "aux2"}.get(name)
        if head and getattr(model, head) is not None:
            setattr(model, head, aux(channels, num_classes))
    model.fc = nn.Linear(channels, num_classes)
    return model


def naive_googlenet(**config: Any) -> nn.Module:
    """The paper's GoogLeNet with every inception module naive (Figure 2(a))."""
    return _make_naive(GoogLeNet(**config), _paper_conv, 5, InceptionAux)


def naive_googlenet_tv(**config: Any) -> nn.Module:
    """torchvision's GoogLeNet (BatchNorm, 3x3 in the "5x5" branch) with naive modules."""
    return _make_naive(GoogLeNetBN(**config), _bn_conv, 3, InceptionAuxBN)


class WideBasicBlock(BasicBlock):
    """A basic block at a bottleneck's output width: two 3x3 convolutions to
    ``planes * 4`` channels, where the bottleneck would reduce to ``planes`` first."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__(inplanes, planes * self.expansion, stride, downsample)


def _basic_resnet(depth: int) -> Callable[..., nn.Module]:
    def build(**config: Any) -> nn.Module:
        return ResNet(WideBasicBlock, BLOCKS_PER_STAGE[depth], **config)

    build.__doc__ = f"resnet{depth} with basic blocks in place of its bottlenecks."
    return build


class PlainDenseLayer(nn.Module):
    """A dense layer without its bottleneck: BN-ReLU-kxk conv from the concatenation of
    the block's earlier maps straight to the growth rate."""

    def __init__(self, in_channels: int, growth: int, kernel: int = 3) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, growth, kernel_size=kernel, padding=kernel // 2,
                              bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(self.relu(self.norm(torch.cat(features, 1))))


def _plain_densenet(depth: int) -> Callable[..., nn.Module]:
    def build(**config: Any) -> nn.Module:
        model = DenseNet(BLOCKS[depth], GROWTH[depth], **config)
        for block in model.features.children():
            if isinstance(block, DenseBlock):
                for name, layer in list(block.items()):
                    block[name] = PlainDenseLayer(layer.conv1.in_channels,
                                                  layer.conv2.out_channels)
        return model

    build.__doc__ = (f"densenet{depth} without its bottleneck 1x1s: every dense layer "
                     "BN-ReLU-3x3 to the growth rate; transitions keep compression 0.5.")
    return build


class StandardConvBlock(nn.Module):
    """What an MBConv block replaces in a plain CNN: one kxk conv, BN and SiLU from the
    block's input to its output channels at its stride, plus the block's shortcut."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, cout, kernel, stride)
        self.use_residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.use_residual else out


def _standard(block: MBConv) -> StandardConvBlock:
    convs = [m for m in block.block.modules() if isinstance(m, nn.Conv2d)]
    depthwise = next(c for c in convs if c.groups > 1)
    return StandardConvBlock(convs[0].in_channels, convs[-1].out_channels,
                             depthwise.kernel_size[0], depthwise.stride[0],
                             block.use_residual)


def _plain_efficientnet(variant: str) -> Callable[..., nn.Module]:
    def build(**config: Any) -> nn.Module:
        width, depth, _, _ = VARIANTS[variant]
        model = EfficientNet(width, depth, **config)
        for stage in model.features.children():
            for name, block in list(stage.named_children()):
                if isinstance(block, MBConv):
                    setattr(stage, name, _standard(block))
        return model

    build.__doc__ = (f"efficientnet_{variant} with a standard kxk conv (+ BN + SiLU) in "
                     "place of every MBConv block, residuals kept.")
    return build


#: Zoo model name -> builder of the same network without its 1x1 bottlenecks. Each takes
#: the zoo builder's own options (``num_classes``, ``aux``...).
COUNTERFACTUALS: dict[str, Callable[..., nn.Module]] = {
    "googlenet": naive_googlenet,
    "googlenet_tv": naive_googlenet_tv,
    "resnet50": _basic_resnet(50),
    "resnet50_v1": _basic_resnet(50),
    "resnet101": _basic_resnet(101),
    "resnet152": _basic_resnet(152),
    **{f"densenet{depth}": _plain_densenet(depth) for depth in (121, 161, 169, 201, 264)},
    **{f"efficientnet_{variant}": _plain_efficientnet(variant) for variant in VARIANTS},
}
