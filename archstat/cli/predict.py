"""``archstat predict``: per-layer latency of a model on a device, from its meta trace."""

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
)

DeviceOpt = Annotated[
    str, typer.Option("--device", help="A device of the table (H100, A100, H200, L4, T4, "
                      "V100, RTX 4090, ...) or a profile JSON file (archstat calibrate "
                      "-o PROFILE.json writes one).", show_default=False)
]


def predict(
    model: ModelArg,
    device: DeviceOpt,
    input: InputOpt = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Predicted latency of MODEL on a device, per layer: FLOPs, bytes moved, arithmetic
    intensity, time and bound (compute, memory or overhead), from the meta trace."""
    from archstat.predictor import predict as predict_latency

    with user_errors():
        fmt = resolve_format(fmt, output)
        report = predict_latency(model, input_shape=input or None, device=device, batch=batch,
                                 dtype=dtype)
        show(report, fmt, output)
