"""An :class:`~archstat.accuracy.AccuracyTable`: published ImageNet accuracy beside each
model's parameters and MACs, the models left out, and the lecture's ILSVRC winners.

CSV is the accuracy/cost table alone (exact ints, figures as their source gives them);
the human formats and JSON add the ILSVRC winners and the models left out."""

from __future__ import annotations

from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table, records


def _percent(value: Any) -> str:
    return "" if text.missing(value) else f"{value:g}"


COLUMNS = [
    Column("model", "model", text.text, "zoo name"),
    Column("family", "family", text.text, "architecture family"),
    Column("input", "input", text.text, "the zoo input the costs are counted at, CxHxW"),
    Column("top1", "top-1\n(%)", _percent,
           "published ImageNet-1k validation top-1 accuracy, percent (blank: none printed)"),
    Column("top5", "top-5\n(%)", _percent, "published top-5 accuracy, percent"),
    Column("params", "params", text.human, "parameter elements the forward reads"),
    Column("macs", "MACs", text.human,
           "multiply-accumulates per image (convention macs) at the zoo input"),
    Column("published_as", "printed\nas", text.text,
           "accuracy, or error (the source prints 100 - accuracy)"),
    Column("crops", "crops", text.text, "test crops per image (blank: not stated)"),
    Column("evaluation", "evaluation", text.text, "how the source measured the figures"),
    Column("source", "source", text.text, "where the figures are printed"),
    Column("note", "note", text.text, "a caveat (say, an evaluation input other than the zoo's)"),
]
#: The columns of the CSV, exact values in this order.
CSV_COLUMNS = [c.key for c in COLUMNS]

ILSVRC_COLUMNS = [
    Column("year", "year", text.text, "ILSVRC year"),
    Column("model", "model", text.text, "the entry, as the lecture names it"),
    Column("place", "place", text.text, "place in the classification challenge"),
    Column("top5_error", "top-5 error (%)", _percent, "test-set top-5 error, percent"),
    Column("as_published", "as published", text.text, "the figure in a primary source"),
]


def _ilsvrc_rows(table: Any) -> list[dict[str, Any]]:
    return [{"year": r.year, "model": r.model, "place": r.place, "top5_error": r.top5_error,
             "as_published": r.as_published} for r in table.ilsvrc]


def left_out_text(table: Any) -> list[str]:
    """One line per model left out of the accuracy figure: ``lenet5 (<reason>)``."""
    return [f"{row['model']} ({row['reason']})" for row in table.left_out]


def views(table: Any, **_: Any) -> list[Table]:
    notes = [f"not plotted: {line}" for line in left_out_text(table)]
    return [
        Table("models", f"published ImageNet accuracy against cost (convention "
              f"{table.convention.name}, batch 1)", COLUMNS, table.rows,
              data_columns=CSV_COLUMNS, notes=notes),
        Table("ilsvrc", "ILSVRC winners' top-5 error", ILSVRC_COLUMNS, _ilsvrc_rows(table),
              notes=[f"source: {table.ilsvrc_source}"]),
    ]


def data(table: Any) -> dict[str, Any]:
    models, ilsvrc = views(table)
    return {"convention": table.convention.name, "models": records(models),
            "left_out": [dict(row) for row in table.left_out],
            "ilsvrc": records(ilsvrc), "ilsvrc_source": table.ilsvrc_source}
