"""The zoo's listing (``archstat zoo``): one row per model."""

from __future__ import annotations

from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table, records

COLUMNS = [
    Column("model", "model", text.text, "zoo name"),
    Column("family", "family", text.text, "architecture family"),
    Column("input", "input", text.text, "default input, CxHxW"),
    Column("params", "params", text.human, "parameter elements its forward reads"),
    Column("params_unused", "params unused", text.human,
           "parameters it builds but never reads (GoogLeNet's auxiliary heads)"),
    Column("source", "source", text.text, "the paper or implementation it follows"),
]


def views(listing: Any, **_: Any) -> list[Table]:
    return [Table("models", "archstat zoo", COLUMNS, listing.rows)]


def data(listing: Any) -> dict[str, Any]:
    return {"models": records(views(listing)[0])}
