"""Architecture tables laid out as their papers print them, recomputed from the trace: one
module per family (:mod:`.googlenet`, :mod:`.resnet`, :mod:`.vgg`), each reading the
modules a row covers from the zoo's own layout data.

A :class:`PaperTable` is data: its rows, a totals row, and notes as :class:`Note` values
(a kind and its figures). Where a paper's printed figure disagrees with the architecture
it describes, the table holds the recomputed figure and a note holds both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from archstat.compute_layers import ComputeLayer, numel
from archstat.display import Display
from archstat.errors import ArchstatError
from archstat.zoo import get_model_info, list_models


@dataclass(frozen=True)
class Note:
    """A remark under a paper table: ``kind`` (what it says) and ``values`` (its figures
    and names); :mod:`archstat.render.paper` words it."""

    kind: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class PaperTable(Display):
    """``family``'s paper table of ``analysis``: ``rows`` (dicts keyed by ``columns``,
    exact values), ``total`` (the totals row) and ``notes``."""

    family: str
    analysis: Any
    columns: list[str]
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    notes: list[Note]
    config: str = ""  # VGG's configuration letter

    @property
    def frame(self) -> Any:
        """``rows`` as a pandas DataFrame (the totals row apart, in ``total``)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns, dtype=object)


def covers(name: str, modules: Iterable[str]) -> bool:
    return any(name == m or (m and name.startswith(m + ".")) for m in modules)


def records_of(analysis: Any, modules: Sequence[str]) -> list[int]:
    """The trace records run by ``modules`` (or their children)."""
    return [i for i, r in enumerate(analysis.trace.records) if covers(r.name, modules)]


def record_total(analysis: Any, records: list[int], key: str) -> int:
    """``params`` or ``flops`` of ``records``, from the trace under the analysis's own
    convention (any depth the analysis is shown at)."""
    from archstat.analysis import record_counts

    if key == "params":
        return sum(analysis.trace.records[i].params for i in records)
    counts = record_counts(analysis.trace, analysis.convention)
    return sum(counts[i][key] for i in records)


def weights(analysis: Any, records: list[int]) -> int:
    """Conv and fc weights the records use (tensors of two or more dimensions that are
    parameters): biases and norm scales left out, as GoogLeNet's Table 1 counts."""
    trace = analysis.trace
    found: dict[int, int] = {}
    for index in records:
        for event in (trace.events[e] for e in trace.records[index].events):
            for serial in event.inputs:
                tensor = trace.tensors[serial]
                if tensor.role == "param" and len(tensor.shape) > 1:
                    found[tensor.storage] = numel(tensor.shape)
    return sum(found.values())


def size_hwc(shape: tuple[int, ...] | None) -> str:
    """``(1, 64, 112, 112)`` -> ``112x112x64``; a vector ``(1, 1000)`` -> ``1x1x1000``."""
    if not shape or len(shape) < 2:
        return ""
    sides = shape[2:] or (1, 1)
    return "x".join(map(str, (*sides, shape[1])))


def dims(values: tuple[int, ...]) -> str:
    return "x".join(map(str, values))


def layers_in(layers: list[ComputeLayer], records: list[int]) -> list[ComputeLayer]:
    wanted = set(records)
    return [layer for layer in layers if layer.records[0] in wanted]


def at_paper_input(analysis: Any) -> bool:
    return analysis.input_shape == [get_model_info(analysis.model).input_shape]


def agrees(value: float, printed: float) -> bool:
    """A printed figure agrees when within 2% or half a printed unit (rounding)."""
    return abs(value - printed) <= max(0.02 * abs(printed), 0.5)


def _builders() -> dict[str, Callable[[Any], PaperTable]]:
    from archstat.paper import googlenet, resnet, vgg

    return {"googlenet": googlenet.table, "resnet": resnet.table, "vgg": vgg.table}


#: The zoo families that have a paper layout.
FAMILIES = ("googlenet", "resnet", "vgg")


def paper_table(analysis: Any) -> PaperTable:
    """The paper's architecture table for a zoo model of a family that has one
    (FAMILIES), analysed under ``macs``; ArchstatError for any other."""
    known = [name for name in list_models() if get_model_info(name).family in FAMILIES]
    if analysis.model not in known:
        raise ArchstatError(f"{analysis.model!r} has no paper layout; the paper style knows "
                            f"the zoo's {', '.join(FAMILIES)} models")
    if analysis.convention.name != "macs":
        raise ArchstatError("the paper style counts multiply-adds as the papers do: analyse "
                            f"under the macs convention, not {analysis.convention.name}")
    return _builders()[get_model_info(analysis.model).family](analysis)
