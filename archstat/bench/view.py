"""A :class:`~archstat.bench.harness.BenchReport` as text: CSV and JSON (exact, from
the report) or human tables (rich, Markdown) with units in the headers. Nothing here
measures or computes a statistic; it only selects, formats and labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from archstat import render
from archstat.bench.harness import BenchReport


def _num(digits: int) -> Callable[[Any], str]:
    """``digits`` significant digits, never in exponent form for large values."""
    def fmt(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"

    return fmt


def _ratio(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3g}x"  # 3.03x, 0.00352x


def _opt(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda v: "" if v is None else fmt(v)


# results column -> (header, formatter); the order is the table's
_RESULTS = {
    "model": ("model", str),
    "batch_size": ("batch", str),
    "median_ms": ("median ms", _num(4)),
    "p90_ms": ("p90 ms", _num(4)),
    "p99_ms": ("p99 ms", _num(4)),
    "std_ms": ("std ms", _num(3)),
    "samples_per_s": ("samples/s", _num(4)),
    "flops": ("FLOPs", _opt(render.human)),
    "tflops_achieved": ("TFLOP/s", _num(3)),
    "peak_pct": ("% peak", _num(3)),
    "roofline_ms": ("roofline ms", _num(3)),
    "peak_memory_bytes": ("peak memory", _opt(render.human_bytes)),
    "latency_ratio": ("latency ratio", _ratio),
    "flops_ratio": ("FLOPs ratio", _ratio),
    "compile_s": ("compile s", _num(3)),
    "iters": ("iters", str),
}

_LAYERS = {
    "name": ("layer", str),
    "type": ("type", str),
    "time_ms": ("time ms", _num(4)),
    "time_pct": ("% time", _num(3)),
    "flops": ("FLOPs", _opt(render.human)),
    "gflops_achieved": ("GFLOP/s", _num(4)),
    "arithmetic_intensity": ("FLOP/byte", _num(3)),
    "bound": ("bound", lambda v: v or ""),
}


def _view(frame: pd.DataFrame, spec: dict[str, tuple[str, Callable[[Any], str]]],
          keep: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """Header and cells; a column with no value in any row is left out, unless kept."""
    columns = [c for c in spec if c in keep or frame[c].notna().any()]
    rows = [[spec[c][1](row[c]) for c in columns] for row in frame.to_dict("records")]
    return [spec[c][0] for c in columns], rows


def title(meta: dict[str, Any]) -> str:
    flags = [f for f, on in (("channels_last", meta["channels_last"]),
                             ("torch.compile", meta["compile"])) if on]
    return (f"archstat bench  {meta['device_name']} ({meta['device']})  {meta['dtype']}  "
            f"{meta['threads']} threads  torch {meta['torch_version']}"
            + "".join(f"  {f}" for f in flags))


def caption(meta: dict[str, Any], results: pd.DataFrame) -> str:
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


def results_view(report: BenchReport) -> tuple[list[str], list[list[str]]]:
    frame = report.results
    keep = ("model", "batch_size", "median_ms", "samples_per_s", "flops", "iters")
    if frame["model"].nunique() < 2:  # ratios to itself say nothing
        frame = frame.assign(latency_ratio=None, flops_ratio=None)
    return _view(frame, _RESULTS, keep)


def layers_title(entry: dict[str, Any], top: int) -> str:
    shown = min(top, len(entry["layers"])) if top else len(entry["layers"])
    return (f"{entry['model']} batch {entry['batch_size']}: top {shown} of "
            f"{len(entry['layers'])} rows by time; hooks add {entry['overhead_pct']:+.1f}% "
            f"({entry['plain_median_ms']:.4g} -> {entry['hooked_median_ms']:.4g} ms)")


def layers_view(entry: dict[str, Any], top: int) -> tuple[list[str], list[list[str]]]:
    frame = entry["layers"].head(top) if top else entry["layers"]
    return _view(frame, _LAYERS, ("name", "type", "time_ms", "time_pct"))


def render_report(report: BenchReport, fmt: str, top: int = 10) -> Any:
    """The report in one of render.FORMATS: text for csv/json/markdown, a rich
    renderable for table. ``top`` limits the per-layer tables of the human formats
    (0: all rows); CSV and JSON always carry every row."""
    if fmt == "csv":
        return report.to_csv()
    if fmt == "json":
        return report.to_json()
    header, rows = results_view(report)
    if fmt == "markdown":
        parts = [f"**{title(report.meta)}**\n\n" + render.to_markdown(header, rows)
                 + "\n" + caption(report.meta, report.results).replace("\n", "  \n") + "\n"]
        parts += [f"\n**{layers_title(e, top)}**\n\n" + render.to_markdown(*layers_view(e, top))
                  for e in report.per_layer]
        return "".join(parts)
    from rich.console import Group

    tables = [render.rich_table(header, rows, title=title(report.meta),
                                caption=caption(report.meta, report.results))]
    tables += [render.rich_table(*layers_view(e, top), title=layers_title(e, top))
               for e in report.per_layer]
    return Group(*tables)
