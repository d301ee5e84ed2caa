"""HTML: the ``html`` format of every result, notebook display and ``archstat report
--html``, read back with the standard library's HTML parser as a program would see it."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

import archstat
from archstat.cli import main
from archstat.render import render
from archstat.render.html import COLLAPSE_ROWS, HEAD_ROWS, exact
from archstat.render.site import build_site, write_site

COMMITTED = Path(__file__).resolve().parent.parent / "reports" / "html"


class Page(HTMLParser):
    """Tables (caption, header cells with their scope, body and footer rows as
    (tag, attrs, text) cells), every element's attributes, inline scripts and styles."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._open: list[dict] = []
        self._cell: list | None = None
        self._section = ""
        self._raw: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "table":
            table = {"caption": "", "head": [], "body": [], "foot": []}
            self._open.append(table)
            self.tables.append(table)
        elif tag in ("thead", "tbody", "tfoot") and self._open:
            self._section = {"thead": "head", "tbody": "body", "tfoot": "foot"}[tag]
        elif tag == "tr" and self._open:
            self._open[-1][self._section].append([])
        elif tag in ("th", "td") and self._open:
            self._cell = [tag, attrs, ""]
            self._open[-1][self._section][-1].append(self._cell)
        elif tag == "caption":
            self._cell = ["caption", attrs, ""]
        elif tag in ("script", "style"):
            self._raw = []

    def handle_endtag(self, tag):
        if tag == "table" and self._open:
            self._open.pop()
        elif tag in ("th", "td"):
            self._cell = None
        elif tag == "caption" and self._cell is not None:
            self._open[-1]["caption"] = self._cell[2]
            self._cell = None
        elif tag in ("script", "style") and self._raw is not None:
            (self.scripts if tag == "script" else self.styles).append("".join(self._raw))
            self._raw = None

    def handle_data(self, data):
        if self._raw is not None:
            self._raw.append(data)
        elif self._cell is not None:
            self._cell[2] += data


@pytest.fixture(scope="module")
def googlenet():
    return archstat.analyze("googlenet")


@pytest.fixture(scope="module")
def lenet5_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    assert main(["report", "--html", "--out", str(out), "--model", "lenet5",
                 "--model", "alexnet"]) == 0
    return out


def test_analysis_is_a_table_with_headers_and_exact_titles(googlenet) -> None:
    page = Page(render(googlenet, "html"))
    table = page.tables[0]
    header = [cell[2] for cell in table["head"][0]]
    assert header[:2] == ["layer", "type"] and "params" in header
    assert all(cell[0] == "th" and cell[1]["scope"] == "col" for cell in table["head"][0])
    assert table["caption"].startswith("googlenet  input 3x224x224")
    # googlenet has more rows than a table shows unfolded: head, summary row, the rest
    assert len(googlenet.rows) > COLLAPSE_ROWS
    head, rest = page.tables[0], page.tables[1]
    assert "<details>" in render(googlenet, "html")
    body = [row for row in head["body"] if len(row) > 1] + rest["body"]
    assert len(body) == len(googlenet.rows)
    assert len([row for row in head["body"] if len(row) > 1]) == HEAD_ROWS
    assert "more of" in head["body"][HEAD_ROWS][0][2]
    column = header.index("params")
    for row, record in zip(body, googlenet.rows, strict=True):
        assert row[0][0] == "th" and row[0][1]["scope"] == "row"
        assert row[column][1]["title"] == str(record["params"])
    flops = header.index("flops (macs)")
    assert [row[flops][1]["title"] for row in body] == [str(r["flops"]) for r in googlenet.rows]
    # the totals row is the footer, exact in its titles
    total = {header[i]: cell for i, cell in enumerate(head["foot"][0])}
    assert total["params"][1]["title"] == str(googlenet.totals["params"]) == "6998552"
    assert total["params"][2] == "7M"


def test_every_numeric_cell_title_is_the_exact_value() -> None:
    analysis = archstat.analyze("alexnet")
    table = Page(render(analysis, "html")).tables[0]
    header = [cell[2] for cell in table["head"][0]]
    keys = {"params": "params", "activation": "activation_bytes", "flops (macs)": "flops"}
    for row, record in zip(table["body"], analysis.rows, strict=True):
        for name, key in keys.items():
            assert row[header.index(name)][1]["title"] == str(record[key])
        for cell in row:  # every number shown has its exact value; shapes are exact
            shown = cell[2]
            if shown and shown[0].isdigit() and not re.fullmatch(r"\d+(x\d+)+", shown):
                assert re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", cell[1]["title"]), cell
    fc6 = next(row for row in table["body"] if row[0][2] == "classifier.1")
    cells = [fc6[header.index(name)] for name in keys]
    assert [c[1]["title"] for c in cells] == ["37752832", "16384", "37748736"]
    assert [c[2] for c in cells] == ["37.8M", "16KiB", "37.7M"]


