"""Compute layers: an analysis's records folded into the rows a CNN-architectures lecture
draws, one per conv, pool, fc or flatten layer, in execution order.

A record that only applies an activation, a normalisation or dropout, or a container's
own ``torch.cat`` or residual add, folds into the row of the layer it follows; so does an
adaptive pool that does nothing at this input (its output equals its input). A layer's
geometry (filters, kernel, stride, padding) is read from the op it ran, so functional
layers (``F.max_pool2d``, ``torch.flatten``) get rows as well as modules do.

Units: ``params`` are elements (weights and biases) of every record in the row;
``flops`` are in the analysis's convention, summed over the row; ``activation_bytes`` is
the new storage the row's ops allocate (archstat's one definition, see
:mod:`archstat.analysis`) and ``output_bytes`` the size of the compute layer's own output
(the lecture's "memory"), both at the traced batch and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from archstat.receptive import ReceptiveField, receptive_fields
from archstat.trace.ops import OpEvent, op_kind, per_dim
from archstat.trace.tracer import Trace

aten = torch.ops.aten

#: The kinds of layer a lecture row is (two modules named KINDS would say two things).
LAYER_KINDS = ("conv", "pool", "fc", "rnn", "flatten", "other")
#: Layers with weights, counted as a network's layers and its depth.
WEIGHT_KINDS = ("conv", "fc", "rnn")

# Module classes whose kind is known without looking at their ops. LocalResponseNorm is
# not here on purpose: it runs an avg_pool3d internally, but it is a normalisation.
_TYPE_KINDS = {
    **dict.fromkeys(
        ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
         "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d"], "conv"),
    **dict.fromkeys(["Linear", "LazyLinear", "Bilinear"], "fc"),
    **dict.fromkeys(["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"], "rnn"),
    **dict.fromkeys(
        ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
         "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
         "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d"], "pool"),
    "Flatten": "flatten",
}
_OP_KINDS = {"conv": "conv", "linear": "fc", "pool": "pool"}
_ADAPTIVE = {aten._adaptive_avg_pool2d, aten._adaptive_avg_pool3d, aten.adaptive_max_pool2d,
             aten.adaptive_max_pool3d}


@dataclass
class ComputeLayer:
    """One row: a conv, pool, fc or flatten layer and what folds into it.

    ``records`` index ``analysis.layers`` and ``trace.records`` (the compute layer's own
    record first); ``events`` index ``trace.events``. A container record whose own code
    runs several layers (``F.max_pool2d`` then ``torch.flatten``) is split between them.
    ``filters`` is the output channels of a conv or the output features of an fc layer;
    ``kernel``, ``stride`` and ``padding`` are per spatial dimension. ``group`` is the
    branching module (inception module, residual block) the layer sits in, or None.
    ``receptive_field`` is the field of the layer's own output (:mod:`archstat.receptive`),
    None where it has none.
    """

    kind: str
    name: str
    records: list[int]
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: int = 0
    flops: int = 0
    #: a training analysis's backward and recomputation work (0 otherwise)
    backward_flops: int = 0
    activation_bytes: int = 0
    output_bytes: int = 0
    filters: int | None = None
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None
    group: str | None = None
    leaf: bool = True  # the layer is a module (not functional code of a container)
    events: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # module paths of all its records
    #: for a layer on a gating path (an SE block's fc layers), the larger side of the
    #: map its result scales (see :func:`gating_paths`), else None
    gates: int | None = None
    receptive_field: ReceptiveField | None = None

    @property
    def resolution(self) -> int:
        """The larger spatial side of the output; 1 for a vector (fc, flatten output) or a
        sequence (an fc or recurrent layer's N x L x D output, whose last side is features,
        not space). A layer on a gating path sits at the resolution of the map it scales:
        an SE block's fc layers belong to their block's stage, not to the classifier's."""
        if self.gates is not None:
            return self.gates
        shape = self.output_shape or ()
        spatial = len(shape) > 3 or (len(shape) == 3 and self.kind in ("conv", "pool"))
        return max(shape[2:]) if spatial else 1


@dataclass
class _Piece:
    """A record, or the part of a container record's own code that runs one layer."""

    record: int
    kind: str | None  # None: folds into the row before
    events: list[int]
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    output_bytes: int
    params: int
    flops: int


def _events(trace: Trace, index: int) -> list[OpEvent]:
    return [trace.events[i] for i in trace.records[index].events]


