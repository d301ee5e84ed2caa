"""The data flow of a traced run as a graph: which op wrote each tensor, which ops read it.

Built from the tensor serials of a :class:`~archstat.trace.tracer.Trace`; nodes are op events
(indices into ``trace.events``). Only activations count as edges: parameters and buffers
are read by many ops but carry no data from one layer to the next. An in-place op (the
``relu_`` after a convolution) reads and writes the same serial, so "the op that wrote
a tensor" always means the last writer *before* the reader.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from archstat.trace.ops import OpEvent, op_kind
from archstat.trace.tracer import Trace

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

    def fork(self, serials: Iterable[int], at: int) -> Fork | None:
        """Where the tensors ``serials``, as read by event ``at``, last shared their history:
        the latest op all of them depend on. None when they share nothing.

        Ops are visited backwards from ``at`` in decreasing order, each carrying the set
        of inputs that depend on it (a bit mask): an op comes before its readers, so its
        mask is complete when it is visited. The walk ends when no op seen so far belongs
        to some inputs only, so it stays near the fork instead of crossing the network.
        """
        serials = list(serials)
        everyone = (1 << len(serials)) - 1
        masks: dict[int, int] = {}  # op index (or -1 - serial for a model input) -> mask
        heap: list[int] = []  # negated nodes: the latest op first
        partial = 0  # queued nodes that only some inputs depend on

        def reach(serial: int, before: int, mask: int) -> None:
            nonlocal partial
            writer = self.writer(serial, before)
            node = -1 - serial if writer is None else writer
            old = masks.get(node)
            if old is None:
                heapq.heappush(heap, -node)
                old = 0
                partial += 1
            masks[node] = old | mask
            if masks[node] == everyone and old != everyone:
                partial -= 1

        for i, serial in enumerate(serials):
            reach(serial, at, 1 << i)
        branches: list[set[int]] = [set() for _ in serials]
        node = None
        while heap and partial:
            current = -heapq.heappop(heap)
            mask = masks[current]
            if mask == everyone:
                node = current if node is None else node
            else:
                partial -= 1
                for i, branch in enumerate(branches):
                    if mask >> i & 1:
                        branch.add(current)
            if current >= 0:
                for serial in self.activation_inputs(self.events[current]):
                    reach(serial, current, mask)
        if node is None:
            node = -heap[0] if heap else None  # every branch met at once: the next op
        if node is None:
            return None
        return Fork(self._fork_serial(node, serials, branches), [frozenset(b) for b in branches])

    def _fork_serial(self, node: int, serials: list[int], branches: list[set[int]]) -> int:
        """The tensor of fork node ``node`` that the branches read."""
        if node < 0:
            return -1 - node
        outputs = self.events[node].outputs
        reads = {s for branch in branches for e in branch for s in self.events[e].inputs}
        return next((s for s in outputs if s in reads or s in serials), outputs[0])
