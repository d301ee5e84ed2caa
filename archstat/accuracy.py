"""Accuracy against cost: the zoo's published ImageNet accuracy beside archstat's counts.

Canziani, Paszke and Culurciello 2016 (arXiv:1605.07678, Figure 2) plot each network's
top-1 accuracy against the operations of one forward pass, with bubble size =
parameters. :func:`accuracy_table` gathers the same data for zoo models: the published
ImageNet top-1 and top-5 accuracy, in percent, kept beside each builder
(``get_model_info(name).reference["imagenet"]``, an
:class:`~archstat.zoo.registry.ImageNetAccuracy` that names its source and evaluation;
cited, never computed), and the model's parameters and MACs as :func:`archstat.analyze`
counts them (convention ``macs``: one multiply-accumulate of a conv, linear layer or
matmul is one; batch 1, at the model's zoo input, which is not always the resolution the
figure was measured at: see each row's ``evaluation``). A model without a published top-1
is listed in ``left_out`` with the reason, never plotted.

:data:`ILSVRC_WINNERS` keeps the lecture's table of the challenge winners' top-5 error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from archstat.conventions import Convention, get_convention
from archstat.display import Display
from archstat.errors import ArchstatError

#: The lecture whose tables archstat follows.
LECTURE_8 = ("J. Johnson, EECS 498-007 / 598-005 \"Deep Learning for Computer Vision\", "
             "Lecture 8 \"CNN Architectures\"")


@dataclass(frozen=True)
class IlsvrcResult:
    """One ILSVRC classification result as the lecture quotes it: ``year``, ``model``
    (the lecture's name), ``place`` in the challenge, ``top5_error`` in percent (test set,
    the entry's ensemble), and ``as_published``: the figure in a primary source."""

    year: int
    model: str
    place: str
    top5_error: float
    as_published: str


#: The ILSVRC winners' top-5 error (%) the lecture quotes (``LECTURE_8``), year by year.
#: Szegedy et al. 2014 (arXiv:1409.4842), Table 2 "Classification performance", prints
#: the 2012-2014 rows as Team | Year | Place | Error (top-5): SuperVision 2012 1st 16.4%;
#: Clarifai 2013 1st 11.7% (Zeiler's team; the lecture names it ZFNet); VGG 2014 2nd 7.32%;
#: GoogLeNet 2014 1st 6.67%. He et al. 2015 (arXiv:1512.03385), abstract: "An ensemble of
#: these residual nets achieves 3.57% error on the ImageNet test set."
ILSVRC_WINNERS: tuple[IlsvrcResult, ...] = (
    IlsvrcResult(2012, "AlexNet", "1st", 16.4,
                 "SuperVision 16.4% (Szegedy et al. 2014, Table 2)"),
    IlsvrcResult(2013, "ZFNet", "1st", 11.7, "Clarifai 11.7% (Szegedy et al. 2014, Table 2)"),
    IlsvrcResult(2014, "VGG", "2nd", 7.3, "VGG 7.32% (Szegedy et al. 2014, Table 2)"),
    IlsvrcResult(2014, "GoogLeNet", "1st", 6.7,
                 "GoogLeNet 6.67% (Szegedy et al. 2014, Table 2)"),
    IlsvrcResult(2015, "ResNet", "1st", 3.57, "3.57% (He et al. 2015, abstract)"),
)

#: Why a zoo model without an ``"imagenet"`` entry is left out.
NOT_RECORDED = "no published ImageNet figure recorded in the zoo"


@dataclass
class AccuracyTable(Display):
    """Published ImageNet accuracy against cost, one row per model with a figure.

    ``rows``: ``model``, ``family``, ``input`` (the zoo input the costs are counted at,
    CxHxW), ``top1`` and ``top5`` (percent; None where the source prints none),
    ``published_as`` (``accuracy``, or ``error`` where the source prints 100 - accuracy),
    ``crops`` (test crops per image; None: not stated), ``evaluation``, ``source``,
    ``note``, ``params`` (parameter elements the forward reads) and ``macs`` (in
    ``convention``'s unit, batch 1), exact ints. ``left_out``: the models not plotted for
    want of a published top-1 (``model``, ``family``, ``reason``); a model with a top-5
    only is in both. ``ilsvrc`` is :data:`ILSVRC_WINNERS` and ``ilsvrc_source`` the
    lecture it quotes.
    """

    rows: list[dict[str, Any]]
    left_out: list[dict[str, Any]]
    convention: Convention
    ilsvrc: tuple[IlsvrcResult, ...] = ILSVRC_WINNERS
    ilsvrc_source: str = LECTURE_8

    @property
    def plotted(self) -> list[dict[str, Any]]:
        """The rows with a published top-1: the points of the accuracy figure."""
        return [row for row in self.rows if row["top1"] is not None]


def accuracy_table(
    models: Sequence[str] | None = None,
    analyzer: Callable[[str], Any] | None = None,
) -> AccuracyTable:
    """Published top-1/top-5 accuracy and cost of zoo ``models`` (default: the whole zoo,
    in registration order); see :class:`AccuracyTable`. Costs come from ``analyzer(name)``
    (default :func:`archstat.analyze` at the zoo input, convention ``macs``), which a
    caller that already holds the analyses can pass; unknown names raise ArchstatError,
    and a name given twice is one row."""
    from archstat.analysis import analyze
    from archstat.zoo import get_model_info, list_models

    # a model named twice is one row (and one bubble: an SVG id is the model's name)
    names = list(dict.fromkeys(models)) if models else list_models()
    for name in names:
        if ":" in name:  # a spec string: torchvision:NAME, package.module:callable
            raise ArchstatError(f"accuracy against cost covers zoo models, whose published "
                                f"figures the zoo records; {name!r} is not one")
    infos = [get_model_info(name) for name in names]  # fail on a bad name before tracing
    analyze_model = analyzer or analyze
    rows: list[dict[str, Any]] = []
    left_out: list[dict[str, Any]] = []
    for info in infos:
        figure = info.reference.get("imagenet")
        if figure is None or figure.top1 is None:
            reason = NOT_RECORDED if figure is None else figure.note
            if figure is not None and figure.top5 is not None:
                reason = "; ".join(filter(None, ["no published top-1, top-5 only", reason]))
            left_out.append({"model": info.name, "family": info.family, "reason": reason})
        if figure is None or (figure.top1 is None and figure.top5 is None):
            continue
        analysis = analyze_model(info.name)
        if analysis.convention.name != "macs":
            raise ValueError(f"analyzer gave {analysis.convention.name!r} counts, not macs")
        rows.append({
            "model": info.name, "family": info.family,
            "input": "x".join(map(str, info.input_shape)),
            "top1": figure.top1, "top5": figure.top5, "published_as": figure.published_as,
            "crops": figure.crops, "evaluation": figure.evaluation, "source": figure.source,
            "note": figure.note,
            "params": analysis.totals["params"], "macs": analysis.totals["flops"],
        })
    return AccuracyTable(rows, left_out, get_convention("macs"))
