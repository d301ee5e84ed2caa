"""``archstat zoo`` and ``archstat analyze``."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import (
    BatchOpt,
    ConventionOpt,
    DtypeOpt,
    FormatOpt,
    InputOpt,
    ModelArg,
    OutputOpt,
    emit,
    resolve_format,
    user_errors,
    warn,
)


def zoo(
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """List the zoo's models: family, default input, parameters, source."""
    from archstat import render
    from archstat.api import zoo_table

    with user_errors():
        fmt = resolve_format(fmt, output)
        frame = zoo_table()
        if fmt == "csv":
            content = render.to_csv(frame)
        elif fmt == "json":
            content = render.to_json({"models": render.records(frame)})
        else:
            header, rows = render.display_rows(frame, {"params": render.human})
            content = (render.to_markdown(header, rows) if fmt == "markdown"
                       else render.rich_table(header, rows, title="archstat zoo"))
        emit(content, output)


def analyze(
    model: ModelArg,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    convention: ConventionOpt = None,
    dtype: DtypeOpt = "float32",
    depth: Annotated[int | None, typer.Option("--depth", "-d",
                     help="Aggregate layers to this module-path depth.")] = None,
    style: Annotated[str, typer.Option("--style", "-s", help="default (one row per "
                     "record), lecture (EECS 498 Lecture 8 layout, lecture convention) or "
                     "paper (the model's paper table, multiply-adds).")] = "default",
    train: Annotated[bool, typer.Option("--train", help="Also count the backward pass "
                     "(input- and weight-gradient work per layer) of a training step.")] = False,
    freeze: Annotated[str | None, typer.Option("--freeze", help="With --train: module-path "
                      "prefixes whose parameters are frozen, e.g. conv1,layer1.")] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="With --train: add "
                         "one step of sgd, sgd-momentum, adam or adamw.")] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Per-layer parameters, activation memory and FLOPs of MODEL."""
    import archstat
    from archstat import render
    from archstat.errors import ArchstatError
    from archstat.styles import render_styled, style_convention

    with user_errors():
        fmt = resolve_format(fmt, output)
        if (freeze or optimizer) and not train:
            raise ArchstatError(f"{'--freeze' if freeze else '--optimizer'} needs --train")
        convention = style_convention(style, convention, batch, dtype, depth)
        result = archstat.analyze(model, input_shape=input or None, batch=batch,
                                  convention=convention, dtype=dtype, depth=depth,
                                  train=train, freeze=freeze or (), optimizer=optimizer)
        note = render.unhandled_summary(result)
        if note:
            warn(note)
        emit(render_styled(result, style, fmt), output)
