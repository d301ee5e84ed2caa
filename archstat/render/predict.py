"""A :class:`~archstat.predictor.PredictReport` (per-layer predicted latency on a device)
and a :class:`~archstat.predictor.DeviceProfile` (what a device can do), as text.

Predictions: the layer table in execution order with a totals row, and notes that give
the time per bound, the peaks used and their source. CSV is the layer table; JSON is
``{"meta", "layers", "totals", "unhandled"}``. Times and intensities in CSV and JSON are
rounded to 6 significant digits (a model's error is far larger); FLOPs and bytes are
exact. A profile: its rates per dtype; its JSON is the profile file itself.
"""

from __future__ import annotations

from typing import Any

from archstat.predictor.cost import BOUNDS
from archstat.predictor.report import LAYER_COLUMNS
from archstat.render import text
from archstat.render.table import Column, Table, to_json


def _g6(value: Any) -> Any:
    return float(f"{value:.6g}") if isinstance(value, float) else value


def ms(value: Any) -> str:
    """Milliseconds to 3 significant digits (``0.0458``, ``12.3``, ``1530``)."""
    return text.significant(3)(value)


def share(part: float, whole: float) -> str:
    """A share of the total time: ``45%``; ``<1%`` for a non-zero sliver."""
    if not whole:
        return ""
    return "<1%" if 0 < part / whole < 0.005 else f"{part / whole:.0%}"


def rate(value: float, unit: str) -> str:
    """A rate per second with an SI prefix: ``989T FLOP/s``, ``3.35T B/s``."""
    return f"{text.human(value)}{unit}/s"


def title(report: Any) -> str:
    shapes = ", ".join(text.shape_str(s) for s in report.input_shape)
    return (f"{report.model}  input {shapes}  batch {report.batch}  {report.dtype}  "
            f"predicted on {report.profile.name}")


def peaks_line(report: Any) -> str:
    peaks = report.peaks()
    tf32 = ": TF32" if report.dtype not in report.profile.conv_flops_per_s else ""
    conv = (f" ({rate(peaks['conv_flops_per_s'], 'FLOP')} for {report.dtype} "
            f"convolutions{tf32})" if "conv_flops_per_s" in peaks else "")
    extra = "".join(f", {what} {rate(peaks[key], 'FLOP')}" for key, what in
                    (("spatial_conv_flops_per_s", "convolutions larger than 1x1"),
                     ("pool_flops_per_s", "pooling"), ("depthwise_flops_per_s", "depthwise"))
                    if key in peaks)
    us = text.significant(3)
    matrix = (f" ({us(peaks['matrix_overhead_s'] * 1e6)} us per convolution or matmul)"
              if "matrix_overhead_s" in peaks else "")
    cache = (f" ({rate(peaks['cache_bytes_per_s'], 'B')} for ops within "
             f"{text.human_bytes(peaks['cache_bytes'])} of cache)" if "cache_bytes" in peaks
             else "")
    fresh = (f", new outputs over {text.human_bytes(peaks['fresh_bytes_above'])} "
             f"faulted in at {rate(peaks['fresh_bytes_per_s'], 'B')}"
             if "fresh_bytes_above" in peaks else "")
    return (f"peaks ({report.dtype}): matrix units {rate(peaks['matrix_flops_per_s'], 'FLOP')}"
            f"{conv}, vector units {rate(peaks['vector_flops_per_s'], 'FLOP')}{extra}, memory "
            f"{rate(peaks['memory_bytes_per_s'], 'B')}{cache}{fresh}, "
            f"{us(peaks['overhead_s'] * 1e6)} us per kernel{matrix}; "
            f"source: {report.profile.source}")


def bounds_line(totals: dict[str, Any]) -> str:
    total = totals["predicted_ms"]
    parts = [f"{bound} {ms(totals[f'{bound}_bound_ms'])} ms "
             f"({share(totals[f'{bound}_bound_ms'], total) or '0%'})" for bound in BOUNDS]
    return f"time by bound: {', '.join(parts)}; {text.plural(totals['kernels'], 'kernel')}"


def memory_line(report: Any) -> str | None:
    """The slowest memory-bound layers, named, or None when there are none."""
    slow = report.slowest("memory", 3)
    if not slow:
        return None
    total = report.totals["predicted_ms"]
    named = ", ".join(f"{r['name']} ({r['type']}, {ms(r['predicted_ms'])} ms, "
                      f"{share(r['predicted_ms'], total)})" for r in slow)
    return f"slowest memory-bound layers: {named}"


def unhandled_line(report: Any) -> str | None:
    if not report.unhandled_ops:
        return None
    ops = ", ".join(f"{u['op']} x{u['calls']}" for u in report.unhandled_ops)
    return f"ops without a FLOP formula (their bytes and overhead count, FLOPs 0): {ops}"


