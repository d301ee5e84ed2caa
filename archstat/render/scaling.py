"""A :class:`~archstat.scaling.ScalingReport` (the base and the scaled network, and how
each stage rounded) or a :class:`~archstat.scaling.ScalingSweep` (one row per phi,
beside the published EfficientNet-B<phi>). CSV holds the networks, or the sweep."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table, records
from archstat.scaling import ALPHA, BETA, GAMMA, blocks

NETWORK_COLUMNS = ["network", "depth", "width", "resolution", "input_shape", "exact_side",
                   "params", "flops", "params_ratio", "flops_ratio", "predicted_ratio"]
STAGE_COLUMNS = ["stage", "channels", "exact_channels", "scaled_channels", "repeats",
                 "exact_repeats", "scaled_repeats"]
SWEEP_COLUMNS = [
    "phi", "depth", "width", "resolution", "input_shape", "exact_side", "blocks",
    "exact_blocks", "params", "flops", "predicted_ratio", "flops_ratio", "params_ratio",
    "variant", "variant_depth", "variant_width", "variant_resolution",
    "variant_paper_params_m", "variant_paper_flops_g", "variant_torchvision_params",
    "variant_torchvision_gmacs", "variant_torchvision_crop", "variant_params", "variant_flops",
    "variant_flops_ratio",
]
#: The sweep's columns from a base other than efficientnet_b0 (no published variant).
SWEEP_BASE_COLUMNS = SWEEP_COLUMNS[:SWEEP_COLUMNS.index("variant")]


def _float(value: Any) -> Any:
    """An exact fraction (a multiplier, what it asks for) as the float JSON and CSV carry."""
    return float(value) if isinstance(value, Fraction) else value


def _g(value: Any) -> str:
    return "" if text.missing(value) else f"{value:.4g}"


def _side(shape: Any) -> str:
    return "" if text.missing(shape) else str(shape[-1])


def _predicted(phi: int | None) -> str:
    compound = ALPHA * BETA**2 * GAMMA**2
    return (f"predicted = d w^2 r^2 = ({ALPHA} x {BETA}^2 x {GAMMA}^2)^phi = {compound:.4g}^phi"
            if phi is not None else "predicted = d w^2 r^2")


_ROUNDING = ("channels round to a multiple of 8 (never more than 10% down), repeats round "
             "up stage by stage, the input side to the nearest pixel; the 3 input channels "
             "and the classifier's outputs do not scale")

#: What else stays fixed, per family.
_FIXED = {"vgg": "; nor do VGG's fc layers past the first one's input (4096 hidden "
                 "features), which the adaptive pool shields from the resolution"}

# -- one scaled network ---------------------------------------------------------------


def _network_rows(report: Any) -> list[dict[str, Any]]:
    def row(name: str, net: Any, params: float, flops: float, predicted: float
            ) -> dict[str, Any]:
        return {"network": name, "depth": float(net.depth), "width": float(net.width),
                "resolution": float(net.resolution), "input_shape": net.input_shape,
                "exact_side": float(net.exact_side), "params": net.params,
                "flops": net.flops, "params_ratio": params, "flops_ratio": flops,
                "predicted_ratio": float(predicted)}

    return [row("base", report.base, 1.0, 1.0, 1.0),
            row("scaled", report.scaled, report.params_ratio, report.flops_ratio,
                report.predicted_ratio)]


def _stage_rows(stages: Any) -> list[dict[str, Any]]:
    return [{k: _float(getattr(s, k)) for k in STAGE_COLUMNS} for s in stages]


_NETWORK_VIEW = [
    Column("network", "network"), Column("depth", "d", _g, "depth multiplier"),
    Column("width", "w", _g, "width multiplier"),
    Column("resolution", "r", _g, "resolution multiplier"),
    Column("input_shape", "input", text.shape_str, "CxHxW, the side rounded to a pixel"),
    Column("exact_side", "exact side", _g, "the base side times r"),
    Column("params", "params", text.human), Column("flops", "macs", text.human),
    Column("params_ratio", "params ratio", text.times, "over the base's"),
    Column("flops_ratio", "macs ratio", text.times, "measured: over the base's"),
    Column("predicted_ratio", "predicted", text.times, "d w^2 r^2"),
]
_STAGE_VIEW = [
    Column("stage", "stage"), Column("channels", "channels", text.text, "in the base"),
    Column("exact_channels", "x w", _g, "what the width multiplier asks for"),
    Column("scaled_channels", "built", text.text, "rounded to a multiple of 8"),
    Column("repeats", "repeats", text.text, "blocks (VGG: convs) in the base"),
    Column("exact_repeats", "x d", _g, "what the depth multiplier asks for"),
    Column("scaled_repeats", "built", text.text, "rounded up"),
]


def _report_views(report: Any) -> list[Table]:
    how = f"phi {report.phi}" if report.phi is not None else "multipliers"
    title = f"{report.model} scaled by {how} (macs, batch 1)"
    networks = Table("networks", title, _NETWORK_VIEW, _network_rows(report),
                     data_columns=NETWORK_COLUMNS,
                     notes=[f"{_predicted(report.phi)}; measured over predicted: "
                            f"{report.flops_ratio / report.predicted_ratio:.3f}"])
    stages = Table("stages", f"{report.model}: each stage as the multipliers ask and as built",
                   _STAGE_VIEW, _stage_rows(report.stages), data_columns=STAGE_COLUMNS,
                   notes=[_ROUNDING + _FIXED.get(report.family, "")])
    return [networks, stages]


def _report_data(report: Any) -> dict[str, Any]:
    s = report.scaled
    return {"model": report.model, "family": report.family, "phi": report.phi,
            "convention": "macs", "depth": float(s.depth), "width": float(s.width),
            "resolution": float(s.resolution), "input_shape": list(s.input_shape),
            "exact_side": float(s.exact_side), "params": s.params, "flops": s.flops,
            "predicted_ratio": float(report.predicted_ratio),
            "flops_ratio": report.flops_ratio,
            "params_ratio": report.params_ratio,
            "base": {"input_shape": list(report.base.input_shape),
                     "params": report.base.params, "flops": report.base.flops},
            "stages": records(Table("stages", "", [], _stage_rows(report.stages),
                                    data_columns=STAGE_COLUMNS))}


# -- a sweep ------------------------------------------------------------------------


def _sweep_rows(sweep: Any) -> list[dict[str, Any]]:
    rows = []
    for r in sweep.rows:
        net, pub = r.network, r.published
        built, asked = blocks(r.stages)
        row = {"phi": r.phi, "depth": float(net.depth), "width": float(net.width),
               "resolution": float(net.resolution), "input_shape": net.input_shape,
               "exact_side": float(net.exact_side), "blocks": built,
               "exact_blocks": float(asked), "params": net.params, "flops": net.flops,
               "predicted_ratio": float(r.predicted_ratio), "flops_ratio": r.flops_ratio,
               "params_ratio": r.params_ratio}
        if pub is not None:
            row.update(variant=pub.variant, variant_depth=pub.depth, variant_width=pub.width,
                       variant_resolution=pub.resolution,
                       variant_paper_params_m=pub.paper_params,
                       variant_paper_flops_g=pub.paper_flops,
                       variant_torchvision_params=pub.torchvision_params,
                       variant_torchvision_gmacs=pub.torchvision_gmacs,
                       variant_torchvision_crop=pub.torchvision_crop,
                       variant_params=pub.params, variant_flops=pub.flops,
                       variant_flops_ratio=pub.flops_ratio)
        rows.append(row)
    return rows


def _shown_sweep(sweep: Any) -> list[dict[str, Any]]:
    """The rows with the values people read together joined in one cell."""
    shown = []
    for row in _sweep_rows(sweep):
        extra = {"side": f"{row['input_shape'][-1]} ({row['exact_side']:.4g})",
                 "blocks_shown": f"{row['blocks']} ({row['exact_blocks']:.4g})"}
        if "variant" in row:
            extra.update(
                variant_multipliers=f"{row['variant_depth']:g} / {row['variant_width']:g} / "
                                    f"{row['variant_resolution']}",
                variant_paper=f"{row['variant_paper_params_m']:g}M / "
                              f"{row['variant_paper_flops_g']:g}B")
        shown.append({**row, **extra})
    return shown


_SWEEP_VIEW = [
    Column("phi", "phi"), Column("depth", "d", _g), Column("width", "w", _g),
    Column("resolution", "r", _g), Column("side", "side (exact)"),
    Column("blocks_shown", "blocks (exact)"), Column("params", "params", text.human),
    Column("flops", "macs", text.human), Column("predicted_ratio", "predicted", text.times),
    Column("flops_ratio", "measured", text.times),
]
_VARIANT_VIEW = [
    Column("variant", "published"), Column("variant_multipliers", "d / w / res"),
    Column("variant_paper", "paper params / FLOPs"),
    Column("variant_params", "params", text.human), Column("variant_flops", "macs", text.human),
    Column("variant_flops_ratio", "measured", text.times),
]


def _sweep_views(sweep: Any) -> list[Table]:
    published = any(r.published is not None for r in sweep.rows)
    columns = _SWEEP_VIEW + (_VARIANT_VIEW if published else [])
    notes = [f"{_predicted(0)}; measured = MACs over phi 0's: {_ROUNDING}"]
    if published:
        notes.append("published: EfficientNet-B<phi> with its hand-picked depth, width and "
                     "resolution (not alpha^phi, beta^phi, gamma^phi); paper params / FLOPs: "
                     "Table 2 as printed (FLOPs are multiply-adds); params, macs, measured: "
                     "the zoo's B<phi> (torchvision-exact) at the paper's resolution, its "
                     "MACs over B0's")
    title = (f"{sweep.model} scaled by phi = {sweep.rows[0].phi}..{sweep.rows[-1].phi} "
             "(macs, batch 1)")
    return [Table("sweep", title, columns, _shown_sweep(sweep),
                  data_columns=SWEEP_COLUMNS if published else SWEEP_BASE_COLUMNS,
                  notes=notes)]


def _sweep_data(sweep: Any) -> dict[str, Any]:
    table = _sweep_views(sweep)[0]
    rows = records(Table("sweep", "", [], _sweep_rows(sweep), data_columns=table.keys))
    for row, r in zip(rows, sweep.rows, strict=True):
        row["stages"] = records(Table("stages", "", [], _stage_rows(r.stages),
                                      data_columns=STAGE_COLUMNS))
    return {"model": sweep.model, "family": sweep.family, "convention": "macs",
            "base": {"input_shape": list(sweep.base.input_shape),
                     "params": sweep.base.params, "flops": sweep.base.flops},
            "rows": rows, "notes": table.notes}


# -- the render interface --------------------------------------------------------------


def views(result: Any, **_: Any) -> list[Table]:
    if type(result).__name__ == "ScalingSweep":
        return _sweep_views(result)
    return _report_views(result)


def csv_table(result: Any, **_: Any) -> Table:
    """The networks (base and scaled), or the sweep's rows."""
    if type(result).__name__ == "ScalingSweep":
        table = _sweep_views(result)[0]
        return Table("sweep", "", [], _sweep_rows(result), data_columns=table.keys)
    return Table("networks", "", [], _network_rows(result), data_columns=NETWORK_COLUMNS)


def data(result: Any) -> dict[str, Any]:
    if type(result).__name__ == "ScalingSweep":
        return _sweep_data(result)
    return _report_data(result)
