"""Latency benchmarking with roofline context (``archstat bench``).

``timing``: the timer interface (CPU ``perf_counter_ns``, CUDA events) and the warm-up
and measurement loop; ``stats``: percentiles, throughput, achieved FLOP/s, roofline;
``devices``: datasheet peaks of known GPUs; ``layers``: per-layer timing by hooks;
``harness``: :func:`benchmark`, which builds, runs and measures; ``view``: tables.
"""

from archstat.bench.harness import RESULT_COLUMNS, BenchReport, benchmark

__all__ = ["RESULT_COLUMNS", "BenchReport", "benchmark"]
