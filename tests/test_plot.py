"""`archstat plot`: real, non-blank images of the requested size, in PNG and SVG."""

from __future__ import annotations

import math
import re
import sys

import matplotlib.image as image  # the `plot` extra; the `test` extra has it too
import pytest

from archstat.cli import main


def _pixels(path):
    return image.imread(str(path))


def test_png_has_the_requested_size_and_is_not_blank(tmp_path) -> None:
    target = tmp_path / "alexnet_vgg.png"
    assert main(["plot", "alexnet", "vgg16", "--size", "1200x700", "-o", str(target)]) == 0
    pixels = _pixels(target)
    assert pixels.shape[:2] == (700, 1200)
    rgb = pixels[..., :3]
    coloured = (rgb.max(axis=2) - rgb.min(axis=2) > 0.2).mean()  # bars, not grey text
    assert coloured > 0.02 and rgb.std() > 0.05


def test_one_metric_log_scale_and_svg(tmp_path) -> None:
    png = tmp_path / "googlenet.png"
    assert main(["plot", "googlenet", "--metric", "flops", "--log", "-o", str(png)]) == 0
    assert _pixels(png).shape[:2] == (900, 1600)
    svg = tmp_path / "resnet.svg"
    assert main(["plot", "resnet18", "-m", "params", "-o", str(svg)]) == 0
    text = svg.read_text()
    assert "<svg" in text and "resnet18 (lecture)" in text
    again = tmp_path / "again.svg"
    assert main(["plot", "resnet18", "-m", "params", "-o", str(again)]) == 0
    assert again.read_bytes() == svg.read_bytes()  # no dates in the file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plot", "alexnet", "-o", "x.gif"], "plot writes png or svg, not 'gif'"),
        (["plot", "alexnet", "-m", "speed", "-o", "x.png"], "unknown metric 'speed'"),
        (["plot", "alexnet", "--size", "800", "-o", "x.png"], "--size is WIDTHxHEIGHT"),
        (["plot", "alexnet", "--size", "50x50", "-o", "x.png"], "too small"),
        (["plot", "alexnet", "--size", "0x0", "-o", "x.png"], "too small"),
        (["plot", "alexnet", "--size", "100000x100000", "-o", "x.png"], "too large"),
    ],
)
def test_errors_are_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_missing_matplotlib_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["plot", "alexnet", "-o", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err == "archstat: error: archstat plot needs matplotlib: pip install 'archstat[plot]'\n"


def test_savings_chart_draws_one_bar_pair_per_module(tmp_path, monkeypatch) -> None:
    from archstat.bottlenecks import bottleneck
    from archstat.render import plot

    drawn = {}
    original = plot.savings_chart

    def spy(reports, *args, **kwargs):
        drawn.update({name: modules for name, modules in reports})
        return original(reports, *args, **kwargs)

    monkeypatch.setattr(plot, "savings_chart", spy)
    target = tmp_path / "savings.png"
    assert main(["plot", "googlenet", "vgg16", "-m", "savings", "--size", "1000x600",
                 "-o", str(target)]) == 0
    pixels = _pixels(target)
    assert pixels.shape[:2] == (600, 1000) and pixels[..., :3].std() > 0.05
    # the bars are the module-level savings, one pair per inception module; none for vgg16
    expected = bottleneck("googlenet", level="module").modules
    assert drawn["googlenet"]["module"].tolist() == [f"inception{m}" for m in
                                                     ("3a", "3b", "4a", "4b", "4c", "4d",
                                                      "4e", "5a", "5b")]
    assert drawn["googlenet"]["macs_saving_ratio"].tolist() == \
        expected["macs_saving_ratio"].tolist()
    assert drawn["vgg16"].empty


# --- accuracy against cost (archstat plot --accuracy) ---------------------------------

#: Parameter totals as torchvision documents them (num_params), independent of archstat.
PUBLISHED_PARAMS = {"alexnet": 61_100_840, "resnet18": 11_689_512, "resnet50": 25_557_032,
                    "vgg16": 138_357_544, "efficientnet_b0": 5_288_548}
ACCURACY_MODELS = [*PUBLISHED_PARAMS, "zfnet", "lenet5"]


def _numbers(text):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def _circle(group):
    """(x, y, radius) in points of the first circle drawn in an SVG group: a marker path
    in <defs> placed by <use x y>, or a path at absolute coordinates."""
    values = _numbers(re.search(r'\bd="([^"]*)"', group).group(1))
    xs, ys = values[0::2], values[1::2]
    used = re.search(r'<use [^>]*\bx="([-\d.]+)" y="([-\d.]+)"', group)
    dx, dy = (float(used.group(1)), float(used.group(2))) if used else (0.0, 0.0)
    return ((max(xs) + min(xs)) / 2 + dx, (max(ys) + min(ys)) / 2 + dy,
            (max(xs) - min(xs)) / 2)


def _groups(svg, prefix):
    """id suffix -> the SVG text from ``<g id="<prefix>-...">`` to the next group id."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(rf'<g id="{prefix}-([\w.]+)">', svg)]
    return {name: svg[start:svg.find('<g id="', start + 1)] for start, name in starts}


@pytest.fixture(scope="module")
def accuracy_svg():
    from archstat.accuracy import accuracy_table
    from archstat.render.plot import accuracy_chart

    table = accuracy_table(ACCURACY_MODELS)
    return table, accuracy_chart(table, (1200, 800), "svg").decode()


def test_bubble_area_is_proportional_to_published_params(accuracy_svg) -> None:
    from archstat.render.plot import MAX_BUBBLE

    _, svg = accuracy_svg
    radius = {name: _circle(group)[2] for name, group in _groups(svg, "bubble").items()}
    assert set(radius) == {"alexnet", "resnet18", "resnet50", "vgg16", "efficientnet_b0",
                           "zfnet"}  # lenet5: no published top-1
    # the largest bubble has area MAX_BUBBLE (points squared): diameter sqrt(MAX_BUBBLE)
    assert radius["vgg16"] == pytest.approx(math.sqrt(MAX_BUBBLE) / 2, rel=1e-5)
    for name, params in PUBLISHED_PARAMS.items():
        area_ratio = radius[name] ** 2 / radius["vgg16"] ** 2
        assert area_ratio == pytest.approx(params / PUBLISHED_PARAMS["vgg16"], rel=1e-4), name
    # the size legend's bubbles are on the same scale: 100M params against vgg16's 138M
    legend = {int(n): _circle(g)[2] for n, g in _groups(svg, "legend").items()}
    assert sorted(legend) == [5_000_000, 20_000_000, 100_000_000]
    for count, r in legend.items():
        assert r ** 2 / radius["vgg16"] ** 2 == pytest.approx(
            count / PUBLISHED_PARAMS["vgg16"], rel=1e-4)


def test_points_sit_at_top1_against_log_macs(accuracy_svg) -> None:
    table, svg = accuracy_svg
    centres = {name: _circle(group)[:2] for name, group in _groups(svg, "bubble").items()}
    rows = {row["model"]: row for row in table.plotted}
    # one scale per axis: y linear in the cited top-1 (up is better), x linear in log MACs
    low, high = "alexnet", "efficientnet_b0"  # 56.522 and 77.1
    y_per_point = ((centres[high][1] - centres[low][1])
                   / (rows[high]["top1"] - rows[low]["top1"]))
    assert y_per_point < 0  # SVG's y grows downwards
    cheap, dear = "efficientnet_b0", "vgg16"
    x_per_decade = ((centres[dear][0] - centres[cheap][0])
                    / math.log10(rows[dear]["macs"] / rows[cheap]["macs"]))
    for name, (x, y) in centres.items():
        assert y - centres[low][1] == pytest.approx(
            y_per_point * (rows[name]["top1"] - rows[low]["top1"]), abs=0.01), name
        assert x - centres[cheap][0] == pytest.approx(
            x_per_decade * math.log10(rows[name]["macs"] / rows[cheap]["macs"]), abs=0.01)
    assert rows["zfnet"]["top1"] == 61.6  # Zeiler and Fergus, Table 2: 38.4% error


def test_every_point_is_labelled_and_the_left_out_are_named(accuracy_svg) -> None:
    _, svg = accuracy_svg
    bubbles = _groups(svg, "bubble")
    assert set(_groups(svg, "label")) == set(bubbles)
    for name in bubbles:
        assert f'<g id="label-{name}">\n    <!-- {name} -->' in svg
    # lenet5 is named once: in the legend of the models left out, not as a point
    left_out = svg[svg.index('<g id="left-out">'):]
    assert "<!-- not plotted: -->" in left_out and "<!-- no published top-1 -->" in left_out
    assert svg.count("<!-- lenet5 -->") == 1 and "<!-- lenet5 -->" in left_out
    # single crop filled, multi-crop or unstated (zfnet) hollow
    assert re.search(r'style="fill: #[0-9a-f]{6}; fill-opacity', bubbles["resnet50"])
    assert 'style="fill: none' in bubbles["zfnet"]
    # the x axis reads in archstat's units: 1G, 2G, 5G ...
    assert "<!-- 1G -->" in svg and "<!-- 10G -->" in svg


def test_accuracy_png_from_the_cli(tmp_path, capsys) -> None:
    target = tmp_path / "accuracy.png"
    assert main(["plot", "--accuracy", "resnet18", "vgg16", "lenet5", "--size", "1000x600",
                 "-o", str(target)]) == 0
    pixels = _pixels(target)
    assert pixels.shape[:2] == (600, 1000)
    rgb = pixels[..., :3]
    assert (rgb.max(axis=2) - rgb.min(axis=2) > 0.2).mean() > 0.005  # coloured bubbles
    err = capsys.readouterr().err
    assert err.startswith("archstat: note: not plotted: lenet5 (") and "MNIST" in err


@pytest.mark.slow  # traces every zoo model
def test_accuracy_svg_of_the_whole_zoo(tmp_path, capsys) -> None:
    from archstat.zoo import get_model_info, list_models

    target = tmp_path / "accuracy.svg"
    assert main(["plot", "--accuracy", "-o", str(target)]) == 0
    svg = target.read_text()
    with_top1 = {name for name in list_models()
                 if getattr(get_model_info(name).reference.get("imagenet"), "top1", None)}
    assert set(_groups(svg, "bubble")) == set(_groups(svg, "label")) == with_top1
    noted = re.findall(r"not plotted: (\w+) \(", capsys.readouterr().err)
    assert set(noted) == set(list_models()) - with_top1 and noted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plot", "--accuracy", "-o", "x.gif"], "plot writes png or svg, not 'gif'"),
        (["plot", "--accuracy", "-m", "flops", "-o", "x.png"], "--metric does not apply"),
        (["plot", "--accuracy", "--log", "-o", "x.png"], "--log does not apply"),
        (["plot", "--accuracy", "-i", "3x224x224", "-o", "x.png"], "--input does not apply"),
        (["plot", "--accuracy", "-c", "flops", "-o", "x.png"], "--convention does not apply"),
        (["plot", "--accuracy", "--size", "50x50", "-o", "x.png"], "too small"),
        (["plot", "--accuracy", "resnt50", "-o", "x.png"], "unknown model 'resnt50'"),
        (["plot", "--accuracy", "torchvision:resnet18", "-o", "x.png"], "covers zoo models"),
        (["plot", "--accuracy", "lenet5", "-o", "x.png"],
         "no model to plot: none has a published top-1 accuracy (lenet5: a 32x32 digit"),
        (["plot", "-o", "x.png"], "name at least one model to plot (or give --accuracy)"),
    ],
)
def test_accuracy_errors_are_one_line_and_exit_2(args, message, capsys, tmp_path,
                                                 monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archstat: error: ") and message in err
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_accuracy_without_matplotlib_fails_before_tracing(monkeypatch, capsys, tmp_path) -> None:
    import archstat.accuracy

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(archstat.accuracy, "accuracy_table",
                        lambda *a, **k: pytest.fail("traced the zoo first"))
    assert main(["plot", "--accuracy", "-o", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err == "archstat: error: archstat plot needs matplotlib: pip install 'archstat[plot]'\n"
