"""The HTML report as a person sees it (issue 16): pages opened in a real headless
browser, Debian's ``chromium`` (``.ci/run`` installs it with apt-get; nothing is
downloaded by the tests). Each page is rendered at a desktop and a phone size, and the
checks read what the browser built:

- the DOM after load (``--dump-dom``): tables with header cells, figures as inline SVG,
  no reference to anything outside the page but data: URIs and sibling files;
- the browser's own network log (``--log-net-log``) while the page loads, with every host
  name mapped to nothing: no request made on the page's behalf;
- the page's width at 390 px (in an iframe of that width, so that the page's own media
  queries see a phone): nothing wider than the screen but what scrolls in its own box;
- screenshots (``--screenshot``), checked for size and for not being blank.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from PIL import Image

import archstat

# a real browser: CI runs it, `-m "not slow"` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

PHONE = (390, 844)
DESKTOP = (1280, 900)

#: A browser that starts clean, does nothing of its own on the network and runs in a
#: container as root (no sandbox, no GPU, /tmp instead of a small /dev/shm).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--disable-default-apps", "--host-resolver-rules=MAP * ~NOTFOUND")

INSTALL = ("chromium is not installed: the browser tests need Debian's chromium, "
           "`apt-get install -y --no-install-recommends chromium` (.ci/run does it)")


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(INSTALL, pytrace=False)
    return path


def chromium(url: str, *args: str, workdir: Path, size: tuple[int, int] = DESKTOP) -> str:
    """Runs headless chromium on ``url`` with ``args`` (a profile of its own in
    ``workdir``); returns its stdout."""
    command = [chromium_path(), *FLAGS, f"--user-data-dir={workdir / 'profile'}",
               f"--window-size={size[0]},{size[1]}", *args, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          cwd=workdir)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
    return done.stdout


@dataclass
class Visit:
    """What loading one page left behind."""

    dom: str  # the document after load, as the browser serialises it
    requests: list[str]  # URLs the network stack was asked for on the page's behalf


def page_requests(netlog: Path) -> list[str]:
    """URLs of the requests a page made, from chromium's net log: each request's
    ``URL_REQUEST_START_JOB`` event carries its URL and its network isolation key, which
    names the top frame's site, ``file://`` for a page opened from disk. The browser's
    own requests (sign-in, time, safe browsing) carry another key."""
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in log["events"]
            if event["type"] == start_job
            and "file://" in event["params"].get("network_isolation_key", "")]


def visit(page: Path, workdir: Path) -> Visit:
    netlog = workdir / "netlog.json"
    dom = chromium(page.as_uri(), "--dump-dom", f"--log-net-log={netlog}", workdir=workdir)
    return Visit(dom, page_requests(netlog))


#: The probe page: the page under test in an iframe of a phone's width; once it has
#: loaded, the probe writes the iframe document's scroll width into its own DOM.
PROBE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="page" src="{src}" style="width:{width}px;height:{height}px;border:0"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var d = this.contentDocument.documentElement;
  document.body.setAttribute("data-widths", JSON.stringify(
      {{scroll: d.scrollWidth, client: d.clientWidth}}));
}});
</script></body></html>
"""


def phone_widths(page: Path, workdir: Path) -> dict[str, int]:
    """The page's scroll width and the width it has, laid out 390 px wide."""
    probe = page.parent / f".probe-{page.stem}.html"
    probe.write_text(PROBE.format(src=page.name, width=PHONE[0], height=PHONE[1]))
    try:
        dom = chromium(probe.as_uri(), "--dump-dom", "--allow-file-access-from-files",
                       workdir=workdir)
    finally:
        probe.unlink()
    parsed = Document(dom)
    assert parsed.widths is not None, "the probe did not report (iframe not loaded?)"
    return json.loads(parsed.widths)


def screenshot(page: Path, png: Path, size: tuple[int, int], workdir: Path) -> Image.Image:
    chromium(page.as_uri(), f"--screenshot={png}", workdir=workdir, size=size)
    return Image.open(png)


