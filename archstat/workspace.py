"""Memory as torch's CPU allocator sees it: the tensor-level liveness profile plus, at each
op, the workspace its CPU kernel allocates and frees inside itself.

:mod:`archstat.trace.liveness` counts tensors, the storages ops return. A real CPU run also
allocates, inside the kernels, buffers that no op returns: oneDNN's blocked copies of a
convolution's input, weights and output, an LSTM's reordered weights, the flash-attention
kernel's per-thread blocks, batch norm's per-channel factors, the tensors torch wraps a
Python number in. This module models them per op, as data: ``RULES`` maps an aten op to a
formula of the op's shapes and the machine (:class:`CpuFacts`), in bytes.

One number per op, its **workspace**: the most bytes the kernel holds at once beyond the
op's inputs and outputs while it runs, so that the allocator holds ``during[i] +
workspace`` bytes of activations at event ``i`` (``during`` from
:func:`archstat.trace.liveness.profile`). The allocator-level peak of a forward is the largest of
these sums (:func:`allocator_profile`). Like ``peak_activation_bytes`` it leaves out the
parameters, buffers and inputs, which exist before the forward; it is comparable with
``archstat.realrun.allocator_peak``, which reads the profiler's allocation events of a
real CPU run, and counts nothing torch's allocator does not hand out (MKL's own GEMM
buffers, OpenMP stacks).

Modelled, measured on torch 2.13 and 2.14 (oneDNN 3.12) on an AVX-512 CPU, fp32:

* ``convolution`` (2-d, NCHW): torch's choice between oneDNN and its own im2col kernel
  (``ConvParams::use_mkldnn``); oneDNN's blocked layouts (channels in blocks of 16, the
  input not reordered for a kernel larger than 1x1 with fewer than 16 input channels),
  its scratchpad (a bias padded to 16 channels, the per-thread input copy of a strided 1x1
  convolution), and the plain output it reorders into; im2col's column buffer.
* ``mkldnn_rnn_layer`` (LSTM): the summed bias and the two reordered weight matrices.
* ``_scaled_dot_product_flash_attention_for_cpu``: one fp32 block buffer per thread.
* ``native_batch_norm`` at inference: two per-channel factors.
* A Python number where a kernel needs a tensor (``x * 0.5``, ``x > 0``, the divisor of
  ``mean``): a wrapped 8-byte tensor, and its copy in the op's dtype.

Not modelled, and named wherever they occur (:attr:`AllocatorEstimate.unmodelled`): the
oneDNN LSTM scratchpad (tens to hundreds of KiB per layer and direction, which grows with
the sequence and the batch in steps that depend on oneDNN's RNN implementation),
convolutions outside the cases above (other dtypes, 1-d and 3-d, transposed, most grouped
ones, CPUs without AVX-512, whose oneDNN picks other layouts), and any op with no rule
here. Ops known to allocate nothing inside (views, pointwise ops, GEMMs, pooling, the
transformer fast path's pieces) are declared in ``NO_WORKSPACE``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from archstat.trace.liveness import LiveProfile, profile
from archstat.trace.ops import OpEvent, op_kind
from archstat.trace.tracer import Trace

aten = torch.ops.aten


@dataclass(frozen=True)
class CpuFacts:
    """What the CPU kernels' workspaces depend on besides shapes: the thread count
    (per-thread buffers), torch's CPU capability (oneDNN's layout choices) and whether
    oneDNN is used at all."""

    threads: int
    capability: str
    mkldnn: bool

    @classmethod
    def current(cls) -> CpuFacts:
        """This process: ``torch.get_num_threads()``, ``get_cpu_capability()``, and
        ``torch.backends.mkldnn`` available and enabled."""
        return cls(torch.get_num_threads(), torch.backends.cpu.get_cpu_capability(),
                   torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


@dataclass(frozen=True)
class Workspace:
    """An op's workspace in bytes, and what of it is not modelled (None: nothing), in
    words; ``bytes`` then counts the modelled part only."""

    bytes: int
    unmodelled: str | None = None


#: A rule: the op's event, the dtype of its first tensor input, the machine -> workspace.
Rule = Callable[[OpEvent, str, CpuFacts], "int | Workspace"]

_ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8,
             "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8,
             "complex128": 16}


def _ru(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value)


# ------------------------------------------------------------------ convolution
#: oneDNN's channel block on an AVX-512 CPU (nChw16c, OIhw16i16o).
_BLOCK = 16
#: oneDNN books every scratchpad entry with 128 bytes for its alignment.
_SCRATCH_ALIGN = 128


def _use_mkldnn(x: tuple[int, ...], w: tuple[int, ...], strided: bool, dilated: bool,
                groups: int, cpu: CpuFacts) -> bool:
    """torch's ``ConvParams::use_mkldnn`` for a contiguous fp32 input (Convolution.cpp):
    a 1x1 kernel runs on oneDNN only with several threads or a batch of 16, and a small
    one-image convolution with a kernel of at most 3x3 on torch's own kernel."""
    if not cpu.mkldnn:
        return False
    one_by_one = w[-1] == 1 and w[-2] == 1
    return ((strided or dilated or x[0] >= 16 or not one_by_one or cpu.threads > 1)
            and (groups > 1 or (w[-1] > 3 and w[-2] > 3) or x[0] > 1 or math.prod(x) > 20480))


