"""``archstat plot``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archstat.cli._common import InputOpt, user_errors


def plot(
    models: Annotated[list[str], typer.Argument(help="Zoo names or spec strings; one "
                                                "column of panels each.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.png or FILE.svg "
                                         "(written atomically).")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="memory, params, flops or "
                                        "all (one row of panels each), or savings (per "
                                        "module, 1x1 bottleneck savings).")] = "all",
    log: Annotated[bool, typer.Option("--log", help="Log-scale y axes.")] = False,
    size: Annotated[str, typer.Option("--size", help="Image size in pixels, WIDTHxHEIGHT.")]
    = "1600x900",
    input: InputOpt = None,
    convention: Annotated[str, typer.Option("--convention", "-c", help="FLOP convention "
                                            "(the lecture's by default).")] = "lecture",
) -> None:
    """Per-layer bar charts of memory, params and FLOPs, like the lecture's."""
    from archstat.files import atomic_write
    from archstat.render.plot import parse_size, plot_models

    with user_errors():
        image = plot_models(models, metric=metric, log=log, size=parse_size(size),
                            fmt=output.suffix.lower().lstrip("."), input_shape=input or None,
                            convention=convention)
        atomic_write(output, image)

