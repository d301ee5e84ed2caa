"""Accuracy against cost: every published figure is cited data beside its builder, the
table puts exact costs beside it, and the models without a figure are listed, not guessed."""

from __future__ import annotations

import csv
import io
import json
import re
from types import SimpleNamespace

import pytest

import archstat
from archstat.accuracy import ILSVRC_WINNERS, LECTURE_8, AccuracyTable, accuracy_table
from archstat.cli import main
from archstat.conventions import get_convention
from archstat.errors import ArchstatError
from archstat.render import render
from archstat.zoo import get_model_info, list_models
from archstat.zoo.registry import ImageNetAccuracy, imagenet_error

ALL_MODELS = list_models()


def _stub(name):
    """An analyzer that traces nothing: what the listing logic needs, fixed costs."""
    return SimpleNamespace(convention=get_convention("macs"),
                           totals={"params": 1_000_000 + len(name), "flops": 10 ** 9})


@pytest.fixture(scope="module")
def zoo_table() -> AccuracyTable:
    """The whole zoo's table; the costs are stubs (the tests below count real ones)."""
    return accuracy_table(analyzer=_stub)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_figure_names_its_source_and_evaluation(name) -> None:
    figure = get_model_info(name).reference.get("imagenet")
    if figure is None:
        return  # listed as left out (see below); nothing to trace
    assert isinstance(figure, ImageNetAccuracy)
    if figure.top1 is None and figure.top5 is None:
        assert figure.note, f"{name}: say why there is no figure"
        return
    assert figure.source and figure.evaluation
    assert figure.published_as in ("accuracy", "error")
    for value in (figure.top1, figure.top5):
        assert value is None or 0 < value < 100
    if figure.top1 is not None and figure.top5 is not None:
        assert figure.top1 < figure.top5
    if "torchvision" in figure.source:
        assert "IMAGENET1K_V1" in figure.source and figure.published_as == "accuracy"
        assert figure.evaluation.startswith("single centre crop")


@pytest.mark.parametrize(
    ("model", "top1", "top5", "cited"),
    [
        # torchvision resnet.py, ResNet50_Weights.IMAGENET1K_V1: acc@1 76.130, acc@5 92.862
        ("resnet50", 76.130, 92.862, "torchvision ResNet50_Weights.IMAGENET1K_V1"),
        # torchvision vgg.py, VGG16_Weights.IMAGENET1K_V1: acc@1 71.592, acc@5 90.382
        ("vgg16", 71.592, 90.382, "torchvision VGG16_Weights.IMAGENET1K_V1"),
        # torchvision googlenet.py, GoogLeNet_Weights.IMAGENET1K_V1 (the BatchNorm variant)
        ("googlenet_tv", 69.778, 89.530, "torchvision GoogLeNet_Weights.IMAGENET1K_V1"),
        # Hu et al. 2018, Table 2: SE-ResNet-50 single-crop error 23.29 / 6.62
        ("se_resnet50", 76.71, 93.38, "Hu et al. 2018, arXiv:1709.01507, Table 2"),
        # Huang et al. 2017, Table 3: DenseNet-121 single-crop error 25.02 / 7.71
        ("densenet121", 74.98, 92.29, "Huang et al. 2017, arXiv:1608.06993, Table 3"),
        # Tan and Le 2019, Table 2: EfficientNet-B0 77.1% / 93.3%
        ("efficientnet_b0", 77.1, 93.3, "Tan and Le 2019, arXiv:1905.11946, Table 2"),
        # Krizhevsky et al. 2012, Table 2, 1 CNN: 40.7% / 18.2% error, ten patches
        ("alexnet2012", 59.3, 81.8, "Krizhevsky, Sutskever, Hinton 2012, NeurIPS, Table 2"),
    ],
)
def test_known_figures_with_their_citation(model, top1, top5, cited) -> None:
    figure = get_model_info(model).reference["imagenet"]
    assert (figure.top1, figure.top5) == (top1, top5)
    assert figure.source.startswith(cited)