def conv_workspace(event: OpEvent, dtype: str, cpu: CpuFacts) -> int | Workspace:
    """``convolution(input, weight, bias, stride, padding, dilation, transposed, ...,
    groups)`` on the CPU, in bytes beyond its output.

    oneDNN (fp32, plain NCHW tensors) computes in blocked layouts: it holds at once its
    scratchpad, the blocked input, the reordered weights and the blocked output, frees
    the first three, then reorders the blocked output into the plain one. Channels are
    padded to blocks of 16; a kernel larger than 1x1 with fewer than 16 input channels
    reads the plain input and does not pad the weights' input channels. torch's own
    kernel (im2col) holds a column buffer of C*kh*kw x Ho*Wo per image beside the output
    (none for a 1x1, stride-1, unpadded kernel)."""
    x, w = _shape(event.args[0]), _shape(event.args[1])
    bias = event.args[2] is not None
    stride, padding, dilation, transposed, _, groups = event.args[3:9]
    if transposed:
        return Workspace(0, "transposed convolution")
    if len(x) != 4:
        return Workspace(0, f"{len(x) - 2}-d convolution")
    if dtype != "float32":
        return Workspace(0, f"{dtype} convolution")
    out = _shape(event.out)
    item = _ITEMSIZE[dtype]
    n, c, h, wd = x
    o, cg, kh, kw = w
    ho, wo = out[2], out[3]
    out_bytes = math.prod(out) * item
    strided = any(s != 1 for s in stride)
    dilated = any(d != 1 for d in dilation)
    if not _use_mkldnn(x, w, strided, dilated, groups, cpu):
        if groups > 1:
            return Workspace(0, "grouped convolution on torch's own kernel")
        if not cpu.mkldnn and n >= 16:
            return Workspace(0, "NNPACK convolution")
        if kh == kw == 1 and not strided and not any(padding):
            return 0
        return n * c * kh * kw * ho * wo * item  # im2col columns
    if cpu.capability != "AVX512":
        return Workspace(0, f"oneDNN convolution layouts on {cpu.capability} "
                            "(modelled on AVX512)")
    if h < kh or wd < kw:  # mobilenet_v3's 5x5 depthwise on a 1x1 map, found on the corpus
        return Workspace(0, "oneDNN convolution with a kernel larger than its input map")
    og = o // groups
    if groups == 1:
        plain_input = cg < _BLOCK and (kh, kw) != (1, 1)
        blocked_in = 0 if plain_input else n * _ru(c, _BLOCK) * h * wd
        weights = _ru(o, _BLOCK) * (c if plain_input else _ru(c, _BLOCK)) * kh * kw
        blocked_out = n * _ru(o, _BLOCK) * ho * wo
    elif cg == 1 and og == 1:  # depthwise
        blocked_in = n * _ru(c, _BLOCK) * h * wd
        weights = _ru(c, _BLOCK) * kh * kw
        blocked_out = n * _ru(o, _BLOCK) * ho * wo
    elif cg % _BLOCK == 0 and og % _BLOCK == 0:
        blocked_in, weights, blocked_out = n * c * h * wd, o * cg * kh * kw, n * o * ho * wo
    else:
        return Workspace(0, "grouped convolution with channels per group not a multiple "
                            "of 16")
    scratchpad = 0
    if bias and o % _BLOCK:
        scratchpad += _ru(o, _BLOCK) * item + _SCRATCH_ALIGN  # the bias, padded
    if (kh, kw) == (1, 1) and strided and groups == 1:
        # the strided input, gathered per thread ("reduce to unit stride")
        scratchpad += cpu.threads * _ru(c, _BLOCK) * ho * wo * item + _SCRATCH_ALIGN
    computing = scratchpad + (blocked_in + weights + blocked_out) * item
    reordering = blocked_out * item + out_bytes
    return max(computing, reordering) - out_bytes


