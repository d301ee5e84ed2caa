"""Fast meta "kernels": outputs of common ops computed from shapes alone.

Many of torch's meta kernels are Python decompositions or references: batch norm's costs
about 2 ms a call (most of the time of tracing a ResNet), and the first call of an
elementwise op, ``cat`` or ``addmm`` imports ``torch._dynamo`` (about 0.7 s a process).
On meta tensors the output of these ops is fully determined by shapes, strides and
dtypes, which is cheap to give directly.

A shortcut is exact or declines. Where it answers, it gives the shape, dtype and strides
that torch's own meta kernel gives. For a call it cannot answer exactly (a layout whose
strides torch would rearrange, dtypes torch would promote, arguments torch refuses) it
returns ``NotImplemented``, and torch's kernel answers, or raises its own error. Should a
shortcut raise all the same (a torch release that changes an op's arguments, say),
:func:`run_meta` falls back to torch's kernel too: a bug in a shortcut costs time, never
a trace.

``ARCHSTAT_FAST_META=0`` in the environment, read once at import, turns the shortcuts
off: every op then takes torch's meta kernel (the first ResNet-152 analyze of a process
takes 1.1 s instead of 0.2 s after ``import torch``, a later one 0.24 s instead of 0.11 s).
Use it to rule the shortcuts out when a trace looks wrong. The :data:`CPU_KERNELS` stay
on: they make the trace match a CPU run, not go faster.

tests/test_metakernels.py compares every shortcut with torch's meta kernel over random
calls: size-1, empty and broadcast dims; contiguous, channels-last, permuted, sliced and
expanded operands; reduced-precision, integer and boolean dtypes; invalid arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from archstat.trace import cpupath

aten = torch.ops.aten

#: False when the environment sets ``ARCHSTAT_FAST_META=0``: no shortcut is taken.
FAST_META = os.environ.get("ARCHSTAT_FAST_META", "1") != "0"


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in a nested tuple/list/dict of op arguments, in order. (A plain
    recursion: torch's pytree is general but costs a third of a ResNet trace.)"""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_in(item)]
    return []


_tensors = tensors_in


def broadcast_shape(*shapes: Any) -> tuple[int, ...] | None:
    """NumPy broadcasting of ``shapes``, or None if they do not broadcast. (Pure Python:
    torch.broadcast_shapes imports torch._refs on first use, about 0.35 s.)"""
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, start=ndim - len(shape)):
            if size != 1:
                if out[i] not in (1, size):
                    return None
                out[i] = size
    return tuple(out)


def _broadcasts_to(shape: torch.Size, others: list[torch.Tensor]) -> bool:
    return broadcast_shape(shape, *(t.shape for t in others)) == tuple(shape)


def _odd_scalar(value: Any) -> bool:
    """Whether the op's arguments hold a complex number (which promotes a real tensor) or
    a string (a mode that torch validates and the shortcuts do not)."""
    if isinstance(value, (tuple, list)):
        return any(_odd_scalar(item) for item in value)
    if isinstance(value, dict):
        return any(_odd_scalar(item) for item in value.values())
    return isinstance(value, (complex, str))


# ---------------------------------------------------------------- layouts
def _strides_in_order(shape: Any, inner_first: Any) -> tuple[int, ...]:
    strides, step = [0] * len(shape), 1
    for d in inner_first:
        strides[d] = step
        step *= max(shape[d], 1)
    return tuple(strides)


def _canonical(t: torch.Tensor) -> bool:
    """Whether ``t`` is non-empty with exactly the strides ``torch.empty`` gives its shape,
    contiguous or (4-D) channels-last. Only such operands take the elementwise and batch
    norm shortcuts: torch's kernels lay out the result of other operands (size-1 dims
    with odd strides, permuted, sliced or channels-last-3d ones) by rules that differ from
    op to op."""
    shape, stride, ndim = t.shape, t.stride(), t.dim()
    if 0 in shape:
        return False
    if stride == _strides_in_order(shape, range(ndim - 1, -1, -1)):
        return True
    return ndim == 4 and stride == _strides_in_order(shape, (1, 3, 2, 0))  # NHWC


