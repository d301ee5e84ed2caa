"""`archstat plot`: real, non-blank images of the requested size, in PNG and SVG."""

from __future__ import annotations

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
