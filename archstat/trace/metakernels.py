"""Fast meta "kernels": outputs of common ops computed from shapes alone.

Many of torch's meta kernels are Python decompositions or references: batch norm's costs
about 2 ms a call (most of the time of tracing a ResNet), and the first call of an
elementwise op, ``cat`` or ``addmm`` imports ``torch._dynamo`` (about 0.7 s a process).
On meta tensors the output of these ops is fully determined by shapes and dtypes, which
is cheap to give directly. Every shortcut validates what torch would validate (shapes
broadcast, dtypes agree) and otherwise falls back to torch's kernel, which raises the
proper error; tests/test_metakernels.py checks each against torch's own meta kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from archstat.trace import cpupath

aten = torch.ops.aten


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


def _inplace(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    others = _tensors((args, kwargs))
    if not _broadcasts_to(self.shape, others):
        return NotImplemented
    if any(t.is_floating_point() and not self.is_floating_point() for t in others):
        return NotImplemented  # torch refuses to cast float into an integer tensor in place
    return self


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(
        memory_format=torch.channels_last)


def _standard_layout(t: torch.Tensor) -> bool:
    return t.is_contiguous() or _channels_last(t)


def _standard_layouts(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Take the shortcut only for contiguous or channels_last operands: the layout of an
    elementwise, pooling or reduction result follows a permuted input's strides, and a
    later ``view`` succeeds or fails by them, so those cases stay with torch's kernel."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not all(_standard_layout(t) for t in _tensors((args, kwargs))):
            return NotImplemented
        return fn(*args, **kwargs)

    return guarded


def _empty_like(t: torch.Tensor) -> torch.Tensor:
    # torch.empty_like's meta path is Python (and imports sympy); for the standard layouts
    # the result has the input's strides.
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")


def _elementwise(*args: Any, **kwargs: Any) -> Any:
    # Same-dtype floating-point operands only: then the result has their dtype (Python
    # scalars do not promote a float tensor) and the broadcast shape.
    tensors = _tensors((args, kwargs))
    if not tensors or any(not t.is_floating_point() or t.dtype != tensors[0].dtype
                          for t in tensors):
        return NotImplemented
    shape = broadcast_shape(*(t.shape for t in tensors))
    if shape is None:
        return NotImplemented
    like = next((t for t in tensors if tuple(t.shape) == shape), None)
    return _empty_like(like) if like is not None else tensors[0].new_empty(shape)


def _mm(a: Any, b: Any) -> Any:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype:
        return NotImplemented
    return torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device="meta")


def _bmm(a: Any, b: Any) -> Any:
    if (a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]
            or a.dtype != b.dtype):
        return NotImplemented
    return torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype, device="meta")


def _addmm(bias: Any, mat1: Any, mat2: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
    if bias.dtype != mat1.dtype or not _broadcasts_to(
            torch.Size((mat1.shape[0], mat2.shape[1])), [bias]):
        return NotImplemented
    return _mm(mat1, mat2)


def _convolution(input: Any, weight: Any, bias: Any, stride: Any, padding: Any,
                 dilation: Any, transposed: bool, output_padding: Any, groups: int) -> Any:
    # torch's meta_conv is Python and its first torch._check imports sympy (0.3 s).
    spatial = input.dim() - 2
    if spatial < 1 or weight.dim() != input.dim() or input.dtype != weight.dtype:
        return NotImplemented
    if len(stride) != spatial or len(padding) != spatial or len(dilation) != spatial:
        return NotImplemented
    if transposed:
        if input.shape[1] != weight.shape[0]:
            return NotImplemented
        channels = weight.shape[1] * groups
        sizes = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, d, op in zip(
            input.shape[2:], weight.shape[2:], stride, padding, dilation, output_padding,
            strict=True)]
    else:
        if input.shape[1] != weight.shape[1] * groups:
            return NotImplemented
        channels = weight.shape[0]
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(
            input.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True)]
    if any(size <= 0 for size in sizes):
        return NotImplemented  # torch raises "output size is too small"
    # torch's meta convolution returns a contiguous tensor whatever the input layout
    return torch.empty((input.shape[0], channels, *sizes), dtype=input.dtype, device="meta")


def _pool_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1  # the last window must start inside the input or left padding
    return out


def _pool_shape(input: Any, kernel: Any, stride: Any, padding: Any, dilation: Any,
                ceil_mode: bool) -> list[int] | None:
    spatial = len(kernel)
    def expand(v: Any) -> list[int]:
        v = [v] if isinstance(v, int) else list(v)
        return v * spatial if len(v) == 1 else v
    kernel, padding, dilation = expand(kernel), expand(padding), expand(dilation)
    stride = expand(stride) if stride else kernel
    if input.dim() not in (spatial + 1, spatial + 2) or any(
            p > k // 2 for p, k in zip(padding, kernel, strict=True)):
        return None
    sizes = [_pool_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip(
        input.shape[-spatial:], kernel, stride, padding, dilation, strict=True)]
    if any(n <= 0 for n in sizes):
        return None
    return [*input.shape[:-spatial], *sizes]


def _like_input(input: torch.Tensor, shape: list[int], dtype: Any = None) -> torch.Tensor:
    fmt = torch.channels_last if _channels_last(input) else torch.contiguous_format
    return torch.empty(shape, dtype=dtype or input.dtype, device="meta", memory_format=fmt)


def _max_pool2d(input: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                dilation: Any = 1, ceil_mode: bool = False) -> Any:
    if len(kernel_size) not in (1, 2) or not input.is_floating_point():
        return NotImplemented
    kernel = list(kernel_size) * (2 if len(kernel_size) == 1 else 1)
    shape = _pool_shape(input, kernel, stride, padding, dilation, ceil_mode)
    if shape is None:
        return NotImplemented
    return _like_input(input, shape), _like_input(input, shape, torch.int64)


def _avg_pool(spatial: int) -> Callable[..., Any]:
    def avg_pool(input: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Any = None) -> Any:
        if len(kernel_size) not in (1, spatial) or not input.is_floating_point():
            return NotImplemented
        kernel = list(kernel_size) * (spatial if len(kernel_size) == 1 else 1)
        shape = _pool_shape(input, kernel, stride, padding, 1, ceil_mode)
        return NotImplemented if shape is None else _like_input(input, shape)

    return avg_pool


def _adaptive_avg_pool2d(input: Any, output_size: Any) -> Any:
    if input.dim() not in (3, 4) or len(output_size) != 2 or not input.is_floating_point() or (
            any(n <= 0 for n in (*input.shape[-2:], *output_size))):
        return NotImplemented
    return _like_input(input, [*input.shape[:-2], *output_size])


def _batch_norm(input: Any, weight: Any, bias: Any, mean: Any, var: Any,
                training: bool, momentum: float, eps: float) -> Any:
    if training:
        return NotImplemented
    # As torch's meta kernel: per-channel statistics, in float32 for reduced precision.
    stats = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    channels = (input.shape[1],) if input.dim() > 1 else (0,)
    return (_empty_like(input), input.new_empty(channels, dtype=stats),
            input.new_empty(channels, dtype=stats))


def _cat(tensors: list[torch.Tensor], dim: int = 0) -> Any:
    first = tensors[0]
    if first.dim() == 0 or any(t.dtype != first.dtype or t.dim() != first.dim() for t in tensors):
        return NotImplemented
    dim = dim % first.dim()
    if any(t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1:] != first.shape[dim + 1:]
           for t in tensors):
        return NotImplemented
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    # torch keeps channels_last when the inputs share it
    fmt = (torch.channels_last if all(_channels_last(t) for t in tensors)
           else torch.contiguous_format)
    return torch.empty(shape, dtype=first.dtype, device="meta", memory_format=fmt)


def _mean(self: torch.Tensor, dim: Any = None, keepdim: bool = False, *,
          dtype: Any = None) -> Any:
    if dtype is not None or not self.is_floating_point() or self.dim() == 0:
        return NotImplemented
    dims = range(self.dim()) if dim is None or dim == [] else [d % self.dim() for d in dim]
    shape = [1 if i in dims else n for i, n in enumerate(self.shape)
             if keepdim or i not in dims]
    return self.new_empty(shape)


_ELEMENTWISE = [
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.add.Scalar,
    aten.mul.Scalar, aten.pow.Tensor_Scalar, aten.maximum.default, aten.minimum.default,
    aten.relu.default, aten.tanh.default, aten.sigmoid.default, aten.gelu.default,
    aten.silu.default, aten.hardtanh.default, aten.hardswish.default,
    aten.hardsigmoid.default, aten.leaky_relu.default, aten.elu.default, aten.exp.default,
    aten.log.default, aten.sqrt.default, aten.rsqrt.default, aten.neg.default,
    aten.reciprocal.default, aten.clamp.default, aten.erf.default,
]
_INIT_INPLACE = [
    aten.zero_.default, aten.fill_.Scalar, aten.normal_.default, aten.uniform_.default,
    aten.copy_.default,
]

# Matmuls and convolutions return contiguous tensors whatever their operands' layout (a
# linear layer's weight arrives transposed); in-place ops return their first argument.
SHORTCUTS: dict[Any, Callable[..., Any]] = {
    aten.addmm.default: _addmm,
    aten.mm.default: _mm,
    aten.bmm.default: _bmm,
    aten.convolution.default: _convolution,
    aten.native_batch_norm.default: _standard_layouts(_batch_norm),
    aten.cat.default: _standard_layouts(_cat),
    aten.max_pool2d_with_indices.default: _standard_layouts(_max_pool2d),
    aten.avg_pool2d.default: _standard_layouts(_avg_pool(2)),
    aten.avg_pool3d.default: _standard_layouts(_avg_pool(3)),
    aten._adaptive_avg_pool2d.default: _standard_layouts(_adaptive_avg_pool2d),
    aten.mean.dim: _standard_layouts(_mean),
    **dict.fromkeys(_ELEMENTWISE, _standard_layouts(_elementwise)),
    **dict.fromkeys(_INIT_INPLACE, _inplace),
}


#: Meta kernels for ops of the CPU paths archstat.trace.cpupath takes, where torch's meta
#: kernel is missing (``_transform_bias_rescale_qkv``) or differs from the CPU's (the
#: oneDNN LSTM's training workspace).
CPU_KERNELS: dict[Any, Callable[..., Any]] = {
    aten.mkldnn_rnn_layer.default: cpupath.mkldnn_rnn_layer_meta,
    aten._transform_bias_rescale_qkv.default: cpupath.transform_bias_rescale_qkv_meta,
}


def _shortcut(func: Any) -> Callable[..., Any] | None:
    found = SHORTCUTS.get(func) or CPU_KERNELS.get(func)
    if found is None and torch.Tag.inplace in func.tags and torch.Tag.pointwise in func.tags:
        # in-place elementwise ops (relu_, add_, clamp_, ...) return their first argument
        found = _inplace
    return found


def run_meta(func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    """``func(*args, **kwargs)``, through a shortcut when every tensor is on meta."""
    shortcut = _shortcut(func)
    if shortcut is not None and all(t.is_meta for t in _tensors((args, kwargs))):
        out = shortcut(*args, **kwargs)
        if out is not NotImplemented:
            return out
    return func(*args, **kwargs)

