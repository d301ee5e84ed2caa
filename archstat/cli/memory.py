"""``archstat memory``: peak inference or training memory, by batch size."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import (
    DtypeOpt,
    FormatOpt,
    InputOpt,
    ModelArg,
    OutputOpt,
    resolve_format,
    show,
    user_errors,
)


def memory(
    model: ModelArg,
    input: InputOpt = None,
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch size, or several: "
                                       "1,32,256.")] = "1",
    dtype: DtypeOpt = "float32",
    train: Annotated[bool, typer.Option("--train", help="One training step instead of "
                                        "inference.")] = False,
    optimizer: Annotated[str | None, typer.Option(
        "--optimizer", help="With --train: sgd (default), sgd-momentum, adam or adamw.")] = None,
    fit: Annotated[str | None, typer.Option("--fit", help="Also find the largest batch whose "
                                            "peak fits this budget, e.g. 24GiB.")] = None,
    allocator: Annotated[bool, typer.Option("--allocator", help="Also model the peak as this "
                                            "machine's CPU allocator sees it (kernel "
                                            "workspaces; depends on its threads and CPU).")
                         ] = False,
    measure: Annotated[bool, typer.Option("--measure", help="Also run the model once on the "
                                          "CPU and show its measured peaks (tensor and "
                                          "allocator level) beside the estimates.")] = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Peak memory of MODEL: params, buffers, peak activations (and where), the allocator
    peak with the CPU kernels' workspaces, and with --train saved activations, gradients,
    optimizer state and the training-step peak."""
    import archstat
    from archstat.errors import ArchstatError

    with user_errors():
        fmt = resolve_format(fmt, output)
        if optimizer is not None and not train:
            raise ArchstatError("--optimizer needs --train (an inference estimate has none)")
        if (measure or allocator) and train:
            raise ArchstatError("--allocator and --measure are for inference: drop --train")
        report = archstat.estimate_memory(model, input_shape=input or None, batch=batch,
                                          dtype=dtype,
                                 train=train, optimizer=optimizer, fit=fit, allocator=allocator,
                                 measure=measure)
        show(report, fmt, output)
