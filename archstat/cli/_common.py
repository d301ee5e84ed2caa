"""What every archstat command shares: option declarations, output, error reporting."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from archstat.errors import ArchstatError

FORMATS = ("table", "csv", "json", "markdown", "html")

ModelArg = Annotated[
    str, typer.Argument(help="Zoo name, package.module:callable, torchvision:NAME or timm:NAME.")
]
InputOpt = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="Input shape without batch, e.g. 3x224x224, typed "
                 "as SHAPE[:DTYPE[:LOW..HIGH]] (32:int64:0..999 for token ids), named as "
                 "NAME=SHAPE for a keyword input; repeat for a model with several inputs. "
                 "Default: the zoo entry's."),
]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Batch size.")]
ConventionOpt = Annotated[
    str, typer.Option("--convention", "-c",
                      help="FLOP convention: macs, flops, fvcore, lecture, full."),
]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="Parameter/activation dtype.")]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="table, csv, json, markdown or html (a whole "
                      "page). "
                      "With -o and the default table, the file's suffix decides.")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file (atomically).")
]

_SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".md": "markdown", ".txt": "table",
                   ".html": "html"}


def resolve_format(
    fmt: str,
    output: Path | None,
    formats: tuple[str, ...] = FORMATS,
    suffixes: dict[str, str] | None = None,
) -> str:
    """The output format: ``--format``, or the suffix of ``-o`` when --format is table.
    A command with other formats passes its own ``formats`` and suffix table."""
    if fmt not in formats:
        raise ArchstatError(f"unknown format {fmt!r}; choose one of {', '.join(formats)}")
    if fmt == "table" and output is not None:
        known = suffixes or _SUFFIX_FORMATS
        found = known.get(output.suffix.lower())
        if found is None:
            what = f"from its suffix {output.suffix!r}" if output.suffix else "without a suffix"
            raise ArchstatError(f"cannot tell the format of {str(output)!r} {what}: "
                                f"name it {', '.join(sorted(known))}, or give --format")
        return found
    return fmt


def console(stderr: bool = False) -> Any:
    """A rich console; when output goes to a pipe or file, wide enough that tables are
    never truncated (``COLUMNS`` still wins)."""
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = FILE_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


#: Width of text written to a file or a pipe: tables are never cut there.
FILE_WIDTH = 200


def show(result: Any, fmt: str, output: Path | None, **options: Any) -> None:
    """Render ``result`` (archstat.render) in ``fmt`` for where it goes, and emit it: a
    table fits the terminal's width, or FILE_WIDTH in a file."""
    from archstat.render import render

    width = console().width if output is None else FILE_WIDTH
    if fmt == "html":
        options["page"] = True
    emit(render(result, fmt, width=width, **options), output)


def emit(content: Any, output: Path | None) -> None:
    """Print ``content`` (text or a rich renderable), or write it atomically to ``output``."""
    from archstat.files import atomic_write

    if output is None:
        if isinstance(content, str):
            sys.stdout.write(content)
            sys.stdout.flush()
        else:
            console().print(content)
        return
    if not isinstance(content, str):
        content = plain_text(content)
    atomic_write(output, content)


def plain_text(renderable: Any, width: int = FILE_WIDTH) -> str:
    """A rich renderable as plain text for a file: no colour codes, and as wide as a
    pipe's output, whatever the terminal the command runs in."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False,
            highlight=False, soft_wrap=False).print(renderable)
    return buffer.getvalue()


def warn(message: str) -> None:
    typer.echo(f"archstat: warning: {message}", err=True)


def note(message: str) -> None:
    """An explanation (say, of an empty result) that is not a problem: one line on stderr."""
    typer.echo(f"archstat: note: {message}", err=True)


def error(message: str) -> None:
    """One error line on stderr (the command decides the exit code)."""
    typer.echo(f"archstat: error: {message}", err=True)


#: API parameter -> the flag that sets it, where the two are not spelt alike.
_FLAGS = {"input_shape": "--input", "fmt": "--format"}


def flags(message: str) -> str:
    """A library message in the command line's terms: an API parameter the library names
    in backticks (```per_layer```) becomes its flag (``--per-layer``)."""
    import re

    return re.sub(r"`([a-z_]+)`",
                  lambda m: _FLAGS.get(m[1], "--" + m[1].replace("_", "-")), message)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's ArchstatError into one line on stderr, worded in flags, and
    exit code 2."""
    try:
        yield
    except ArchstatError as exc:
        error(flags(str(exc)))
        raise typer.Exit(2) from None
