"""Statistics of a benchmark: latency percentiles, throughput, achieved FLOP/s and the
roofline. Pure functions of numbers (and of a trace, for bytes moved); no timing here.

Units: latencies in milliseconds; FLOPs are floating-point operations with one
multiply-add = 2 FLOPs (2 x the analyzer's ``macs`` convention); bytes are bytes;
throughput in samples per second; achieved and peak compute in TFLOP/s (10^12 FLOP/s);
bandwidth in GB/s (10^9 bytes/s); arithmetic intensity in FLOP per byte.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from archstat.trace.tracer import LayerRecord, Trace


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks:
    position (n - 1) q / 100 in the sorted samples (numpy's and pandas' default)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float | None]:
    """min, median, p90, p99, mean and std (sample standard deviation, n - 1; None for a
    single sample) of per-iteration latencies, all in milliseconds."""
    n = len(samples_ms)
    mean = math.fsum(samples_ms) / n
    std = (math.sqrt(math.fsum((x - mean) ** 2 for x in samples_ms) / (n - 1))
           if n > 1 else None)
    return {
        "min_ms": min(samples_ms),
        "median_ms": percentile(samples_ms, 50),
        "p90_ms": percentile(samples_ms, 90),
        "p99_ms": percentile(samples_ms, 99),
        "mean_ms": mean,
        "std_ms": std,
    }


def samples_per_s(batch: int, median_ms: float) -> float:
    """Throughput: samples per second at the median latency of one batch."""
    return batch / (median_ms / 1e3)


def achieved_tflops(flops: int, median_ms: float) -> float:
    """TFLOP/s achieved: the model's FLOPs for one batch divided by its median latency."""
    return flops / (median_ms / 1e3) / 1e12


def peak_pct(achieved: float, peak: float) -> float:
    """Achieved compute as a percentage of the device's peak (both in TFLOP/s)."""
    return 100.0 * achieved / peak


def roofline_ms(flops: int, bytes_moved: int, peak_tflops: float, bandwidth_gbs: float) -> float:
    """Roofline lower bound on latency, ms: max(FLOPs / peak, bytes / bandwidth)."""
    return max(flops / (peak_tflops * 1e12), bytes_moved / (bandwidth_gbs * 1e9)) * 1e3


def ridge_point(peak_tflops: float, bandwidth_gbs: float) -> float:
    """The arithmetic intensity (FLOP/byte) where the roofline turns from memory- to
    compute-bound: peak / bandwidth."""
    return peak_tflops * 1e12 / (bandwidth_gbs * 1e9)


def bound(intensity: float, peak_tflops: float, bandwidth_gbs: float) -> str:
    """``memory`` below the ridge point, ``compute`` at or above it."""
    return "memory" if intensity < ridge_point(peak_tflops, bandwidth_gbs) else "compute"


def arithmetic_intensity(flops: int, bytes_moved: int) -> float | None:
    """FLOP per byte moved; None when nothing is moved."""
    return flops / bytes_moved if bytes_moved else None


def record_traffic(trace: Trace, record: LayerRecord) -> tuple[int, int, int]:
    """Bytes a layer record moves, as (input, weight, output) bytes.

    Input and weight bytes are the tensors its ops read that it did not produce itself
    (weights: parameters and buffers; inputs: everything else), each counted once;
    output bytes are its outputs. An in-place op's tensor is read and written, so it
    counts on both sides. A view is counted as if it were a copy (a Flatten layer
    shows its input and output bytes), which overstates a few tiny layers.
    """
    produced: set[int] = set()
    read: dict[int, None] = {}
    for index in record.events:
        event = trace.events[index]
        for serial in event.inputs:
            if serial not in produced:
                read.setdefault(serial, None)
        produced.update(event.outputs)
    weights = sum(trace.tensors[s].nbytes for s in read
                  if trace.tensors[s].role in ("param", "buffer"))
    inputs = sum(trace.tensors[s].nbytes for s in read) - weights
    outputs = sum(trace.tensors[s].nbytes for s in dict.fromkeys(record.outputs))
    return inputs, weights, outputs


def eager_traffic(trace: Trace) -> int:
    """Bytes an eager, layer-by-layer run moves: every record reads its inputs and
    weights and writes its outputs once (no fusion, no cache reuse between layers)."""
    return sum(sum(record_traffic(trace, r)) for r in trace.records)
