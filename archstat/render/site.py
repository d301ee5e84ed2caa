"""``archstat report --html``: the reports as a static site, one page per model.

``index.html`` shows the zoo comparison and links every page; a compare page puts
models side by side (totals, per-stage table, their layer charts); a model's page has
its lecture table, layer table, 1x1 bottleneck tables, memory estimate (inference and
a training step, batch 1) and layer chart. Every table is ``render(result, "html")``
(:mod:`archstat.render.html`); charts are inline SVG (:mod:`archstat.render.notebook`).
Self-contained and offline: the stylesheet and the one sorting script are inline, links
are relative, nothing is fetched. The same models give the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from archstat.errors import ArchstatError
from archstat.files import atomic_write, report_directory
from archstat.render import render
from archstat.render.html import page
from archstat.render.notebook import CHART_SIZE, chart, draw_svg, inline_svg


def _default_models() -> tuple[str, ...]:
    """The models with a page by default: those the CSV reports cover."""
    from archstat.render.reports import LATER_FAMILIES, REPORT_MODELS

    return (*REPORT_MODELS, *LATER_FAMILIES)


#: The compare pages by default.
COMPARE_PAGES: tuple[tuple[str, ...], ...] = (("googlenet", "vgg16"),)

Analyzer = Callable[..., Any]


def _section(heading: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}">\n<h2>{escape(heading)}</h2>\n{body}</section>\n'


def _nav(links: Sequence[tuple[str, str]]) -> str:
    return ("<nav><ul>" + "".join(f'<li><a href="{escape(href)}">{escape(name)}</a></li>'
                                  for name, href in links) + "</ul></nav>\n")


def _compare_name(models: Sequence[str]) -> str:
    return "compare_" + "_".join(models) + ".html"


def model_page(model: str, analyzer: Analyzer, charts: bool = True) -> str:
    """``model``'s page: lecture table, layers, bottlenecks, memory, chart."""
    from archstat.bottlenecks import bottleneck
    from archstat.lecture import lecture_table
    from archstat.memory import estimate_memory
    from archstat.render.bottleneck import note_text

    lecture = analyzer(model, convention="lecture")
    sections = [
        _section("Lecture table", render(lecture_table(lecture), "html"), "lecture"),
        _section("Layers", render(analyzer(model), "html"), "layers"),
    ]
    report = bottleneck(model)
    tables = render(report, "html")
    if "<table" not in tables:
        tables = "".join(f"<p>{escape(note_text(report, n))}.</p>\n" for n in report.notes)
    sections.append(_section("1x1 bottlenecks", tables, "bottlenecks"))
    memory = [render(estimate_memory(model, train=train), "html") for train in (False, True)]
    sections.append(_section("Memory", "".join(memory), "memory"))
    if charts:
        from archstat.render.plot import layer_chart

        figures = [inline_svg(draw_svg(layer_chart, [lecture], "all", size=CHART_SIZE,
                                       fmt="svg"),
                              f"{model}: memory, params and FLOPs per layer (lecture "
                        "convention, per image)", f"{model}-layers")]
        if report.rows.get("modules"):
            figures.append(chart(report, f"{model}: 1x1 bottleneck savings per module",
                                 f"{model}-savings"))
        sections.append(_section("Charts", "".join(figures), "charts"))
    return page(f"{model}: archstat report",
                _nav([("index", "index.html")]) + f"<h1>{escape(model)}</h1>\n"
                + _toc(sections) + "".join(sections))


def _toc(sections: Sequence[str]) -> str:
    import re

    found = [re.match(r'<section id="([^"]+)">\n<h2>([^<]+)</h2>', s) for s in sections]
    return _nav([(m[2], f"#{m[1]}") for m in found if m])


def compare_page(models: Sequence[str], analyzer: Analyzer, charts: bool = True) -> str:
    """The page comparing ``models``: totals, per-stage table, their layer charts."""
    from archstat.compare import compare

    body = render(compare([analyzer(m) for m in models]), "html")
    if charts:
        from archstat.render.plot import layer_chart

        svg = draw_svg(layer_chart, [analyzer(m, convention="lecture") for m in models],
                       "all", size=CHART_SIZE, fmt="svg")
        body += inline_svg(svg, " and ".join(models) + ": memory, params and FLOPs per layer "
                     "(lecture convention, per image)", "compare")
    title = " vs ".join(models)
    return page(f"{title}: archstat report",
                _nav([("index", "index.html")]) + f"<h1>{escape(title)}</h1>\n" + body)


def index_page(models: Sequence[str], compares: Sequence[Sequence[str]],
               zoo: Sequence[str], analyzer: Analyzer) -> str:
    """The index: links to every page, then the comparison of ``zoo``."""
    from archstat.compare import compare

    links = _nav([(m, f"{m}.html") for m in models])
    pairs = _nav([(" vs ".join(c), _compare_name(c)) for c in compares])
    body = ("<h1>archstat reports</h1>\n<p>Batch 1, float32, each model at its zoo input. "
            "Cells show human units; hover a number (or read its title) for the exact "
            "value. Click a column header to sort.</p>\n"
            f"<h2>Models</h2>\n{links}"
            + (f"<h2>Comparisons</h2>\n{pairs}" if compares else "")
            + "<h2>The zoo side by side</h2>\n"
            + render(compare([analyzer(m) for m in zoo]), "html"))
    return page("archstat reports", body)


def build_site(models: Sequence[str] | None = None, charts: bool | None = None
               ) -> dict[str, str]:
    """File name -> HTML of every page. ``models`` (default: the models the CSV reports
    cover, compared with every zoo model on the index) restricts the site to those
    models: their pages, one comparison of them all, and the index compares them only.
    ``charts``: draw the charts (default: when matplotlib is installed)."""
    from archstat.analysis import analyze
    from archstat.render.notebook import has_matplotlib
    from archstat.zoo import list_models

    if charts is None:
        charts = has_matplotlib()
    known = list_models()
    if models is not None:
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ArchstatError(f"unknown model {unknown[0]!r} for the HTML report; the "
                                "zoo's models are listed by `archstat zoo`")
        models = list(dict.fromkeys(models))
    pages = list(models) if models is not None else list(_default_models())
    zoo = list(models) if models is not None else known
    compares = ([tuple(models)] if len(models) > 1 else []) if models is not None \
        else list(COMPARE_PAGES)

    @functools.cache
    def analyzer(model: str, convention: str = "macs") -> Any:
        return analyze(model, convention=convention)

    files = {"index.html": index_page(pages, compares, zoo, analyzer)}
    for models_compared in compares:
        files[_compare_name(models_compared)] = compare_page(models_compared, analyzer, charts)
    for model in pages:
        files[f"{model}.html"] = model_page(model, analyzer, charts)
    return files


def write_site(out: str | Path, models: Sequence[str] | None = None) -> list[Path]:
    """Build every page, then write each into ``out`` (created if missing) atomically: a
    run that fails writes nothing. An ``out`` that exists and is not a directory is
    refused before the build."""
    report_directory(out, create=False)
    files = build_site(models)
    directory = report_directory(out)
    return [atomic_write(directory / name, text) for name, text in files.items()]
