"""What each aten op is (its kind) and shape-only cost formulas for the ops torch's
``flop_counter`` has no formula for.

Every formula here is a pure function of an :class:`OpEvent`'s shapes and returns an
integer count; the conventions in :mod:`archstat.conventions` decide which formula,
if any, counts an op. Units are stated per formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

aten = torch.ops.aten

#: The op kinds archstat breaks FLOPs down by. ``none`` is an op that moves or
#: reinterprets data (views, copies, cat, allocation) and does no arithmetic.
KINDS = ("conv", "linear", "norm", "pool", "activation", "elementwise")

_KIND_OF: dict[Any, str] = {}


def _kind(kind: str, *packets: Any) -> None:
    for packet in packets:
        if packet in _KIND_OF:
            raise ValueError(f"op {packet} already has kind {_KIND_OF[packet]}")
        _KIND_OF[packet] = kind


_kind(
    "conv",
    aten.convolution, aten._convolution, aten.convolution_overrideable,
    aten.cudnn_convolution, aten._slow_conv2d_forward, aten.convolution_backward,
)
_kind(
    "linear",
    aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.mv, aten.dot, aten.addmv,
    aten._scaled_mm, aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_flash_attention, aten._scaled_dot_product_cudnn_attention,
    aten._scaled_dot_product_flash_attention_for_cpu, aten._efficient_attention_forward,
    aten._flash_attention_forward, aten._addmm_activation, aten.mkldnn_rnn_layer,
)
_kind(
    "norm",
    aten.native_batch_norm, aten._native_batch_norm_legit,
    aten._native_batch_norm_legit_no_training, aten.native_group_norm,
    aten.native_layer_norm, aten._fused_rms_norm,
)
_kind(
    "pool",
    aten.max_pool1d, aten.max_pool2d_with_indices, aten.max_pool3d_with_indices,
    aten.avg_pool1d, aten.avg_pool2d, aten.avg_pool3d, aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool3d, aten.adaptive_max_pool2d, aten.adaptive_max_pool3d,
    aten.mean,
)
_kind(
    "activation",
    aten.relu, aten.relu_, aten.gelu, aten.gelu_, aten.silu, aten.silu_, aten.sigmoid,
    aten.sigmoid_, aten.tanh, aten.tanh_, aten.hardtanh, aten.hardtanh_, aten.hardswish,
    aten.hardswish_, aten.hardsigmoid, aten.hardsigmoid_, aten.leaky_relu, aten.leaky_relu_,
    aten.elu, aten.elu_, aten.mish, aten.mish_, aten.softplus, aten._softmax,
    aten._log_softmax, aten._safe_softmax, aten.prelu, aten._prelu_kernel, aten.threshold,
    aten.threshold_,
)
_kind(
    "none",
    aten.cat, aten.stack, aten.clone, aten.copy_, aten._to_copy, aten.empty, aten.empty_like,
    aten.empty_strided, aten.zeros, aten.zeros_like, aten.ones, aten.ones_like, aten.full,
    aten.full_like, aten.fill_, aten.zero_, aten.constant_pad_nd, aten.reflection_pad2d,
    aten.replication_pad2d, aten._unsafe_view, aten.lift_fresh, aten.arange, aten.detach,
    aten.native_dropout, aten.bernoulli_, aten.index_select, aten.embedding, aten.gather,
    aten.index, aten.scatter, aten.masked_fill, aten.where, aten.new_empty, aten.new_zeros,
    aten.new_ones, aten.new_full,
    aten.channel_shuffle, aten.pixel_shuffle, aten.roll, aten.flip, aten.repeat,
    aten.split_with_sizes_copy, aten.unbind_copy, aten.alias, aten.resize_,
    # splits that skip autograd's view tracking, triangles, unfolding, scalars
    aten.unsafe_split, aten.unsafe_split_with_sizes, aten.unsafe_chunk, aten.tril, aten.triu,
    aten.im2col, aten.scalar_tensor, aten.lift_fresh_copy, aten._local_scalar_dense,
)
_kind(
    "elementwise",
    aten.sum, aten.amax, aten.amin, aten.max, aten.min, aten.var, aten.var_mean, aten.std,
    aten.norm, aten.linalg_vector_norm, aten.upsample_nearest2d, aten._upsample_nearest_exact2d,
    aten.upsample_bilinear2d, aten.upsample_bicubic2d,
    aten.grid_sampler_2d, aten.cumsum, aten.prod,
)


def op_kind(op: Any) -> str | None:
    """The kind of an aten op overload: one of KINDS, ``"none"`` for data movement, or
    ``None`` when archstat does not know what the op does (it may do real work)."""
    kind = _KIND_OF.get(op.overloadpacket)
    if kind is not None:
        return kind
    if op.is_view or torch.Tag.inplace_view in op.tags:  # transpose_, t_, squeeze_
        return "none"
    if torch.Tag.pointwise in op.tags:
        return "elementwise"
    return None


@dataclass(frozen=True)
class OpEvent:
    """One aten op call seen during tracing, with every tensor replaced by its shape
    (a ``torch.Size``), so that the cost formulas need nothing but shapes."""

    op: Any  # torch._ops.OpOverload
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    out: Any
    record: int  # index of the layer record the op ran in
    inputs: tuple[int, ...] = ()  # serials of the tensors it read (Trace.tensors)
    outputs: tuple[int, ...] = ()  # serials of the tensors it returned
    allocated: int = 0  # bytes of the new storages among its outputs

    @property
    def packet(self) -> Any:
        return self.op.overloadpacket


Formula = Callable[[OpEvent], int]


def _first_shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, torch.Size):
                return tuple(item)
    raise TypeError(f"no tensor shape in {value!r}")


def input_numel(event: OpEvent) -> int:
    """Elements of the op's first input tensor."""
    return math.prod(_first_shape(event.args[0]))


