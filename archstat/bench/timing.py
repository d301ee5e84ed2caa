"""How one forward pass is timed, and how many are run: the timer interface, its CPU
and CUDA implementations, and the warm-up and measurement loop.

A timer exposes four things: ``mark()`` (a point in time: a ``perf_counter_ns`` reading
on the CPU, a recorded CUDA event on the GPU), ``sync()`` (wait for the device),
``elapsed_ms(a, b)`` (milliseconds between two marks, valid after ``sync``), and the
peak-memory pair ``reset_peak_memory()`` / ``peak_memory_bytes()``. Everything else
(:func:`time_call`, the warm-up, per-layer hooks) is written against that interface, so
tests drive it with synthetic clocks and a fake ``torch.cuda`` on a machine without GPU.

Why CUDA events: a CUDA launch returns before the GPU has run the kernel, so a wall
clock around the call measures the launch, not the work. Events are recorded into the
stream before and after the forward pass; after ``synchronize`` their difference is the
time the GPU spent, queue included. Each timed call first waits for the GPU to be idle,
so one iteration's latency never includes the previous one's tail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Timer(Protocol):
    device: str

    def mark(self) -> Any: ...
    def sync(self) -> None: ...
    def elapsed_ms(self, start: Any, end: Any) -> float: ...
    def reset_peak_memory(self) -> None: ...
    def peak_memory_bytes(self) -> int | None: ...


class CpuTimer:
    """``time.perf_counter_ns`` around the call; the CPU runs synchronously. Peak
    memory is not measured on the CPU (``None``)."""

    device = "cpu"

    def mark(self) -> int:
        return time.perf_counter_ns()

    def sync(self) -> None:
        pass

    def elapsed_ms(self, start: int, end: int) -> float:
        return (end - start) / 1e6

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory_bytes(self) -> int | None:
        return None


class CudaTimer:
    """CUDA events recorded on the current stream; ``cuda`` is the ``torch.cuda`` module
    (tests pass a fake with the same five functions and ``Event``). Peak memory is
    ``max_memory_allocated`` since the last ``reset_peak_memory`` (bytes held by
    tensors, not the caching allocator's reserve)."""

    device = "cuda"

    def __init__(self, cuda: Any = None) -> None:
        if cuda is None:
            import torch

            cuda = torch.cuda
        self.cuda = cuda

    def mark(self) -> Any:
        event = self.cuda.Event(enable_timing=True)
        event.record()
        return event

    def sync(self) -> None:
        self.cuda.synchronize()

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(start.elapsed_time(end))

    def reset_peak_memory(self) -> None:
        self.cuda.synchronize()
        self.cuda.reset_peak_memory_stats()

    def peak_memory_bytes(self) -> int | None:
        self.cuda.synchronize()
        return int(self.cuda.max_memory_allocated())


def time_call(timer: Timer, fn: Callable[[], Any]) -> float:
    """Milliseconds one call of ``fn`` takes on the timer's device, from an idle device
    to the end of its work."""
    timer.sync()
    start = timer.mark()
    fn()
    end = timer.mark()
    timer.sync()
    return timer.elapsed_ms(start, end)


@dataclass(frozen=True)
class Policy:
    """How many iterations to run.

    Warm-up: none when ``warmup`` is 0; otherwise at least ``warmup`` calls, then more
    until the medians of the last two windows of ``window`` calls agree within
    ``settle_rtol`` (relative), or until ``max_warmup_iters`` calls or ``max_warmup_s``
    seconds of warm-up, whichever comes first (then the run is flagged as not settled).
    Measurement: exactly ``iters`` calls when given, else calls until ``min_time_s``
    seconds of measured time and at least ``min_iters`` calls.
    """

    warmup: int = 3
    iters: int | None = None
    min_time_s: float = 1.0
    min_iters: int = 5
    window: int = 3
    settle_rtol: float = 0.05
    max_warmup_iters: int = 50
    max_warmup_s: float = 10.0


@dataclass(frozen=True)
class WarmUp:
    iters: int
    settled: bool


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2


def settled(times_ms: list[float], window: int, rtol: float) -> bool:
    """Whether the last two windows of ``window`` timings have medians within ``rtol``."""
    if len(times_ms) < 2 * window:
        return False
    last = _median(times_ms[-window:])
    before = _median(times_ms[-2 * window:-window])
    return abs(last - before) <= rtol * before


def warm_up(run: Callable[[], float], policy: Policy) -> WarmUp:
    """Call ``run`` (which returns one call's latency in ms) until timings settle;
    ``policy.warmup`` 0 means no warm-up at all."""
    if policy.warmup == 0:
        return WarmUp(0, False)
    times: list[float] = []
    while True:
        times.append(run())
        enough = len(times) >= policy.warmup
        if enough and settled(times, policy.window, policy.settle_rtol):
            return WarmUp(len(times), True)
        if enough and (len(times) >= policy.max_warmup_iters
                       or sum(times) / 1e3 >= policy.max_warmup_s):
            return WarmUp(len(times), False)


def measure(run: Callable[[], float], policy: Policy) -> list[float]:
    """Per-iteration latencies (ms) of the measured iterations."""
    if policy.iters is not None:
        return [run() for _ in range(policy.iters)]
    times: list[float] = []
    while len(times) < policy.min_iters or sum(times) / 1e3 < policy.min_time_s:
        times.append(run())
    return times
