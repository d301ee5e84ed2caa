"""FLOP counting conventions, kept as data: each is a table op -> formula.

Peers disagree on what "FLOPs" means. archstat names the convention behind every
number it prints:

``macs`` (default)
    Multiply-accumulates of convolutions, linear layers and matmuls (attention
    included), nothing else. One fused multiply-add is one MAC; biases are not counted.
    This is the unit of torchvision's "GFLOPS" column and of He et al.'s Table 1.
``flops``
    Exactly what ``torch.utils.flop_counter.FlopCounterMode`` reports: its own formula
    registry, which counts 2 FLOPs per multiply-add of the same ops (``2 x macs``).
``fvcore``
    Exactly what fvcore's ``FlopCountAnalysis`` counts with its default handles: MACs of
    conv/linear/matmul plus batch norm (1 or 2 per element at inference), group and
    layer norm (4 or 5), adaptive average pooling (1 per input element), upsampling and
    grid sampling, and nothing of attention products (``aten::scaled_dot_product_attention``)
    or recurrent layers (``aten::lstm``, ...), which fvcore sees as single ops it has no
    handle for; archstat knows which composite each traced op ran in. fvcore runs with
    autograd on (its documented use), which turns nn.MultiheadAttention's fast path off:
    its projections count, as ``aten::linear``. fvcore traces
    ``aten::adaptive_avg_pool2d``, which aten lowers to ``mean(dim=[-1, -2],
    keepdim=True)`` for a 1x1 output: archstat counts that ``mean`` as fvcore's adaptive
    pool, and no other (fvcore skips ``aten::mean``).
``lecture``
    ``macs`` plus pooling at kernel area per output element, as in the EECS 498/598
    "CNN Architectures" lecture tables (a 3x3 max pool costs 9 per output element).
``full``
    Every arithmetic operation: ``flops`` for matmuls and convolutions, plus one
    operation per output element of every elementwise op and activation (an optimizer's
    ``_foreach_`` ops included), one per input element of a reduction, 5 per element of
    a softmax, normalisations as fvcore counts them, pooling at kernel area per output
    element. Backward ops without a formula of their own count one per output element.
    It is the work a roofline model needs beside the matmuls.

Backward passes (training traces): ``macs``, ``flops``, ``lecture`` and ``full`` count
the backward's ops with the same formulas (torch's registry has the matmul and
convolution backward kernels: ``flops`` equals ``FlopCounterMode`` over a real
backward); ``fvcore`` counts no backward, as fvcore traces the forward only.

An op that does real work but that the convention neither counts nor deliberately
ignores is *unhandled*: it counts zero and is reported, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import torch
from torch.utils.flop_counter import flop_registry as _torch_flop_registry

from archstat.errors import ArchstatError, did_you_mean
from archstat.trace import ops

aten = torch.ops.aten


@dataclass(frozen=True)
class Convention:
    """A named way of counting: ``rules`` maps an aten op packet to its formula;
    op kinds in ``ignored`` are deliberately not counted; anything else that is not
    pure data movement is unhandled."""

    name: str
    unit: str
    summary: str
    rules: Mapping[Any, ops.Formula]  # by packet, or by qualified name outside aten
    ignored: frozenset[str] = field(default_factory=frozenset)
    #: the formula for an op of a known kind that has no rule (``full``), else None
    default: ops.Formula | None = None
    #: whether backward ops are counted (fvcore counts the forward only)
    backward: bool = True
    #: composites (``OpEvent.origin``) whose ops count 0 (the packets named, or all for
    #: None): fvcore sees them as one TorchScript op it has no handle for
    skipped_origins: Mapping[str, frozenset[Any] | None] = field(
        default_factory=lambda: MappingProxyType({}))

    def cost(self, event: ops.OpEvent) -> int | None:
        """The op's count in this convention's unit, or None if it is unhandled."""
        if event.phase != "forward" and not self.backward:
            return 0
        if event.origin in self.skipped_origins:
            skipped = self.skipped_origins[event.origin]
            if skipped is None or event.packet in skipped:
                return 0
        rule = self.rules.get(event.packet)
        if rule is None and event.packet.__module__ != "torch._ops.aten":
            rule = self.rules.get(event.packet._qualified_op_name)  # torchvision's, ...
        if rule is not None:
            return rule(event)
        kind = ops.op_kind(event.op)
        if kind == "none":
            return 0
        if kind is not None and self.default is not None:
            return self.default(event)
        if kind in self.ignored:
            return 0
        return None

    def split(self, event: ops.OpEvent) -> tuple[int, int] | None:
        """A backward op's count split into (input-gradient, weight-gradient) work, by
        the gradients it computes (``event.grad``): an op computing both (a convolution's
        backward with both in its output_mask) is costed again with only its first
        output asked for, and the rest is weight-gradient work. None if unhandled."""
        cost = self.cost(event)
        if cost is None or not cost or event.grad == "input":
            return (cost, 0) if cost is not None else None
        if event.grad == "weight":
            return 0, cost
        index = ops.output_mask_index(event)
        if index is None:  # mkldnn_rnn_layer_backward: half and half (its formula's)
            return cost // 2, cost - cost // 2
        mask = event.args[index]
        only_input = [mask[0]] + [False] * (len(mask) - 1)
        args = (*event.args[:index], only_input, *event.args[index + 1:])
        first = self.cost(replace(event, args=args)) or 0
        return first, cost - first

    def with_rules(self, extra: Mapping[Any, ops.Formula], name: str | None = None) -> Convention:
        """A copy with ``extra`` merged over the rules; the original is never mutated."""
        return replace(self, name=name or self.name,
                       rules=MappingProxyType({**self.rules, **extra}))


#: Work in kernels torch's flop_registry has no formula for, counted as torch counts
#: the same work elsewhere (FLOPs: 2 per multiply-add): matmuls inside fused kernels, and
#: the interpolation taps of learned sampling (``grid_sample``, as in a deformable or
#: spatial-transformer layer; fixed-size upsampling stays uncounted, as in torch).
#: FlopCounterMode counts them as 0; ``archstat crosscheck`` names the difference.
EXTRA_FLOPS: dict[Any, ops.Formula] = {
    aten._scaled_dot_product_flash_attention_for_cpu: ops.sdpa_cpu_flops,
    aten._addmm_activation: ops.addmm_activation_flops,
    aten.mkldnn_rnn_layer: ops.rnn_layer_flops,
    aten._grouped_mm: ops.grouped_mm_flops,
    aten.grid_sampler_2d: ops.grid_sample_flops,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: ops.sdpa_cpu_backward_flops,
    aten.mkldnn_rnn_layer_backward: ops.rnn_layer_backward_flops,
    aten.grid_sampler_2d_backward: ops.grid_sample_backward_flops,
}

#: The same for ops outside aten, by qualified name: they exist once their library
#: (torchvision) is imported. torchvision's deform_conv2d costs what the same layer costs
#: as an offset grid_sample and a conv (:func:`archstat.trace.ops.deform_conv2d_flops`).
EXTRA_FLOPS_BY_NAME: dict[str, ops.Formula] = {
    "torchvision::deform_conv2d": ops.deform_conv2d_flops,
    "torchvision::_deform_conv2d_backward": ops.deform_conv2d_backward_flops,
}


def extra_packets() -> dict[Any, ops.Formula]:
    """EXTRA_FLOPS and the EXTRA_FLOPS_BY_NAME ops loaded in this process, by packet."""
    found = dict(EXTRA_FLOPS)
    for name, formula in EXTRA_FLOPS_BY_NAME.items():
        namespace, op = name.split("::")
        packet = getattr(getattr(torch.ops, namespace), op, None)
        if packet is not None:
            found[packet] = formula
    return found


def _torch_rules(divisor: int) -> dict[Any, ops.Formula]:
    rules = {
        packet: ops.torch_formula(_torch_flop_registry, packet, divisor)
        for packet in _torch_flop_registry
        if isinstance(packet, torch._ops.OpOverloadPacket)
    }
    for packet, formula in {**EXTRA_FLOPS, **EXTRA_FLOPS_BY_NAME}.items():
        rules[packet] = (lambda f: lambda event: f(event) // divisor)(formula)
    return rules


_NON_MATMUL = frozenset({"norm", "pool", "activation", "elementwise"})

_MACS = _torch_rules(divisor=2)

_POOL_RULES: dict[Any, ops.Formula] = {
    aten.max_pool1d: ops.pool_window_ops,
    aten.max_pool2d_with_indices: ops.pool_window_ops,
    aten.max_pool3d_with_indices: ops.pool_window_ops,
    aten.avg_pool1d: ops.pool_window_ops,
    aten.avg_pool2d: ops.pool_window_ops,
    aten.avg_pool3d: ops.pool_window_ops,
    aten._adaptive_avg_pool2d: ops.adaptive_pool_window_ops,
    aten._adaptive_avg_pool3d: ops.adaptive_pool_window_ops,
    aten.adaptive_max_pool2d: ops.adaptive_pool_window_ops,
    aten.adaptive_max_pool3d: ops.adaptive_pool_window_ops,
    aten.mean: ops.input_numel,
    # backward: as the forward (every window visited again)
    aten.max_pool2d_with_indices_backward: ops.pool_backward_window_ops,
    aten.max_pool3d_with_indices_backward: ops.pool_backward_window_ops,
    aten.avg_pool2d_backward: ops.pool_backward_window_ops,
    aten.avg_pool3d_backward: ops.pool_backward_window_ops,
    aten._adaptive_avg_pool2d_backward: ops.adaptive_pool_backward_window_ops,
    aten._adaptive_avg_pool3d_backward: ops.adaptive_pool_backward_window_ops,
}

# fvcore/nn/flop_count.py _DEFAULT_SUPPORTED_OPS, translated from the TorchScript op
# names fvcore sees to the aten ops a dispatch mode sees.
_FVCORE_RULES: dict[Any, ops.Formula] = {
    aten.convolution: _MACS[aten.convolution],
    aten._convolution: _MACS[aten._convolution],
    aten.addmm: _MACS[aten.addmm],
    aten.mm: _MACS[aten.mm],
    aten.bmm: _MACS[aten.bmm],
    aten.native_batch_norm: ops.fvcore_batch_norm,
    aten._native_batch_norm_legit: ops.fvcore_batch_norm,
    aten._native_batch_norm_legit_no_training: ops.fvcore_batch_norm,
    aten.native_group_norm: ops.fvcore_group_norm,
    aten.native_layer_norm: ops.fvcore_layer_norm,
    aten.upsample_nearest2d: ops.output_numel,
    aten.upsample_bilinear2d: ops.scaled(ops.output_numel, 4),
    aten._adaptive_avg_pool2d: ops.input_numel,
    aten.mean: ops.adaptive_mean_ops,
    aten.grid_sampler_2d: ops.scaled(ops.output_numel, 4),
    # the fast path's linear + activation, which fvcore sees as aten::linear
    aten._addmm_activation: _MACS[aten._addmm_activation],
}

_ALL_KINDS = frozenset(ops.KINDS)

#: What fvcore's TorchScript trace sees as one op without a handle, and so counts 0:
#: attention (``aten::scaled_dot_product_attention``) and recurrent layers (``aten::lstm``,
#: ``aten::gru``, ...), composite -> the packets skipped in it (None: all). fvcore runs
#: with autograd on, as its documentation calls it, which turns nn.MultiheadAttention's
#: fast path off: its projections are ``aten::linear`` to fvcore, its attention products
#: SDPA; archstat's eval trace takes the fast path, whose products are ``bmm``.
FVCORE_SKIPS: Mapping[str, frozenset[Any] | None] = MappingProxyType({
    "scaled_dot_product_attention": None, "lstm": None, "gru": None, "rnn_tanh": None,
    "rnn_relu": None, "_native_multi_head_attention": frozenset({aten.bmm}),
    # F.conv2d(..., padding="same") is aten::_convolution_mode to TorchScript
    "_convolution_mode": None,
})

_REDUCTIONS = (aten.sum, aten.amax, aten.amin, aten.max, aten.min, aten.var, aten.var_mean,
               aten.std, aten.norm, aten.linalg_vector_norm, aten.prod, aten.cumsum,
               aten.logsumexp, aten.mean)
_FULL_RULES: dict[Any, ops.Formula] = {
    **_torch_rules(divisor=1),
    **{packet: rule for packet, rule in _POOL_RULES.items() if packet is not aten.mean},
    **dict.fromkeys(_REDUCTIONS, ops.input_numel),
    **dict.fromkeys((aten._softmax, aten._log_softmax, aten._safe_softmax),
                    ops.scaled(ops.output_numel, 5)),
    **{packet: _FVCORE_RULES[packet] for packet in (
        aten.native_batch_norm, aten._native_batch_norm_legit,
        aten._native_batch_norm_legit_no_training, aten.native_group_norm,
        aten.native_layer_norm, aten.upsample_nearest2d, aten.upsample_bilinear2d)},
}

CONVENTIONS: Mapping[str, Convention] = MappingProxyType(
    {
        "macs": Convention(
            name="macs",
            unit="MAC",
            summary="multiply-accumulates of conv, linear and matmul only (default)",
            rules=MappingProxyType(_MACS),
            ignored=_NON_MATMUL,
        ),
        "flops": Convention(
            name="flops",
            unit="FLOP",
            summary="2 x macs: what torch.utils.flop_counter.FlopCounterMode reports",
            rules=MappingProxyType(_torch_rules(divisor=1)),
            ignored=_NON_MATMUL,
        ),
        "fvcore": Convention(
            name="fvcore",
            unit="fvcore flop",
            summary="what fvcore's FlopCountAnalysis counts (MACs, plus norms and some pools)",
            rules=MappingProxyType(_FVCORE_RULES),
            ignored=_ALL_KINDS,
            backward=False,
            skipped_origins=FVCORE_SKIPS,
        ),
        "lecture": Convention(
            name="lecture",
            unit="MAC",
            summary="macs plus pooling at kernel area per output element (EECS 498 tables)",
            rules=MappingProxyType({**_MACS, **_POOL_RULES}),
            ignored=_NON_MATMUL - {"pool"},
        ),
        "full": Convention(
            name="full",
            unit="op",
            summary="flops plus elementwise, reduction, normalisation and pooling work",
            rules=MappingProxyType(_FULL_RULES),
            default=ops.output_elements,
        ),
    }
)


def get_convention(convention: str | Convention) -> Convention:
    """Look a convention up by name (or pass one through); unknown names raise
    ArchstatError with suggestions."""
    if isinstance(convention, Convention):
        return convention
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise ArchstatError(
            f"unknown convention {convention!r}{did_you_mean(convention, CONVENTIONS)}; "
            f"choose one of {', '.join(CONVENTIONS)}"
        ) from None
