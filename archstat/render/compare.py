"""A :class:`~archstat.compare.Comparison`: the totals side by side with ratios to the first
model, the per-stage breakdown, and the findings worded (their ratios rounded as the
table rounds them)."""

from __future__ import annotations

from typing import Any

from archstat.compare import METRICS, PREDICT_METRICS, TRAIN_METRICS
from archstat.render import text
from archstat.render.table import Column, Table, records

#: The columns the totals CSV carries, in order (training comparisons add TRAIN_METRICS).
CSV_COLUMNS = [
    "model", "params", "flops", "activation_bytes", "peak_activation_bytes", "output_bytes",
    "layers", "depth", "params_ratio", "flops_ratio", "activation_bytes_ratio",
    "peak_activation_bytes_ratio",
]
_DOCS = {
    "params": "parameter elements of the compared layers",
    "flops": "count in the comparison's convention",
    "activation_bytes": "bytes of new storage the compared layers allocate",
    "peak_activation_bytes": "the most activation storage live at once while they run",
    "output_bytes": "every compute layer's output once: the lecture's memory total",
    "layers": "conv, fc and recurrent layers",
    "depth": "weight layers on the longest path through the data flow",
    "backward_flops": "(training) the backward and recomputation of the compared layers",
    "train_step_flops": "(training) forward plus backward",
    "predicted_ms": "predicted forward latency on the device (archstat predict)",
}


def title(comparison: Any) -> str:
    s = comparison.settings
    cut = f"  {comparison.cut}" if comparison.cut else ""
    device = f"  on {s['device']}" if "device" in s else ""
    return (f"{' vs '.join(s['models'])}  batch {s['batch']}  {s['dtype']}  "
            f"convention {s['convention'].name}{device}{cut}")


def _share(part: int, whole: int) -> str:
    """A percentage; a share that rounds to 0% but is not zero reads ``<1%``."""
    if not whole:
        return "-"
    return "<1%" if 0 < part / whole < 0.005 else f"{part / whole:.0%}"


def finding_text(finding: Any, unit: str) -> str:
    """A finding as a sentence; its ratio rounded as the table's ratio column."""
    f = finding.figures
    if finding.kind == "latency":
        return latency_text(finding)
    if finding.kind == "params":
        def fc(n: int) -> str:
            return f"{text.plural(n, 'fc layer')} {'holds' if n == 1 else 'hold'}"

        return (f"params: {finding.model} has {text.ratio(finding.ratio)} the params of "
                f"{finding.first}. Its {fc(f['fc_layers'])} {text.human(f['fc_params'])} "
                f"({_share(f['fc_params'], f['params'])} of them); {finding.first}'s "
                f"{fc(f['first_fc_layers'])} {text.human(f['first_fc_params'])} "
                f"({_share(f['first_fc_params'], f['first_params'])}).")
    side = f["side"]
    return (f"{unit}: {finding.model} needs {text.ratio(finding.ratio)} the {unit} of "
            f"{finding.first}. Down to {side}x{side} (1/{f['fraction']} of the input side) "
            f"{finding.model} spends {text.human(f['stem'])} "
            f"({_share(f['stem'], f['flops'])} of its total) and {finding.first} "
            f"{text.human(f['first_stem'])} ({_share(f['first_stem'], f['first_flops'])}): "
            f"{text.ratio(f['stem'] / f['first_stem'])}.")


def _ms(value: float) -> str:
    return text.significant(3)(value)


def latency_text(finding: Any) -> str:
    """A latency finding: the predicted ratio beside the FLOP ratio, each model's time by
    bound, and the memory-bound layers (the slowest three of each model) behind it."""
    f = finding.figures

    def bounds(prefix: str, model: str) -> str:
        ms, layers = f[f"{prefix}ms"], f[f"{prefix}memory_layers"]
        named = ", ".join(f"{name} ({kind}, {_ms(t)} ms)" for name, kind, t in layers)
        return (f"{model} {_ms(ms)} ms, {_share(f[f'{prefix}memory_ms'], ms) if ms else '-'} "
                f"memory-bound, {_share(f[f'{prefix}overhead_ms'], ms) if ms else '-'} "
                f"overhead-bound" + (f" (memory-bound: {named})" if named else ""))

    flops = ("" if f["flops_ratio"] is None
             else f" against {text.ratio(f['flops_ratio'])} the FLOPs")
    return (f"latency on {f['device']}: {finding.model} is predicted at "
            f"{text.ratio(finding.ratio)} the time of {finding.first}{flops}. "
            f"{bounds('', finding.model)}; {bounds('first_', finding.first)}.")


def totals_view(comparison: Any) -> Table:
    name = comparison.convention.name
    headers = {"flops": name, "activation_bytes": "allocated",
               "peak_activation_bytes": "peak live", "output_bytes": "layer outputs",
               "layers": "weight layers", "backward_flops": f"backward ({name})",
               "train_step_flops": f"fwd+bwd ({name})",
               "predicted_ms": "predicted ms"}
    formats = {"activation_bytes": text.human_bytes, "peak_activation_bytes": text.human_bytes,
               "output_bytes": text.human_bytes, "layers": text.text, "depth": text.text,
               "predicted_ms": _ms}
    metrics = [m for m in (*METRICS, *TRAIN_METRICS, *PREDICT_METRICS)
               if m in comparison.total_rows[0]]
    columns = [Column("model", "model")]
    for metric in metrics:
        columns.append(Column(metric, headers.get(metric, metric),
                              formats.get(metric, text.human), _DOCS.get(metric, "")))
        columns.append(Column(f"{metric}_ratio", f"{metric} ratio", text.ratio,
                              "the figure over the first model's"))
    data_columns = CSV_COLUMNS + [c for m in (*TRAIN_METRICS, *PREDICT_METRICS) if m in metrics
                                  for c in (m, f"{m}_ratio")]
    unit = comparison.convention.unit + "s"
    return Table("models", title(comparison), columns, comparison.total_rows,
                 data_columns=data_columns,
                 notes=[finding_text(f, unit) for f in comparison.findings],
                 paired={m: f"{m}_ratio" for m in metrics})


def stages_view(comparison: Any) -> Table:
    name = comparison.convention.name
    names = {"params": "params", "flops": name, "activation_bytes": "allocated",
             "layers": "weight layers"}
    units = {"params": text.human, "flops": text.human, "activation_bytes": text.human_bytes,
             "layers": text.text}
    columns = [Column("stage", "resolution")]
    for metric in ("layers", "params", "flops", "activation_bytes"):
        for model in comparison.models:
            columns.append(Column(f"{model}_{metric}", f"{names[metric]}\n{model}",
                                  units[metric]))
    return Table("stages", "per stage: layers grouped by output resolution (fc layers "
                 "and sequences count at 1)", columns, comparison.stage_rows)


def views(comparison: Any, stages_first: bool = False) -> list[Table]:
    """The totals and per-stage tables (the first is what CSV carries)."""
    tables = [totals_view(comparison), stages_view(comparison)]
    return tables[::-1] if stages_first else tables


def data(comparison: Any) -> dict[str, Any]:
    totals, stages = totals_view(comparison), stages_view(comparison)
    settings = {**comparison.settings, "convention": comparison.convention.name,
                "cut": comparison.cut}
    return {**settings, "models": [{k: row[k] for k in row} for row in comparison.total_rows],
            "stages": records(stages), "notes": totals.notes}