#: Every figure, as its source prints it (accuracy, or error where marked "err"), checked
#: against the source when this list was written: torchvision's weights metadata
#: (``_metrics["ImageNet-1K"]``, acc@1 / acc@5), or the paper's table.
PRINTED = {
    # torchvision *_Weights.IMAGENET1K_V1
    "alexnet": (56.522, 79.066), "resnet18": (69.758, 89.078), "resnet34": (73.314, 91.420),
    "resnet50": (76.130, 92.862), "resnet101": (77.374, 93.546),
    "resnet152": (78.312, 94.046), "densenet161": (77.138, 93.560),
    "googlenet_tv": (69.778, 89.530), "vgg11": (69.020, 88.628), "vgg11_bn": (70.370, 89.810),
    "vgg13": (69.928, 89.246), "vgg13_bn": (71.586, 90.374), "vgg16": (71.592, 90.382),
    "vgg16_bn": (73.360, 91.516), "vgg19": (72.376, 90.876), "vgg19_bn": (74.218, 91.842),
    # Krizhevsky et al. 2012 Table 2 (1 CNN); Zeiler and Fergus Table 2 (1 convnet, Fig. 3)
    "alexnet2012": ("err", 40.7, 18.2), "zfnet": ("err", 38.4, 16.5),
    # He et al.'s released ResNet-50, 1-crop (Hu et al. 2018 Table 2, "original")
    "resnet50_v1": ("err", 24.7, 7.8),
    # Huang et al. 2017 Table 3, single-crop
    "densenet121": ("err", 25.02, 7.71), "densenet169": ("err", 23.80, 6.85),
    "densenet201": ("err", 22.58, 6.34), "densenet264": ("err", 22.15, 6.12),
    # Tan and Le 2019 Table 2 (revised version; abstract: B7 84.3%)
    "efficientnet_b0": (77.1, 93.3), "efficientnet_b1": (79.1, 94.4),
    "efficientnet_b2": (80.1, 94.9), "efficientnet_b3": (81.6, 95.7),
    "efficientnet_b4": (82.9, 96.4), "efficientnet_b5": (83.6, 96.7),
    "efficientnet_b6": (84.0, 96.8), "efficientnet_b7": (84.3, 97.0),
    # Szegedy et al. 2014 Table 3: 1 model, 1 crop, top-5 error only
    "googlenet": ("err", None, 10.07),
    # Hu et al. 2018 Table 2, SENet column
    "se_resnet50": ("err", 23.29, 6.62), "se_resnet101": ("err", 22.38, 6.07),
}
#: The zoo models with no published ImageNet figure at all.
NO_FIGURE = {"lenet5", "deformable_resnet50"}


def test_every_zoo_model_is_accounted_for() -> None:
    assert set(PRINTED) | NO_FIGURE == set(ALL_MODELS)
    assert not set(PRINTED) & NO_FIGURE


@pytest.mark.parametrize("model", sorted(PRINTED))
def test_every_figure_is_the_printed_one(model) -> None:
    figure = get_model_info(model).reference["imagenet"]
    printed = PRINTED[model]
    if printed[0] == "err":
        top1, top5 = (None if e is None else round(100 - e, 3) for e in printed[1:])
        assert figure.published_as == "error"
    else:
        top1, top5 = printed
        assert figure.published_as == "accuracy"
    assert (figure.top1, figure.top5) == (top1, top5)


#: A citation: torchvision weights, or a paper (arXiv id or venue) or repository, and the
#: table in it.
CITATION = re.compile(r"^torchvision \w+_Weights\.IMAGENET1K_V1 |"
                      r"(arXiv:\d{4}\.\d{4,5}|NeurIPS|github\.com/[\w-]+/[\w-]+).*Table \d")


@pytest.mark.parametrize("model", sorted(PRINTED))
def test_every_figure_cites_a_table_and_says_how_it_was_measured(model) -> None:
    figure = get_model_info(model).reference["imagenet"]
    assert CITATION.search(figure.source), figure.source
    # single-crop where the source says so, and the evaluation says the same
    single = figure.crops == 1
    assert single == bool(re.search(r"single (centre )?crop|one crop", figure.evaluation)), model
    if figure.crops is None:
        assert "not stated" in figure.evaluation


