"""The allocator-level memory estimate (archstat.workspace) against torch's CPU allocator.

The oracle is ``archstat.realrun.allocator_peak``: the profiler's allocation events over a
real CPU forward. The workspace formulas are checked one kernel at a time on small shapes
(a few milliseconds each), then through ``estimate_memory(measure=True)`` and the CLI.
oneDNN's layouts are modelled for AVX-512; on another CPU those tests are skipped, and
the estimate names the convolutions it does not model (also tested).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from archstat.analysis import analyze
from archstat.cli import app
from archstat.errors import ArchstatError
from archstat.memory import estimate_memory
from archstat.realrun import allocator_peak, measure_peaks
from archstat.render import render
from archstat.workspace import RULES, CpuFacts, allocator_profile
from benchmarks.memory_oracles import SDPAttention, tensor_peak

aten = torch.ops.aten
AVX512 = CpuFacts(threads=2, capability="AVX512", mkldnn=True)
#: oneDNN's convolution layouts are modelled on AVX-512 (this project's machines); on
#: another CPU the estimate must name the convolutions it leaves out instead.
ONEDNN_AVX512 = (torch.backends.cpu.get_cpu_capability() == "AVX512"
                 and torch.backends.mkldnn.is_available())


def _estimate(model: nn.Module, x: torch.Tensor):
    return estimate_memory(model, input_shape=tuple(x.shape[1:]), batch=x.shape[0],
                           allocator=True).estimates[0]


def _check(model: nn.Module, x: torch.Tensor) -> int:
    """The estimate equals the allocator's peak, and the kernel's workspace is real (the
    allocator holds more than the tensors do); returns the workspace. On a CPU whose
    convolution layouts are not modelled, the estimate names them instead (and 1 is
    returned)."""
    torch.manual_seed(0)
    est = _estimate(model, x)
    if not ONEDNN_AVX512:
        assert any("convolution" in note for note in est.allocator_unmodelled)
        return 1
    measured = allocator_peak(model, (x,))
    assert est.allocator_unmodelled == []
    assert est.allocator_peak_bytes == measured
    return measured - tensor_peak(model, (x,))[0]


# -- convolution ------------------------------------------------------------------------

class Conv(nn.Module):
    def __init__(self, c: int, o: int, k: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, o, k, stride, padding, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(("conv", "shape"), [
    (Conv(16, 32, 3, padding=1), (2, 16, 12, 12)),  # blocked input, weights and output
    (Conv(3, 24, 3, padding=1), (2, 3, 12, 12)),  # plain input; bias padded to 32
    (Conv(20, 40, 1, stride=2), (2, 20, 12, 12)),  # strided 1x1: input gathered per thread
    (Conv(8, 16, 1), (2, 8, 12, 12)),  # 1x1: the input is blocked even with 8 channels
    (Conv(24, 24, 3, padding=1, groups=24), (2, 24, 10, 10)),  # depthwise, padded to 32
    (Conv(32, 64, 3, padding=1, groups=2), (2, 32, 10, 10)),  # 16 channels per group
    (Conv(16, 32, 3, padding=1), (1, 16, 10, 10)),  # one small image: im2col columns
])
def test_convolution_workspace_is_the_allocators(conv: nn.Module, shape) -> None:
    assert _check(conv, torch.randn(shape)) > 0


def test_vgg16_first_block_copies_its_input_and_weights() -> None:
    # the allocator's peak of vgg16 (38,682,624 bytes on an AVX-512 CPU, against 25,690,112
    # tensor-level) is at conv1_2: oneDNN's blocked copy of its 64x224x224 input and its
    # reordered 64x64x3x3 weights beside the input and output. Pure arithmetic on a meta
    # trace, for a given CPU: it holds on any machine.
    trace = analyze("vgg16", execute="never").trace
    estimate = allocator_profile(trace, cpu=AVX512)
    assert estimate.peak_bytes == 25_690_112 + 64 * 224 * 224 * 4 + 64 * 64 * 9 * 4
    assert trace.records[trace.events[estimate.peak_event].record].name == "features.2"


def test_strided_1x1_buffer_is_per_thread() -> None:
    trace = analyze(Conv(64, 128, 1, stride=2), input_shape=(64, 28, 28),
                    execute="never").trace
    one, four = (allocator_profile(trace, cpu=CpuFacts(t, "AVX512", True)).peak_bytes
                 for t in (1, 4))
    assert four - one == 3 * 64 * 14 * 14 * 4  # one copy of the subsampled input per thread


def test_other_cpus_name_the_convolutions_they_do_not_model() -> None:
    trace = analyze("lenet5", batch=2, execute="never").trace
    estimate = allocator_profile(trace, cpu=CpuFacts(2, "AVX2", True))
    assert estimate.notes() == ["oneDNN convolution layouts on AVX2 (modelled on AVX512), 2 ops"]


# -- LSTM, attention, batch norm, Python numbers -------------------------------------------

def _allocations(model: nn.Module, x: torch.Tensor) -> list[int]:
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        model(x)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(x)
    return [e.nbytes() for e in prof.profiler.kineto_results.events()
            if e.name() == "[memory]" and e.nbytes() > 0]


def test_lstm_weight_reorders_are_modelled_and_the_scratchpad_named() -> None:
    torch.manual_seed(0)
    features, hidden = 8, 16
    model, x = nn.LSTM(features, hidden).eval(), torch.randn(5, 2, features)
    est = _estimate(model, x)
    gates = 128  # 4 x 16 gates, padded to a multiple of 128
    sizes = _allocations(model, x)
    for reordered in (4 * hidden * 4, features * gates * 4, hidden * gates * 4):
        assert reordered in sizes
    assert est.allocator_unmodelled == ["oneDNN LSTM scratchpad (mkldnn_rnn_layer), 1 op"]
    # what the estimate leaves out is exactly the scratchpad: the call's largest buffer
    assert allocator_peak(model, (x,)) - est.allocator_peak_bytes == max(sizes)


@pytest.mark.parametrize(("tokens", "threads"), [(12, 1), (12, 2), (200, 2)])
def test_flash_attention_blocks_are_per_thread(tokens: int, threads: int) -> None:
    # 200 queries: query blocks of 64 rows instead of 32
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        workspace = _check(SDPAttention(16, 2), torch.randn(1, tokens, 16))
    finally:
        torch.set_num_threads(before)
    rows = 64 if tokens >= 192 else 32
    q = min(rows, tokens)
    assert workspace == threads * (q * tokens + 2 * q + q * 8) * 4


def test_batch_norm_folds_its_statistics_into_two_per_channel_tensors() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Unflatten(1, (8, 1, 1)), nn.BatchNorm2d(8)).eval()
    assert _check(model, torch.randn(4, 8)) == 2 * 8 * 4


class Scalars(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 0.5  # a float wrapped in an 8-byte tensor, then copied to float32
        z = torch.where(y > 0, y, 1 - y)
        return (z + 1).mean(-1)


def test_python_numbers_are_wrapped_in_tensors() -> None:
    _check(Scalars(), torch.randn(4, 8))


# -- what is not modelled, rules ----------------------------------------------------------

class Cumulative(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, 1)


def test_an_op_without_a_rule_is_named() -> None:
    trace = analyze(Cumulative(), input_shape=(8,), execute="never").trace
    assert allocator_profile(trace).notes() == ["aten.cumsum (no workspace rule), 1 op"]
    silent = allocator_profile(trace, rules={aten.cumsum: lambda event, dtype, cpu: 0})
    assert silent.notes() == [] and aten.cumsum not in RULES


def test_training_has_no_allocator_estimate() -> None:
    est = estimate_memory("lenet5", train=True).estimates[0]
    assert est.allocator_peak_bytes is None


# -- measuring -------------------------------------------------------------------------------

def test_measure_puts_a_real_runs_peaks_beside_the_estimates() -> None:
    report = estimate_memory("lenet5", batch="1,2", measure=True)
    for est in report.estimates:
        assert est.measured is not None
        assert est.measured.tensor_peak_bytes == est.peak_activation_bytes
        if ONEDNN_AVX512:
            assert est.measured.allocator_peak_bytes == est.allocator_peak_bytes
        else:
            assert any("convolution" in note for note in est.allocator_unmodelled)
    assert report.estimates[1].measured.allocator_peak_bytes > \
        report.estimates[0].measured.allocator_peak_bytes
    assert "measured_allocator_peak_bytes" in render(report, "csv").splitlines()[0]


def test_measure_sees_inside_the_transformer_fast_path() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    model = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False).eval()
    x = torch.randn(2, 6, 16)
    peaks = measure_peaks(model, (x,))
    assert peaks.tensor_peak_bytes == tensor_peak(model, (x,))[0]
    assert peaks.allocator_peak_bytes == allocator_peak(model, (x,))


def test_measure_with_example_inputs_in_another_dtype() -> None:
    model = nn.Linear(8, 4)
    report = estimate_memory(model, inputs=torch.randn(3, 8, dtype=torch.float64),
                             measure=True)
    est = report.estimates[0]
    assert est.measured.tensor_peak_bytes == est.peak_activation_bytes == 3 * 4 * 4


def test_measure_needs_real_weights_and_inference() -> None:
    with torch.device("meta"):
        model = nn.Linear(8, 4)
    with pytest.raises(ArchstatError, match="weights on the CPU, not on meta"):
        estimate_memory(model, input_shape=(8,), measure=True)
    with pytest.raises(ArchstatError, match="for inference: leave out train"):
        estimate_memory("lenet5", train=True, measure=True)


# -- command line ------------------------------------------------------------------------------

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_shows_the_allocator_peak_only_when_asked() -> None:
    # the default output is the same on every machine: no thread- or CPU-dependent figure
    plain = json.loads(invoke("memory", "lenet5", "-f", "json").output)
    assert "allocator_peak_bytes" not in plain and "cpu" not in plain
    result = invoke("memory", "lenet5", "--allocator")
    assert result.exit_code == 0, result.output
    assert "allocator peak (CPU, modelled)" in result.output
    assert "measured" not in result.output
    data = json.loads(invoke("memory", "lenet5", "--allocator", "-f", "json").output)
    assert data["allocator_peak_bytes"] >= data["peak_activation_bytes"]
    assert (data["allocator_unmodelled"] == []) == ONEDNN_AVX512
    assert not any(key.startswith("measured") for key in data)


def test_cli_measure() -> None:
    result = invoke("memory", "lenet5", "--measure")
    assert result.exit_code == 0, result.output
    assert "measured allocator peak" in result.output
    data = json.loads(invoke("memory", "lenet5", "--measure", "-f", "json").output)
    if ONEDNN_AVX512:
        assert "estimate exact" in result.output
        assert data["measured_allocator_peak_bytes"] == data["allocator_peak_bytes"]
    else:
        assert data["allocator_unmodelled"]


def test_cli_names_what_is_not_modelled(tmp_path, monkeypatch) -> None:
    (tmp_path / "rnn_models.py").write_text("from torch import nn\nlstm = nn.LSTM(8, 16)\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("memory", "rnn_models:lstm", "--input", "2x8", "-b", "5", "--allocator")
    assert result.exit_code == 0, result.output
    assert ("allocator peak, not modelled: oneDNN LSTM scratchpad (mkldnn_rnn_layer), 1 op"
            in result.output)


def test_cli_measure_refuses_training() -> None:
    result = invoke("memory", "lenet5", "--measure", "--train")
    assert result.exit_code == 2
    assert "--allocator and --measure are for inference" in result.output
