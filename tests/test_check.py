"""`archstat check`, `archstat budget` and `archstat.assert_within_budget`: exit codes,
budget file errors, the single-FLOP overrun, GitHub and JUnit output, and the repo's
own budgets."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.zoo import get_model, list_models

REPO = Path(__file__).resolve().parents[1]


def _torch_macs(name: str, shape: tuple[int, ...]) -> int:
    """Independent count: torch's FlopCounterMode (2 per multiply-add) on the meta
    device, halved to multiply-accumulates."""
    with torch.device("meta"):
        model = get_model(name).eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.empty((1, *shape), device="meta"))
    return counter.get_total_flops() // 2


@pytest.fixture(scope="module")
def lenet_macs() -> int:
    return _torch_macs("lenet5", (1, 32, 32))


def write(tmp_path: Path, text: str, name: str = "archstat.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- exit codes and the single FLOP

def test_single_flop_over_budget_fails_and_exact_budget_passes(tmp_path, capsys, lenet_macs):
    exact = write(tmp_path, f'[[budget]]\nmodel = "lenet5"\nmax_flops = {lenet_macs}\n', "a.toml")
    code, out, _ = run(capsys, "check", str(exact), "-f", "json")
    assert code == 0 and json.loads(out)["results"][0]["headroom"] == 0
    over = write(tmp_path, f'[[budget]]\nmodel = "lenet5"\nmax_flops = {lenet_macs - 1}\n')
    code, out, _ = run(capsys, "check", str(over), "-f", "json")
    result = json.loads(out)["results"][0]
    assert code == 1
    assert (result["status"], result["actual"], result["headroom"]) == ("fail", lenet_macs, -1)
    assert "exceeds max_flops" in result["message"] and "by 1 " in result["message"]


def test_table_names_model_metric_budget_actual_headroom_status(tmp_path, capsys) -> None:
    path = write(tmp_path, '[[budget]]\nmodel = "googlenet"\nmax_flops = "1.5G"\n'
                           'max_params = "7M"\n')
    code, out, err = run(capsys, "check", str(path))
    assert code == 1 and err == ""
    assert _torch_macs("googlenet", (3, 224, 224)) == 1_582_671_872  # 82,671,872 over 1.5G
    flops = next(line for line in out.splitlines() if "flops" in line)
    assert re.search(r"googlenet .* 1\.5G .* 1\.582671872G .* -82\.671872M .* -5\.51% .* FAIL",
                     flops), flops
    params = next(line for line in out.splitlines() if "params" in line)
    assert re.search(r"7M .* 6\.998552M .* 1\.448K .* 0\.02% .* pass", params), params
    assert "1 passed, 1 failed, 0 errors" in out


def test_broken_model_is_reported_and_other_entries_still_checked(tmp_path, capsys) -> None:
    path = write(tmp_path, '[[budget]]\nmodel = "resnt18"\nmax_flops = "2G"\n\n'
                           '[[budget]]\nmodel = "lenet5"\nmax_flops = "1M"\n')
    code, out, err = run(capsys, "check", str(path), "-f", "json")
    assert code == 2
    assert err == (f"archstat: error: {path.as_posix()}:2: budget 1 (resnt18) model: unknown "
                   f"model 'resnt18' (did you mean: resnet18, resnet152, resnet101?); "
                   f"`archstat zoo` lists them\n")
    statuses = [(r["model"], r["status"]) for r in json.loads(out)["results"]]
    assert statuses == [("resnt18", "error"), ("lenet5", "pass")]


def test_a_model_that_raises_while_building_is_an_entry_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "brokenmodels.py").write_text(
        "def net():\n    raise RuntimeError('weights file missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, '[[budget]]\nmodel = "brokenmodels:net"\nmax_params = 1\n\n'
                           '[[budget]]\nmodel = "lenet5"\nmax_params = 1\n')
    code, out, err = run(capsys, "check", str(path), "-f", "json")
    assert code == 2 and "weights file missing" in err and err.count("\n") == 1
    assert [r["status"] for r in json.loads(out)["results"]] == ["error", "fail"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[budget]]\nmodel = "alexnet"\nmax_flops = 1.6G\n',
         ":3:16: invalid TOML: Expected newline or end of document after a statement"),
        ('[[budget]]\nmodel = "alexnet"\nmax_flop = "1.6G"\n',
         ":3: budget 1 (alexnet) max_flop: unknown key "
         "(did you mean: max_flops, max_train_flops?)"),
        ('[[budget]]\nmodel = "alexnet"\nmax_flops = -5\n',
         ":3: budget 1 (alexnet) max_flops: must not be negative, got -5"),
        ('[[budget]]\nmodel = "alexnet"\n\nmax_params = "-7M"\n',
         ":4: budget 1 (alexnet) max_params: must not be negative, got '-7M'"),
        ('[[budget]]\nmodel = "alexnet"\nmax_flops = true\n',
         ":3: budget 1 (alexnet) max_flops: expected a number, got true"),
        ('[[budget]]\nmodel = "alexnet"\nmax_flops = "1GB"\n',
         ":3: budget 1 (alexnet) max_flops: '1GB' is a byte size, but this limit is a count"),
        ('[[budget]]\nmodel = "alexnet"\nbatch = "2"\nmax_flops = 1\n',
         ":3: budget 1 (alexnet) batch: expected a positive integer, got '2'"),
        ('[[budget]]\nmodel = 3\nmax_flops = 1\n', ":2: budget 1 model: needs model = \"NAME\""),
        ('[[budget]]\nmodel = "alexnet"\ninput = 3\nmax_flops = 1\n',
         ":3: budget 1 (alexnet) input: expected a shape such as \"3x224x224\""),
        ('[[budget]]\nmodel = "alexnet"\nconvention = "fvcor"\nmax_flops = 1\n',
         ":3: budget 1 (alexnet) convention: unknown convention 'fvcor' (did you mean: fvcore?)"),
        ('[[budget]]\nmodel = "alexnet"\ndtype = "float33"\nmax_flops = 1\n',
         ":3: budget 1 (alexnet) dtype: unknown dtype 'float33'"),
        ('[[budget]]\nmodel = "alexnet"\n', ":1: budget 1 (alexnet): sets no limit"),
        ('[[budget]]\nmodel = "alexnet"\nmax_flops = 1\ntolerance = "1%"\n',
         ":4: budget 1 (alexnet) tolerance: a tolerance applies to a baseline"),
        ('budgets = 1\n', ":1: unknown key 'budgets' in "),
        ('[[budget]]\nmodel = "alexnet"\nmax_flops = 1\n[[budget]]\nmodel = "alexnet"\n'
         'max_params = 1\n', ":4: budget 2 (alexnet) repeats the model of line 1"),
        ('[[budget]]\nmodel = "resnt50"\nmax_flops = "4G"\n',
         ":2: budget 1 (resnt50) model: unknown model 'resnt50' (did you mean: resnet50"),
        ('', ": no budgets; add [[budget]] tables"),
    ],
)
def test_malformed_budget_file_is_exit_2_with_file_and_line(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    code, _, err = run(capsys, "check", str(path))
    assert code == 2
    errors = err.splitlines()
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"archstat: error: {path.as_posix()}")
    assert message in errors[0], errors[0]


def test_missing_file_and_usage_errors_are_exit_2(tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, "check", str(tmp_path / "nope.toml"))
    assert code == 2 and "not found" in err
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "check")
    assert code == 2 and "no budget file: archstat.toml not found" in err
    write(tmp_path, '[[budget]]\nmodel = "lenet5"\nmax_flops = "1M"\n')
    code, _, err = run(capsys, "check", "--format", "xml")
    assert code == 2 and "unknown format 'xml'; choose one of table, json, github, junit" in err


def test_pyproject_tool_archstat_table(tmp_path, capsys, monkeypatch, lenet_macs) -> None:
    write(tmp_path, '[project]\nname = "demo"\n\n[tool.ruff]\nline-length = 100\n\n'
                    '[[tool.archstat.budget]]\nmodel = "lenet5"\n'
                    f'max_params = "61.8K"\nmax_flops = {lenet_macs - 1}\n', "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "check", "-f", "github")  # found without naming it
    assert code == 1
    assert out.splitlines()[0].startswith("::error file=pyproject.toml,line=10,")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tool = 1\n", ":1: tool: expected a table, got an integer (1)"),
        ('[project]\nname = "demo"\n\n[tool]\narchstat = 3\n',
         ":5: tool.archstat: expected a table, got an integer (3)"),
    ],
)
def test_pyproject_tool_that_is_not_a_table_is_exit_2(tmp_path, capsys, text, message) -> None:
    path = write(tmp_path, text, "pyproject.toml")
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{path.as_posix()}{message}" in err, err


# --- CI formats

BUDGETS = """\
# demo budgets
[[budget]]
model = "lenet5"
input = "1x32x32"
max_flops = "{flops}"
max_params = "61.8K"

