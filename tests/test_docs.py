"""The documentation: the README's size and quickstart, links that resolve, and docs that
keep up with the code (every command and flag in docs/cli.md, every public name in
docs/api.md, every zoo model in docs/zoo.md, the README's compare screen)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import archstat
from archstat.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
QUICKSTART = (
    "pip install torch==2.13.0 . && archstat compare googlenet vgg16",
    'pip install torch==2.13.0 ".[test]" && python -m pytest',
)
#: The pages whose links are checked: the README, docs/ and the benchmarks' log.
PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(markdown: str) -> str:
    """The page without its fenced code blocks (whose brackets are not links)."""
    return _FENCE.sub("", markdown)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    for line in prose(markdown).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            found.add(slug(match[1]))
    return found


def section(markdown: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    assert match, f"no section '## {heading}'"
    return match[1]


def test_readme_is_short_and_has_the_quickstart_commands() -> None:
    readme = text(README)
    assert len(readme.splitlines()) <= 300
    for command in QUICKSTART:
        assert command in readme


def test_readme_says_early_that_some_models_run_on_the_cpu() -> None:
    head = text(README).split("## Quickstart")[0]
    assert 'execute="auto"' in head and 'execute="never"' in head
    assert "executed" in head and "data_dependent" in head


def test_slug_follows_github() -> None:
    assert slug("Comparing models: `archstat compare`") == "comparing-models-archstat-compare"
    assert slug("`archstat analyze`") == "archstat-analyze"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _LINK.findall(prose(text(page))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(text(file)):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, broken


def test_every_command_and_flag_is_in_cli_md() -> None:
    cli = text(DOCS / "cli.md")
    shared = section(cli, "What every command shares")
    commands = typer.main.get_command(app).commands
    assert [c.name for c in app.registered_commands] == list(commands)
    missing = []
    for name, command in commands.items():
        body = section(cli, f"`archstat {name}`")
        for param in command.params:
            for flag in (o for o in param.opts if o.startswith("--")):
                pattern = re.escape(flag) + r"(?![\w-])"
                if not re.search(pattern, body) and not re.search(pattern, shared):
                    missing.append(f"archstat {name} {flag}")
    assert not missing, missing


def _code(markdown: str) -> str:
    """Everything in code spans and fenced blocks."""
    spans = re.findall(r"`([^`]+)`", prose(markdown))  # a span may wrap a line
    return "\n".join([*_FENCE.findall(markdown), *spans])


def test_every_public_name_is_in_api_md() -> None:
    code = _code(text(DOCS / "api.md"))
    missing = [name for name in archstat.__all__
               if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", code)]
    assert not missing, missing


def test_every_zoo_model_is_in_zoo_md() -> None:
    zoo = text(DOCS / "zoo.md")
    missing = [name for name in archstat.list_models()
               if not re.search(rf"^\| {re.escape(name)} \|", zoo, re.M)]
    assert not missing, missing


def test_readme_compare_screen_is_the_real_output() -> None:
    """The quickstart's screen is pasted verbatim; rerun it when the output changes."""
    readme = text(README)
    marker = "$ COLUMNS=110 archstat compare googlenet vgg16\n"
    assert marker in readme
    shown = readme.split(marker, 1)[1].split("```", 1)[0]
    run = subprocess.run([sys.executable, "-m", "archstat", "compare", "googlenet", "vgg16"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "110"}, check=True)
    assert run.stdout == shown
