"""The module a structure found in the data flow is reported under."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from archstat.trace.dataflow import DataFlow

#: torch's plain containers: one that holds exactly the ops of its parent module gives
#: way to the parent (an MBConv's ``block`` Sequential is reported as the MBConv).
_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})


class ModuleNames:
    """Names structures of one trace by the modules their ops ran in; ``types`` maps
    every module path to its class name (``Analysis.module_types``)."""

    def __init__(self, flow: DataFlow, types: Mapping[str, str] | None = None) -> None:
        self.flow = flow
        self.types = dict(types or {r.name: r.type for r in flow.trace.records})
        self.counts: Counter[str] = Counter()  # module path -> ops run inside it
        for index in range(len(flow.events)):
            parts = self._parts(index)
            self.counts.update(".".join(parts[:depth]) for depth in range(len(parts) + 1))

    def _parts(self, index: int) -> list[str]:
        name = self.flow.module(index)
        return name.split(".") if name else []

    def of(self, events: Iterable[int]) -> str:
        """The innermost module every one of ``events`` ran in ('' for the model's own
        code); a plain container whose parent runs the same ops is named by its parent."""
        common: list[str] = []
        for parts in zip(*(self._parts(e) for e in events), strict=False):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        name = ".".join(common)
        while name and self.types.get(name) in _CONTAINERS:
            parent = name.rpartition(".")[0]
            if self.counts[parent] != self.counts[name]:
                break
            name = parent
        return name
