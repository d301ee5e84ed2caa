"""The time one traced op takes on a device: a roofline per kernel, plus its overhead.

Per op (one aten call of the meta trace, one kernel of an eager run)::

    compute_s = flops / rate        (the matrix or vector units' rate for the dtype)
    memory_s  = bytes / bandwidth
    time_s    = max(compute_s, memory_s) + overhead_s
    bound     = whichever of compute_s, memory_s, overhead_s is largest

``flops`` are the ``full`` convention's (:mod:`archstat.conventions`): 2 per multiply-add
of a conv, linear layer, matmul or attention, plus one per element of elementwise work,
one per input element of a reduction, normalisations as fvcore counts them and pooling
at kernel area per output element. ``bytes`` are what the op reads and writes, in the
traced dtype: each distinct tensor it reads (activations, weights, buffers) once, and
each tensor it writes once; an in-place op reads and writes its tensor, and a broadcast
operand (a bias expanded over a map) counts its storage, not its elements.

Why per op rather than per layer: a layer's time is the sum of its kernels', and its
kernels are what differ. ``nn.LocalResponseNorm`` is ten ops in eager PyTorch, each of
which writes its result to memory and the next reads it back; a per-layer count of
"input, weights, output" would see one read and one write, and one launch. A layer is
summed from its ops (:mod:`archstat.predictor.report`).

Which units run an op: convolutions, linear layers, matmuls and attention kernels (the
``conv`` and ``linear`` kinds of :mod:`archstat.trace.ops`) run on the matrix units
(tensor cores, a CPU's GEMM micro-kernels), except depthwise convolutions (one input
channel per group), which have no inner product to feed a matrix unit and run on the
vector units, as cuDNN's and oneDNN's depthwise kernels do. Everything else runs on the
vector units. A float32 convolution runs at the profile's ``tf32`` rate where it has one
(PyTorch lets cuDNN use TF32 by default, ``torch.backends.cudnn.allow_tf32``); float32
matmuls do not (``torch.backends.cuda.matmul.allow_tf32`` is off by default). A profile
with ``conv_flops_per_s`` runs convolutions at that rate instead, and one with
``spatial_conv_flops_per_s`` runs those whose kernel is larger than 1x1 at that rate
(1x1 convolutions are GEMMs over the channels; 3x3 ones have their own direct kernels).
Where a profile gives them, depthwise convolutions run at its ``depthwise_flops_per_s``
and max pooling and 3-d average pooling (the window sum inside ``LocalResponseNorm``) at
its ``pool_flops_per_s``: on a CPU both are scalar loops, far slower than the vector
units' in-cache rate. An op whose bytes fit in the profile's ``cache_bytes`` moves them
at its ``cache_bytes_per_s`` (see :mod:`archstat.predictor.profile`). Convolutions and
matmuls (depthwise ones too) cost the profile's ``matrix_overhead_s`` per kernel where
it has one, a library call's fixed cost. Where the profile has ``fresh_bytes_above`` and
``fresh_bytes_per_s``, each new output storage of more than ``fresh_bytes_above`` bytes
adds its bytes / ``fresh_bytes_per_s`` to the op's overhead: the operating system
faulting in the pages of a large allocation, which a CPU run pays on every call. A
depthwise convolution pays it also for two buffers the library allocates inside the
call, its input and its output in the library's blocked layout (oneDNN reorders an NCHW
map to nChw16c and back): on this project's CPU a batch-8 depthwise 3x3 over a 38.5 MB
input took 18 ms, against 3 ms for one over a 12.8 MB input.

Which ops launch no kernel, and so cost nothing: views (``view``, ``t``, ``permute``,
``squeeze``, slicing, ...), aliases and detaching, and allocations whose memory is not
written (``empty``). A copy, ``cat`` or padding moves its bytes; ``constant_pad_nd`` is
two kernels in PyTorch (a fill of the output, then a copy of the input into it), so it
costs two overheads and writes its input's bytes a second time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from archstat.conventions import Convention, get_convention
from archstat.predictor.profile import DeviceProfile
from archstat.trace.ops import OpEvent, op_kind
from archstat.trace.tracer import Trace

aten = torch.ops.aten

#: The bounds, in the order a tie is settled.
BOUNDS = ("compute", "memory", "overhead")
#: The units an op can run on; ``""`` for an op that launches no kernel.
UNITS = ("matrix", "vector")

_MATRIX_KINDS = frozenset({"conv", "linear"})
_CONVOLUTIONS = frozenset({aten.convolution, aten._convolution, aten.convolution_overrideable,
                           aten.cudnn_convolution, aten._slow_conv2d_forward})
#: Ops that launch no kernel beyond what op.is_view already says.
_NO_KERNEL = frozenset({
    aten._unsafe_view, aten.alias, aten.detach, aten.lift_fresh, aten.empty,
    aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided,
    aten.resize_, aten.set_, aten.unsafe_split, aten.unsafe_split_with_sizes,
    aten.unsafe_chunk, aten._assert_async, aten._assert_scalar,
    aten.sym_constrain_range_for_size, torch.ops.profiler._record_function_enter_new,
    torch.ops.profiler._record_function_exit,
})
#: Ops PyTorch runs as more than one kernel: (kernels, extra bytes as a multiple of the
#: input's). Padding fills the output, then copies the input into it.
_SPLIT = {aten.constant_pad_nd: (2, 1)}
#: Pooling that runs at a profile's ``pool_flops_per_s``: max pooling, and the 3-d
#: average pooling of ``LocalResponseNorm``'s window sum. (On this project's CPU, with
#: one thread: max_pool2d 0.13, avg_pool3d 0.18, avg_pool2d 1.4 G window elements/s.)
_SCALAR_POOLS = frozenset({aten.max_pool1d, aten.max_pool2d, aten.max_pool3d,
                           aten.max_pool2d_with_indices, aten.max_pool3d_with_indices,
                           aten.avg_pool3d})


@dataclass(frozen=True)
class OpCost:
    """One op's predicted cost. ``event`` and ``record`` index the trace's events and
    records; ``unit`` is ``matrix``, ``vector`` or ``""`` (no kernel); ``kernels`` is how
    many kernels it launches; ``flops`` in the ``full`` convention (0 for an op the
    convention does not handle: ``unhandled``); ``bytes`` read and written; times in
    seconds."""

    event: int
    record: int
    op: str
    unit: str
    kernels: int
    flops: int
    bytes: int
    compute_s: float
    memory_s: float
    overhead_s: float
    unhandled: bool = False

    @property
    def time_s(self) -> float:
        """max(compute, memory) + overhead, in seconds."""
        return max(self.compute_s, self.memory_s) + self.overhead_s

    @property
    def bound(self) -> str:
        """``compute``, ``memory`` or ``overhead``: the largest of the three terms (ties
        in BOUNDS order); ``none`` for an op that launches no kernel."""
        if not self.kernels:
            return "none"
        terms = dict(zip(BOUNDS, (self.compute_s, self.memory_s, self.overhead_s),
                         strict=True))
        return max(BOUNDS, key=terms.__getitem__)


def launches_kernel(event: OpEvent) -> bool:
    """Whether the op runs a kernel (see the module docstring): not a view, an alias or
    an allocation left unwritten."""
    op = event.op
    if op.is_view or torch.Tag.inplace_view in op.tags:
        return False
    return event.packet not in _NO_KERNEL


def is_depthwise(event: OpEvent) -> bool:
    """A convolution with one input channel per group (and more than one group)."""
    if event.packet not in _CONVOLUTIONS or len(event.args) < 9:
        return False
    weight, transposed, groups = event.args[1], event.args[6], event.args[8]
    if not isinstance(weight, torch.Size) or not isinstance(groups, int) or groups <= 1:
        return False
    in_per_group = weight[0] // groups if transposed else weight[1]
    return in_per_group == 1


def is_spatial(event: OpEvent) -> bool:
    """A convolution whose kernel covers more than one position (not 1x1)."""
    if event.packet not in _CONVOLUTIONS or len(event.args) < 2:
        return False
    weight = event.args[1]
    return isinstance(weight, torch.Size) and math.prod(weight[2:]) > 1


def unit_of(event: OpEvent) -> str:
    """``matrix`` or ``vector``: the units that run a kernel-launching op."""
    if op_kind(event.op) in _MATRIX_KINDS and not is_depthwise(event):
        return "matrix"
    return "vector"


def rate(profile: DeviceProfile, unit: str, dtype: str, event: OpEvent) -> float:
    """FLOP/s the op's unit reaches in ``dtype`` (float32 convolutions at ``tf32`` where
    the profile has it; windowed pooling and depthwise convolutions at the profile's
    pooling and depthwise rates where it has them)."""
    if unit == "matrix":
        if event.packet in _CONVOLUTIONS and dtype in profile.spatial_conv_flops_per_s \
                and is_spatial(event):
            return profile.spatial_conv_flops_per_s[dtype]
        if event.packet in _CONVOLUTIONS and dtype in profile.conv_flops_per_s:
            return profile.conv_flops_per_s[dtype]
        if dtype == "float32" and event.packet in _CONVOLUTIONS \
                and "tf32" in profile.matrix_flops_per_s:
            return profile.matrix_flops_per_s["tf32"]
        return profile.matrix_flops_per_s[dtype]
    if is_depthwise(event) and dtype in profile.depthwise_flops_per_s:
        return profile.depthwise_flops_per_s[dtype]
    if event.packet in _SCALAR_POOLS and dtype in profile.pool_flops_per_s:
        return profile.pool_flops_per_s[dtype]
    return profile.vector_flops_per_s[dtype]


def traffic(trace: Trace, event: OpEvent) -> int:
    """Bytes the op reads and writes: each distinct input and output tensor once, a
    broadcast one at its storage's size (see the module docstring)."""
    def size(serial: int) -> int:
        meta = trace.tensors[serial]
        return min(meta.nbytes, meta.storage_nbytes)

    read = sum(size(s) for s in dict.fromkeys(event.inputs))
    written = sum(size(s) for s in dict.fromkeys(event.outputs))
    extra = _SPLIT.get(event.packet, (1, 0))[1]
    first = size(event.inputs[0]) if event.inputs else 0
    return read + written + extra * first


