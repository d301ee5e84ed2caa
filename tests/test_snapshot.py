"""`archstat snapshot` and `archstat diff`, and baselines in budget files: layer
alignment that survives insertions, per-layer and total deltas, the tolerance."""

from __future__ import annotations

import csv
import importlib
import io
import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import archstat
from archstat.cli import main
from archstat.render import render
from archstat.snapshots import align_layers, growth_limit

MODULE = "archstat_test_growing"
SOURCE = '''\
from torch import nn

EXTRA = False  # the tests switch this on: a 1x1 conv + ReLU inserted after the first ReLU
WIDTH = 8


def net():
    layers = [nn.Conv2d(3, WIDTH, 3), nn.ReLU()]
    if EXTRA:
        layers += [nn.Conv2d(WIDTH, WIDTH, 1), nn.ReLU()]
    layers += [nn.Conv2d(WIDTH, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
               nn.Flatten(), nn.Linear(8 * 10 * 10, 10)]
    return nn.Sequential(*layers)
'''


@pytest.fixture
def growing(tmp_path, monkeypatch):
    """A model module whose layout the test changes after taking a snapshot."""
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(MODULE)
    yield module
    sys.modules.pop(MODULE, None)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def take(tmp_path, capsys, *models: str, input: str | None = "3x16x16") -> Path:
    target = tmp_path / "baseline.json"
    shape = ["--input", input] if input else []
    code, _, err = run(capsys, "snapshot", *models, *shape, "-o", str(target))
    assert code == 0, err
    return target


def test_snapshot_holds_the_per_layer_analysis_and_versions(tmp_path, capsys) -> None:
    data = json.loads(take(tmp_path, capsys, "lenet5", "resnet18", input=None).read_text())
    assert data["archstat_version"] == archstat.__version__
    assert data["torch_version"] == torch.__version__
    assert [m["model"] for m in data["models"]] == ["lenet5", "resnet18"]
    fresh = archstat.analyze("resnet18")
    assert data["models"][1] == json.loads(render(fresh, "json"))


def test_unchanged_models_diff_clean(tmp_path, capsys) -> None:
    baseline = take(tmp_path, capsys, "lenet5", "resnet18", input=None)
    code, out, err = run(capsys, "diff", str(baseline), "-f", "json")
    assert code == 0 and err == ""
    report = json.loads(out)
    assert [m["changes"] for m in report["models"]] == [[], []]
    assert report["models"][1]["unchanged_layers"] == 69
    assert report["models"][1]["totals"]["flops"]["delta"] == 0


def test_inserted_layers_are_added_and_later_layers_still_pair(
        tmp_path, capsys, growing, monkeypatch) -> None:
    baseline = take(tmp_path, capsys, f"{MODULE}:net")
    monkeypatch.setattr(growing, "EXTRA", True)
    code, out, _ = run(capsys, "diff", str(baseline), "-f", "json")
    model = json.loads(out)["models"][0]
    # The two inserted layers renumber every later one (2 -> 4, ..., 7 -> 9), yet all
    # eight old layers pair with their new selves, unchanged.
    assert [(c["change"], c["layer"], c["type"]) for c in model["changes"]] == [
        ("added", "2", "Conv2d"), ("added", "3", "ReLU")]
    assert model["unchanged_layers"] == 8
    # a 1x1 conv 8 -> 8 on 14x14: 64 weights + 8 biases, 14*14*64 multiply-adds;
    # its output and the ReLU's are 8x14x14 float32 each
    totals = model["totals"]
    assert totals["params"]["delta"] == 72
    assert totals["flops"]["delta"] == 14 * 14 * 64
    assert totals["activation_bytes"]["delta"] == 2 * 8 * 14 * 14 * 4
    assert code == 1  # any growth exceeds the default tolerance of 0%