# ------------------------------------------------------------------ LSTM, attention, norm
def lstm_layer_workspace(event: OpEvent, dtype: str, cpu: CpuFacts) -> Workspace:
    """``mkldnn_rnn_layer`` (one LSTM layer and direction, oneDNN) at inference: the
    two biases summed (4H), and ``weight_ih`` (4H x I) and ``weight_hh`` (4H x H)
    reordered with the gate dimension padded to a multiple of 128; plus a scratchpad
    that is not modelled."""
    scratchpad = "oneDNN LSTM scratchpad (mkldnn_rnn_layer)"
    if dtype != "float32":
        return Workspace(0, f"{dtype} oneDNN LSTM")
    hidden = event.args[10]
    inputs = _shape(event.args[1])[1]
    gates = _ru(4 * hidden, 128)
    item = _ITEMSIZE[dtype]
    return Workspace((4 * hidden + (inputs + hidden) * gates) * item, scratchpad)


def flash_attention_cpu_workspace(event: OpEvent, dtype: str, cpu: CpuFacts) -> int | Workspace:
    """``_scaled_dot_product_flash_attention_for_cpu(q, k, v, ...)``: one buffer per
    thread of a query block by a key block of scores, the block's running max and sum,
    and its output (fp32). Query blocks are 32 rows, 64 from 192 queries, 256 from 768;
    key blocks 512 (both at most the sequence)."""
    if dtype != "float32":
        return Workspace(0, f"{dtype} CPU flash attention")
    q, k, v = (_shape(a) for a in event.args[:3])
    queries, keys = q[-2], k[-2]
    q_split = min(256 if queries >= 768 else 64 if queries >= 192 else 32, queries)
    kv_split = min(512, keys)
    per_thread = q_split * kv_split + 2 * q_split + q_split * v[-1]
    return cpu.threads * per_thread * 4


def batch_norm_workspace(event: OpEvent, dtype: str, cpu: CpuFacts) -> int | Workspace:
    """``native_batch_norm`` at inference with running statistics: the per-channel scale
    and shift it folds them into (two C-sized tensors)."""
    training = event.args[5] if event.packet is aten.native_batch_norm else False
    running = event.args[3] is not None and event.args[4] is not None
    if training or not running:
        return Workspace(0, "batch norm on batch statistics")
    if dtype not in ("float32", "float64"):
        return Workspace(0, f"{dtype} batch norm")
    return 2 * _shape(event.args[0])[1] * _ITEMSIZE[dtype]


def mean_workspace(event: OpEvent, dtype: str, cpu: CpuFacts) -> int | Workspace:
    """``mean``: the CPU kernel sums, then divides by the element count, a wrapped int64."""
    return _wrapped(1, dtype)


# ------------------------------------------------------------------ Python numbers
def _wrapped(number: Any, dtype: str) -> int:
    """Bytes torch allocates for a Python number an op needs as a tensor: the wrapped
    tensor (bool 1 byte, int64 or float64 8, complex128 16) and, when the op computes in
    another dtype, its copy in that dtype."""
    if isinstance(number, bool):
        own = "bool"
    elif isinstance(number, int):
        own = "int64"
    elif isinstance(number, float):
        own = "float64"
    else:
        own = "complex128"
    common = dtype
    if own in ("float64", "complex128") and dtype in ("bool", "int64", "int32", "int16",
                                                       "int8", "uint8"):
        common = "float32" if own == "float64" else "complex64"  # torch's default dtypes
    elif own == "int64" and dtype == "bool":
        common = "int64"
    return _ITEMSIZE[own] + (0 if common == own else _ITEMSIZE.get(common, 8))


#: Ops whose Scalar argument the kernel wraps in a tensor (comparisons, the Scalar
#: overloads of arithmetic, ``1 - x``, ``2 ** x``).
WRAPS_SCALAR = frozenset({
    aten.eq.Scalar, aten.ne.Scalar, aten.lt.Scalar, aten.le.Scalar, aten.gt.Scalar,
    aten.ge.Scalar, aten.remainder.Scalar, aten.fmod.Scalar, aten.rsub.Scalar,
    aten.pow.Scalar, aten.add.Scalar, aten.sub.Scalar, aten.mul.Scalar, aten.div.Scalar,
    aten.add_.Scalar, aten.sub_.Scalar, aten.mul_.Scalar, aten.div_.Scalar,
})


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float, complex))


def scalar_workspace(event: OpEvent, dtype: str) -> int:
    """Bytes of the Python numbers an op receives where its kernel needs tensors: one in
    a Tensor argument (the dispatcher hands the op's kernel a wrapped tensor, and
    ``__torch_dispatch__`` shows it as the number), or the Scalar argument of an op in
    ``WRAPS_SCALAR``."""
    total = 0
    schema = event.op._schema.arguments
    values = list(event.args) + [event.kwargs.get(a.name) for a in schema[len(event.args):]]
    for argument, value in zip(schema, values, strict=False):
        if not _is_number(value):
            continue
        if isinstance(argument.type, torch.TensorType) or event.op in WRAPS_SCALAR:
            total += _wrapped(value, dtype)
    return total


