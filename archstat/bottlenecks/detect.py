"""1x1 bottlenecks found in the data flow of a trace, each against its counterpart
without the reduction.

* A *pair*: a 1x1, stride-1, ungrouped convolution whose output reaches a kxk
  convolution (k > 1) through pass-through ops only (norms, activations). Its
  counterpart is the same kxk convolution applied straight to the 1x1's input.
* An *inception* module: an op that concatenates, along channels, branches that start
  from one tensor, where a branch holds a pair. Its counterpart is the naive module of
  Szegedy et al. 2014, Figure 2(a): every reduce dropped (the kxk reads the module
  input), the pooling branch without its 1x1 projection (it passes the input's
  channels on), a branch that is a lone 1x1 kept.
* A *residual* bottleneck block: an add whose two inputs branch from one tensor (the
  block input), one of them a residual branch in which a 1x1 feeds a kxk convolution.
  Its counterpart is a basic block at the block's input/output width: two kxk
  convolutions, C_in -> C_out at the block's stride, then C_out -> C_out; the shortcut
  (identity or projection) is the same in both, and so is an SE block on the residual
  branch (SE-ResNet: the counterpart is an SE basic block; the SE block's ``macs`` and
  ``params`` as in :mod:`archstat.bottlenecks.se` count on both sides).

Dense blocks (:mod:`archstat.bottlenecks.dense`) and MBConv blocks
(:mod:`archstat.bottlenecks.mobile`) are found elsewhere and join these rows; the
concatenations of a dense block are no inception module (nor is any concatenation
whose branches share ops: an inception module's branches run side by side).

Modules are recognised by structure, never by name: every op of every branch must run
inside the module that concatenates or adds (so a U-Net skip connection, whose branch
runs through other modules, is not an inception module).

Units: ``macs`` are multiply-accumulates of convolutions under the ``macs`` convention
(one fused multiply-add is 1, biases not counted) for the traced batch; ``params`` are
weight + bias elements of the convolutions concerned (norm layers are left out of both
sides). A ``*_saving_ratio`` is the counterpart's figure over the built one: 9.68 means
the built layers cost 9.68 times less; below 1 the 1x1 costs more than it saves.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from archstat.conventions import CONVENTIONS
from archstat.trace.dataflow import ACTIVATION_ROLES, DataFlow, Fork
from archstat.trace.ops import OpEvent, op_kind

aten = torch.ops.aten
_MACS = CONVENTIONS["macs"]
_CONV_OPS = (aten.convolution, aten._convolution)
_ADD_OPS = (aten.add, aten.add_)


@dataclass(frozen=True)
class Conv:
    """One traced convolution call: shapes (batch first), layout, and its MACs."""

    event: int
    name: str  # module path of the record it ran in
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    groups: int
    transposed: bool
    has_bias: bool
    macs: int

    @property
    def in_channels(self) -> int:
        return self.input_shape[1]

    @property
    def out_channels(self) -> int:
        return self.output_shape[1]

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.weight_shape[2:]

    @property
    def params(self) -> int:
        """Weight + bias elements."""
        return math.prod(self.weight_shape) + (self.out_channels if self.has_bias else 0)

    @property
    def pointwise(self) -> bool:
        """A 1x1, ungrouped, not transposed convolution (any stride)."""
        return self._plain and all(k == 1 for k in self.kernel)

    @property
    def spatial(self) -> bool:
        """A kxk (k > 1), ungrouped, not transposed convolution."""
        return self._plain and max(self.kernel, default=1) > 1

    @property
    def keeps_size(self) -> bool:
        """Same spatial size in and out: for a 1x1, stride 1 and no padding."""
        return self.input_shape[2:] == self.output_shape[2:]

    @property
    def _plain(self) -> bool:
        return self.groups == 1 and not self.transposed


@dataclass(frozen=True)
class Link:
    """A 1x1 convolution whose output reaches a kxk convolution through pass-through ops.
    A *pair* when the 1x1 keeps the spatial size (stride 1)."""

    reduce: Conv
    spatial: Conv

    @property
    def is_pair(self) -> bool:
        return self.reduce.keeps_size


def conv_macs(
    template: OpEvent,
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
) -> int:
    """MACs of a convolution like ``template`` with other shapes, by the very formula the
    ``macs`` convention applies to traced convolutions (so both sides count alike)."""
    args = (torch.Size(input_shape), torch.Size(weight_shape), *template.args[2:])
    return _MACS.cost(replace(template, args=args, out=torch.Size(output_shape)))


def convolutions(flow: DataFlow) -> dict[int, Conv]:
    """Every convolution call of the trace, by event index."""
    convs = {}
    for index, event in enumerate(flow.events):
        if event.packet not in _CONV_OPS:
            continue
        x, w, bias = event.args[0], event.args[1], event.args[2]
        out = event.out if isinstance(event.out, torch.Size) else event.out[0]
        convs[index] = Conv(
            event=index, name=flow.module(index), input_shape=tuple(x),
            weight_shape=tuple(w), output_shape=tuple(out), groups=int(event.args[8]),
            transposed=bool(event.args[6]), has_bias=bias is not None,
            macs=_MACS.cost(event) or 0,
        )
    return convs


def links(flow: DataFlow, convs: dict[int, Conv]) -> list[Link]:
    """Every 1x1 -> kxk link, in the order of the kxk convolutions' calls."""
    found = []
    for conv in convs.values():
        if not conv.pointwise:
            continue
        output = flow.events[conv.event].outputs[0]
        for reader in sorted(set(flow.downstream(output, conv.event))):
            spatial = convs.get(reader)
            if spatial is not None and spatial.spatial:
                found.append(Link(conv, spatial))
    return sorted(found, key=lambda link: (link.spatial.event, link.reduce.event))


