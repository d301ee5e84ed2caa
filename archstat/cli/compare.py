"""``archstat compare``."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import (
    BatchOpt,
    ConventionOpt,
    DtypeOpt,
    FormatOpt,
    InputOpt,
    OutputOpt,
    resolve_format,
    show,
    user_errors,
)


def compare(
    models: Annotated[list[str], typer.Argument(help="Two or more models: zoo names or "
                                                "spec strings. Ratios are to the first.")],
    input: InputOpt = None,
    batch: BatchOpt = 1,
    convention: ConventionOpt = "macs",
    dtype: DtypeOpt = "float32",
    until_resolution: Annotated[int | None, typer.Option(
        "--until-resolution", "-r", help="Compare each network only down to the layer "
        "that brings its maps to this resolution (e.g. 28: the stem).")] = None,
    until: Annotated[list[str] | None, typer.Option(
        "--until", "-u", help="Cut at this layer (row name or module path); once for "
        "every model or once per model.")] = None,
    train: Annotated[bool, typer.Option(
        "--train", help="Also compare the training cost: backward and forward+backward.")
    ] = False,
    device: Annotated[str | None, typer.Option(
        "--device", help="Also compare the predicted latency on this device: one of the "
        "table (H100, A100, ...) or a profile JSON file (see archstat predict).")] = None,
    stages: Annotated[bool, typer.Option(
        "--stages", help="CSV: the per-stage breakdown instead of the totals.")] = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Totals side by side with ratios to the first model, and a per-stage breakdown."""
    import archstat
    from archstat.errors import ArchstatError

    with user_errors():
        fmt = resolve_format(fmt, output)
        if len(models) < 2:
            raise ArchstatError("compare needs two or more models (analyze shows one)")
        result = archstat.compare_models(models, input_shape=input or None, batch=batch,
                                         convention=convention, dtype=dtype,
                                         until_resolution=until_resolution, until=until,
                                         train=train, device=device)
        show(result, fmt, output, stages_first=stages)
