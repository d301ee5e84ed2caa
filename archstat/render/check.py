"""Check reports and diffs as text for people and for CI systems: rich tables, JSON,
GitHub Actions annotations, JUnit XML, CSV and Markdown.

Pure functions of a :class:`~archstat.budget.checks.CheckReport` or a
:class:`~archstat.snapshots.DiffReport`; nothing here counts anything and nothing prints.
JSON, JUnit, GitHub and CSV output carry exact integers and are deterministic (no
timestamps, no timings).
"""

from __future__ import annotations

from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table, to_json, to_rich
from archstat.units import format_percent, format_quantity

CHECK_FORMATS = ("table", "json", "github", "junit")
_STATUS_TEXT = {"pass": "pass", "fail": "FAIL", "error": "error"}


def _signed(value: int, unit: str) -> str:
    return ("+" if value > 0 else "") + format_quantity(value, unit)


def check_summary(report: Any) -> str:
    errors = report.count("error")
    return (f"{report.display}: {report.count('pass')} passed, {report.count('fail')} "
            f"failed, {errors} {'error' if errors == 1 else 'errors'}")


def _check_row(result: Any) -> dict[str, str]:
    pct = result.headroom_pct
    return {
        "model": result.label, "metric": result.metric or "(analysis)",
        "budget": result.limit_text,
        "actual": "" if result.actual is None else result.show(result.actual),
        "headroom": "" if result.headroom is None else result.show(result.headroom),
        "headroom_pct": "" if pct is None else ("-" if pct < 0 else "") + format_percent(abs(pct)),
        "status": _STATUS_TEXT[result.status],
    }


CHECK_COLUMNS = [Column("model", "model"), Column("metric", "metric"),
                 Column("budget", "budget"), Column("actual", "actual"),
                 Column("headroom", "headroom"), Column("headroom_pct", "headroom %"),
                 Column("status", "status")]


def check_view(report: Any) -> Table:
    """One row per limit, exact in each limit's own unit, and the summary line."""
    return Table("results", "archstat check", CHECK_COLUMNS,
                 [_check_row(r) for r in report.results], notes=[check_summary(report)])


def check_table(report: Any, width: int | None = None) -> Any:
    """A rich renderable: the table, and the summary line under it."""
    return to_rich(check_view(report), width)


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
    return to_json({"file": report.display, "passed": report.count("pass"),
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


def render_check(report: Any, fmt: str, width: int | None = None) -> Any:
    """A CheckReport in one of CHECK_FORMATS: a rich renderable for ``table``, text
    otherwise."""
    if fmt == "table":
        return check_table(report, width)
    if fmt in ("markdown", "html"):
        from archstat.render.table import render_tables

        return render_tables([check_view(report)], fmt)
    renderers = {"json": check_json, "github": check_github, "junit": check_junit}
    return renderers[fmt](report)


# --- diffs

_DIFF_METRICS = ("params", "flops", "activation_bytes")


def diff_csv_table(report: Any) -> Table:
    """One row per changed, added or removed layer, then one ``total`` row per model:
    before/after pairs of params (elements), flops (the snapshot's convention) and
    activation_bytes (bytes); exact integers, 0 for a side that does not exist."""
    rows = []
    for model in report.models:
        for c in model.changes:
            row = {"model": model.model, "change": c.change, "layer": c.name, "type": c.type}
            for m in _DIFF_METRICS:
                row[f"{m}_before"] = (c.before or {}).get(m, 0)
                row[f"{m}_after"] = (c.after or {}).get(m, 0)
            rows.append(row)
        total = {"model": model.model, "change": "total", "layer": "", "type": ""}
        for m in _DIFF_METRICS:
            total[f"{m}_before"], total[f"{m}_after"] = model.totals[m]
        rows.append(total)
    keys = ["model", "change", "layer", "type",
            *[f"{m}_{side}" for m in _DIFF_METRICS for side in ("before", "after")]]
    return Table("changes", "", [], rows, data_columns=keys)


def _delta_cell(delta: int, unit: str = "") -> str:
    return _signed(delta, unit) if delta else "0"


def diff_views(report: Any) -> list[Table]:
    """The layer changes (when any) and the totals, in human units."""
    from archstat.snapshots import TOTAL_METRICS, growth_text

    layers = [{"model": m.model, "change": c.change, "layer": c.name or "(root)",
               "type": c.type, "params": _delta_cell(c.delta("params")),
               "flops": _delta_cell(c.delta("flops")),
               "activation": _delta_cell(c.delta("activation_bytes"), "B")}
              for m in report.models for c in m.changes]
    totals = []
    for m in report.models:
        for metric, (before, after) in m.totals.items():
            unit = TOTAL_METRICS[metric]
            status = (f"grew beyond {format_percent(m.tolerance, 4)}"
                      if metric in m.exceeded else "ok")
            totals.append({"model": m.model, "metric": metric,
                           "before": format_quantity(before, unit),
                           "after": format_quantity(after, unit),
                           "delta": _delta_cell(after - before, unit),
                           "change": growth_text(before, after), "status": status})
    title = (f"archstat diff against {report.baseline} (tolerance "
             f"{format_percent(report.tolerance, 4)})")
    views = [Table("totals", title, [Column(k, k) for k in
                                     ("model", "metric", "before", "after", "delta", "change",
                                      "status")], totals, notes=[diff_caption(report)])]
    if layers:
        views.insert(0, Table("changes", "changed layers", [
            Column(k, k) for k in ("model", "change", "layer", "type", "params", "flops",
                                   "activation")], layers))
    return views


def diff_caption(report: Any) -> str:
    parts = [f"{m.model}: {text.plural(len(m.changes), 'layer')} "
             f"{'differs' if len(m.changes) == 1 else 'differ'}, {m.unchanged} unchanged"
             for m in report.models]
    return "; ".join(parts)


def diff_data(report: Any) -> dict[str, Any]:
    """The full diff: per model its settings, totals (before, after, delta), the totals
    that exceeded the tolerance, and every differing layer with both sides."""
    models = []
    for m in report.models:
        models.append({
            "model": m.model,
            "settings": m.settings,
            "unchanged_layers": m.unchanged,
            "totals": {k: {"before": b, "after": a, "delta": a - b}
                       for k, (b, a) in m.totals.items()},
            "exceeded": m.exceeded,
            "changes": [{"change": c.change, "layer": c.name, "type": c.type,
                         "before": c.before, "after": c.after} for c in m.changes],
        })
    return {"baseline": report.baseline,
            "tolerance_pct": format_percent(report.tolerance, 4).rstrip("%"),
            "notes": report.notes, "exit_code": report.exit_code, "models": models}
