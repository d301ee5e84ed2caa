"""Turn result tables into text: CSV, JSON, Markdown and rich tables.

Pure functions of their input; nothing here counts anything and nothing prints.
CSV and JSON carry exact integers and are byte-for-byte deterministic; the human
formats (rich, Markdown) use human units.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

FORMATS = ("table", "csv", "json", "markdown")


def shape_str(shape: Any) -> str:
    """``(1, 3, 224, 224)`` -> ``1x3x224x224``; None -> ``""``."""
    if shape is None or (isinstance(shape, float) and math.isnan(shape)):
        return ""
    return "x".join(str(int(d)) for d in shape)


def _plain(value: Any) -> Any:
    """A JSON/CSV-ready scalar: numpy ints to int, tuples (shapes) to lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def input_shapes(shapes: Sequence[Sequence[int]]) -> list[Any]:
    """Input shapes for JSON: ``[3, 224, 224]`` for one input, a list of lists for several."""
    return list(shapes[0]) if len(shapes) == 1 else [list(s) for s in shapes]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a DataFrame as plain dicts (ints stay ints, shapes become lists)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _csv_cell(value: Any) -> Any:
    if isinstance(value, tuple):
        return shape_str(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return _plain(value)


def to_csv(frame: pd.DataFrame) -> str:
    """CSV with a header row, ``\\n`` line ends, shapes as ``1x3x224x224`` and floats
    in ``repr`` form (shortest round-trip, so the same on every machine)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(frame.columns)
    for row in frame.itertuples(index=False):
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


def to_json(data: Mapping[str, Any]) -> str:
    """Indented JSON with keys in the given order and a trailing newline."""
    return json.dumps(data, indent=2, default=_plain) + "\n"


def human(value: float, unit: str = "", base: int = 1000, digits: int = 3) -> str:
    """``15470264320`` -> ``15.5G``; with ``base=1024`` and unit ``B``, ``1.2MiB``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    prefixes = ["", "K", "M", "G", "T", "P"]
    scaled, index = float(value), 0
    while abs(scaled) >= base and index < len(prefixes) - 1:
        scaled /= base
        index += 1
    prefix = prefixes[index] + ("i" if base == 1024 and index else "")
    exact = index == 0 and float(value).is_integer()
    text = str(int(value)) if exact else f"{scaled:.{digits}g}"
    return f"{text}{prefix}{unit}"


def human_bytes(value: float) -> str:
    return human(value, "B", base=1024)


Formatter = Callable[[Any], str]


def display_rows(
    frame: pd.DataFrame, formats: Mapping[str, Formatter]
) -> tuple[list[str], list[list[str]]]:
    """Header and string cells for a human table: each column through its formatter
    (shapes through shape_str, other values through str)."""
    header = list(frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for col, value in zip(header, row, strict=True):
            fmt = formats.get(col)
            if fmt is not None:
                cells.append(fmt(value))
            elif isinstance(value, tuple):
                cells.append(shape_str(value))
            else:
                cells.append("" if value is None else str(value))
        rows.append(cells)
    return header, rows


def _numeric_column(rows: Sequence[Sequence[str]], i: int) -> bool:
    """Whether every non-empty cell of column ``i`` reads as a (signed) number."""
    cells = [r[i].lstrip("+-<>") for r in rows if r[i]]
    return bool(cells) and all(c[:1].isdigit() for c in cells)


def to_markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; numeric-looking columns are right-aligned."""
    rows = [list(r) for r in rows]
    align = ["---:" if _numeric_column(rows, i) else "---" for i in range(len(header))]
    header = [h.replace("\n", " ") for h in header]  # a two-line rich header is one here
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def rich_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    title: str | None = None,
    footer: Sequence[str] | None = None,
    caption: str | None = None,
    bold_rows: Iterable[int] = (),
) -> Any:
    """A rich ``Table`` (returned, not printed); an optional totals row goes last.

    Cells are plain ``Text``: a layer called ``blocks[0]`` is not rich markup, and
    skipping the markup parser makes a 500-row table print twice as fast."""
    from rich.table import Table
    from rich.text import Text

    rows = [list(r) for r in rows]
    bold = set(bold_rows)
    table = Table(title=title, caption=caption, show_lines=False, header_style="bold")
    for i, name in enumerate(header):
        is_num = _numeric_column(rows, i)
        # The first column names the row: never wrap it.
        table.add_column(name, justify="right" if is_num else "left", no_wrap=is_num or not i)
    for index, row in enumerate(rows):
        table.add_row(*map(Text, row), style="bold" if index in bold else None)
    if footer is not None:
        table.add_section()
        table.add_row(*(Text(c) for c in footer), style="bold")
    return table


@dataclass
class Table:
    """A result table ready for every format.

    ``frame`` holds the exact values that CSV and JSON carry; ``formats`` (column ->
    formatter) and ``headers`` (column -> display name) say how the terminal and Markdown
    show them; ``footer`` is a totals row of display strings; ``notes`` are lines printed
    under the table and listed in JSON; ``groups`` names, per row, the module the terminal
    groups that row under (None: not grouped); ``meta`` leads the JSON object and ``key``
    names its rows there; ``csv_columns``, when given, are the columns CSV carries, in
    that order (JSON and the terminal show every column); ``paired`` maps a column to a
    second one that the terminal shows in parentheses in the same cell (a ratio beside
    its figure) instead of in a column of its own.
    """

    frame: pd.DataFrame
    title: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    formats: Mapping[str, Formatter] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    footer: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    groups: list[str | None] | None = None
    key: str = "rows"
    csv_columns: list[str] | None = None
    paired: Mapping[str, str] = field(default_factory=dict)


def _grouped(rows: list[list[str]], groups: list[str | None]) -> tuple[list[list[str]], list[int]]:
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


def _pair_cells(header: list[str], row: list[str], paired: Mapping[str, str]) -> list[str]:
    cells = dict(zip(header, row, strict=True))
    out = []
    for name in header:
        if name in paired.values():
            continue
        second = cells.get(paired.get(name, ""), "")
        out.append(f"{cells[name]} ({second})" if second else cells[name])
    return out


def table_view(table: Table) -> tuple[list[str], list[list[str]], list[int]]:
    """Display header, rows (group header rows inserted) and the indices of group rows."""
    header, rows = display_rows(table.frame, table.formats)
    if table.paired:
        rows = [_pair_cells(header, row, table.paired) for row in rows]
        header = [h for h in header if h not in table.paired.values()]
    header = [table.headers.get(h, h) for h in header]
    if table.groups is None:
        return header, rows, []
    rows, group_rows = _grouped(rows, table.groups)
    return header, rows, group_rows


def render_tables(tables: Sequence[Table], fmt: str) -> Any:
    """Tables in one of FORMATS: CSV carries the first table only, JSON all of them under
    their keys (with the first table's meta and everyone's notes), Markdown and the
    terminal show them one after the other with their notes."""
    if fmt == "csv":
        first = tables[0]
        return to_csv(first.frame[first.csv_columns or list(first.frame.columns)])
    notes = [note for table in tables for note in table.notes]
    if fmt == "json":
        data = dict(tables[0].meta)
        for table in tables:
            data[table.key] = records(table.frame)
        return to_json({**data, "notes": notes})
    parts: list[Any] = []
    for table in tables:
        header, rows, group_rows = table_view(table)
        if fmt == "markdown":
            footer = [table.footer] if table.footer else []
            parts.append(f"**{table.title}**\n\n" + to_markdown(header, [*rows, *footer]))
        else:
            parts.append(rich_table(header, rows, title=table.title, footer=table.footer,
                                    bold_rows=group_rows))
    if fmt == "markdown":
        return "\n".join(parts) + "".join(f"\n- {note}" for note in notes) + ("\n" if notes
                                                                              else "")
    from rich.console import Group
    from rich.text import Text

    return Group(*parts, *(Text(note) for note in notes))


def render_table(table: Table, fmt: str) -> Any:
    """One Table in one of FORMATS (see render_tables)."""
    return render_tables([table], fmt)


_LAYER_DISPLAY = {
    "name": "layer", "type": "type", "input_shape": "input", "output_shape": "output",
    "params": "params", "activation_bytes": "activation", "flops": "flops",
}


_TRAIN_DISPLAY = {"backward_flops": "backward", "backward_input_flops": "bwd input",
                  "backward_weight_flops": "bwd weight", "recompute_flops": "recompute"}


def analysis_view(analysis: Any) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and totals row of an Analysis for a human table (human units); a
    training analysis adds its backward columns (recompute only when there is some)."""
    shown = dict(_LAYER_DISPLAY)
    totals = analysis.totals
    if "backward_flops" in analysis.layers:
        shown.update({k: v for k, v in _TRAIN_DISPLAY.items()
                      if k != "recompute_flops" or totals["recompute_flops"]})
    frame = analysis.layers[list(shown)].rename(columns=shown)
    frame = frame.assign(layer=frame["layer"].replace("", "(root)"))
    counts = ["flops", *(v for k, v in _TRAIN_DISPLAY.items() if v in frame)]
    header, rows = display_rows(
        frame, {"params": human, "activation": human_bytes, **dict.fromkeys(counts, human)}
    )
    header[6] = f"flops ({analysis.convention})"
    footer = [f"total ({_count(totals['layers'], 'layer')})", "", "", "",
              human(totals["params"]), human_bytes(totals["activation_bytes"]),
              human(totals["flops"]),
              *(human(totals[k]) for k, v in _TRAIN_DISPLAY.items() if v in frame)]
    return header, rows, footer


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def training_summary(analysis: Any) -> str | None:
    """The training step's total, one line, for a training analysis (else None)."""
    totals = analysis.totals
    if "train_step_flops" not in totals:
        return None
    unit = analysis.convention
    parts = [f"forward {human(totals['flops'])}", f"backward {human(totals['backward_flops'])}"]
    if totals["recompute_flops"]:
        parts.append(f"recompute {human(totals['recompute_flops'])}")
    if analysis.optimizer:
        step = human(totals["optimizer_flops"])
        parts.append(f"{analysis.optimizer} step {step}" + (
            "" if totals["optimizer_flops"] else f" ({unit} counts no elementwise work)"))
    return f"training step: {human(totals['train_step_flops'])} {unit} = " + " + ".join(parts)


def analysis_title(analysis: Any) -> str:
    shapes = ", ".join(shape_str(s) for s in analysis.input_shape)
    mode = "  training" if "backward_flops" in analysis.layers else ""
    return (f"{analysis.model}  input {shapes}  batch {analysis.batch}  "
            f"{analysis.dtype}  convention {analysis.convention}{mode}")


def render_analysis(analysis: Any, fmt: str) -> Any:
    """An Analysis in one of FORMATS: a rich Table for ``table``, text otherwise."""
    if fmt == "csv":
        return analysis.to_csv()
    if fmt == "json":
        return analysis.to_json()
    header, rows, footer = analysis_view(analysis)
    summary = training_summary(analysis)
    if fmt == "markdown":
        return (f"**{analysis_title(analysis)}**\n\n" + to_markdown(header, [*rows, footer])
                + (f"\n{summary}\n" if summary else ""))
    table = rich_table(header, rows, title=analysis_title(analysis), footer=footer)
    if summary is None:
        return table
    from rich.console import Group

    return Group(table, summary)


def unhandled_summary(analysis: Any) -> str | None:
    """One line naming the ops that did work the convention could not count, or None."""
    if analysis.unhandled.empty:
        return None
    parts = [f"{r.op} ({r.calls} calls in {r.modules})" for r in analysis.unhandled.itertuples()]
    return (f"{len(parts)} op(s) did work that the '{analysis.convention}' convention has no "
            f"formula for, counted as 0: " + "; ".join(parts))


# -- archstat bottleneck ------------------------------------------------------------------


def saving(ratio: float) -> str:
    """A saving ratio (alternative / built) as ``9.68x (89.7%)``: times cheaper, and the
    share of the alternative's cost saved (negative when the built layers cost more)."""
    return f"{ratio:.3g}x ({1 - 1 / ratio:.1%})"


def _g(value: float) -> str:
    return f"{value:.3g}"


# table -> (title, {column: (display name, formatter or None)}), in display order
_BOTTLENECK_TABLES: dict[str, tuple[str, dict[str, tuple[str, Formatter | None]]]] = {
    "pairs": ("1x1 reduce -> kxk pairs vs the kxk on the 1x1's input", {
        "location": ("pair (1x1 -> kxk)", None), "input_shape": ("input", None),
        "in_channels": ("C_in", None), "reduced_channels": ("reduced", None),
        "out_channels": ("C_out", None), "kernel": ("kernel", None),
        "macs": ("macs", human), "direct_macs": ("direct macs", human),
        "macs_saving_ratio": ("macs saving", saving), "params": ("params", human),
        "direct_params": ("direct params", human),
        "params_saving_ratio": ("params saving", saving),
    }),
    "modules": ("modules vs naive inception (Figure 2(a)) or basic block", {
        "module": ("module", None), "kind": ("kind", None), "input_shape": ("input", None),
        "in_channels": ("C_in", None), "out_channels": ("C_out", None),
        "naive_out_channels": ("naive C_out", None), "macs": ("conv macs", human),
        "naive_macs": ("naive macs", human), "macs_saving_ratio": ("macs saving", saving),
        "params": ("conv params", human), "naive_params": ("naive params", human),
        "params_saving_ratio": ("params saving", saving),
    }),
    "lecture": ("blocks in MACs / (H W C^2), C the 3x3's width", {
        "module": ("module", None), "width": ("C", None), "output_size": ("HxW", None),
        "macs_hwc2": ("bottleneck block", _g),
        "basic_macs_hwc2": ("basic block at width C", _g),
    }),
    "network": ("network vs naive", {
        "model": ("model", None), "variant": ("variant", None), "macs": ("macs", human),
        "params": ("params", human),
    }),
}


def bottleneck_view(report: Any) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each non-empty table of a BottleneckReport, human units."""
    shapes = ", ".join(shape_str(s) for s in report.input_shape)
    views = []
    for name, frame in report.tables.items():
        if frame.empty:
            continue
        title, columns = _BOTTLENECK_TABLES[name]
        shown = frame[list(columns)].rename(columns={k: v[0] for k, v in columns.items()})
        if "module" in shown:
            shown = shown.assign(module=shown["module"].replace("", "(root)"))
        header, rows = display_rows(shown, {v[0]: v[1] for v in columns.values() if v[1]})
        views.append((f"{report.model}  input {shapes}  batch {report.batch}: {title}",
                      header, rows))
    return views


def render_bottleneck(report: Any, fmt: str) -> Any:
    """A BottleneckReport in one of FORMATS: rich tables for ``table``, text otherwise
    (``csv`` needs a single level)."""
    if fmt == "csv":
        return report.to_csv()
    if fmt == "json":
        return report.to_json()
    views = bottleneck_view(report)
    if fmt == "markdown":
        return "\n".join(f"**{title}**\n\n{to_markdown(header, rows)}"
                         for title, header, rows in views)
    from rich.console import Group

    return Group(*(rich_table(header, rows, title=title) for title, header, rows in views))


# -- archstat memory ---------------------------------------------------------------------


_MEMORY_ROWS = [  # (field, label, note) of the memory summary, in reading order
    ("params_bytes", "params", ""),
    ("buffers_bytes", "buffers", "batch norm running statistics and the like"),
    ("input_bytes", "input", "the caller's tensor, not an activation"),
    ("peak_activation_bytes", "peak activations", "most activation storage live at once"),
    ("measured_tensor_peak_bytes", "measured peak activations", "a real CPU run"),
    ("allocator_peak_bytes", "allocator peak (CPU, modelled)", "peak activations with the "
     "CPU kernels' workspaces"),
    ("measured_allocator_peak_bytes", "measured allocator peak", "a real CPU run, the "
     "profiler's allocations"),
    ("saved_activation_bytes", "saved activations", "kept by autograd for backward"),
    ("backward_peak_bytes", "forward+backward peak", "activations, saved activations and "
     "gradients live at once"),
    ("gradient_bytes", "gradients", "one per trainable parameter the forward uses"),
    ("optimizer_bytes", "optimizer state", ""),
    ("inference_peak_bytes", "inference peak", "params + buffers + input + peak activations"),
    ("training_peak_bytes", "training peak", "params + buffers + input + optimizer state "
     "+ max(forward+backward peak, optimizer step)"),
    ("train_step_macs", "training step", "forward + backward multiply-accumulates of the "
     "same step"),
]
#: measured row -> the estimate it checks
_MEASURED_OF = {"measured_tensor_peak_bytes": "peak_activation_bytes",
                "measured_allocator_peak_bytes": "allocator_peak_bytes"}


def memory_view(report: Any) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The human tables of a MemoryReport (human units): ``summary`` (first batch),
    ``live`` (what is live at its peak) and, for several batches or a budget, ``batches``."""
    first = report.batches.iloc[0]
    summary = []
    for key, label, note in _MEMORY_ROWS:
        if key not in first.index:
            continue
        if key == "peak_activation_bytes":
            note = f"{note}, in {first['peak_layer']}"
        elif key == "optimizer_bytes":
            note = report.optimizer
        elif key == "allocator_peak_bytes" and report.cpu is not None:
            note = f"{note}, {report.cpu.threads} threads, {report.cpu.capability}"
        elif key in _MEASURED_OF:
            note = f"{note}; estimate {_against(first[_MEASURED_OF[key]], first[key])}"
        size = human(first[key]) + " MACs" if key == "train_step_macs" else human_bytes(first[key])
        summary.append([label, size, note])
    views = {"summary": (["quantity", "size", "note"], summary)}
    views["live"] = (["made by", "tensors", "size", "largest"],
                     _live_rows(report.estimates[0].live_at_peak))
    if len(report.estimates) > 1 or report.budget_bytes is not None:
        frame = report.batches.drop(columns=["params_bytes", "buffers_bytes", "input_bytes"])
        frame = frame.rename(columns=_BATCH_HEADERS)
        sizes = {c: human_bytes for c in frame.columns
                 if c not in ("batch", "peak layer", "fits", "train_step_macs")}
        sizes["train_step_macs"] = human
        views["batches"] = display_rows(frame, {**sizes, "fits": lambda v: "yes" if v else "no"})
    return views


_BATCH_HEADERS = {
    "peak_activation_bytes": "peak activations", "peak_layer": "peak layer",
    "saved_activation_bytes": "saved activations", "gradient_bytes": "gradients",
    "backward_peak_bytes": "fwd+bwd peak",
    "optimizer_bytes": "optimizer state", "inference_peak_bytes": "inference peak",
    "training_peak_bytes": "training peak", "allocator_peak_bytes": "allocator peak",
    "measured_tensor_peak_bytes": "measured peak act.",
    "measured_allocator_peak_bytes": "measured alloc. peak",
}


def _live_rows(groups: Sequence[Any], limit: int = 10) -> list[list[str]]:
    """The ``limit`` largest groups live at the peak, in execution order, then one row
    summing the rest."""
    largest = set(sorted(range(len(groups)), key=lambda i: -groups[i].bytes)[:limit])
    rows = [[g.layer, str(g.tensors), human_bytes(g.bytes), f"{shape_str(g.shape)} {g.dtype}"]
            for i, g in enumerate(groups) if i in largest]
    rest = [g for i, g in enumerate(groups) if i not in largest]
    if rest:
        rows.append([f"({len(rest)} more layers)", str(sum(g.tensors for g in rest)),
                     human_bytes(sum(g.bytes for g in rest)), ""])
    return rows


def memory_title(report: Any) -> str:
    shapes = ", ".join(shape_str(s) for s in report.input_shape)
    mode = f"training step, {report.optimizer}" if report.train else "inference"
    if report.executed:
        mode += " (ran on the CPU: the forward needs real values)"
    return (f"{report.model}  input {shapes}  batch {report.estimates[0].batch}  "
            f"{report.dtype}  {mode}")


def _against(estimate: int, measured: int) -> str:
    """``exact``, or the estimate's ratio to the measurement (``0.713x``)."""
    if estimate == measured:
        return "exact"
    return f"{estimate / measured:.3f}x" if measured else "-"


def memory_allocator_line(report: Any) -> str | None:
    """What the allocator-level estimate leaves out, in a line (None if nothing or in
    training): ``allocator peak, not modelled: oneDNN LSTM scratchpad (...), 2 ops``."""
    if report.cpu is None:
        return None
    missing = report.estimates[0].allocator_unmodelled
    return f"allocator peak, not modelled: {'; '.join(missing)}" if missing else None


def memory_fit_line(report: Any) -> str | None:
    """``largest batch within 24GiB: 181``, or None without a budget."""
    if report.budget_bytes is None:
        return None
    budget = human_bytes(report.budget_bytes)
    if not report.largest_batch:
        return f"does not fit in {budget} even at batch 1"
    if report.search_capped:
        return (f"largest batch within {budget}: at least {report.largest_batch} "
                f"(the search stops there)")
    return f"largest batch within {budget}: {report.largest_batch}"


def render_memory(report: Any, fmt: str) -> Any:
    """A MemoryReport in one of FORMATS: rich renderables for ``table``, text otherwise."""
    if fmt == "csv":
        return report.to_csv()
    if fmt == "json":
        return report.to_json()
    views = memory_view(report)
    titles = {"summary": memory_title(report), "live": "live at the peak",
              "batches": "by batch size"}
    lines = [line for line in (memory_allocator_line(report), memory_fit_line(report)) if line]
    if fmt == "markdown":
        parts = [f"**{titles[k]}**\n\n" + to_markdown(*v) for k, v in views.items()]
        return "\n".join(parts) + "".join(f"\n{line}\n" for line in lines)
    from rich.console import Group
    from rich.text import Text

    tables = [rich_table(*v, title=titles[k]) for k, v in views.items()]
    return Group(*tables, *(Text(line) for line in lines))


# -- archstat crosscheck -----------------------------------------------------------------


PEER_LABELS = {"torch": "FlopCounterMode", "fvcore": "fvcore"}

_REASON_LABELS = {
    "no_formula": "no formula", "fused_kernel": "fused kernel", "no_handle": "no handle",
    "no_rule": "no rule", "different_ops": "other ops", "unexplained": "UNEXPLAINED",
}

# What archstat counts in an op FlopCounterMode has no formula for (conventions'
# EXTRA_MATMUL_FLOPS).
_EXTRA_WORK = {
    "aten._scaled_dot_product_flash_attention_for_cpu": "its QK^T and AV products",
    "aten._addmm_activation": "its matrix product (a linear layer with a fused activation)",
    "aten.mkldnn_rnn_layer": "its input and hidden-state products at every step",
}


def exact(value: int) -> str:
    """An exact integer with thousands separators: ``10,872,225,792``."""
    return f"{value:,}"


def _signed(value: int) -> str:
    return f"{value:+,}" if value else "0"


def _calls(ops: Sequence[Any], what: str = "") -> str:
    """``aten::lstm (skipped; 2 calls), ...``"""
    lead = f"{what}; " if what else ""
    return ", ".join(f"{o.op} ({lead}{o.calls} call{'s' if o.calls != 1 else ''})"
                     for o in ops)


def _op_counts(ops: Sequence[Any], side: str) -> str:
    return ", ".join(f"{o.op} {exact(getattr(o, side))}" for o in ops
                     if getattr(o, side) is not None and (getattr(o, side) or side == "archstat"))


def reason_text(reason: Any, peer: str) -> str:
    """One reason of a crosscheck as a sentence (counts exact, in the peer's unit)."""
    label = PEER_LABELS[peer]
    where = reason.module or "(root)"
    if reason.kind == "no_formula":
        op = reason.peer_ops[0].op
        work = _EXTRA_WORK.get(op, "its matrix products")
        return (f"{where}: {label} has no formula for {_calls(reason.peer_ops)} and counts "
                f"it 0; archstat counts {work}: {exact(reason.archstat)}")
    if reason.kind == "fused_kernel":
        outside = (f" ({label} counts {exact(reason.peer)} of them, run outside the kernel)"
                   if reason.peer else "")
        return (f"{where}: {label} sees {_calls(reason.peer_ops)} as one op with no formula "
                f"and counts it 0; archstat follows its CPU kernel and counts the ops inside: "
                f"{_op_counts(reason.ops, 'archstat')}{outside}")
    if reason.kind == "no_handle":
        return (f"{where}: {label} has no handle for {_calls(reason.peer_ops, 'skipped')}; "
                f"archstat counts {exact(reason.archstat)} of {reason.op_kind} work here that "
                f"{label} does not (the {reason.op_kind} work on each side: archstat "
                f"{_op_counts(reason.ops, 'archstat')}; {label} "
                f"{_op_counts(reason.ops, 'peer') or '0'})")
    if reason.kind == "no_rule":
        ops = ", ".join(o.op for o in reason.ops)
        return (f"{where}: archstat's fvcore convention has no rule for {ops} and counts it "
                f"0; {label} counts its {exact(reason.peer)} multiply-adds")
    if reason.kind == "different_ops":
        return (f"{where}: the same count under other ops, {exact(reason.archstat)}: "
                f"archstat {_op_counts(reason.ops, 'archstat')}, {label} "
                f"{_op_counts(reason.ops, 'peer')} (the meta trace took another kernel than "
                f"the CPU run)")
    skipped = f"; {label} skipped {_calls(reason.peer_ops)}" if reason.peer_ops else ""
    what = f" in {reason.op_kind} work" if reason.op_kind else ""
    return (f"{where}: UNEXPLAINED difference{what} of {_signed(reason.difference)}: archstat "
            f"{exact(reason.archstat)} ({_op_counts(reason.ops, 'archstat') or '-'}), {label} "
            f"{exact(reason.peer)} ({_op_counts(reason.ops, 'peer') or '-'}){skipped}")


def crosscheck_notes(check: Any) -> list[str]:
    """The sentences under one peer's table: why the runs differ, module by module, then
    the totals."""
    label = PEER_LABELS[check.peer]
    if check.error is not None:
        return [f"{label} could not run: {check.error}"]
    notes = [f"{m or '(root)'}: compared as a whole with {', '.join(subs)}, which only one "
             "of the two runs called (they took different code paths there)"
             for m, subs in check.merged.items()]
    notes += [reason_text(r, check.peer) for r in check.reasons]
    verdict = ("every difference explained" if check.explained
               else f"{_signed(check.unexplained)} UNEXPLAINED")
    notes.append(f"total ({check.convention.unit}): archstat {exact(check.archstat_total)}, "
                 f"{label} {exact(check.peer_total)}, difference {_signed(check.difference)}: "
                 f"{verdict}")
    return notes


def crosscheck_view(result: Any, check: Any) -> tuple[str, list[str], list[list[str]],
                                                       list[str]]:
    """Title, header, rows and totals row of one peer's table (exact counts)."""
    label = PEER_LABELS[check.peer]
    shapes = ", ".join(shape_str(s) for s in result.analysis.input_shape)
    title = (f"{result.model}  input {shapes}  batch {result.analysis.batch}  "
             f"{result.analysis.dtype}: archstat ({check.convention.name}) vs {label}")
    kinds: dict[str, list[str]] = {}
    for reason in check.reasons:
        kinds.setdefault(reason.module, []).append(_REASON_LABELS[reason.kind])
    rows = []
    for row in check.modules.to_dict("records"):
        name = row["module"] or "(root)"
        if row["module"] in check.merged:
            name += f" (+{len(check.merged[row['module']])})"
        rows.append([name, row["type"], exact(row["archstat_flops"]), exact(row["peer_flops"]),
                     _signed(row["difference"]),
                     ", ".join(dict.fromkeys(kinds.get(row["module"], [])))])
    header = ["module", "type", "archstat", label, "difference", "reason"]
    footer = ["total", "", exact(check.archstat_total), exact(check.peer_total),
              _signed(check.difference), "" if check.explained else "UNEXPLAINED"]
    return title, header, rows, footer


def render_crosscheck(result: Any, fmt: str) -> Any:
    """A CrossCheck in one of FORMATS: a table per peer with the reasons under it (rich
    renderables for ``table``, text otherwise)."""
    if fmt == "csv":
        return result.to_csv()
    if fmt == "json":
        return result.to_json()
    parts: list[Any] = []
    for check in result.peers:
        title, header, rows, footer = crosscheck_view(result, check)
        notes = crosscheck_notes(check)
        if fmt == "markdown":
            table = to_markdown(header, [*rows, footer]) if check.error is None else ""
            parts.append(f"**{title}**\n\n{table}" + "".join(f"\n- {n}" for n in notes) + "\n")
        else:
            from rich.text import Text

            if check.error is None:
                parts.append(rich_table(header, rows, title=title, footer=footer))
            parts.extend(Text(n) for n in notes)
    if fmt == "markdown":
        return "\n".join(parts)
    from rich.console import Group

    return Group(*parts)
