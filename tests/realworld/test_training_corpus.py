"""Training FLOPs (issue 15) on models nobody here wrote: archstat's meta forward and
backward against FlopCounterMode over a real CPU forward and backward of the same loss
(the sum of every output that needs a gradient, the loss archstat backpropagates), on a
deterministic subset of the corpus that fits CI's time: convolutional, depthwise,
attention, windowed-attention, encoder, decoder and encoder-decoder models, recurrent
layers, and a frozen-prefix and a checkpointed variant.

Per model the forward and the backward (recomputation included) are compared exactly
(unit ``flops``). Where archstat traces a CPU kernel other than the one the oracle runs
(the flash attention and oneDNN LSTM kernels, whose backward does work that autograd on
the oracle's math path skips), the difference is declared and computed by hand
(:data:`DECLARED`), so that it is checked too.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

import archstat

from .blocks import BLOCKS
from .corpus import Case
from .oracles import flush_denormals, split_inputs
from .zoos import torchvision_cases, transformers_cases

pytestmark = pytest.mark.realworld

TORCHVISION = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5",
               "squeezenet1_1", "densenet121", "convnext_tiny", "swin_t", "vit_b_32")
TRANSFORMERS = ("bert", "gpt2", "llama", "t5")
BLOCK_IDS = ("mha_slow_path", "sdpa_attention", "functional_linear", "lstm", "gru",
             "rnn_bidirectional", "transformer_encoder_train", "unet")


def _subset() -> list[Case]:
    tv = {c.id: c for c in torchvision_cases()}
    hf = {c.id: c for c in transformers_cases()}
    blocks = {c.id: c for c in BLOCKS}
    return ([tv[f"torchvision:{n}"] for n in TORCHVISION]
            + [hf[f"transformers:{n}"] for n in TRANSFORMERS]
            + [blocks[f"block:{n}"] for n in BLOCK_IDS])


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


def _real_step(model: nn.Module, inputs: Any) -> tuple[int, int]:
    """FlopCounterMode's forward and backward FLOPs of one real CPU training step."""
    args, kwargs = split_inputs(inputs)
    model.train()
    has_rnn = any(isinstance(m, nn.RNNBase) for m in model.modules())
    counter = FlopCounterMode(display=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "TF32 acceleration on top of oneDNN")
        # the math SDPA backend and oneDNN off for recurrent layers: the kernels whose
        # matmuls FlopCounterMode has formulas for (as in oracles.torch_flops)
        with sdpa_kernel(SDPBackend.MATH), flush_denormals(), \
                torch.backends.mkldnn.flags(enabled=not has_rnn), counter:
            out = model(*args, **kwargs)
            forward = counter.get_total_flops()
            roots = [t for t in _tensors(out) if t.requires_grad]
            sum(t.sum() for t in roots).backward()
            total = counter.get_total_flops()
    return forward, total - forward


def _flash_recompute(model: nn.Module, inputs: Any, result: archstat.Analysis) -> int:
    """archstat traces the CPU's flash attention kernel, whose backward recomputes the
    scores QK^T (torch's sdpa_backward_flop: 5 bmm's); the oracle's math backend keeps
    them and runs 4. The difference is one b*h*s_q x d x s_k bmm per attention call."""
    extra = 0
    for event in result.trace.backward:
        if event.packet.__name__ == "_scaled_dot_product_flash_attention_for_cpu_backward":
            q, k = event.args[1], event.args[2]
            extra += 2 * q[0] * q[1] * q[2] * q[3] * k[2]
    assert extra > 0
    return extra


def _onednn_lstm(model: nn.Module, inputs: Any, result: archstat.Analysis) -> int:
    """archstat traces the CPU's oneDNN LSTM, whose backward kernel computes the gradients
    of the first layer's input and of every layer's initial state; autograd on the
    oracle's native path (oneDNN off) skips both, as neither needs a gradient. By hand:
    2 x 4H x I x N x T (layer 0's input) + layers x 2 x 4H x H x N (h0)."""
    lstm = model
    n, t, i = inputs.shape  # batch_first
    h, layers = lstm.hidden_size, lstm.num_layers
    return 2 * 4 * h * i * n * t + layers * 2 * 4 * h * h * n


#: case id -> the backward FLOPs archstat counts above FlopCounterMode, by hand
DECLARED = {
    "torchvision:vit_b_32": _flash_recompute,
    "transformers:llama": _flash_recompute,
    "block:sdpa_attention": _flash_recompute,
    "block:lstm": _onednn_lstm,
}


def _doubled(inputs: Any) -> Any:
    """The case's inputs with every tensor repeated along its first dim: batch norm in
    training needs more than one value per channel, and the corpus runs batch 1."""
    if isinstance(inputs, torch.Tensor):
        return torch.cat([inputs, inputs])
    if isinstance(inputs, Mapping):
        return {k: _doubled(v) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_doubled(v) for v in inputs)
    return inputs


def _check(build, inputs_fn, declared=None) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small inputs; spin-waiting threads only slow a busy machine
    try:
        torch.manual_seed(0)
        model = build()
        torch.manual_seed(0)
        inputs = _doubled(inputs_fn())
        result = archstat.analyze(model, inputs=inputs, convention="flops", train=True)
        totals = result.totals
        ours = (totals["flops"], totals["backward_flops"] + totals["recompute_flops"])
        theirs = _real_step(model, inputs)
    finally:
        torch.set_num_threads(threads)
    assert ours[1] > 0
    extra = declared(model, inputs, result) if declared else 0
    assert ours == (theirs[0], theirs[1] + extra), (
        f"archstat (forward, backward) {ours} != FlopCounterMode {theirs} + {extra}")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in _subset()])
def test_training_step_equals_flop_counter_mode(case: Case) -> None:
    _check(case.build, case.inputs, DECLARED.get(case.id))


def _frozen_resnet18() -> nn.Module:
    """torchvision's resnet18 with its stem and first three stages frozen: no weight
    gradient for them, and no input gradient below layer4."""
    model = {c.id: c for c in torchvision_cases()}["torchvision:resnet18"].build()
    for name, p in model.named_parameters():
        if not name.startswith(("layer4", "fc")):
            p.requires_grad_(False)
    return model


class _Checkpointed(nn.Module):
    """torchvision's resnet18 with layer3 under non-reentrant activation checkpointing:
    its forward runs again in the backward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = {c.id: c for c in torchvision_cases()}["torchvision:resnet18"].build()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer2(n.layer1(x))
        x = checkpoint(n.layer3, x, use_reentrant=False)
        x = torch.flatten(n.avgpool(n.layer4(x)), 1)
        return n.fc(x)


def _image() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64)


def test_frozen_prefix_equals_flop_counter_mode() -> None:
    _check(_frozen_resnet18, _image)
    full = archstat.analyze({c.id: c for c in torchvision_cases()}["torchvision:resnet18"]
                            .build(), inputs=_image(), convention="flops", train=True)
    frozen = archstat.analyze(_frozen_resnet18(), inputs=_image(), convention="flops",
                              train=True)
    assert frozen.totals["backward_flops"] < full.totals["backward_flops"] / 2


def test_checkpointed_stage_equals_flop_counter_mode() -> None:
    _check(_Checkpointed, _image)
    result = archstat.analyze(_Checkpointed(), inputs=_image(), convention="flops",
                              train=True)
    recompute = result.layers.set_index("name")["recompute_flops"]
    assert recompute[[n for n in recompute.index if n.startswith("net.layer3")]].sum() > 0
    assert recompute.sum() == recompute[[n for n in recompute.index
                                         if n.startswith("net.layer3")]].sum()