def test_changed_layers_report_per_layer_deltas(tmp_path, capsys, growing, monkeypatch) -> None:
    baseline = take(tmp_path, capsys, f"{MODULE}:net")
    monkeypatch.setattr(growing, "WIDTH", 16)
    code, out, _ = run(capsys, "diff", str(baseline), "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    changed = {r["layer"]: r for r in rows if r["change"] == "changed"}
    assert set(changed) == {"0", "1", "2"}  # conv1 wider, its ReLU, conv2 reads 16 channels
    conv2 = changed["2"]
    assert int(conv2["params_after"]) - int(conv2["params_before"]) == 8 * 8 * 9
    assert int(conv2["flops_after"]) - int(conv2["flops_before"]) == 12 * 12 * 8 * 8 * 9
    assert rows[-1]["change"] == "total" and code == 1


def test_tolerance_decides_the_exit_code(tmp_path, capsys, growing, monkeypatch) -> None:
    baseline = take(tmp_path, capsys, f"{MODULE}:net")
    before = json.loads(baseline.read_text())["models"][0]["totals"]
    monkeypatch.setattr(growing, "EXTRA", True)
    growth = max(Fraction(14 * 14 * 64 * 100, before["flops"]),
                 Fraction(2 * 8 * 14 * 14 * 4 * 100, before["activation_bytes"]))
    enough = f"{float(growth) + 0.01:.2f}%"
    too_little = f"{float(growth) - 0.01:.2f}%"
    assert run(capsys, "diff", str(baseline), "--tolerance", enough)[0] == 0
    code, out, _ = run(capsys, "diff", str(baseline), "-t", too_little)
    assert code == 1 and f"grew beyond {too_little}" in out


def test_growth_limit_is_exact() -> None:
    assert growth_limit(1000, Fraction(1, 2)) == 1005  # 0.5% of 1000 is 5
    assert growth_limit(999, Fraction(1, 2)) == 1003  # 1003.995 -> 1003
    assert growth_limit(4_089_184_256, Fraction(0)) == 4_089_184_256


def test_alignment_pairs_around_a_removed_block() -> None:
    def layer(name, kind, flops):
        return {"name": name, "type": kind, "params": 0, "flops": flops,
                "activation_bytes": 4, "input_shape": [1], "output_shape": [1]}

    before = [layer(str(i), t, f) for i, (t, f) in enumerate(
        [("Conv2d", 1), ("BatchNorm2d", 2), ("ReLU", 0), ("Conv2d", 3), ("ReLU", 0)])]
    after = [layer("0", "Conv2d", 1), layer("1", "ReLU", 0), layer("2", "Conv2d", 5),
             layer("3", "ReLU", 0)]
    changes, unchanged = align_layers(before, after)
    assert [(c.change, c.name, c.type, c.delta("flops")) for c in changes] == [
        ("removed", "1", "BatchNorm2d", -2), ("changed", "2", "Conv2d", 2)]
    assert unchanged == 3


def test_diff_user_errors(tmp_path, capsys) -> None:
    baseline = take(tmp_path, capsys, "lenet5", input=None)
    code, _, err = run(capsys, "diff", str(baseline), "lenet")
    assert code == 2 and "has no model 'lenet' (did you mean: lenet5?)" in err
    (tmp_path / "broken.json").write_text('{"models": [\n  {"model": }\n]}')
    code, _, err = run(capsys, "diff", str(tmp_path / "broken.json"))
    assert code == 2 and "broken.json:2:13: invalid JSON: Expecting value" in err
    code, _, err = run(capsys, "diff", str(baseline), "-t", "lots")
    assert code == 2 and "cannot read tolerance 'lots'" in err
    code, _, err = run(capsys, "snapshot", "lenet6")
    assert code == 2 and "did you mean: lenet5" in err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(models="x"),
         ': models: expected an array of models, got a string ("x")'),
        (lambda d: d.update(models=[]), " holds no model; make one with `archstat snapshot"),
        (lambda d: d["models"][0].pop("input_shape"), ": model 'lenet5' input_shape is missing"),
        (lambda d: d["models"][0]["layers"][3].pop("type"),
         ": model 'lenet5' layers[3].type is missing"),
        (lambda d: d["models"][0].update(totals={"flops": "x"}),
         ': model \'lenet5\' totals.flops: expected an integer, got a string ("x")'),
        (lambda d: d["models"][0].update(input_shape=[[1, 32, 32], 2]),
         ": model 'lenet5' input_shape: expected a shape such as [3, 224, 224], got an integer"),
    ],
)
def test_malformed_snapshot_is_one_line_and_exit_2(tmp_path, capsys, edit, message) -> None:
    baseline = take(tmp_path, capsys, "lenet5", input=None)
    data = json.loads(baseline.read_text())
    edit(data)
    baseline.write_text(json.dumps(data))
    budgets = tmp_path / "archstat.toml"
    budgets.write_text('[[budget]]\nmodel = "lenet5"\nbaseline = "baseline.json"\n')
    for args in (["diff", str(baseline)], ["check", str(budgets)]):  # both read snapshots
        code, _, err = run(capsys, *args)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"{baseline.as_posix()}{message}" in err, err