def test_exact_keeps_integers_whole_and_floats_in_full() -> None:
    assert exact(15_470_264_320) == "15470264320"
    assert exact(94.921875) == "94.921875"
    assert exact(float("nan")) is None and exact("conv1") is None and exact(None) is None
    assert exact(True) is None and exact((1, 3, 224, 224)) is None


def test_notebook_display_of_googlenet_is_a_table(googlenet) -> None:
    html = googlenet._repr_html_()
    page = Page(html)
    assert page.tables and page.tables[0]["head"][0][0][2] == "layer"
    assert page.styles and ".archstat" in page.styles[0]
    assert not page.scripts  # notebooks get no script
    # the layer chart, inline, as text-bearing SVG without metadata
    assert html.count("<svg") == 1 and "<metadata>" not in html and "<figure>" in html
    assert html == googlenet._repr_html_()
    markdown = googlenet._repr_markdown_()
    assert markdown.startswith("**googlenet  input 3x224x224") and "| layer | type |" in markdown


def test_every_result_type_displays() -> None:
    from archstat.display import Display

    types = ["Analysis", "Comparison", "LectureTable", "PaperTable", "BottleneckReport",
             "MemoryReport", "BenchReport", "CheckReport", "CrossCheck", "DiffReport",
             "ZooListing", "Factorization", "ScalingReport", "ScalingSweep", "PredictReport",
             "DeviceProfile", "AccuracyTable"]
    assert all(issubclass(getattr(archstat, name), Display) for name in types)
    analysis = archstat.analyze("lenet5")
    results = [archstat.compare_models(["lenet5", "alexnet"]),
               archstat.lecture_table(archstat.analyze("alexnet", convention="lecture")),
               archstat.zoo_listing(), archstat.bottleneck("googlenet", level="module"),
               archstat.estimate_memory("lenet5")]
    assert results[3]._repr_html_().count("<svg") == 1  # the savings per module
    for result in [analysis, *results]:
        page = Page(result._repr_html_())
        assert page.tables, type(result).__name__
        assert all(t["head"] and all(c[0] == "th" for c in t["head"][0]) for t in page.tables)
        assert result._repr_markdown_().startswith("**")


def test_a_check_report_displays_with_its_summary(tmp_path) -> None:
    budget = tmp_path / "archstat.toml"
    budget.write_text('[[budget]]\nmodel = "lenet5"\nmax_params = "60K"\n')
    page = Page(archstat.check(budget)._repr_html_())
    row = page.tables[0]["body"][0]
    assert [c[2] for c in row] == ["lenet5", "params", "60K", "61.706K", "-1.706K",
                                   "-2.84%", "FAIL"]
    assert "1 failed" in render(archstat.check(budget), "markdown")


def test_no_chart_without_matplotlib(monkeypatch, googlenet) -> None:
    from archstat.render import notebook

    monkeypatch.setattr(notebook, "has_matplotlib", lambda: False)
    html = googlenet._repr_html_()
    assert "<svg" not in html and Page(html).tables