def output_numel(event: OpEvent) -> int:
    """Elements of the op's first output tensor."""
    return math.prod(_first_shape(event.out))


def scaled(formula: Formula, factor: int) -> Formula:
    """``formula`` times a constant (fvcore's ``elementwise_flop_counter`` idea)."""
    return lambda event: factor * formula(event)


def _pair(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(value)
    return value * dims if len(value) == 1 else value


def pool_window_ops(event: OpEvent) -> int:
    """Kernel area per output element (the lecture tables' pooling cost): for a fixed
    window, output elements x prod(kernel_size)."""
    out = _first_shape(event.out)
    dims = {
        aten.max_pool1d: 1, aten.avg_pool1d: 1, aten.max_pool3d_with_indices: 3,
        aten.avg_pool3d: 3,
    }.get(event.packet, 2)
    return math.prod(out) * math.prod(_pair(event.args[1], dims))


def _adaptive_window_sum(in_size: int, out_size: int) -> int:
    # Adaptive pooling uses window [floor(i*In/Out), ceil((i+1)*In/Out)) for output i.
    return sum(
        -(-(i + 1) * in_size // out_size) - (i * in_size // out_size) for i in range(out_size)
    )


def adaptive_pool_window_ops(event: OpEvent) -> int:
    """Exact sum of window areas over all output elements of an adaptive pool."""
    inp, out = _first_shape(event.args[0]), _first_shape(event.out)
    spatial = len(out) - 2 if len(out) >= 3 else len(out) - 1
    lead = math.prod(out[: len(out) - spatial])
    windows = math.prod(
        _adaptive_window_sum(i, o) for i, o in zip(inp[-spatial:], out[-spatial:], strict=True)
    )
    return lead * windows


def adaptive_mean_ops(event: OpEvent) -> int:
    """fvcore's adaptive_avg_pool2d count (1 per input element) for the ``mean`` that
    aten lowers a 1x1 ``adaptive_avg_pool2d`` to (``mean(dim=[-1, -2], keepdim=True)``);
    0 for any other mean, which fvcore sees as ``aten::mean`` and skips."""
    dims = event.args[1] if len(event.args) > 1 else event.kwargs.get("dim")
    keepdim = event.args[2] if len(event.args) > 2 else event.kwargs.get("keepdim", False)
    if keepdim and dims is not None and list(dims) == [-1, -2]:
        return input_numel(event)
    return 0


def _affine(event: OpEvent, weight_index: int, with_affine: int, without: int) -> int:
    has_weight = len(event.args) > weight_index and event.args[weight_index] is not None
    return input_numel(event) * (with_affine if has_weight else without)


def fvcore_batch_norm(event: OpEvent) -> int:
    """fvcore's batchnorm_flop_jit: 1 (or 2 with affine) per element at inference,
    4 (or 5) in training mode, where batch statistics are computed."""
    training = {
        aten._native_batch_norm_legit_no_training: False,
        aten._native_batch_norm_legit: True,
    }.get(event.packet)
    if training is None:  # native_batch_norm(input, weight, bias, mean, var, training, ...)
        training = bool(event.args[5])
    if training:
        return _affine(event, 1, 5, 4)
    return _affine(event, 1, 2, 1)


def fvcore_group_norm(event: OpEvent) -> int:
    """fvcore's norm_flop_counter: 5 per element with affine, 4 without."""
    return _affine(event, 1, 5, 4)


def fvcore_layer_norm(event: OpEvent) -> int:
    """fvcore's norm_flop_counter for layer_norm(input, normalized_shape, weight, ...)."""
    return _affine(event, 2, 5, 4)


def torch_formula(registry: dict[Any, Callable[..., int]], packet: Any, divisor: int) -> Formula:
    """Wrap a ``torch.utils.flop_counter`` formula (which counts 2 FLOPs per
    multiply-add) so that it reads an OpEvent; ``divisor=2`` turns it into MACs."""
    formula = registry[packet]

    def count(event: OpEvent) -> int:
        return int(formula(*event.args, out_val=event.out, **event.kwargs)) // divisor

    return count


def sdpa_cpu_flops(event: OpEvent) -> int:
    """FLOPs (2 per multiply-add) of ``_scaled_dot_product_flash_attention_for_cpu``:
    torch's own ``sdpa_flop_count`` (QK^T and the product with V), which its
    ``flop_registry`` applies to every other fused attention kernel but not to this one."""
    from torch.utils.flop_counter import sdpa_flop_count

    query, key, value = event.args[:3]
    return int(sdpa_flop_count(query, key, value))


def addmm_activation_flops(event: OpEvent) -> int:
    """FLOPs of ``_addmm_activation`` (a linear layer with a fused ReLU/GELU, in the
    transformer fast path): those of the addmm, as torch counts ``addmm``."""
    from torch.utils.flop_counter import flop_registry

    return int(flop_registry[aten.addmm](*event.args[:3], out_val=event.out))


def rnn_layer_flops(event: OpEvent) -> int:
    """FLOPs of one oneDNN LSTM layer and direction (``mkldnn_rnn_layer``): every step
    multiplies the input by ``weight_ih`` (4H x I) and the hidden state by ``weight_hh``
    (4H x H), 2 FLOPs per multiply-add; the gates' elementwise work is not counted, as
    torch counts matmuls only. The input is time-major: (steps, batch, features)."""
    steps, batch = _first_shape(event.args[0])[:2]
    weights = math.prod(event.args[1]) + math.prod(event.args[2])
    return 2 * steps * batch * weights


def shapes_of(value: Any) -> Any:
    """Replace every tensor in a (nested) value by its shape."""
    if isinstance(value, torch.Tensor):
        return value.shape
    if isinstance(value, (list, tuple)):
        return type(value)(shapes_of(v) for v in value) if not _is_namedtuple(value) else (
            type(value)(*(shapes_of(v) for v in value))
        )
    if isinstance(value, dict):
        return {k: shapes_of(v) for k, v in value.items()}
    return value


def _is_namedtuple(value: Sequence[Any]) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")
