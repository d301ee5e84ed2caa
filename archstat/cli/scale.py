"""``archstat scale``: a zoo network rebuilt deeper, wider and at a larger input, its
measured MACs against compound scaling's prediction."""

from __future__ import annotations

from typing import Annotated

import typer

from archstat.cli._common import FormatOpt, OutputOpt, resolve_format, show, user_errors

ZooModelArg = Annotated[
    str, typer.Argument(help="A zoo model of the efficientnet, resnet or vgg family.")
]
PhiOpt = Annotated[
    int | None, typer.Option("--phi", help="Compound coefficient: depth 1.2^phi, width "
                             "1.1^phi, resolution 1.15^phi. With --sweep, the last phi "
                             "(default 7).")
]
DepthOpt = Annotated[float | None, typer.Option("--depth", help="Depth multiplier.")]
WidthOpt = Annotated[float | None, typer.Option("--width", help="Width multiplier.")]
ResolutionOpt = Annotated[
    float | None, typer.Option("--resolution", help="Resolution multiplier.")
]
SweepOpt = Annotated[
    bool, typer.Option("--sweep", help="Every phi from 0 to --phi (default 7); from "
                       "efficientnet_b0, beside the published B0-B7.")
]


def scale(
    model: ZooModelArg,
    phi: PhiOpt = None,
    depth: DepthOpt = None,
    width: WidthOpt = None,
    resolution: ResolutionOpt = None,
    sweep: SweepOpt = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """MODEL (an efficientnet, resnet or vgg of the zoo) scaled by --phi, or by --depth,
    --width and --resolution: its params and MACs against the base, next to the
    prediction d w^2 r^2, and how each stage's width and depth rounded."""
    from archstat import scaling
    from archstat.errors import ArchstatError

    with user_errors():
        fmt = resolve_format(fmt, output)
        if sweep:
            if any(v is not None for v in (depth, width, resolution)):
                raise ArchstatError("--sweep steps --phi: give no --depth, --width or "
                                    "--resolution with it")
            last = 7 if phi is None else phi
            if last < 0:
                raise ArchstatError(f"--sweep runs phi = 0..--phi: give --phi 0 or more, "
                                    f"not {last}")
            result = scaling.scale_sweep(model, range(last + 1))
        else:
            result = scaling.scale(model, phi=phi, depth=depth, width=width, resolution=resolution)
        show(result, fmt, output)