def op_costs(trace: Trace, profile: DeviceProfile, dtype: str,
             events: Any = None, convention: Convention | None = None) -> list[OpCost]:
    """The cost of every forward op of ``trace`` (or of the ``events`` indices given), in
    execution order, on ``profile`` in ``dtype`` (the dtype the trace was made in)."""
    profile.check_dtype(dtype)
    convention = convention or get_convention("full")
    indices = range(len(trace.events)) if events is None else events
    costs = []
    for index in indices:
        event = trace.events[index]
        if event.phase != "forward":
            continue
        costs.append(_cost(index, event, trace, profile, dtype, convention))
    return costs


def _cost(index: int, event: OpEvent, trace: Trace, profile: DeviceProfile, dtype: str,
          convention: Convention) -> OpCost:
    name = str(event.op)
    if not launches_kernel(event):
        return OpCost(index, event.record, name, "", 0, 0, 0, 0.0, 0.0, 0.0)
    counted = convention.cost(event)
    flops = counted or 0
    nbytes = traffic(trace, event)
    unit = unit_of(event)
    kernels = _SPLIT.get(event.packet, (1, 0))[0]
    return OpCost(index, event.record, name, unit, kernels, flops, nbytes,
                  compute_s=flops / rate(profile, unit, dtype, event),
                  memory_s=nbytes / profile.bandwidth(nbytes),
                  overhead_s=kernels * profile.kernel_overhead_s(
                      op_kind(event.op) in _MATRIX_KINDS)
                  + sum(profile.fresh_s(n) for n in fresh_outputs(trace, event))
                  + sum(profile.fresh_s(n) for n in reorder_buffers(trace, event)),
                  unhandled=counted is None)


def reorder_buffers(trace: Trace, event: OpEvent) -> list[int]:
    """Bytes of the buffers a depthwise convolution allocates inside the library: its
    input and its output in the library's blocked layout (oneDNN reorders an NCHW map
    to nChw16c before its depthwise kernel and back after it). None for other ops."""
    if not is_depthwise(event) or not event.inputs or not event.outputs:
        return []
    return [trace.tensors[event.inputs[0]].nbytes, trace.tensors[event.outputs[0]].nbytes]


def fresh_outputs(trace: Trace, event: OpEvent) -> list[int]:
    """Bytes of each storage the op allocates for its outputs (none for an in-place op
    or a view): the storages among its outputs that none of its inputs shares."""
    if not event.allocated:
        return []
    read = {trace.tensors[s].storage for s in event.inputs}
    new = {trace.tensors[s].storage: trace.tensors[s].storage_nbytes for s in event.outputs
           if trace.tensors[s].storage not in read}
    return list(new.values())
