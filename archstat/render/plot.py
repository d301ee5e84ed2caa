"""``archstat plot``: per-layer bar charts like the lecture's, as PNG or SVG bytes.

One panel per metric (rows) and model (columns), layers along x in execution order, bars
coloured by layer kind. The values are the lecture table's (:mod:`archstat.lecture`), per
image: memory in KB (output x 4 bytes / 1024), params in thousands, FLOPs in millions
under the analysis's convention. Panels of one metric share their y axis, so models
compare at a glance. The memory panels also draw, as a line, the activation memory still
live after each layer (:mod:`archstat.trace.liveness`, in KB per image): the memory profile
over depth, which the bars (one layer's output each) understate wherever a branch or a
residual keeps earlier outputs alive. matplotlib (the ``plot`` extra) is imported only
here, with the Agg backend, so nothing opens a window.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from archstat.errors import ArchstatError

METRICS = {
    "memory": ("memory_kb", "memory (KB)"),
    "params": ("params_k", "params (k)"),
    "flops": ("flop_m", "flop (M)"),
}
#: Not a per-layer metric: per inception/residual module, how many times cheaper the
#: module is than its naive form (archstat.bottlenecks, module level).
SAVINGS = "savings"
FORMATS = ("png", "svg")
DPI = 100
MAX_SIDE = 20_000  # pixels; a 100000x100000 canvas would need 40 GB


def parse_size(text: str) -> tuple[int, int]:
    """``1600x900`` -> (1600, 900) pixels; ArchstatError for anything else."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ArchstatError(f"`size` is WIDTHxHEIGHT in pixels, e.g. 1600x900, not {text!r}")
    return int(parts[0]), int(parts[1])
COLOURS = {"conv": "#4C72B0", "pool": "#DD8452", "fc": "#55A868", "flatten": "#8C8C8C",
           "other": "#C44E52"}
