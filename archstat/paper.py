"""Architecture tables laid out as their papers print them, recomputed from the trace.

* googlenet: Szegedy et al. 2014, Table 1, one row per paper row (an inception module is
  one row). ``params`` counts conv and fc weights without biases, as the paper does;
  ``ops`` are multiply-adds (weights x output positions). The terminal prints them like
  the paper, K = 1024 params and M = 1e6 ops.
* resnet: He et al. 2015, Table 1, one row per stage with its FLOPs (multiply-adds) and
  params (weights, biases and BatchNorm), and the total.
* vgg: the model's configuration column of Simonyan and Zisserman Table 1, with params
  (weights and biases) and multiply-adds per layer and the total of Table 2.

Where a paper's printed figure disagrees with the architecture it describes, the table
shows the recomputed figure and a note gives both. Other models have no paper layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from archstat import render
from archstat.compute_layers import (
    ComputeLayer,
    compute_layers,
    numel,
    record_events,
    side,
    weight_depth,
)
from archstat.errors import ArchstatError
from archstat.zoo import get_model_info, list_models
from archstat.zoo.googlenet import PAPER_TABLE1

GOOGLENET_COLUMNS = [
    "type", "patch_size_stride", "output_size", "depth", "n1x1", "n3x3_reduce", "n3x3",
    "n5x5_reduce", "n5x5", "pool_proj", "params", "ops",
]
RESNET_COLUMNS = ["layer_name", "output_size", "blocks", "params", "flops"]
VGG_COLUMNS = ["layer", "output_size", "params", "flops"]

# The columns an inception module's branches fill, branch by branch (Figure 2(b)).
_BRANCH_COLUMNS = (("n1x1",), ("n3x3_reduce", "n3x3"), ("n5x5_reduce", "n5x5"), ("pool_proj",))


def _inception(key: str) -> tuple[str, tuple[str, ...], str]:
    return f"inception ({key})", (f"inception{key}",), f"inception ({key})"


def _pool(*modules: str) -> tuple[str, tuple[str, ...], None]:
    return "max pool", modules, None


# Table 1's rows in order: (type, the modules of the zoo's GoogLeNet it covers, its key in
# PAPER_TABLE1). The LRN layers of Figure 3, absent from Table 1, join the row before
# them; the flatten in forward() joins the avg pool. softmax is not part of the model.
GOOGLENET_ROWS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("convolution", ("conv1",), "convolution 7x7/2"),
    _pool("maxpool1", "norm1"),
    ("convolution", ("conv2", "conv3", "norm2"), "convolution 3x3/1"),
    _pool("maxpool2"),
    *map(_inception, ["3a", "3b"]),
    _pool("maxpool3"),
    *map(_inception, ["4a", "4b", "4c", "4d", "4e"]),
    _pool("maxpool4"),
    *map(_inception, ["5a", "5b"]),
    ("avg pool", ("avgpool", ""), None),
    ("dropout", ("dropout",), None),  # 40% in the paper; the trace does not see p
    ("linear", ("fc",), "linear"),
    ("softmax", (), None),
)

# He et al. Table 1's rows: (layer name, modules of the torchvision layout).
RESNET_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conv1", ("conv1", "bn1", "relu")),
    ("conv2_x", ("maxpool", "layer1")),
    ("conv3_x", ("layer2",)),
    ("conv4_x", ("layer3",)),
    ("conv5_x", ("layer4",)),
    ("head", ("avgpool", "", "fc")),  # the paper's unnamed last row
)


# -- shared helpers ---------------------------------------------------------------------

def _covers(name: str, modules: Iterable[str]) -> bool:
    return any(name == m or (m and name.startswith(m + ".")) for m in modules)


def _records(analysis: Any, modules: Sequence[str]) -> list[int]:
    return [i for i, r in enumerate(analysis.trace.records) if _covers(r.name, modules)]


def _sum(analysis: Any, records: list[int], column: str) -> int:
    return int(analysis.layers[column].iloc[records].sum()) if records else 0


def _weights(analysis: Any, records: list[int]) -> int:
    """Conv and fc weights the records use (tensors of two or more dimensions that are
    parameters): biases and norm scales left out, as GoogLeNet's Table 1 counts."""
    trace = analysis.trace
    weights: dict[int, int] = {}
    for index in records:
        for event in (trace.events[e] for e in trace.records[index].events):
            for serial in event.inputs:
                tensor = trace.tensors[serial]
                if tensor.role == "param" and len(tensor.shape) > 1:
                    weights[tensor.storage] = numel(tensor.shape)
    return sum(weights.values())


