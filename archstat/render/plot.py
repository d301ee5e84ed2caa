"""``archstat plot``: per-layer bar charts like the lecture's, as PNG or SVG bytes.

One panel per metric (rows) and model (columns), layers along x in execution order, bars
coloured by layer kind. The values are the lecture table's (:mod:`archstat.lecture`), per
image: memory in KB (output x 4 bytes / 1024), params in thousands, FLOPs in millions
under the analysis's convention. Panels of one metric share their y axis, so models
compare at a glance. The memory panels also draw, as a line, the activation memory still
live after each layer (:mod:`archstat.trace.liveness`, in KB per image): the memory profile
over depth, which the bars (one layer's output each) understate wherever a branch or a
residual keeps earlier outputs alive. :func:`accuracy_chart` draws, after Canziani et al.
2016 (Figure 2), published top-1 accuracy against MACs (:mod:`archstat.accuracy`).
matplotlib (the ``plot`` extra) is imported only here, with the Agg backend, so nothing
opens a window.
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


def require_matplotlib() -> None:
    """ArchstatError, before any work, where matplotlib is not installed."""
    _pyplot()


def check_image(size: tuple[int, int], fmt: str) -> None:
    """ArchstatError for an image format or size plot cannot write."""
    if fmt not in FORMATS:
        raise ArchstatError(f"plot writes {' or '.join(FORMATS)}, not {fmt!r}")
    if any(side < 100 for side in size):
        raise ArchstatError(f"plot size {size[0]}x{size[1]} is too small; at least 100x100")
    if any(side > MAX_SIDE for side in size):
        raise ArchstatError(f"plot size {size[0]}x{size[1]} is too large; at most "
                            f"{MAX_SIDE}x{MAX_SIDE}")


def _check(metric: str, size: tuple[int, int], fmt: str) -> list[str]:
    """The metrics to draw; ArchstatError for a bad metric, size or format."""
    check_image(size, fmt)
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
    # Nor matplotlib's version (SVG's Creator): an upgrade alone does not change them.
    fig.savefig(out, format=fmt, dpi=DPI,
                metadata={"Date": None, "Creator": None} if fmt == "svg"
                else {"Software": None})
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


#: Marker size (``s``: the square of its diameter in points) of the bubble of the most
#: parameters on an accuracy chart; a bubble's area is proportional to ``s``.
MAX_BUBBLE = 2400.0
_FAMILY_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860",
                   "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
#: Where a bubble's label may go, in order of preference: (x, y) direction from the
#: centre, and the label's alignment there.
_LABEL_SPOTS = ((1, 0, "left", "center"), (-1, 0, "right", "center"),
                (0, 1, "center", "bottom"), (0, -1, "center", "top"),
                (1, 1, "left", "bottom"), (1, -1, "left", "top"),
                (-1, 1, "right", "bottom"), (-1, -1, "right", "top"))


def accuracy_chart(
    table: Any,
    size: tuple[int, int] = (1600, 900),
    fmt: str = "png",
) -> bytes:
    """Published top-1 accuracy against MACs of an :class:`~archstat.accuracy.AccuracyTable`,
    as Canziani, Paszke and Culurciello 2016 (arXiv:1605.07678) draw their Figure 2: MACs
    per image (the table's convention, at each model's zoo input) on a log x axis, bubble
    area proportional to parameters, every point labelled, one colour per family. A filled
    bubble is a single-crop figure, a hollow one multi-crop or unstated. The models left
    out (no published top-1) are named beside the axes."""
    check_image(size, fmt)
    rows = table.plotted
    if not rows:
        reasons = "; ".join(f"{row['model']}: {row['reason']}" for row in table.left_out)
        raise ArchstatError(f"no model to plot: none has a published top-1 accuracy ({reasons})")
    largest = max(row["params"] for row in rows)
    sizes = [MAX_BUBBLE * row["params"] / largest for row in rows]
    families = list(dict.fromkeys(row["family"] for row in rows))
    colour = {f: _FAMILY_COLOURS[i % len(_FAMILY_COLOURS)] for i, f in enumerate(families)}
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": "archstat", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI,
                               layout="constrained")
        try:
            for row, area in zip(rows, sizes, strict=True):
                single = row["crops"] == 1
                ax.scatter(row["macs"], row["top1"], s=area, linewidths=1.2, zorder=2,
                           facecolors=colour[row["family"]] if single else "none",
                           edgecolors=colour[row["family"]], alpha=0.55 if single else 1.0,
                           gid=f"bubble-{row['model']}")  # the SVG's group id
            ax.set_xscale("log")
            _count_ticks(ax.xaxis)
            ax.margins(x=0.1, y=0.08)
            ax.grid(alpha=0.3, which="both")
            unit = table.convention.name
            ax.set_xlabel(f"{'MACs' if unit == 'macs' else unit} per image (convention "
                          f"{unit}, at each model's zoo input), log scale")
            ax.set_ylabel("published ImageNet top-1 accuracy (%)")
            ax.set_title("Published top-1 accuracy against MACs, bubble area = parameters "
                         "(after Canziani et al. 2016, Fig. 2)")
            _accuracy_legends(plt, fig, families, colour, largest,
                              [row["model"] for row in table.left_out])
            _label_bubbles(fig, ax, rows, sizes)
            return _save(fig, fmt)
        finally:
            plt.close(fig)


def _count_ticks(axis: Any) -> None:
    """Ticks of a log axis of counts at 1, 2 and 5 of each decade, as archstat writes
    counts (500M, 1G, 2G), so a point's cost reads off the axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from archstat.render.text import human

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: human(round(value))))
    axis.set_minor_formatter(NullFormatter())