def pair_row(link: Link, flow: DataFlow) -> dict[str, Any]:
    """One pair against the kxk convolution applied straight to the 1x1's input."""
    reduce, spatial = link.reduce, link.spatial
    weight = (spatial.out_channels, reduce.in_channels, *spatial.kernel)
    direct_macs = conv_macs(flow.events[spatial.event], reduce.input_shape, weight,
                            spatial.output_shape)
    direct_params = math.prod(weight) + (spatial.out_channels if spatial.has_bias else 0)
    macs, params = reduce.macs + spatial.macs, reduce.params + spatial.params
    return {
        "reduce": reduce.name,
        "spatial": spatial.name,
        "input_shape": reduce.input_shape,
        "in_channels": reduce.in_channels,
        "reduced_channels": reduce.out_channels,
        "out_channels": spatial.out_channels,
        "kernel": tuple(spatial.kernel),
        "macs": macs,
        "params": params,
        "direct_macs": direct_macs,
        "direct_params": direct_params,
        "macs_saving_ratio": direct_macs / macs,
        "params_saving_ratio": direct_params / params,
    }


# -- modules --------------------------------------------------------------------------


def _inside(module: str, name: str) -> bool:
    return not module or name == module or name.startswith(module + ".")


@dataclass(frozen=True)
class _Split:
    """A concatenation or residual add whose inputs branch from one tensor (``fork``)."""

    module: str
    fork: Fork
    inputs: list[int]  # the serials it joins, in order
    output: int

    def branch_convs(self, convs: dict[int, Conv], i: int) -> list[Conv]:
        return [convs[e] for e in sorted(self.fork.branches[i]) if e in convs]


def _split(flow: DataFlow, index: int, inputs: list[int]) -> _Split | None:
    module = flow.module(index)
    fork = flow.fork(inputs, index)
    if fork is None:
        return None
    if not all(_inside(module, flow.module(e)) for b in fork.branches for e in b):
        return None
    return _Split(module, fork, inputs, flow.events[index].outputs[0])


def cat_dim(event: OpEvent) -> int:
    dim = event.args[1] if len(event.args) > 1 else event.kwargs.get("dim", 0)
    ndim = len(event.out)
    return dim % ndim if ndim else dim


def _module_row(
    split: _Split, flow: DataFlow, kind: str, naive_out: int, built: tuple[int, int],
    naive: tuple[int, int],
) -> dict[str, Any]:
    fork_shape = flow.shape(split.fork.serial)
    return {
        "module": split.module,
        "kind": kind,
        "input_shape": fork_shape,
        "in_channels": fork_shape[1],
        "out_channels": flow.shape(split.output)[1],
        "naive_out_channels": naive_out,
        "macs": built[0],
        "naive_macs": naive[0],
        "params": built[1],
        "naive_params": naive[1],
        "macs_saving_ratio": naive[0] / built[0],
        "params_saving_ratio": naive[1] / built[1],
    }


def _naive_branch(
    split: _Split, i: int, flow: DataFlow, convs: dict[int, Conv], pairs: list[Link]
) -> tuple[int, int, int, bool]:
    """(naive MACs, naive params, naive output channels, has a pair) of branch ``i`` in
    Figure 2(a)'s form."""
    branch = split.fork.branches[i]
    branch_convs = split.branch_convs(convs, i)
    inner = [p for p in pairs if p.reduce.event in branch and p.spatial.event in branch]
    reduces = {p.reduce.event for p in inner}
    partner = {p.spatial.event: p for p in inner}
    projection = None
    if branch_convs and branch_convs[-1].pointwise and branch_convs[-1].event not in reduces:
        last = branch_convs[-1]
        pools = [e for e in branch if e < last.event and op_kind(flow.events[e].op) == "pool"]
        projection = last.event if pools else None
    macs = params = 0
    for conv in branch_convs:
        if conv.event in reduces or conv.event == projection:
            continue
        if conv.event in partner:
            row = pair_row(partner[conv.event], flow)
            macs += row["direct_macs"]
            params += row["direct_params"]
        else:
            macs += conv.macs
            params += conv.params
    channels = (convs[projection].in_channels if projection is not None
                else flow.shape(split.inputs[i])[1])
    return macs, params, channels, bool(inner)


