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
    resolve_format,
    show,
    user_errors,
    warn,
)
from archstat.errors import ArchstatError

STYLES = ("default", "lecture", "paper")
#: The convention a style counts in unless --convention says otherwise: the lecture's
#: tables count pools, the papers count multiply-adds.
STYLE_CONVENTIONS = {"default": "macs", "lecture": "lecture", "paper": "macs"}


def zoo(
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """List the zoo's models: family, default input, parameters, source."""
    import archstat

    with user_errors():
        fmt = resolve_format(fmt, output)
        show(archstat.zoo_listing(), fmt, output)


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
    from archstat.render.analysis import unhandled_summary

    with user_errors():
        fmt = resolve_format(fmt, output)
        if (freeze or optimizer) and not train:
            raise ArchstatError(f"{'--freeze' if freeze else '--optimizer'} needs --train")
        if style not in STYLES:
            raise ArchstatError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
        if style != "default":
            # The lecture's and the papers' tables are per image in float32.
            if batch != 1 or dtype != "float32":
                raise ArchstatError(f"--style {style} is per image at 4 bytes per element; "
                                    "--batch and --dtype apply to --style default only")
            if depth is not None:
                raise ArchstatError(f"--depth applies to --style default only, not {style}")
        if style == "paper" and convention not in (None, "macs"):
            raise ArchstatError("--style paper counts multiply-adds as the papers do; drop "
                                f"--convention {convention}")
        result = archstat.analyze(model, input_shape=input or None, batch=batch,
                                  convention=convention or STYLE_CONVENTIONS[style],
                                  dtype=dtype, depth=depth, train=train, freeze=freeze or (),
                                  optimizer=optimizer)
        summary = unhandled_summary(result)
        if summary:
            warn(summary)
        if style == "lecture":
            result = archstat.lecture_table(result)
        elif style == "paper":
            result = archstat.paper_table(result)
        show(result, fmt, output)