def test_evaluations_are_stated() -> None:
    ten_patches = get_model_info("alexnet2012").reference["imagenet"]
    assert ten_patches.crops == 10 and "ten 224x224 patches" in ten_patches.evaluation
    assert get_model_info("zfnet").reference["imagenet"].crops is None  # not stated
    assert get_model_info("resnet50").reference["imagenet"].evaluation == (
        "single centre crop 224x224 after resizing the shorter side to 256")
    # the paper's GoogLeNet prints a top-5 error only (Table 3: 1 model, 1 crop, 10.07%)
    googlenet = get_model_info("googlenet").reference["imagenet"]
    assert (googlenet.top1, googlenet.top5, googlenet.crops) == (None, 89.93, 1)


def test_error_rates_become_accuracy_exactly_at_the_printed_digits() -> None:
    figure = imagenet_error(23.29, 6.62, source="s", evaluation="e")
    assert (figure.top1, figure.top5, figure.published_as) == (76.71, 93.38, "error")
    assert imagenet_error(None, 10.07, source="s", evaluation="e").top5 == 89.93


def test_models_without_a_top1_are_listed_with_the_reason(zoo_table) -> None:
    left_out = {row["model"]: row["reason"] for row in zoo_table.left_out}
    assert {"lenet5", "deformable_resnet50", "googlenet"} <= set(left_out)
    assert "MNIST" in left_out["lenet5"]
    assert "top-5 only" in left_out["googlenet"]
    plotted = {row["model"] for row in zoo_table.plotted}
    assert not plotted & set(left_out)
    assert plotted | set(left_out) == set(ALL_MODELS)
    assert "googlenet_tv" in plotted
    # a model with a top-5 only keeps its row, without a top-1
    (googlenet,) = [row for row in zoo_table.rows if row["model"] == "googlenet"]
    assert googlenet["top1"] is None and googlenet["top5"] == 89.93


def test_costs_are_archstats_exact_counts() -> None:
    table = accuracy_table(["alexnet", "vgg16", "resnet50", "efficientnet_b2"])
    assert table.convention.name == "macs"
    by_model = {row["model"]: row for row in table.rows}
    for name in ("alexnet", "efficientnet_b2"):
        totals = archstat.analyze(name).totals
        assert (by_model[name]["params"], by_model[name]["macs"]) == (totals["params"],
                                                                      totals["flops"])
    assert by_model["efficientnet_b2"]["input"] == "3x260x260"  # the paper's, not 224
    # torchvision's documented num_params and GFLOPS (= GMACs): 138,357,544 / 15.47;
    # 25,557,032 / 4.09
    assert (by_model["vgg16"]["params"], by_model["vgg16"]["macs"]) == (138_357_544,
                                                                        15_470_264_320)
    assert by_model["resnet50"]["params"] == 25_557_032
    assert round(by_model["resnet50"]["macs"] / 1e9, 2) == 4.09


@pytest.mark.slow  # traces every zoo model
def test_whole_zoo_with_real_costs() -> None:
    table = accuracy_table()
    assert [row["model"] for row in table.rows] == [
        name for name in ALL_MODELS
        if get_model_info(name).reference["imagenet"].top5 is not None]
    for row in table.rows:
        info = get_model_info(row["model"])
        if "params" in info.reference:  # the published (torchvision or timm) total
            assert row["params"] == info.reference["params"], row["model"]
        assert row["macs"] > 0


def test_analyzer_is_reused_and_must_count_macs() -> None:
    calls = []

    def analyzer(name):
        calls.append(name)
        return archstat.analyze(name)

    table = accuracy_table(["lenet5", "resnet18"], analyzer=analyzer)
    assert calls == ["resnet18"]  # lenet5 has no figure: not traced
    assert [row["model"] for row in table.rows] == ["resnet18"]
    with pytest.raises(ValueError, match="not macs"):
        accuracy_table(["resnet18"],
                       analyzer=lambda name: archstat.analyze(name, convention="lecture"))


