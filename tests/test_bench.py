"""``archstat bench`` end to end on the CPU: real short runs of tiny models, the CSV and
JSON layouts, ratios, per-layer tables, out-of-memory rows and one-line errors.

Timings are real and noisy, so nothing here asserts a duration; what is asserted is
the bookkeeping around them, checked against torch's FlopCounterMode on the same model.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from archstat.bench import RESULT_COLUMNS, benchmark
from archstat.bench.harness import META_COLUMNS
from archstat.cli import app, main
from archstat.zoo import get_model

runner = CliRunner()
FAST = ["--device", "cpu", "--warmup", "0", "--iters", "3"]
TINY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """One 1x1 conv; pretends to run out of memory from batch 4 on (on real tensors)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x):
        if x.shape[0] >= 4 and x.device.type != "meta":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.conv(x)
'''


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> str:
    (tmp_path / "tinynet.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tinynet:Tiny"


def torch_flops(model_name: str, batch: int) -> int:
    model = get_model(model_name).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(batch, 1, 32, 32))
    return counter.get_total_flops()


def test_cpu_benchmark_rows_are_consistent_with_their_timings() -> None:
    report = benchmark(["lenet5"], device="cpu", batch_sizes=[1, 3], warmup=0, iters=4,
                       threads=1)
    rows = report.results.to_dict("records")
    assert list(report.results.columns) == RESULT_COLUMNS
    assert [r["batch_size"] for r in rows] == [1, 3]
    for row in rows:
        assert row["flops"] == torch_flops("lenet5", row["batch_size"])  # independent count
        assert row["min_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["samples_per_s"] == pytest.approx(
            row["batch_size"] / row["median_ms"] * 1e3, rel=1e-5)
        assert row["tflops_achieved"] == pytest.approx(
            row["flops"] / row["median_ms"] / 1e9, rel=1e-5)
        assert row["iters"] == 4 and row["warmup_iters"] == 0
        # a CPU has no roofline entry and no peak-memory counter: empty, not invented
        assert row["peak_pct"] is row["roofline_ms"] is row["peak_memory_bytes"] is None
    assert report.meta["threads"] == 1 and report.meta["device"] == "cpu"
    assert set(report.meta["not_measured"]) == {"peak_memory_bytes", "peak_pct", "roofline_ms"}


def test_known_device_rows_carry_roofline_and_peak_percentage() -> None:
    from archstat.bench.devices import Peak
    from archstat.bench.harness import _Model, _point
    from archstat.bench.stats import eager_traffic
    from archstat.bench.timing import CpuTimer, Policy

    model = _Model("lenet5", "cpu", "float32", False, None)
    peak = Peak(0.001, "float32", 0.5, "a slow made-up device: 1 GFLOP/s, 0.5 GB/s")
    row, _ = _point(model, None, 2, CpuTimer(), Policy(warmup=0, iters=2), peak, False)
    flops = torch_flops("lenet5", 2)
    nbytes = eager_traffic(model.analysis(2).trace)
    assert row["roofline_ms"] == pytest.approx(
        max(flops / 1e9, nbytes / 0.5e9) * 1e3, rel=1e-5)
    assert row["peak_pct"] == pytest.approx(row["tflops_achieved"] / 0.001 * 100, rel=1e-4)


def test_channels_last_and_compile_report_compile_time() -> None:
    report = benchmark(["lenet5"], device="cpu", batch_sizes=[2], warmup=0, iters=2,
                       channels_last=True, compile=True, compile_backend="eager")
    (row,) = report.results.to_dict("records")
    assert row["compile_s"] > 0 and row["median_ms"] > 0
    assert report.meta["channels_last"] and report.meta["compile"]


def test_progress_is_reported_per_point() -> None:
    calls = []
    benchmark(["lenet5"], device="cpu", batch_sizes=[1, 2], warmup=0, iters=1,
              progress=lambda done, total, label: calls.append((done, total, label)))
    assert calls == [(0, 2, "lenet5 batch 1"), (1, 2, "lenet5 batch 2"), (2, 2, "done")]


def test_csv_to_stdout_is_pure_csv_with_metadata(tiny) -> None:
    result = invoke("bench", "lenet5", tiny, "-i", "1x32x32", "-b", "1,2", *FAST,
                    "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))  # no progress bar in it
    assert list(rows[0]) == RESULT_COLUMNS + META_COLUMNS
    assert [(r["model"], r["batch_size"]) for r in rows] == [
        ("lenet5", "1"), ("lenet5", "2"), (tiny, "1"), (tiny, "2")]
    for first, other in ((rows[0], rows[2]), (rows[1], rows[3])):
        assert first["latency_ratio"] == "1.0"
        assert float(other["latency_ratio"]) == pytest.approx(
            float(other["median_ms"]) / float(first["median_ms"]), rel=1e-4)
        assert float(other["flops_ratio"]) == pytest.approx(
            int(other["flops"]) / int(first["flops"]), rel=1e-5)
    assert all(r["device_name"] for r in rows)
    assert {r["torch_version"] for r in rows} == {torch.__version__}


def test_json_layout_and_side_by_side_table(tiny) -> None:
    data = json.loads(invoke("bench", "lenet5", "-b", "2", *FAST, "-f", "json").stdout)
    assert list(data) == ["meta", "results"]
    assert list(data["results"][0]) == RESULT_COLUMNS
    for key in ("device_name", "torch_version", "cuda_version", "dtype", "threads", "date"):
        assert key in data["meta"]
    table = invoke("bench", "lenet5", tiny, "-i", "1x32x32", *FAST).stdout
    assert "latency ratio" in table and "flops ratio" in table and "1.00x" in table
    assert "peak memory is measured on CUDA only" in table


def test_out_of_memory_fills_its_row_and_the_sweep_goes_on(tiny) -> None:
    result = invoke("bench", tiny, "-i", "1x8x8", "-b", "2,4,8,3", *FAST, "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert [r["batch_size"] for r in rows] == [2, 4, 8, 3]
    for row in rows[1:3]:
        assert row["note"].startswith("out of memory: CUDA out of memory")
        assert row["median_ms"] is None and row["samples_per_s"] is None
        assert row["flops"] == 2 * 2 * 64 * row["batch_size"]  # still known: 2 x MACs
    assert rows[0]["median_ms"] > 0 and rows[3]["median_ms"] > 0
    table = invoke("bench", tiny, "-i", "1x8x8", "-b", "1,4", *FAST).stdout
    assert f"{tiny} batch 4: out of memory" in table


def test_per_layer_table_json_and_csv() -> None:
    data = json.loads(invoke("bench", "lenet5", "-b", "2", *FAST, "--per-layer",
                             "-f", "json").stdout)
    (entry,) = data["per_layer"]
    assert entry["model"] == "lenet5" and "hooks" in entry["method"]
    assert entry["overhead_pct"] == pytest.approx(
        100 * (entry["hooked_median_ms"] / entry["plain_median_ms"] - 1), rel=1e-3, abs=1e-3)
    names = [layer["name"] for layer in entry["layers"]]
    assert len(names) == 11 + 1 and "(outside leaf modules)" in names  # 11 leaves in lenet5
    times = [layer["time_ms"] for layer in entry["layers"]]
    assert times == sorted(times, reverse=True)
    assert sum(layer["flops"] for layer in entry["layers"]) == data["results"][0]["flops"]
    conv1 = next(layer for layer in entry["layers"] if layer["name"] == "features.0")
    # conv 1->6, 5x5, 28x28 output, batch 2: 2 x 117,600 MACs; input 2x1x32x32 floats,
    # weights 150 + 6, output 2x6x28x28
    assert conv1["flops"] == 2 * 2 * 117_600
    assert conv1["bytes"] == 4 * (2 * 1024 + 156 + 2 * 6 * 784)
    out = invoke("bench", "lenet5", *FAST, "--per-layer", "-f", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 12 and rows[0]["model"] == "lenet5" and "arithmetic_intensity" in rows[0]
    table = invoke("bench", "lenet5", *FAST, "--per-layer", "--top", "3").stdout
    assert "top 3 of 12 rows by time" in table and "hooks add" in table


def test_output_file_and_markdown(tmp_path) -> None:
    target = tmp_path / "bench.md"
    assert main(["bench", "lenet5", *FAST, "-o", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("**archstat bench") and "| model | batch |" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"],
     "--device cuda: CUDA is not available" if not torch.cuda.is_available()
     else "unknown device"),
    (["-b", "1,x"], "--batch-sizes: 'x' is not a positive integer"),
    (["-b", "0"], "--batch-sizes: '0' is not a positive integer"),
    (["--per-layer", "--top", "-1"], "--top must be 0 (all rows) or more"),
    (["--iters", "3", "--min-time", "1"], "give --iters or --min-time, not both"),
    (["--per-layer", "--compile"], "cannot be combined with --compile"),
    (["--dtype", "float64"], "unknown dtype"),
    (["--threads", "0"], "--threads must be a positive integer"),
    (["--format", "xml"], "unknown format"),
])
def test_bad_options_are_one_line_and_exit_2(args, message, capsys) -> None:
    assert main(["bench", "lenet5", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_progress_bar_only_on_a_terminal_and_never_over_data_on_stdout(tmp_path) -> None:
    from archstat.cli.bench import show_progress

    assert show_progress("table", None, stderr_is_terminal=True)
    assert show_progress("csv", tmp_path / "x.csv", stderr_is_terminal=True)
    assert not show_progress("csv", None, stderr_is_terminal=True)
    assert not show_progress("json", None, stderr_is_terminal=True)
    assert not show_progress("table", None, stderr_is_terminal=False)


def test_unknown_model_is_exit_2(capsys) -> None:
    assert main(["bench", "lenet6", "--device", "cpu"]) == 2
    assert "did you mean: lenet5" in capsys.readouterr().err