def test_older_versions_are_noted(tmp_path, capsys) -> None:
    baseline = take(tmp_path, capsys, "lenet5", input=None)
    data = json.loads(baseline.read_text())
    data["torch_version"] = "2.0.0"
    baseline.write_text(json.dumps(data))
    code, _, err = run(capsys, "diff", str(baseline))
    assert code == 0
    assert err == (f"archstat: warning: {tmp_path.as_posix()}/baseline.json was made with "
                   f"torch 2.0.0, this is torch {torch.__version__}\n")


# --- a baseline inside a budget file

def test_budget_baseline_fails_with_what_grew_and_where(
        tmp_path, capsys, growing, monkeypatch) -> None:
    take(tmp_path, capsys, f"{MODULE}:net")
    budgets = tmp_path / "archstat.toml"
    budgets.write_text(f'[[budget]]\nmodel = "{MODULE}:net"\ninput = "3x16x16"\n'
                       f'baseline = "baseline.json"\ntolerance = "1%"\n')
    assert run(capsys, "check", str(budgets))[0] == 0  # unchanged model: passes
    monkeypatch.setattr(growing, "EXTRA", True)
    code, out, _ = run(capsys, "check", str(budgets), "-f", "json")
    results = {r["metric"]: r for r in json.loads(out)["results"]}
    assert code == 1
    assert results["params vs baseline"]["status"] == "pass"  # +72 of 9,402 params: 0.77%
    flops = results["flops vs baseline"]
    assert flops["status"] == "fail" and flops["line"] == 4
    assert flops["actual"] - flops["limit"] > 0
    assert "; most growth in 2 (added, +12.544K)" in flops["message"]


def test_budget_baseline_with_other_settings_is_an_error(tmp_path, capsys) -> None:
    assert run(capsys, "snapshot", "lenet5", "--batch", "2", "-o",
               str(tmp_path / "baseline.json"))[0] == 0
    budgets = tmp_path / "archstat.toml"
    budgets.write_text('[[budget]]\nmodel = "lenet5"\nbaseline = "baseline.json"\n')
    code, _, err = run(capsys, "check", str(budgets))
    assert code == 2
    assert ":3: budget 1 (lenet5) baseline: " in err
    assert "holds lenet5 at input 1x32x32, batch 2," in err
    assert "this budget analyses it at input 1x32x32, batch 1," in err


def test_training_budget_baseline_diffs_the_inference_forward(tmp_path, capsys) -> None:
    """A snapshot is of the inference forward; a budget that also limits training FLOPs
    diffs that forward against it, not the training trace (whose saved activations made
    an unchanged model fail its baseline)."""
    take(tmp_path, capsys, "alexnet", input=None)  # its dropout masks exist in training
    budgets = tmp_path / "archstat.toml"
    budgets.write_text('[[budget]]\nmodel = "alexnet"\nbaseline = "baseline.json"\n'
                       'max_train_flops = "10G"\n')
    code, out, _ = run(capsys, "check", str(budgets), "-f", "json")
    results = {r["metric"]: r for r in json.loads(out)["results"]}
    assert code == 0, out
    assert results["peak_activation_bytes vs baseline"]["status"] == "pass"
    assert results["train_step_flops"]["status"] == "pass"
