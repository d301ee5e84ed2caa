"""Every result as text: the one package that knows a format.

:func:`render` takes any archstat result and a format and returns text (CSV, JSON,
Markdown, an HTML fragment, and for budget checks GitHub annotations and JUnit XML) or,
for ``table``, a rich renderable for the terminal. Each result type has a module here
with its column specs (:class:`~archstat.render.table.Column`: header, formatter and
what the column holds) and its views; :mod:`.table` holds the formats themselves
(:mod:`.html` the HTML one) and :mod:`.text` the number formatting. Nothing here
counts anything, and nothing prints.

    >>> from archstat.render import render
    >>> print(render(archstat.analyze("lenet5"), "csv"))
"""

from __future__ import annotations

from typing import Any

#: The formats every result comes out in (check reports add github and junit).
FORMATS = ("table", "csv", "json", "markdown", "html")


def render(result: Any, fmt: str = "table", *, width: int | None = None, **options: Any) -> Any:
    """``result`` in format ``fmt``: a string, or for ``table`` a rich renderable that fits
    ``width`` columns of text (None: any width). ``options`` are the result type's:
    ``stages_first`` (a comparison: the per-stage table first, and in CSV),
    ``level`` (a bottleneck report's CSV table), ``top`` (a benchmark's per-layer rows).
    ``page=True`` with ``html`` gives a whole self-contained page instead of a fragment."""
    from archstat.render.table import render_tables, to_csv, to_json

    if options.pop("page", False) and fmt == "html":
        from archstat.render.html import page

        return page(f"archstat: {type(result).__name__}", render(result, fmt, **options))
    kind = type(result).__name__
    if kind == "Analysis":
        from archstat.render.analysis import render_analysis

        return render_analysis(result, fmt, width)
    if kind == "CheckReport":
        from archstat.render.check import render_check

        return render_check(result, fmt, width)
    if kind == "BenchReport":
        from archstat.render.bench import render_report

        return render_report(result, fmt, options.get("top", 10), width)
    module = _MODULES.get(kind)
    if module is None:
        raise TypeError(f"archstat cannot render a {kind}")
    views = module.views(result, **options)
    if fmt == "csv":
        csv_table = getattr(module, "csv_table", None)
        return to_csv(csv_table(result, **options) if csv_table else views[0])
    if fmt == "json":
        return to_json(module.data(result))
    return render_tables(views, fmt, width=width)


class _Module:
    """A result type's rendering module (``views``, ``data``, maybe ``csv_table``),
    imported on first use."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(f"archstat.render.{self.name}"), attr)


_MODULES: dict[str, Any] = {
    "LectureTable": _Module("lecture"),
    "PaperTable": _Module("paper"),
    "Comparison": _Module("compare"),
    "BottleneckReport": _Module("bottleneck"),
    "MemoryReport": _Module("memory"),
    "CrossCheck": _Module("crosscheck"),
    "DiffReport": _Module("diff"),
    "ZooListing": _Module("zoo"),
    "Factorization": _Module("factorize"),
    "ScalingReport": _Module("scaling"),
    "ScalingSweep": _Module("scaling"),
    "PredictReport": _Module("predict"),
    "DeviceProfile": _Module("predict"),
    "AccuracyTable": _Module("accuracy"),
}