def _suggested_format(t: torch.Tensor) -> torch.memory_format:
    """``t.suggest_memory_format()``, the layout torch's pooling and ``cat`` kernels give
    their output: channels-last where the strides of a 4-D (5-D) tensor order its dims as
    NHWC (NDHWC), size-1 dims included. A port of c10's is_channels_last_strides_2d_s4 and
    _3d_s5, as torch._prims_common.suggest_memory_format."""
    shape, stride = t.shape, t.stride()
    if len(shape) == 4:
        inner_first, fmt = (1, 3, 2, 0), torch.channels_last
    elif len(shape) == 5:
        inner_first, fmt = (1, 4, 3, 2, 0), torch.channels_last_3d
    else:
        return torch.contiguous_format
    if stride[1] == 0:
        return torch.contiguous_format
    low = 0
    for d in inner_first:
        # an N111 tensor whose strides are all equal is taken as contiguous
        if shape[d] == 0 or stride[d] < low or (d == 0 and low == stride[1]):
            return torch.contiguous_format
        low = stride[d] * shape[d]
    return fmt


def _empty_like(t: torch.Tensor) -> torch.Tensor:
    # torch.empty_like's meta path is Python (and imports sympy)
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")


# ---------------------------------------------------------------- elementwise
def _expanded_strides(t: torch.Tensor, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides of ``t.expand(shape)`` (at::inferExpandGeometry), as torch's references
    broadcast an operand that does not have the result's shape."""
    if t.shape == shape:
        return t.stride()
    ndim, tdim = len(shape), t.dim()
    strides = [0] * ndim
    if tdim == 0:
        return tuple(strides)
    for i in range(ndim - 1, -1, -1):
        j = i - ndim + tdim
        size, stride = (t.shape[j], t.stride()[j]) if j >= 0 else (1, shape[i + 1] * strides[i + 1])
        strides[i] = stride if size == shape[i] else 0
    return tuple(strides)


def _dense_in(shape: tuple[int, ...], strides: tuple[int, ...], inner_first: Any) -> bool:
    # torch._prims_common.is_contiguous / is_channels_last_contiguous_2d: size-1 dims
    # may carry any stride
    step = 1
    for d in inner_first:
        if shape[d] != 1:
            if strides[d] != step:
                return False
            step *= shape[d]
    return True


def _elementwise_strides(shape: tuple[int, ...], operands: list[torch.Tensor]) -> tuple[int, ...]:
    """The strides torch gives the result of an elementwise op on ``operands`` broadcast to
    ``shape``: dense, with its dims ordered as the operands' strides order them. A port of
    torch._prims_common.compute_elementwise_output_logical_to_physical_perm (itself
    TensorIterator's reorder_dimensions), which the references of elementwise ops use."""
    ndim = len(shape)
    if ndim <= 1:
        return (1,) * ndim
    strides = [_expanded_strides(t, shape) for t in operands]
    backwards = range(ndim - 1, -1, -1)
    contiguous = all(_dense_in(shape, s, backwards) for s in strides)
    channels_last = ndim == 4 and all(_dense_in(shape, s, (1, 3, 2, 0)) for s in strides)
    if contiguous and not channels_last:
        return _strides_in_order(shape, backwards)
    if channels_last and not contiguous:
        return _strides_in_order(shape, (1, 3, 2, 0))

    def should_swap(a: int, b: int) -> int:
        # 1: dim a is outside dim b; -1: inside; 0: the operands do not say
        for s in strides:
            if s[a] == 0 or s[b] == 0:
                continue
            if s[a] == s[b]:
                if shape[b] >= shape[a]:
                    continue
                return 1
            return -1 if s[b] > s[a] else 1
        return 0

    # torch's insertion sort, innermost dim first, ties left in place
    perm = list(backwards)
    for i in range(1, ndim):
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            order = should_swap(perm[dim0], perm[dim1])
            if order > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif order < 0:
                break
    return _strides_in_order(shape, perm)


def _elementwise(*args: Any, **kwargs: Any) -> Any:
    # Floating-point operands of one dtype, and Python scalars, which do not promote a
    # float tensor: the result has their dtype, the broadcast shape and the strides of
    # torch's rule. Operands must be canonical: a reference that computes half precision
    # in float32 converts a permuted or sliced operand into another layout first.
    tensors = _tensors((args, kwargs))
    if not tensors or _odd_scalar((args, kwargs)):
        return NotImplemented
    dtype = tensors[0].dtype
    if not dtype.is_floating_point or any(t.dtype != dtype or not _canonical(t)
                                          for t in tensors):
        return NotImplemented
    shape = broadcast_shape(*(t.shape for t in tensors))
    if shape is None:
        return NotImplemented
    return torch.empty_strided(shape, _elementwise_strides(shape, tensors), dtype=dtype,
                               device="meta")


def _clamp(self: torch.Tensor, min: Any = None, max: Any = None) -> Any:
    if min is None and max is None:
        return NotImplemented  # torch: "clamp called but both min and max are none!"
    return _elementwise(self, min, max)


def _gelu(self: torch.Tensor, *, approximate: str = "none") -> Any:
    return _elementwise(self) if approximate in ("none", "tanh") else NotImplemented


# ---------------------------------------------------------------- in place
def _inplace(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    # An in-place elementwise op returns ``self``, unless torch refuses to cast the
    # result into it: a floating-point ``self`` and operands of its dtype rule that out.
    others = _tensors((args, kwargs))
    if (not self.dtype.is_floating_point or any(t.dtype != self.dtype for t in others)
            or _odd_scalar((args, kwargs)) or not _broadcasts_to(self.shape, others)):
        return NotImplemented
    return self


def _clamp_inplace(self: torch.Tensor, min: Any = None, max: Any = None) -> Any:
    return NotImplemented if min is None and max is None else _inplace(self, min, max)


def _fill_inplace(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    # zero_, fill_ and copy_ cast any real value into any dtype
    others = _tensors((args, kwargs))
    if any(t.is_complex() for t in others) or _odd_scalar((args, kwargs)) or (
            not _broadcasts_to(self.shape, others)):
        return NotImplemented
    return self


def _normal_inplace(self: torch.Tensor, mean: float = 0.0, std: float = 1.0, *,
                    generator: Any = None) -> Any:
    # torch refuses a negative std and an integer tensor
    return self if self.dtype.is_floating_point and std >= 0 else NotImplemented


def _uniform_inplace(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    return self if self.dtype.is_floating_point else NotImplemented


# ---------------------------------------------------------------- matmuls, convolutions
def _floats(*tensors: torch.Tensor) -> bool:
    dtype = tensors[0].dtype
    return dtype.is_floating_point and all(t.dtype == dtype for t in tensors)


def _mm(a: Any, b: Any) -> Any:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or not _floats(a, b):
        return NotImplemented
    return torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device="meta")


def _bmm(a: Any, b: Any) -> Any:
    if (a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]
            or not _floats(a, b)):
        return NotImplemented
    return torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype, device="meta")


def _addmm(bias: Any, mat1: Any, mat2: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
    if (_odd_scalar((beta, alpha)) or mat1.dim() != 2 or mat2.dim() != 2
            or not _floats(bias, mat1, mat2)
            or not _broadcasts_to(torch.Size((mat1.shape[0], mat2.shape[1])), [bias])):
        return NotImplemented
    return _mm(mat1, mat2)


def _convolution(input: Any, weight: Any, bias: Any, stride: Any, padding: Any,
                 dilation: Any, transposed: bool, output_padding: Any, groups: int) -> Any:
    # torch's meta_conv is Python and its first torch._check imports sympy (0.3 s).
    spatial = input.dim() - 2
    if (spatial < 1 or weight.dim() != input.dim() or not _floats(input, weight)
            or input.numel() == 0 or weight.numel() == 0 or groups < 1):
        return NotImplemented
    if bias is not None and (bias.shape != (weight.shape[1] * groups if transposed
                                            else weight.shape[0],)
                             or bias.dtype != input.dtype):
        return NotImplemented
    if (len(stride) != spatial or len(padding) != spatial or len(dilation) != spatial
            or min(stride) < 1 or min(padding) < 0 or min(dilation) < 1):
        return NotImplemented
    if transposed:
        if (input.shape[1] != weight.shape[0] or weight.shape[0] % groups
                or len(output_padding) != spatial or any(
                    not 0 <= op < max(s, d)
                    for op, s, d in zip(output_padding, stride, dilation, strict=True))):
            return NotImplemented
        channels = weight.shape[1] * groups
        sizes = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, d, op in zip(
            input.shape[2:], weight.shape[2:], stride, padding, dilation, output_padding,
            strict=True)]
    else:
        if input.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
            return NotImplemented
        channels = weight.shape[0]
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(
            input.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True)]
    if any(size <= 0 for size in sizes):
        return NotImplemented  # torch raises "output size is too small"
    # torch's meta convolution returns a contiguous tensor whatever the input layout
    return torch.empty((input.shape[0], channels, *sizes), dtype=input.dtype, device="meta")


