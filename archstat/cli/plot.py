"""``archstat plot``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archstat.cli._common import InputOpt, note, user_errors
from archstat.errors import ArchstatError


def plot(
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.png or FILE.svg "
                                         "(written atomically).")],
    models: Annotated[list[str] | None, typer.Argument(
        help="Zoo names or spec strings; one column of panels each. With --accuracy, zoo "
             "names (default: the whole zoo).")] = None,
    metric: Annotated[str, typer.Option("--metric", "-m", help="memory, params, flops or "
                                        "all (one row of panels each), or savings (per "
                                        "module, 1x1 bottleneck savings).")] = "all",
    log: Annotated[bool, typer.Option("--log", help="Log-scale y axes.")] = False,
    size: Annotated[str, typer.Option("--size", help="Image size in pixels, WIDTHxHEIGHT.")]
    = "1600x900",
    input: InputOpt = None,
    convention: Annotated[str, typer.Option("--convention", "-c", help="FLOP convention "
                                            "(the lecture's by default).")] = "lecture",
    accuracy: Annotated[bool, typer.Option(
        "--accuracy", help="Instead of layers: published ImageNet top-1 accuracy against "
        "MACs (log scale) at each model's zoo input, bubble area = parameters, as Canziani "
        "et al. 2016, Figure 2. Models without a published top-1 are left out and named.")]
    = False,
) -> None:
    """Per-layer bar charts of memory, params and FLOPs, like the lecture's; or, with
    --accuracy, accuracy against cost."""
    from archstat.files import atomic_write
    from archstat.render.plot import parse_size, plot_models

    with user_errors():
        fmt = output.suffix.lower().lstrip(".")
        if accuracy:
            _plot_accuracy(models, output, fmt, parse_size(size), metric=metric, log=log,
                           input=input, convention=convention)
            return
        if not models:
            raise ArchstatError("name at least one model to plot (or give --accuracy)")
        image = plot_models(models, metric=metric, log=log, size=parse_size(size), fmt=fmt,
                            input_shape=input or None, convention=convention)
        atomic_write(output, image)


def _plot_accuracy(models: list[str] | None, output: Path, fmt: str, size: tuple[int, int],
                   **layer_options: object) -> None:
    from archstat.accuracy import accuracy_table
    from archstat.files import atomic_write
    from archstat.render.accuracy import left_out_text
    from archstat.render.plot import accuracy_chart, check_image, require_matplotlib

    defaults = {"metric": "all", "log": False, "input": None, "convention": "lecture"}
    given = [name for name, value in layer_options.items() if value != defaults[name]]
    if given:
        raise ArchstatError(f"--{given[0]} does not apply to --accuracy, which plots MACs "
                            "(convention macs) at each model's zoo input")
    check_image(size, fmt)  # fail before tracing the zoo
    require_matplotlib()
    table = accuracy_table(models or None)
    atomic_write(output, accuracy_chart(table, size, fmt))
    for line in left_out_text(table):
        note(f"not plotted: {line}")
