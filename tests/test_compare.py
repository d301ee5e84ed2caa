"""`archstat compare`: totals with ratios, the per-stage breakdown and the cuts, checked
against hand computation from the architectures (and the lecture's stem comparison)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from typer.testing import CliRunner

import archstat
from archstat.cli import app, main
from archstat.compare import CSV_COLUMNS, compare, compare_models
from archstat.zoo.vgg import cfgs as vgg_cfgs

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def headline():
    return compare([archstat.analyze("googlenet"), archstat.analyze("vgg16")])


def _vgg16_convs(until_side: int = 0):
    """(params, macs, output elements, max pool output elements) of VGG-16's convs and
    pools, from Table 1's column D, down to (and including the pool that reaches)
    ``until_side``."""
    params = macs = elements = pooled = 0
    side, channels = 224, 3
    for v in vgg_cfgs["D"]:
        if v == "M":
            side //= 2
            elements += channels * side * side
            pooled += channels * side * side
            if side == until_side:
                break
        else:
            params += 9 * channels * v + v
            macs += 9 * channels * v * side * side
            elements += v * side * side
            channels = v
    return params, macs, elements, pooled


def test_headline_totals_by_hand(headline) -> None:
    rows = headline.totals.set_index("model")
    g, v = rows.loc["googlenet"], rows.loc["vgg16"]
    assert g.params == 6_998_552 and v.params == 138_357_544
    assert v.flops == 15_470_264_320
    assert v.params_ratio == 138_357_544 / 6_998_552  # 19.8x
    assert v.flops_ratio == v.flops / g.flops
    # conv/fc layers: 3 stem convs + 9 inception modules x 6 + 1 fc; depth 22 vs 16
    assert (g.layers, g.depth, v.layers, v.depth) == (58, 22, 16, 16)
    # the peak: conv1_1's output still held while conv1_2 writes its own (64x224x224 each)
    assert v.peak_activation_bytes == 2 * 64 * 224 * 224 * 4
    _, _, elements, pooled = _vgg16_convs()
    # layer outputs (the lecture's memory): convs, pools, the adaptive pool's 512x7x7 copy
    # and the fc layers; the flatten is a view. In-place ReLUs allocate nothing.
    assert v.output_bytes == 4 * (elements + 25088 + 4096 + 4096 + 1000)
    # allocated: the same, plus the max pools' int64 indices
    assert v.activation_bytes == v.output_bytes + 8 * pooled
    assert v.activation_bytes_ratio == v.activation_bytes / g.activation_bytes


def test_stages_partition_the_totals(headline) -> None:
    stages = headline.stages.set_index("stage")
    assert list(stages.index) == [224, 112, 56, 28, 14, 7, 1]
    for model in ("googlenet", "vgg16"):
        for metric in ("params", "flops", "activation_bytes", "layers"):
            total = headline.totals.set_index("model").loc[model, metric]
            assert stages[f"{model}_{metric}"].sum() == total, (model, metric)
    # VGG-16's three fc layers hold 123.6M params at resolution 1; GoogLeNet's one 1.0M
    assert stages.loc[1, "vgg16_params"] == 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4097000
    assert stages.loc[1, "googlenet_params"] == 1024 * 1000 + 1000
    assert stages.loc[224, "googlenet_layers"] == 0 and stages.loc[224, "vgg16_layers"] == 2


def test_findings_explain_the_gap(headline) -> None:
    from archstat.render.compare import finding_text

    first, second = headline.findings
    assert (first.kind, first.model, first.first) == ("params", "vgg16", "googlenet")
    assert first.figures["fc_layers"] == 3 and first.figures["first_fc_layers"] == 1
    assert second.kind == "flops" and second.figures["side"] == 28
    params, macs = (finding_text(f, "MACs") for f in headline.findings)
    assert "19.8x the params" in params and "3 fc layers hold 124M (89% of them)" in params
    assert "1 fc layer holds 1.02M (15%)" in params
    assert "down to 28x28" in macs.lower() and "19.5x" in macs


def test_stem_comparison_until_28() -> None:
    """The lecture's stem comparison, from 224 down to 28: GoogLeNet's conv 7x7/2, max
    pool, conv 1x1, conv 3x3, max pool against VGG-16's first seven convs and 3 pools."""
    result = compare_models(["googlenet", "vgg16"], until_resolution=28)
    rows = result.totals.set_index("model")
    g, v = rows.loc["googlenet"], rows.loc["vgg16"]
    assert g.params == (7 * 7 * 3 * 64 + 64) + (64 * 64 + 64) + (9 * 64 * 192 + 192) == 124_416
    assert g.flops == 64 * 112 * 112 * 147 + 64 * 56 * 56 * 64 + 192 * 56 * 56 * 576
    assert g.output_bytes == 4 * (64 * 112 * 112 + 2 * 64 * 56 * 56 + 192 * 56 * 56
                                  + 192 * 28 * 28)  # 7.46 MiB: the lecture's 7.5 MB
    params, macs, elements, pooled = _vgg16_convs(until_side=28)
    assert (v.params, v.flops, v.output_bytes) == (params, macs, 4 * elements)
    assert v.activation_bytes == 4 * elements + 8 * pooled
    assert (g.layers, v.layers) == (3, 7)
    assert result.findings == [] and result.cut == "down to 28x28"


