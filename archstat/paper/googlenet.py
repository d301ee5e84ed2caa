"""GoogLeNet: Szegedy et al. 2014, Table 1, one row per paper row (an inception module is
one row). ``params`` counts conv and fc weights without biases, as the paper does;
``ops`` are multiply-adds (weights x output positions). The rows' modules come from the
zoo (:data:`archstat.zoo.googlenet.TABLE1_ROWS`)."""

from __future__ import annotations

from typing import Any

from archstat.compute_layers import ComputeLayer, compute_layers, record_events, weight_depth
from archstat.paper import (
    Note,
    PaperTable,
    agrees,
    at_paper_input,
    dims,
    layers_in,
    record_total,
    records_of,
    size_hwc,
    weights,
)
from archstat.zoo import get_model_info
from archstat.zoo.googlenet import PAPER_TABLE1, TABLE1_ROWS

COLUMNS = [
    "type", "patch_size_stride", "output_size", "depth", "n1x1", "n3x3_reduce", "n3x3",
    "n5x5_reduce", "n5x5", "pool_proj", "params", "ops",
]
# The columns an inception module's branches fill, branch by branch (Figure 2(b)).
_BRANCH_COLUMNS = (("n1x1",), ("n3x3_reduce", "n3x3"), ("n5x5_reduce", "n5x5"), ("pool_proj",))


def _filter_columns(kind: str, module: str, layers: list[ComputeLayer]) -> dict[str, int]:
    convs = [layer for layer in layers if layer.kind == "conv"]
    if kind.startswith("inception"):
        branches: dict[str, list[int]] = {}
        for layer in convs:
            branch = layer.name[len(module) + 1:].split(".")[0]
            branches.setdefault(branch, []).append(layer.filters)
        # zip stops at the shorter: a module with fewer branches or convs fills fewer columns
        return {col: filters for cols, found in zip(_BRANCH_COLUMNS, branches.values(),
                                                    strict=False)
                for col, filters in zip(cols, found, strict=False)}
    if len(convs) >= 2:  # a 3x3 convolution with its 1x1 reduction
        return {"n3x3_reduce": convs[0].filters, "n3x3": convs[-1].filters}
    return {}


def _patch(kind: str, layers: list[ComputeLayer]) -> str:
    shaped = [layer for layer in layers if layer.kernel]
    if kind.startswith("inception") or not shaped:
        return ""
    last = shaped[-1]
    return f"{dims(last.kernel)}/{dims(tuple(dict.fromkeys(last.stride)))}"


def _row(analysis: Any, layers: list[ComputeLayer], spec: Any, previous: dict) -> dict:
    kind, modules, _key = spec
    records = records_of(analysis, modules)
    mine = layers_in(layers, records)
    output = analysis.trace.records[records[-1]].output_shape if records else None
    return {
        **dict.fromkeys(COLUMNS),  # blank cells stay None
        "type": kind,
        "patch_size_stride": _patch(kind, mine),
        "output_size": size_hwc(output) if records else previous.get("output_size", ""),
        "depth": weight_depth(analysis.trace, record_events(analysis.trace, records)),
        **_filter_columns(kind, modules[0] if modules else "", mine),
        "params": weights(analysis, records),
        "ops": record_total(analysis, records, "flops"),
    }


def _notes(analysis: Any, rows: list[dict], layers: list[ComputeLayer]) -> list[Note]:
    notes = [Note("units")]
    five = [layer for layer in layers if ".branch3." in layer.name and layer.kind == "conv"
            and layer.kernel != (1, 1)]
    odd = sorted({dims(layer.kernel) for layer in five} - {"5x5"})
    if odd:
        notes.append(Note("five_by_five", {"kernels": odd}))
    if "paper_table1" not in get_model_info(analysis.model).reference:
        return [*notes, Note("not_the_paper_network", {"model": analysis.model})]
    if not at_paper_input(analysis):
        return [*notes, Note("input_differs")]
    for (kind, modules, key), row in zip(TABLE1_ROWS, rows, strict=True):
        printed = PAPER_TABLE1.get(key or "")
        if printed is None:
            continue
        wrong = {}
        if not agrees(row["params"] / 1024, printed["params"] / 1000):
            wrong["params"] = (printed["params"], row["params"])
        if not agrees(row["ops"] / 1e6, printed["ops"] / 1e6):
            wrong["ops"] = (printed["ops"], row["ops"])
        if wrong:
            label = kind if kind.startswith("inception") else f"{kind} ({modules[0]})"
            notes.append(Note("printed_differs", {"row": label, **wrong}))
    return notes


def table(analysis: Any) -> PaperTable:
    """Table 1 of Szegedy et al. 2014 for a GoogLeNet analysed under ``macs``."""
    layers = compute_layers(analysis)
    rows: list[dict] = []
    for spec in TABLE1_ROWS:
        rows.append(_row(analysis, layers, spec, rows[-1] if rows else {}))
    trace = analysis.trace
    total = {"type": "total", "depth": weight_depth(trace, range(len(trace.events))),
             "params": sum(r["params"] for r in rows), "ops": sum(r["ops"] for r in rows)}
    return PaperTable("googlenet", analysis, COLUMNS, rows, total,
                      _notes(analysis, rows, layers))
