"""``archstat compare``: several models side by side, and where each spends its budget.

Per model, over its compute layers (:mod:`archstat.compute_layers`):

* ``params``: parameter elements; ``flops``: the convention's count;
* ``activation_bytes``: the bytes of new storage the compared layers allocate, and
  ``peak_activation_bytes`` the most live at once while they run: archstat's one
  definition of activation memory (:mod:`archstat.analysis`), at the given batch and dtype;
* ``output_bytes``: the sum of every compute layer's output size (the lecture's
  "memory" total: a conv's output once, not again for the in-place ReLU after it);
* ``layers``: conv and fc layers; ``depth``: conv and fc layers on the longest path
  through the data flow (22 for GoogLeNet, whose inception branches run side by side);
* ``<metric>_ratio``: the figure divided by the first model's.

The per-stage breakdown groups layers by output resolution (the larger spatial side; fc
and flatten layers, whose outputs are vectors, count at resolution 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from archstat import render
from archstat.compute_layers import WEIGHT_KINDS, ComputeLayer, compute_layers, weight_depth
from archstat.conventions import get_convention
from archstat.errors import ArchstatError, did_you_mean
from archstat.lecture import layer_names
from archstat.trace import liveness

METRICS = ("params", "flops", "activation_bytes", "peak_activation_bytes", "output_bytes",
           "layers", "depth")
CSV_COLUMNS = [
    "model", "params", "flops", "activation_bytes", "peak_activation_bytes", "output_bytes",
    "layers", "depth", "params_ratio", "flops_ratio", "activation_bytes_ratio",
    "peak_activation_bytes_ratio",
]
STAGE_METRICS = ("layers", "params", "flops", "activation_bytes")
#: Metrics of a training comparison (``train=True``): the backward (and recomputation)
#: of the compared layers, and the forward plus backward, in the convention's unit.
TRAIN_METRICS = ("backward_flops", "train_step_flops")
#: The findings compare the networks up to this fraction of the input's side (28 at 224):
#: the stem, where the lecture shows GoogLeNet and VGG-16 differ most.
STEM_FRACTION = 8


@dataclass
class Comparison:
    """``totals``: one row per model (METRICS and their ratios to the first model);
    ``stages``: one row per output resolution, ``<model>_<metric>`` columns;
    ``findings``: sentences on where the budgets differ; ``meta["cut"]`` says which part
    of each network was compared ("" for all of it)."""

    totals: pd.DataFrame
    stages: pd.DataFrame
    meta: dict[str, Any]
    findings: list[str] = field(default_factory=list)


def _spatial(layer: ComputeLayer) -> bool:
    return bool(layer.output_shape) and len(layer.output_shape) > 2


def cut_at_resolution(
    layers: list[ComputeLayer], resolution: int, model: str
) -> list[ComputeLayer]:
    """The layers up to and including the last one whose output is larger than
    ``resolution``, plus the one after it, which brings the maps down to it."""
    larger = [i for i, layer in enumerate(layers) if _spatial(layer)
              and layer.resolution > resolution]
    if not larger:
        raise ArchstatError(f"no layer of {model} has an output larger than {resolution}x"
                            f"{resolution}")
    cut = larger[-1] + 1
    if cut >= len(layers) or not _spatial(layers[cut]):
        smallest = min(layer.resolution for layer in layers if _spatial(layer))
        raise ArchstatError(f"the feature maps of {model} never get down to {resolution}x"
                            f"{resolution} (the smallest is {smallest}x{smallest})")
    return layers[: cut + 1]


def cut_at_layer(analysis: Any, layers: list[ComputeLayer], name: str) -> list[ComputeLayer]:
    """The layers up to and including the last one named ``name``: a row name (conv3,
    pool2 for a plain chain) or a module path or path prefix (``inception4a``,
    ``features.16``), so a module is cut after all of it."""
    names = layer_names(analysis, layers)
    known: list[str] = []
    last = None
    for index, (row, layer) in enumerate(zip(names, layers, strict=True)):
        prefixes = {".".join(p.split(".")[:n]) for p in layer.paths
                    for n in range(1, p.count(".") + 2)}
        known += [row, *sorted(prefixes)]
        if name == row or name in prefixes:
            last = index
    if last is None:
        raise ArchstatError(f"{analysis.model} has no layer {name!r}"
                            f"{did_you_mean(name, dict.fromkeys(known))}")
    return layers[: last + 1]


def _totals(analysis: Any, layers: list[ComputeLayer]) -> dict[str, Any]:
    events = [e for layer in layers for e in layer.events]
    training = {}
    if "backward_flops" in analysis.layers:
        backward = sum(layer.backward_flops for layer in layers)
        training = {"backward_flops": backward,
                    "train_step_flops": sum(layer.flops for layer in layers) + backward}
    return {
        "model": analysis.model,
        "params": sum(layer.params for layer in layers),
        "flops": sum(layer.flops for layer in layers),
        "activation_bytes": sum(layer.activation_bytes for layer in layers),
        "peak_activation_bytes": liveness.peak_until(analysis.trace, max(events, default=-1)),
        "output_bytes": sum(layer.output_bytes for layer in layers),
        "layers": sum(layer.kind in WEIGHT_KINDS for layer in layers),
        "depth": weight_depth(analysis.trace, events),
        **training,
    }


def _ratio(value: int, first: int) -> float | None:
    return value / first if first else None


def _with_ratios(rows: list[dict[str, Any]]) -> pd.DataFrame:
    first = rows[0]
    metrics = [*METRICS, *(m for m in TRAIN_METRICS if m in first)]
    for row in rows:
        for metric in metrics:
            row[f"{metric}_ratio"] = _ratio(row[metric], first[metric])
    columns = ["model"] + [c for m in metrics for c in (m, f"{m}_ratio")]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _stages(models: list[tuple[Any, list[ComputeLayer]]]) -> pd.DataFrame:
    resolutions = sorted({layer.resolution for _, layers in models for layer in layers},
                         reverse=True)
    rows = []
    for resolution in resolutions:
        row: dict[str, Any] = {"stage": resolution}
        for metric in STAGE_METRICS:
            for analysis, layers in models:
                mine = [layer for layer in layers if layer.resolution == resolution]
                value = (sum(layer.kind in WEIGHT_KINDS for layer in mine) if metric == "layers"
                         else sum(getattr(layer, metric) for layer in mine))
                row[f"{analysis.model}_{metric}"] = value
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _hold(n: int) -> str:
    return "holds" if n == 1 else "hold"


def _unit(convention: str) -> str:
    return get_convention(convention).unit + "s"


def _stem_flops(analysis: Any, layers: list[ComputeLayer]) -> tuple[int, int | None]:
    """The side 1/STEM_FRACTION of the input's and the FLOPs spent down to it (None when
    the network never gets there)."""
    side = max(analysis.input_shape[0][1:], default=0) // STEM_FRACTION
    try:
        return side, sum(layer.flops for layer in cut_at_resolution(layers, side, analysis.model))
    except ArchstatError:
        return side, None


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _findings(models: list[tuple[Any, list[ComputeLayer]]], totals: pd.DataFrame) -> list[str]:
    """Where the second and later models spend more than the first: in fc layers (params)
    and before the maps reach 1/STEM_FRACTION of the input's side (the stem)."""
    unit = _unit(models[0][0].convention)
    rows = totals.to_dict("records")
    budgets = []
    for (analysis, layers), row in zip(models, rows, strict=True):
        fc = [layer for layer in layers if layer.kind == "fc"]
        budgets.append({"name": analysis.model, "fcs": len(fc), "row": row,
                        "fc_params": sum(layer.params for layer in fc),
                        **dict(zip(("side", "stem"), _stem_flops(analysis, layers),
                                   strict=True))})
    a = budgets[0]
    findings = []
    for b in budgets[1:]:
        if b["row"]["params_ratio"] and b["row"]["params"]:
            findings.append(
                f"params: {b['name']} has {b['row']['params_ratio']:.1f}x the params of "
                f"{a['name']}. Its {_count(b['fcs'], 'fc layer')} {_hold(b['fcs'])} "
                f"{render.human(b['fc_params'])} ({_share(b['fc_params'], b['row']['params'])}"
                f" of them); {a['name']}'s {_count(a['fcs'], 'fc layer')} {_hold(a['fcs'])} "
                f"{render.human(a['fc_params'])} ({_share(a['fc_params'], a['row']['params'])}).")
        if a["stem"] and b["stem"] is not None and a["side"] == b["side"] \
                and b["row"]["flops_ratio"] is not None:
            side = a["side"]
            findings.append(
                f"{unit}: {b['name']} needs {b['row']['flops_ratio']:.1f}x the {unit} of "
                f"{a['name']}. Down to {side}x{side} (1/{STEM_FRACTION} of the input side) "
                f"{b['name']} spends {render.human(b['stem'])} "
                f"({_share(b['stem'], b['row']['flops'])} of its total) and {a['name']} "
                f"{render.human(a['stem'])} ({_share(a['stem'], a['row']['flops'])}): "
                f"{b['stem'] / a['stem']:.1f}x.")
    return findings


