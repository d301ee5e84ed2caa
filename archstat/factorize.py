"""``archstat.factorize_model``: the kernel-size arguments of VGG and Inception v3 as
counterfactuals, on a model's own convolutions.

* ``merge`` (VGG, Simonyan and Zisserman 2014 Section 2.3): every maximal *stack* of
  stride-1 convolutions, a chain in the data flow (conv -> pass-through ops such as
  norms and activations -> conv, nothing else reading the maps in between), against one
  convolution of the same receptive field, ``1 + sum (k_i - 1) d_i`` per axis, from the
  stack's input channels to its output channels, padded to give the same output size
  (its padding is the sum of the stack's). For C -> C maps, two 3x3 convolutions cost
  18 C^2 per output position and one 5x5 25 C^2; three 3x3 27 C^2 and one 7x7 49 C^2.
  A stack whose width changes (VGG's 3 -> 64 -> 64) can cost more than its one conv.
* ``split`` (Szegedy et al. 2015, "Rethinking the Inception Architecture", Section 3):
  every other large kernel (2-d, both sides above 1, the larger at least LARGE_KERNEL)
  split into small ones, in one of two styles (``split``):

  - ``3x3``: a k x k conv at stride s becomes a k1 x k1 conv that carries the stride
    followed by m 3x3 stride-1 convs, m the most that leaves k1 = k - 2 s m >= 3 (each
    3x3 after the strided factor adds 2 s to the receptive field, which stays k):
    5x5 -> 3x3, 3x3; 7x7/2 -> 3x3/2, 3x3; AlexNet's 11x11/4 -> 3x3/4, 3x3. The 3x3
    factors pad 1 and the first factor takes the rest of the padding, p - s m; where
    that is negative (11x11/4 pad 2) the 3x3 factors pad 0 and the first keeps p. The
    output size is the original's either way. A first factor narrower than its stride
    (3x3/4) skips input pixels: the report notes it. A kernel with no such split
    (5x5/2, a non-square kernel, a dilated one) is noted and left alone.
  - ``asymmetric``: kh x kw -> 1 x kw then kh x 1, each factor carrying the stride,
    padding and dilation of its own axis (so the output size is the original's, and
    every input pixel is still read).

  Every factor outputs the original conv's output channels (the output width is kept;
  the intermediate maps are as wide as the output), has a bias if the original has
  one, and no norm or activation is put between factors.

Grouped (depthwise) and transposed convolutions are left alone, and a 1x1 convolution
ends a stack: it mixes channels only (``archstat bottleneck`` is its argument). A
convolution belongs to one row at most: a large kernel in a stack is merged, not split
(with ``direction="both"``).

Units: ``flops`` are multiply-accumulates under the ``macs`` convention (one fused
multiply-add is 1; norms and activations cost 0) for the traced batch; ``params`` are
parameter elements: of a row, its convolutions' weights and biases plus the parameters
of the ops between them (a BatchNorm inside a stack, which its one conv replaces); of
the network, :func:`archstat.analyze`'s totals. The alternatives are built as torch
modules and counted by the same analyzer; the network's ``alt_*`` figures are its
totals with every row replaced by its alternative (the rest of the network is
unchanged, as every alternative keeps its row's output shape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from archstat.analysis import analyze
from archstat.bottlenecks.detect import Conv, convolutions
from archstat.conventions import CONVENTIONS
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean
from archstat.trace.dataflow import DataFlow
from archstat.trace.tracer import fast_meta_build

DIRECTIONS = ("both", "merge", "split")
SPLITS = ("3x3", "asymmetric")
#: The smallest kernel side the split direction factorizes.
LARGE_KERNEL = 5

_MACS = CONVENTIONS["macs"]
_CONV_CLASSES = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Stack:
    """One row: convolutions as built against their alternative.

    ``direction`` is ``merge`` (a stride-1 stack against one conv) or ``split`` (one
    large conv against its factors). ``layers`` are the module paths of the built
    convolutions, in order; ``kernel``, ``stride`` (and ``alt_kernel``, ``alt_stride``)
    hold one tuple per convolution, one entry per spatial axis. ``receptive_field`` is
    per axis (the same for both sides). Shapes are batch first; see the module
    docstring for ``params`` and ``flops``.
    """

    direction: str
    layers: tuple[str, ...]
    input_shape: Shape
    output_shape: Shape
    kernel: tuple[Shape, ...]
    stride: tuple[Shape, ...]
    receptive_field: Shape
    params: int
    flops: int
    alt_kernel: tuple[Shape, ...]
    alt_stride: tuple[Shape, ...]
    alt_params: int
    alt_flops: int

    @property
    def in_channels(self) -> int:
        return self.input_shape[1]

    @property
    def out_channels(self) -> int:
        return self.output_shape[1]


@dataclass(frozen=True)
class Note:
    """Something a row cannot say: ``sparse`` (a split's strided first factor is
    narrower than its stride, so it skips input pixels) or ``unsplittable`` (a large
    kernel the ``3x3`` style cannot split), for the convolution ``layer``."""

    kind: str
    layer: str
    kernel: Shape
    stride: Shape


@dataclass
class Factorization(Display):
    """The result of :func:`factorize_model`: the rows in the order their first convolution
    ran, the network's totals (``params``, ``flops``) and its totals with every row's
    alternative in place (``alt_params``, ``alt_flops``). Counts as in the module
    docstring (convention ``macs``)."""

    model: str
    input_shape: list[Shape]
    batch: int
    direction: str
    split: str
    stacks: list[Stack]
    params: int
    flops: int
    notes: list[Note] = field(default_factory=list)

    @property
    def alt_params(self) -> int:
        return self.params + sum(s.alt_params - s.params for s in self.stacks)

    @property
    def alt_flops(self) -> int:
        return self.flops + sum(s.alt_flops - s.flops for s in self.stacks)


# -- finding stacks ---------------------------------------------------------------------


def _args(flow: DataFlow, conv: Conv) -> tuple[Shape, Shape, Shape]:
    """Stride, padding and dilation of a traced convolution, per spatial axis."""
    args = flow.events[conv.event].args
    return tuple(args[3]), tuple(args[4]), tuple(args[5])


def _stackable(flow: DataFlow, conv: Conv) -> bool:
    """An ungrouped, not transposed, stride-1 convolution with a kernel side above 1."""
    stride = _args(flow, conv)[0]
    return (conv.groups == 1 and not conv.transposed and max(conv.kernel) > 1
            and all(s == 1 for s in stride))


def _next_in_stack(flow: DataFlow, conv: Conv, convs: dict[int, Conv]
                   ) -> tuple[Conv, list[int]] | None:
    """The stackable convolution that alone reads ``conv``'s output through pass-through
    ops, with those ops; None when anything else reads the maps in between (a branch, a
    residual add, a model output) or the reader is no stackable convolution."""
    outputs = set(flow.trace.outputs)
    serial = flow.events[conv.event].outputs[0]
    reached = set(flow.downstream(serial, conv.event))
    between = sorted(e for e in reached if flow.is_pass_through(e))
    ends = [e for e in reached if not flow.is_pass_through(e)]
    if len(ends) != 1 or ends[0] not in convs or serial in outputs:
        return None
    if any(s in outputs for e in between for s in flow.events[e].outputs):
        return None
    following = convs[ends[0]]
    if len(flow.activation_inputs(flow.events[following.event])) != 1:
        return None  # the map feeds something other than the conv's input
    return (following, between) if _stackable(flow, following) else None


def _stacks(flow: DataFlow, convs: dict[int, Conv]) -> list[tuple[list[Conv], list[int]]]:
    """Every maximal stack of two or more stackable convolutions: its convolutions and
    every event from the first to the last (convolutions and the ops between them)."""
    links = {}
    for conv in convs.values():
        if _stackable(flow, conv):
            found = _next_in_stack(flow, conv, convs)
            if found is not None:
                links[conv.event] = found
    followers = {following.event for following, _ in links.values()}
    stacks = []
    for start in sorted(links):
        if start in followers:
            continue
        members, events = [convs[start]], [start]
        while members[-1].event in links:
            following, between = links[members[-1].event]
            members.append(following)
            events += [*between, following.event]
        stacks.append((members, events))
    return stacks


# -- costing --------------------------------------------------------------------------


def _params(flow: DataFlow, events: Sequence[int]) -> int:
    """Elements of the parameters these ops read (a shared one once)."""
    tensors = flow.trace.tensors
    serials = {s for e in events for s in flow.events[e].inputs if tensors[s].role == "param"}
    return sum(math.prod(tensors[s].shape) for s in serials)


def _macs(flow: DataFlow, events: Sequence[int]) -> int:
    return sum(_MACS.cost(flow.events[e]) or 0 for e in events)


@dataclass(frozen=True)
class _Factor:
    """One convolution of an alternative: its kernel, stride, padding and dilation."""

    kernel: Shape
    stride: Shape
    padding: Shape
    dilation: Shape


def _cost(factors: Sequence[_Factor], input_shape: Shape, out_channels: int, bias: bool,
          output_shape: Shape) -> tuple[int, int]:
    """(params, macs) of the factors in a row, every one to ``out_channels``, built on
    meta and counted by :func:`analyze` on ``input_shape``."""
    layers = []
    channels = input_shape[1]
    with fast_meta_build():
        for f in factors:
            layers.append(_CONV_CLASSES[len(f.kernel)](
                channels, out_channels, f.kernel, f.stride, f.padding, f.dilation, bias=bias))
            channels = out_channels
    result = analyze(nn.Sequential(*layers), input_shape=input_shape[1:],
                     batch=input_shape[0], convention="macs", execute="never")
    got = tuple(result.trace.output.shape)
    if got != output_shape:  # the geometry above is wrong: a bug, not a user error
        raise AssertionError(f"alternative gives {got}, the row {output_shape}")
    return result.totals["params"], result.totals["flops"]


def _merge_row(flow: DataFlow, members: list[Conv], events: list[int]) -> Stack:
    paddings = [_args(flow, c)[1] for c in members]
    axes = range(len(members[0].kernel))
    field_ = tuple(1 + sum((c.kernel[a] - 1) * _args(flow, c)[2][a] for c in members)
                   for a in axes)
    one = _Factor(field_, (1,) * len(field_), tuple(sum(p[a] for p in paddings) for a in axes),
                  (1,) * len(field_))
    first, last = members[0], members[-1]
    alt_params, alt_flops = _cost([one], first.input_shape, last.out_channels, last.has_bias,
                                  last.output_shape)
    return Stack("merge", tuple(c.name for c in members), first.input_shape,
                 last.output_shape, tuple(tuple(c.kernel) for c in members),
                 tuple(_args(flow, c)[0] for c in members), field_,
                 _params(flow, events), _macs(flow, events), (one.kernel,), (one.stride,),
                 alt_params, alt_flops)


def _splittable(conv: Conv) -> bool:
    kernel = conv.kernel
    return (conv.groups == 1 and not conv.transposed and len(kernel) == 2
            and min(kernel) > 1 and max(kernel) >= LARGE_KERNEL)


def _three_by_three(conv: Conv, stride: Shape, padding: Shape, dilation: Shape
                    ) -> list[_Factor] | None:
    """The ``3x3`` style's factors (see the module docstring); None if there are none."""
    k, s, p = conv.kernel[0], stride[0], padding[0]
    if len(set(conv.kernel)) != 1 or len(set(stride)) != 1 or len(set(padding)) != 1 \
            or set(dilation) != {1}:
        return None
    m = (k - 3) // (2 * s)
    if m < 1:
        return None
    pad = 1 if p - s * m >= 0 else 0
    first = _Factor((k - 2 * s * m,) * 2, (s, s), (p - s * m * pad,) * 2, (1, 1))
    return [first, *[_Factor((3, 3), (1, 1), (pad, pad), (1, 1))] * m]


