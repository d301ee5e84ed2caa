"""Tables as HTML: the notebook display and the static report (``archstat report --html``).

One more format of the same views (:class:`~archstat.render.table.Table`): the cells are
the terminal's, through the same column formatters (human units), and each number's cell
carries the exact value in its ``title`` (an integer as an integer, a float in ``repr``
form), so hovering a ``1.58G`` shows ``1582425856``. Real table markup (``caption``,
``thead``, ``th scope``), nothing that needs colour or script to be read. A table longer
than :data:`COLLAPSE_ROWS` shows its first rows, a summary row and its totals, and folds
the rest into ``<details>``. :data:`STYLE` (scoped to ``.archstat``) scrolls a wide table
sideways on a phone; the fragments read without it. Same input, same bytes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from html import escape
from typing import Any

from archstat.render.table import Column, Table, cells, group_headers, numeric

#: A table with more rows than this is shown folded, under a summary line.
COLLAPSE_ROWS = 80
#: The rows a folded table shows before its summary row.
HEAD_ROWS = 20

#: The one stylesheet: scoped to ``.archstat``, no fonts to fetch, no colour that
#: carries meaning (totals are bold, group rows bold, numbers right-aligned).
STYLE = """\
.archstat{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.4;\
max-width:100%}
.archstat .scroll{overflow-x:auto;max-width:100%;margin:0 0 1em}
.archstat table{border-collapse:collapse;font-size:.85em;font-variant-numeric:tabular-nums}
.archstat caption{text-align:left;font-weight:600;padding:.3em 0;caption-side:top}
.archstat th,.archstat td{padding:.15em .6em;border-bottom:1px solid #ccc;\
white-space:nowrap;text-align:left;vertical-align:top}
.archstat thead th{border-bottom:2px solid #555;vertical-align:bottom}
.archstat tbody th{font-weight:normal}
.archstat .num{text-align:right}
.archstat .in{padding-left:1.6em}
.archstat tr.group th,.archstat tfoot th,.archstat tfoot td{font-weight:600}
.archstat tfoot th,.archstat tfoot td{border-top:2px solid #555}
.archstat [title]{cursor:help}
.archstat summary{cursor:pointer;padding:.3em 0}
.archstat ul.notes{margin:.2em 0 1em;padding-left:1.2em;font-size:.9em}
.archstat svg{max-width:100%;height:auto}
"""


def exact(value: Any) -> str | None:
    """The exact value of a number for a cell's ``title``: an integer as its digits, a
    float in ``repr`` form; None for what is not a number (text, shapes, missing)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy and torch scalars
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float):
        return None if math.isnan(value) else repr(value)
    return str(value)


def _attrs(**attrs: str | None) -> str:
    return "".join(f' {k.rstrip("_")}="{escape(v)}"' for k, v in attrs.items() if v)


def _cell(tag: str, content: str, value: Any, numeric_column: bool, extra: str = "",
          scope: str | None = None) -> str:
    classes = " ".join(c for c in ("num" if numeric_column else "", extra) if c)
    title = exact(value)
    return (f"<{tag}{_attrs(scope=scope, class_=classes or None, title=title)}>"
            f"{escape(content)}</{tag}>")


def _shown(table: Table) -> list[Column]:
    # as cells(): a paired column shows inside its partner's cell
    return [c for c in table.columns if c.key not in table.paired.values()]


def _row(shown: list[Column], texts: list[str], values: dict[str, Any], right: list[bool],
         indent: bool = False) -> str:
    out = []
    for i, (column, content) in enumerate(zip(shown, texts, strict=True)):
        head = i == 0
        out.append(_cell("th" if head else "td", content, values.get(column.key), right[i],
                         "in" if head and indent else "", "row" if head else None))
    return "<tr>" + "".join(out) + "</tr>"


def _body(table: Table, shown: list[Column], texts: list[list[str]], right: list[bool]
          ) -> list[tuple[str | None, str]]:
    """One (group, ``<tr>``) per record, in order; group rows not yet inserted."""
    if table.groups is None:
        return [(None, _row(shown, t, row, right))
                for t, row in zip(texts, table.rows, strict=True)]
    grouped, starts = group_headers(texts, table.groups)
    lines = iter(line for index, line in enumerate(grouped) if index not in starts)
    return [(group, _row(shown, [line[0].strip(), *line[1:]], row, right,
                         indent=group is not None))
            for line, row, group in zip(lines, table.rows, table.groups, strict=True)]


def _tbodies(rows: list[tuple[str | None, str]], width: int) -> str:
    """Rows in ``tbody`` elements, a new one under a header row wherever a group starts
    (and at the top, when the first row is inside a group)."""
    out = ["<tbody>"]
    current = None
    for index, (group, tr) in enumerate(rows):
        if group is not None and group != current:
            if index:
                out.append("</tbody><tbody>")
            out.append(f'<tr class="group"><th scope="rowgroup" colspan="{width}">'
                       f"{escape(group)}</th></tr>")
        current = group
        out.append(tr)
    return "\n".join([*out, "</tbody>"])


def to_html(table: Table, collapse: int | None = COLLAPSE_ROWS) -> str:
    """One table as an HTML fragment: the caption is its title, the first column heads
    the rows, the footer is ``tfoot``, notes follow as a list. With more rows than
    ``collapse`` (None: never), the first :data:`HEAD_ROWS` show, then a summary row
    (how many more, and where), the totals; the rest folds into ``<details>`` below, a
    table of its own under the same headers."""
    header, texts, footer = cells(table)
    shown = _shown(table)
    every = [*texts, *([footer] if footer else [])]
    right = [numeric(every, i) for i in range(len(header))]
    heads = "<thead><tr>" + "".join(
        f"<th{_attrs(scope='col', class_='num' if right[i] else None)}>"
        f"{'<br>'.join(escape(part) for part in name.split(chr(10)))}</th>"
        for i, name in enumerate(header)) + "</tr></thead>\n"
    rows = _body(table, shown, texts, right)
    folded = collapse is not None and len(rows) > collapse
    head, rest = (rows[:HEAD_ROWS], rows[HEAD_ROWS:]) if folded else (rows, [])
    body = _tbodies(head, len(header))
    if folded:
        body += (f'\n<tbody><tr class="more"><td colspan="{len(header)}">'
                 f"{escape(more(table, len(rest)))}</td></tr></tbody>")
    foot = ""
    if footer is not None:
        values = {c.key: v for c in shown if not isinstance(v := (table.footer or {}).get(
            c.key), str)}
        foot = "\n<tfoot>" + _row(shown, footer, values, right) + "</tfoot>"
    html = ('<div class="scroll"><table>'
            f"<caption>{escape(table.title)}</caption>{heads}{body}{foot}</table></div>\n")
    if folded:
        first, last = HEAD_ROWS + 1, len(rows)
        html += (f"<details><summary>rows {first}-{last} of {last}</summary>\n"
                 f'<div class="scroll"><table><caption>{escape(table.title)}, rows '
                 f"{first}-{last}</caption>{heads}{_tbodies(rest, len(header))}"
                 "</table></div>\n</details>\n")
    if table.notes:
        html += '<ul class="notes">' + "".join(
            f"<li>{escape(note)}</li>" for note in table.notes) + "</ul>\n"
    return html


def more(table: Table, hidden: int) -> str:
    """A folded table's summary row: how many rows are folded, and where they are."""
    return (f"... {hidden} more of {len(table.rows)} rows (rows {HEAD_ROWS + 1}-"
            f"{len(table.rows)}, below){'; totals:' if table.footer else ''}")


def fragment(tables: Sequence[Table], collapse: int | None = COLLAPSE_ROWS) -> str:
    """Tables one after the other in a ``<div class="archstat">``: what
    ``render(result, "html")`` returns. Without :data:`STYLE` it still reads as tables."""
    return ('<div class="archstat">\n'
            + "".join(to_html(t, collapse) for t in tables) + "</div>\n")


#: The report's one script: a click on a column header sorts the rows of a table that has
#: one body (not folded, not grouped) by that column, by the exact values of the cells'
#: titles where there are any; a second click reverses.
SORT_SCRIPT = """\
document.querySelectorAll("table").forEach(function (table) {
  if (table.tBodies.length !== 1) return;
  var body = table.tBodies[0];
  table.querySelectorAll("thead th").forEach(function (th, i) {
    var key = function (tr) {
      var cell = tr.children[i], t = cell.getAttribute("title") || cell.textContent;
      var n = t === "" ? NaN : Number(t.replace(/,/g, ""));
      return isNaN(n) ? [1, t] : [0, n];
    };
    var sort = function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      Array.from(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        var d = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
        return up ? d : -d;
      }).forEach(function (tr) { body.appendChild(tr); });
    };
    th.tabIndex = 0;
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
  });
});
"""


def page(title: str, body: str, script: bool = True) -> str:
    """A whole, self-contained HTML page: :data:`STYLE` inline, no external resource,
    and (``script``) the sorting script at the end."""
    tail = f"<script>\n{SORT_SCRIPT}</script>\n" if script else ""
    return ("<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>\n{STYLE}"
            "body{margin:1em auto;padding:0 1em;max-width:80em}\n"
            "</style>\n</head>\n"
            f'<body class="archstat">\n{body}{tail}</body>\n</html>\n')