def _size_hwc(shape: tuple[int, ...] | None) -> str:
    """``(1, 64, 112, 112)`` -> ``112x112x64``; a vector ``(1, 1000)`` -> ``1x1x1000``."""
    if not shape or len(shape) < 2:
        return ""
    sides = shape[2:] or (1, 1)
    return "x".join(map(str, (*sides, shape[1])))


def _dims(values: tuple[int, ...]) -> str:
    return "x".join(map(str, values))


def _layers_in(layers: list[ComputeLayer], records: list[int]) -> list[ComputeLayer]:
    wanted = set(records)
    return [layer for layer in layers if layer.records[0] in wanted]


def _at_paper_input(analysis: Any) -> bool:
    return analysis.input_shape == [get_model_info(analysis.model).input_shape]


def _agrees(value: float, printed: float) -> bool:
    """A printed figure agrees when within 2% or half a printed unit (rounding)."""
    return abs(value - printed) <= max(0.02 * abs(printed), 0.5)


def paper_k(value: Any) -> str:
    """Params as GoogLeNet's Table 1 prints them: thousands of 1024, e.g. 2.7K, 159K."""
    return _paper_unit(value / 1024, "K")


def paper_m(value: Any) -> str:
    """Ops as Table 1 prints them: millions, e.g. 34M, 1M."""
    return _paper_unit(value / 1e6, "M")


def _paper_unit(scaled: float, unit: str) -> str:
    if scaled == 0:
        return "0"
    return f"{scaled:.2g}{unit}" if scaled < 10 else f"{int(scaled + 0.5)}{unit}"


# -- GoogLeNet ----------------------------------------------------------------------------

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
    return f"{_dims(last.kernel)}/{_dims(tuple(dict.fromkeys(last.stride)))}"


def _googlenet_row(analysis: Any, layers: list[ComputeLayer], spec, previous: dict) -> dict:
    kind, modules, _key = spec
    records = _records(analysis, modules)
    mine = _layers_in(layers, records)
    output = analysis.trace.records[records[-1]].output_shape if records else None
    return {
        **dict.fromkeys(GOOGLENET_COLUMNS),  # blank cells stay None, not NaN
        "type": kind,
        "patch_size_stride": _patch(kind, mine),
        "output_size": _size_hwc(output) if records else previous.get("output_size", ""),
        "depth": weight_depth(analysis.trace, record_events(analysis.trace, records)),
        **_filter_columns(kind, modules[0] if modules else "", mine),
        "params": _weights(analysis, records),
        "ops": _sum(analysis, records, "flops"),
    }


def _googlenet_notes(analysis: Any, frame: pd.DataFrame, layers: list[ComputeLayer]) -> list[str]:
    notes = ["params: conv and fc weights, biases left out as Table 1 counts them (printed "
             "with K = 1024, as the paper does); ops: multiply-adds, weights x output "
             "positions (M = 1e6)."]
    five = [layer for layer in layers if ".branch3." in layer.name and layer.kind == "conv"
            and layer.kernel != (1, 1)]
    odd = sorted({_dims(layer.kernel) for layer in five} - {"5x5"})
    if odd:
        notes.append(f"the #5x5 column is a {', '.join(odd)} convolution in this model "
                     "(torchvision's deviation, pytorch/vision issue 906).")
    if "paper_table1" not in get_model_info(analysis.model).reference:
        return [*notes, f"{analysis.model} is not the paper's network: Table 1's printed "
                        "figures are compared for googlenet only."]
    if not _at_paper_input(analysis):
        return [*notes, "input differs from the paper's 3x224x224: Table 1's figures are "
                        "not compared."]
    for (kind, modules, key), row in zip(GOOGLENET_ROWS, frame.to_dict("records"), strict=True):
        printed = PAPER_TABLE1.get(key or "")
        if printed is None:
            continue
        wrong = []
        if not _agrees(row["params"] / 1024, printed["params"] / 1000):
            wrong.append(f"params {printed['params'] / 1000:g}K (recomputed "
                         f"{paper_k(row['params'])}, {row['params']:,} weights)")
        if not _agrees(row["ops"] / 1e6, printed["ops"] / 1e6):
            wrong.append(f"ops {printed['ops'] / 1e6:g}M (recomputed {paper_m(row['ops'])}, "
                         f"{row['ops']:,})")
        if wrong:
            label = kind if kind.startswith("inception") else f"{kind} ({modules[0]})"
            notes.append(f"{label}: Table 1 prints {' and '.join(wrong)}; the table shows "
                         "the recomputed figures.")
    return notes


