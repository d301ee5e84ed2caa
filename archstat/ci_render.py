"""Check reports and diffs as text for people and for CI systems: rich tables, JSON,
GitHub Actions annotations, JUnit XML, CSV and Markdown.

Pure functions of a :class:`~archstat.budget.checks.CheckReport` or a
:class:`~archstat.snapshot.DiffReport`; nothing here counts anything and nothing prints.
JSON, JUnit, GitHub and CSV output carry exact integers and are deterministic (no
timestamps, no timings).
"""

from __future__ import annotations

from typing import Any

from archstat import render
from archstat.units import format_percent, format_quantity

CHECK_FORMATS = ("table", "json", "github", "junit")
_STATUS_TEXT = {"pass": "pass", "fail": "FAIL", "error": "error"}


def _signed(value: int, unit: str) -> str:
    return ("+" if value > 0 else "") + format_quantity(value, unit)


def check_summary(report: Any) -> str:
    errors = report.count("error")
    return (f"{report.display}: {report.count('pass')} passed, {report.count('fail')} "
            f"failed, {errors} {'error' if errors == 1 else 'errors'}")


def _check_cells(result: Any) -> list[str]:
    pct = result.headroom_pct
    return [
        result.label, result.metric or "(analysis)", result.limit_text,
        "" if result.actual is None else result.show(result.actual),
        "" if result.headroom is None else result.show(result.headroom),
        "" if pct is None else ("-" if pct < 0 else "") + format_percent(abs(pct)),
        _STATUS_TEXT[result.status],
    ]


CHECK_HEADER = ["model", "metric", "budget", "actual", "headroom", "headroom %", "status"]


def check_table(report: Any) -> Any:
    """A rich Table, one row per limit, and the summary line under it."""
    from rich.console import Group
    from rich.text import Text

    rows = [_check_cells(r) for r in report.results]
    return Group(render.rich_table(CHECK_HEADER, rows, title="archstat check"),
                 Text(check_summary(report)))


def check_json(report: Any) -> str:
    """``{"file", "passed", "failed", "errors", "exit_code", "results": [...]}``; every
    number in a result is an exact integer in its metric's unit, except
    ``headroom_pct`` (percent of the limit, a float: never rounded to a misleading 0)."""
    results = [{
        "model": r.label, "metric": r.metric, "key": r.key, "limit": r.limit,
        "limit_text": r.limit_text, "actual": r.actual, "headroom": r.headroom,
        "headroom_pct": None if r.headroom_pct is None else float(r.headroom_pct),
        "status": r.status, "line": r.line, "message": r.message,
    } for r in report.results]
    return render.to_json({"file": report.display, "passed": report.count("pass"),
                           "failed": report.count("fail"), "errors": report.count("error"),
                           "exit_code": report.exit_code, "results": results})


def _escape_data(text: str) -> str:
    # GitHub's workflow-command encoding (actions/toolkit, command.ts)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def check_github(report: Any) -> str:
    """One ``::error file=...,line=...,title=...::message`` workflow command per failed
    limit or broken entry, pointing at its line in the budget file, then the summary."""
    lines = []
    for r in report.results:
        if r.status == "pass":
            continue
        title = f"archstat {'budget exceeded' if r.status == 'fail' else 'error'}: {r.label}"
        lines.append(f"::error file={_escape_property(report.display)},line={r.line},"
                     f"title={_escape_property(title)}::{_escape_data(r.message)}")
    lines.append(check_summary(report))
    return "\n".join(lines) + "\n"


