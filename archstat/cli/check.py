"""``archstat check`` (budgets in CI) and ``archstat budget`` (write tight budgets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archstat.cli._common import (
    BatchOpt,
    ConventionOpt,
    DtypeOpt,
    InputOpt,
    OutputOpt,
    emit,
    error,
    resolve_format,
    show,
    user_errors,
)

CheckFormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="table, json, github (workflow annotations) or "
                      "junit (XML). With -o and the default table, .json/.xml decide.")
]


def check(
    file: Annotated[Path | None, typer.Argument(
        help="Budget file. Default: ./archstat.toml, else ./pyproject.toml [tool.archstat].",
        show_default=False)] = None,
    fmt: CheckFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Check every [[budget]] of FILE against a fresh analysis.

    Exit 0 when every limit holds, 1 when one is exceeded, 2 for a configuration error
    (including a model that cannot be built; the other entries are still checked).
    """
    import archstat
    from archstat.budget.file import BudgetFileError
    from archstat.render.check import CHECK_FORMATS

    with user_errors():
        fmt = resolve_format(fmt, output, CHECK_FORMATS, {".json": "json", ".xml": "junit",
                                                             ".txt": "table"})
        try:
            report = archstat.check(file)
        except BudgetFileError as exc:
            if fmt == "table":
                raise
            # CI formats report a broken file too: an annotation on its line, a JUnit error
            report = archstat.CheckReport.from_file_error(exc)
        for result in report.results:
            if result.status == "error":
                error(f"{report.display}:{result.line}: {result.message}")
        show(report, fmt, output)
    raise typer.Exit(report.exit_code)


def budget(
    models: Annotated[list[str] | None, typer.Argument(
        help="Models to budget (zoo names or spec strings). Default: every zoo model.",
        show_default=False)] = None,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    convention: ConventionOpt = "macs",
    dtype: DtypeOpt = "float32",
    digits: Annotated[int, typer.Option(
        "--digits", help="Significant digits the limits are rounded up to "
        "(3 leaves under 1% of headroom).")] = 3,
    output: OutputOpt = None,
) -> None:
    """Print [[budget]] tables limiting MODELS to their current figures, rounded up."""
    import archstat

    with user_errors():
        emit(archstat.suggest_budgets(models, digits, input_shape=input or None, batch=batch,
                                      convention=convention, dtype=dtype), output)
