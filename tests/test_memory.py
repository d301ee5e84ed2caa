"""archstat memory: liveness on hand-computed cases (checked against a real run too),
gradients and optimizer state against torch's own optimizers, the budget search, the
live_bytes_after column, and the command line."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import archstat
from archstat.budget.file import make_limit
from archstat.cli import app, main
from archstat.errors import ArchstatError
from archstat.memory import MAX_BATCH, estimate_memory, largest_batch, parse_budget
from archstat.realrun import measure_forward, measure_training_step, torch_optimizer, zoo_model
from archstat.render import render
from archstat.render.memory import fit_line
from archstat.units import format_quantity

F32 = 4


class Held(nn.Module):
    """``a`` stays referenced until forward returns, well after its last use."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x * 2
        b = a + 1
        c = b * 3
        return c


class Partial(nn.Module):
    """A trained layer, a frozen one and one the forward never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(6, 5)
        self.frozen = nn.Linear(5, 4)
        self.frozen.requires_grad_(False)
        self.unused = nn.Linear(100, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frozen(self.used(x))


def mlp(inplace: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(inplace=inplace), nn.Linear(16, 4))


def test_peak_by_hand_for_an_mlp() -> None:
    est = estimate_memory(mlp(), input_shape=(8,), batch=2).estimates[0]
    # while the ReLU runs, its input (2x16) and its output (2x16) are both live
    assert est.peak_activation_bytes == 2 * (2 * 16 * F32)
    assert est.peak_layer == "1"
    assert [(g.layer, g.bytes) for g in est.live_at_peak] == [("0", 128), ("1", 128)]
    assert est.params_bytes == (8 * 16 + 16 + 16 * 4 + 4) * F32
    assert est.input_bytes == 2 * 8 * F32
    assert est.inference_peak_bytes == est.params_bytes + est.input_bytes + 256
    # in place, the ReLU adds nothing: the peak is the last linear's input and output
    inplace = estimate_memory(mlp(inplace=True), input_shape=(8,), batch=2).estimates[0]
    assert inplace.peak_activation_bytes == 2 * 16 * F32 + 2 * 4 * F32


def test_live_bytes_after_each_layer_by_hand() -> None:
    layers = archstat.analyze(mlp(), input_shape=(8,), batch=2).layers
    # after linear 0: its output; after the ReLU: only the ReLU's output (Sequential
    # drops the linear's); after the last layer: the model's output
    assert layers["live_bytes_after"].tolist() == [128, 128, 32]


def test_python_references_outlive_last_use_and_match_a_real_run() -> None:
    est = estimate_memory(Held(), input_shape=(4,), batch=1).estimates[0]
    # at ``c = b * 3``: a (held by its variable), b and c; the last use of a was at b
    assert est.peak_activation_bytes == 3 * 4 * F32
    assert measure_forward(Held(), (torch.randn(1, 4),)).peak_activation_bytes == 48


def test_saved_activations_by_hand_and_for_real() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    est = estimate_memory(model, input_shape=(4,), batch=5, train=True).estimates[0]
    # relu saves its output, which the second linear saves again (counted once); the
    # input and the weights are not activations
    assert est.saved_activation_bytes == 5 * 8 * F32
    real = measure_forward(model, (torch.randn(5, 4),), train=True)
    assert real.saved_activation_bytes == est.saved_activation_bytes


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam"])
def test_gradients_and_optimizer_state_match_torch(optimizer: str) -> None:
    model = Partial()
    est = estimate_memory(model, input_shape=(6,), batch=3, train=True,
                          optimizer=optimizer).estimates[0]
    opt = torch_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
    model(torch.randn(3, 6)).sum().backward()
    opt.step()
    grads = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    state = sum(v.nbytes for s in opt.state.values() for v in s.values()
                if isinstance(v, torch.Tensor))
    assert est.gradient_bytes == grads == (6 * 5 + 5) * F32  # only the trained, used layer
    assert est.optimizer_bytes == state
    assert est.params_bytes == sum(p.nbytes for p in model.parameters())


@pytest.mark.parametrize(("name", "optimizer"),
                         [("lenet5", "adam"), ("lenet5", "sgd-momentum"), ("resnet18", "sgd")])
def test_training_peak_is_close_to_a_measured_step(name: str, optimizer: str) -> None:
    shape = (1, 32, 32) if name == "lenet5" else (3, 64, 64)
    est = estimate_memory(name, input_shape=shape, batch=4, train=True, optimizer=optimizer)
    model = zoo_model(name)
    opt = torch_optimizer(optimizer, list(model.parameters()), foreach=True)
    measured = measure_training_step(model, (torch.randn(4, *shape),), opt)
    # the forward and backward are watched on meta as they are here on the CPU; Adam's
    # foreach step also makes a few scalar tensors the estimate leaves out
    assert est.estimates[0].training_peak_bytes == pytest.approx(measured, rel=1e-3)


def test_dtype_and_batch_scaling() -> None:
    report = estimate_memory("resnet18", batch="1,4", dtype="float16", train=True)
    one, four = report.estimates
    f32 = estimate_memory("resnet18").estimates[0]
    assert one.params_bytes == f32.params_bytes // 2
    # num_batches_tracked stays int64: 20 batch norms x 8 bytes
    assert one.buffers_bytes == (f32.buffers_bytes - 20 * 8) // 2 + 20 * 8
    assert four.params_bytes == one.params_bytes and four.gradient_bytes == one.gradient_bytes
    saved_one, saved_four = one.saved_activation_bytes, four.saved_activation_bytes
    assert 3 * saved_one < saved_four <= 4 * saved_one  # per-channel statistics do not scale
    assert four.training_peak_bytes > one.training_peak_bytes


def test_fit_finds_the_largest_batch_that_fits() -> None:
    budget = 64 * 2**20
    report = estimate_memory("resnet18", fit="64MiB")
    best = report.largest_batch
    assert best and best > 1
    fits, over = estimate_memory("resnet18", batch=[best, best + 1]).estimates
    assert fits.inference_peak_bytes <= budget < over.inference_peak_bytes
    assert estimate_memory("resnet18", fit="1MiB").largest_batch == 0  # not even the weights


@given(base=st.integers(0, 500), slope=st.integers(1, 50), bump=st.integers(0, 40),
       budget=st.integers(0, 20_000))
def test_largest_batch_search_is_exact_for_non_linear_totals(base, slope, bump, budget) -> None:
    def total(b: int) -> int:
        return base + slope * b + bump * (b // 7) ** 2  # grows, but not on a line

    expected = max((b for b in range(1, budget + 2) if total(b) <= budget), default=0)
    assert largest_batch(total, budget) == expected


@pytest.mark.parametrize(("text", "value"), [
    ("24GiB", 24 * 2**30), ("24G", 24 * 10**9), ("24GB", 24 * 10**9), ("512MiB", 2**29),
    ("1.5KiB", 1536), ("1000", 1000), (4096, 4096), ("2 TB", 2 * 10**12),
    ("4.1GB", 4_100_000_000),  # exact: a float product gave 4,099,999,999
])
def test_parse_budget(text, value) -> None:
    assert parse_budget(text) == value


@given(st.integers(1, 10**18), st.sampled_from([None, False, True]))
def test_fit_reads_sizes_as_budget_files_do(value, binary) -> None:
    text = format_quantity(value, "B", binary)
    assert parse_budget(text) == make_limit("max_activation_bytes", text).value == value


@pytest.mark.parametrize("text", ["0", "0GiB", "-1GiB", "GiB", "24XB", "", "1e9"])
def test_parse_budget_rejects(text) -> None:
    with pytest.raises(ArchstatError, match="budget"):
        parse_budget(text)


def test_fit_beyond_the_search_cap_is_a_lower_bound() -> None:
    report = estimate_memory("lenet5", fit="1PB")
    assert report.largest_batch == MAX_BATCH and report.search_capped
    assert json.loads(render(report, "json"))["fit"]["search_capped"] is True
    assert fit_line(report) == (
        "largest batch within 909TiB: at least 2147483648 (the search stops there)")
    assert not estimate_memory("lenet5", fit="1MiB").search_capped


def test_optimizer_needs_train() -> None:
    with pytest.raises(ArchstatError, match="an optimizer needs train=True"):
        estimate_memory("lenet5", optimizer="adam")
    assert estimate_memory("lenet5", train=True).optimizer == "sgd"


def test_live_bytes_after_joins_the_analysis() -> None:
    result = archstat.analyze("resnet18")
    layers = result.layers
    assert "live_bytes_after" in render(result, "csv").splitlines()[0].split(",")
    assert layers["live_bytes_after"].iloc[-1] == 1000 * F32  # the logits remain
    # never more than the peak, and the peak is reached inside some layer
    peak = estimate_memory("resnet18").estimates[0].peak_activation_bytes
    assert 0 < layers["live_bytes_after"].max() <= peak
    top = result.at_depth(1).layers.set_index("name")["live_bytes_after"]
    last_in_layer1 = layers[layers["name"].str.startswith("layer1.")]["live_bytes_after"].iloc[-1]
    assert top["layer1"] == last_in_layer1 == 64 * 56 * 56 * F32


# -- command line ------------------------------------------------------------------

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_table() -> None:
    result = invoke("memory", "resnet18", "--train", "--optimizer", "adam", "-b", "1,8",
                    "--fit", "2GiB")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("training step, adam", "saved activations", "live at the peak",
                 "by batch size", "largest batch within 2GiB: "):
        assert text in out


def test_cli_json_keys_and_determinism() -> None:
    first = invoke("memory", "vgg11", "--format", "json", "--train", "-b", "2,4", "--fit", "8GB")
    again = invoke("memory", "vgg11", "--format", "json", "--train", "-b", "2,4", "--fit", "8GB")
    assert first.exit_code == 0 and first.output == again.output
    data = json.loads(first.output)
    for key in ("params_bytes", "buffers_bytes", "peak_activation_bytes", "peak_layer",
                "saved_activation_bytes", "gradient_bytes", "optimizer_bytes",
                "training_peak_bytes"):
        assert key in data, key
    assert data["batch"] == 2 and [b["batch"] for b in data["batches"]] == [2, 4]
    assert data["params_bytes"] == 132_863_336 * F32  # vgg11's parameters
    assert data["fit"]["budget_bytes"] == 8 * 10**9
    assert sum(g["bytes"] for g in data["live_at_peak"]) == data["peak_activation_bytes"]
    inference = json.loads(invoke("memory", "vgg11", "-f", "json").output)
    assert "training_peak_bytes" not in inference and "inference_peak_bytes" in inference


def test_cli_csv_one_row_per_batch() -> None:
    out = invoke("memory", "alexnet", "-f", "csv", "-b", "1,2,4").output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["batch"]) for r in rows] == [1, 2, 4]
    peaks = [int(r["peak_activation_bytes"]) for r in rows]
    assert peaks[0] < peaks[1] < peaks[2]


@pytest.mark.parametrize(("args", "message"), [
    (["memory", "alexnet", "--batch", "0"], "--batch: '0' is not a positive integer"),
    (["memory", "alexnet", "--batch", "1,x"], "--batch: 'x' is not a positive integer"),
    (["memory", "alexnet", "--fit", "0"], "budget must be positive"),
    (["memory", "alexnet", "--fit", "lots"], "memory budget: cannot read 'lots'"),
    (["memory", "alexnet", "--optimizer", "adam"], "--optimizer needs --train"),
    (["memory", "alexnet", "--dtype", "float33"], "unknown dtype"),
    (["memory", "alexnet", "--train", "--optimizer", "adamx"], "did you mean: adam, adamw"),
    (["memory", "alexnet", "--input", "3x8x8"], "forward failed"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_output_file_is_atomic(tmp_path) -> None:
    target = tmp_path / "mem.csv"
    assert main(["memory", "lenet5", "-o", str(target)]) == 0
    before = target.read_text()
    assert before.startswith("batch,params_bytes,")
    assert main(["memory", "lenet5", "--fit", "-3", "-o", str(target)]) == 2
    assert target.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["mem.csv"]


class NoMetaBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("no backward here")


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NoMetaBackward.apply(self.fc(x))


def test_a_failing_backward_is_a_user_error() -> None:
    with pytest.raises(ArchstatError, match="the backward pass failed on meta: no backward"):
        estimate_memory(Broken(), input_shape=(4,), train=True)


def test_plot_draws_live_memory_over_depth(tmp_path) -> None:
    from archstat.lecture import lecture_table
    from archstat.render.plot import LIVE_LABEL, live_kb

    analysis = archstat.analyze("resnet18", convention="lecture")
    frame = lecture_table(analysis).frame
    values = live_kb(analysis)
    assert len(values) == len(frame)
    # a layer's output is still live after it, and the logits are all that is left
    assert all(v >= m for v, m in zip(values, frame["memory_kb"], strict=True))
    assert values[-1] == 1000 * F32 / 1024
    # in layer1's second block: the stage's input (ResNet.forward holds it through
    # layer1), the block's input and the conv's output, 64x56x56 each
    assert values[list(frame["layer"]).index("layer1.1.conv1")] == 3 * 64 * 56 * 56 * F32 / 1024
    memory_svg, params_svg = tmp_path / "memory.svg", tmp_path / "params.svg"
    assert main(["plot", "resnet18", "-m", "memory", "-o", str(memory_svg)]) == 0
    assert main(["plot", "resnet18", "-m", "params", "-o", str(params_svg)]) == 0
    assert LIVE_LABEL in memory_svg.read_text() and LIVE_LABEL not in params_svg.read_text()
