"""A :class:`~archstat.lecture.LectureTable` as the EECS 498/598 slides print it: numbers
rounded like the slides, branching modules grouped. CSV keeps full precision."""

from __future__ import annotations

from typing import Any

from archstat.render import text
from archstat.render.analysis import title
from archstat.render.table import Column, Table


def columns(convention_name: str) -> list[Column]:
    """The lecture's columns, with the convention the counts are in."""
    slide = text.slide_number
    return [
        Column("layer", "layer", text.text,
               "the lecture's name (conv1, pool1, ..., fc6) for a plain chain of layers, "
               "the module path otherwise"),
        Column("in_channels", "in_channels", text.text, "input channels (or features)"),
        Column("in_size", "in_size", text.text, "input spatial side (HxW when not square)"),
        Column("filters", "filters", text.text, "output channels of a conv, features of an fc"),
        Column("kernel", "kernel", text.text, "kernel side"),
        Column("stride", "stride", text.text, "stride"),
        Column("pad", "pad", text.text, "padding"),
        Column("out_channels", "out_channels", text.text, "output channels (or features)"),
        Column("out_size", "out_size", text.text, "output spatial side"),
        Column("memory_kb", "memory (KB)", slide,
               "the layer's output: elements x 4 bytes / 1024, per image"),
        Column("params_k", "params (k)", slide, "weights + biases / 1000"),
        Column("flop_m", f"flop (M, {convention_name})", slide,
               "the layer's count / 1e6, per image (convention lecture: multiply-adds, "
               "and pooling at kernel area per output element)"),
        Column("receptive_field", "RF", text.text,
               "receptive field: input pixels a unit of the output sees, the largest over "
               "the paths (one side, or HxW)"),
        Column("backward_flop_m", f"backward (M, {convention_name})", slide,
               "(training) the layer's backward / 1e6, per image"),
    ]


def lecture_view(table: Any) -> Table:
    analysis = table.analysis
    shown = [c for c in columns(analysis.convention.name) if c.key in table.columns]
    footer: dict[str, Any] = {"layer": "total", **table.totals}
    return Table("rows", f"{title(analysis)}  (per image; lecture layout)", shown,
                 table.rows, data_columns=list(table.columns), footer=footer,
                 groups=table.groups)


def data(table: Any, **_: Any) -> dict[str, Any]:
    from archstat.render.table import records

    view = lecture_view(table)
    return {**table.analysis.settings(), "style": "lecture", "rows": records(view)}


def views(table: Any, **_: Any) -> list[Table]:
    return [lecture_view(table)]