def googlenet_table(analysis: Any) -> render.Table:
    """Table 1 of Szegedy et al. 2014 for a GoogLeNet analysed under ``macs``."""
    layers = compute_layers(analysis)
    rows: list[dict] = []
    for spec in GOOGLENET_ROWS:
        rows.append(_googlenet_row(analysis, layers, spec, rows[-1] if rows else {}))
    frame = pd.DataFrame(rows, columns=GOOGLENET_COLUMNS, dtype=object)
    trace = analysis.trace
    return render.Table(
        frame=frame,
        title=f"{analysis.model}: Szegedy et al. 2014, Table 1 (recomputed)",
        meta={**analysis.header(), "style": "paper"},
        formats={"params": paper_k, "ops": paper_m},
        headers={"patch_size_stride": "patch size/stride", "n3x3_reduce": "#3x3 reduce",
                 "n5x5_reduce": "#5x5 reduce", "n1x1": "#1x1", "n3x3": "#3x3",
                 "n5x5": "#5x5", "pool_proj": "pool proj", "output_size": "output size"},
        footer=["total", "", "", str(weight_depth(trace, range(len(trace.events)))),
                *[""] * 6, paper_k(frame["params"].sum()), paper_m(frame["ops"].sum())],
        notes=_googlenet_notes(analysis, frame, layers),
    )


# -- ResNet -------------------------------------------------------------------------------

def _describe(layer: ComputeLayer) -> str:
    if layer.kind == "conv":
        return f"{_dims(layer.kernel)}, {layer.filters}, stride {layer.stride[0]}"
    if layer.kind == "pool":
        if layer.kernel and layer.kernel[0] > 1 and layer.name.endswith("maxpool"):
            return f"{_dims(layer.kernel)} max pool, stride {layer.stride[0]}"
        return "average pool"
    if layer.kind == "fc":
        return f"{layer.filters}-d fc"
    return ""


def _stage(module: str, layers: list[ComputeLayer]) -> str:
    """``[1x1, 64; 3x3, 64; 1x1, 256] x 3``: the first block's main path, times blocks."""
    blocks = {layer.name.split(".")[1] for layer in layers if layer.name.startswith(module + ".")}
    first = [layer for layer in layers if layer.name.startswith(f"{module}.0.")
             and layer.kind == "conv" and ".downsample." not in layer.name]
    inner = "; ".join(f"{_dims(layer.kernel)}, {layer.filters}" for layer in first)
    return f"[{inner}] x {len(blocks)}"


def _blocks(modules: tuple[str, ...], layers: list[ComputeLayer]) -> str:
    parts = []
    for module in modules:
        mine = [layer for layer in layers if _covers(layer.name, [module])]
        if any(layer.name.count(".") >= 2 for layer in mine):
            parts.append(_stage(module, mine))
        else:
            parts.extend(filter(None, map(_describe, mine)))
    return "; ".join(parts)


def _stride_note(layers: list[ComputeLayer]) -> str | None:
    """Say where a downsampling bottleneck strides: the 3x3 (v1.5) or the first 1x1 (v1)."""
    first = [layer for layer in layers if layer.name.startswith("layer2.0.")
             and layer.kind == "conv" and ".downsample." not in layer.name]
    strided = [layer for layer in first if layer.stride and layer.stride[0] > 1]
    if len(first) != 3 or not strided:
        return None
    if strided[0].kernel == (3, 3):
        return ("this layout strides the 3x3 conv of each downsampling bottleneck "
                "(torchvision, 'v1.5'); the paper strides the first 1x1 (resnet50_v1), "
                "which costs fewer multiply-adds.")
    return "this layout strides the first 1x1 conv of a downsampling bottleneck, as the paper."


def resnet_table(analysis: Any) -> render.Table:
    """The stage table of He et al. 2015, Table 1, for a ResNet analysed under ``macs``."""
    layers = compute_layers(analysis)
    rows = []
    for name, modules in RESNET_ROWS:
        records = _records(analysis, modules)
        spatial = [analysis.trace.records[i].output_shape for i in records]
        spatial = [shape for shape in spatial if shape and len(shape) > 2]
        rows.append({
            "layer_name": name,
            "output_size": _dims(spatial[-1][2:]) if spatial else "",
            "blocks": _blocks(modules, _layers_in(layers, records)),
            "params": _sum(analysis, records, "params"),
            "flops": _sum(analysis, records, "flops"),
        })
    frame = pd.DataFrame(rows, columns=RESNET_COLUMNS)
    total = {"layer_name": "total", "output_size": "", "blocks": "",
             "params": int(frame["params"].sum()), "flops": int(frame["flops"].sum())}
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    notes = ["flops: multiply-adds, as the paper counts them; params: weights, biases "
             "and BatchNorm."]
    note = _stride_note(layers)
    if note:
        notes.append(note)
    paper = get_model_info(analysis.model).reference.get("paper_flops")
    if paper and _at_paper_input(analysis):
        ours = total["flops"]
        notes.append(f"He et al. Table 1 prints {paper / 1e9:.1f}x10^9 FLOPs; recomputed "
                     f"{ours / 1e9:.2f}x10^9 ({(ours - paper) / paper:+.1%}).")
    return render.Table(
        frame=frame,
        title=f"{analysis.model}: He et al. 2015, Table 1 (recomputed)",
        meta={**analysis.header(), "style": "paper"},
        formats={"params": render.human, "flops": render.human},
        headers={"layer_name": "layer name", "output_size": "output size",
                 "flops": "FLOPs (multiply-adds)"},
        notes=notes,
    )


