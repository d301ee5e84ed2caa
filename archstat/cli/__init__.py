"""The ``archstat`` command line: parses arguments and calls the library; nothing else.

Commands live one module per idea beside this file; torch is imported only inside
commands, so ``archstat --help`` stays fast.
"""

from __future__ import annotations

import gc
import sys
from typing import Annotated

import typer

from archstat._version import __version__
from archstat.cli import analyze as _analyze
from archstat.cli import bench as _bench
from archstat.cli import bottleneck as _bottleneck
from archstat.cli import calibrate as _calibrate
from archstat.cli import check as _check
from archstat.cli import compare as _compare
from archstat.cli import crosscheck as _crosscheck
from archstat.cli import factorize as _factorize
from archstat.cli import memory as _memory
from archstat.cli import plot as _plot
from archstat.cli import predict as _predict
from archstat.cli import report as _report
from archstat.cli import scale as _scale
from archstat.cli import snapshot as _snapshot

app = typer.Typer(
    name="archstat",
    help="Exact per-layer memory, parameters and FLOPs of neural networks, traced on the "
    "meta device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"archstat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """archstat: architecture statistics of neural networks."""


app.command("zoo")(_analyze.zoo)
app.command("analyze")(_analyze.analyze)
app.command("compare")(_compare.compare)
app.command("report")(_report.report)
app.command("plot")(_plot.plot)
app.command("bottleneck")(_bottleneck.bottleneck)
app.command("check")(_check.check)
app.command("budget")(_check.budget)
app.command("snapshot")(_snapshot.snapshot)
app.command("diff")(_snapshot.diff)
app.command("bench")(_bench.bench)
app.command("memory")(_memory.memory)
app.command("crosscheck")(_crosscheck.crosscheck)
app.command("factorize")(_factorize.factorize)
app.command("scale")(_scale.scale)
app.command("predict")(_predict.predict)
app.command("calibrate")(_calibrate.calibrate)


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Usage errors are one line on stderr and exit code 2.

    The cyclic garbage collector is off while a command runs (and on again after, for a
    caller in the same process): a command is short, its tensors are freed by reference
    counting, and each full collection its allocations would trigger walks the several
    hundred thousand objects ``import torch`` made. That, and the collection at exit,
    were 0.2 s of the 0.3 s ``archstat analyze resnet152`` spent above ``import torch``
    (benchmarks/analysis_speed.py)."""
    command = typer.main.get_command(app)
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = command.main(args=argv, prog_name="archstat", standalone_mode=False)
    except Exception as exc:
        # typer vendors click in recent releases; recognise its exceptions by shape.
        if hasattr(exc, "format_message"):  # click's UsageError and friends
            typer.echo(f"archstat: error: {exc.format_message()}", err=True)
            return 2
        if isinstance(exc, typer.Abort) or type(exc).__name__ == "Abort":
            typer.echo("archstat: aborted", err=True)
            return 130
        raise
    finally:
        if argv is None:
            # the console entry point: the process ends now, and the collection at
            # interpreter exit need not walk torch's objects either
            gc.freeze()
        if collecting:
            gc.enable()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
