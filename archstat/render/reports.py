"""``archstat report``: the committed ``reports/`` directory, regenerated.

The report set is data: :data:`REPORTS` lists one :class:`Report` per file, each with the
function that builds its text from an analyser, a line on what it holds and the
description of its columns. ``reports/README.md`` is generated from the same list, so a
report added here (one entry) is written, documented and checked by the test that
regenerates ``reports/`` and compares it byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archstat.files import atomic_write, report_directory
from archstat.render import render

#: ``analyzer(model, convention="macs")``: a memoised :func:`archstat.analyze` at the
#: model's default input, batch 1, float32.
Analyzer = Callable[..., Any]

REPORT_MODELS = ("alexnet", "vgg16", "googlenet", "resnet50")
#: the families after ResNet (issue 12): layer by layer only
LATER_FAMILIES = ("densenet121", "se_resnet50", "efficientnet_b0")

LAYERS_DOC = """\
One row per layer record, the default style of `archstat analyze` (convention `macs`).
`name` module path ("" for the model's own functional code), `type` module class,
`input_shape`/`output_shape` first input/output tensor (NxCxHxW), `params` elements of
the parameters its ops read for the first time, `activation_bytes` bytes of new storage
its ops allocate (float32, batch 1; views and in-place results allocate nothing),
`flops` multiply-accumulates of conv/linear/matmul, `flops_<kind>` the same split by op
kind (conv, linear, norm, pool, activation, elementwise),
`unhandled_ops` ops that did work no formula counts, `ops` the aten ops it ran,
`live_bytes_after` bytes of activations still live once the layer has run (`archstat
memory`), `receptive_field` input pixels a unit of its output sees (largest over the paths;
`HxW` when not square, blank without a field), `receptive_field_min` the same through the
smallest single path, `receptive_field_jump` the effective stride and
`receptive_field_start` the first pixel of the first unit's field (docs/tables.md)."""

LECTURE_DOC = """\
The EECS 498/598 Lecture 8 layout, per image (convention `lecture`: multiply-adds, and
pooling at kernel area per output element). One row per conv, pool, fc or flatten layer;
activations, norms, dropout, a module's cat or residual add fold into the row before.
`layer` the lecture's name (conv1, pool1, ..., fc6) for a plain chain of layers, the
module path otherwise; `in_channels`/`in_size`, `out_channels`/`out_size` channels (or
features) and spatial side (blank for a vector, `HxW` when not square); `filters`,
`kernel`, `stride`, `pad` the layer's geometry; `memory_kb` output elements x 4 bytes /
1024; `params_k` weights + biases / 1000; `flop_m` count / 1e6; `receptive_field` input
pixels a unit of the output sees (largest over the paths). Full precision."""

GOOGLENET_PAPER_DOC = """\
Szegedy et al. 2014 Table 1, recomputed from the trace (convention `macs`). `type`,
`patch_size_stride`, `output_size` (HxWxC), `depth` (conv/fc layers on the longest path
through the row), `n1x1` ... `pool_proj` the filters of each inception branch, `params`
conv and fc weights without biases (as the paper counts), `ops` multiply-adds. The paper
prints conv1 as 2.7K params / 34M ops (the configuration gives 9,408 / 118,013,952), 4c as
463K params (509,440) and 5a as 1072K / 54M (1,042,432 / 51,079,168); the file holds the
recomputed figures."""

RESNET_PAPER_DOC = """\
He et al. 2015 Table 1, recomputed (convention `macs`): `layer_name` (conv1, conv2_x ...,
head, total), `output_size`, `blocks` (the first block's main path times the block
count), `params` (weights, biases, BatchNorm), `flops` multiply-adds. The paper prints
3.8x10^9 for ResNet-50; torchvision's layout, which strides the 3x3 conv of a
downsampling bottleneck, costs 4.09x10^9."""

VGG_PAPER_DOC = """\
Simonyan and Zisserman 2014 Table 1, configuration D, recomputed (convention `macs`):
`layer` (conv3-64 ..., maxpool, FC-4096, soft-max, total), `output_size` (HxWxC),
`params` weights and biases, `flops` multiply-adds."""

COMPARE_DOC = """\
Totals per model over its conv/pool/fc/flatten layers (convention `macs`, float32, batch
1): `params`, `flops`, `activation_bytes` (bytes of new storage the forward allocates),
`peak_activation_bytes` (the most live at once), `output_bytes` (every such layer's output
once: the lecture's memory total), `layers` (conv and fc layers), `depth` (conv and fc
layers on the longest path), and `params_ratio`, `flops_ratio`, `activation_bytes_ratio`,
`peak_activation_bytes_ratio` to the first model."""

STAGES_DOC = """\
The per-stage breakdown of `archstat compare googlenet vgg16 --stages`: one row per output
resolution (`stage`, the larger spatial side; fc layers count at 1) and, per model,
`<model>_layers` (conv/fc), `<model>_params`, `<model>_flops` (macs),
`<model>_activation_bytes` (new storage allocated)."""

BOTTLENECK_DOC = """\
`archstat bottleneck MODEL --level pair|module|network` (multiply-adds, batch 1; see
[docs/bottleneck.md](../docs/bottleneck.md)). pairs: every 1x1 -> kxk pair (`location`,
`input_shape`, `in_channels`, `reduced_channels`, `out_channels`, `kernel`, `macs` and
`params` as built, `direct_macs`/`direct_params` of the kxk applied to the 1x1's input,
`*_saving_ratio` = direct / built). modules: every inception module, residual block,
dense block or MBConv block (`module`, `kind`, `input_shape`, channels, `macs`/`params`
of its convolutions against `naive_macs`/`naive_params` of Figure 2(a), a basic block,
the dense layers without their 1x1s, or one standard kxk conv). network: `model`,
`variant` (`actual` or `naive`), `macs`, `params` of the whole network."""


ACCURACY_DOC = """\
Published ImageNet-1k accuracy beside archstat's cost, one row per zoo model with a
published figure (`archstat.accuracy_table`; see [docs/api.md](../docs/api.md)): `model`,
`family`, `input` (the zoo input the costs are counted at), `top1`/`top5` percent as the
source prints them (100 - error where it prints errors; blank: none printed), `params`,
`macs` (convention `macs`, batch 1), `published_as` (accuracy or error), `crops` test
crops per image (blank: not stated), `evaluation`, `source` (paper and table, or
torchvision weights), `note`. Cited, never computed; models without a figure are not rows."""

ACCURACY_FIGURE_DOC = """\
`archstat plot --accuracy` (Canziani et al. 2016, Figure 2): published top-1 against MACs
on a log axis, bubble area proportional to parameters, one colour per family, filled for a
single-crop figure and hollow for multi-crop or unstated; the models without a published
top-1 are named beside it. The points are `accuracy.csv`'s rows with a top-1."""


@dataclass(frozen=True)
class Report:
    """One file of ``reports/``: its name, the function that builds its text, a line on
    what it holds (with the input used) and the description of its columns."""

    filename: str
    build: Callable[[Analyzer], str]
    about: str
    columns: str


def _input(model: str) -> str:
    from archstat.zoo import get_model_info

    return "x".join(map(str, get_model_info(model).input_shape))


def _layers_csv(model: str) -> Callable[[Analyzer], str]:
    return lambda analyzer: render(analyzer(model), "csv")


def _styled_csv(model: str, style: str, convention: str) -> Callable[[Analyzer], str]:
    def build(analyzer: Analyzer) -> str:
        from archstat.lecture import lecture_table
        from archstat.paper import paper_table

        table = (lecture_table if style == "lecture" else paper_table)(
            analyzer(model, convention=convention))
        return render(table, "csv")

    return build


def _bottleneck_csv(model: str, level: str) -> Callable[[Analyzer], str]:
    def build(_analyzer: Analyzer) -> str:
        from archstat.bottlenecks import bottleneck

        return render(bottleneck(model, level=level), "csv", level=level)

    return build


def _compare_csv(models: Sequence[str] | None, stages: bool = False) -> Callable[[Analyzer], str]:
    def build(analyzer: Analyzer) -> str:
        from archstat.compare import compare
        from archstat.zoo import list_models

        result = compare([analyzer(m) for m in models or list_models()])
        return render(result, "csv", stages_first=stages)

    return build


def _accuracy(fmt: str) -> Callable[[Analyzer], str]:
    """``accuracy.csv`` (``fmt="csv"``) or the figure (``"svg"``: text, deterministic)."""

    def build(analyzer: Analyzer) -> str:
        from archstat.accuracy import accuracy_table
        from archstat.render.plot import accuracy_chart

        table = accuracy_table(analyzer=analyzer)
        return render(table, "csv") if fmt == "csv" else accuracy_chart(table, fmt=fmt).decode()

    return build


FACTORIZE_DOC = """\
`archstat factorize MODEL -f csv` (multiply-adds, batch 1; see
[docs/cli.md](../docs/cli.md#archstat-factorize)): one row per stride-1 conv stack
(`direction` merge, against one conv of its receptive field) or large kernel (`split`,
against 3x3 factors, the stride on the first). `layers` the built convs, `input_shape`,
`output_shape`, channels, `kernel`/`stride` of each built conv, `receptive_field`,
`params`/`flops` as built, `alt_kernel`/`alt_stride`/`alt_params`/`alt_flops` of the
alternative, `alt_*_ratio` = alternative / built."""

SCALING_DOC = """\
`archstat scale efficientnet_b0 --sweep -f csv` (multiply-adds, batch 1; see
[docs/cli.md](../docs/cli.md#archstat-scale)): one row per compound coefficient `phi`
0..7: the multipliers `depth` 1.2^phi, `width` 1.1^phi, `resolution` 1.15^phi, the
`input_shape` built and the `exact_side` asked, `blocks` built and `exact_blocks` asked,
`params`, `flops`, `predicted_ratio` (1.92^phi), the measured `flops_ratio` and
`params_ratio` over phi 0; then the published EfficientNet-B<phi>: `variant`, its
hand-picked `variant_depth`, `variant_width`, `variant_resolution`, the paper's Table 2
`variant_paper_params_m` (millions) and `variant_paper_flops_g` (billions of
multiply-adds), torchvision's documented `variant_torchvision_params`,
`variant_torchvision_gmacs` at `variant_torchvision_crop`, and the zoo's B<phi> at the
paper's resolution: `variant_params`, `variant_flops`, `variant_flops_ratio` over B0."""


def _factorize_csv(model: str) -> Callable[[Analyzer], str]:
    def build(_analyzer: Analyzer) -> str:
        from archstat.factorize import factorize_model

        return render(factorize_model(model), "csv")

    return build


def _scaling_csv(_analyzer: Analyzer) -> str:
    from archstat.scaling import scale_sweep

    return render(scale_sweep("efficientnet_b0"), "csv")


REPORTS: list[Report] = [
    *(report for model in REPORT_MODELS for report in (
        Report(f"{model}_layers.csv", _layers_csv(model),
               f"{model} layer by layer, input {_input(model)}", LAYERS_DOC),
        Report(f"{model}_lecture.csv", _styled_csv(model, "lecture", "lecture"),
               f"{model} in the lecture's layout, input {_input(model)}", LECTURE_DOC),
    )),
    *(Report(f"{model}_layers.csv", _layers_csv(model),
             f"{model} layer by layer, input {_input(model)}", LAYERS_DOC)
      for model in LATER_FAMILIES),
    Report("googlenet_paper.csv", _styled_csv("googlenet", "paper", "macs"),
           "GoogLeNet's Table 1, input 3x224x224", GOOGLENET_PAPER_DOC),
    Report("resnet50_paper.csv", _styled_csv("resnet50", "paper", "macs"),
           "ResNet-50's stage table, input 3x224x224", RESNET_PAPER_DOC),
    Report("vgg16_paper.csv", _styled_csv("vgg16", "paper", "macs"),
           "VGG-16's configuration column, input 3x224x224", VGG_PAPER_DOC),
    Report("compare_googlenet_vgg16.csv", _compare_csv(["googlenet", "vgg16"]),
           "googlenet and vgg16 side by side, input 3x224x224", COMPARE_DOC),
    Report("compare_googlenet_vgg16_stages.csv", _compare_csv(["googlenet", "vgg16"], True),
           "googlenet and vgg16 per output resolution, input 3x224x224", STAGES_DOC),
    Report("compare_zoo.csv", _compare_csv(None),
           "every zoo model, each at its zoo input (`archstat zoo` lists them); ratios to "
           "alexnet",
           COMPARE_DOC),
    # The names: bottleneck_<model>.csv holds the per-module savings, the
    # headline of the analysis; the pair and network levels sit beside it.
    *(Report(f"bottleneck_{model}{suffix}.csv", _bottleneck_csv(model, level),
             f"{model}'s 1x1 bottlenecks, {level} level, input {_input(model)}", BOTTLENECK_DOC)
      for model in ("googlenet", "resnet50", "densenet121", "efficientnet_b0")
      for level, suffix in (("module", ""), ("pair", "_pairs"), ("network", "_network"))
      # an MBConv's 1x1 feeds a depthwise conv: no 1x1 -> kxk pair to list
      if (model, level) != ("efficientnet_b0", "pair")),
    *(Report(f"factorize_{model}.csv", _factorize_csv(model),
             f"{model}'s conv stacks and large kernels against their alternatives, input "
             f"{_input(model)}", FACTORIZE_DOC) for model in ("vgg16", "googlenet")),
    Report("scaling_efficientnet.csv", _scaling_csv, "efficientnet_b0 scaled by phi = 0..7 "
           "beside the published B0-B7", SCALING_DOC),
    Report("accuracy.csv", _accuracy("csv"), "published ImageNet top-1/top-5 of the zoo "
           "models that have one, beside params and MACs at each zoo input", ACCURACY_DOC),
    Report("accuracy.svg", _accuracy("svg"), "top-1 against MACs, bubble area = params: "
           "the accuracy figure", ACCURACY_FIGURE_DOC),
]


def readme(reports: Sequence[Report] = REPORTS) -> str:
    """reports/README.md: every file with what it holds, then every column set."""
    lines = [
        "# reports/",
        "",
        "Generated by `archstat report` (do not edit by hand: a test regenerates this",
        "directory and fails on any difference). Batch 1, float32; each model at its zoo",
        "input unless said otherwise. CSV carries exact integers and full-precision floats.",
        "",
        "| file | holds |",
        "|---|---|",
        *(f"| `{r.filename}` | {r.about} |" for r in reports),
        "| `html/` | the same figures as a static site: an index with the zoo comparison, "
        "the compare page and one page per model above (lecture and layer tables, "
        "bottlenecks, memory, charts); see [docs/html.md](../docs/html.md) |",
        "",
        "## Columns",
    ]
    docs: dict[str, list[str]] = {}
    for report in reports:
        docs.setdefault(report.columns, []).append(report.filename)
    for doc, files in docs.items():
        lines += ["", ", ".join(f"`{f}`" for f in files) + ":", "", doc]
    return "\n".join(lines) + "\n"


def build_reports(reports: Sequence[Report] = REPORTS) -> dict[str, str]:
    """File name -> text of every report, and README.md; each model analysed once."""
    from archstat.analysis import analyze

    @functools.cache
    def analyzer(model: str, convention: str = "macs") -> Any:
        return analyze(model, convention=convention)

    files = {report.filename: report.build(analyzer) for report in reports}
    return {**files, "README.md": readme(reports)}


def write_reports(out: str | Path = "reports", reports: Sequence[Report] = REPORTS) -> list[Path]:
    """Regenerate the reports into ``out`` (created if missing), each file atomically."""
    directory = report_directory(out)
    return [atomic_write(directory / name, text) for name, text in build_reports(reports).items()]
