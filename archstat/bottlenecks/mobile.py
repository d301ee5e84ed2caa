"""Mobile inverted bottlenecks (MBConv: MobileNetV2, EfficientNet) found in the data flow
of a trace, each against a standard convolution.

An MBConv block is found from its depthwise convolution D (groups == input channels ==
output channels, kernel k > 1): D is fed by a 1x1 expansion convolution E (through norms
and activations; E outputs D's channels) or, when the expand ratio is 1, reads the block
input itself; D's output reaches exactly one convolution, a 1x1 projection P reading D's
channels, through norms, activations and squeeze-and-excitation gates (the map scaled
channel by channel, :mod:`archstat.bottlenecks.se`). A residual add of P's output (after
its norm) and the block input makes the block residual. A 1x1 that already is the
projection of the block before is not taken as the next block's expansion, so a chain
of depthwise separable convolutions (MobileNetV1: D, P, D, P ...) gives blocks (D, P).

The counterpart: one standard (ungrouped) kxk convolution from the block's input
channels to its output channels at the block's stride (what the block replaces in a
plain CNN at the same widths); the shortcut, where there is one, is the same on both
sides and costs nothing.

Units: as :mod:`archstat.bottlenecks.detect`: ``macs`` of the block's convolutions
(E, D, P) under the ``macs`` convention, for the traced batch, ``params`` their weight +
bias elements. A block's SE blocks count in full on the built side (their ``macs`` and
``params`` as in the ``se`` table; an SE with fc layers is counted as well as one with
1x1 convolutions): the standard convolution has none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from archstat.bottlenecks.detect import Conv, conv_macs
from archstat.bottlenecks.naming import ModuleNames
from archstat.bottlenecks.se import SEBlock
from archstat.trace.dataflow import DataFlow

aten = torch.ops.aten
_ADD_OPS = (aten.add, aten.add_)


@dataclass(frozen=True)
class MBConvBlock:
    """``expand`` is None for expand ratio 1; ``input`` is the block input's serial,
    ``add`` the residual add's event index (None: no shortcut)."""

    expand: Conv | None
    depthwise: Conv
    project: Conv
    se: tuple[SEBlock, ...]
    input: int
    add: int | None
    module: str

    @property
    def key(self) -> int:
        return self.add if self.add is not None else self.project.event

    @property
    def convs(self) -> list[Conv]:
        return [c for c in (self.expand, self.depthwise, self.project) if c is not None]


def is_depthwise(conv: Conv) -> bool:
    return (conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
            and not conv.transposed and max(conv.kernel, default=1) > 1)


def _data_input(flow: DataFlow, index: int) -> int | None:
    inputs = flow.activation_inputs(flow.events[index])
    return inputs[0] if inputs else None


def _expansion(flow: DataFlow, convs: dict[int, Conv], d: Conv, taken: set[int]
               ) -> Conv | None:
    """The 1x1 that feeds D through pass-through ops, if it outputs D's channels."""
    serial, at = _data_input(flow, d.event), d.event
    while serial is not None:
        writer = flow.writer(serial, at)
        if writer is None:
            return None
        conv = convs.get(writer)
        if conv is not None:
            ok = conv.pointwise and conv.out_channels == d.in_channels and writer not in taken
            return conv if ok else None
        if not flow.is_pass_through(writer):
            return None
        serial, at = _data_input(flow, writer), writer
    return None


def _reached(flow: DataFlow, convs: dict[int, Conv], d: Conv, gates: dict[int, SEBlock]
             ) -> tuple[list[int], list[SEBlock]]:
    """The convolutions D's output reaches through pass-through ops and SE gates (the
    gate's map input, not its factor), and the gates passed."""
    reached, passed = [], []
    stack, seen = [(flow.events[d.event].outputs[0], d.event)], set()
    while stack:
        serial, after = stack.pop()
        for reader in flow.downstream(serial, after):
            if reader in seen:
                continue
            seen.add(reader)
            if reader in convs:
                reached.append(reader)
            elif reader in gates:  # reached from its map: the factor comes from a pool
                passed.append(gates[reader])
                stack.append((flow.events[reader].outputs[0], reader))
    return reached, passed


def _residual_add(flow: DataFlow, p: Conv, block_input: int) -> int | None:
    """The add of P's output (through pass-through ops) and the block input."""
    for reader in flow.downstream(flow.events[p.event].outputs[0], p.event):
        event = flow.events[reader]
        if event.packet in _ADD_OPS:
            inputs = flow.activation_inputs(event)
            if len(inputs) == 2 and block_input in inputs and len(
                    {flow.shape(s) for s in inputs}) == 1:
                return reader
    return None


def mbconv_blocks(flow: DataFlow, convs: dict[int, Conv], gates: dict[int, SEBlock],
                  names: ModuleNames) -> list[MBConvBlock]:
    """Every MBConv block, in call order."""
    blocks: list[MBConvBlock] = []
    projections: set[int] = set()
    for d in convs.values():
        if not is_depthwise(d):
            continue
        reached, passed = _reached(flow, convs, d, gates)
        if len(reached) != 1:
            continue
        p = convs[reached[0]]
        if not (p.pointwise and p.in_channels == d.out_channels):
            continue
        e = _expansion(flow, convs, d, projections)
        block_input = (flow.activation_inputs(flow.events[e.event])[0] if e is not None
                       else _data_input(flow, d.event))
        if block_input is None:
            continue
        add = _residual_add(flow, p, block_input)
        projections.add(p.event)
        ops = {c.event for c in (e, d, p) if c is not None}
        ops |= {add} if add is not None else set()
        ops = ops.union(*(se.events for se in passed))
        blocks.append(MBConvBlock(e, d, p, tuple(passed), block_input, add, names.of(ops)))
    return sorted(blocks, key=lambda block: block.key)


def standard_conv(block: MBConvBlock, flow: DataFlow) -> tuple[int, int]:
    """(MACs, params) of the standard kxk convolution from the block's input channels to
    its output channels at its stride (its output size)."""
    d, p = block.depthwise, block.project
    x = flow.shape(block.input)
    weight = (p.out_channels, x[1], *d.kernel)
    template = flow.events[d.event]
    template = replace(template, args=(*template.args[:8], 1, *template.args[9:]))
    macs = conv_macs(template, x, weight, p.output_shape)
    return macs, math.prod(weight) + (p.out_channels if d.has_bias else 0)


def mbconv_row(block: MBConvBlock, flow: DataFlow) -> dict[str, Any]:
    x = flow.shape(block.input)
    macs = sum(c.macs for c in block.convs) + sum(se.macs for se in block.se)
    params = sum(c.params for c in block.convs) + sum(se.params for se in block.se)
    naive_macs, naive_params = standard_conv(block, flow)
    return {
        "module": block.module,
        "kind": "mbconv",
        "input_shape": x,
        "in_channels": x[1],
        "out_channels": block.project.out_channels,
        "naive_out_channels": block.project.out_channels,
        "macs": macs,
        "naive_macs": naive_macs,
        "params": params,
        "naive_params": naive_params,
        "macs_saving_ratio": naive_macs / macs,
        "params_saving_ratio": naive_params / params,
    }
