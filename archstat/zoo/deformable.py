"""Deformable convolution (Dai et al. 2017) as the paper describes it, and a ResNet-50
that uses it where the paper's ResNet experiments do.

A deformable kxk convolution is three steps (Section 2.1, Figure 2):

1. a plain kxk conv on the input (same stride, padding and dilation) predicts 2k^2
   offsets per output position and per offset group: a (dy, dx) for each kernel tap;
2. the input is sampled bilinearly at the regular grid plus the offsets: each sampled
   value is a weighted sum of the 4 pixels around it (zero outside the map);
3. the kxk conv runs on the sampled values.

Here step 2 is one ``grid_sample`` that lays the k x k samples of each output position
out as a k x k tile, and step 3 a kxk conv with stride k over those tiles. The offsets
follow ``torchvision.ops.deform_conv2d``'s channel layout (group, tap, then dy, dx), and
with the same weights both compute the same output (checked in the real-world corpus).

Placement in ``deformable_resnet50``: Dai et al. apply deformable convolution to "the
last few convolutional layers with kernel size > 1" of ResNet-101 and find that doing so
in the three 3x3 convs of conv5 (res5a, res5b, res5c) is a good trade-off (Table 1;
their default). The same three layers are deformable here, in ResNet-50's torchvision
layout, with one offset group and zero-initialised offset convs (the network starts as a
plain ResNet-50). The paper's detection and segmentation networks also lower conv5's
stride to 16 with dilation 2; for ImageNet classification at 224x224 that is not done.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archstat.zoo.registry import no_imagenet_figure, register_model
from archstat.zoo.resnet import BLOCKS_PER_STAGE, PAPER_FLOPS, Bottleneck, ResNet

DEFORMABLE_PAPER = "Dai et al. 2017, arXiv:1703.06211, Section 2.1 and Table 1"


def deformable_sample(x: torch.Tensor, offset: torch.Tensor, kernel: tuple[int, int],
                      stride: tuple[int, int], padding: tuple[int, int],
                      dilation: tuple[int, int]) -> torch.Tensor:
    """Bilinear samples of ``x`` (N, C, H, W) at each output position's kernel taps moved
    by ``offset`` (N, groups * 2 * kh * kw, Ho, Wo), laid out as (N, C, Ho * kh, Wo * kw):
    output position (ho, wo)'s tap (i, j) lands at (ho * kh + i, wo * kw + j)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    ho, wo = offset.shape[-2:]
    groups = offset.shape[1] // (2 * kh * kw)
    off = offset.reshape(n, groups, kh, kw, 2, ho, wo).permute(0, 1, 5, 2, 6, 3, 4)
    # the regular grid: output row ho's tap i reads input row ho*s - p + i*d
    rows = (torch.arange(ho, device=x.device, dtype=x.dtype)[:, None] * stride[0]
            - padding[0] + torch.arange(kh, device=x.device, dtype=x.dtype) * dilation[0])
    cols = (torch.arange(wo, device=x.device, dtype=x.dtype)[:, None] * stride[1]
            - padding[1] + torch.arange(kw, device=x.device, dtype=x.dtype) * dilation[1])
    y = rows[:, :, None, None] + off[..., 0]  # N, G, Ho, kh, Wo, kw
    xs = cols[None, None, :, :] + off[..., 1]
    # grid_sample's coordinates, align_corners=False: pixel p is at (2p + 1) / size - 1
    grid = torch.stack(((2 * xs + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1)
    grid = grid.reshape(n * groups, ho * kh, wo * kw, 2)
    sampled = F.grid_sample(x.reshape(n * groups, c // groups, h, w), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    return sampled.reshape(n, c, ho * kh, wo * kw)


class DeformConv2d(nn.Module):
    """A deformable kxk conv: offset conv, bilinear sampling, kxk conv on the samples."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, dilation: int = 1, groups: int = 1,
                 offset_groups: int = 1, bias: bool = False) -> None:
        super().__init__()
        k = kernel_size
        self.kernel_size, self.stride = (k, k), (stride, stride)
        self.padding, self.dilation, self.groups = (padding, padding), (dilation, dilation), groups
        self.conv_offset = nn.Conv2d(in_channels, offset_groups * 2 * k * k, k, stride,
                                     padding, dilation)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, k, k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.conv_offset(x)
        sampled = deformable_sample(x, offset, self.kernel_size, self.stride, self.padding,
                                    self.dilation)
        return F.conv2d(sampled, self.weight, self.bias, stride=self.kernel_size,
                        groups=self.groups)


class DeformableBottleneck(Bottleneck):
    """A torchvision-layout bottleneck whose 3x3 conv is deformable."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv2 = DeformConv2d(planes, planes, 3, stride=stride, padding=1)


class DeformableResNet(ResNet):
    """ResNet with deformable 3x3 convs in the stages named by ``deformable``."""

    def __init__(self, layers: tuple[int, int, int, int], deformable: tuple[int, ...] = (4,),
                 num_classes: int = 1000) -> None:
        super().__init__(Bottleneck, layers, num_classes=num_classes)
        for stage in deformable:
            blocks = getattr(self, f"layer{stage}")
            for i, block in enumerate(blocks):
                blocks[i] = self._deformable(block)

    @staticmethod
    def _deformable(block: Bottleneck) -> DeformableBottleneck:
        return DeformableBottleneck(block.conv1.in_channels, block.conv1.out_channels,
                                    block.stride, block.downsample)


@register_model(family="deformable", input_shape=(3, 224, 224), source=DEFORMABLE_PAPER,
                reference={"resnet50_params": 25_557_032, "deformable_layers": 3,
                           "resnet_paper_flops": PAPER_FLOPS[50],
                           "imagenet": no_imagenet_figure(
                               "Dai et al. report detection and segmentation results; no "
                               "ImageNet accuracy of a ResNet-50 with deformable res5 convs")})
def deformable_resnet50(**config: Any) -> DeformableResNet:
    return DeformableResNet(BLOCKS_PER_STAGE[50], **config)