_MAX_LABELS = 60  # more layers than this and the x axis shows positions, not names
LIVE_LABEL = "live activations after the layer"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ArchstatError(
            "archstat plot needs matplotlib: pip install 'archstat[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _check(metric: str, size: tuple[int, int], fmt: str) -> list[str]:
    """The metrics to draw; ArchstatError for a bad metric, size or format."""
    if fmt not in FORMATS:
        raise ArchstatError(f"plot writes {' or '.join(FORMATS)}, not {fmt!r}")
    if any(side < 100 for side in size):
        raise ArchstatError(f"plot size {size[0]}x{size[1]} is too small; at least 100x100")
    if any(side > MAX_SIDE for side in size):
        raise ArchstatError(f"plot size {size[0]}x{size[1]} is too large; at most "
                            f"{MAX_SIDE}x{MAX_SIDE}")
    if metric == "all":
        return list(METRICS)
    if metric not in (*METRICS, SAVINGS):
        raise ArchstatError(f"unknown metric {metric!r}; choose one of "
                            f"{', '.join([*METRICS, 'all', SAVINGS])}")
    return [metric]


def _bars(analysis: Any) -> tuple[Any, list[str]]:
    """The lecture table of an analysis and the kind of each of its rows."""
    import pandas as pd

    from archstat.compute_layers import compute_layers
    from archstat.lecture import lecture_table

    table = lecture_table(analysis)
    return (pd.DataFrame(table.rows, columns=table.columns),
            [layer.kind for layer in compute_layers(analysis)])


def live_kb(analysis: Any) -> list[float]:
    """Per lecture row: the analysis's ``live_bytes_after`` at the row's last record, per
    image, in KB (/ 1024, as the lecture's memory column)."""
    from archstat.compute_layers import compute_layers

    live = analysis.layers["live_bytes_after"]
    return [float(live.iloc[max(layer.records)]) / analysis.batch / 1024
            for layer in compute_layers(analysis)]


def _panel(ax: Any, frame: Any, kinds: list[str], column: str, log: bool,
           line: list[float] | None = None) -> None:
    positions = range(len(frame))
    ax.bar(positions, frame[column].astype(float), color=[COLOURS[k] for k in kinds],
           width=0.8)
    if line is not None:
        ax.plot(positions, line, color="black", linewidth=1.2, marker=".", markersize=3)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    if len(frame) <= _MAX_LABELS:
        ax.set_xticks(list(positions), frame["layer"], rotation=90,
                      fontsize=max(4, 9 - len(frame) // 12))
    else:
        ax.set_xlabel("layer (execution order)")


def layer_chart(
    analyses: Sequence[Any],
    metric: str = "all",
    log: bool = False,
    size: tuple[int, int] = (1600, 900),
    fmt: str = "png",
) -> bytes:
    """The chart of ``analyses`` as ``fmt`` (png or svg) bytes, ``size`` pixels wide and
    high (at 100 dpi)."""
    metrics = _check(metric, size, fmt)
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": "archstat", "font.size": 9}):
        fig, axes = _figure(plt, len(metrics), len(analyses), size)
        try:
            seen: set[str] = set()
            for col, analysis in enumerate(analyses):
                axes[0][col].set_title(f"{analysis.model} ({analysis.convention.name})")
                frame, kinds = _bars(analysis)
                seen.update(kinds)
                for row, name in enumerate(metrics):
                    column, label = METRICS[name]
                    line = live_kb(analysis) if name == "memory" else None
                    _panel(axes[row][col], frame, kinds, column, log, line)
                    if col == 0:
                        axes[row][col].set_ylabel(label + (", log" if log else ""))
            shown = [kind for kind in COLOURS if kind in seen]
            handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[kind]) for kind in shown]
            if "memory" in metrics:
                handles.append(plt.Line2D([], [], color="black", marker=".", linewidth=1.2))
                shown = [*shown, LIVE_LABEL]
            fig.legend(handles, shown, loc="outside lower center", ncols=len(shown))
            return _save(fig, fmt)
        finally:
            plt.close(fig)


def _figure(plt: Any, rows: int, cols: int, size: tuple[int, int]) -> tuple[Any, Any]:
    return plt.subplots(rows, cols, squeeze=False, sharey="row",
                        figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")


def _save(fig: Any, fmt: str) -> bytes:
    out = io.BytesIO()
    # No dates in the file: the same chart gives the same bytes.
    fig.savefig(out, format=fmt, dpi=DPI,
                metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return out.getvalue()


def savings_chart(
    reports: Sequence[tuple[str, Any]],
    log: bool = False,
    size: tuple[int, int] = (1600, 900),
    fmt: str = "png",
) -> bytes:
    """Per model (``(name, modules DataFrame)`` from ``archstat.bottleneck(...,
    level="module").modules``), grouped bars per inception/residual module: how many
    times fewer MACs and parameters it has than its naive form (1 = no saving)."""
    _check(SAVINGS, size, fmt)
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": "archstat", "font.size": 9}):
        fig, axes = _figure(plt, 1, len(reports), size)
        try:
            for col, (name, modules) in enumerate(reports):
                ax = axes[0][col]
                ax.set_title(f"{name}: 1x1 bottleneck savings per module")
                if modules.empty:
                    ax.text(0.5, 0.5, "no 1x1 bottleneck", ha="center", va="center",
                            transform=ax.transAxes)
                    ax.set_xticks([])
                    continue
                positions = range(len(modules))
                ax.bar([p - 0.2 for p in positions], modules["macs_saving_ratio"], width=0.4,
                       color=COLOURS["conv"], label="MACs")
                ax.bar([p + 0.2 for p in positions], modules["params_saving_ratio"],
                       width=0.4, color=COLOURS["fc"], label="params")
                ax.axhline(1.0, color="black", linewidth=0.8)
                if log:
                    ax.set_yscale("log")
                ax.grid(axis="y", alpha=0.3)
                ax.set_xticks(list(positions), modules["module"], rotation=90,
                              fontsize=max(4, 9 - len(modules) // 12))
                if col == 0:
                    ax.set_ylabel("naive / built (x)" + (", log" if log else ""))
                ax.legend(loc="upper left")
            return _save(fig, fmt)
        finally:
            plt.close(fig)


def plot_models(
    models: Sequence[str],
    metric: str = "all",
    log: bool = False,
    size: tuple[int, int] = (1600, 900),
    fmt: str = "png",
    input_shape: str | Sequence[Any] | None = None,
    convention: str = "lecture",
) -> bytes:
    """Analyse each model (batch 1, float32) and chart it (see :func:`layer_chart`), or,
    with ``metric="savings"``, chart its per-module bottleneck savings."""
    from archstat.analysis import analyze

    _check(metric, size, fmt)  # fail on bad options before tracing anything
    if metric == SAVINGS:
        from archstat.bottlenecks import bottleneck

        return savings_chart(
            [(m, bottleneck(m, input_shape=input_shape, level="module").modules)
             for m in models], log, size, fmt)
    analyses = [analyze(m, input_shape=input_shape, convention=convention) for m in models]
    return layer_chart(analyses, metric, log, size, fmt)
