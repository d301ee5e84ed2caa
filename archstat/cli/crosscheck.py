"""``archstat crosscheck``: archstat next to FlopCounterMode and fvcore, run on the CPU."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import (
    BatchOpt,
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

PeerOpt = Annotated[
    str, typer.Option("--peer", "-p", help="torch (FlopCounterMode), fvcore "
                      "(FlopCountAnalysis) or all.")
]


def crosscheck(
    model: ModelArg,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    peer: PeerOpt = "all",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Run MODEL on the CPU under torch's FlopCounterMode and fvcore's FlopCountAnalysis
    and show, per module, their counts next to archstat's (conventions flops and fvcore),
    with the reason for every difference."""
    import archstat
    from archstat.render.crosscheck import PEER_LABELS

    with user_errors():
        fmt = resolve_format(fmt, output)
        result = archstat.crosscheck(model, input_shape=input or None, batch=batch,
                                     peers=("torch", "fvcore") if peer == "all" else peer,
                                     dtype=dtype)
        for check in result.peers:
            if check.error is not None:
                warn(f"{PEER_LABELS[check.peer]} could not run: {check.error}")
            elif not check.explained:
                warn(f"{PEER_LABELS[check.peer]}: a difference of "
                     f"{check.unexplained:+,} has no reason")
        show(result, fmt, output)