# ------------------------------------------------------------------ the table
RULES: Mapping[Any, Rule] = {
    aten.convolution: conv_workspace,
    aten.mkldnn_rnn_layer: lstm_layer_workspace,
    aten._scaled_dot_product_flash_attention_for_cpu: flash_attention_cpu_workspace,
    aten.native_batch_norm: batch_norm_workspace,
    aten._native_batch_norm_legit_no_training: batch_norm_workspace,
    aten.mean: mean_workspace,
}

#: Ops whose CPU kernels allocate nothing but their outputs (besides wrapped Python
#: numbers), checked on the zoo and the RNN/attention blocks. Views and ops tagged
#: pointwise are included without being listed.
NO_WORKSPACE = frozenset({
    aten._adaptive_avg_pool2d, aten.adaptive_avg_pool2d, aten.avg_pool2d, aten.avg_pool3d,
    aten.max_pool2d_with_indices, aten.addmm, aten.mm, aten.bmm, aten.baddbmm,
    aten._addmm_activation, aten.linear, aten._softmax, aten._log_softmax,
    aten._transform_bias_rescale_qkv, aten.native_layer_norm, aten.cat, aten.stack,
    aten.clone, aten.copy_, aten._to_copy, aten.contiguous, aten.constant_pad_nd,
    aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.zeros,
    aten.zeros_like, aten.ones, aten.ones_like, aten.full, aten.full_like, aten.fill_,
    aten.zero_, aten.scalar_tensor, aten.lift_fresh, aten.sum, aten.linalg_vector_norm,
    aten.unsafe_split, aten.split, aten.split_with_sizes, aten.unbind, aten._unsafe_view,
    aten.masked_fill, aten.where, aten.tril, aten.triu, aten.alias,
})


@dataclass(frozen=True)
class AllocatorEstimate:
    """The allocator-level activation peak of a traced forward, in bytes: the largest
    ``during[i] + workspace[i]`` over its events, first reached at ``peak_event`` (-1
    for a trace with no op). ``workspace`` is per event; ``unmodelled`` maps what is not
    modelled (a reason, naming the op) to how many events it concerns."""

    peak_bytes: int
    peak_event: int
    workspace: list[int] = field(repr=False)
    unmodelled: dict[str, int] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """``unmodelled`` as sentences: ``oneDNN LSTM scratchpad (mkldnn_rnn_layer), 4 ops``."""
        return [f"{reason}, {count} op{'s' if count > 1 else ''}"
                for reason, count in self.unmodelled.items()]


def _first_dtype(trace: Trace, event: OpEvent) -> str:
    return trace.tensors[event.inputs[0]].dtype if event.inputs else "float32"


def op_workspace(event: OpEvent, dtype: str, cpu: CpuFacts,
                 rules: Mapping[Any, Rule] = RULES) -> Workspace:
    """The workspace of one op (see the module docstring): its rule, or none for an op
    in NO_WORKSPACE (a view, a pointwise op), plus the Python numbers it wraps."""
    scalars = scalar_workspace(event, dtype)
    rule = rules.get(event.packet)
    if rule is not None:
        found = rule(event, dtype, cpu)
        if isinstance(found, int):
            return Workspace(found + scalars)
        return Workspace(found.bytes + scalars, found.unmodelled)
    if (event.packet in NO_WORKSPACE or event.op.is_view
            or torch.Tag.pointwise in event.op.tags
            or op_kind(event.op) in ("activation", "none")):  # hardswish_, relu_: in place
        return Workspace(scalars)
    return Workspace(scalars, f"aten.{event.packet.__name__} (no workspace rule)")


def allocator_profile(trace: Trace, live: LiveProfile | None = None,
                      cpu: CpuFacts | None = None,
                      rules: Mapping[Any, Rule] | None = None) -> AllocatorEstimate:
    """The allocator-level peak of an inference ``trace`` on this CPU (or ``cpu``):
    ``live`` (the trace's liveness profile, computed when not given) plus each op's
    workspace. ``rules`` are merged over a copy of RULES."""
    live = live if live is not None else profile(trace)
    cpu = cpu or CpuFacts.current()
    table = {**RULES, **(rules or {})}
    workspace, unmodelled = [], {}
    for event in trace.events:
        found = op_workspace(event, _first_dtype(trace, event), cpu, table)
        workspace.append(found.bytes)
        if found.unmodelled:
            unmodelled[found.unmodelled] = unmodelled.get(found.unmodelled, 0) + 1
    totals = [d + w for d, w in zip(live.during, workspace, strict=True)]
    peak = max(range(len(totals)), key=lambda i: (totals[i], -i)) if totals else -1
    return AllocatorEstimate(totals[peak] if totals else 0, peak, workspace, unmodelled)
