"""The data flow of a traced run as a graph: which op wrote each tensor, which ops read it.

Built from the tensor serials of a :class:`~archstat.tracer.Trace`; nodes are op events
(indices into ``trace.events``). Only activations count as edges: parameters and buffers
are read by many ops but carry no data from one layer to the next. An in-place op (the
``relu_`` after a convolution) reads and writes the same serial, so "the op that wrote
a tensor" always means the last writer *before* the reader.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from archstat.ops import OpEvent, op_kind
from archstat.tracer import Trace

#: Tensor roles (TensorMeta.role) that carry data between layers.
ACTIVATION_ROLES = frozenset({"activation", "input"})

# Op kinds that can hand an activation on to the next layer unchanged in shape: norms,
# activation functions, single-input arithmetic (a scale), copies and dropout.
_PASS_THROUGH_KINDS = frozenset({"norm", "activation", "elementwise", "none"})


@dataclass(frozen=True)
class Fork:
    """Where the tensors read by one op (a ``cat``, a residual ``add``) branch apart.

    ``serial`` is the tensor every branch starts from; ``branches[i]`` holds the events
    (op indices) that lie between it and the op's i-th input, in no order (empty for an
    input that *is* the fork tensor, an identity shortcut).
    """

    serial: int
    branches: list[frozenset[int]]


class DataFlow:
    """Producers and consumers of every activation of a trace."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.events = trace.events
        self._writers: dict[int, list[int]] = {}
        self._readers: dict[int, list[int]] = {}
        for index, event in enumerate(trace.events):
            for serial in self.activation_inputs(event):
                self._readers.setdefault(serial, []).append(index)
            for serial in event.outputs:
                self._writers.setdefault(serial, []).append(index)

    def activation_inputs(self, event: OpEvent) -> list[int]:
        """Serials of the activations an op reads (not its parameters or buffers), once each."""
        tensors = self.trace.tensors
        return list(dict.fromkeys(s for s in event.inputs if tensors[s].role in ACTIVATION_ROLES))

    def shape(self, serial: int) -> tuple[int, ...]:
        return self.trace.tensors[serial].shape

    def module(self, index: int) -> str:
        """Module path of the record an op ran in ('' for the model's own forward)."""
        return self.trace.records[self.events[index].record].name

    def writer(self, serial: int, before: int) -> int | None:
        """The last op before event ``before`` that wrote ``serial``; None for a model input."""
        writers = self._writers.get(serial, [])
        position = bisect_left(writers, before)
        return writers[position - 1] if position else None

    def is_pass_through(self, index: int) -> bool:
        """Does this op hand one activation on with its shape unchanged (a norm, an
        activation function, a single-input elementwise op, a copy, dropout)?"""
        event = self.events[index]
        inputs = self.activation_inputs(event)
        if len(inputs) != 1 or not event.outputs or op_kind(event.op) not in _PASS_THROUGH_KINDS:
            return False
        return self.shape(event.outputs[0]) == self.shape(inputs[0])

    def downstream(self, serial: int, after: int) -> Iterator[int]:
        """Every op that reads ``serial`` as written by event ``after``, directly or through
        pass-through ops, in no particular order. A non-pass-through op that overwrites the
        tensor in place ends the walk along it."""
        stack, seen = [(serial, after)], set()
        while stack:
            current, start = stack.pop()
            for reader in self._readers.get(current, []):
                if reader <= start:
                    continue
                yield reader
                outputs = self.events[reader].outputs
                if self.is_pass_through(reader):
                    if outputs[0] != current and outputs[0] not in seen:
                        seen.add(outputs[0])
                        stack.append((outputs[0], reader))
                elif current in outputs:
                    break

    def upstream(self, serial: int, before: int) -> set[int]:
        """The ops whose results flow into ``serial`` as read at event ``before``, the op
        that wrote it included. A model input appears as the node ``-1 - serial``."""
        nodes: set[int] = set()
        stack = [(serial, before)]
        while stack:
            current, at = stack.pop()
            writer = self.writer(current, at)
            node = -1 - current if writer is None else writer
            if node in nodes:
                continue
            nodes.add(node)
            if writer is not None:
                stack.extend((s, writer) for s in self.activation_inputs(self.events[writer]))
        return nodes

    def fork(self, serials: Iterable[int], at: int) -> Fork | None:
        """Where the tensors ``serials``, as read by event ``at``, last shared their history:
        the latest op all of them depend on. None when they share nothing."""
        serials = list(serials)
        cones = [self.upstream(s, at) for s in serials]
        common = set.intersection(*cones)
        if not common:
            return None
        node = max(common)
        branches = [frozenset(cone - common) for cone in cones]
        if node < 0:
            return Fork(-1 - node, branches)
        outputs = self.events[node].outputs
        reads = {s for branch in branches for e in branch for s in self.events[e].inputs}
        serial = next((s for s in outputs if s in reads or s in serials), outputs[0])
        return Fork(serial, branches)