def test_a_model_named_twice_is_one_row_and_one_bubble(tmp_path) -> None:
    calls = []

    def analyzer(name):
        calls.append(name)
        return archstat.analyze(name)

    table = accuracy_table(["resnet18", "lenet5", "resnet18"], analyzer=analyzer)
    assert calls == ["resnet18"]
    assert [row["model"] for row in table.rows] == ["resnet18"]
    assert [row["model"] for row in table.left_out] == ["lenet5"]
    out = tmp_path / "acc.svg"  # matplotlib is in the test extra
    assert main(["plot", "--accuracy", "-o", str(out), "resnet18", "resnet18"]) == 0
    assert out.read_text().count('id="bubble-resnet18"') == 1


def test_unknown_model_fails_before_tracing() -> None:
    with pytest.raises(ArchstatError, match="unknown model 'resnt50'"):
        accuracy_table(["resnet18", "resnt50"], analyzer=lambda name: pytest.fail("traced"))


def test_ilsvrc_winners_are_the_lectures() -> None:
    assert [(r.year, r.model, r.top5_error) for r in ILSVRC_WINNERS] == [
        (2012, "AlexNet", 16.4), (2013, "ZFNet", 11.7), (2014, "VGG", 7.3),
        (2014, "GoogLeNet", 6.7), (2015, "ResNet", 3.57)]
    assert [r.place for r in ILSVRC_WINNERS if r.model == "VGG"] == ["2nd"]
    assert "EECS 498-007" in LECTURE_8 and "Lecture 8" in LECTURE_8
    assert all(r.as_published for r in ILSVRC_WINNERS)


def test_csv_carries_exact_params_and_macs() -> None:
    table = accuracy_table(["alexnet", "googlenet", "lenet5", "resnet50"])
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert list(rows[0]) == ["model", "family", "input", "top1", "top5", "params", "macs",
                             "published_as", "crops", "evaluation", "source", "note"]
    assert [r["model"] for r in rows] == ["alexnet", "googlenet", "resnet50"]
    resnet50 = rows[2]
    assert (resnet50["params"], resnet50["macs"]) == ("25557032", "4089184256")
    assert (resnet50["top1"], resnet50["top5"]) == ("76.13", "92.862")
    assert rows[1]["top1"] == "" and rows[1]["top5"] == "89.93"
    assert rows[0]["input"] == "3x227x227" and "227" in rows[0]["note"]


def test_table_and_json_list_the_left_out_models_and_the_winners() -> None:
    table = accuracy_table(["lenet5", "resnet18"])
    data = json.loads(render(table, "json"))
    assert [m["model"] for m in data["models"]] == ["resnet18"]
    assert data["left_out"][0]["model"] == "lenet5"
    assert [w["top5_error"] for w in data["ilsvrc"]] == [16.4, 11.7, 7.3, 6.7, 3.57]
    markdown = render(table, "markdown")
    assert "not plotted: lenet5 (" in markdown and "ILSVRC winners" in markdown
    assert "EECS 498-007" in markdown


def test_report_writes_the_csv_and_a_deterministic_figure() -> None:
    from archstat.render.reports import REPORTS, readme

    reports = {r.filename: r for r in REPORTS if r.filename.startswith("accuracy")}
    assert set(reports) == {"accuracy.csv", "accuracy.svg"}
    first = {name: report.build(_stub) for name, report in reports.items()}
    assert first == {name: report.build(_stub) for name, report in reports.items()}
    rows = list(csv.DictReader(io.StringIO(first["accuracy.csv"])))
    # every model with a figure, in registration order; lenet5 and deformable: none
    assert [row["model"] for row in rows] == [m for m in ALL_MODELS if m in PRINTED]
    svg = first["accuracy.svg"]
    assert svg.startswith("<?xml") and "</svg>" in svg
    assert "Matplotlib v" not in svg and "dc:date" not in svg  # nothing that moves
    bubbles = set(re.findall(r'<g id="bubble-(\w+)">', svg))
    assert bubbles == {m for m, printed in PRINTED.items() if printed[-2] is not None}
    assert "| `accuracy.svg` |" in readme(list(reports.values()))
