"""Tables: a result's view (:class:`Table`) and the formats every view comes out in.

A :class:`Table` holds exact values (``rows``, dicts keyed by column) and how people see
them (``columns``: header and formatter of each shown column). CSV carries
``data_columns`` exactly; Markdown and the terminal show ``columns`` in human units. The
terminal table fits the screen without dropping a column: headers wrap first, and a
table still too wide is shown one row at a time, column by column.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from archstat.render import text

Formatter = Callable[[Any], str]


@dataclass(frozen=True)
class Column:
    """A shown column: ``key`` in the rows, ``header`` (a ``\\n`` splits it over two
    lines), ``fmt`` turning the exact value into a cell, and ``doc``: what it holds and
    in which unit, the one description every document reuses."""

    key: str
    header: str
    fmt: Formatter = text.text
    doc: str = ""


@dataclass
class Table:
    """One view of a result.

    ``rows`` hold exact values; ``data_columns`` are the keys CSV carries, in order (all
    of ``columns``' keys when not given); ``columns`` are shown by the human formats.
    ``footer`` is a totals row, column key -> exact value (shown through the column's
    formatter) or display text. ``notes`` are lines printed under the table.
    ``groups`` names, per row, the module the terminal groups it under (None: not
    grouped). ``paired`` maps a column to a second one shown in parentheses in the same
    cell (a ratio beside its figure). ``key`` names the rows in JSON.
    """

    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    data_columns: list[str] | None = None
    footer: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    groups: list[str | None] | None = None
    paired: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return self.data_columns or [c.key for c in self.columns]


# -- exact formats -----------------------------------------------------------------------

def plain(value: Any) -> Any:
    """A JSON/CSV-ready value: numpy scalars to Python, tuples (shapes) to lists."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, tuple):
        return text.shape_str(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return plain(value)


def to_csv(table: Table) -> str:
    """CSV with a header row, ``\\n`` line ends, shapes as ``1x3x224x224`` and floats in
    ``repr`` form (shortest round-trip, so the same on every machine)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = table.keys
    writer.writerow(keys)
    for row in table.rows:
        writer.writerow([_csv_cell(row.get(k)) for k in keys])
    return out.getvalue()


def to_json(data: Mapping[str, Any]) -> str:
    """Indented JSON with keys in the given order and a trailing newline."""
    return json.dumps(plain(dict(data)), indent=2) + "\n"


def records(table: Table) -> list[dict[str, Any]]:
    """A table's rows as JSON-ready dicts, with its data columns."""
    return [{k: plain(row.get(k)) for k in table.keys} for row in table.rows]


# -- human formats -----------------------------------------------------------------------

def cells(table: Table) -> tuple[list[str], list[list[str]], list[str] | None]:
    """Headers, cells and footer cells for people (pairs joined, groups not yet)."""
    shown = [c for c in table.columns if c.key not in table.paired.values()]
    by_key = {c.key: c for c in table.columns}

    def cell(column: Column, row: Mapping[str, Any]) -> str:
        value = column.fmt(row.get(column.key)) if column.key in row else ""
        second = table.paired.get(column.key)
        if second is not None and second in row:
            extra = by_key[second].fmt(row.get(second)) if second in by_key \
                else text.text(row[second])
            if extra:
                return f"{value} ({extra})"
        return value

    rows = [[cell(c, row) for c in shown] for row in table.rows]
    footer = None
    if table.footer is not None:
        footer = [v if isinstance(v := table.footer.get(c.key, ""), str) else c.fmt(v)
                  for c in shown]
    return [c.header for c in shown], rows, footer


def group_headers(rows: list[list[str]], groups: list[str | None]
                  ) -> tuple[list[list[str]], list[int]]:
    """Rows with a header row before each group; grouped rows are named relative to it."""
    out: list[list[str]] = []
    headers: list[int] = []
    current = None
    for row, group in zip(rows, groups, strict=True):
        if group is not None and group != current:
            headers.append(len(out))
            out.append([group] + [""] * (len(row) - 1))
        current = group
        if group is not None:
            row = ["  " + row[0].removeprefix(group + "."), *row[1:]]
        out.append(row)
    return out, headers


def numeric(rows: Sequence[Sequence[str]], i: int) -> bool:
    """Whether every non-empty cell of column ``i`` reads as a (signed) number."""
    found = [r[i].lstrip("+-<>") for r in rows if r[i]]
    return bool(found) and all(c[:1].isdigit() for c in found)


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table under its bold title; numeric-looking columns
    are right-aligned; notes follow as a list."""
    header, rows, footer = cells(table)
    if table.groups is not None:
        rows, _ = group_headers(rows, table.groups)
    rows = [*rows, *([footer] if footer else [])]
    align = ["---:" if numeric(rows, i) else "---" for i in range(len(header))]
    header = [h.replace("\n", " ") for h in header]
    lines = [f"**{table.title}**", "", "| " + " | ".join(header) + " |",
             "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _wrap_header(header: str, width: int) -> str:
    """A header broken at spaces into lines of at most ``width`` (a word longer than
    ``width`` stays whole)."""
    lines: list[str] = []
    for word in header.replace("\n", " ").split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


_MIN_TEXT = 8  # the narrowest a folding text column may get


def _foldable(header: list[str], rows: list[list[str]]) -> list[bool]:
    """Columns whose cells may wrap: names and types (text), never numbers or shapes."""
    def plain_text(i: int) -> bool:
        cells = [r[i] for r in rows if r[i]]
        return not numeric(rows, i) and not all(
            c.replace("x", "").replace(", ", "").isdigit() for c in cells)

    return [plain_text(i) for i in range(len(header))]


def _folded_widths(header: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Column widths of a compact table (no vertical rules, 2 characters between
    columns) whose text columns fold to share what the others leave, each at least
    _MIN_TEXT wide; None when that does not fit either."""
    fold = _foldable(header, rows)

    def fixed(i: int) -> int:
        longest_word = max((len(w) for w in header[i].split()), default=0)
        return max(longest_word, *(len(r[i]) for r in rows))

    widths = [0 if fold[i] else fixed(i) for i in range(len(header))]
    spare = width - 2 * (len(header) - 1) - sum(widths)  # two spaces between columns
    folding = [i for i in range(len(header)) if fold[i]]
    if not folding:
        return widths if spare >= 0 else None
    share = spare // len(folding)
    if share < _MIN_TEXT:
        return None
    for i in folding:
        widths[i] = min(share, fixed(i))
    return widths


def _layout(header: list[str], rows: list[list[str]], width: int | None
            ) -> list[str] | None:
    """Headers that let every column show its cells whole within ``width``: as they are,
    or wrapped to the widest cell of their column; None when even that is too wide
    (the caller then shows the rows one by one)."""
    if width is None:
        return header
    borders = 3 * len(header) + 1
    content = [max((len(r[i]) for r in rows), default=0) for i in range(len(header))]
    natural = [max(content[i], *(len(line) for line in h.split("\n")))
               for i, h in enumerate(header)]
    if sum(natural) + borders <= width:
        return header
    wrapped = [_wrap_header(h, max(content[i], 1)) for i, h in enumerate(header)]
    widths = [max(content[i], *(len(line) for line in h.split("\n")))
              for i, h in enumerate(wrapped)]
    return wrapped if sum(widths) + borders <= width else None


def to_rich(table: Table, width: int | None = None) -> Any:
    """A rich renderable of the table that fits ``width`` columns of text (None: any
    width): a table, with headers wrapped if they must be, or one small table per row
    (column, value) when the columns cannot fit side by side. Cells are plain Text: a
    layer called ``blocks[0]`` is never read as markup."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    header, rows, footer = cells(table)
    group_rows: list[int] = []
    if table.groups is not None:
        rows, group_rows = group_headers(rows, table.groups)
    all_rows = [*rows, *([footer] if footer else [])]
    fitted = _layout(header, all_rows, width)
    notes = [Text(note) for note in table.notes]
    if fitted is None and not group_rows:
        # Too wide: turned on its side (one column per row, named by its first cell) when
        # that fits, as a comparison of a few models does on a narrow terminal.
        turned_header = [header[0].replace("\n", " "), *(row[0] for row in all_rows)]
        turned = [[name.replace("\n", " "), *(row[i] for row in all_rows)]
                  for i, name in enumerate(header) if i]
        if _layout(turned_header, turned, width) == turned_header:
            side = RichTable(title=table.title, header_style="bold")
            for i, name in enumerate(turned_header):
                side.add_column(name, justify="right" if i and numeric(turned, i) else "left",
                                no_wrap=True)
            for row in turned:
                side.add_row(*map(Text, row))
            return Group(side, *notes) if notes else side
    widths = (_folded_widths(header, all_rows, width)
              if fitted is None and width is not None else None)
    if widths is not None:
        from rich import box

        compact = RichTable(title=table.title, header_style="bold", box=box.SIMPLE_HEAD,
                            padding=(0, 1), show_edge=False, pad_edge=False,
                            collapse_padding=True)
        for i, name in enumerate(header):
            compact.add_column(_wrap_header(name, widths[i]),
                               justify="right" if numeric(all_rows, i) else "left",
                               overflow="fold", min_width=widths[i], max_width=widths[i])
        _add_rows(compact, rows, group_rows, footer)
        return Group(compact, *notes) if notes else compact
    if fitted is None:
        parts: list[Any] = [Text(table.title, style="bold")]
        for index, row in enumerate(all_rows):
            if index in group_rows:
                parts.append(Text(row[0], style="bold"))
                continue
            card = RichTable(show_header=False, box=None, padding=(0, 1))
            card.add_column(style="bold", no_wrap=True)
            card.add_column(overflow="fold")
            for name, value in zip(header, row, strict=True):
                card.add_row(Text(name.replace("\n", " ")), Text(value))
            parts += [card, Text("")]
        return Group(*parts, *notes)
    rich = RichTable(title=table.title, header_style="bold")
    for i, name in enumerate(fitted):
        right = numeric(all_rows, i)
        rich.add_column(name, justify="right" if right else "left", no_wrap=True,
                        min_width=max((len(r[i]) for r in all_rows), default=0))
    _add_rows(rich, rows, group_rows, footer)
    return Group(rich, *notes) if notes else rich


def _add_rows(rich: Any, rows: list[list[str]], group_rows: Any,
              footer: list[str] | None) -> None:
    """The body rows (group header rows in bold), then the footer in a section of its
    own, into a rich table."""
    from rich.text import Text

    bold = set(group_rows)
    for index, row in enumerate(rows):
        rich.add_row(*map(Text, row), style="bold" if index in bold else None)
    if footer is not None:
        rich.add_section()
        rich.add_row(*map(Text, footer), style="bold")


def render_tables(tables: Sequence[Table], fmt: str, data: Mapping[str, Any] | None = None,
                  width: int | None = None) -> Any:
    """Tables in ``fmt``: CSV carries the first table; JSON is ``data`` (the result's
    plain data); Markdown, HTML and the terminal show the tables one after the other."""
    if fmt == "csv":
        return to_csv(tables[0])
    if fmt == "json":
        return to_json(data or {table.key: records(table) for table in tables})
    if fmt == "markdown":
        return "\n".join(to_markdown(table) for table in tables)
    if fmt == "html":
        from archstat.render.html import fragment

        return fragment(tables)
    from rich.console import Group

    return Group(*(to_rich(table, width) for table in tables))


def columns(specs: Iterable[tuple[str, str, Formatter, str]]) -> list[Column]:
    """Columns from (key, header, formatter, doc) tuples."""
    return [Column(*spec) for spec in specs]
