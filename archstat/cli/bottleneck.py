"""``archstat bottleneck``: what each 1x1 bottleneck of a model saves."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import (
    BatchOpt,
    FormatOpt,
    InputOpt,
    ModelArg,
    OutputOpt,
    note,
    resolve_format,
    show,
    user_errors,
)

LevelOpt = Annotated[
    str, typer.Option("--level", "-l", help="pair, module, network, se or all (csv: one level).")
]


def bottleneck(
    model: ModelArg,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    level: LevelOpt = "all",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """MACs and params each 1x1 bottleneck of MODEL saves: 1x1 reduce -> kxk pairs;
    inception modules, residual blocks, dense blocks and MBConv blocks against their
    forms without the 1x1s; the whole network rebuilt without them; and what its
    squeeze-and-excitation blocks cost (level se)."""
    import archstat
    from archstat.render.bottleneck import note_text

    with user_errors():
        fmt = resolve_format(fmt, output)
        report = archstat.bottleneck(model, input_shape=input or None, batch=batch, level=level)
        if fmt == "csv":
            report.table_for()  # one table: refuse the all level before anything prints
        for line in report.notes:
            note(note_text(report, line))
        show(report, fmt, output)
