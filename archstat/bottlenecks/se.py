"""Squeeze-and-excitation blocks found in the data flow of a trace, as an overhead.

An SE block (Hu et al. 2018) squeezes a map to one number per channel (a global pool),
passes that vector through weighted layers (fc layers or 1x1 convolutions, with an
activation between them) and a gate (a sigmoid), and scales each channel of a map by the
result. It is recognised by that structure, never by name: a multiply that scales an
N x C x H x W map by an N x C x 1 x 1 factor (:func:`archstat.compute_layers.gate_input`),
and the ops behind the factor that compute on vectors or 1 x 1 maps, back to the pool
that squeezed a map (the walk of :func:`archstat.compute_layers.gating_paths`, kept per
gate here). The path must hold that pool and at least one weighted layer, so a learned
per-channel scale (a parameter broadcast over the map) is no SE block.

Units: ``macs`` under the ``macs`` convention (the fc layers or 1x1 convolutions; pool,
activations and the gate multiply count 0 there) for the traced batch; ``params`` are
the elements of every parameter the block's ops read (weights and biases), each once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from archstat.bottlenecks.naming import ModuleNames
from archstat.compute_layers import gate_input
from archstat.conventions import CONVENTIONS
from archstat.trace.dataflow import DataFlow
from archstat.trace.ops import op_kind

_MACS = CONVENTIONS["macs"]


@dataclass(frozen=True)
class SEBlock:
    """One SE block: ``gate`` is the multiply event that scales the map ``map_serial``
    (``input_shape``: the map's shape) by the factor; ``events`` are the ops from the pool
    to the gate, the gate included. ``squeezed`` is the width of its first weighted
    layer's output (C / r)."""

    gate: int
    map_serial: int
    events: frozenset[int]
    module: str
    input_shape: tuple[int, ...]
    squeezed: int
    macs: int
    params: int

    @property
    def channels(self) -> int:
        return self.input_shape[1]


def _pooled(shape: tuple[int, ...]) -> bool:
    """A vector, or a map squeezed to 1 x 1."""
    return len(shape) <= 2 or math.prod(shape[2:]) == 1


def param_sizes(flow: DataFlow) -> dict[int, int]:
    """Storage -> elements of the parameter on it (a view of a weight, as the ``t`` an fc
    layer runs, shares its storage)."""
    return {t.storage: math.prod(t.shape) for t in flow.trace.tensors if t.role == "param"}


def params_read(flow: DataFlow, events: set[int] | frozenset[int],
                sizes: dict[int, int]) -> int:
    """Elements of the distinct parameters the ``events`` read."""
    tensors = flow.trace.tensors
    storages = {tensors[s].storage for e in events for s in flow.events[e].inputs}
    return sum(sizes[s] for s in storages if s in sizes)


def _path(flow: DataFlow, factor: int, gate: int) -> set[int] | None:
    """The ops behind a gate's factor that compute on vectors or 1 x 1 maps, down to and
    including the pool that squeezed a map; None if there is no such pool."""
    tensors = flow.trace.tensors
    found: set[int] = set()
    squeezes = False
    stack = [(factor, gate)]
    while stack:
        serial, before = stack.pop()
        writer = flow.writer(serial, before)
        if writer is None or writer in found:
            continue
        found.add(writer)
        for s in flow.events[writer].inputs:
            tensor = tensors[s]
            if tensor.role not in ("activation", "input"):
                continue
            if _pooled(tensor.shape):
                stack.append((s, writer))
            else:
                squeezes = True  # the pool (or mean) that squeezed a map
    return found if squeezes else None


def se_blocks(flow: DataFlow, names: ModuleNames | None = None) -> dict[int, SEBlock]:
    """Every SE block of the trace, by its gate multiply's event index, in call order."""
    trace = flow.trace
    names = names or ModuleNames(flow)
    sizes = param_sizes(flow)
    blocks = {}
    for index, event in enumerate(flow.events):
        factor = gate_input(trace, event)
        if factor is None:
            continue
        path = _path(flow, factor, index)
        if path is None:
            continue
        weighted = [e for e in sorted(path) if op_kind(flow.events[e].op) in ("conv", "linear")]
        if not weighted:
            continue
        squeezed = flow.shape(flow.events[weighted[0]].outputs[0])[1]
        map_serial = next(s for s in event.inputs if s != factor)
        events = frozenset(path | {index})
        blocks[index] = SEBlock(
            gate=index, map_serial=map_serial, events=events,
            module=names.of(events), input_shape=flow.shape(map_serial),
            squeezed=int(squeezed), macs=sum(_MACS.cost(flow.events[e]) or 0 for e in events),
            params=params_read(flow, events, sizes),
        )
    return blocks
