"""The per-layer table of the EECS 498/598 "CNN Architectures" lecture (J. Johnson,
Lecture 8), for any model.

One row per conv, pool, fc or flatten layer (see :mod:`archstat.compute_layers` for what folds into
a row), with the lecture's columns and units, per image:

* ``memory_kb``: the layer's output, elements x 4 bytes / 1024 (KiB), batch 1;
* ``params_k``: weights + biases / 1000;
* ``flop_m``: the layer's count under the analysis's convention / 1e6; ``lecture``
  (multiply-adds, and pooling at kernel area per output element) is the lecture's;
* ``receptive_field``: the input pixels a unit of the layer's output sees (the largest
  over the paths; see :mod:`archstat.receptive`), one side when square, else ``HxW``;
* ``backward_flop_m`` (a training analysis only): the layer's backward (and checkpointed
  recomputation) in the same unit.

Rows are named like the lecture's (conv1, pool1, ..., fc6) when the network is a plain
chain of layers, by module path otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archstat.compute_layers import ComputeLayer, compute_layers, is_chain, numel, side, spatial_str
from archstat.display import Display

COLUMNS = [
    "layer", "in_channels", "in_size", "filters", "kernel", "stride", "pad", "out_channels",
    "out_size", "memory_kb", "params_k", "flop_m", "receptive_field",
]
BYTES_PER_ELEMENT = 4  # the lecture counts float32 activations


def lecture_names(layers: list[ComputeLayer]) -> list[str]:
    """The lecture's names for a chain of layers: weight layers are numbered in order
    (conv1..conv5, then fc6..fc8), a pool takes the number of the conv before it (pool5
    follows conv5), as in AlexNet's table; a repeated name gets a suffix (_2, _3)."""
    names, count, seen = [], 0, {}
    for layer in layers:
        if layer.kind in ("conv", "fc"):
            count += 1
            name = f"{layer.kind}{count}"
        elif layer.kind == "pool":
            name = f"pool{count}"
        else:
            name = layer.kind
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def _channels(shape: tuple[int, ...] | None) -> int | None:
    return shape[1] if shape and len(shape) >= 2 else None


def lecture_row(name: str, layer: ComputeLayer, batch: int) -> dict[str, Any]:
    return {
        "layer": name,
        "in_channels": _channels(layer.input_shape),
        "in_size": spatial_str(layer.input_shape),
        "filters": layer.filters,
        "kernel": side(layer.kernel),
        "stride": side(layer.stride),
        "pad": side(layer.padding),
        "out_channels": _channels(layer.output_shape),
        "out_size": spatial_str(layer.output_shape),
        "memory_kb": numel(layer.output_shape) // batch * BYTES_PER_ELEMENT / 1024,
        "params_k": layer.params / 1000,
        "flop_m": layer.flops / batch / 1e6,
        "receptive_field": side(layer.receptive_field.size) if layer.receptive_field else None,
    }


@dataclass
class LectureTable(Display):
    """The lecture's table of an analysis: ``rows`` (COLUMNS, plus ``backward_flop_m`` for a
    training analysis; exact values), ``groups`` (per row, the branching module it sits
    in; None for a plain chain, whose rows carry the lecture's names), and the analysis
    it was made from (``analysis``: its settings and convention)."""

    analysis: Any
    rows: list[dict[str, Any]]
    columns: list[str]
    groups: list[str | None] | None

    @property
    def frame(self) -> Any:
        """``rows`` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns, dtype=object)

    @property
    def totals(self) -> dict[str, float]:
        """memory_kb, params_k, flop_m (and backward_flop_m) summed over the rows."""
        summed = ["memory_kb", "params_k", "flop_m",
                  *(["backward_flop_m"] if "backward_flop_m" in self.columns else [])]
        return {c: sum(row[c] for row in self.rows) for c in summed}


def lecture_table(analysis: Any) -> LectureTable:
    """The lecture's table of ``analysis`` (any depth, any convention: it is built from
    the trace, under the analysis's Convention object)."""
    layers = compute_layers(analysis)
    chain = is_chain(analysis.trace, layers)
    names = layer_names(analysis, layers)
    rows = [lecture_row(n, layer, analysis.batch) for n, layer in zip(names, layers, strict=True)]
    columns = list(COLUMNS)
    if analysis.trace.train:  # the backward beside the forward (and its recomputation)
        columns.append("backward_flop_m")
        for row, layer in zip(rows, layers, strict=True):
            row["backward_flop_m"] = layer.backward_flops / analysis.batch / 1e6
    return LectureTable(analysis, rows, columns,
                        None if chain else [layer.group for layer in layers])


def _path(layer: ComputeLayer) -> str:
    return layer.name if layer.leaf else ".".join(filter(None, [layer.name, layer.kind]))


def layer_names(analysis: Any, layers: list[ComputeLayer]) -> list[str]:
    """Row names: the lecture's (conv1, pool1, ..., fc6) for a plain chain of layers,
    module paths otherwise (a functional layer by its kind inside its module, e.g. the
    ``flatten`` in a model's forward)."""
    if is_chain(analysis.trace, layers):
        return lecture_names(layers)
    return [_path(layer) for layer in layers]