def _asymmetric(conv: Conv, stride: Shape, padding: Shape, dilation: Shape) -> list[_Factor]:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel, stride, padding, dilation
    return [_Factor((1, kw), (1, sw), (0, pw), (1, dw)),
            _Factor((kh, 1), (sh, 1), (ph, 0), (dh, 1))]


def _split_row(flow: DataFlow, conv: Conv, style: str, notes: list[Note]) -> Stack | None:
    stride, padding, dilation = _args(flow, conv)
    if style == "3x3":
        factors = _three_by_three(conv, stride, padding, dilation)
        if factors is None:
            notes.append(Note("unsplittable", conv.name, tuple(conv.kernel), stride))
            return None
        if factors[0].kernel[0] < stride[0]:
            notes.append(Note("sparse", conv.name, factors[0].kernel, stride))
    else:
        factors = _asymmetric(conv, stride, padding, dilation)
    field_ = tuple((k - 1) * d + 1 for k, d in zip(conv.kernel, dilation, strict=True))
    alt_params, alt_flops = _cost(factors, conv.input_shape, conv.out_channels,
                                  conv.has_bias, conv.output_shape)
    return Stack("split", (conv.name,), conv.input_shape, conv.output_shape,
                 (tuple(conv.kernel),), (stride,), field_, _params(flow, [conv.event]),
                 _macs(flow, [conv.event]), tuple(f.kernel for f in factors),
                 tuple(f.stride for f in factors), alt_params, alt_flops)


