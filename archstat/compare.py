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
* ``<metric>_ratio``: the figure divided by the first model's;
* with a ``device``, ``predicted_ms``: the predicted forward latency on it
  (:func:`archstat.predict`) of the compared part, and findings that name the
  memory-bound layers behind the latency ratio.

The per-stage breakdown groups layers by output resolution (the larger spatial side; fc
and flatten layers, whose outputs are vectors, count at resolution 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archstat.compute_layers import WEIGHT_KINDS, ComputeLayer, compute_layers, weight_depth
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean
from archstat.lecture import layer_names
from archstat.trace import liveness

if TYPE_CHECKING:
    import pandas as pd

if TYPE_CHECKING:
    import pandas as pd

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
#: The metric a comparison on a ``device`` adds (milliseconds, :mod:`archstat.predictor`).
PREDICT_METRICS = ("predicted_ms",)


@dataclass(frozen=True)
class Finding:
    """Where a model spends more than the first one: ``kind`` ``params`` (in its fc
    layers) or ``flops`` (in its stem, down to ``side``x``side``), with the figures of
    ``model`` and of ``first`` (fc layer counts and their params, or the stem's count),
    and the whole-network ``ratio``. :mod:`archstat.render.compare` words it."""

    kind: str
    model: str
    first: str
    ratio: float
    figures: dict[str, Any]


@dataclass
class Comparison(Display):
    """``total_rows``: one per model (METRICS, and TRAIN_METRICS for a training
    comparison, each with its ratio to the first model, ``<metric>_ratio``);
    ``stage_rows``: one per output resolution, ``<model>_<metric>`` keys; ``findings``:
    where the budgets differ (data); ``settings``: models, input shapes, batch,
    convention (the object), dtype; ``cut``: which part of each network was compared
    ("" for all of it). ``totals`` and ``stages`` are the same as DataFrames."""

    total_rows: list[dict[str, Any]]
    stage_rows: list[dict[str, Any]]
    settings: dict[str, Any]
    cut: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def totals(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.total_rows, dtype=object)

    @property
    def stages(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.stage_rows, dtype=object)

    @property
    def models(self) -> list[str]:
        return [row["model"] for row in self.total_rows]

    @property
    def convention(self) -> Any:
        return self.settings["convention"]


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


def _with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first = rows[0]
    metrics = [*METRICS, *(m for m in (*TRAIN_METRICS, *PREDICT_METRICS) if m in first)]
    for row in rows:
        for metric in metrics:
            row[f"{metric}_ratio"] = _ratio(row[metric], first[metric])
    columns = ["model"] + [c for m in metrics for c in (m, f"{m}_ratio")]
    return [{c: row[c] for c in columns} for row in rows]


def _stages(models: list[tuple[Any, list[ComputeLayer]]]) -> list[dict[str, Any]]:
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
    return rows


def _stem_flops(analysis: Any, layers: list[ComputeLayer]) -> tuple[int, int | None]:
    """The side 1/STEM_FRACTION of the input's and the FLOPs spent down to it (None when
    the network never gets there)."""
    side = max(analysis.input_shape[0][1:], default=0) // STEM_FRACTION
    try:
        return side, sum(layer.flops for layer in cut_at_resolution(layers, side, analysis.model))
    except ArchstatError:
        return side, None


def _findings(models: list[tuple[Any, list[ComputeLayer]]], totals: list[dict[str, Any]]
              ) -> list[Finding]:
    """Where the second and later models spend more than the first: in fc layers (params)
    and before the maps reach 1/STEM_FRACTION of the input's side (the stem)."""
    budgets = []
    for (analysis, layers), row in zip(models, totals, strict=True):
        fc = [layer for layer in layers if layer.kind == "fc"]
        budgets.append({"name": analysis.model, "fcs": len(fc), "row": row,
                        "fc_params": sum(layer.params for layer in fc),
                        **dict(zip(("side", "stem"), _stem_flops(analysis, layers),
                                   strict=True))})
    a = budgets[0]
    findings = []
    for b in budgets[1:]:
        if b["row"]["params_ratio"] and b["row"]["params"]:
            findings.append(Finding("params", b["name"], a["name"], b["row"]["params_ratio"], {
                "fc_layers": b["fcs"], "fc_params": b["fc_params"], "params": b["row"]["params"],
                "first_fc_layers": a["fcs"], "first_fc_params": a["fc_params"],
                "first_params": a["row"]["params"]}))
        if a["stem"] and b["stem"] is not None and a["side"] == b["side"] \
                and b["row"]["flops_ratio"] is not None:
            findings.append(Finding("flops", b["name"], a["name"], b["row"]["flops_ratio"], {
                "side": a["side"], "fraction": STEM_FRACTION, "stem": b["stem"],
                "flops": b["row"]["flops"], "first_stem": a["stem"],
                "first_flops": a["row"]["flops"]}))
    return findings


def _predictions(models: list[tuple[Any, list[ComputeLayer]]], device: Any, cut: bool
                 ) -> list[Any]:
    """Each model's :class:`~archstat.predictor.PredictReport` on ``device``: of the
    whole forward, or (``cut``) of its ops up to the last compared layer's."""
    from archstat.predictor import predict_analysis

    reports = []
    for analysis, layers in models:
        last = max((e for layer in layers for e in layer.events), default=-1)
        reports.append(predict_analysis(analysis, device, range(last + 1) if cut else None))
    return reports


def _latency_findings(totals: list[dict[str, Any]], reports: list[Any]) -> list[Finding]:
    """Per later model: its predicted latency ratio beside its FLOP ratio, the
    memory-bound share of each model's time and its slowest memory-bound layers."""
    def figures(report: Any) -> dict[str, Any]:
        t = report.totals
        return {"ms": t["predicted_ms"], "memory_ms": t["memory_bound_ms"],
                "overhead_ms": t["overhead_bound_ms"],
                "memory_layers": [(r["name"], r["type"], r["predicted_ms"])
                                  for r in report.slowest("memory", 3)]}

    first = figures(reports[0])
    findings = []
    for row, report in zip(totals[1:], reports[1:], strict=True):
        if row["predicted_ms_ratio"] is None:
            continue
        findings.append(Finding("latency", row["model"], totals[0]["model"],
                                row["predicted_ms_ratio"], {
                                    "device": report.profile.name,
                                    "flops_ratio": row["flops_ratio"],
                                    **figures(report),
                                    **{f"first_{k}": v for k, v in first.items()}}))
    return findings


def compare(
    analyses: Sequence[Any],
    until_resolution: int | None = None,
    until: Sequence[str] | None = None,
    device: Any = None,
) -> Comparison:
    """Compare analysed models (all under one convention), whole or cut: at the layer
    that brings the maps down to ``until_resolution``, or at a named layer (``until``:
    one name for every model, or one per model). With ``device`` (a device of the
    table, a profile file or a :class:`~archstat.predictor.DeviceProfile`), each model's
    predicted latency on it is compared too."""
    if not analyses:
        raise ArchstatError("compare needs at least one model")
    if len({a.model for a in analyses}) < len(analyses):
        raise ArchstatError("name each model once")
    if len({a.convention.name for a in analyses}) > 1 or any(
            a.convention != analyses[0].convention for a in analyses):
        raise ArchstatError("models compared must be analysed under the same convention")
    until = list(until or [])
    if until and len(until) not in (1, len(analyses)):
        raise ArchstatError(f"give `until` once, or once per model "
                            f"({len(analyses)}), not {len(until)} times")
    models = []
    for index, analysis in enumerate(analyses):
        layers = compute_layers(analysis)
        if until_resolution is not None:
            layers = cut_at_resolution(layers, until_resolution, analysis.model)
        if until:
            layers = cut_at_layer(analysis, layers, until[index if len(until) > 1 else 0])
        models.append((analysis, layers))
    rows = [_totals(a, layers) for a, layers in models]
    reports: list[Any] = []
    if device is not None:
        reports = _predictions(models, device, bool(until_resolution is not None or until))
        for row, report in zip(rows, reports, strict=True):
            row["predicted_ms"] = report.totals["predicted_ms"]
    totals = _with_ratios(rows)
    cut = " and ".join(filter(None, [
        f"down to {until_resolution}x{until_resolution}" if until_resolution is not None
        else "", f"until {', '.join(until)}" if until else ""]))
    first = analyses[0]
    return Comparison(
        total_rows=totals,
        stage_rows=_stages(models),
        settings={"models": [a.model for a in analyses],
                  "input_shape": {a.model: a.settings()["input_shape"] for a in analyses},
                  "batch": first.batch, "convention": first.convention, "dtype": first.dtype,
                  **({"device": reports[0].profile.name} if reports else {})},
        cut=cut,
        findings=([] if cut else _findings(models, totals))
        + (_latency_findings(totals, reports) if reports else []),
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
    device: Any = None,
) -> Comparison:
    """Analyse each model (zoo name or spec string) and compare them (see :func:`compare`);
    with ``train``, in training mode with their backward passes (``backward_flops`` and
    ``train_step_flops`` columns); with ``device``, their predicted latency on it too."""
    from archstat.analysis import analyze

    if device is not None:  # a wrong device or dtype costs no analysis
        from archstat.predictor import device_profile

        if train:
            raise ArchstatError("`device`: latency is predicted for the inference forward "
                                "pass; compare on a device without `train`")
        device = device_profile(device)
        device.check_dtype(dtype)
    analyses = [analyze(m, input_shape=input_shape, batch=batch, convention=convention,
                        dtype=dtype, train=train) for m in models]
    return compare(analyses, until_resolution, until, device)
