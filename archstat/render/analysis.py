"""An :class:`~archstat.analysis.Analysis` for people (terminal, Markdown) and for programs
(CSV: one row per layer record; JSON: settings, totals, layers, what was not counted)."""

from __future__ import annotations

from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table

#: Every column of the layers table: (header shown, formatter, what it holds). The CSV
#: carries them all with exact values; the terminal shows SHOWN (and TRAIN_SHOWN).
COLUMNS: dict[str, tuple[str, Any, str]] = {
    "name": ("layer", text.text, "module path (\"\" for the model's own functional code)"),
    "type": ("type", text.text, "module class"),
    "input_shape": ("input", text.shape_str,
                    "the module call's first input tensor, NxCxHxW (a stretch of a "
                    "container's own code shows the container's input)"),
    "output_shape": ("output", text.shape_str, "first output tensor"),
    "params": ("params", text.human,
               "elements of the parameters its ops read for the first time (counted by "
               "data flow, whichever module owns them)"),
    "activation_bytes": ("activation", text.human_bytes,
                         "bytes of new storage its ops allocate (views and in-place "
                         "results allocate nothing; max pooling's indices count)"),
    "flops": ("flops", text.human, "count in the analysis's convention"),
    **{f"flops_{kind}": (f"flops {kind}", text.human, f"the same, of {kind} ops")
       for kind in ("conv", "linear", "norm", "pool", "activation", "elementwise")},
    "backward_flops": ("backward", text.human,
                       "(training) the backward's ops attributed to it, same unit"),
    "backward_input_flops": ("bwd input", text.human,
                             "(training) of which the gradient of its input"),
    "backward_weight_flops": ("bwd weight", text.human,
                              "(training) of which its parameters' gradients"),
    "recompute_flops": ("recompute", text.human,
                        "(training) forward ops activation checkpointing runs again"),
    "unhandled_ops": ("unhandled", text.text,
                      "ops that did work the convention has no formula for (counted 0)"),
    "ops": ("ops", text.text, "the aten ops it ran, once each"),
    "live_bytes_after": ("live after", text.human_bytes,
                         "bytes of activations still live once it has run"),
    "receptive_field": ("RF", text.text,
                        "input pixels its first output's units see, the largest over the "
                        "paths (one side when square, else HxW; blank: no field)"),
    "receptive_field_min": ("field min", text.text,
                            "the same through the smallest single path (a shortcut)"),
    "receptive_field_jump": ("jump", text.text,
                             "input pixels between the fields of neighbouring units (the "
                             "effective stride)"),
    "receptive_field_start": ("start", text.text,
                              "first input pixel of the first unit's field (negative: in "
                              "the padding)"),
}
SHOWN = ("name", "type", "input_shape", "output_shape", "params", "activation_bytes", "flops")
TRAIN_SHOWN = ("backward_flops", "backward_input_flops", "backward_weight_flops",
               "recompute_flops")


def title(analysis: Any) -> str:
    shapes = ", ".join(s.text() for s in analysis.input_specs)
    mode = "  training" if analysis.train else ""
    ran = "  (ran on the CPU: data-dependent)" if analysis.executed else ""
    return (f"{analysis.model}  input {shapes}  batch {analysis.batch}  {analysis.dtype}  "
            f"convention {analysis.convention.name}{mode}{ran}")


def column(key: str, convention: Any = None) -> Column:
    header, fmt, doc = COLUMNS[key]
    if convention is not None and key in ("flops", *TRAIN_SHOWN):
        header = f"{header} ({convention.name})"
    return Column(key, header, fmt, doc)


def layers_table(analysis: Any) -> Table:
    """One row per layer record (or module, at a depth), with a totals row."""
    totals = analysis.totals
    shown = list(SHOWN)
    if analysis.train:
        shown += [k for k in TRAIN_SHOWN if k != "recompute_flops" or totals[k]]
    if any(row.get("receptive_field") is not None for row in analysis.rows):
        shown.append("receptive_field")  # a sequence model has none: no empty column
    rows = [dict(row, name=row["name"] or "(root)") for row in analysis.rows]
    footer = {key: totals[key] for key in shown if key in totals}
    footer["name"] = f"total ({text.plural(totals['layers'], 'layer')})"
    return Table("layers", title(analysis), [column(k, analysis.convention) for k in shown],
                 rows, data_columns=list(analysis.columns), footer=footer,
                 notes=[n for n in (training_summary(analysis),) if n])


def training_summary(analysis: Any) -> str | None:
    """The training step's total, one line, for a training analysis (else None)."""
    totals = analysis.totals
    if "train_step_flops" not in totals:
        return None
    unit = analysis.convention.name
    parts = [f"forward {text.human(totals['flops'])}",
             f"backward {text.human(totals['backward_flops'])}"]
    if totals["recompute_flops"]:
        parts.append(f"recompute {text.human(totals['recompute_flops'])}")
    if analysis.optimizer:
        step = text.human(totals["optimizer_flops"])
        parts.append(f"{analysis.optimizer} step {step}" + (
            "" if totals["optimizer_flops"] else f" ({unit} counts no elementwise work)"))
    return (f"training step: {text.human(totals['train_step_flops'])} {unit} = "
            + " + ".join(parts))


def unhandled_summary(analysis: Any) -> str | None:
    """One line naming the ops that did work the convention could not count, or None."""
    if not analysis.unhandled_ops:
        return None
    parts = [f"{r['op']} ({text.plural(r['calls'], 'call')} in {r['modules']})"
             for r in analysis.unhandled_ops]
    return (f"{len(parts)} op(s) did work that the '{analysis.convention.name}' convention "
            "has no formula for, counted as 0: " + "; ".join(parts))


def data(analysis: Any) -> dict[str, Any]:
    """What JSON carries: :meth:`~archstat.analysis.Analysis.data`."""
    return analysis.data()


def render_analysis(analysis: Any, fmt: str, width: int | None = None) -> Any:
    """The analysis in ``fmt``: CSV is the layers table with every column (the root's own
    code under its empty name, as in JSON)."""
    from archstat.render.table import render_tables, to_csv

    table = layers_table(analysis)
    if fmt == "csv":
        return to_csv(Table(table.key, table.title, table.columns, analysis.rows,
                            data_columns=list(analysis.columns)))
    if fmt == "json":
        return render_tables([table], fmt, data(analysis))
    return render_tables([table], fmt, width=width)

