"""``archstat analyze --style``: which table layout, and the convention each counts in.

``default`` is the analysis itself (one row per record); ``lecture`` the EECS 498/598
lecture's per-layer table (:mod:`archstat.lecture`); ``paper`` the architecture table of
the model's paper (:mod:`archstat.paper`).
"""

from __future__ import annotations

from typing import Any

from archstat import render
from archstat.errors import ArchstatError

STYLES = ("default", "lecture", "paper")

#: The convention a style counts in unless --convention says otherwise: the lecture's
#: tables count pools, the papers count multiply-adds.
STYLE_CONVENTIONS = {"default": "macs", "lecture": "lecture", "paper": "macs"}


def style_convention(
    style: str, convention: str | None, batch: int = 1, dtype: str = "float32",
    depth: int | None = None,
) -> str:
    """Check the options a style accepts and return the convention to analyse under."""
    if style not in STYLES:
        raise ArchstatError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    if style != "default":
        # The lecture's and the papers' tables are per image in float32.
        if batch != 1 or dtype != "float32":
            raise ArchstatError(f"--style {style} is per image at 4 bytes per element; "
                                "--batch and --dtype apply to --style default only")
        if depth is not None:
            raise ArchstatError(f"--depth applies to --style default only, not {style}")
    return convention or STYLE_CONVENTIONS[style]


def render_styled(analysis: Any, style: str, fmt: str) -> Any:
    """The analysis in ``style`` and format ``fmt`` (text, or a rich renderable)."""
    if style == "lecture":
        from archstat.lecture import lecture_table

        return render.render_table(lecture_table(analysis), fmt)
    if style == "paper":
        from archstat.paper import paper_table

        return render.render_table(paper_table(analysis), fmt)
    return render.render_analysis(analysis, fmt)