def test_until_layer_cuts_each_model() -> None:
    one = compare_models(["googlenet"], until=["inception3a"]).totals.iloc[0]
    assert one.layers == 3 + 6
    both = compare_models(["alexnet", "vgg16"], until=["pool2", "features.9"]).totals
    assert both["layers"].tolist() == [2, 4]
    # a lecture name of a chain, or a module path
    assert compare_models(["alexnet"], until=["features.5"]).totals.iloc[0].layers == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "googlenet", "vgg16", "-r", "500"], "no layer of googlenet has an output"),
        (["compare", "vgg16", "alexnet", "-r", "1"], "never get down to 1x1 (the smallest is 7x7)"),
        (["compare", "googlenet", "vgg16", "-u", "inception3z"],
         "did you mean: inception3b, inception3a"),
        (["compare", "alexnet", "vgg16", "-u", "a", "-u", "b", "-u", "c"], "give --until once"),
        (["compare", "vgg16", "vgg16"], "name each model once"),
        (["compare", "vgg16", "nosuch"], "unknown model 'nosuch'"),
    ],
)
def test_errors_are_one_line_and_exit_2(args, message, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_formats() -> None:
    out = invoke("compare", "googlenet", "vgg16", "-f", "csv").output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == CSV_COLUMNS
    assert rows[1]["model"] == "vgg16" and rows[1]["params"] == "138357544"
    stages = invoke("compare", "googlenet", "vgg16", "-f", "csv", "--stages").output
    assert stages.splitlines()[0].startswith("stage,googlenet_layers,vgg16_layers,")
    data = json.loads(invoke("compare", "googlenet", "vgg16", "-f", "json").output)
    assert data["models"][1]["depth"] == 16 and data["stages"][0]["stage"] == 224
    assert data["input_shape"] == {"googlenet": [3, 224, 224], "vgg16": [3, 224, 224]}
    assert len(data["notes"]) == 2
    table = invoke("compare", "googlenet", "vgg16").output
    assert "138M (19.8x)" in table and "15.5G (9.8x)" in table and "resolution" in table


def test_convention_and_batch_scale() -> None:
    macs = compare_models(["alexnet", "vgg11"]).totals
    flops = compare_models(["alexnet", "vgg11"], convention="flops", batch=2).totals
    assert (flops["flops"] == 4 * macs["flops"]).all()
    assert (flops["activation_bytes"] == 2 * macs["activation_bytes"]).all()
    assert (flops["params"] == macs["params"]).all()


def test_models_without_params_or_a_stem_still_compare(tmp_path, monkeypatch) -> None:
    (tmp_path / "tiny.py").write_text(
        "import torch.nn as nn\n"
        "def pools():\n"
        "    return nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = compare_models(["tiny:pools", "alexnet"], input_shape="3x227x227")
    rows = result.totals.set_index("model")
    assert rows.loc["tiny:pools", "params"] == 0 and rows.loc["alexnet", "params_ratio"] is None
    assert rows.loc["tiny:pools", "output_bytes"] == 4 * 3 * (113 * 113 + 56 * 56)
    # the max pool's int64 indices are allocated too
    assert rows.loc["tiny:pools", "activation_bytes"] == (4 + 8) * 3 * 113 * 113 + 4 * 3 * 56 * 56
    assert result.findings == []  # no ratio to the first model's zero params, and no stem


def test_one_model_is_a_usage_error_and_both_cuts_are_labelled(capsys) -> None:
    from archstat.cli import main

    assert main(["compare", "lenet5"]) == 2
    assert "two or more models" in capsys.readouterr().err
    both = compare_models(["googlenet", "vgg16"], until_resolution=28, until=["conv3"])
    assert both.cut == "down to 28x28 and until conv3"


class _Recurrent(torch.nn.Module):
    """An embedding, a recurrent layer and an fc head on the last time step."""

    def __init__(self, cell: type, hidden: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(1000, 128)
        self.rnn = cell(128, hidden, batch_first=True)
        self.fc = torch.nn.Linear(hidden, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(self.emb(tokens))[0][:, -1])


class LSTMNet(_Recurrent):
    def __init__(self) -> None:
        super().__init__(torch.nn.LSTM, 256)


class GRUNet(_Recurrent):
    def __init__(self) -> None:
        super().__init__(torch.nn.GRU, 192)


def test_sequence_models_compare_as_sequences() -> None:
    """An LSTM and a GRU over 32 tokens. By hand: the LSTM holds 4 gates x 256 x (128 +
    256) weights and 2 x 4 x 256 biases and does the weights' MACs at each of the 32
    steps; the GRU 3 gates x 192 x (128 + 192) and 2 x 3 x 192. Each is two weight layers
    deep (the recurrent layer and the fc head, the GRU's unrolled matmul chain counting
    once), every layer sits at resolution 1 (no hidden size read as a side), and the
    findings' ratios read as the table's."""
    from archstat.render import text
    from archstat.render.compare import finding_text

    tokens = "32:int64:0..999"
    lstm, gru = archstat.analyze(LSTMNet(), tokens), archstat.analyze(GRUNet(), tokens)
    result = compare([lstm, gru])
    rows = {row["model"]: row for row in result.total_rows}
    lstm_row, gru_row = (rows[a.model] for a in (lstm, gru))
    emb = 1000 * 128
    assert lstm_row["params"] == emb + 4 * 256 * 384 + 2 * 4 * 256 + 256 * 10 + 10
    assert gru_row["params"] == emb + 3 * 192 * 320 + 2 * 3 * 192 + 192 * 10 + 10
    assert lstm_row["flops"] == 32 * 4 * 256 * 384 + 256 * 10
    assert gru_row["flops"] == 32 * 3 * 192 * 320 + 192 * 10
    for row in (lstm_row, gru_row):
        assert (row["layers"], row["depth"]) == (2, 2)
    assert [row["stage"] for row in result.stage_rows] == [1]
    (params,) = [f for f in result.findings if f.kind == "params"]
    sentence = finding_text(params, "MACs")
    assert f"has {text.ratio(gru_row['params_ratio'])} the params" in sentence
    assert "1 fc layer holds 2.57K (<1%)" in sentence  # 2,570 of 525,834: 0.49%
