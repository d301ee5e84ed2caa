"""What each aten op is (its kind) and shape-only cost formulas for the ops torch's
``flop_counter`` has no formula for.

Every formula here is a pure function of an :class:`OpEvent`'s shapes and returns an
integer count; the conventions in :mod:`archstat.conventions` decide which formula,
if any, counts an op. Units are stated per formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
    aten._grouped_mm,
    # their backward kernels
    aten._scaled_dot_product_flash_attention_for_cpu_backward,
    aten._scaled_dot_product_efficient_attention_backward,
    aten._scaled_dot_product_flash_attention_backward,
    aten._scaled_dot_product_cudnn_attention_backward, aten._flash_attention_backward,
    aten._efficient_attention_backward, aten.mkldnn_rnn_layer_backward,
)
_kind(
    "norm",
    aten.native_batch_norm, aten._native_batch_norm_legit,
    aten._native_batch_norm_legit_no_training, aten.native_group_norm,
    aten.native_layer_norm, aten._fused_rms_norm, aten._weight_norm_interface,
    aten.native_batch_norm_backward,
    aten.native_layer_norm_backward, aten.native_group_norm_backward,
    aten._fused_rms_norm_backward,
)
_kind(
    "pool",
    aten.max_pool1d, aten.max_pool2d_with_indices, aten.max_pool3d_with_indices,
    aten.avg_pool1d, aten.avg_pool2d, aten.avg_pool3d, aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool3d, aten.adaptive_max_pool2d, aten.adaptive_max_pool3d,
    aten.mean, aten.max_pool2d_with_indices_backward, aten.max_pool3d_with_indices_backward,
    aten.avg_pool2d_backward, aten.avg_pool3d_backward, aten._adaptive_avg_pool2d_backward,
    aten._adaptive_avg_pool3d_backward, aten.adaptive_max_pool2d_backward,
)
_kind(
    "activation",
    aten.relu, aten.relu_, aten.gelu, aten.gelu_, aten.silu, aten.silu_, aten.sigmoid,
    aten.sigmoid_, aten.tanh, aten.tanh_, aten.hardtanh, aten.hardtanh_, aten.hardswish,
    aten.hardswish_, aten.hardsigmoid, aten.hardsigmoid_, aten.leaky_relu, aten.leaky_relu_,
    aten.elu, aten.elu_, aten.mish, aten.mish_, aten.softplus, aten._softmax,
    aten._log_softmax, aten._safe_softmax, aten.prelu, aten._prelu_kernel, aten.threshold,
    aten.threshold_, aten._softmax_backward_data, aten._log_softmax_backward_data,
    aten.hardtanh_backward, aten.hardswish_backward, aten.hardsigmoid_backward,
    aten.elu_backward, aten.leaky_relu_backward, aten.softplus_backward,
    aten._prelu_kernel_backward, aten.mish_backward,
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
    # the profiler's annotations (an optimizer's step opens one)
    torch.ops.profiler._record_function_enter_new, torch.ops.profiler._record_function_exit,
    # creation, indexing, masking, sorting and comparison: no arithmetic
    aten.new_empty_strided, aten.as_strided_, aten.all, aten.any, aten.argmax, aten.argmin,
    aten.sort, aten.argsort, aten.topk, aten.histc, aten._unique2, aten.unique_dim,
    aten.unique_consecutive, aten.index_put, aten.index_put_, aten._index_put_impl_,
    aten.masked_fill_, aten.masked_scatter, aten.masked_scatter_, aten.masked_select,
    aten.nonzero, aten.nonzero_static, aten.scatter_, aten.select_scatter, aten.slice_scatter,
    aten.diagonal_scatter, aten.as_strided_scatter, aten.fill, aten.rand, aten.randn,
    aten.randint, aten.randperm, aten.normal_, aten.uniform_, aten.random_, aten.bernoulli,
    aten.eye, aten.linspace, aten.searchsorted, aten.bucketize, aten.one_hot,
    aten._unsafe_index, aten._unsafe_index_put, aten.index_copy, aten.index_fill,
    aten.take, aten.embedding_renorm_, aten.set_, aten.sym_constrain_range_for_size,
    aten._assert_async, aten._assert_scalar, aten.equal, aten.allclose, aten.isin,
    # backward of views and selections: a gradient put back in place
    aten.select_backward, aten.slice_backward, aten.diagonal_backward, aten.unfold_backward,
)
_kind(
    "elementwise",
    aten.floor_divide, aten.col2im, aten.upsample_linear1d, aten.upsample_nearest1d,
    aten.upsample_nearest3d, aten.upsample_trilinear3d, aten._transform_bias_rescale_qkv,
    aten.scatter_add, aten.scatter_reduce, aten.index_add, aten.logsumexp, aten._cdist_forward,
    aten.sum, aten.amax, aten.amin, aten.max, aten.min, aten.var, aten.var_mean, aten.std,
    aten.norm, aten.linalg_vector_norm, aten.upsample_nearest2d, aten._upsample_nearest_exact2d,
    aten.upsample_bilinear2d, aten.upsample_bicubic2d,
    aten.grid_sampler_2d, aten.grid_sampler_2d_backward, aten.cumsum, aten.prod,
    aten.embedding_dense_backward,
)


#: Kinds of ops outside aten, by qualified name (torchvision's are registered only once
#: torchvision is imported).
_KIND_BY_NAME = {
    "torchvision::nms": "none",  # keeps the boxes that overlap least: comparisons
    "torchvision::roi_align": "pool", "torchvision::ps_roi_align": "pool",
    "torchvision::roi_pool": "pool", "torchvision::ps_roi_pool": "pool",
    "torchvision::deform_conv2d": "conv", "torchvision::_deform_conv2d_backward": "conv",
}


def op_kind(op: Any) -> str | None:
    """The kind of an aten op overload: one of KINDS, ``"none"`` for data movement, or
    ``None`` when archstat does not know what the op does (it may do real work)."""
    kind = _KIND_OF.get(op.overloadpacket)
    if kind is not None:
        return kind
    kind = _KIND_BY_NAME.get(op.overloadpacket._qualified_op_name)
    if kind is not None:
        return kind
    if op.is_view or torch.Tag.inplace_view in op.tags:  # transpose_, t_, squeeze_
        return "none"
    if op.__name__.startswith("_foreach_"):  # an optimizer's step: elementwise over lists
        return "elementwise"
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
    #: ``forward``; in a training trace's backward pass ``backward``, or ``recompute``
    #: for a forward op that activation checkpointing runs again during the backward
    phase: str = "forward"
    #: the composite it ran inside (archstat.trace.cpupath.ORIGIN), or None
    origin: str | None = None
    #: in the backward: whose gradient the op computes: ``input`` (activations'),
    #: ``weight`` (parameters'), ``mixed`` (both: a convolution_backward with both in its
    #: output_mask), or ``""`` for forward ops
    grad: str = ""

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


def per_dim(value: Any, dims: int, default: int) -> tuple[int, ...]:
    """A conv or pool argument (stride, padding, ...) per spatial dim: one int, a list of
    one or of ``dims`` ints, or None / [] for ``default``."""
    if value is None or value == []:
        return (default,) * dims
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    return value * dims if len(value) == 1 else value


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


def pool_backward_window_ops(event: OpEvent) -> int:
    """A fixed-window pool's backward (``max_pool2d_with_indices_backward``,
    ``avg_pool2d_backward``: grad_output, input, kernel_size, ...) at the same cost as
    its forward: every window is visited again."""
    grad_output = _first_shape(event.args[0])
    dims = 3 if "3d" in event.packet.__name__ else 2
    return math.prod(grad_output) * math.prod(_pair(event.args[2], dims))


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


def adaptive_pool_backward_window_ops(event: OpEvent) -> int:
    """An adaptive pool's backward (grad_output, input) at the cost of its forward."""
    return adaptive_pool_window_ops(replace(event, args=(event.args[1],), out=event.args[0]))


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
    ``flop_registry`` applies to every other fused attention kernel but not to this one.
    Query, key and value may have any number of leading (batch, head) dimensions."""
    from torch.utils.flop_counter import sdpa_flop_count

    query, key, value = event.args[:3]
    if len(query) == 4 and len(key) == 4:
        return int(sdpa_flop_count(query, key, value))
    batch = math.prod(query[:-2])
    (length, width), sources, value_width = query[-2:], key[-2], value[-1]
    return 2 * batch * length * sources * (width + value_width)


def grouped_mm_flops(event: OpEvent) -> int:
    """FLOPs of ``_grouped_mm`` (a mixture of experts' matmuls): each row of a 2-d left
    operand meets one group of a 3-d right one (rows x K x N multiply-adds, 2 FLOPs
    each); 3-d x 3-d is a batch of matmuls; 3-d x 2-d multiplies each group's rows."""
    left, right = _first_shape(event.args[0]), _first_shape(event.args[1])
    if len(left) == 3 and len(right) == 3:
        return 2 * left[0] * left[1] * left[2] * right[2]
    rows = math.prod(left[:-1])
    return 2 * rows * left[-1] * right[-1]


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


def sdpa_cpu_backward_flops(event: OpEvent) -> int:
    """FLOPs of ``_scaled_dot_product_flash_attention_for_cpu_backward``: torch's own
    ``sdpa_backward_flop_count`` (the scores recomputed, then the gradients of the
    scores, of Q, K and V: five matmuls), as its registry counts the other kernels'."""
    from torch.utils.flop_counter import sdpa_backward_flop_count

    grad_out, query, key, value = event.args[:4]
    return int(sdpa_backward_flop_count(grad_out, query, key, value))


def rnn_layer_backward_flops(event: OpEvent) -> int:
    """FLOPs of ``mkldnn_rnn_layer_backward``: per step, the gates' gradient times
    ``weight_ih`` and ``weight_hh`` (the input's and the hidden state's gradients) and the
    weights' gradients (the gates' gradient against the input and the hidden state): twice
    the forward's multiply-adds, half of them for activations, half for weights."""
    steps, batch = _first_shape(event.args[0])[:2]
    return 4 * steps * batch * (math.prod(event.args[1]) + math.prod(event.args[2]))


#: Pixels one interpolated sample weighs, by ``grid_sampler_2d``'s interpolation_mode
#: (0 bilinear, 1 nearest, 2 bicubic): a sample is a weighted sum of that many taps
#: (nearest picks one pixel and multiplies nothing).
SAMPLING_TAPS = (4, 0, 16)


def grid_sample_flops(event: OpEvent) -> int:
    """FLOPs of ``grid_sampler_2d``: per output element (batch x channels x sampled
    positions), one multiply-add per tap, 2 FLOPs each. The per-position interpolation
    weights, shared by the channels, are not counted (as a conv's im2col is not)."""
    return 2 * SAMPLING_TAPS[event.args[2]] * output_numel(event)


def grid_sample_backward_flops(event: OpEvent) -> int:
    """FLOPs of ``grid_sampler_2d_backward``: the input's gradient scatters each output
    element's gradient to its taps (one multiply-add per tap); the grid's gradient needs,
    per output element, the taps' values against both coordinates (two per tap). Which of
    the two is computed is the op's ``output_mask``."""
    grad_output, mode, mask = event.args[0], event.args[3], event.args[6]
    per_element = SAMPLING_TAPS[mode] * (int(mask[0]) + 2 * int(mask[1]))
    return 2 * per_element * math.prod(grad_output)


def _deform_sizes(event: OpEvent) -> tuple[int, int, bool]:
    """(samples, conv multiply-adds, use_mask) of a ``torchvision::deform_conv2d`` call
    or its backward (whose arguments are the forward's, after the gradient)."""
    args = event.args if event.packet.__name__ == "deform_conv2d" else event.args[1:]
    (n, c), (o, per_group, kh, kw) = args[0][:2], args[1]
    ho, wo = args[2][-2:]
    samples = n * c * kh * kw * ho * wo
    return samples, n * o * ho * wo * per_group * kh * kw, bool(args[13])


def deform_conv2d_flops(event: OpEvent) -> int:
    """FLOPs of ``torchvision::deform_conv2d`` (Dai et al. 2017): bilinear sampling of
    every input channel at each output position's kh x kw offset taps (4 multiply-adds a
    sample, one more for a DCNv2 mask), then the conv on the samples (output elements x
    in-channels per group x kh x kw multiply-adds), 2 FLOPs each: what the same layer
    costs as an offset grid_sample and a conv. The offsets come from a conv of the
    caller's, counted as a conv."""
    samples, conv, masked = _deform_sizes(event)
    return 2 * (samples * (SAMPLING_TAPS[0] + masked) + conv)


def deform_conv2d_backward_flops(event: OpEvent) -> int:
    """FLOPs of ``torchvision::_deform_conv2d_backward``: the conv's two gradient GEMMs
    (columns' and weight's, each the forward conv's multiply-adds), and per sample the
    columns recomputed (4 taps), the input's gradient scattered to the taps (4) and the
    offsets' gradient against both coordinates (8); with a mask, 2 more a sample."""
    samples, conv, masked = _deform_sizes(event)
    return 2 * (2 * conv + samples * (4 * SAMPLING_TAPS[0] + 2 * masked))


def elements(value: Any) -> int:
    """Elements of every tensor shape in ``value`` (a shape, or a list of them: a
    ``_foreach_`` op's tensor list)."""
    if isinstance(value, torch.Size):
        return math.prod(value)
    if isinstance(value, (tuple, list)):
        return sum(elements(v) for v in value)
    return 0


def output_elements(event: OpEvent) -> int:
    """Elements of every output tensor (one operation per output element); for an
    in-place ``_foreach_`` op, which returns nothing, those of its first tensor list."""
    return elements(event.out) or elements(event.args[0] if event.args else ())


def output_mask_index(event: OpEvent) -> int | None:
    """Where a backward op's ``output_mask`` (which gradients to compute: input, weight,
    bias) is among its arguments, or None."""
    for index in range(len(event.args) - 1, -1, -1):
        value = event.args[index]
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, bool)
                                                              for v in value):
            return index
    return None


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
