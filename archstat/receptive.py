"""Receptive fields, from a trace's data flow: which input pixels each unit of each tensor
a model computes can see, along each spatial axis.

The fields are measured on the model's first input of rank 3 or more, read as
N x C x spatial axes (H, W for an image), in input pixels, 0 being the first pixel.
Along each axis:

* a unit's **field** is the interval [first, last] of input pixels it depends on, counted
  as if the image went on past its borders: padding is read as more image (the usual
  "theoretical" receptive field, as Araujo et al. 2019, "Computing receptive fields of
  convolutional neural networks", compute it). A unit whose field lies inside the image
  depends on every pixel of its field, and on no other;
* ``size`` (``receptive_field``) is last - first + 1: r_i = r_{i-1} + (k_i - 1) d_i j_{i-1}
  along a chain of kernels k, dilations d and strides s, from r_0 = 1. After a transposed
  conv or an upsampling, neighbouring units can see different numbers of pixels; ``size``
  is then the largest;
* ``jump`` (the effective stride) is how far, in input pixels, the field moves from one
  unit to the next: j_i = j_{i-1} s_i, from j_0 = 1 (a fraction below 1 after upsampling);
* ``start`` (the offset) is the first pixel of the first unit's field: negative when the
  field reaches into the padding (it is minus Araujo's "effective padding"). Unit i's field
  starts at ``start + i * jump``; its centre is ``start + i * jump + (size - 1) / 2``.
  The start is chosen over the centre because it is always a whole pixel.

Where paths meet (a residual add, an inception or dense concatenation) a unit sees the
union of the paths' fields: ``size`` is the extent of that union (the largest path's field
when the fields are nested, as they are in residual, inception and dense blocks) and
``size_min`` is the smallest field of a single path (a ResNet's path through its
shortcuts: resnet18 ends at 11 pixels that way, against 435 through every conv).

Every op maps fields by what it reads, from its shapes and arguments: convolutions
(padding, dilation, strides, transposed, groups), max and average pooling, adaptive
pooling (its windows at the traced size), padding, cropping and splits, upsampling
(nearest, linear, bicubic), pixel shuffles, and every view, permutation and
concatenation that keeps the spatial axes apart. Elementwise ops, activations and
normalisations pass the field on (group, layer and training-mode batch norm statistics
over the positions are left out, as every receptive-field count does). An operand
broadcast over the positions, such as a squeeze-and-excitation gate (N x C x 1 x 1),
scales the map without adding to its field and is left out the same way.

A field is **None** (null) once every unit depends on every position, whatever the input
size: after a global pool (an adaptive pool to size 1, a mean or max over a spatial axis),
an fc layer on a flattened map, attention (a product of two position-dependent operands),
or an op that samples at positions the data gives (``grid_sample``, a deformable conv).
Such a unit's field is the whole input, which is a property of the input and not of the
network; a number there would only repeat the image size. A field is None, too, after
an op archstat has no spatial rule for, and for tensors that do not depend on the input.
And every field is None when no convolution, pool, upsampling or pixel shuffle reads the
input's spatial axes anywhere in the trace: a transformer, an MLP or an RNN on N x L x D
tokens has no spatial axis, and the rule above would read its features D as one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

import torch

from archstat.trace.ops import OpEvent, op_kind, per_dim
from archstat.trace.tracer import Trace

aten = torch.ops.aten

#: The row columns a field fills (see :meth:`ReceptiveField.columns`).
FIELD_COLUMNS = ["receptive_field", "receptive_field_min", "receptive_field_jump",
                 "receptive_field_start"]

# The longest period (in units) a field may take before it is given up: only chains of
# upsamplings by factors with no common divisor come near it.
_MAX_PERIOD = 4096


class _Span(NamedTuple):
    """The fields of the units along one axis of a tensor, periodic: unit ``q * period + r``
    sees input pixels ``lo[r] + q * shift`` to ``hi[r] + q * shift`` (None: nothing). A
    plain conv net has period 1; a transposed conv of stride s makes it s. ``size`` is
    the largest field's (see :func:`_span`)."""

    period: int
    shift: int
    lo: tuple[int | None, ...]
    hi: tuple[int | None, ...]
    size: int

    def at(self, unit: int) -> tuple[int, int] | None:
        q, r = divmod(unit, self.period)
        lo = self.lo[r]
        return None if lo is None else (lo + q * self.shift, self.hi[r] + q * self.shift)


_POINT = _Span(1, 1, (0,), (0,), 1)  # the input itself: unit i sees pixel i


class _Window(NamedTuple):
    """What an op reads along one axis: output unit ``q * period + r`` reads input units
    ``taps[r] + q * step``."""

    period: int
    step: int
    taps: tuple[tuple[int, ...], ...]


def _moved(value: int | None, by: int) -> int | None:
    return None if value is None else value + by