# ---------------------------------------------------------------- pooling
def _per_dim(value: Any, spatial: int) -> list[int] | None:
    """A pooling argument given once or per spatial dim, per spatial dim."""
    value = [value] if isinstance(value, int) else list(value)
    if len(value) == 1:
        return value * spatial
    return value if len(value) == spatial else None


def _pool_shape(input: Any, spatial: int, kernel: Any, stride: Any, padding: Any,
                dilation: Any, ceil_mode: bool) -> list[int] | None:
    """The output shape of a max or average pooling, or None where torch's meta kernel
    would refuse the call (aten/src/ATen/native/Pool.h: pooling_output_shape and the
    pool2d/pool3d shape checks)."""
    kernel = _per_dim(kernel, spatial)
    stride = _per_dim(stride, spatial) if len(stride) else kernel
    padding, dilation = _per_dim(padding, spatial), _per_dim(dilation, spatial)
    if (kernel is None or stride is None or padding is None or dilation is None
            or input.dim() not in (spatial + 1, spatial + 2) or input.numel() == 0
            or not input.dtype.is_floating_point):
        return None
    sizes = []
    for n, k, s, p, d in zip(input.shape[-spatial:], kernel, stride, padding, dilation,
                             strict=True):
        if k < 1 or s < 1 or d < 1 or not 0 <= p <= k // 2:
            return None
        out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= n + p:
            out -= 1  # the last window must start inside the input or its left padding
        if out < 1:
            return None
        sizes.append(out)
    return [*input.shape[:-spatial], *sizes]


