"""``archstat report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archstat.cli._common import user_errors


def report(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory to write into (created if missing). Default: reports/, "
        "or reports/html/ with --html.")] = None,
    html: Annotated[bool, typer.Option(
        "--html", help="Write only the HTML report: an index with the zoo comparison, "
        "the compare pages and one page per model, self-contained and offline.")] = False,
    models: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="With --html: only these zoo models (repeat the flag): "
        "their pages, one comparison of them all, the index.")] = None,
) -> None:
    """Regenerate the committed reports: lecture and paper tables, comparisons, README,
    and the HTML report in html/."""
    from archstat.errors import ArchstatError
    from archstat.render.reports import write_reports
    from archstat.render.site import write_site

    with user_errors():
        if models and not html:
            raise ArchstatError("--model chooses the pages of the HTML report: add --html")
        if html:
            directory = out or Path("reports") / "html"
            written = write_site(directory, models)
        else:
            directory = out or Path("reports")
            written = write_reports(directory)
            written += write_site(directory / "html")
    typer.echo(f"archstat: wrote {len(written)} files to {directory}")
