"""DenseNet-BC's dense blocks found in the data flow of a trace, each against the same
layers without their 1x1 bottlenecks.

A *dense layer* is a chain of single-input ops (norms, activations, convolutions) from
a tensor T to a new map o, where T is the block input or a channel concatenation, and
o is concatenated, later, with everything T held. A *dense block* is a run of dense
layers each of which reads what the one before it read plus that layer's output: layer
j reads the block input x and o_1 ... o_{j-1}, concatenated. Nested concatenations are
flattened, so both forms are found: every layer concatenating the list of all earlier
maps anew (the paper's and torchvision's ``torch.cat(features, 1)``), and each layer
concatenating its output onto its input (``torch.cat([out, x], 1)``, as many
reimplementations do). The order of the maps in a concatenation does not matter.

One row per dense block, not per dense layer: the pairs table already has one row per
dense layer (its 1x1 -> 3x3 pair against the 3x3 on the concatenation is exactly the
layer without its bottleneck), and the block, the module that concatenates, is what the
inception and residual rows are too. The block's counterpart is every layer without its
1x1: the kxk convolution reads the concatenation directly (after the same norm and
activation). It outputs the same channels: the growth rate is the kxk's, not the 1x1's.
Only blocks with a 1x1 -> kxk pair are rows: without one there is nothing to drop.

Units: as :mod:`archstat.bottlenecks.detect` (convolutions only, ``macs`` convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from archstat.bottlenecks.detect import Conv, Link, cat_dim, pair_row
from archstat.bottlenecks.naming import ModuleNames
from archstat.trace.dataflow import DataFlow

aten = torch.ops.aten


@dataclass(frozen=True)
class DenseLayer:
    """A dense layer: it reads ``reads`` (the serial of T: a concatenation or the block
    input) made of the maps ``sources``, and outputs the map ``output``; ``events`` are
    its ops after T, ``cat`` the concatenation that made T (None if it reads x itself)."""

    reads: int
    sources: frozenset[int]
    output: int
    events: frozenset[int]
    cat: int | None


@dataclass(frozen=True)
class DenseBlock:
    layers: tuple[DenseLayer, ...]
    cats: frozenset[int]  # every concatenation of the block's maps (event indices)
    module: str

    @property
    def key(self) -> int:
        """The block's last op that belongs to it: rows are in call order by this."""
        return max(max(self.cats, default=0), max(max(layer.events) for layer in self.layers))


def _is_channel_cat(flow: DataFlow, index: int) -> bool:
    event = flow.events[index]
    return event.packet is aten.cat and len(event.out) > 1 and cat_dim(event) == 1


def _data_inputs(flow: DataFlow, index: int, params: set[int]) -> list[int]:
    """The activations an op reads, leaving out views of parameters (an fc layer's
    transposed weight)."""
    tensors = flow.trace.tensors
    return [s for s in flow.activation_inputs(flow.events[index])
            if tensors[s].storage not in params]


class _Finder:
    def __init__(self, flow: DataFlow) -> None:
        self.flow = flow
        self.params = {t.storage for t in flow.trace.tensors if t.role in ("param", "buffer")}
        self.cats = [i for i in range(len(flow.events)) if _is_channel_cat(flow, i)]
        self._leaves: dict[int, tuple[int, ...]] = {}
        for index in self.cats:
            self.leaves(index)
        self.all_leaves = {s for leaves in self._leaves.values() for s in leaves}

    def leaves(self, cat: int) -> tuple[int, ...]:
        """The maps a channel concatenation joins, nested concatenations flattened."""
        if cat not in self._leaves:
            found: list[int] = []
            for serial in _data_inputs(self.flow, cat, self.params):
                writer = self.flow.writer(serial, cat)
                if writer is not None and _is_channel_cat(self.flow, writer):
                    found += self.leaves(writer)
                else:
                    found.append(serial)
            self._leaves[cat] = tuple(found)
        return self._leaves[cat]

    def layer(self, output: int, before: int) -> DenseLayer | None:
        """The chain of single-input ops that made ``output`` (as read by event
        ``before``), back to a concatenation or another concatenated map."""
        events: set[int] = set()
        serial, at = output, before
        while True:
            writer = self.flow.writer(serial, at)
            if writer is None:
                return None  # a model input: no layer reads it
            if _is_channel_cat(self.flow, writer):
                return DenseLayer(serial, frozenset(self.leaves(writer)), output,
                                  frozenset(events), writer)
            if serial in self.all_leaves and serial != output:
                return DenseLayer(serial, frozenset({serial}), output, frozenset(events), None)
            inputs = _data_inputs(self.flow, writer, self.params)
            if len(inputs) != 1:
                return None  # not a chain (an add, a second input)
            events.add(writer)
            serial, at = inputs[0], writer


