"""Benchmark statistics against synthetic timings, hand computation and numpy; the
roofline against datasheet arithmetic; bytes moved against hand-counted tensors."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from archstat.analysis import analyze
from archstat.bench import stats
from archstat.bench.devices import DEVICES, find_device, peak_for

latencies = st.lists(st.floats(0.001, 1e4, allow_nan=False), min_size=1, max_size=200)


def test_percentiles_by_hand() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]  # sorted 1 2 3 4
    assert stats.percentile(samples, 50) == 2.5
    assert stats.percentile(samples, 90) == pytest.approx(3.7)  # rank 2.7: 3 + 0.7
    assert stats.percentile(samples, 0) == 1.0 and stats.percentile(samples, 100) == 4.0
    assert stats.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        stats.percentile([], 50)


@given(latencies, st.floats(0, 100))
def test_percentile_matches_numpy(samples, q) -> None:
    assert stats.percentile(samples, q) == pytest.approx(np.percentile(samples, q), rel=1e-9)


def test_latency_stats_of_synthetic_timings() -> None:
    samples = [float(x) for x in range(1, 101)]  # 1 .. 100 ms
    result = stats.latency_stats(samples)
    assert result == {
        "min_ms": 1.0, "median_ms": 50.5, "p90_ms": pytest.approx(90.1),
        "p99_ms": pytest.approx(99.01), "mean_ms": 50.5,
        "std_ms": pytest.approx(statistics.stdev(samples)),
    }
    assert stats.latency_stats([3.0])["std_ms"] is None  # no spread from one sample


@given(latencies)
def test_latency_stats_are_ordered(samples) -> None:
    r = stats.latency_stats(samples)
    assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"] <= max(samples)
    assert r["mean_ms"] == pytest.approx(float(np.mean(samples)))


def test_throughput_and_achieved_flops() -> None:
    assert stats.samples_per_s(32, 16.0) == 2000.0  # 32 samples in 16 ms
    # 15.47 GMACs = 30.94 GFLOP in 10 ms: 3.094 TFLOP/s
    assert stats.achieved_tflops(30_940_000_000, 10.0) == pytest.approx(3.094)
    assert stats.peak_pct(3.094, 989.4) == pytest.approx(0.3127148)


def test_roofline_bound_is_the_slower_of_compute_and_memory() -> None:
    peak, bandwidth = 989.4, 3352.0  # H100 SXM5, float16
    compute_1ms = 989.4e9  # FLOPs that take 1 ms at peak
    memory_2ms = 6.704e9  # bytes that take 2 ms at 3352 GB/s
    assert stats.roofline_ms(compute_1ms, memory_2ms, peak, bandwidth) == pytest.approx(2.0)
    assert stats.roofline_ms(4 * compute_1ms, memory_2ms, peak, bandwidth) == pytest.approx(4.0)
    ridge = stats.ridge_point(peak, bandwidth)
    assert ridge == pytest.approx(295.17, rel=1e-4)  # FLOP/byte
    assert stats.bound(ridge * 0.99, peak, bandwidth) == "memory"
    assert stats.bound(ridge, peak, bandwidth) == "compute"
    assert stats.arithmetic_intensity(10, 0) is None


@pytest.mark.parametrize(("name", "entry"), [
    ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM5"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA L4", "L4"),
    ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("Tesla V100-PCIE-32GB", "V100 PCIe"),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
])
def test_torch_device_names_find_their_datasheet_entry(name, entry) -> None:
    assert find_device(name).name == entry


def test_unknown_devices_are_not_guessed() -> None:
    for name in ("NVIDIA L40S", "NVIDIA H100 NVL", "Intel(R) Xeon(R) Processor",
                 "NVIDIA GeForce RTX 4090 Laptop GPU", "NVIDIA A100X"):
        assert find_device(name) is None, name
    assert peak_for(None, "float32", tf32_allowed=True) is None


def test_peak_precision_follows_dtype_and_tf32() -> None:
    h100 = find_device("NVIDIA H100 80GB HBM3")
    assert peak_for(h100, "float32", tf32_allowed=True).tflops == 494.7
    assert peak_for(h100, "float32", tf32_allowed=False).tflops == 66.9
    assert peak_for(h100, "bfloat16", tf32_allowed=True).precision == "bfloat16"
    t4 = find_device("Tesla T4")
    assert peak_for(t4, "float32", tf32_allowed=True).precision == "float32"  # no TF32
    assert peak_for(t4, "bfloat16", tf32_allowed=True) is None  # no BF16 on Turing
    assert peak_for(t4, "float16", tf32_allowed=True).bandwidth_gbs == 320


def test_every_device_figure_has_a_source() -> None:
    required = {"A100", "H100", "H200", "L4", "T4", "V100", "RTX 4090"}
    assert required <= {word for d in DEVICES for word in required if word in d.name}
    for spec in DEVICES:
        assert spec.compute_source and spec.bandwidth_source and spec.bandwidth_gbs > 0
        # half precision on tensor cores is never slower than FP32 on CUDA cores
        assert spec.peak_tflops["float16"] >= spec.peak_tflops["float32"]


def test_record_traffic_counts_input_weights_output_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True))
    trace = analyze(model, input_shape=(3, 8, 8)).trace
    conv, relu = trace.records
    # input 3x8x8, weight 4x3x3x3 + bias 4, output 4x6x6; float32
    assert stats.record_traffic(trace, conv) == (3 * 64 * 4, (108 + 4) * 4, 4 * 36 * 4)
    # an in-place ReLU reads and writes the same 4x6x6 tensor
    assert stats.record_traffic(trace, relu) == (576, 0, 576)
    assert stats.eager_traffic(trace) == 768 + 448 + 576 + 576 + 576


def test_record_traffic_counts_buffers_as_weights_in_the_dtype() -> None:
    trace = analyze(nn.BatchNorm2d(8), input_shape=(8, 4, 4), dtype="float16").trace
    (record,) = trace.records
    # weight, bias, running mean and var: 4 x 8 halves; input and output 8x4x4 halves
    assert stats.record_traffic(trace, record) == (256, 64, 256)
