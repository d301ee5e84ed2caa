"""How long each activation lives in a traced run, and how many bytes are live at each op.

Everything here is a pure function of a :class:`~archstat.trace.tracer.Trace`'s data flow; the
unit is bytes of storage. The rules:

* Memory belongs to storages, not tensors: a view, or the result of an in-place op,
  shares its base's storage and adds nothing. A storage counts its full size
  (``storage_nbytes``), since a small view keeps all of it alive.
* Only activation storages count: those first made by an op during the run. Storages
  of the model's inputs, parameters and buffers (and views of them, such as the
  transposed weight a linear layer multiplies by) exist before and after the forward.
* A storage is live from the op that makes it until the traced run frees it, i.e. until
  Python drops the last reference to it (``Trace.freed``), and at least until its last
  use in the data flow. Last use alone would be too early: a caller holds a module's
  arguments until the call returns (``x = self.layer1(x)`` keeps the old ``x`` through
  all of ``layer1``), and a variable holds a tensor until it is rebound
  (``F.local_response_norm`` keeps ``div`` alive through three more ops).
* The model's outputs stay live to the end of the forward, and so, in a training trace,
  does what autograd saved for backward (the graph holds it until backward runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from archstat.trace.tracer import Trace


@dataclass(frozen=True)
class Lifetime:
    """One activation storage: its size in bytes, the first and last event at which it
    is live (``end == len(trace.events)`` means it outlives the forward), and the serial
    of the first tensor seen on it (for its shape and the layer that made it)."""

    storage: int
    nbytes: int
    start: int
    end: int
    tensor: int


@dataclass(frozen=True)
class LiveProfile:
    """Live activation bytes over a traced forward.

    ``during[i]``: bytes live while event ``i`` runs (its inputs and outputs included);
    ``after[i]``: bytes still live once it has finished. ``peak_bytes`` is the largest
    ``during`` value, first reached at event ``peak_event`` (-1 for a trace with no op).
    """

    lifetimes: list[Lifetime]
    during: list[int]
    after: list[int]

    @property
    def peak_event(self) -> int:
        if not self.during:
            return -1
        return max(range(len(self.during)), key=lambda i: (self.during[i], -i))

    @property
    def peak_bytes(self) -> int:
        return max(self.during, default=0)

    def live_at(self, event: int) -> list[Lifetime]:
        """The storages live while ``event`` runs, in the order they were made."""
        return [lt for lt in self.lifetimes if lt.start <= event <= lt.end]


def external_storages(trace: Trace) -> set[int]:
    """Storages that belong to the model's inputs, parameters or buffers."""
    return {t.storage for t in trace.tensors if t.role != "activation"}


def saved_storages(trace: Trace) -> dict[int, int]:
    """Activation storages autograd saved for backward -> their bytes, each counted once
    however many ops saved it (or a view of it)."""
    external = external_storages(trace)
    saved = {}
    for serial in trace.saved:
        meta = trace.tensors[serial]
        if meta.storage not in external:
            saved[meta.storage] = max(saved.get(meta.storage, 0), meta.storage_nbytes)
    return saved


def lifetimes(trace: Trace) -> list[Lifetime]:
    """The lifetime of every activation storage of ``trace``, in the order they were made."""
    external = external_storages(trace)
    n_events = len(trace.events)
    found: dict[int, list[int]] = {}  # storage -> [nbytes, start, end, first tensor]
    for index, event in enumerate(trace.events):
        for serial in (*event.inputs, *event.outputs):
            meta = trace.tensors[serial]
            if meta.storage in external:
                continue
            entry = found.setdefault(meta.storage, [0, index, index, serial])
            entry[0] = max(entry[0], meta.storage_nbytes)
            entry[2] = index
    for storage, entry in found.items():
        # freed after ``freed[storage]`` events had run: live through the one before
        entry[2] = max(entry[2], trace.freed.get(storage, n_events + 1) - 1)
    kept = {trace.tensors[s].storage for s in trace.outputs}
    kept.update(saved_storages(trace))
    for storage in kept & found.keys():
        found[storage][2] = n_events
    # an empty storage (a kernel's unused "reserve" output) costs nothing
    return [Lifetime(storage, *entry) for storage, entry in found.items() if entry[0]]


def profile(trace: Trace) -> LiveProfile:
    """Live activation bytes during and after each event of ``trace`` (see module rules)."""
    spans = lifetimes(trace)
    n_events = len(trace.events)
    starts, ends = [0] * (n_events + 1), [0] * (n_events + 1)
    for lt in spans:
        starts[lt.start] += lt.nbytes
        ends[lt.end] += lt.nbytes
    during, after, live = [], [], 0
    for index in range(n_events):
        live += starts[index]
        during.append(live)
        live -= ends[index]
        after.append(live)
    return LiveProfile(spans, during, after)


def live_bytes_after_records(trace: Trace, live: LiveProfile) -> list[int]:
    """Live activation bytes after each layer record's last op; a record without ops
    (an identity, a dropout at inference) repeats the value before it."""
    values, current = [], 0
    for record in trace.records:
        if record.events:
            current = live.after[record.events[-1]]
        values.append(current)
    return values


def peak_until(trace: Trace, last: int) -> int:
    """The most activation bytes live at once while events ``0..last`` run (a network
    compared down to a cut): the full trace's peak when ``last`` is its final event."""
    return max(profile(trace).during[: last + 1], default=0)
