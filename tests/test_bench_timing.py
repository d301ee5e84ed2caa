"""The timing logic, driven by synthetic clocks: warm-up until settled, the measurement
policy, the CUDA event path (with a fake ``torch.cuda`` that runs asynchronously, as a
GPU does), peak memory, and per-layer attribution by hooks."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from archstat.analysis import analyze
from archstat.bench import per_layer as layers
from archstat.bench.devices import Peak
from archstat.bench.harness import device_settings, point_stats, run_point
from archstat.bench.timing import (
    CpuTimer,
    CudaTimer,
    Policy,
    WarmUp,
    measure,
    time_call,
    warm_up,
)
from archstat.errors import ArchstatError


class FakeClock:
    """A timer over a synthetic clock: ``work(ms)`` is the only thing that moves it."""

    device = "fake"

    def __init__(self) -> None:
        self.now = 0.0

    def work(self, ms: float) -> None:
        self.now += ms

    def mark(self) -> float:
        return self.now

    def sync(self) -> None:
        pass

    def elapsed_ms(self, start: float, end: float) -> float:
        return end - start

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory_bytes(self) -> None:
        return None


class FakeCuda:
    """The slice of ``torch.cuda`` the CUDA timer uses, asynchronous like a GPU: a launch
    only queues work; an event's time is known after ``synchronize``; reading it earlier
    raises, as CUDA does for an event that has not completed."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.queued_ms = 0.0  # GPU time at the end of all queued work
        self.done_ms = 0.0  # GPU time reached so far
        self.allocated = self.peak = 0
        fake = self

        class Event:
            def __init__(self, enable_timing: bool = False) -> None:
                assert enable_timing
                self.at: float | None = None

            def record(self) -> None:
                fake.log.append("record")
                self.at = fake.queued_ms

            def elapsed_time(self, end: Event) -> float:
                fake.log.append("elapsed")
                if max(self.at, end.at) > fake.done_ms:
                    raise RuntimeError("event has not completed")
                return end.at - self.at

        self.Event = Event

    def launch(self, ms: float, allocates: int = 0) -> None:
        self.log.append("launch")
        self.queued_ms += ms
        self.allocated += allocates
        self.peak = max(self.peak, self.allocated)
        self.allocated -= allocates

    def synchronize(self) -> None:
        self.log.append("synchronize")
        self.done_ms = self.queued_ms

    def reset_peak_memory_stats(self) -> None:
        self.log.append("reset")
        self.peak = self.allocated

    def max_memory_allocated(self) -> int:
        return self.peak


def scripted(clock: FakeClock, durations: list[float]):
    it = iter(durations)
    return lambda: time_call(clock, lambda: clock.work(next(it)))


def test_warm_up_runs_until_two_windows_agree() -> None:
    clock = FakeClock()
    run = scripted(clock, [50, 30, 20, 10, 10, 10, 10, 10, 10, 10])
    # windows of 3: [20 10 10] vs [10 10 10] after the 8th call, medians 10 and 10
    assert warm_up(run, Policy(warmup=3, window=3)) == WarmUp(8, True)


def test_warm_up_gives_up_and_says_so() -> None:
    clock = FakeClock()
    run = scripted(clock, itertools.cycle([10.0, 20.0]))
    result = warm_up(run, Policy(warmup=3, window=3, max_warmup_iters=12))
    assert (result.iters, result.settled) == (12, False)
    slow = scripted(clock, itertools.cycle([400.0, 800.0]))
    assert warm_up(slow, Policy(warmup=2, window=3, max_warmup_s=2.0)).iters == 4  # 2.4 s
    assert warm_up(slow, Policy(warmup=0)).iters == 0


def test_warm_up_respects_its_minimum() -> None:
    clock = FakeClock()
    run = scripted(clock, [5.0] * 20)
    assert warm_up(run, Policy(warmup=10, window=3)) == WarmUp(10, True)


def test_measure_exact_iterations_or_minimum_time() -> None:
    clock = FakeClock()
    assert measure(scripted(clock, [1.0, 2.0, 3.0, 4.0]), Policy(iters=3)) == [1.0, 2.0, 3.0]
    # 0.35 s of 100 ms calls is 4 calls, but never fewer than min_iters
    assert len(measure(scripted(clock, [100.0] * 9), Policy(min_time_s=0.35))) == 5
    assert len(measure(scripted(clock, [100.0] * 9), Policy(min_time_s=0.7))) == 7


def test_cpu_timer_reads_perf_counter_ns(monkeypatch) -> None:
    ticks = iter([1_000_000, 3_500_000])
    monkeypatch.setattr("archstat.bench.timing.time.perf_counter_ns", lambda: next(ticks))
    assert time_call(CpuTimer(), lambda: None) == 2.5
    assert CpuTimer().peak_memory_bytes() is None


def test_cuda_timer_times_queued_work_with_events_after_synchronize() -> None:
    cuda = FakeCuda()
    timer = CudaTimer(cuda)
    assert time_call(timer, lambda: cuda.launch(7.5)) == 7.5
    # idle device first, events around the launch, synchronize before reading them
    assert cuda.log == ["synchronize", "record", "launch", "record", "synchronize", "elapsed"]