def compare(
    analyses: Sequence[Any],
    until_resolution: int | None = None,
    until: Sequence[str] | None = None,
) -> Comparison:
    """Compare analysed models (all under one convention), whole or cut: at the layer
    that brings the maps down to ``until_resolution``, or at a named layer (``until``:
    one name for every model, or one per model)."""
    if not analyses:
        raise ArchstatError("compare needs at least one model")
    if len({a.model for a in analyses}) < len(analyses):
        raise ArchstatError("name each model once")
    if len({a.convention for a in analyses}) > 1:
        raise ArchstatError("models compared must be analysed under the same convention")
    until = list(until or [])
    if until and len(until) not in (1, len(analyses)):
        raise ArchstatError(f"give --until once, or once per model ({len(analyses)}), "
                            f"not {len(until)} times")
    models = []
    for index, analysis in enumerate(analyses):
        layers = compute_layers(analysis)
        if until_resolution is not None:
            layers = cut_at_resolution(layers, until_resolution, analysis.model)
        if until:
            layers = cut_at_layer(analysis, layers, until[index if len(until) > 1 else 0])
        models.append((analysis, layers))
    totals = _with_ratios([_totals(a, layers) for a, layers in models])
    cut = " and ".join(filter(None, [
        f"down to {until_resolution}x{until_resolution}" if until_resolution is not None
        else "", f"until {', '.join(until)}" if until else ""]))
    first = analyses[0]
    return Comparison(
        totals=totals,
        stages=_stages(models),
        meta={"models": [a.model for a in analyses],
              "input_shape": {a.model: a.header()["input_shape"] for a in analyses},
              "batch": first.batch, "convention": first.convention, "dtype": first.dtype,
              "cut": cut},
        findings=[] if cut else _findings(models, totals),
    )