def _max_pool2d(input: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                dilation: Any = 1, ceil_mode: bool = False) -> Any:
    shape = _pool_shape(input, 2, kernel_size, stride, padding, dilation, ceil_mode)
    if shape is None:
        return NotImplemented
    fmt = _suggested_format(input)
    return (torch.empty(shape, dtype=input.dtype, device="meta", memory_format=fmt),
            torch.empty(shape, dtype=torch.int64, device="meta", memory_format=fmt))


def _avg_pool2d(input: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                ceil_mode: bool = False, count_include_pad: bool = True,
                divisor_override: Any = None) -> Any:
    shape = _pool_shape(input, 2, kernel_size, stride, padding, 1, ceil_mode)
    if shape is None or divisor_override == 0:
        return NotImplemented
    return torch.empty(shape, dtype=input.dtype, device="meta",
                       memory_format=_suggested_format(input))


def _avg_pool3d(input: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                ceil_mode: bool = False, count_include_pad: bool = True,
                divisor_override: Any = None) -> Any:
    shape = _pool_shape(input, 3, kernel_size, stride, padding, 1, ceil_mode)
    kernel = _per_dim(kernel_size, 3)
    # torch also refuses an input smaller than the kernel, padding or not
    if shape is None or divisor_override == 0 or any(
            n < k for n, k in zip(input.shape[-3:], kernel, strict=True)):
        return NotImplemented
    # torch's meta avg_pool3d returns a contiguous tensor whatever the input layout
    return torch.empty(shape, dtype=input.dtype, device="meta")


