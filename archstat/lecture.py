"""The per-layer table of the EECS 498/598 "CNN Architectures" lecture (J. Johnson,
Lecture 8), for any model.

One row per conv, pool, fc or flatten layer (see :mod:`archstat.compute_layers` for what folds into
a row), with the lecture's columns and units, per image:

* ``memory_kb``: the layer's output, elements x 4 bytes / 1024 (KiB), batch 1;
* ``params_k``: weights + biases / 1000;
* ``flop_m``: the layer's count under the analysis's convention / 1e6; ``lecture``
  (multiply-adds, and pooling at kernel area per output element) is the lecture's;
* ``backward_flop_m`` (a training analysis only): the layer's backward (and checkpointed
  recomputation) in the same unit.

Rows are named like the lecture's (conv1, pool1, ..., fc6) when the network is a plain
chain of layers, by module path otherwise.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd

from archstat import render
from archstat.compute_layers import ComputeLayer, compute_layers, is_chain, numel, side, spatial_str

COLUMNS = [
    "layer", "in_channels", "in_size", "filters", "kernel", "stride", "pad", "out_channels",
    "out_size", "memory_kb", "params_k", "flop_m",
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
    }


def slide_number(value: Any) -> str:
    """Round like the lecture's slides: whole numbers with thousands separators; a
    non-zero value below 1 keeps one significant digit (a pool's 0.4 MFLOP)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if 0 < abs(value) < 1:
        return format(Decimal(f"{value:.1g}"), "f")  # 0.4, 0.00006: never 6e-05
    return f"{int(value + 0.5):,}"  # half up, as the slides round


def lecture_table(analysis: Any) -> render.Table:
    """The lecture's table of ``analysis``: exact values (CSV keeps full precision), and
    for the terminal, numbers rounded like the slides and branching modules grouped."""
    layers = compute_layers(analysis)
    chain = is_chain(analysis.trace, layers)
    names = layer_names(analysis, layers)
    training = "backward_flops" in analysis.layers
    rows = [lecture_row(n, layer, analysis.batch) for n, layer in zip(names, layers, strict=True)]
    if training:  # the backward beside the forward (and checkpointing's recomputation)
        for row, layer in zip(rows, layers, strict=True):
            row["backward_flop_m"] = layer.backward_flops / analysis.batch / 1e6
    columns = [*COLUMNS, *(["backward_flop_m"] if training else [])]
    frame = pd.DataFrame(rows, columns=columns, dtype=object)  # keeps ints ints, blanks None
    counted = ["memory_kb", "params_k", "flop_m", *(["backward_flop_m"] if training else [])]
    totals = ["total", *[""] * 8, *(slide_number(frame[c].sum()) for c in counted)]
    return render.Table(
        frame=frame,
        title=f"{render.analysis_title(analysis)}  (per image; lecture layout)",
        meta={**analysis.header(), "style": "lecture"},
        formats=dict.fromkeys(counted, slide_number),
        headers={"memory_kb": "memory (KB)", "params_k": "params (k)",
                 "flop_m": f"flop (M, {analysis.convention})",
                 "backward_flop_m": f"backward (M, {analysis.convention})"},
        footer=totals,
        groups=None if chain else [layer.group for layer in layers],
    )


def _path(layer: ComputeLayer) -> str:
    return layer.name if layer.leaf else ".".join(filter(None, [layer.name, layer.kind]))


def layer_names(analysis: Any, layers: list[ComputeLayer]) -> list[str]:
    """Row names: the lecture's (conv1, pool1, ..., fc6) for a plain chain of layers,
    module paths otherwise (a functional layer by its kind inside its module, e.g. the
    ``flatten`` in a model's forward)."""
    if is_chain(analysis.trace, layers):
        return lecture_names(layers)
    return [_path(layer) for layer in layers]
