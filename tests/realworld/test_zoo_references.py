"""archstat's zoo models of the families after ResNet (issue 12) against the libraries
that ship them: torchvision's DenseNets and EfficientNets, timm's legacy SE-ResNets (the
authors' layout), and torchvision's deform_conv2d for deformable convolution.

Each pair is counted by two independent means: the reference model's own parameters
and FlopCounterMode over its forward (on the meta device: the counts need shapes only),
against archstat's trace of the zoo model; and archstat's trace of both, whose memory
figures must agree too.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision.models as tvm
from fvcore.nn import FlopCountAnalysis
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import deform_conv2d

import archstat
from archstat.zoo import get_model_info
from archstat.zoo.deformable import DeformConv2d

pytestmark = pytest.mark.realworld

# zoo name -> the reference builder
REFERENCES = {
    "densenet121": tvm.densenet121, "densenet161": tvm.densenet161,
    "densenet169": tvm.densenet169, "densenet201": tvm.densenet201,
    "se_resnet50": lambda: timm.create_model("legacy_seresnet50"),
    "se_resnet101": lambda: timm.create_model("legacy_seresnet101"),
    **{f"efficientnet_b{i}": getattr(tvm, f"efficientnet_b{i}") for i in range(8)},
}


def _side(name: str) -> int:
    """torchvision's crop size for EfficientNets (its documented GFLOPS are there), 224
    for the others."""
    return get_model_info(name).reference.get("torchvision_crop", 224)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_zoo_model_equals_its_reference(name: str) -> None:
    side = _side(name)
    with torch.device("meta"):
        reference = REFERENCES[name]().eval()
        x = torch.empty(1, 3, side, side)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        reference(x)
    ours = archstat.analyze(name, (3, side, side))
    theirs = archstat.analyze(reference, (3, side, side))
    params = sum(p.numel() for p in reference.parameters())
    assert ours.totals["params"] == params == get_model_info(name).reference["params"]
    assert ours.totals["flops"] * 2 == counter.get_total_flops()
    for key in ("flops", "activation_bytes", "peak_activation_bytes"):
        assert ours.totals[key] == theirs.totals[key], key


class TorchvisionDeformable(nn.Module):
    """A deformable 3x3 conv as torchvision users write it: their own offset conv, then
    torchvision.ops.deform_conv2d."""

    def __init__(self, cin: int, cout: int, stride: int, offset_groups: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv_offset = nn.Conv2d(cin, offset_groups * 18, 3, stride, 1)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(x, self.conv_offset(x), self.weight, stride=self.stride,
                             padding=1)


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 2)])
def test_deformable_conv_equals_torchvision_in_values_and_in_cost(stride: int,
                                                                  groups: int) -> None:
    """archstat's DeformConv2d (offset conv, grid_sample, conv on the samples) computes
    what torchvision's kernel computes, and torchvision's deform_conv2d is counted with the
    same formula under macs, flops and lecture, in the forward and in a training step."""
    torch.manual_seed(0)
    ours = DeformConv2d(8, 6, 3, stride=stride, padding=1, offset_groups=groups)
    nn.init.normal_(ours.conv_offset.weight, std=0.3)
    theirs = TorchvisionDeformable(8, 6, stride, groups)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 8, 12, 11)
    assert torch.allclose(ours(x), theirs(x), atol=1e-4)
    for convention in ("macs", "flops", "lecture"):
        a = archstat.analyze(ours, (8, 12, 11), batch=2, convention=convention)
        b = archstat.analyze(theirs, (8, 12, 11), batch=2, convention=convention)
        assert a.totals["flops"] == b.totals["flops"], convention
        assert b.unhandled.empty
    trained = archstat.analyze(theirs, (8, 12, 11), batch=2, train=True)
    assert trained.unhandled.empty and trained.totals["backward_flops"] > 0


def test_fvcore_has_no_handle_for_deform_conv2d() -> None:
    """fvcore counts the offset conv of a torchvision deformable layer and nothing of
    deform_conv2d itself; archstat's fvcore convention says the same."""
    torch.manual_seed(0)
    module = TorchvisionDeformable(8, 6, 1)
    x = torch.randn(1, 8, 10, 10)
    counter = FlopCountAnalysis(module, x)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    expected = counter.total()
    assert expected == 10 * 10 * 18 * 8 * 9  # the offset conv's multiply-adds only
    assert archstat.analyze(module, (8, 10, 10), convention="fvcore").totals["flops"] == expected
