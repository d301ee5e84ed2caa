"""A :class:`~archstat.paper.PaperTable` as its paper prints it, with its notes worded."""

from __future__ import annotations

from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table


def _columns(paper: Any) -> list[Column]:
    if paper.family == "googlenet":
        headers = {"patch_size_stride": "patch size/stride", "output_size": "output size",
                   "n1x1": "#1x1", "n3x3_reduce": "#3x3 reduce", "n3x3": "#3x3",
                   "n5x5_reduce": "#5x5 reduce", "n5x5": "#5x5", "pool_proj": "pool proj"}
        fmts = {"params": text.paper_k, "ops": text.paper_m}
    elif paper.family == "resnet":
        headers = {"layer_name": "layer name", "output_size": "output size",
                   "flops": "FLOPs (multiply-adds)"}
        fmts = {"params": text.human, "flops": text.human}
    else:
        headers = {"layer": f"ConvNet configuration {paper.config}",
                   "output_size": "output size", "flops": "flops (multiply-adds)"}
        fmts = {"params": text.human, "flops": text.human}
    return [Column(key, headers.get(key, key), fmts.get(key, text.text))
            for key in paper.columns]


def title(paper: Any) -> str:
    model = paper.analysis.model
    if paper.family == "googlenet":
        return f"{model}: Szegedy et al. 2014, Table 1 (recomputed)"
    if paper.family == "resnet":
        return f"{model}: He et al. 2015, Table 1 (recomputed)"
    layers = next(n.values["weight_layers"] for n in paper.notes if n.kind == "units")
    return (f"{model}: Simonyan and Zisserman 2014, Table 1, configuration "
            f"{paper.config or '?'} ({layers} weight layers)")


def note_text(paper: Any, note: Any) -> str:
    """One note of a paper table, worded."""
    v = note.values
    if paper.family == "googlenet":
        if note.kind == "units":
            return ("params: conv and fc weights, biases left out as Table 1 counts them "
                    "(printed with K = 1024, as the paper does); ops: multiply-adds, weights "
                    "x output positions (M = 1e6).")
        if note.kind == "five_by_five":
            return (f"the #5x5 column is a {', '.join(v['kernels'])} convolution in this "
                    "model (torchvision's deviation, pytorch/vision issue 906).")
        if note.kind == "not_the_paper_network":
            return (f"{v['model']} is not the paper's network: Table 1's printed figures "
                    "are compared for googlenet only.")
        if note.kind == "input_differs":
            return ("input differs from the paper's 3x224x224: Table 1's figures are not "
                    "compared.")
        parts = []
        if "params" in v:
            printed, ours = v["params"]
            parts.append(f"params {printed / 1000:g}K (recomputed {text.paper_k(ours)}, "
                         f"{ours:,} weights)")
        if "ops" in v:
            printed, ours = v["ops"]
            parts.append(f"ops {printed / 1e6:g}M (recomputed {text.paper_m(ours)}, {ours:,})")
        return (f"{v['row']}: Table 1 prints {' and '.join(parts)}; the table shows the "
                "recomputed figures.")
    if paper.family == "resnet":
        if note.kind == "units":
            return ("flops: multiply-adds, as the paper counts them; params: weights, biases "
                    "and BatchNorm.")
        if note.kind == "stride":
            if v["strided"] == "3x3":
                return ("this layout strides the 3x3 conv of each downsampling bottleneck "
                        "(torchvision, 'v1.5'); the paper strides the first 1x1 "
                        "(resnet50_v1), which costs fewer multiply-adds.")
            return ("this layout strides the first 1x1 conv of a downsampling bottleneck, "
                    "as the paper.")
        printed, ours = v["printed"], v["recomputed"]
        return (f"He et al. Table 1 prints {printed / 1e9:.1f}x10^9 FLOPs; recomputed "
                f"{ours / 1e9:.2f}x10^9 ({(ours - printed) / printed:+.1%}).")
    if note.kind == "units":
        return ("params: weights and biases (and BatchNorm, folded into its conv's row, in a "
                "_bn model); flops: multiply-adds.")
    agree = "agrees" if round(v["recomputed"] / 1e6) == v["printed_m"] else "disagrees"
    return (f"Table 2 prints {v['printed_m']}M params for configuration {v['config']}; "
            f"recomputed {v['recomputed']:,} ({agree}).")


def paper_view(paper: Any) -> Table:
    """The table; GoogLeNet's totals are a footer (its CSV carries the rows only), the
    ResNet and VGG tables end with a ``total`` row, as their CSVs do."""
    rows = list(paper.rows)
    footer = None
    if paper.family == "googlenet":
        footer = paper.total
    else:
        rows.append(paper.total)
    return Table("rows", title(paper), _columns(paper), rows, data_columns=paper.columns,
                 footer=footer, notes=[note_text(paper, n) for n in paper.notes])


def data(paper: Any) -> dict[str, Any]:
    from archstat.render.table import records

    view = paper_view(paper)
    return {**paper.analysis.settings(), "style": "paper", "rows": records(view),
            "total": paper.total, "notes": view.notes}


def views(paper: Any, **_: Any) -> list[Table]:
    return [paper_view(paper)]
