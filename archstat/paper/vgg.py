"""VGG: the model's configuration column of Simonyan and Zisserman 2014, Table 1, with
params (weights and biases) and multiply-adds per layer, and Table 2's total."""

from __future__ import annotations

from typing import Any

from archstat.compute_layers import ComputeLayer, compute_layers, side
from archstat.paper import Note, PaperTable, at_paper_input, size_hwc
from archstat.zoo import get_model_info

COLUMNS = ["layer", "output_size", "params", "flops"]


def _label(layer: ComputeLayer) -> str:
    if layer.kind == "conv":
        return f"conv{side(layer.kernel)}-{layer.filters}"  # Table 1's conv3-64
    if layer.kind == "fc":
        return f"FC-{layer.filters}"
    return "maxpool" if layer.kind == "pool" else layer.kind


def table(analysis: Any) -> PaperTable:
    """The model's column of Simonyan and Zisserman Table 1 and Table 2's total."""
    layers = compute_layers(analysis)
    shape = analysis.input_shape[0]
    rows = [{"layer": f"input ({shape[-2]} x {shape[-1]} RGB image)",
             "output_size": size_hwc((1, *shape)), "params": 0, "flops": 0}]
    for layer in layers:
        if layer.kind == "flatten":  # not a row of Table 1: fold into the row before
            rows[-1]["params"] += layer.params
            rows[-1]["flops"] += layer.flops
            continue
        rows.append({"layer": _label(layer), "output_size": size_hwc(layer.output_shape),
                     "params": layer.params, "flops": layer.flops})
    rows.append({"layer": "soft-max", "output_size": rows[-1]["output_size"], "params": 0,
                 "flops": 0})
    params, flops = sum(r["params"] for r in rows), sum(r["flops"] for r in rows)
    total = {"layer": "total", "output_size": "", "params": params, "flops": flops}
    info = get_model_info(analysis.model)
    notes = [Note("units", {"weight_layers": sum(layer.kind in ("conv", "fc")
                                                  for layer in layers)})]
    printed = info.reference.get("paper_params_m")
    if printed and at_paper_input(analysis):
        notes.append(Note("printed_params", {"config": info.reference["config"],
                                             "printed_m": printed, "recomputed": params}))
    return PaperTable("vgg", analysis, COLUMNS, rows, total, notes,
                      config=info.reference.get("config", ""))
