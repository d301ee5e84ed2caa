"""ResNet: the stage table of He et al. 2015, Table 1, one row per stage with its FLOPs
(multiply-adds) and params (weights, biases and BatchNorm), and the total. The stages'
modules come from the zoo (:data:`archstat.zoo.resnet.TABLE1_STAGES`)."""

from __future__ import annotations

from typing import Any

from archstat.compute_layers import ComputeLayer, compute_layers
from archstat.paper import (
    Note,
    PaperTable,
    at_paper_input,
    covers,
    dims,
    layers_in,
    record_total,
    records_of,
)
from archstat.zoo import get_model_info
from archstat.zoo.resnet import TABLE1_STAGES

COLUMNS = ["layer_name", "output_size", "blocks", "params", "flops"]


def _describe(layer: ComputeLayer) -> str:
    if layer.kind == "conv":
        return f"{dims(layer.kernel)}, {layer.filters}, stride {layer.stride[0]}"
    if layer.kind == "pool":
        if layer.kernel and layer.kernel[0] > 1 and layer.name.endswith("maxpool"):
            return f"{dims(layer.kernel)} max pool, stride {layer.stride[0]}"
        return "average pool"
    if layer.kind == "fc":
        return f"{layer.filters}-d fc"
    return ""


def _stage(module: str, layers: list[ComputeLayer]) -> str:
    """``[1x1, 64; 3x3, 64; 1x1, 256] x 3``: the first block's main path, times blocks."""
    blocks = {layer.name.split(".")[1] for layer in layers if layer.name.startswith(module + ".")}
    first = [layer for layer in layers if layer.name.startswith(f"{module}.0.")
             and layer.kind == "conv" and ".downsample." not in layer.name]
    inner = "; ".join(f"{dims(layer.kernel)}, {layer.filters}" for layer in first)
    return f"[{inner}] x {len(blocks)}"


def _blocks(modules: tuple[str, ...], layers: list[ComputeLayer]) -> str:
    parts = []
    for module in modules:
        mine = [layer for layer in layers if covers(layer.name, [module])]
        if any(layer.name.count(".") >= 2 for layer in mine):
            parts.append(_stage(module, mine))
        else:
            parts.extend(filter(None, map(_describe, mine)))
    return "; ".join(parts)


def _stride_note(layers: list[ComputeLayer]) -> Note | None:
    """Where a downsampling bottleneck strides: the 3x3 (v1.5) or the first 1x1 (v1)."""
    first = [layer for layer in layers if layer.name.startswith("layer2.0.")
             and layer.kind == "conv" and ".downsample." not in layer.name]
    strided = [layer for layer in first if layer.stride and layer.stride[0] > 1]
    if len(first) != 3 or not strided:
        return None
    return Note("stride", {"strided": "3x3" if strided[0].kernel == (3, 3) else "1x1"})


def table(analysis: Any) -> PaperTable:
    """The stage table of He et al. 2015, Table 1, for a ResNet analysed under ``macs``."""
    layers = compute_layers(analysis)
    rows = []
    for name, modules in TABLE1_STAGES:
        records = records_of(analysis, modules)
        spatial = [analysis.trace.records[i].output_shape for i in records]
        spatial = [shape for shape in spatial if shape and len(shape) > 2]
        rows.append({
            "layer_name": name,
            "output_size": dims(spatial[-1][2:]) if spatial else "",
            "blocks": _blocks(modules, layers_in(layers, records)),
            "params": record_total(analysis, records, "params"),
            "flops": record_total(analysis, records, "flops"),
        })
    total = {"layer_name": "total", "output_size": "", "blocks": "",
             "params": sum(r["params"] for r in rows), "flops": sum(r["flops"] for r in rows)}
    notes = [Note("units")]
    stride = _stride_note(layers)
    if stride:
        notes.append(stride)
    paper = get_model_info(analysis.model).reference.get("paper_flops")
    if paper and at_paper_input(analysis):
        notes.append(Note("printed_flops", {"printed": paper, "recomputed": total["flops"]}))
    return PaperTable("resnet", analysis, COLUMNS, rows, total, notes)
