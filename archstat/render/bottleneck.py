"""A :class:`~archstat.bottlenecks.BottleneckReport`: pairs, modules (with the lecture's
view in units of H W C^2), the network and the SE blocks' overhead, in human units; CSV
holds one level's table."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from archstat.bottlenecks import COLUMNS
from archstat.bottlenecks.counterfactual import COUNTERFACTUALS
from archstat.render import text
from archstat.render.table import Column, Table, records
from archstat.units import format_percent


def _g(value: Any) -> str:
    return "" if text.missing(value) else f"{value:.3g}"


def _share(value: Any) -> str:
    """A share of the model's total: ``0.065%``, never a misleading ``0%``."""
    return "" if text.missing(value) else format_percent(Fraction(value) * 100, 3)


# table -> (title, [(key, header, formatter)]), in display order; a pair's location is
# its two modules, "reduce -> spatial"
_VIEWS: dict[str, tuple[str, list[tuple[str, str, Any]]]] = {
    "pairs": ("1x1 reduce -> kxk pairs vs the kxk on the 1x1's input", [
        ("location", "pair (1x1 -> kxk)", text.text), ("input_shape", "input", text.shape_str),
        ("in_channels", "C_in", text.text), ("reduced_channels", "reduced", text.text),
        ("out_channels", "C_out", text.text), ("kernel", "kernel", text.shape_str),
        ("macs", "macs", text.human), ("direct_macs", "direct macs", text.human),
        ("macs_saving_ratio", "macs saving", text.saving), ("params", "params", text.human),
        ("direct_params", "direct params", text.human),
        ("params_saving_ratio", "params saving", text.saving),
    ]),
    "modules": ("modules vs naive inception (Figure 2(a)) or basic block", [
        ("module", "module", text.text), ("kind", "kind", text.text),
        ("input_shape", "input", text.shape_str), ("in_channels", "C_in", text.text),
        ("out_channels", "C_out", text.text), ("naive_out_channels", "naive C_out", text.text),
        ("macs", "conv macs", text.human), ("naive_macs", "naive macs", text.human),
        ("macs_saving_ratio", "macs saving", text.saving),
        ("params", "conv params", text.human), ("naive_params", "naive params", text.human),
        ("params_saving_ratio", "params saving", text.saving),
    ]),
    "lecture": ("blocks in MACs / (H W C^2), C the 3x3's width", [
        ("module", "module", text.text), ("width", "C", text.text),
        ("output_size", "HxW", text.shape_str), ("macs_hwc2", "bottleneck block", _g),
        ("basic_macs_hwc2", "basic block at width C", _g),
    ]),
    "network": ("network vs naive", [
        ("model", "model", text.text), ("variant", "variant", text.text),
        ("macs", "macs", text.human), ("params", "params", text.human),
    ]),
    "se": ("squeeze-and-excitation blocks: their cost", [
        ("module", "module", text.text), ("input_shape", "gated map", text.shape_str),
        ("channels", "C", text.text), ("squeezed", "squeezed", text.text),
        ("macs", "macs", text.human), ("params", "params", text.human),
    ]),
    "se_total": ("squeeze-and-excitation: share of the whole model", [
        ("model", "model", text.text), ("se_blocks", "SE blocks", text.text),
        ("se_macs", "SE macs", text.human), ("model_macs", "model macs", text.human),
        ("macs_share", "macs share", _share), ("se_params", "SE params", text.human),
        ("model_params", "model params", text.human),
        ("params_share", "params share", _share),
    ]),
}

# module kind -> its counterpart, for the modules table's title
_COUNTERPARTS = {"inception": "naive inception (Figure 2(a))", "residual": "basic block",
                 "dense": "dense layers without 1x1", "mbconv": "standard kxk conv"}


def _title(name: str, rows: list[dict[str, Any]]) -> str:
    title = _VIEWS[name][0]
    if name != "modules":
        return title
    kinds = [k for k in _COUNTERPARTS if any(r["kind"] == k for r in rows)]
    if set(kinds) <= {"inception", "residual"}:
        return title
    return "modules vs " + ", ".join(_COUNTERPARTS[k] for k in kinds)


def note_text(report: Any, note: str) -> str:
    if note == "no_pairs":
        return (f"{report.model} has no 1x1 bottleneck: no 1x1 stride-1 convolution feeds a "
                "kxk convolution, so there is nothing to compare")
    if note == "no_pairs_depthwise":
        return (f"{report.model} has no 1x1 -> kxk pair: its kxk convolutions are depthwise "
                "(MBConv blocks, at the module level)")
    if note == "no_modules":
        return (f"{report.model} has no inception module (branches concatenated), residual "
                "block (output added to its input) or dense block (each layer reading the "
                "concatenation of all earlier maps) with a 1x1 reduction in it, and no "
                "MBConv block")
    if note == "no_se":
        return (f"{report.model} has no squeeze-and-excitation block (a global pool whose "
                "fc layers' result scales a map channel by channel)")
    return (f"no whole-network counterfactual for {report.model}; there is one for "
            f"{', '.join(COUNTERFACTUALS)}")


def _rows(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if name == "pairs":
        return [{"location": f"{r['reduce'] or '(root)'} -> {r['spatial'] or '(root)'}", **r}
                for r in rows]
    if name in ("modules", "lecture"):
        return [dict(r, module=r["module"] or "(root)") for r in rows]
    return rows


def views(report: Any, **_: Any) -> list[Table]:
    """One table per non-empty table of the report, in human units."""
    shapes = ", ".join(text.shape_str(s) for s in report.input_shape)
    tables = []
    for name, rows in report.rows.items():
        if not rows:
            continue
        spec = _VIEWS[name][1]
        title = _title(name, rows)
        data_columns = (["location", *COLUMNS[name][2:]] if name == "pairs"
                        else list(COLUMNS[name]))
        tables.append(Table(name, f"{report.model}  input {shapes}  batch {report.batch}: "
                            f"{title}", [Column(*c) for c in spec], _rows(name, rows),
                            data_columns=data_columns))
    if tables:
        tables[-1].notes = [note_text(report, n) for n in report.notes]
    return tables


def csv_table(report: Any, level: str | None = None, **_: Any) -> Table:
    """The one table a level's CSV holds (with the location of a pair, as displayed; the
    empty name of the model's own code stays empty)."""
    name = report.table_for(level)
    rows = report.rows[name]
    if name == "pairs":
        rows = [{"location": f"{r['reduce'] or '(root)'} -> {r['spatial'] or '(root)'}", **r}
                for r in rows]
    data_columns = (["location", *COLUMNS[name][2:]] if name == "pairs"
                    else list(COLUMNS[name]))
    return Table(name, name, [], rows, data_columns=data_columns)


def data(report: Any) -> dict[str, Any]:
    shapes = [list(s) for s in report.input_shape]
    return {"model": report.model, "input_shape": shapes[0] if len(shapes) == 1 else shapes,
            "batch": report.batch, "convention": "macs",
            **{name: records(Table(name, name, [], rows, data_columns=list(COLUMNS[name])))
               for name, rows in report.rows.items()},
            "notes": [note_text(report, n) for n in report.notes]}
