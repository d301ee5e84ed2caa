"""``archstat report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archstat.cli._common import user_errors


def report(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the reports into "
                                      "(created if missing).")] = Path("reports"),
) -> None:
    """Regenerate the committed reports: lecture and paper tables, comparisons, README."""
    from archstat.render.reports import write_reports

    with user_errors():
        written = write_reports(out)
    typer.echo(f"archstat: wrote {len(written)} files to {out}")