[[budget]]
name = "lenet, batch 2"
model = "lenet5"
batch = 2
max_activation_bytes = "100KB"
max_layer_activation_bytes = "18KiB"

[[budget]]
model = "resnt50"
max_flops = "4G"
"""


@pytest.fixture
def budgets(tmp_path, lenet_macs) -> Path:
    return write(tmp_path, BUDGETS.format(flops=lenet_macs - 1))


def test_github_annotations_point_at_the_budget_lines(budgets, capsys) -> None:
    code, out, _ = run(capsys, "check", str(budgets), "-f", "github")
    assert code == 2
    lines = out.splitlines()
    annotations = [re.fullmatch(r"::error file=([^,]+),line=(\d+),title=([^:]+)::(.+)", line)
                   for line in lines[:-1]]
    assert all(annotations), lines
    source = budgets.read_text().splitlines()
    keys = [source[int(a.group(2)) - 1].split("=")[0].strip() for a in annotations]
    assert keys == ["max_flops", "max_activation_bytes", "max_layer_activation_bytes", "model"]
    assert {a.group(1) for a in annotations} == {budgets.as_posix()}
    # properties are escaped (':' and ',' in the title), the message keeps its text
    assert annotations[1].group(3) == "archstat budget exceeded%3A lenet%2C batch 2"
    # 6 x 28 x 28 float32 x batch 2 = 37,632 bytes
    assert "layer_activation_bytes 36.75KiB in layer features.0 exceeds" in annotations[2].group(4)
    assert lines[-1].endswith(": 1 passed, 3 failed, 1 error")


def test_junit_report_parses_and_counts(budgets, capsys, tmp_path) -> None:
    report = tmp_path / "report.xml"
    code, out, _ = run(capsys, "check", str(budgets), "-o", str(report))  # .xml -> junit
    assert code == 2 and out == ""
    root = ET.fromstring(report.read_text())
    suite = root.find("testsuite")
    assert (root.tag, suite.get("tests"), suite.get("failures"), suite.get("errors")) == \
        ("testsuites", "5", "3", "1")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert list(cases) == [("lenet5", "flops"), ("lenet5", "params"),
                           ("lenet, batch 2", "activation_bytes"),
                           ("lenet, batch 2", "layer_activation_bytes"),
                           ("resnt50", "analysis")]
    failure = cases["lenet5", "flops"].find("failure")
    assert failure.get("type") == "BudgetExceeded" and "by 1 " in failure.get("message")
    assert cases["lenet5", "params"].find("failure") is None
    assert cases["resnt50", "analysis"].find("error").get("message").endswith("lists them")
    assert cases["lenet5", "flops"].get("line") == "5"


def test_a_broken_budget_file_is_annotated_and_reported_in_junit(tmp_path, capsys) -> None:
    path = write(tmp_path, '[[budget]]\nmodel = "alexnet"\nmax_flops = 1.6G\n')
    code, out, err = run(capsys, "check", str(path), "-f", "github")
    assert code == 2 and err.count("\n") == 1
    assert out.startswith(f"::error file={path.as_posix()},line=3,title=archstat error%3A "
                          f"(budget file)::invalid TOML: Expected newline")
    code, out, _ = run(capsys, "check", str(path), "-f", "junit")
    error = ET.fromstring(out).find("testsuite/testcase/error")
    assert code == 2 and error.get("message").startswith("invalid TOML")


def test_outputs_are_deterministic(budgets, capsys) -> None:
    first = [run(capsys, "check", str(budgets), "-f", fmt)[1] for fmt in ("json", "junit")]
    again = [run(capsys, "check", str(budgets), "-f", fmt)[1] for fmt in ("json", "junit")]
    assert first == again


# --- the repo's own budgets

@pytest.fixture(scope="module")
def repo_report():
    from archstat.budget.checks import run_checks

    return run_checks(REPO / "archstat.toml")


@pytest.mark.slow  # repo_report checks every zoo model
def test_repo_budgets_cover_every_zoo_model_and_pass(repo_report) -> None:
    assert repo_report.exit_code == 0
    assert list(dict.fromkeys(r.label for r in repo_report.results)) == list_models()
    metrics = {r.metric for r in repo_report.results}
    assert metrics == {"flops", "params", "activation_bytes", "layer_activation_bytes",
                       "peak_activation_bytes"}


@pytest.mark.slow
def test_repo_budgets_are_tight(repo_report) -> None:
    # rounded up to 3 significant digits: under 1% of headroom everywhere
    assert all(0 <= r.headroom_pct < 1 for r in repo_report.results), [
        (r.label, r.metric, float(r.headroom_pct)) for r in repo_report.results
        if not 0 <= r.headroom_pct < 1]


def test_budget_command_writes_a_passing_tight_file(tmp_path, capsys) -> None:
    target = tmp_path / "budgets.toml"
    assert run(capsys, "budget", "lenet5", "vgg11", "--digits", "2", "-o", str(target))[0] == 0
    text = target.read_text()
    assert 'model = "vgg11"\ninput = "3x224x224"\nbatch = 1\nconvention = "macs"\n' \
           'max_flops = "7.7G"\nmax_params = "140M"\n' in text  # 7.609G, 132.86M rounded up
    code, out, _ = run(capsys, "check", str(target), "-f", "json")
    assert code == 0 and all(0 <= r["headroom_pct"] < 10 for r in json.loads(out)["results"])


# --- the Python API

def test_assert_within_budget(lenet_macs) -> None:
    result = archstat.assert_within_budget("lenet5", max_flops=lenet_macs, max_params="61.8K")
    assert result.totals["flops"] == lenet_macs
    with pytest.raises(AssertionError) as failed:
        archstat.assert_within_budget("lenet5", max_flops=lenet_macs - 1, max_params="61.8K",
                                      max_activation_bytes="1MiB")
    assert str(failed.value).splitlines() == [
        "lenet5 is over budget (input 1x32x32, batch 1, float32, convention macs):",
        f"  flops: {lenet_macs / 1000:g}K > max_flops {lenet_macs - 1}, over by 1",
        "  params: 61.706K <= max_params 61.8K, ok",
        # LeNet-5's allocations by hand: conv, tanh (not in place) and pool outputs,
        # the flatten a view, then each fc layer's and tanh's output, float32
        f"  activation_bytes: {_lenet_allocated() / 1024!r}KiB <= max_activation_bytes 1MiB, ok",
    ]


def _lenet_allocated() -> int:
    return 4 * (2 * 6 * 28 * 28 + 6 * 14 * 14 + 2 * 16 * 10 * 10 + 16 * 5 * 5
                + 2 * 120 + 2 * 84 + 10)


def test_assert_within_budget_user_errors() -> None:
    with pytest.raises(ArchstatError, match="needs a limit"):
        archstat.assert_within_budget("lenet5")
    with pytest.raises(ArchstatError, match="max_params: must not be negative"):
        archstat.assert_within_budget("lenet5", max_params=-1)


def test_assert_within_budget_takes_a_module_and_leaves_it_unchanged() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    archstat.assert_within_budget(model, input_shape=(4,), max_params=20)  # 16 + 4 params
    with pytest.raises(AssertionError, match="params: 20 > max_params 19, over by 1"):
        archstat.assert_within_budget(model, input_shape=(4,), max_params=19)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
