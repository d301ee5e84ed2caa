"""A :class:`~archstat.bench.harness.BenchReport` as text: CSV and JSON (exact, from
the report) or human tables (rich, Markdown) with units in the headers. Nothing here
measures or computes a statistic; it only selects, formats and labels. Its ``flops`` are
the ``flops`` convention's (2 per multiply-add), and say so in every format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archstat.bench.harness import META_COLUMNS, BenchReport
from archstat.render import text
from archstat.render.table import Column, Table, to_json

_num = text.significant
_ratio = text.times


def _opt(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda v: "" if text.missing(v) else fmt(v)


# results column -> (header, formatter); the order is the table's
_RESULTS = {
    "model": ("model", str),
    "batch_size": ("batch", str),
    "median_ms": ("median ms", _num(4)),
    "p90_ms": ("p90 ms", _num(4)),
    "p99_ms": ("p99 ms", _num(4)),
    "std_ms": ("std ms", _num(3)),
    "samples_per_s": ("samples/s", _num(4)),
    "flops": ("flops (flops)", _opt(text.human)),
    "tflops_achieved": ("TFLOP/s", _num(3)),
    "peak_pct": ("% peak", _num(3)),
    "roofline_ms": ("roofline ms", _num(3)),
    "peak_memory_bytes": ("peak memory", _opt(text.human_bytes)),
    "latency_ratio": ("latency ratio", _ratio),
    "flops_ratio": ("flops ratio", _ratio),
    "compile_s": ("compile s", _num(3)),
    "iters": ("iters", str),
}

_LAYERS = {
    "name": ("layer", str),
    "type": ("type", str),
    "time_ms": ("time ms", _num(4)),
    "time_pct": ("% time", _num(3)),
    "flops": ("flops (flops)", _opt(text.human)),
    "gflops_achieved": ("GFLOP/s", _num(4)),
    "arithmetic_intensity": ("FLOP/byte", _num(3)),
    "bound": ("bound", lambda v: v or ""),
}


def _table(key: str, title_: str, frame: Any, spec: dict[str, tuple[str, Any]],
           keep: tuple[str, ...], notes: list[str] | None = None) -> Table:
    """A column with no value in any row is left out, unless kept."""
    rows = frame.to_dict("records")
    shown = [c for c in spec if c in keep or any(not text.missing(r.get(c)) for r in rows)]
    return Table(key, title_, [Column(c, spec[c][0], spec[c][1]) for c in shown], rows,
                 notes=notes or [])


def title(meta: dict[str, Any]) -> str:
    flags = [f for f, on in (("channels_last", meta["channels_last"]),
                             ("torch.compile", meta["compile"])) if on]
    return (f"archstat bench  {meta['device_name']} ({meta['device']})  {meta['dtype']}  "
            f"{meta['threads']} threads  torch {meta['torch_version']}"
            + "".join(f"  {f}" for f in flags))


def caption(meta: dict[str, Any], results: Any) -> str:
    """What the numbers are, why some are empty, and each row's note."""
    lines = [f"{row['model']} batch {row['batch_size']}: {row['note']}"
             for row in results.to_dict("records") if row["note"]]
    lines += [f"FLOPs = {meta['flops']}; timer: {meta['timer']}; warm-up: {meta['warmup']}; "
             f"measured: {meta['iterations']}; ratios are to the first model."]
    roofline = meta.get("roofline")
    if roofline:
        lines.append(f"peak {roofline['peak_tflops']} TFLOP/s ({roofline['precision']}), "
                     f"{roofline['bandwidth_gbs']} GB/s: {roofline['source']}")
    reasons: dict[str, list[str]] = {}
    for column, why in meta["not_measured"].items():
        reasons.setdefault(why, []).append(column)
    lines += [f"empty {', '.join(cols)}: {why}" for why, cols in reasons.items()]
    return "\n".join(lines)


def views(report: BenchReport, top: int = 10) -> list[Table]:
    """The results, then each point's per-layer table (its ``top`` slowest rows; 0: all)."""
    frame = report.results
    keep = ("model", "batch_size", "median_ms", "samples_per_s", "flops", "iters")
    if frame["model"].nunique() < 2:  # ratios to itself say nothing
        frame = frame.assign(latency_ratio=None, flops_ratio=None)
    tables = [_table("results", title(report.meta), frame, _RESULTS, keep,
                     caption(report.meta, report.results).split("\n"))]
    for entry in report.per_layer:
        layers = entry["layers"].head(top) if top else entry["layers"]
        tables.append(_table("layers", layers_title(entry, top), layers, _LAYERS,
                             ("name", "type", "time_ms", "time_pct")))
    return tables


def layers_title(entry: dict[str, Any], top: int) -> str:
    shown = min(top, len(entry["layers"])) if top else len(entry["layers"])
    return (f"{entry['model']} batch {entry['batch_size']}: top {shown} of "
            f"{len(entry['layers'])} rows by time; hooks add {entry['overhead_pct']:+.1f}% "
            f"({entry['plain_median_ms']:.4g} -> {entry['hooked_median_ms']:.4g} ms)")


def data(report: BenchReport) -> dict[str, Any]:
    out = {"meta": report.meta, "results": report.results.to_dict("records")}
    if report.per_layer:
        out["per_layer"] = [{**p, "layers": p["layers"].to_dict("records")}
                            for p in report.per_layer]
    return out


def csv_table(report: BenchReport) -> Table:
    """The results (or, with per-layer timings, the per-layer rows) with the metadata
    columns appended to every row."""
    frame = report.layers_frame() if report.per_layer else report.results
    frame = frame.assign(**{c: report.meta[c] for c in META_COLUMNS})
    return Table("results", "", [], frame.to_dict("records"), data_columns=list(frame.columns))


def render_report(report: BenchReport, fmt: str, top: int = 10,
                  width: int | None = None) -> Any:
    """The report in ``fmt``: text for csv/json/markdown, a rich renderable for table.
    ``top`` limits the per-layer tables of the human formats (0: all rows); CSV and JSON
    always carry every row."""
    from archstat.render.table import render_tables, to_csv

    if fmt == "csv":
        return to_csv(csv_table(report))
    if fmt == "json":
        return to_json(data(report))
    return render_tables(views(report, top), fmt, width=width)
