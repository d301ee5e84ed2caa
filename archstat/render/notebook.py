"""What a notebook shows for a result: its tables in HTML (:mod:`archstat.render.html`)
under the scoped stylesheet, and, where matplotlib is installed, its chart as inline SVG
(:mod:`archstat.render.plot`): the layer chart of an analysis, the savings of a
bottleneck report, accuracy against MACs (a comparison holds no layers: its chart is
drawn from the analyses, as the report's compare page does). Called from
:class:`archstat.display.Display`."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from html import escape
from typing import Any

from archstat.render.html import STYLE

#: The size charts are drawn at in a notebook or a report page, in pixels (scaled to the
#: page's width by the stylesheet).
CHART_SIZE = (1200, 640)


def _layer_chart(result: Any) -> bytes | None:
    from archstat.render.plot import layer_chart

    return layer_chart([result], "all", size=CHART_SIZE, fmt="svg")


def _savings_chart(result: Any) -> bytes | None:
    from archstat.render.plot import savings_chart

    modules = result.modules
    if modules is None or modules.empty:
        return None
    return savings_chart([(result.model, modules)], size=CHART_SIZE, fmt="svg")


def _accuracy_chart(result: Any) -> bytes | None:
    from archstat.render.plot import accuracy_chart

    return accuracy_chart(result, size=CHART_SIZE, fmt="svg") if result.plotted else None


#: Result type -> its chart (SVG bytes, or None when there is nothing to draw).
CHARTS: dict[str, Callable[[Any], bytes | None]] = {
    "Analysis": _layer_chart,
    "BottleneckReport": _savings_chart,
    "AccuracyTable": _accuracy_chart,
}


def has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def draw_svg(draw: Callable[..., bytes | None], *args: Any, **kwargs: Any) -> bytes | None:
    """``draw(*args, **kwargs)`` (a :mod:`archstat.render.plot` chart as SVG) with text
    kept as text (``svg.fonttype`` none): smaller, searchable, and no glyph definitions
    repeated in every chart of a page."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        return draw(*args, **kwargs)


_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_IDS = re.compile(r'(\bid="|url\(#|href="#)')


def inline_svg(svg: bytes, label: str, prefix: str) -> str:
    """A chart for an HTML page: the ``<svg>`` element without its XML prologue and
    metadata (matplotlib's version), its ids prefixed with ``prefix`` so that two charts
    of one page never share one, in a ``figure`` with ``label`` as its caption and
    accessible name."""
    body = svg.decode("utf-8")
    body = _METADATA.sub("", body[body.index("<svg"):], count=1)
    body = _IDS.sub(lambda m: f"{m[1]}{prefix}-", body)
    body = body.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    return (f"<figure>\n{body.rstrip()}\n<figcaption>{escape(label)}</figcaption>\n"
            "</figure>\n")


def chart(result: Any, label: str | None = None, prefix: str = "chart") -> str:
    """The result's chart as inline SVG, or "" (no chart for its type, nothing to draw,
    or no matplotlib)."""
    draw = CHARTS.get(type(result).__name__)
    if draw is None or not has_matplotlib():
        return ""
    svg = draw_svg(draw, result)
    if svg is None:
        return ""
    return inline_svg(svg, label or f"{getattr(result, 'model', 'archstat')} chart", prefix)


def notebook_html(result: Any, charts: bool = True) -> str:
    """``result``'s HTML for a notebook: the stylesheet, its tables and (``charts``) its
    chart."""
    from archstat.render import render

    tables = render(result, "html")
    figure = chart(result) if charts else ""
    if figure:  # inside the fragment's div, under its stylesheet
        tables = tables.removesuffix("</div>\n") + figure + "</div>\n"
    return f"<style>\n{STYLE}</style>\n{tables}"
