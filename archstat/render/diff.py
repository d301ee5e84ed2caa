"""A :class:`~archstat.snapshot.DiffReport` (``archstat diff``): the layers that changed and
the totals before and after; see :mod:`archstat.render.check` for the views."""

from __future__ import annotations

from typing import Any

from archstat.render.check import diff_csv_table, diff_data, diff_views
from archstat.render.table import Table


def views(report: Any, **_: Any) -> list[Table]:
    return diff_views(report)


def csv_table(report: Any, **_: Any) -> Table:
    return diff_csv_table(report)


def data(report: Any) -> dict[str, Any]:
    return diff_data(report)