def record_events(trace: Trace, records: Iterable[int]) -> list[int]:
    """The event indices of ``records``, in execution order."""
    return [e for index in sorted(set(records)) for e in trace.records[index].events]


def _event_kind(event: OpEvent) -> str | None:
    """The layer an op starts in a container's own code: conv, fc, pool, flatten or None."""
    kind = _OP_KINDS.get(op_kind(event.op) or "")
    if kind is None and event.op.is_view and _flattens(_shape(event.args), _shape(event.out)):
        return "flatten"
    return kind


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Size):
        return tuple(value[0])
    return None


def _flattens(shape_in: tuple[int, ...] | None, shape_out: tuple[int, ...] | None) -> bool:
    return bool(shape_in and shape_out and len(shape_out) == 2 < len(shape_in))


def _record_kind(trace: Trace, index: int) -> str | None:
    """The kind of the layer a record is, or None if it folds into the previous row."""
    record = trace.records[index]
    events = _events(trace, index)
    kind = _TYPE_KINDS.get(record.type)
    if kind is None:
        kinds = {op_kind(e.op) for e in events}
        kind = next((k for op, k in _OP_KINDS.items() if op in kinds), None)
        if kind == "pool" and record.leaf:
            kind = None  # a leaf module that pools internally (LRN) is not a pool layer
        if kind is None and not record.leaf and _flattens(record.input_shape,
                                                           record.output_shape):
            kind = "flatten"
    if kind == "pool" and _identity_pool(record.input_shape, record.output_shape, events):
        return None
    return kind


def _identity_pool(shape_in: Any, shape_out: Any, events: list[OpEvent]) -> bool:
    return any(e.packet in _ADAPTIVE for e in events) and shape_in == shape_out


def _pieces(trace: Trace, convention: Any, counts: dict[str, Any], index: int
            ) -> list[_Piece]:
    """A record as one piece, or a container's own code split at each layer it runs."""
    record = trace.records[index]
    params = record.params
    flops = counts["flops"]
    starts = [i for i in record.events if _event_kind(trace.events[i])]
    if record.leaf or len(starts) < 2:
        out = record.outputs[0] if record.outputs else None
        # A container's stretch (a functional pool, a cat) reads what its first op reads;
        # the record itself shows the module call's input.
        first = trace.events[record.events[0]] if record.events and not record.leaf else None
        return [_Piece(index, _record_kind(trace, index), list(record.events),
                       _shape(first.args) if first else record.input_shape, record.output_shape,
                       trace.tensors[out].nbytes if out is not None else 0, params, flops)]
    # Several layers in one stretch of functional code: cost each op on its own.
    pieces: list[_Piece] = []
    for i in record.events:
        event = trace.events[i]
        kind = _event_kind(event) if i in starts else None
        if kind == "pool" and _identity_pool(_shape(event.args), _shape(event.out), [event]):
            kind = None
        if kind or not pieces:
            out = event.outputs[0] if event.outputs else None
            pieces.append(_Piece(index, kind, [], _shape(event.args), _shape(event.out),
                                 trace.tensors[out].nbytes if out is not None else 0,
                                 params if not pieces else 0, 0))
        pieces[-1].events.append(i)
        pieces[-1].flops += convention.cost(event) or 0
    return pieces


def _first_event(trace: Trace, events: list[int], kind: str) -> OpEvent | None:
    wanted = {k for k, v in _OP_KINDS.items() if v == kind}
    return next((trace.events[i] for i in events if op_kind(trace.events[i].op) in wanted), None)


def _geometry(layer: ComputeLayer, event: OpEvent | None) -> None:
    """Fill filters, kernel, stride and padding from the op the layer ran."""
    out = layer.output_shape or ()
    if layer.kind == "fc" and out:
        layer.filters = out[-1]
    if event is None or len(out) < 3:
        return
    dims = len(out) - 2
    if layer.kind == "conv":
        # convolution(input, weight, bias, stride, padding, dilation, transposed, ...)
        layer.filters = out[1]
        layer.kernel = tuple(event.args[1][2:])
        layer.stride = per_dim(event.args[3], dims, 1)
        layer.padding = per_dim(event.args[4], dims, 0)
    elif layer.kind == "pool":
        layer.kernel, layer.stride, layer.padding = _pool_geometry(event, layer, dims)


