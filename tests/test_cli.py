"""The command line: exit codes, one-line errors, formats, atomic output files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from archstat.cli import app, main

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_analyze_table_has_totals_row() -> None:
    result = invoke("analyze", "alexnet")
    assert result.exit_code == 0, result.output
    # 13 features + avgpool + torch.flatten in the root + 7 classifier modules
    assert "total (22 layers)" in result.output
    assert "61.1M" in result.output  # params, human units
    assert "flops (macs)" in result.output


def test_analyze_csv_and_json_carry_exact_integers() -> None:
    out = invoke("analyze", "vgg16", "--format", "csv").output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(int(r["params"]) for r in rows) == 138_357_544
    data = json.loads(invoke("analyze", "vgg16", "-f", "json", "-c", "flops").output)
    assert data["model"] == "vgg16" and data["convention"] == "flops"
    assert data["totals"]["params"] == 138_357_544
    assert data["totals"]["flops"] == 2 * sum(int(r["flops"]) for r in rows)


def test_markdown_and_depth() -> None:
    out = invoke("analyze", "resnet50", "--depth", "1", "--format", "markdown").output
    assert "| layer4 | Sequential |" in out
    assert out.count("\n| ") == 2 + 11 + 1  # header, separator, 11 rows, totals


@pytest.mark.slow  # traces every zoo model
def test_zoo_lists_every_model() -> None:
    from archstat.zoo import get_model, list_models

    data = json.loads(invoke("zoo", "--format", "json").output)
    assert [m["model"] for m in data["models"]] == list_models()
    vgg16 = next(m for m in data["models"] if m["model"] == "vgg16")
    assert vgg16["params"] == 138_357_544 and vgg16["input"] == "3x224x224"
    # the same count as analyze: googlenet's aux heads are built but not run
    googlenet = next(m for m in data["models"] if m["model"] == "googlenet")
    aux = sum(p.numel() for n, p in get_model("googlenet").named_parameters()
              if n.startswith("aux"))
    assert googlenet["params"] == sum(p.numel() for p in get_model("googlenet").parameters()) - aux
    assert googlenet["params_unused"] == aux


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "resnet5"], "did you mean: resnet50"),
        (["analyze", "alexnet", "--input", "3by224"], "malformed input shape"),
        (["analyze", "vgg16", "--input", "3x16x16"], "features.30 (MaxPool2d)"),
        (["analyze", "nope.nope:build"], "cannot import"),
        (["analyze", "alexnet", "--convention", "fvcor"], "did you mean: fvcore"),
        (["analyze", "alexnet", "--format", "xml"], "unknown format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_click_usage_errors_are_one_line_too(capsys) -> None:
    assert main(["analyze", "alexnet", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err == "archstat: error: No such option: --bogus\n"


def test_output_file_is_written_atomically(tmp_path) -> None:
    target = tmp_path / "vgg.json"
    assert main(["analyze", "vgg11", "-o", str(target)]) == 0  # suffix picks json
    assert json.loads(target.read_text())["model"] == "vgg11"
    before = target.read_bytes()
    # a failing run leaves the previous file intact and no temporary file behind
    assert main(["analyze", "vgg11", "--input", "3x8x8", "-o", str(target)]) == 2
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["vgg.json"]


def test_unhandled_ops_warn_on_stderr(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "svdnet.py").write_text(
        "import torch\n"
        "class SVD(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.linalg.svdvals(x)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["analyze", "svdnet:SVD", "--input", "4x4", "-f", "json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("archstat: warning: 1 op(s) did work")
    assert "svd" in captured.err and captured.err.count("\n") == 1
    assert json.loads(captured.out)["unhandled"][0]["calls"] == 1


def test_version_and_fast_help_without_torch() -> None:
    code = (
        "import sys; from archstat.cli import main; rc = main(['--help']); "
        "assert 'torch' not in sys.modules, 'archstat --help imported torch'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "analyze" in proc.stdout
    assert invoke("--version").output.startswith("archstat ")


def test_builder_with_a_missing_import_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "needs_missing.py").write_text(
        "def build():\n    import no_such_package_here\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["analyze", "needs_missing:build"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_package_here" in err


def test_output_file_gets_the_usual_permissions(tmp_path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        target = tmp_path / "zoo.csv"
        assert main(["zoo", "-o", str(target)]) == 0
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


def test_layer_names_are_not_rich_markup(tmp_path, monkeypatch) -> None:
    (tmp_path / "markupnet.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.blocks = nn.ModuleDict({'[red]b': nn.Linear(4, 4)})\n"
        "    def forward(self, x):\n"
        "        return self.blocks['[red]b'](x)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = invoke("analyze", "markupnet:Net", "--input", "4").output
    assert "blocks.[red]b" in out


def test_table_written_to_a_file_ignores_the_terminal(tmp_path) -> None:
    target = tmp_path / "table.txt"
    result = runner.invoke(app, ["analyze", "resnet18", "-o", str(target)],
                           env={"COLUMNS": "40"}, color=True)
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "\x1b" not in text and "…" not in text
    assert "layer1.0.conv1" in text and "total (" in text


def test_signed_and_bounded_numbers_are_right_aligned() -> None:
    from archstat.render.table import Column, Table, to_markdown

    table = Table("rows", "t", [Column("metric", "metric"), Column("pct", "headroom %")],
                  [{"metric": "flops", "pct": "-<0.01%"}, {"metric": "params", "pct": "0.17%"}])
    text = to_markdown(table)
    assert text.splitlines()[3] == "| --- | ---: |"
