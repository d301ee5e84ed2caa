"""``archstat factorize``: stride-1 conv stacks against one conv of their receptive
field (VGG's argument), and large kernels against small factors (Inception v3's)."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import (
    BatchOpt,
    FormatOpt,
    InputOpt,
    ModelArg,
    OutputOpt,
    resolve_format,
    show,
    user_errors,
)

DirectionOpt = Annotated[
    str, typer.Option("--direction", "-d", help="merge (stacks -> one conv), split (large "
                      "kernels -> small ones) or both.")
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="How a large kernel splits: 3x3 (a stack of 3x3s, the "
                      "stride on the first) or asymmetric (1xn then nx1).")
]


def factorize(
    model: ModelArg,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    direction: DirectionOpt = "both",
    split: SplitOpt = "3x3",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Each stride-1 stack of MODEL's convolutions against one conv of the same
    receptive field, each large kernel against smaller factors, and the whole network
    with every alternative in place (params and MACs)."""
    from archstat.factorize import factorize_model

    with user_errors():
        fmt = resolve_format(fmt, output)
        result = factorize_model(model, input_shape=input or None, batch=batch,
                                 direction=direction, split=split)
        show(result, fmt, output)