def test_a_wall_clock_would_miss_asynchronous_work() -> None:
    cuda = FakeCuda()
    timer = CudaTimer(cuda)
    start = timer.mark()
    cuda.launch(3.0)
    end = timer.mark()
    with pytest.raises(RuntimeError, match="not completed"):
        start.elapsed_time(end)  # what a timer that forgot to synchronize would hit


def test_cuda_point_reports_event_times_and_peak_memory() -> None:
    cuda = FakeCuda()
    cuda.allocated = 1000  # weights and input, already there
    work = iter([9.0, 8.0, 4.0, 5.0, 6.0, 4.0])
    measured = run_point(lambda: cuda.launch(next(work), allocates=500), CudaTimer(cuda),
                         Policy(warmup=0, iters=6))
    assert measured.samples_ms == [9.0, 8.0, 4.0, 5.0, 6.0, 4.0]
    assert measured.peak_memory_bytes == 1500
    assert cuda.log[0] == "synchronize" and cuda.log[1] == "reset"  # reset before timing
    row = point_stats(measured, batch=8, flops=989_400_000_000,
                      peak=Peak(989.4, "float16", 3352.0, "test"))
    assert row["median_ms"] == 5.5 and row["min_ms"] == 4.0
    assert row["samples_per_s"] == pytest.approx(8 / 5.5e-3)
    assert row["tflops_achieved"] == pytest.approx(989.4 / 5.5)  # 1 ms at peak in 5.5 ms
    assert row["peak_pct"] == pytest.approx(100 / 5.5)  # 1 ms of work at peak took 5.5
    assert row["peak_memory_bytes"] == 1500 and row["iters"] == 6 and row["note"] is None


def test_unsettled_warm_up_is_noted_in_the_row() -> None:
    clock = FakeClock()
    work = itertools.cycle([10.0, 30.0])
    measured = run_point(lambda: clock.work(next(work)), clock,
                         Policy(warmup=2, iters=2, max_warmup_iters=8))
    row = point_stats(measured, batch=1, flops=0, peak=None)
    assert row["note"] == "warm-up did not settle in 8 iterations"
    assert row["peak_pct"] is None and row["peak_memory_bytes"] is None


def test_device_settings_turn_cudnn_benchmark_on_for_cuda_and_restore() -> None:
    before_threads, before_flag = torch.get_num_threads(), torch.backends.cudnn.benchmark
    with device_settings("cuda", threads=1) as threads:
        assert torch.backends.cudnn.benchmark is True
        assert threads == torch.get_num_threads() == 1
    assert torch.backends.cudnn.benchmark == before_flag
    assert torch.get_num_threads() == before_threads
    with device_settings("cpu", threads=None) as threads:
        assert threads == before_threads and torch.backends.cudnn.benchmark == before_flag
    with pytest.raises(ArchstatError, match="`threads`"), device_settings("cpu", 0):
        pass


class Timed(nn.Linear):
    """A leaf layer that takes ``ms`` on the fake clock."""

    def __init__(self, clock: FakeClock, ms: float) -> None:
        super().__init__(4, 4)
        self.clock, self.ms = clock, ms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.work(self.ms)
        return super().forward(x)


class TwoLayers(nn.Module):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.a, self.b = Timed(clock, 2.0), Timed(clock, 3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        self.clock.work(0.5)  # the container's own work, outside every leaf
        return self.b(y) * 2


def test_per_layer_hooks_attribute_time_to_each_leaf_call() -> None:
    clock = FakeClock()
    model = TwoLayers(clock)
    x = torch.ones(1, 4)
    timing = layers.time_layers(model, lambda: model(x), clock, Policy(warmup=0, iters=3))
    assert timing.calls == [("a", "Timed", 2.0), ("b", "Timed", 3.0)]
    assert timing.hooked_ms == [5.5] * 3 and timing.outside_ms == [0.5] * 3
    assert not model.a._forward_hooks and not model.a._forward_pre_hooks  # removed

    rows = layers.layer_rows(analyze(model, input_shape=(4,)), timing,
                             Peak(100.0, "float32", 1000.0, "test"))
    assert [r["name"] for r in rows] == ["b", "a", layers.OUTSIDE]  # slowest first
    b = rows[0]
    # Linear(4, 4) at batch 1: 16 MACs = 32 FLOPs; input 16 B, weights 80 B, output 16 B
    assert (b["flops"], b["bytes"]) == (32, 112)
    assert b["time_pct"] == pytest.approx(100 * 3 / 5.5)
    assert b["gflops_achieved"] == pytest.approx(32 / 3e-3 / 1e9)
    assert b["arithmetic_intensity"] == pytest.approx(32 / 112)
    assert b["bound"] == "memory"  # ridge point 100 FLOP/byte
    outside = rows[2]
    assert outside["time_ms"] == 0.5 and outside["flops"] == 0  # the "* 2" is no MAC


def test_per_layer_refuses_a_mismatched_trace() -> None:
    clock = FakeClock()
    model = TwoLayers(clock)
    timing = layers.LayerTiming([("b", "Timed", 1.0), ("a", "Timed", 1.0)], [2.0], [0.0])
    with pytest.raises(ArchstatError, match="do not match"):
        layers.layer_rows(analyze(model, input_shape=(4,)), timing, None)
