"""``archstat snapshot`` (record per-layer figures) and ``archstat diff`` (compare with them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archstat.cli._common import (
    BatchOpt,
    ConventionOpt,
    DtypeOpt,
    FormatOpt,
    InputOpt,
    OutputOpt,
    emit,
    resolve_format,
    show,
    user_errors,
    warn,
)


def snapshot(
    models: Annotated[list[str], typer.Argument(
        help="Zoo names or spec strings (package.module:callable).")],
    input: InputOpt = None,
    batch: BatchOpt = 1,
    convention: ConventionOpt = "macs",
    dtype: DtypeOpt = "float32",
    output: OutputOpt = None,
) -> None:
    """Record the per-layer analysis of MODELS, with the archstat and torch versions, as
    JSON (the baseline of `archstat diff` and of a budget's `baseline`)."""
    import archstat
    from archstat.render.table import to_json

    with user_errors():
        emit(to_json(archstat.snapshot(models, input_shape=input or None, batch=batch,
                                       convention=convention, dtype=dtype)), output)


def diff(
    baseline: Annotated[Path, typer.Argument(help="A file written by `archstat snapshot`.")],
    models: Annotated[list[str] | None, typer.Argument(
        help="Models to compare. Default: every model in BASELINE.", show_default=False)] = None,
    tolerance: Annotated[str, typer.Option(
        "--tolerance", "-t", help="Growth of a total (flops, params, activation bytes, "
        "peak activation bytes) that still passes, in percent, e.g. 0.5%.")] = "0%",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Compare models with BASELINE layer by layer: added, removed and changed layers and
    the change of each total. Exit 1 when a total grew beyond the tolerance."""
    import archstat

    with user_errors():
        fmt = resolve_format(fmt, output)
        report = archstat.diff(baseline, models, tolerance)
        for note in report.notes:
            warn(note)
        show(report, fmt, output)
    raise typer.Exit(report.exit_code)
