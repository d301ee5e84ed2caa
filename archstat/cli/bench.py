"""``archstat bench``: measured latency, throughput and achieved FLOP/s of models."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from archstat.cli._common import (
    DtypeOpt,
    FormatOpt,
    InputOpt,
    OutputOpt,
    console,
    resolve_format,
    show,
    user_errors,
)


def show_progress(fmt: str, output: Path | None, stderr_is_terminal: bool) -> bool:
    """A progress bar only on a terminal, and never while CSV or JSON go to stdout
    (whoever reads them wants the data alone, even when stderr is merged in)."""
    return stderr_is_terminal and not (fmt in ("csv", "json") and output is None)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on stderr over the sweep (models x batch sizes), or nothing."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console(stderr=True), transient=True) as bar:
        task = bar.add_task("bench", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update


def bench(
    models: Annotated[list[str], typer.Argument(help="Zoo names or model specs; the first "
                                                "is the reference for the ratios.")],
    device: Annotated[str, typer.Option("--device", help="auto (cuda if available), "
                                        "cuda or cpu.")] = "auto",
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", "-b",
                                             help="Comma-separated, e.g. 1,8,32.")] = "1",
    dtype: DtypeOpt = "float32",
    channels_last: Annotated[bool, typer.Option("--channels-last",
                             help="Weights and input in channels_last memory format.")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model; "
                       "the compile time is reported apart.")] = False,
    warmup: Annotated[int, typer.Option("--warmup", help="At least N warm-up calls, then "
                      "more until timings settle; 0 for none.")] = 3,
    iters: Annotated[int | None, typer.Option("--iters", help="Measure exactly N calls.")] = None,
    min_time: Annotated[float | None, typer.Option("--min-time", help="Measure for at least "
                        "this many seconds (and 5 calls). Default 1.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads. Default: "
                       "torch's current setting.")] = None,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="Time every leaf module "
                         "with hooks; table of the top time consumers.")] = False,
    top: Annotated[int, typer.Option("--top", help="Rows per per-layer table in table and "
                   "markdown output (0: all; CSV and JSON carry all).")] = 10,
    input: InputOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Measured latency (min, median, p90, p99), throughput and achieved TFLOP/s of
    MODEL(s) at each batch size, with roofline context on known GPUs."""
    import archstat
    from archstat.errors import ArchstatError

    with user_errors():
        fmt = resolve_format(fmt, output)
        if top < 0:  # checked before the sweep, which can take minutes
            raise ArchstatError(f"--top must be 0 (all rows) or more, not {top}")
        with _progress_bar(show_progress(fmt, output, sys.stderr.isatty())) as progress:
            report = archstat.benchmark(
                models, device=device, batch_sizes=batch_sizes, dtype=dtype,
                channels_last=channels_last, compile=compile, warmup=warmup, iters=iters,
                min_time=min_time, threads=threads, per_layer=per_layer,
                input_shape=input or None, progress=progress,
            )
        if device == "auto":
            typer.echo(f"archstat: --device auto chose {report.meta['device']}", err=True)
        show(report, fmt, output, top=top)