# -- the API --------------------------------------------------------------------------


def _check(value: str, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ArchstatError(f"unknown `{name}` {value!r}{did_you_mean(value, choices)}; "
                            f"choose one of {', '.join(choices)}")


def _nothing(model: str, direction: str) -> str:
    merge = "no stride-1 stack of two or more kxk convolutions (k > 1, ungrouped)"
    split = (f"no ungrouped kxk convolution with k >= {LARGE_KERNEL} (depthwise and 1x1 "
             "convolutions are left alone)")
    what = {"merge": merge, "split": split, "both": f"{merge} and {split}"}[direction]
    return f"{model} has nothing to factorize: {what}"


def factorize_model(
    model: str | nn.Module,
    input_shape: str | Sequence[int] | Sequence[Sequence[int]] | None = None,
    batch: int = 1,
    direction: str = "both",
    split: str = "3x3",
    **config: Any,
) -> Factorization:
    """Compare ``model``'s convolutions with their factorized or merged forms (see the
    module docstring for the rules, the choices made and the units).

    ``model``, ``input_shape``, ``batch`` and ``config`` are as for :func:`analyze`.
    ``direction`` is ``merge`` (stride-1 stacks against one conv of their receptive
    field), ``split`` (large kernels against small factors) or ``both``; ``split`` is
    the style of the split direction, ``3x3`` or ``asymmetric`` (1xn then nx1). A model
    with no row raises ArchstatError.
    """
    _check(direction, "direction", DIRECTIONS)
    _check(split, "split", SPLITS)
    actual = analyze(model, input_shape=input_shape, batch=batch, convention="macs", **config)
    flow = DataFlow(actual.trace)
    convs = convolutions(flow)
    rows: dict[int, Stack] = {}  # by the event of the row's first convolution
    notes: list[Note] = []
    taken: set[int] = set()
    if direction in ("merge", "both"):
        for members, events in _stacks(flow, convs):
            rows[members[0].event] = _merge_row(flow, members, events)
            taken.update(c.event for c in members)
    if direction in ("split", "both"):
        for index, conv in convs.items():
            if index not in taken and _splittable(conv):
                row = _split_row(flow, conv, split, notes)
                if row is not None:
                    rows[index] = row
    if not rows:
        message = _nothing(actual.model, direction)
        if notes:  # large kernels the 3x3 style cannot split
            layers = ", ".join(f"{n.layer!r} ({'x'.join(map(str, n.kernel))} at stride "
                               f"{'x'.join(map(str, n.stride))})" for n in notes)
            message = (f"{actual.model} has nothing to factorize in the 3x3 style: no 3x3 "
                       f"split with the stride on the first factor exists for {layers}; "
                       "`split` asymmetric splits every large kernel")
        raise ArchstatError(message)
    return Factorization(actual.model, actual.input_shape, actual.batch, direction, split,
                         [rows[e] for e in sorted(rows)], actual.totals["params"],
                         actual.totals["flops"], notes)