def _same_size(flow: DataFlow, layer: DenseLayer) -> bool:
    """Does every op of the layer work at the size of what it reads? (A U-Net's skip
    concatenates a map with one that went down and up: no dense layer.)"""
    size = flow.shape(layer.reads)[2:]
    return all(flow.shape(flow.events[e].outputs[0])[2:] == size for e in layer.events)


def dense_blocks(flow: DataFlow, convs: dict[int, Conv], pairs: list[Link],
                 names: ModuleNames) -> list[DenseBlock]:
    """Every dense block with a 1x1 -> kxk pair in one of its layers, in call order."""
    finder = _Finder(flow)
    if not finder.cats:
        return []
    joined = [frozenset(finder.leaves(c)) for c in finder.cats]
    layers: dict[int, DenseLayer] = {}  # by output serial
    for cat in finder.cats:
        for serial in finder.leaves(cat):
            if serial in layers:
                continue
            layer = finder.layer(serial, cat)
            if (layer is None or not any(e in convs for e in layer.events)
                    or not _same_size(flow, layer)
                    or not any(layer.sources | {serial} <= j for j in joined)):
                continue
            layers[serial] = layer
    by_sources: dict[frozenset[int], list[DenseLayer]] = {}
    for layer in layers.values():
        by_sources.setdefault(layer.sources, []).append(layer)
    follows = {}  # layer output -> the next layer of its block
    for layer in layers.values():
        nxt = by_sources.get(layer.sources | {layer.output}, [])
        if len(nxt) == 1 and len(by_sources[layer.sources]) == 1:
            follows[layer.output] = nxt[0]
    heads = set(layers) - {n.output for n in follows.values()}
    pair_events = {e for p in pairs for e in (p.reduce.event, p.spatial.event)}
    blocks = []
    for head in heads:
        chain = [layers[head]]
        while chain[-1].output in follows:
            chain.append(follows[chain[-1].output])
        if len(chain) < 2 or not any(e in pair_events for layer in chain for e in layer.events):
            continue
        members = chain[0].sources | {layer.output for layer in chain}
        cats = frozenset(c for c, j in zip(finder.cats, joined, strict=True)
                         if j <= members and j & {layer.output for layer in chain})
        cats |= {layer.cat for layer in chain if layer.cat is not None}
        events = set(cats).union(*(layer.events for layer in chain))
        blocks.append(DenseBlock(tuple(chain), frozenset(cats), names.of(events)))
    return sorted(blocks, key=lambda block: block.key)


def dense_row(block: DenseBlock, flow: DataFlow, convs: dict[int, Conv],
              pairs: list[Link]) -> dict[str, Any]:
    """One dense block against the same layers without their 1x1 reductions."""
    macs = params = naive_macs = naive_params = 0
    for layer in block.layers:
        inner = [p for p in pairs
                 if p.reduce.event in layer.events and p.spatial.event in layer.events]
        reduces = {p.reduce.event for p in inner}
        partner = {p.spatial.event: p for p in inner}
        for event in sorted(e for e in layer.events if e in convs):
            conv = convs[event]
            macs += conv.macs
            params += conv.params
            if event in reduces:
                continue
            if event in partner:
                row = pair_row(partner[event], flow)
                naive_macs += row["direct_macs"]
                naive_params += row["direct_params"]
            else:
                naive_macs += conv.macs
                naive_params += conv.params
    first = block.layers[0]
    input_shape = flow.shape(first.reads)
    out = input_shape[1] + sum(flow.shape(layer.output)[1] for layer in block.layers)
    return {
        "module": block.module,
        "kind": "dense",
        "input_shape": input_shape,
        "in_channels": input_shape[1],
        "out_channels": out,
        "naive_out_channels": out,
        "macs": macs,
        "naive_macs": naive_macs,
        "params": params,
        "naive_params": naive_params,
        "macs_saving_ratio": naive_macs / macs,
        "params_saving_ratio": naive_params / params,
    }