def test_a_record_import_does_not_import_the_renderer() -> None:
    import subprocess
    import sys

    code = ("import sys, archstat.analysis, archstat.compare, archstat.memory; "
            "print(sorted(m for m in sys.modules if m.startswith('archstat.render')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_grouped_lecture_rows_sit_under_their_module() -> None:
    lecture = archstat.lecture_table(archstat.analyze("googlenet", convention="lecture"))
    html = render(lecture, "html")
    page = Page(html)
    groups = [row[0] for t in page.tables for row in t["body"]
              if len(row) == 1 and row[0][1].get("scope") == "rowgroup"]
    assert "inception3a" in [g[2] for g in groups]
    assert all(g[1]["colspan"] == str(len(page.tables[0]["head"][0])) for g in groups)


def test_site_pages_tables_and_inline_svg(lenet5_site) -> None:
    names = sorted(p.name for p in lenet5_site.iterdir())
    assert names == ["alexnet.html", "compare_lenet5_alexnet.html", "index.html",
                     "lenet5.html"]
    index = Page((lenet5_site / "index.html").read_text())
    hrefs = [a["href"] for tag, a in index.elements if tag == "a"]
    assert {"lenet5.html", "alexnet.html", "compare_lenet5_alexnet.html"} <= set(hrefs)
    assert index.tables[0]["caption"].startswith("lenet5 vs alexnet")
    alexnet_params = [c for c in index.tables[0]["body"][1] if c[1].get("title")][0]
    assert alexnet_params[1]["title"] == "61100840"
    page_text = (lenet5_site / "alexnet.html").read_text()
    page = Page(page_text)
    captions = [t["caption"] for t in page.tables]
    assert any("lecture layout" in c for c in captions)
    assert any(c.startswith("alexnet  input 3x227x227") and "convention macs" in c
               for c in captions)
    assert any("training step" in c for c in captions)  # the memory view
    assert "no 1x1 bottleneck" in page_text
    assert page_text.count("<svg") == 1 and "<figcaption>" in page_text
    assert len(page.scripts) == 1 and "aria-sort" in page.scripts[0]
    ids = [a["id"] for _, a in page.elements if a.get("id")]
    assert len(ids) == len(set(ids))


def test_site_is_offline(lenet5_site) -> None:
    for path in lenet5_site.iterdir():
        text = path.read_text()
        page = Page(text)
        for tag, attrs in page.elements:
            for name in ("src", "href", "xlink:href", "action", "srcset"):
                value = attrs.get(name) or ""
                assert not re.match(r"\s*(https?:)?//", value), (path.name, tag, value)
            assert tag not in ("link", "img", "iframe", "object", "embed"), path.name
        styles = "".join(page.styles)
        assert "@import" not in styles and "url(" not in styles and "@font-face" not in styles
        assert not re.search(r"https?://(?!www\.w3\.org/)", text), path.name


def test_site_is_deterministic(lenet5_site) -> None:
    again = build_site(["lenet5", "alexnet"])
    assert {p.name: p.read_text() for p in lenet5_site.iterdir()} == again


@pytest.mark.parametrize("inside", [False, True], ids=["the-file", "below-the-file"])
def test_bad_out_is_one_line_and_exit_2(tmp_path, capsys, inside) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = blocker / "site" if inside else blocker
    assert main(["report", "--html", "--out", str(out), "--model", "lenet5"]) == 2
    assert blocker.read_text() == "not a directory"
    err = capsys.readouterr().err
    assert err.startswith("archstat: error: cannot create report directory")
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["report", "--model", "lenet5"], "add --html"),
    (["report", "--html", "--model", "lenet6"], "unknown model 'lenet6'"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, argv, message) -> None:
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_failed_build_writes_nothing(tmp_path, monkeypatch) -> None:
    from archstat.errors import ArchstatError
    from archstat.render import site

    def broken(*_args, **_kwargs):
        raise ArchstatError("broken page")

    monkeypatch.setattr(site, "model_page", broken)
    with pytest.raises(ArchstatError):
        write_site(tmp_path / "out", ["lenet5"])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # every report model's page and the zoo comparison
def test_committed_html_is_up_to_date(tmp_path) -> None:
    """Fails when a change moves a number or a chart without `archstat report` rerun."""
    fresh = {p.name: p.read_bytes() for p in write_site(tmp_path)}
    committed = {p.name: p.read_bytes() for p in COMMITTED.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"reports/html is stale, run `archstat report`: {stale}"


def test_cli_format_html_is_a_whole_page_with_exact_titles(tmp_path, capsys) -> None:
    """`-f html` on the command line (and `-o x.html`): a self-contained page whose
    params cells carry the exact count, summed by hand from the built model."""
    from torch import nn

    from archstat.zoo import get_model

    with torch.device("meta"):
        model = get_model("lenet5")
    by_hand = sum(p.numel() for p in model.parameters())
    assert main(["analyze", "lenet5", "-f", "html"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert "http://" not in out.replace("http://www.w3.org", "")
    assert f'title="{by_hand}"' in out
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert out.count("<tr") >= len(convs)
    target = tmp_path / "lenet5.html"
    assert main(["analyze", "lenet5", "-o", str(target)]) == 0
    assert target.read_text() == out