def compare_models(
    models: Sequence[str],
    input_shape: str | Sequence[Any] | None = None,
    batch: int = 1,
    convention: str = "macs",
    dtype: str = "float32",
    until_resolution: int | None = None,
    until: Sequence[str] | None = None,
    train: bool = False,
) -> Comparison:
    """Analyse each model (zoo name or spec string) and compare them (see :func:`compare`);
    with ``train``, in training mode with their backward passes (``backward_flops`` and
    ``train_step_flops`` columns)."""
    from archstat.analysis import analyze

    analyses = [analyze(m, input_shape=input_shape, batch=batch, convention=convention,
                        dtype=dtype, train=train) for m in models]
    return compare(analyses, until_resolution, until)


# -- rendering ----------------------------------------------------------------------------

def ratio_str(value: Any) -> str:
    """``19.8x``, ``0.28x``; blank where there is no ratio or it is exactly 1 (the first
    model, or a figure equal to the first model's)."""
    if value is None or value == 1:
        return ""
    return f"{value:.2f}x" if value < 1 else f"{value:.1f}x"


def _title(comparison: Comparison) -> str:
    meta = comparison.meta
    cut = f"  {meta['cut']}" if meta["cut"] else ""
    return (f"{' vs '.join(meta['models'])}  batch {meta['batch']}  {meta['dtype']}  "
            f"convention {meta['convention']}{cut}")


def comparison_tables(comparison: Comparison, stages_first: bool = False) -> list[render.Table]:
    """The totals and per-stage Tables of a comparison (the first is what CSV carries)."""
    convention = comparison.meta["convention"]
    totals = render.Table(
        frame=comparison.totals,
        title=_title(comparison),
        meta=comparison.meta,
        formats={
            "params": render.human, "flops": render.human, "layers": str, "depth": str,
            "activation_bytes": render.human_bytes, "peak_activation_bytes": render.human_bytes,
            "output_bytes": render.human_bytes, "backward_flops": render.human,
            "train_step_flops": render.human,
            **{c: ratio_str for c in comparison.totals.columns if c.endswith("_ratio")},
        },
        headers={"flops": convention, "activation_bytes": "allocated",
                 "peak_activation_bytes": "peak live", "output_bytes": "layer outputs",
                 "layers": "conv/fc", "backward_flops": f"backward ({convention})",
                 "train_step_flops": f"fwd+bwd ({convention})"},
        notes=comparison.findings,
        key="models",
        csv_columns=CSV_COLUMNS + [c for m in TRAIN_METRICS if m in comparison.totals
                                   for c in (m, f"{m}_ratio")],
        paired={m: f"{m}_ratio" for m in (*METRICS, *TRAIN_METRICS)},
    )
    units = {"params": render.human, "flops": render.human,
             "activation_bytes": render.human_bytes, "layers": str}
    names = {"params": "params", "flops": convention, "activation_bytes": "allocated",
             "layers": "conv/fc"}
    formats, headers = {}, {}
    for metric in STAGE_METRICS:
        for model in comparison.meta["models"]:
            formats[f"{model}_{metric}"] = units[metric]
            headers[f"{model}_{metric}"] = f"{names[metric]}\n{model}"
    stages = render.Table(
        frame=comparison.stages,
        title="per stage: layers grouped by output resolution (fc layers count at 1)",
        formats=formats,
        headers={"stage": "resolution", **headers},
        key="stages",
    )
    return [stages, totals] if stages_first else [totals, stages]