def _span(period: int, shift: int, lo: list[int | None], hi: list[int | None]) -> _Span:
    """The span, at its shortest period."""
    for p in range(1, period):
        if period % p or (shift * p) % period:
            continue
        by = shift * p // period
        if all(_moved(lo[o], by) == lo[o + p] and _moved(hi[o], by) == hi[o + p]
               for o in range(period - p)):
            period, shift, lo, hi = p, by, lo[:p], hi[:p]
            break
    size = max((h - f + 1 for f, h in zip(lo, hi, strict=True) if f is not None), default=0)
    return _Span(period, shift, tuple(lo), tuple(hi), size)


def _compose(span: _Span, window: _Window) -> _Span | None:
    """The fields of an op's output units, from its input's ``span`` and what it reads."""
    if span.period == 1 == window.period and span.shift >= 0 and span.lo[0] is not None:
        taps = window.taps[0]  # a conv or a pool on a plain map: r += (k - 1) d j
        lo, hi = span.lo[0] + min(taps) * span.shift, span.hi[0] + max(taps) * span.shift
        return _Span(1, window.step * span.shift, (lo,), (hi,), hi - lo + 1)
    repeat = span.period // math.gcd(window.step, span.period)
    period = repeat * window.period
    if period > _MAX_PERIOD:
        return None
    lo: list[int | None] = []
    hi: list[int | None] = []
    for unit in range(period):
        q, r = divmod(unit, window.period)
        seen = [f for f in (span.at(t + q * window.step) for t in window.taps[r]) if f]
        lo.append(min(f[0] for f in seen) if seen else None)
        hi.append(max(f[1] for f in seen) if seen else None)
    return _span(period, repeat * window.step // span.period * span.shift, lo, hi)


def _union(a: _Span, b: _Span) -> _Span | None:
    """Unit by unit, the extent of two spans' fields (None: they move at different rates)."""
    if a.period == 1 == b.period and a.shift == b.shift and None not in (a.lo[0], b.lo[0]):
        lo, hi = min(a.lo[0], b.lo[0]), max(a.hi[0], b.hi[0])
        return _Span(1, a.shift, (lo,), (hi,), hi - lo + 1)
    period = math.lcm(a.period, b.period)
    shift = a.shift * (period // a.period)
    if period > _MAX_PERIOD or shift != b.shift * (period // b.period):
        return None
    lo: list[int | None] = []
    hi: list[int | None] = []
    for unit in range(period):
        seen = [f for f in (a.at(unit), b.at(unit)) if f]
        lo.append(min(f[0] for f in seen) if seen else None)
        hi.append(max(f[1] for f in seen) if seen else None)
    return _span(period, shift, lo, hi)


def _area(spans: Sequence[_Span]) -> int:
    return math.prod(s.size for s in spans)


class _State(NamedTuple):
    """The fields of one tensor. ``axes`` places each spatial axis of the input (in its
    order) in the tensor: (dim, inner, length), ``inner`` being the product of the sizes
    that follow it inside the same dim (1 unless a view merged it with others, as
    ``x.view(N * H * W, C)`` does). ``wide`` is the union over paths (None when some path
    reads every position), ``narrow`` the smallest single path's fields."""

    axes: tuple[tuple[int, int, int], ...]
    wide: tuple[_Span, ...] | None
    narrow: tuple[_Span, ...]

    def moved(self, dims: Callable[[int], int]) -> _State:
        return _State(tuple((dims(d), inner, n) for d, inner, n in self.axes), self.wide,
                      self.narrow)


_FREE = object()  # a result that does not depend on the input

Result = Any  # _State, None (no field) or _FREE; or a list of them, one per output


@dataclass(frozen=True)
class ReceptiveField:
    """The field of a tensor's units, per spatial axis of the input (H, W for an image),
    in input pixels (see the module docstring for the definitions).

    ``size`` is the extent of the union over paths (None when some path reads every
    position), ``size_min`` the smallest single path's field; ``jump`` (exact fractions,
    whole numbers in every plain conv net) and ``start`` are the union's, None with it.
    """

    size: tuple[int, ...] | None
    size_min: tuple[int, ...]
    jump: tuple[int | Fraction, ...] | None
    start: tuple[int | None, ...] | None
    spans: tuple[_Span, ...] | None  # the union's fields, unit by unit

    @classmethod
    def of(cls, state: _State) -> ReceptiveField:
        wide = state.wide
        return cls(
            size=tuple(s.size for s in wide) if wide else None,
            size_min=tuple(s.size for s in state.narrow),
            jump=tuple(s.shift if s.period == 1 else Fraction(s.shift, s.period)
                       for s in wide) if wide else None,
            start=tuple(s.lo[0] for s in wide) if wide else None,
            spans=wide,
        )

    def bounds(self, unit: Sequence[int]) -> list[tuple[int, int] | None] | None:
        """The first and last input pixel of one unit's field along each axis (``unit``
        gives its position along each spatial axis), past the image's borders where the
        field reaches into the padding; None when the field is the whole input."""
        if self.spans is None:
            return None
        return [span.at(i) for span, i in zip(self.spans, unit, strict=True)]

    def columns(self) -> dict[str, Any]:
        """The row values: each an int when the axes agree, else a tuple per axis (H, W);
        a jump below one pixel is a float (a list of values when the axes differ)."""
        return {"receptive_field": _per_axis(self.size),
                "receptive_field_min": _per_axis(self.size_min),
                "receptive_field_jump": _per_axis(self.jump),
                "receptive_field_start": _per_axis(self.start)}


NO_FIELD: dict[str, Any] = dict.fromkeys(FIELD_COLUMNS)


def field_columns(field: ReceptiveField | None) -> dict[str, Any]:
    """:meth:`ReceptiveField.columns`, all None for no field."""
    return dict(NO_FIELD) if field is None else field.columns()


def _per_axis(values: Sequence[Any] | None) -> Any:
    if values is None:
        return None
    plain = [int(v) if isinstance(v, Fraction) and v.denominator == 1 else
             float(v) if isinstance(v, Fraction) else v for v in values]
    if len(set(plain)) == 1:
        return plain[0]
    return tuple(plain) if all(isinstance(v, int) for v in plain) else plain


@dataclass
class TraceFields:
    """The receptive fields of a trace: ``records[i]`` is the field of record i's first
    output as the record left it; :meth:`event` that of an op's first output."""

    records: list[ReceptiveField | None]
    _events: list[Result]

    def event(self, index: int) -> ReceptiveField | None:
        """The field of event ``index``'s first output, right after the op ran."""
        state = self._events[index]
        return ReceptiveField.of(state) if isinstance(state, _State) else None


def receptive_fields(trace: Trace) -> TraceFields:
    """The receptive fields of every record and op of ``trace``, in one pass over its
    events (a pure function of the trace: shapes, arguments and tensor serials)."""
    flow = _Flow(trace)
    records: list[ReceptiveField | None] = []
    done = 0
    for record in trace.records:
        for index in record.events:
            while done <= index:
                flow.step(done)
                done += 1
        state = flow.states.get(record.outputs[0], _FREE) if record.outputs else _FREE
        records.append(ReceptiveField.of(state) if isinstance(state, _State) else None)
    while done < len(trace.events):
        flow.step(done)
        done += 1
    if not flow.spatial:  # no axis of the input was read as positions
        return TraceFields([None] * len(records), [_FREE] * len(flow.after))
    return TraceFields(records, flow.after)


# -- the pass ---------------------------------------------------------------------------

class _Flow:
    """Fields of the tensors as the events run: ``states`` maps a tensor serial to its
    _State, or None (no field); a tensor that does not depend on the input is absent."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.states: dict[int, _State | None] = {}
        self.after: list[Result] = []
        self.spatial = False  # has a conv, pool or resampling read the input's axes?
        seed = next((s for s, m in enumerate(trace.tensors)
                     if m.role == "input" and len(m.shape) >= 3), None)
        if seed is not None:
            shape = trace.tensors[seed].shape
            spatial = range(2, len(shape))
            self.states[seed] = _State(tuple((d, 1, shape[d]) for d in spatial),
                                           (_POINT,) * len(spatial), (_POINT,) * len(spatial))

    def shape(self, serial: int) -> tuple[int, ...]:
        return self.trace.tensors[serial].shape

    def step(self, index: int) -> None:
        event = self.trace.events[index]
        if any(s in self.states for s in event.inputs):
            rule = _RULES.get(event.packet) or _KIND_RULES.get(op_kind(event.op) or "", _lost)
            result = rule(self, event)
        else:
            result = _FREE
        out = self.shape(event.outputs[0]) if event.outputs else ()
        results = result if isinstance(result, list) else [
            _fits(result, out, self.shape(serial)) if number else result
            for number, serial in enumerate(event.outputs)]
        for serial, value in zip(event.outputs, results, strict=True):
            if value is _FREE:
                self.states.pop(serial, None)
            else:
                self.states[serial] = value
        self.after.append(results[0] if event.outputs else _FREE)

    # -- the rules' tools --
    def windowed(self, serial: int, out_shape: Sequence[int],
                 windows: dict[int, _Window | None], keep: set[int],
                 spatial: bool = False) -> Result:
        """An op that reads ``windows[dim]`` along each windowed dim (None: every position)
        and keeps the dims in ``keep`` apart (batch; channels for a pool). ``spatial``: the
        op is a conv, pool or resampling, which shows the axes it reads are positions."""
        state = self.states.get(serial, _FREE)
        if not isinstance(state, _State):
            return state
        shape = self.shape(serial)
        axes, wide, narrow = [], [], []
        for i, (dim, inner, length) in enumerate(state.axes):
            if dim in windows:
                window = windows[dim]
                if window is None or inner != 1 or length != shape[dim]:
                    return None
                spans = (_compose(state.narrow[i], window),
                         _compose(state.wide[i], window) if state.wide else None)
                if spans[0] is None or (state.wide and spans[1] is None):
                    return None
                axes.append((dim, 1, out_shape[dim]))
                self.spatial = self.spatial or spatial
                narrow.append(spans[0])
                wide.append(spans[1])
            elif dim in keep:
                axes.append((dim, inner, length))
                narrow.append(state.narrow[i])
                wide.append(state.wide[i] if state.wide else None)
            else:
                return None  # the op mixes the positions this dim holds (a conv's channels)
        return _State(tuple(axes), tuple(wide) if state.wide else None, tuple(narrow))

    def merged(self, serials: Sequence[int], out_shape: Sequence[int]) -> Result:
        """Several operands read position by position (broadcast to ``out_shape``): the
        union of their fields, and the smallest path. An operand broadcast along the
        positions (an SE gate) is left out."""
        rank = len(out_shape)
        entries = []
        for serial in dict.fromkeys(serials):
            if serial not in self.states:
                continue
            shape = self.shape(serial)
            offset = rank - len(shape)
            if offset < 0:
                return None
            state = self.states[serial]
            if state is not None and offset:
                state = state.moved(lambda d, o=offset: d + o)
            entries.append((state, shape, offset))
        if not entries:
            return _FREE
        positions = {d for state, _, _ in entries if state is not None for d, _, _ in state.axes}
        taken = [state for state, shape, offset in entries
                 if not any(d < offset or (shape[d - offset] == 1 and out_shape[d] != 1)
                            for d in positions)]
        fields = [state for state in taken if state is not None]
        if not fields or any(state.axes != fields[0].axes for state in fields):
            return None
        wide: tuple[_Span, ...] | None = None
        if all(state is not None and state.wide is not None for state in taken):
            wide = fields[0].wide
            for state in fields[1:]:
                joined = [_union(a, b) for a, b in zip(wide, state.wide, strict=True)]
                if any(span is None for span in joined):
                    wide = None
                    break
                wide = tuple(joined)
        narrow = min(fields, key=lambda state: _area(state.narrow)).narrow
        return _State(fields[0].axes, wide, narrow)

    def relaid(self, serial: int, place: Callable[[_State], _State | None]) -> Result:
        state = self.states.get(serial, _FREE)
        return place(state) if isinstance(state, _State) else state


def _fits(result: Result, first: Sequence[int], shape: Sequence[int]) -> Result:
    """The first output's result for another output of the op (max pooling's indices,
    the second part of a split along the channels): the same where the other output has
    the same sizes along the spatial axes, else no field."""
    if not isinstance(result, _State):
        return result
    same = len(shape) == len(first) and all(shape[d] == first[d] for d, _, _ in result.axes)
    return result if same else None


# -- arguments --------------------------------------------------------------------------

def _arg(event: OpEvent, index: int, name: str, default: Any) -> Any:
    if len(event.args) > index:
        return event.args[index]
    return event.kwargs.get(name, default)


def _dim(dim: int, rank: int) -> int:
    return dim + rank if dim < 0 else dim


def _dims_of(value: Any, rank: int) -> set[int] | None:
    """A dim argument as a set of dims (None: every dim)."""
    if value is None or value == []:
        return None
    values = [value] if isinstance(value, int) else list(value)
    return {_dim(int(d), rank) for d in values}


def _holds(state: _State, dims: set[int] | None) -> bool:
    return any(dims is None or d in dims for d, _, _ in state.axes)


# -- windows ----------------------------------------------------------------------------

def _strided(kernel: int, stride: int, padding: int, dilation: int) -> _Window:
    return _Window(1, stride, (tuple(k * dilation - padding for k in range(kernel)),))


def _transposed(kernel: int, stride: int, padding: int, dilation: int) -> _Window:
    # Output o receives input i where o = i * stride - padding + k * dilation.
    taps = tuple(tuple((r + padding - k * dilation) // stride for k in range(kernel)
                       if (r + padding - k * dilation) % stride == 0)
                 for r in range(stride))
    return _Window(stride, 1, taps)


def _resampled(n: int, m: int, taps: Callable[[int, Fraction], tuple[int, ...]],
               ratio: Fraction | None = None) -> _Window:
    """An op whose output unit o reads taps(o, ratio) (ratio: input units per output unit),
    periodic over m / gcd(n, m) units."""
    ratio = Fraction(n, m) if ratio is None else ratio
    period = ratio.denominator
    return _Window(period, ratio.numerator, tuple(taps(o, ratio) for o in range(period)))


def _adaptive(n: int, m: int) -> _Window | None:
    if m == 1 and n > 1:
        return None  # a global pool
    # Output o pools input units floor(o n / m) to ceil((o + 1) n / m) - 1.
    return _resampled(n, m, lambda o, x: tuple(range(math.floor(o * x),
                                                    math.ceil((o + 1) * x))))


def _linear_taps(width: int) -> Callable[[Fraction], tuple[int, ...]]:
    """The input units an interpolation of ``width`` taps (2: linear, 4: cubic) reads at
    source position ``src`` (one unit when src falls on it: the others weigh 0)."""
    def taps(src: Fraction) -> tuple[int, ...]:
        base = math.floor(src)
        if src == base:
            return (base,)
        return tuple(range(base - width // 2 + 1, base + width // 2 + 1))

    return taps


def _interpolated(n: int, m: int, width: int, align_corners: bool) -> _Window:
    taps = _linear_taps(width)
    if align_corners:
        if m == 1:
            return _Window(1, 0, ((0,),))
        return _resampled(n - 1, m - 1, lambda o, x: taps(o * x))
    return _resampled(n, m, lambda o, x: taps((o + Fraction(1, 2)) * x - Fraction(1, 2)))


# -- rules: each maps an event to the result for its outputs ----------------------------

Rule = Callable[[_Flow, OpEvent], Result]


def _lost(flow: _Flow, event: OpEvent) -> Result:
    """An op without a spatial rule: its result has no field."""
    return None


def _free(flow: _Flow, event: OpEvent) -> Result:
    return _FREE


def _out(flow: _Flow, event: OpEvent) -> tuple[int, ...]:
    return flow.shape(event.outputs[0])


def _pointwise(flow: _Flow, event: OpEvent) -> Result:
    return flow.merged(event.inputs, _out(flow, event))


def _convolution(flow: _Flow, event: OpEvent) -> Result:
    # convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding,
    # groups)
    if any(s in flow.states for s in event.inputs[1:]):
        return None  # weights computed from the input (a dynamic filter)
    kernel = tuple(event.args[1][2:])
    dims = len(kernel)
    stride, padding, dilation = (per_dim(_arg(event, i, name, None), dims, default)
                                 for i, name, default in ((3, "stride", 1), (4, "padding", 0),
                                                          (5, "dilation", 1)))
    make = _transposed if _arg(event, 6, "transposed", False) else _strided
    windows = {2 + i: make(kernel[i], stride[i], padding[i], dilation[i]) for i in range(dims)}
    return flow.windowed(event.inputs[0], _out(flow, event), windows, keep={0}, spatial=True)


def _pool(dims: int, dilated: bool) -> Rule:
    """max_pool (input, kernel, stride=kernel, padding=0, dilation=1, ceil_mode) and
    avg_pool (input, kernel, stride=kernel, padding=0, ceil_mode, ...), over the last
    ``dims`` dims (ceil_mode changes how many units there are, not what they read)."""
    def rule(flow: _Flow, event: OpEvent) -> Result:
        kernel = per_dim(event.args[1], dims, 1)
        stride = per_dim(_arg(event, 2, "stride", None), dims, 0)
        stride = kernel if not any(stride) else stride
        padding = per_dim(_arg(event, 3, "padding", None), dims, 0)
        dilation = per_dim(_arg(event, 4, "dilation", None) if dilated else None, dims, 1)
        return _spatial(flow, event, dims, lambda i, n, m: _strided(
            kernel[i], stride[i], padding[i], dilation[i]))

    return rule


def _spatial(flow: _Flow, event: OpEvent, dims: int,
             window: Callable[[int, int, int], _Window | None]) -> Result:
    """An op over the last ``dims`` dims of its first input that keeps the others apart;
    ``window(i, n, m)`` reads along the i-th of them, of n units in and m out."""
    serial = event.inputs[0]
    if any(s in flow.states for s in event.inputs[1:]):
        return None
    shape, out = flow.shape(serial), _out(flow, event)
    rank = len(shape)
    windows = {rank - dims + i: window(i, shape[rank - dims + i], out[rank - dims + i])
               for i in range(dims)}
    return flow.windowed(serial, out, windows, keep=set(range(rank - dims)), spatial=True)


def _adaptive_pool(dims: int) -> Rule:
    return lambda flow, event: _spatial(flow, event, dims, lambda i, n, m: _adaptive(n, m))


def _upsample(dims: int, kind: str) -> Rule:
    """Nearest (floor(o n / m)), nearest-exact (floor((o + 1/2) n / m)), linear and cubic
    interpolation (align_corners is the third argument); the scale is the ratio of the
    sizes, which is the scale torch uses for any whole factor."""
    def window(event: OpEvent) -> Callable[[int, int, int], _Window]:
        if kind == "nearest":
            return lambda i, n, m: _resampled(n, m, lambda o, x: (math.floor(o * x),))
        if kind == "exact":
            return lambda i, n, m: _resampled(
                n, m, lambda o, x: (math.floor((o + Fraction(1, 2)) * x),))
        align = bool(_arg(event, 2, "align_corners", False))
        width = 4 if kind == "cubic" else 2
        return lambda i, n, m: _interpolated(n, m, width, align)

    return lambda flow, event: _spatial(flow, event, dims, window(event))


def _pixel_shuffle(flow: _Flow, event: OpEvent) -> Result:
    r = int(event.args[1])  # output unit o along H or W comes from input unit o // r
    return _spatial(flow, event, 2, lambda i, n, m: _Window(r, 1, ((0,),) * r))


def _pixel_unshuffle(flow: _Flow, event: OpEvent) -> Result:
    r = int(event.args[1])
    return _spatial(flow, event, 2, lambda i, n, m: _Window(1, r, (tuple(range(r)),)))


def _padded(flow: _Flow, event: OpEvent) -> Result:
    """constant_pad_nd / reflection_pad / replication_pad (input, pad): pairs (before,
    after) from the last dim back; reflected or replicated borders are read as more image."""
    pads = list(event.args[1])
    serial = event.inputs[0]
    rank = len(flow.shape(serial))
    before = {rank - 1 - i // 2: pads[i] for i in range(0, len(pads), 2)}
    windows = {d: _Window(1, 1, ((-p,),)) for d, p in before.items()}
    return flow.windowed(serial, _out(flow, event), windows,
                         keep=set(range(rank)) - set(windows))


def _slice(flow: _Flow, event: OpEvent) -> Result:
    # slice(input, dim=0, start=None, end=None, step=1)
    serial = event.inputs[0]
    shape = flow.shape(serial)
    dim = _dim(int(_arg(event, 1, "dim", 0)), len(shape))
    start = _arg(event, 2, "start", None) or 0
    start = min(max(start + shape[dim] if start < 0 else start, 0), shape[dim])
    step = int(_arg(event, 4, "step", 1) or 1)
    return flow.windowed(serial, _out(flow, event), {dim: _Window(1, step, ((start,),))},
                         keep=set(range(len(shape))) - {dim})


def _reshaped(flow: _Flow, event: OpEvent) -> Result:
    """A view, reshape, squeeze, unsqueeze, flatten or copy: element order is kept, so
    each spatial axis is found again among the new dims (or merged into one)."""
    serial = event.inputs[0]
    before, after = flow.shape(serial), _out(flow, event)
    return flow.relaid(serial, lambda state: _relaid(state, before, after))


def _relaid(state: _State, before: Sequence[int], after: Sequence[int]) -> _State | None:
    if tuple(before) == tuple(after):
        return state
    if 0 in before:
        return None
    axes = []
    for dim, inner, length in state.axes:
        stride = inner * math.prod(before[dim + 1:])  # elements between two units
        suffix, placed = 1, None
        for b in range(len(after) - 1, -1, -1):
            if suffix <= stride < suffix * after[b]:
                inner_b = stride // suffix
                if stride % suffix == 0 and after[b] % (inner_b * length) == 0:
                    placed = (b, inner_b, length)
                break
            suffix *= after[b]
        if placed is None:
            return None
        axes.append(placed)
    return _State(tuple(axes), state.wide, state.narrow)


def _permuted(flow: _Flow, event: OpEvent) -> Result:
    serial = event.inputs[0]
    rank = len(flow.shape(serial))
    name = event.packet.__name__
    if name == "permute":
        order = [_dim(int(d), rank) for d in event.args[1]]
    else:  # transpose(input, dim0, dim1), t(input)
        a, b = ((_dim(int(event.args[1]), rank), _dim(int(event.args[2]), rank))
                if name.startswith("transpose") else (0, min(1, rank - 1)))
        order = list(range(rank))
        order[a], order[b] = order[b], order[a]
    return flow.relaid(serial, lambda state: state.moved(order.index))


def _expanded(flow: _Flow, event: OpEvent) -> Result:
    serial = event.inputs[0]
    before, after = flow.shape(serial), _out(flow, event)
    offset = len(after) - len(before)

    def place(state: _State) -> _State | None:
        moved = state.moved(lambda d: d + offset)
        return moved if all(after[d] == before[d - offset] for d, _, _ in moved.axes) else None

    return flow.relaid(serial, place)


def _along(index: int, name: str, default: Any = 0) -> Rule:
    """An op that works along one dim (softmax, cumsum, index_select, roll, flip, sort):
    no field when that dim holds a spatial axis, else the field passes."""
    def rule(flow: _Flow, event: OpEvent) -> Result:
        serial = event.inputs[0]
        rank = len(flow.shape(serial))
        dims = _dims_of(_arg(event, index, name, default), rank)
        if any(s in flow.states for s in event.inputs[1:]):
            return None
        return flow.relaid(serial, lambda state: None if _holds(state, dims) else state)

    return rule


def _split(flow: _Flow, event: OpEvent) -> Result:
    """split / split_with_sizes / chunk (input, sizes, dim=0): along a spatial axis each
    part is a crop, starting where the parts before it end; along another dim each part
    keeps the field."""
    serial = event.inputs[0]
    shape = flow.shape(serial)
    dim = _dim(int(_arg(event, 2, "dim", 0)), len(shape))
    state = flow.states.get(serial, _FREE)
    if not isinstance(state, _State) or not _holds(state, {dim}):
        return [_fits(state, shape, flow.shape(out)) for out in event.outputs]
    keep = set(range(len(shape))) - {dim}
    results, start = [], 0
    for out in event.outputs:
        part = flow.shape(out)
        results.append(flow.windowed(serial, part, {dim: _Window(1, 1, ((start,),))}, keep))
        start += part[dim]
    return results


def _dropped(index: int, name: str) -> Rule:
    """select(input, dim, i) / unbind(input, dim): the dim goes away."""
    def rule(flow: _Flow, event: OpEvent) -> Result:
        serial = event.inputs[0]
        dim = _dim(int(_arg(event, index, name, 0)), len(flow.shape(serial)))

        def place(state: _State) -> _State | None:
            if _holds(state, {dim}):
                return None
            return state.moved(lambda d: d - (d > dim))

        return flow.relaid(serial, place)

    return rule


def _reduced(index: int, name: str) -> Rule:
    """A reduction over dims (mean, sum, amax, var, norm, ...): over a spatial axis it is a
    global pool; over others the field passes (a dim kept with keepdim, else dropped)."""
    def rule(flow: _Flow, event: OpEvent) -> Result:
        value = _arg(event, index, name, None)
        if isinstance(value, torch.Size):  # max(a, b), min(a, b): elementwise
            return _pointwise(flow, event)
        serial = event.inputs[0]
        before, after = flow.shape(serial), _out(flow, event)
        # var(input, unbiased) and the like: a flag where the dims would be, over every dim
        dims = _dims_of(None if isinstance(value, bool) else value, len(before))
        if dims is None:
            return None if serial in flow.states else _FREE

        def place(state: _State) -> _State | None:
            if _holds(state, dims):
                return None
            if len(after) == len(before):
                return state
            return state.moved(lambda d: d - sum(r < d for r in dims))

        return flow.relaid(serial, place)

    return rule


def _cat(flow: _Flow, event: OpEvent) -> Result:
    # cat(tensors, dim=0): along a spatial axis the maps sit side by side (no one field)
    out = _out(flow, event)
    dim = _dim(int(_arg(event, 1, "dim", 0)), len(out))
    states = [flow.states.get(s) for s in event.inputs if s in flow.states]
    if any(state is not None and _holds(state, {dim}) for state in states):
        return None
    return flow.merged(event.inputs, out)


def _stack(flow: _Flow, event: OpEvent) -> Result:
    out = _out(flow, event)
    dim = _dim(int(_arg(event, 1, "dim", 0)), len(out))
    states = [flow.states.get(s, _FREE) for s in dict.fromkeys(event.inputs)]
    moved = [state.moved(lambda d: d + (d >= dim)) if isinstance(state, _State) else state
             for state in states]
    fields = [state for state in moved if isinstance(state, _State)]
    if any(state is None for state in moved) or not fields:
        return None if fields or None in moved else _FREE
    if any(state.axes != fields[0].axes for state in fields):
        return None
    return _merge_states(fields)


def _merge_states(fields: list[_State]) -> Result:
    wide: tuple[_Span, ...] | None = fields[0].wide
    for state in fields[1:]:
        if wide is None or state.wide is None:
            wide = None
            break
        joined = [_union(a, b) for a, b in zip(wide, state.wide, strict=True)]
        wide = None if any(s is None for s in joined) else tuple(joined)
    narrow = min(fields, key=lambda state: _area(state.narrow)).narrow
    return _State(fields[0].axes, wide, narrow)


def _copy(flow: _Flow, event: OpEvent) -> Result:
    """copy_(dst, src): dst now holds src."""
    return flow.merged(event.inputs[1:2], _out(flow, event))


def _matmul(flow: _Flow, event: OpEvent) -> Result:
    """mm / bmm (A, B) and addmm / baddbmm (C, A, B): [.., M, K] @ [.., K, N]. Positions
    on A's rows or B's columns stay apart (an fc layer applied at every position); on K
    they are summed over (an fc on a flattened map); on both operands they meet
    (attention): no field."""
    added = event.packet in (aten.addmm, aten.baddbmm)
    a, b = event.inputs[1:3] if added else event.inputs[:2]
    if added and event.inputs[0] in flow.states:
        return None
    left, right = a in flow.states, b in flow.states
    if left and right:
        return None
    serial = a if left else b
    rank = len(flow.shape(serial))
    contracted = rank - 1 if left else rank - 2

    def place(state: _State) -> _State | None:
        if _holds(state, {contracted}):
            return None
        return state if left else state.moved(lambda d: rank - 1 if d == rank - 2 else d)

    return flow.relaid(serial, place)


_RULES: dict[Any, Rule] = {}


def _rule(rule: Rule, *packets: Any) -> None:
    for packet in packets:
        if packet in _RULES:
            raise ValueError(f"op {packet} already has a receptive-field rule")
        _RULES[packet] = rule


def _ops(*names: str) -> list[Any]:
    """The aten packets of these names that this torch has."""
    return [getattr(aten, name) for name in names if hasattr(aten, name)]


_rule(_convolution, aten.convolution, aten._convolution)
_rule(_pool(1, True), *_ops("max_pool1d", "max_pool1d_with_indices"))
_rule(_pool(2, True), *_ops("max_pool2d", "max_pool2d_with_indices"))
_rule(_pool(3, True), *_ops("max_pool3d", "max_pool3d_with_indices"))
_rule(_pool(1, False), aten.avg_pool1d)
_rule(_pool(2, False), aten.avg_pool2d)
_rule(_pool(3, False), aten.avg_pool3d)
_rule(_adaptive_pool(1), *_ops("adaptive_avg_pool1d", "adaptive_max_pool1d"))
_rule(_adaptive_pool(2), *_ops("_adaptive_avg_pool2d", "adaptive_avg_pool2d",
                               "adaptive_max_pool2d"))
_rule(_adaptive_pool(3), *_ops("_adaptive_avg_pool3d", "adaptive_avg_pool3d",
                               "adaptive_max_pool3d"))
_rule(_upsample(1, "nearest"), aten.upsample_nearest1d)
_rule(_upsample(2, "nearest"), aten.upsample_nearest2d)
_rule(_upsample(3, "nearest"), aten.upsample_nearest3d)
_rule(_upsample(1, "exact"), *_ops("_upsample_nearest_exact1d"))
_rule(_upsample(2, "exact"), *_ops("_upsample_nearest_exact2d"))
_rule(_upsample(3, "exact"), *_ops("_upsample_nearest_exact3d"))
_rule(_upsample(1, "linear"), aten.upsample_linear1d)
_rule(_upsample(2, "linear"), aten.upsample_bilinear2d)
_rule(_upsample(3, "linear"), aten.upsample_trilinear3d)
_rule(_upsample(2, "cubic"), aten.upsample_bicubic2d)
_rule(_pixel_shuffle, aten.pixel_shuffle)
_rule(_pixel_unshuffle, *_ops("pixel_unshuffle"))
_rule(_padded, aten.constant_pad_nd, *_ops(
    "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
    "replication_pad2d", "replication_pad3d"))
_rule(_slice, aten.slice)
_rule(_reshaped, aten.view, aten._unsafe_view, aten.reshape, aten.squeeze, aten.unsqueeze,
      aten.alias, aten.detach, aten.clone, aten._to_copy, aten.lift_fresh, *_ops(
          "flatten", "unflatten", "lift_fresh_copy", "contiguous", "view_as",
          "_reshape_alias", "squeeze_", "unsqueeze_", "view_copy", "_reshape_copy"))
_rule(_permuted, aten.permute, aten.transpose, aten.t, *_ops("transpose_", "t_"))
_rule(_expanded, aten.expand)
_rule(_along(1, "dim"), aten._softmax, aten._log_softmax, aten._safe_softmax, aten.cumsum,
      aten.cumprod, aten.index_select)
_rule(_split, aten.split, aten.split_with_sizes, aten.unsafe_split,
      aten.unsafe_split_with_sizes, aten.chunk, aten.unsafe_chunk)
_rule(_along(1, "dim", -1), aten.sort, aten.argsort)
_rule(_along(2, "dims", []), aten.roll)
_rule(_along(1, "dims"), aten.flip)
_rule(_along(2, "dim", -1), aten.topk)
_rule(_dropped(1, "dim"), aten.select, aten.unbind)
_rule(_reduced(1, "dim"), aten.mean, aten.sum, aten.amax, aten.amin, aten.max, aten.min,
      aten.var, aten.std, aten.var_mean, aten.logsumexp, aten.prod, aten.argmax,
      aten.argmin, aten.all, aten.any)
_rule(_reduced(2, "dim"), aten.norm, aten.linalg_vector_norm)
_rule(_cat, aten.cat)
_rule(_stack, aten.stack)
_rule(_copy, aten.copy_)
_rule(_matmul, aten.mm, aten.addmm, aten.bmm, aten.baddbmm)
_rule(_pointwise, aten.native_dropout, aten.masked_fill, aten.masked_fill_, aten.where,
      aten.channel_shuffle)
_rule(_free, aten.zero_, aten.fill_, aten.empty_like, aten.zeros_like, aten.ones_like,
      aten.full_like, aten.new_empty, aten.new_zeros, aten.new_ones, aten.new_full,
      aten.new_empty_strided)
# Elementwise by kind, but reading other positions (or positions the data chooses).
_rule(_lost, aten.col2im, aten.im2col, aten.grid_sampler_2d, aten.scatter_add,
      aten.scatter_reduce, aten.index_add, aten._cdist_forward, aten.embedding_dense_backward,
      aten._transform_bias_rescale_qkv)

#: Ops without a rule of their own: elementwise ops, activations and normalisations read
#: each position for itself; anything else loses the field.
_KIND_RULES: dict[str, Rule] = {"elementwise": _pointwise, "activation": _pointwise,
                                "norm": _pointwise}