class Document(HTMLParser):
    """What the checks need from a serialised DOM."""

    #: attributes that make a browser fetch or navigate
    LINKS = ("src", "href", "srcset", "data", "action", "poster", "xlink:href", "background")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html
        self.tables = 0
        self.header_cells = 0  # th in a table's thead
        self.svgs = 0  # svg elements inside a figure
        self.labelled_svgs = 0  # ... with role="img" and an aria-label
        self.sortable = 0  # header cells the sorting script made focusable
        self.titles: list[str] = []  # the title of every table cell (exact values)
        self.scripts: list[str] = []  # inline scripts' text; a src is a link
        self.links: list[str] = []
        self.styles: list[str] = []  # style elements and style attributes
        self.widths: str | None = None
        self._open: list[str] = []
        self._text: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table":
            self.tables += 1
        elif tag == "th" and "thead" in self._open:
            self.header_cells += 1
            self.sortable += values.get("tabindex") == "0"
        elif tag == "svg" and "figure" in self._open:
            self.svgs += 1
            self.labelled_svgs += values.get("role") == "img" and bool(values.get("aria-label"))
        elif tag == "body" and values.get("data-widths"):
            self.widths = values["data-widths"]
        if tag in ("td", "th") and values.get("title"):
            self.titles.append(values["title"] or "")
        self.links += [v for k, v in attrs if k in self.LINKS and v]
        if values.get("style"):
            self.styles.append(values["style"] or "")
        if tag in ("script", "style"):
            self._text = []
        if tag not in ("br", "img", "meta", "link", "input", "hr", "col", "wbr"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open.pop() != tag:
                pass
        if tag in ("script", "style") and self._text is not None:
            (self.scripts if tag == "script" else self.styles).append("".join(self._text))
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def outside_references(doc: Document, folder: Path) -> list[str]:
    """Every reference of the page to anything but itself, a data: URI or an existing
    file beside it: URLs with a scheme or protocol-relative, @import and url() in styles,
    and sibling links that are broken."""
    bad = []
    for link in doc.links:
        target = link.split("#")[0]
        if link.startswith("#") or link.startswith("data:"):
            continue
        if ":" in target.split("/")[0] or target.startswith("//"):
            bad.append(link)
        elif not (folder / target).is_file():
            bad.append(f"{link} (no such file)")
    for css in doc.styles:
        if "@import" in css:
            bad.append("@import in a style")
        for part in css.split("url(")[1:]:
            url = part.split(")")[0].strip("'\" ")
            if not url.startswith(("#", "data:")):
                bad.append(f"url({url})")
    return bad


def check_page(page: Path, workdir: Path, figures: bool) -> Document:
    """Every check of this module on one page; the rendered DOM, for more."""
    seen = visit(page, workdir)
    assert seen.requests == [], f"{page.name} requested {seen.requests}"
    doc = Document(seen.dom)
    assert doc.tables > 0 and doc.header_cells >= doc.tables, page.name
    assert (doc.svgs > 0) == figures, page.name
    assert doc.labelled_svgs == doc.svgs, f"{page.name}: a figure without an accessible name"
    assert outside_references(doc, page.parent) == [], page.name
    assert len(doc.scripts) <= 1, f"{page.name}: {len(doc.scripts)} scripts"
    widths = phone_widths(page, workdir)
    assert PHONE[0] - 20 <= widths["client"] <= PHONE[0]  # less a vertical scrollbar
    assert widths["scroll"] <= widths["client"], f"{page.name} is wider than a phone: {widths}"
    for size in (PHONE, DESKTOP):
        image = screenshot(page, workdir / f"{page.stem}-{size[0]}.png", size, workdir)
        assert image.size == size
        assert len(image.convert("L").getcolors(256 * 256) or []) > 8, "a blank screenshot"
    return doc


# The harness itself, on pages written here: it must see what it claims to check.

CLEAN = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title>
<style>.scroll{overflow-x:auto}</style></head>
<body><div class="scroll"><table><caption>alexnet</caption>
<thead><tr><th scope="col">layer</th><th scope="col">params</th></tr></thead>
<tbody><tr><th scope="row">conv1</th><td title="23296">23.3K</td></tr>
<tr><th scope="row">wide</th><td style="white-space:nowrap">WIDE</td></tr></tbody>
</table></div>
<figure><svg xmlns="http://www.w3.org/2000/svg" width="300" height="100" role="img"
 aria-label="bars">
<rect x="0" y="0" width="200" height="40" fill="#345"/><text x="10" y="80">bars</text>
</svg><figcaption>chart</figcaption></figure>
<a href="other.html">next</a><a href="#top">top</a>
<script>document.title = "loaded";</script>
</body></html>
"""


@pytest.fixture
def clean_page(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "other.html").write_text("<!DOCTYPE html><title>other</title>")
    page = site / "page.html"
    page.write_text(CLEAN.replace("WIDE", "x" * 300))
    return page


def test_harness_passes_a_clean_page(clean_page: Path, tmp_path: Path) -> None:
    doc = check_page(clean_page, tmp_path, figures=True)
    assert doc.scripts == ['document.title = "loaded";']
    assert doc.titles == ["23296"]
    assert "<title>loaded</title>" in doc.html  # the script ran before the dump


def test_harness_sees_network_requests(clean_page: Path, tmp_path: Path) -> None:
    page = clean_page.with_name("fetching.html")
    page.write_text(CLEAN.replace(
        "</body>", '<img src="https://example.invalid/x.png" alt=""></body>'))
    seen = visit(page, tmp_path)
    assert seen.requests == ["https://example.invalid/x.png"]
    assert outside_references(Document(seen.dom), page.parent) == [
        "https://example.invalid/x.png"]


def test_harness_sees_outside_references(clean_page: Path) -> None:
    doc = Document('<link rel="stylesheet" href="//cdn.example/x.css">'
                   '<style>@import "a.css"; p{background:url(https://e.invalid/b.png)}</style>'
                   '<a href="missing.html">x</a><a href="other.html#s">y</a>')
    assert outside_references(doc, clean_page.parent) == [
        "//cdn.example/x.css", "missing.html (no such file)", "@import in a style",
        "url(https://e.invalid/b.png)"]


def test_harness_sees_a_page_wider_than_a_phone(clean_page: Path, tmp_path: Path) -> None:
    page = clean_page.with_name("wide.html")
    page.write_text(CLEAN.replace("WIDE", "x" * 300).replace(".scroll{overflow-x:auto}", ""))
    widths = phone_widths(page, tmp_path)
    assert widths["client"] == PHONE[0] < widths["scroll"]  # (a short page: no scrollbar)


# The report: `archstat report --html` for two models, as a reader opens it.

MODELS = ("alexnet", "googlenet")
#: page -> whether it has figures (the index has tables only)
PAGES = {"index.html": False, "alexnet.html": True, "googlenet.html": True,
         "compare_alexnet_googlenet.html": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    models = [arg for model in MODELS for arg in ("-m", model)]
    done = subprocess.run([sys.executable, "-m", "archstat", "report", "--html",
                           "--out", str(out), *models],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(PAGES)
    return out


@pytest.mark.parametrize("name", PAGES)
def test_report_page_in_a_browser(site: Path, name: str, tmp_path: Path) -> None:
    doc = check_page(site / name, tmp_path, figures=PAGES[name])
    assert doc.sortable > 0, "the sorting script did not run"
    if name == "index.html":
        linked = {link for link in doc.links if link.endswith(".html")}
        assert linked == set(PAGES) - {"index.html"}


def test_report_shows_exact_counts(site: Path, tmp_path: Path) -> None:
    # hovering AlexNet's 61.1M params shows the count the model itself has
    with torch.device("meta"):
        model = archstat.get_model("alexnet")
    params = sum(p.numel() for p in model.parameters())
    doc = Document(visit(site / "alexnet.html", tmp_path).dom)
    assert str(params) in doc.titles