def _adaptive_avg_pool2d(input: Any, output_size: Any) -> Any:
    if input.dim() not in (3, 4) or len(output_size) != 2 or not input.is_floating_point() or (
            any(n <= 0 for n in (*input.shape, *output_size))):
        return NotImplemented
    return torch.empty([*input.shape[:-2], *output_size], dtype=input.dtype, device="meta",
                       memory_format=_suggested_format(input))


# ---------------------------------------------------------------- normalisation, reductions
def _batch_norm(input: Any, weight: Any, bias: Any, mean: Any, var: Any,
                training: bool, momentum: float, eps: float) -> Any:
    if training or input.dim() < 2 or not input.dtype.is_floating_point or (
            not _canonical(input)):
        return NotImplemented
    channels = input.shape[:2][1:]
    if mean is None or var is None or any(
            t is not None and (t.shape != channels or not t.dtype.is_floating_point)
            for t in (weight, bias, mean, var)):
        return NotImplemented  # torch refuses missing running statistics in eval mode
    # As torch's meta kernel: per-channel statistics, in float32 for reduced precision.
    stats = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    return (_empty_like(input), input.new_empty(channels, dtype=stats),
            input.new_empty(channels, dtype=stats))


def _cat(tensors: list[torch.Tensor], dim: int = 0) -> Any:
    if not tensors:
        return NotImplemented
    first = tensors[0]
    ndim = first.dim()
    if ndim == 0 or not -ndim <= dim < ndim or any(
            t.dtype != first.dtype or t.dim() != ndim for t in tensors):
        return NotImplemented
    dim %= ndim
    if any(t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1:] != first.shape[dim + 1:]
           for t in tensors):
        return NotImplemented
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    # torch's cat_compute_output_memory_format: the inputs' suggested layout where they
    # all suggest the same one, else contiguous
    formats = {_suggested_format(t) for t in tensors}
    fmt = formats.pop() if len(formats) == 1 else torch.contiguous_format
    return torch.empty(shape, dtype=first.dtype, device="meta", memory_format=fmt)


def _mean(self: torch.Tensor, dim: Any = None, keepdim: bool = False, *,
          dtype: Any = None) -> Any:
    ndim = self.dim()
    if dtype is not None or not self.is_floating_point() or ndim == 0:
        return NotImplemented
    if dim is None or len(dim) == 0:
        dims = set(range(ndim))
    elif all(-ndim <= d < ndim for d in dim):
        dims = {d % ndim for d in dim}
        if len(dims) != len(dim):
            return NotImplemented  # torch: "dim ... appears multiple times in the list"
    else:
        return NotImplemented
    shape = [1 if i in dims else n for i, n in enumerate(self.shape) if keepdim or i not in dims]
    # torch's reductions return a contiguous tensor whatever the input layout
    return self.new_empty(shape)