def _pool_geometry(event: OpEvent, layer: ComputeLayer, dims: int):
    args = event.args
    spatial_in = (layer.input_shape or ())[2:]
    spatial_out = (layer.output_shape or ())[2:]
    if event.packet in _ADAPTIVE or event.packet is aten.mean:
        # An adaptive pool has a fixed window only when its output divides its input.
        if all(i % o == 0 for i, o in zip(spatial_in, spatial_out, strict=True)):
            kernel = tuple(i // o for i, o in zip(spatial_in, spatial_out, strict=True))
            stride = kernel if any(o > 1 for o in spatial_out) else (1,) * dims
            return kernel, stride, (0,) * dims
        return None, None, None
    # max_pool2d_with_indices / avg_pool2d(input, kernel_size, stride=[], padding=0, ...);
    # trailing defaults are left out of the recorded args, an empty stride means kernel.
    kernel = per_dim(args[1], dims, 1)
    stride = per_dim(args[2] if len(args) > 2 else None, dims, 0)
    stride = kernel if not any(stride) else stride
    padding = per_dim(args[3] if len(args) > 3 else None, dims, 0)
    return kernel, stride, padding


def _merge_modules(trace: Trace) -> set[str]:
    """Modules whose own code joins two or more activations (a cat, a residual add)."""
    merges = set()
    for record in trace.records:
        if record.leaf or not record.name:
            continue
        for index in record.events:
            event = trace.events[index]
            flowing = [s for s in event.inputs if trace.tensors[s].role in ("activation", "input")]
            if len(set(flowing)) >= 2:
                merges.add(record.name)
                break
    return merges


def _group(name: str, merges: set[str]) -> str | None:
    owners = [m for m in merges if name.startswith(m + ".")]
    return max(owners, key=len) if owners else None


def compute_layers(analysis: Any) -> list[ComputeLayer]:
    """The analysis's records folded into compute layers (see the module docstring),
    costed from its trace under its own Convention object: the same at any depth the
    analysis is aggregated to, and for a custom convention."""
    from archstat.analysis import record_counts

    trace: Trace = analysis.trace
    merges = _merge_modules(trace)
    layers: list[ComputeLayer] = []
    counts = record_counts(trace, analysis.convention)
    fields = receptive_fields(trace)
    for index, record in enumerate(trace.records):
        for number, piece in enumerate(_pieces(trace, analysis.convention, counts[index],
                                               index)):
            if piece.kind is None and layers:
                layer = layers[-1]
            else:
                layer = ComputeLayer(piece.kind or "other", record.name, [], piece.input_shape,
                                     piece.output_shape, output_bytes=piece.output_bytes,
                                     group=_group(record.name, merges), leaf=record.leaf)
                _geometry(layer, _first_event(trace, piece.events, layer.kind))
                # a whole record's output, or the op that starts a stretch of a container's code
                layer.receptive_field = (fields.records[index] if piece.events == record.events
                                         else fields.event(piece.events[0]))
                layers.append(layer)
            if index not in layer.records:
                layer.records.append(index)
                layer.paths.append(record.name)
            layer.events += piece.events
            layer.params += piece.params
            layer.flops += piece.flops
            if trace.train and number == 0:  # a record's backward goes with its first piece
                layer.backward_flops += (counts[index]["backward_flops"]
                                         + counts[index]["recompute_flops"])
            layer.activation_bytes += sum(trace.events[i].allocated for i in piece.events)
    gating = gating_paths(trace)
    for layer in layers:
        sides = [gating[i] for i in layer.events if i in gating]
        if sides and layer.output_shape and _pooled(layer.output_shape):
            layer.gates = max(sides)
    return layers


_MULS = frozenset({aten.mul, aten.mul_})


def gate_input(trace: Trace, event: OpEvent) -> int | None:
    """For a multiply that scales a spatial map by a per-channel factor (N x C x 1 x 1
    broadcast over N x C x H x W: squeeze-and-excitation), the factor's serial."""
    if event.packet not in _MULS or len(event.inputs) != 2 or not event.outputs:
        return None
    out = trace.tensors[event.outputs[0]].shape
    if len(out) < 3 or math.prod(out[2:]) == 1:
        return None
    for serial in event.inputs:
        shape = trace.tensors[serial].shape
        if len(shape) == len(out) and math.prod(shape[2:]) == 1:
            return serial
    return None


def _pooled(shape: tuple[int, ...]) -> bool:
    """A vector, or a map squeezed to 1 x 1: what a gating path computes on."""
    return len(shape) <= 2 or math.prod(shape[2:]) == 1


def gating_paths(trace: Trace) -> dict[int, int]:
    """Forward event index -> the larger side of the map its result gates, for the ops
    between a global pool and a per-channel multiply (an SE block: pool, fc, activation,
    fc, sigmoid, then the map scaled channel by channel). Walks back from each gating
    multiply's factor through ops whose outputs are vectors or 1 x 1 maps, down to and
    including the pool that squeezed the map."""
    producer = {serial: index for index, event in enumerate(trace.events)
                for serial in event.outputs}
    gating: dict[int, int] = {}
    for event in trace.events:
        serial = gate_input(trace, event)
        if serial is None:
            continue
        side = max(trace.tensors[event.outputs[0]].shape[2:])
        stack = [serial]
        while stack:
            index = producer.get(stack.pop())
            if index is None or index in gating:
                continue
            gating[index] = side
            stack += [s for s in trace.events[index].inputs
                      if trace.tensors[s].role == "activation"
                      and _pooled(trace.tensors[s].shape)]
    return gating


def is_chain(trace: Trace, layers: Sequence[ComputeLayer]) -> bool:
    """True when every layer reads only what the layer before it (or itself) produced:
    a plain sequential network, without branches or skip connections."""
    producer: dict[int, int] = {}  # storage -> row that last wrote it
    for row, layer in enumerate(layers):
        for event in (trace.events[i] for i in layer.events):
            for serial in event.inputs:
                tensor = trace.tensors[serial]
                if tensor.role == "input" and row > 0:
                    return False
                if tensor.role == "activation" and producer.get(tensor.storage, row) < row - 1:
                    return False
            for serial in event.outputs:
                producer[trace.tensors[serial].storage] = row
    return True


def weight_depth(trace: Trace, events: Iterable[int]) -> int:
    """The longest path through conv, fc and recurrent layers among ``events``, following
    the data flow: GoogLeNet is 22 deep, VGG-16 16, ResNet-50 50 (a skip connection is
    shorter). A recurrent module call counts once, as in the layer count, however its
    kernel unrolls in time (a GRU on the CPU runs a matmul chain per time step). A gating
    path's layers (an SE block's fc layers, see :func:`gating_paths`) do not deepen the
    map they scale: SE-ResNet-50 is 50 deep, as its name says; nor does a conv that
    predicts where to sample (a deformable conv's offset conv, whose output is
    ``grid_sample``'s grid)."""
    level: dict[int, int] = {}  # tensor serial -> weight layers on the longest path to it
    made_in: dict[int, int] = {}  # tensor serial -> the recurrent record that made it
    unit: dict[int, int] = {}  # recurrent record -> its depth
    gating = gating_paths(trace)
    deepest = 0
    for index in sorted(set(events)):
        event = trace.events[index]
        if _TYPE_KINDS.get(trace.records[event.record].type) == "rnn":
            outside = max((level.get(s, 0) for s in event.inputs
                           if made_in.get(s) != event.record), default=0)
            depth = unit[event.record] = max(unit.get(event.record, 0), outside + 1)
            made_in.update(dict.fromkeys(event.outputs, event.record))
        else:
            # a per-channel gate does not deepen the map, nor do sampling positions (a
            # deformable conv's offsets: grid_sample's grid)
            gate = gate_input(trace, event)
            if event.packet is aten.grid_sampler_2d and len(event.inputs) == 2:
                gate = event.inputs[1]
            depth = max((level.get(s, 0) for s in event.inputs if s != gate), default=0)
            depth += op_kind(event.op) in ("conv", "linear")
        for serial in event.outputs:
            level[serial] = depth
        if index not in gating:
            deepest = max(deepest, depth)
    return deepest


def side(values: tuple[int, ...] | None) -> int | str | None:
    """Per-dimension values as the lecture prints them: ``3`` when all equal, ``1x7``
    otherwise; None stays None."""
    if not values:
        return None
    return values[0] if len(set(values)) == 1 else "x".join(map(str, values))


def spatial_str(shape: tuple[int, ...] | None) -> int | str | None:
    """The spatial size of an N x C x H x W shape: ``56`` when square, ``56x28``
    otherwise, None for a vector."""
    return side(shape[2:]) if shape and len(shape) > 2 else None


def numel(shape: tuple[int, ...] | None) -> int:
    return math.prod(shape) if shape else 0