def check_junit(report: Any) -> str:
    """A JUnit XML report: one testsuite for the file, one testcase per entry and
    metric (classname = the entry's label, name = the metric), a ``failure`` for an
    exceeded limit and an ``error`` for an entry that could not be evaluated."""
    import xml.etree.ElementTree as ET

    counts = {"tests": str(len(report.results)), "failures": str(report.count("fail")),
              "errors": str(report.count("error")), "skipped": "0"}
    root = ET.Element("testsuites", {"name": "archstat check", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": report.display, **counts})
    for r in report.results:
        case = ET.SubElement(suite, "testcase", {
            "classname": r.label, "name": r.metric or "analysis",
            "file": report.display, "line": str(r.line)})
        if r.status == "fail":
            detail = ET.SubElement(case, "failure", {"message": r.message,
                                                     "type": "BudgetExceeded"})
            detail.text = (f"limit {r.key} = {r.limit_text} ({r.limit}), actual {r.actual}, "
                           f"headroom {r.headroom}")
        elif r.status == "error":
            ET.SubElement(case, "error", {"message": r.message, "type": "ArchstatError"})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def render_check(report: Any, fmt: str) -> Any:
    """A CheckReport in one of CHECK_FORMATS: a rich Table for ``table``, text otherwise."""
    renderers = {"table": check_table, "json": check_json, "github": check_github,
                 "junit": check_junit}
    return renderers[fmt](report)


# --- diffs

def diff_frame(report: Any) -> Any:
    """One row per changed, added or removed layer, then one ``total`` row per model:
    before/after pairs of params (elements), flops (the snapshot's convention) and
    activation_bytes (bytes); exact integers, 0 for a side that does not exist."""
    import pandas as pd

    metrics = ("params", "flops", "activation_bytes")
    rows = []
    for model in report.models:
        for c in model.changes:
            row = {"model": model.model, "change": c.change, "layer": c.name, "type": c.type}
            for m in metrics:
                row[f"{m}_before"] = (c.before or {}).get(m, 0)
                row[f"{m}_after"] = (c.after or {}).get(m, 0)
            rows.append(row)
        total = {"model": model.model, "change": "total", "layer": "", "type": ""}
        for m in metrics:
            total[f"{m}_before"], total[f"{m}_after"] = model.totals[m]
        rows.append(total)
    columns = ["model", "change", "layer", "type",
               *[f"{m}_{side}" for m in metrics for side in ("before", "after")]]
    return pd.DataFrame(rows, columns=columns)


def _delta_cell(delta: int, unit: str = "") -> str:
    return _signed(delta, unit) if delta else "0"


def diff_views(report: Any) -> tuple[tuple[list[str], list[list[str]]],
                                     tuple[list[str], list[list[str]]]]:
    """(header, rows) of the layer changes and of the totals, in human units."""
    from archstat.snapshot import TOTAL_METRICS, growth_text

    layer_header = ["model", "change", "layer", "type", "params", "flops", "activation"]
    layer_rows = [[m.model, c.change, c.name or "(root)", c.type,
                   _delta_cell(c.delta("params")), _delta_cell(c.delta("flops")),
                   _delta_cell(c.delta("activation_bytes"), "B")]
                  for m in report.models for c in m.changes]
    total_header = ["model", "metric", "before", "after", "delta", "change", "status"]
    total_rows = []
    for m in report.models:
        for metric, (before, after) in m.totals.items():
            unit = TOTAL_METRICS[metric]
            status = (f"grew beyond {format_percent(m.tolerance, 4)}"
                      if metric in m.exceeded else "ok")
            total_rows.append([m.model, metric, format_quantity(before, unit),
                               format_quantity(after, unit), _delta_cell(after - before, unit),
                               growth_text(before, after), status])
    return (layer_header, layer_rows), (total_header, total_rows)


def diff_caption(report: Any) -> str:
    parts = [f"{m.model}: {len(m.changes)} layers differ, {m.unchanged} unchanged"
             for m in report.models]
    return "; ".join(parts)


def diff_json(report: Any) -> str:
    """The full diff: per model its settings, totals (before, after, delta), the totals
    that exceeded the tolerance, and every differing layer with both sides."""
    models = []
    for m in report.models:
        models.append({
            "model": m.model,
            "settings": {**m.settings, "input_shape": [list(s) for s in m.settings["input_shape"]]},
            "unchanged_layers": m.unchanged,
            "totals": {k: {"before": b, "after": a, "delta": a - b}
                       for k, (b, a) in m.totals.items()},
            "exceeded": m.exceeded,
            "changes": [{"change": c.change, "layer": c.name, "type": c.type,
                         "before": c.before, "after": c.after} for c in m.changes],
        })
    return render.to_json({"baseline": report.baseline,
                           "tolerance_pct": format_percent(report.tolerance, 4).rstrip("%"),
                           "notes": report.notes, "exit_code": report.exit_code,
                           "models": models})


def render_diff(report: Any, fmt: str) -> Any:
    """A DiffReport in one of render.FORMATS (table, csv, json, markdown)."""
    if fmt == "json":
        return diff_json(report)
    if fmt == "csv":
        return render.to_csv(diff_frame(report))
    (lh, lr), (th, tr) = diff_views(report)
    title = f"archstat diff against {report.baseline} (tolerance " \
            f"{format_percent(report.tolerance, 4)})"
    if fmt == "markdown":
        return (f"**{title}**\n\n" + (render.to_markdown(lh, lr) + "\n" if lr else "")
                + render.to_markdown(th, tr) + f"\n{diff_caption(report)}\n")
    from rich.console import Group

    tables = [render.rich_table(th, tr, title=title, caption=diff_caption(report))]
    if lr:
        tables.insert(0, render.rich_table(lh, lr, title="changed layers"))
    return Group(*tables)