_ELEMENTWISE = [
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.add.Scalar,
    aten.mul.Scalar, aten.pow.Tensor_Scalar, aten.maximum.default, aten.minimum.default,
    aten.relu.default, aten.tanh.default, aten.sigmoid.default, aten.silu.default,
    aten.hardtanh.default, aten.hardswish.default, aten.hardsigmoid.default,
    aten.leaky_relu.default, aten.elu.default, aten.exp.default, aten.log.default,
    aten.sqrt.default, aten.rsqrt.default, aten.neg.default, aten.reciprocal.default,
    aten.erf.default,
]
# In-place elementwise ops return their first argument. A list rather than torch's
# inplace and pointwise tags: some tagged ops check their arguments (float_power_ its
# dtype, celu_ its alpha since torch 2.14), which a shortcut would have to follow.
_INPLACE = [
    aten.add_.Tensor, aten.add_.Scalar, aten.sub_.Tensor, aten.sub_.Scalar,
    aten.mul_.Tensor, aten.mul_.Scalar, aten.div_.Tensor, aten.div_.Scalar,
    aten.pow_.Scalar, aten.relu_.default, aten.tanh_.default, aten.sigmoid_.default,
    aten.silu_.default, aten.hardtanh_.default, aten.hardswish_.default,
    aten.hardsigmoid_.default, aten.leaky_relu_.default, aten.elu_.default,
    aten.exp_.default, aten.log_.default, aten.sqrt_.default, aten.rsqrt_.default,
    aten.neg_.default, aten.reciprocal_.default, aten.erf_.default,
    aten.erfinv_.default,  # trunc_normal_
    aten.clamp_min_.default, aten.clamp_max_.default,
]

# Matmuls and convolutions return contiguous tensors whatever their operands' layout (a
# linear layer's weight arrives transposed).
SHORTCUTS: dict[Any, Callable[..., Any]] = {
    aten.addmm.default: _addmm,
    aten.mm.default: _mm,
    aten.bmm.default: _bmm,
    aten.convolution.default: _convolution,
    aten.native_batch_norm.default: _batch_norm,
    aten.cat.default: _cat,
    aten.max_pool2d_with_indices.default: _max_pool2d,
    aten.avg_pool2d.default: _avg_pool2d,
    aten.avg_pool3d.default: _avg_pool3d,
    aten._adaptive_avg_pool2d.default: _adaptive_avg_pool2d,
    aten.mean.dim: _mean,
    **dict.fromkeys(_ELEMENTWISE, _elementwise),
    aten.clamp.default: _clamp,
    aten.gelu.default: _gelu,
    **dict.fromkeys(_INPLACE, _inplace),
    aten.clamp_.default: _clamp_inplace,
    aten.clamp_.Tensor: _clamp_inplace,
    aten.zero_.default: _fill_inplace,
    aten.fill_.Scalar: _fill_inplace,
    aten.copy_.default: _fill_inplace,
    aten.normal_.default: _normal_inplace,
    aten.uniform_.default: _uniform_inplace,
}


#: Meta kernels for ops of the CPU paths archstat.trace.cpupath takes, where torch's meta
#: kernel is missing (``_transform_bias_rescale_qkv``) or differs from the CPU's (the
#: oneDNN LSTM's training workspace).
CPU_KERNELS: dict[Any, Callable[..., Any]] = {
    aten.mkldnn_rnn_layer.default: cpupath.mkldnn_rnn_layer_meta,
    aten._transform_bias_rescale_qkv.default: cpupath.transform_bias_rescale_qkv_meta,
}


def _shortcut(func: Any) -> Callable[..., Any] | None:
    """The shortcut for ``func``, or None."""
    return SHORTCUTS.get(func)


def run_meta(func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    """``func(*args, **kwargs)``. When every tensor is on meta: through the op's CPU
    kernel if it has one, else through its shortcut, and through torch's kernel where the
    shortcut declines or raises."""
    kernel = CPU_KERNELS.get(func)
    shortcut = None if kernel is not None or not FAST_META else _shortcut(func)
    if (kernel is None and shortcut is None) or not all(
            t.is_meta for t in _tensors((args, kwargs))):
        return func(*args, **kwargs)
    if kernel is not None:
        return kernel(*args, **kwargs)
    try:
        out = shortcut(*args, **kwargs)
    except Exception:
        # A bug in the shortcut, or a torch release that changed the op: torch's kernel
        # answers, with torch's own error if the call is wrong.
        out = NotImplemented
    return func(*args, **kwargs) if out is NotImplemented else out