def _accuracy_legends(plt: Any, fig: Any, families: list[str], colour: dict[str, str],
                      largest: int, left_out: list[str]) -> None:
    """Outside the axes, where they hide no point: the family and evaluation legend and
    the models left out on the right, the bubble sizes below."""
    import math

    from archstat.render.text import human

    def dot(**style: Any) -> Any:
        return plt.Line2D([], [], marker="o", linestyle="", **style)

    fig.legend(
        [*(dot(color=colour[f]) for f in families), dot(color="black", alpha=0.55),
         dot(color="black", markerfacecolor="none")],
        [*families, "single crop", "multi-crop or not stated"],
        loc="outside right upper", fontsize=7, title="family / evaluation", title_fontsize=8)
    # a marker's size is its diameter in points: the square root of a scatter's s
    counts = bubble_legend(largest)
    diameters = [math.sqrt(MAX_BUBBLE * p / largest) for p in counts]
    room = max(diameters) / 7 + 0.5  # in font sizes (7 points), so no bubble spills over
    sizes = fig.legend(
        [dot(color="grey", alpha=0.4, markersize=d) for d in diameters],
        [f"{human(p)} params" for p in counts], loc="outside lower center",
        ncols=len(counts), fontsize=7, handleheight=room, handlelength=room,
        title="bubble area: parameters", title_fontsize=8)
    for handle, count in zip(sizes.legend_handles, counts, strict=True):
        handle.set_gid(f"legend-{count}")  # the SVG's group id
    if left_out:
        nothing = plt.Line2D([], [], linestyle="")
        fig.legend([nothing] * len(left_out), left_out, loc="outside right lower",
                   fontsize=7, handlelength=0, handletextpad=0,
                   title="not plotted:\nno published top-1", title_fontsize=8,
                   ).set_gid("left-out")


def bubble_legend(largest: int) -> list[int]:
    """The parameter counts the bubble-size legend shows: round counts (1, 2 or 5 times a
    power of ten) at most ``largest``, about 1/25, 1/5 and 1 of it (those at least 1),
    smallest first."""
    import math

    def round_down(value: float) -> int:
        power = 10 ** math.floor(math.log10(value))
        return max(m * power for m in (1, 2, 5) if m * power <= value)

    return sorted({round_down(largest / part) for part in (25, 5, 1) if largest >= part})


def _label_bubbles(fig: Any, ax: Any, rows: list[dict[str, Any]], sizes: list[float]) -> None:
    """Label every bubble with its model at the first spot of ``_LABEL_SPOTS``, just off
    the bubble or, failing that, farther out, where the label stays inside the axes and
    overlaps no other bubble or label; to the right of the bubble when no spot is free. A
    thin line joins a label set farther out to its bubble's edge."""
    import math

    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig.canvas.draw()  # settles the layout: display coordinates hold from here on
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    pixels = fig.dpi / 72  # per point
    centres = ax.transData.transform([(row["macs"], row["top1"]) for row in rows])
    bubbles = [Bbox.from_bounds(x - r, y - r, 2 * r, 2 * r)
               for (x, y), r in zip(centres, [math.sqrt(s) / 2 * pixels for s in sizes],
                                    strict=True)]
    taken: list[Any] = []

    def label(row: dict[str, Any], radius: float, gap: float,
              spot: tuple[int, int, str, str]) -> Any:
        dx, dy, ha, va = spot
        scale = gap / math.hypot(dx, dy)  # every spot ``gap`` points from the centre
        line = None if gap <= radius + 2 else {  # from the label to the bubble's edge
            "arrowstyle": "-", "color": "grey", "linewidth": 0.6, "shrinkA": 0,
            "shrinkB": radius}
        text = ax.annotate(row["model"], (row["macs"], row["top1"]),
                           xytext=(dx * scale, dy * scale), textcoords="offset points",
                           ha=ha, va=va, fontsize=7, zorder=3, gid=f"label-{row['model']}",
                           arrowprops=line)
        text.set_in_layout(False)
        return text

    def extent(text: Any) -> Any:
        text.update_positions(renderer)
        return Text.get_window_extent(text, renderer)  # the text, not its line

    for i, (row, area) in enumerate(zip(rows, sizes, strict=True)):
        radius = math.sqrt(area) / 2  # points
        blocked = taken + bubbles[:i] + bubbles[i + 1:]
        placed = None
        for gap in (radius + 2, radius + 14):
            for spot in _LABEL_SPOTS:
                text = label(row, radius, gap, spot)
                box = extent(text)
                inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
                if inside and not any(box.overlaps(other) for other in blocked):
                    placed = box
                    break
                text.remove()
            if placed is not None:
                break
        if placed is None:
            placed = extent(label(row, radius, radius + 2, _LABEL_SPOTS[0]))
        taken.append(placed)