_COLUMNS = [
    Column("name", "layer"),
    Column("type", "type"),
    Column("kernels", "kernels", text.text, "kernels launched (a view launches none)"),
    Column("flops", "FLOPs", text.human, "the full convention: 2 per multiply-add, plus "
           "elementwise, reduction, normalisation and pooling work"),
    Column("bytes", "bytes", text.human_bytes, "bytes its ops read and write, in the dtype"),
    Column("intensity", "FLOP/B", text.significant(3), "arithmetic intensity"),
    Column("predicted_ms", "predicted ms", ms, "the sum of its ops' max(compute, memory) "
           "+ overhead"),
    Column("share", "share", text.text, "of the model's predicted time"),
    Column("bound", "bound", text.text, "the bound that holds most of its time"),
]


def layers_view(report: Any) -> Table:
    totals = report.totals
    total = totals["predicted_ms"]
    rows = [{**row, "share": share(row["predicted_ms"], total)} for row in report.rows]
    footer = {"name": "total", "kernels": totals["kernels"], "flops": totals["flops"],
              "bytes": totals["bytes"], "intensity": totals["intensity"],
              "predicted_ms": total, "share": "100%" if total else ""}
    notes = [bounds_line(totals), peaks_line(report)]
    notes += [line for line in (memory_line(report), unhandled_line(report)) if line]
    return Table("layers", title(report), _COLUMNS, rows, data_columns=LAYER_COLUMNS,
                 footer=footer, notes=notes)


def _profile_view(profile: Any) -> Table:
    rows = [{"dtype": dtype,
             "matrix": profile.matrix_flops_per_s.get(dtype),
             "vector": profile.vector_flops_per_s.get(dtype),
             "conv": profile.conv_flops_per_s.get(dtype),
             "spatial": profile.spatial_conv_flops_per_s.get(dtype),
             "pool": profile.pool_flops_per_s.get(dtype),
             "depthwise": profile.depthwise_flops_per_s.get(dtype)}
            for dtype in ("float32", "tf32", "float16", "bfloat16")
            if dtype in profile.matrix_flops_per_s]

    def flops(v: Any) -> str:
        return "" if v is None else rate(v, "FLOP")

    columns = [Column("dtype", "dtype"),
               Column("matrix", "matrix units", flops, "FLOP/s of GEMMs and convolutions"),
               Column("vector", "vector units", flops, "op/s of elementwise work")]
    if profile.conv_flops_per_s:
        columns.append(Column("conv", "convolutions", flops, "FLOP/s of convolutions"))
    if profile.spatial_conv_flops_per_s:
        columns.append(Column("spatial", "convolutions > 1x1", flops,
                              "FLOP/s of convolutions with a kernel larger than 1x1"))
    if profile.pool_flops_per_s:
        columns.append(Column("pool", "pooling", flops, "op/s of windowed pooling"))
    if profile.depthwise_flops_per_s:
        columns.append(Column("depthwise", "depthwise", flops,
                              "FLOP/s of depthwise convolutions"))
    us = text.significant(3)
    matrix = (f" ({us(profile.matrix_overhead_s * 1e6)} us per convolution or matmul)"
              if profile.matrix_overhead_s is not None else "")
    cache = (f" ({rate(profile.cache_bytes_per_s, 'B')} within "
             f"{text.human_bytes(profile.cache_bytes)} of cache)"
             if profile.cache_bytes is not None else "")
    cache += (f", new outputs over {text.human_bytes(profile.fresh_bytes_above)} faulted "
              f"in at {rate(profile.fresh_bytes_per_s, 'B')}"
              if profile.fresh_bytes_above is not None and profile.fresh_bytes_per_s else "")
    notes = [f"memory {rate(profile.memory_bytes_per_s, 'B')}{cache}, "
             f"{us(profile.overhead_s * 1e6)} us per kernel{matrix}",
             f"source: {profile.source}"]
    return Table("rates", f"device profile: {profile.name}", columns, rows, notes=notes)


def _is_profile(result: Any) -> bool:
    return type(result).__name__ == "DeviceProfile"


def views(result: Any, **options: Any) -> list[Table]:
    """A prediction's layer table, or a profile's rates."""
    return [_profile_view(result)] if _is_profile(result) else [layers_view(result)]


def csv_table(result: Any, **options: Any) -> Table:
    """The layer table with exact FLOPs and bytes and times to 6 significant digits (a
    profile: its rates per dtype)."""
    table = views(result)[0]
    rows = [{k: _g6(v) for k, v in row.items()} for row in table.rows]
    return Table(table.key, table.title, table.columns, rows, data_columns=table.data_columns)


def data(result: Any) -> dict[str, Any]:
    """A prediction: ``{"meta", "layers", "totals", "unhandled"}``; a profile: the JSON a
    profile file holds (:meth:`DeviceProfile.data`)."""
    if _is_profile(result):
        return result.data()
    meta = result.settings()
    meta["peaks"] = {k: _g6(v) for k, v in meta["peaks"].items()}
    return {
        "meta": meta,
        "layers": [{k: _g6(row[k]) for k in LAYER_COLUMNS} for row in result.rows],
        "totals": {k: _g6(v) for k, v in result.totals.items()},
        "unhandled": list(result.unhandled_ops),
    }


def profile_json(profile: Any) -> str:
    """A profile file's text."""
    return to_json(profile.data())
