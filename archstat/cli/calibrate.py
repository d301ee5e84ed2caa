"""``archstat calibrate``: measure this machine as a device profile for ``predict``."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import FormatOpt, OutputOpt, note, resolve_format, show, user_errors


def calibrate(
    output: OutputOpt = None,
    device: Annotated[str, typer.Option("--device", help="auto (cuda if available), cuda "
                                        "or cpu.")] = "auto",
    dtypes: Annotated[str, typer.Option("--dtypes", help="Comma-separated dtypes to measure.")
                      ] = "float32,float16,bfloat16",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads. Default: "
                       "torch's current setting.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller sizes: a rougher profile "
                                        "in seconds.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="What reports call the device. "
                                             "Default: its name.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Measure this machine's GEMM rate per dtype (large torch.mm), 3x3 conv, depthwise
    and pooling rates, vector rate, memory bandwidth (large copies), the cost of touching
    fresh memory, and per-op overheads (tiny ops) as a device profile; -o PROFILE.json
    writes the file predict --device reads."""
    from archstat.predictor import calibrate as measure_profile

    with user_errors():
        fmt = resolve_format(fmt, output)
        profile = measure_profile(device, dtypes=[d.strip() for d in dtypes.split(",")],
                                  threads=threads, quick=quick, name=name)
        show(profile, fmt, output)
        if output is not None and fmt == "json":
            note(f"wrote {output}; predict with --device {output}")