# -- VGG ----------------------------------------------------------------------------------

def _vgg_label(layer: ComputeLayer) -> str:
    if layer.kind == "conv":
        return f"conv{side(layer.kernel)}-{layer.filters}"  # Table 1's conv3-64
    if layer.kind == "fc":
        return f"FC-{layer.filters}"
    return "maxpool" if layer.kind == "pool" else layer.kind


def vgg_table(analysis: Any) -> render.Table:
    """The model's column of Simonyan and Zisserman Table 1, with params (weights and
    biases) and multiply-adds per layer, and Table 2's total."""
    layers = compute_layers(analysis)
    shape = analysis.input_shape[0]
    rows = [{"layer": f"input ({shape[-2]} x {shape[-1]} RGB image)",
             "output_size": _size_hwc((1, *shape)), "params": 0, "flops": 0}]
    for layer in layers:
        if layer.kind == "flatten":  # not a row of Table 1: fold into the row before
            rows[-1]["params"] += layer.params
            rows[-1]["flops"] += layer.flops
            continue
        rows.append({"layer": _vgg_label(layer), "output_size": _size_hwc(layer.output_shape),
                     "params": layer.params, "flops": layer.flops})
    rows.append({"layer": "soft-max", "output_size": rows[-1]["output_size"], "params": 0,
                 "flops": 0})
    frame = pd.DataFrame(rows, columns=VGG_COLUMNS)
    params, flops = int(frame["params"].sum()), int(frame["flops"].sum())
    frame = pd.concat([frame, pd.DataFrame([{"layer": "total", "output_size": "",
                                             "params": params, "flops": flops}])],
                      ignore_index=True)
    info = get_model_info(analysis.model)
    weight_layers = sum(layer.kind in ("conv", "fc") for layer in layers)
    notes = ["params: weights and biases (and BatchNorm, folded into its conv's row, in a "
             "_bn model); flops: multiply-adds."]
    printed = info.reference.get("paper_params_m")
    if printed and _at_paper_input(analysis):
        agree = "agrees" if round(params / 1e6) == printed else "disagrees"
        notes.append(f"Table 2 prints {printed}M params for configuration "
                     f"{info.reference['config']}; recomputed {params:,} ({agree}).")
    return render.Table(
        frame=frame,
        title=(f"{analysis.model}: Simonyan and Zisserman 2014, Table 1, configuration "
               f"{info.reference.get('config', '?')} ({weight_layers} weight layers)"),
        meta={**analysis.header(), "style": "paper"},
        formats={"params": render.human, "flops": render.human},
        headers={"layer": f"ConvNet configuration {info.reference.get('config', '')}",
                 "output_size": "output size", "flops": "flops (multiply-adds)"},
        notes=notes,
    )


# -- dispatch -----------------------------------------------------------------------------

PAPER_TABLES: dict[str, Callable[[Any], render.Table]] = {
    "googlenet": googlenet_table,
    "resnet": resnet_table,
    "vgg": vgg_table,
}


def paper_table(analysis: Any) -> render.Table:
    """The paper's architecture table for a zoo model of a family that has one (see
    PAPER_TABLES); ArchstatError for any other model."""
    known = [name for name in list_models() if get_model_info(name).family in PAPER_TABLES]
    if analysis.model not in known:
        raise ArchstatError(f"{analysis.model!r} has no paper layout; --style paper knows "
                            f"the zoo's {', '.join(PAPER_TABLES)} models")
    if analysis.convention != "macs":
        raise ArchstatError("--style paper counts multiply-adds as the papers do; "
                            f"drop --convention {analysis.convention}")
    return PAPER_TABLES[get_model_info(analysis.model).family](analysis)