def _inception_row(
    split: _Split, flow: DataFlow, convs: dict[int, Conv], pairs: list[Link]
) -> dict[str, Any] | None:
    if flow.shape(split.fork.serial)[2:] != flow.shape(split.output)[2:]:
        return None
    branches = split.fork.branches
    if sum(map(len, branches)) != len(frozenset().union(*branches)):
        return None  # branches that share ops are not parallel (a dense block's)
    naive = [_naive_branch(split, i, flow, convs, pairs) for i in range(len(split.inputs))]
    if not any(has_pair for *_, has_pair in naive):
        return None
    built = [c for i in range(len(split.inputs)) for c in split.branch_convs(convs, i)]
    return _module_row(
        split, flow, "inception", sum(n[2] for n in naive),
        (sum(c.macs for c in built), sum(c.params for c in built)),
        (sum(n[0] for n in naive), sum(n[1] for n in naive)),
    )


def _residual_rows(
    split: _Split, flow: DataFlow, convs: dict[int, Conv], all_links: list[Link],
    gates: Mapping[int, Any],
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The module row and the lecture row (units of HWC^2) of a residual bottleneck."""
    for i in (0, 1):
        branch = split.fork.branches[i]
        link = next((k for k in all_links if k.reduce.event in branch
                     and k.spatial.event in branch), None)
        if link is not None:
            break
    else:
        return None  # a basic block, or a residual add with no 1x1 reduction in it
    # An SE block in the block (SE-ResNet) counts in full on both sides, as the shortcut
    # does: the counterpart is a basic block with the same SE.
    se = [gates[e] for e in sorted(branch) if e in gates]
    se_events = {e for block in se for e in block.events}
    residual = [c for c in split.branch_convs(convs, i) if c.event not in se_events]
    shortcut = split.branch_convs(convs, 1 - i)
    template = flow.events[link.spatial.event]
    x, out = flow.shape(split.fork.serial), flow.shape(split.output)
    kernel, bias = link.spatial.kernel, link.spatial.has_bias
    w1, w2 = (out[1], x[1], *kernel), (out[1], out[1], *kernel)
    basic_macs = conv_macs(template, x, w1, out) + conv_macs(template, out, w2, out)
    basic_params = math.prod(w1) + math.prod(w2) + (2 * out[1] if bias else 0)
    short = (sum(c.macs for c in shortcut) + sum(b.macs for b in se),
             sum(c.params for c in shortcut) + sum(b.params for b in se))
    row = _module_row(
        split, flow, "residual", out[1],
        (sum(c.macs for c in residual) + short[0], sum(c.params for c in residual) + short[1]),
        (basic_macs + short[0], basic_params + short[1]),
    )
    return row, _lecture_row(split.module, link.spatial, residual, template)


def _lecture_row(module: str, spatial: Conv, residual: list[Conv], template: OpEvent
                 ) -> dict[str, Any]:
    """The lecture's per-block view: the residual branch's MACs in units of H W C^2 (C the
    kxk convolution's input width, HxW its output, per image), against a basic block of
    two kxk convolutions at width C (a quarter of a ResNet bottleneck's I/O width)."""
    n, c, spatial_size = spatial.output_shape[0], spatial.in_channels, spatial.output_shape[2:]
    unit = n * math.prod(spatial_size) * c * c
    square = (n, c, *spatial_size)
    basic = 2 * conv_macs(template, square, (c, c, *spatial.kernel), square)
    return {
        "module": module,
        "width": c,
        "output_size": tuple(spatial_size),
        "macs_hwc2": sum(conv.macs for conv in residual) / unit,
        "basic_macs_hwc2": basic / unit,
    }


def module_rows(
    flow: DataFlow, convs: dict[int, Conv], all_links: list[Link],
    gates: Mapping[int, Any] | None = None, skip: Collection[int] = (),
    extra: Sequence[tuple[int, dict[str, Any]]] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inception modules and residual bottleneck blocks in call order, and the lecture
    view of the residual ones. ``gates`` are the SE blocks by gate event
    (:func:`archstat.bottlenecks.se.se_blocks`); concatenations in ``skip`` (a dense
    block's) are no inception modules; ``extra`` rows (dense, mbconv) join the modules
    in call order, each after its key (an event index)."""
    pairs = [link for link in all_links if link.is_pair]
    gates = gates or {}
    modules: list[tuple[int, dict[str, Any]]] = list(extra)
    lecture = []
    tensors = flow.trace.tensors
    for index, event in enumerate(flow.events):
        if event.packet is aten.cat and cat_dim(event) == 1:
            if index in skip:
                continue
            inputs = [s for s in event.inputs if tensors[s].role in ACTIVATION_ROLES]
            split = _split(flow, index, inputs) if len(inputs) >= 2 else None
            row = _inception_row(split, flow, convs, pairs) if split else None
            if row:
                modules.append((index, row))
        elif event.packet in _ADD_OPS:
            inputs = flow.activation_inputs(event)
            if len(inputs) != 2 or len({flow.shape(s) for s in inputs}) != 1:
                continue
            split = _split(flow, index, inputs)
            rows = _residual_rows(split, flow, convs, all_links, gates) if split else None
            if rows:
                modules.append((index, rows[0]))
                lecture.append(rows[1])
    return [row for _, row in sorted(modules, key=lambda keyed: keyed[0])], lecture
