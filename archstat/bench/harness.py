"""``archstat.bench.benchmark``: measured latency of models on a CPU or a CUDA GPU,
with throughput, achieved FLOP/s and roofline context.

How a point (one model at one batch size) is measured: the model is built with real,
randomly initialised weights (seed 0) on the target device, cast to the dtype, put in
eval mode (and channels_last, and through ``torch.compile``, when asked); the input is
one fixed random tensor (seed 0); every call runs under ``torch.inference_mode()``.
Warm-up runs until timings settle (:mod:`archstat.bench.timing`), then the measured
iterations are timed one by one. On CUDA ``cudnn.benchmark`` is on and the peak memory
is ``max_memory_allocated`` after a reset (weights, input, activations).

FLOPs are 2 x the analyzer's ``macs`` for the same model, batch and dtype (conv, linear
and matmul multiply-adds; norms, pools and activations are not counted). Units are
those of :mod:`archstat.bench.stats`. Nothing is invented: a figure that could not be
measured is empty (None), with the reason in the row's ``note`` or in
``meta["not_measured"]``.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from archstat._version import __version__
from archstat.analysis import analyze
from archstat.bench import per_layer, stats
from archstat.bench.devices import Peak, find_device, peak_for
from archstat.bench.timing import CpuTimer, CudaTimer, Policy, Timer, measure, time_call, warm_up
from archstat.display import Display
from archstat.errors import ArchstatError
from archstat.spec import resolve_model
from archstat.units import parse_int_list

DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("auto", "cuda", "cpu")

#: The CSV/JSON row, in this order: the issue's 15 columns, then FLOPs and the ratios
#: to the first model at the same batch size, the iteration counts, and the note.
RESULT_COLUMNS = [
    "model", "device", "dtype", "batch_size", "min_ms", "median_ms", "p90_ms", "p99_ms",
    "mean_ms", "std_ms", "samples_per_s", "tflops_achieved", "peak_pct", "roofline_ms",
    "peak_memory_bytes", "flops", "latency_ratio", "flops_ratio", "iters", "warmup_iters",
    "compile_s", "note",
]
#: Metadata repeated on every CSV row, so that a CSV stands on its own.
META_COLUMNS = ["device_name", "torch_version", "cuda_version", "driver_version", "threads",
                "channels_last", "compile", "date", "convention"]

Progress = Callable[[int, int, str], None]


@dataclass
class BenchReport(Display):
    """``meta``: how and where it was measured; ``results``: one row per model x batch
    size (RESULT_COLUMNS); ``per_layer``: with ``per_layer=True``, one entry per point
    with the method, the hooks' overhead and its ``layers`` table, slowest first."""

    meta: dict[str, Any]
    results: pd.DataFrame
    per_layer: list[dict[str, Any]] = field(default_factory=list)

    def layers_frame(self) -> pd.DataFrame:
        """Every point's per-layer rows in one table, led by model and batch_size."""
        frames = [p["layers"].assign(model=p["model"], batch_size=p["batch_size"])
                  for p in self.per_layer]
        columns = ["model", "batch_size", *per_layer.LAYER_COLUMNS]
        return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


def benchmark(
    models: Sequence[str | nn.Module],
    *,
    device: str = "auto",
    batch_sizes: Sequence[int] = (1,),
    dtype: str = "float32",
    channels_last: bool = False,
    compile: bool = False,
    warmup: int = 3,
    iters: int | None = None,
    min_time: float | None = None,
    threads: int | None = None,
    per_layer: bool = False,
    input_shape: Any = None,
    progress: Progress | None = None,
    timer: Timer | None = None,
    compile_backend: str = "inductor",
) -> BenchReport:
    """Benchmark ``models`` (zoo names, spec strings or ``nn.Module``; a module is moved
    and cast in place) at each batch size.

    ``device``: ``auto`` (cuda when available, else cpu), ``cuda`` or ``cpu``.
    ``warmup``: minimum warm-up calls before waiting for timings to settle (0: none).
    ``iters`` or ``min_time`` (seconds, default 1.0): how many measured calls.
    ``threads``: CPU threads (default: torch's current setting). ``progress`` is called
    with (points done, points in all, label) before each point and at the end.
    ``timer`` replaces the device's timer (tests); ``compile_backend`` goes to
    ``torch.compile``.
    """
    policy = _policy(warmup, iters, min_time)
    batch_sizes = parse_int_list(batch_sizes, "`batch_sizes`")
    if dtype not in DTYPES:
        raise ArchstatError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if per_layer and compile:
        raise ArchstatError("`per_layer` times eager modules with hooks; it cannot be "
                            "combined with `compile`")
    if not models:
        raise ArchstatError("name at least one model to benchmark")
    target = resolve_device(device)
    timer = timer or (CudaTimer() if target == "cuda" else CpuTimer())
    total = len(models) * len(batch_sizes)
    with device_settings(target, threads) as used_threads:
        meta = metadata(target, dtype, used_threads, channels_last, compile, policy)
        peak = peak_for(find_device(meta["device_name"]), dtype,
                        tf32_allowed=meta["tf32_allowed"]) if target == "cuda" else None
        meta["roofline"] = _roofline_meta(peak, meta["device_name"], meta["not_measured"])
        rows: list[dict[str, Any]] = []
        layer_tables: list[dict[str, Any]] = []
        for model in models:
            bench_model = _Model(model, target, dtype, channels_last, input_shape)
            runner = _compiled(bench_model.module, compile_backend) if compile else None
            for batch in batch_sizes:
                if progress:
                    progress(len(rows), total, f"{bench_model.label} batch {batch}")
                row, layers = _point(bench_model, runner, batch, timer, policy, peak,
                                     per_layer)
                rows.append(row)
                if layers is not None:
                    layer_tables.append(layers)
        if progress:
            progress(total, total, "done")
    return BenchReport(meta, _with_ratios(rows), layer_tables)


# -- options -----------------------------------------------------------------------

def _policy(warmup: int, iters: int | None, min_time: float | None) -> Policy:
    if iters is not None and min_time is not None:
        raise ArchstatError("give `iters` or `min_time`, not both")
    if warmup < 0:
        raise ArchstatError(f"`warmup` must be 0 or more, not {warmup}")
    if iters is not None and iters <= 0:
        raise ArchstatError(f"`iters` must be a positive integer, not {iters}")
    if min_time is not None and not min_time > 0:
        raise ArchstatError(f"`min_time` must be a positive number of seconds, not {min_time}")
    return Policy(warmup=warmup, iters=iters,
                  min_time_s=min_time if min_time is not None else Policy.min_time_s)


def resolve_device(device: str) -> str:
    """``cuda`` or ``cpu``; ``auto`` is cuda when torch sees a GPU. Asking for cuda
    without one is a user error."""
    if device not in DEVICES:
        raise ArchstatError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    if device == "cuda" and not available:
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else "torch sees no CUDA device")
        raise ArchstatError(f"`device` cuda: CUDA is not available ({why}, torch "
                            f"{torch.__version__}); use `device` cpu")
    return device


@contextmanager
def device_settings(device: str, threads: int | None) -> Iterator[int]:
    """CPU thread count (default: torch's current one) and, on CUDA, cudnn.benchmark
    (cuDNN picks the fastest kernel for each input shape during warm-up); both restored
    on exit. Yields the thread count in use."""
    if threads is not None and threads <= 0:
        raise ArchstatError(f"`threads` must be a positive integer, not {threads}")
    old_threads, old_benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if device == "cuda":
            torch.backends.cudnn.benchmark = True
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.cudnn.benchmark = old_benchmark


# -- one model, one point ------------------------------------------------------------

class _Model:
    """A model built for measurement: real weights on the device, in the dtype, eval."""

    def __init__(self, model: str | nn.Module, device: str, dtype: str, channels_last: bool,
                 input_shape: Any) -> None:
        torch.manual_seed(0)  # the same random weights on every run
        resolved = resolve_model(model, device=device)
        self.label = resolved.label
        self.module = resolved.module.to(device=device, dtype=getattr(torch, dtype)).eval()
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.device, self.dtype, self.channels_last = device, dtype, channels_last
        self.input_shape = input_shape if input_shape is not None else resolved.input_shape

    def analysis(self, batch: int) -> Any:
        return analyze(self.module, input_shape=self.input_shape, batch=batch,
                       convention="macs", dtype=self.dtype)

    def inputs(self, shapes: Sequence[tuple[int, ...]], batch: int) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(0)
        tensors = []
        for shape in shapes:
            x = torch.randn((batch, *shape), generator=generator)
            x = x.to(device=self.device, dtype=getattr(torch, self.dtype))
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            tensors.append(x)
        return tuple(tensors)


def _compiled(module: nn.Module, backend: str) -> Callable[..., Any]:
    # dynamic=False: one static graph per batch size, as a deployment would compile.
    return torch.compile(module, backend=backend, dynamic=False)


def _point(model: _Model, runner: Callable[..., Any] | None, batch: int, timer: Timer,
           policy: Policy, peak: Peak | None,
           want_layers: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One results row (and per-layer entry); an out-of-memory or a kernel error is
    reported in the row's note and the sweep goes on."""
    analysis = model.analysis(batch)
    flops = 2 * analysis.totals["flops"]
    row: dict[str, Any] = {"model": model.label, "device": model.device, "dtype": model.dtype,
                           "batch_size": batch, "flops": flops}
    if peak is not None:
        row["roofline_ms"] = stats.roofline_ms(flops, stats.eager_traffic(analysis.trace),
                                               peak.tflops, peak.bandwidth_gbs)
    try:
        compile_s, measured, timing = _measure(model, runner, analysis, batch, timer, policy,
                                               want_layers)
    except Exception as exc:
        note = _row_error(exc)
        if note is None:
            raise
        measured = None
    if measured is None:  # the exception and the tensors its frames held are gone now
        _release(model.device)
        return _rounded({**row, "note": note}), None
    row.update(point_stats(measured, batch, flops, peak), compile_s=compile_s)
    layers = None
    if timing is not None:
        layers = _layers_entry(model.label, batch, analysis, timing, measured, peak, timer)
    return _rounded(row), layers


def _measure(model: _Model, runner: Callable[..., Any] | None, analysis: Any, batch: int,
             timer: Timer, policy: Policy, want_layers: bool,
             ) -> tuple[float | None, Measured, per_layer.LayerTiming | None]:
    inputs = model.inputs(analysis.input_shape, batch)
    call = runner if runner is not None else model.module
    compile_s = None
    with torch.inference_mode():
        def forward() -> Any:
            return call(*inputs)

        if runner is not None:  # the first call compiles; its time is reported apart
            compile_s = _wall_s(timer, forward)
        measured = run_point(forward, timer, policy)
        timing = (per_layer.time_layers(model.module, forward, timer, policy)
                  if want_layers else None)
    return compile_s, measured, timing


def _wall_s(timer: Timer, fn: Callable[[], Any]) -> float:
    """Seconds of wall-clock time for one call and its device work: compilation happens
    on the host, so it is timed on the host clock, not between device marks."""
    timer.sync()
    start = time.perf_counter_ns()
    fn()
    timer.sync()
    return (time.perf_counter_ns() - start) / 1e9


@dataclass
class Measured:
    samples_ms: list[float]
    warmup_iters: int
    settled: bool
    peak_memory_bytes: int | None


def run_point(forward: Callable[[], Any], timer: Timer, policy: Policy) -> Measured:
    """Warm up until settled, then time each measured call; the peak memory is over
    both, from a reset just before."""
    def run() -> float:
        return time_call(timer, forward)

    timer.reset_peak_memory()
    warm = warm_up(run, policy)
    samples = measure(run, policy)
    return Measured(samples, warm.iters, warm.settled, timer.peak_memory_bytes())


def point_stats(measured: Measured, batch: int, flops: int,
                peak: Peak | None) -> dict[str, Any]:
    """A results row's measured columns (see RESULT_COLUMNS), from timings."""
    latency = stats.latency_stats(measured.samples_ms)
    median = latency["median_ms"]
    achieved = stats.achieved_tflops(flops, median)
    note = None
    if measured.warmup_iters and not measured.settled:
        note = f"warm-up did not settle in {measured.warmup_iters} iterations"
    return {
        **latency,
        "samples_per_s": stats.samples_per_s(batch, median),
        "tflops_achieved": achieved,
        "peak_pct": stats.peak_pct(achieved, peak.tflops) if peak is not None else None,
        "peak_memory_bytes": measured.peak_memory_bytes,
        "iters": len(measured.samples_ms),
        "warmup_iters": measured.warmup_iters,
        "note": note,
    }


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    # Six significant digits: far below timing noise, and short, stable CSV cells.
    return {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in row.items()}


def _layers_entry(label: str, batch: int, analysis: Any, timing: per_layer.LayerTiming,
                  measured: Measured, peak: Peak | None, timer: Timer) -> dict[str, Any]:
    plain = stats.percentile(measured.samples_ms, 50)
    hooked = stats.percentile(timing.hooked_ms, 50)
    marks = "CUDA events" if timer.device == "cuda" else "time.perf_counter_ns"
    rows = [_rounded(r) for r in per_layer.layer_rows(analysis, timing, peak)]
    return _rounded({
        "model": label, "batch_size": batch,
        "method": f"forward pre/post hooks on every leaf module, {marks}; median per call",
        "plain_median_ms": plain, "hooked_median_ms": hooked,
        "overhead_pct": 100.0 * (hooked - plain) / plain,
    }) | {"layers": pd.DataFrame(rows, columns=per_layer.LAYER_COLUMNS)}


def _row_error(exc: BaseException) -> str | None:
    """The note for an error that ends one point but not the sweep, or None."""
    message = " ".join(str(exc).split())
    first = message[:160] + ("..." if len(message) > 160 else "")
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in message.lower() \
            or "can't allocate memory" in message.lower():
        return f"out of memory: {first}"
    if isinstance(exc, (RuntimeError, NotImplementedError)):
        return f"failed: {first}"
    return None


def _release(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()


def _with_ratios(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The results table, with latency_ratio and flops_ratio: each row's median latency
    and FLOPs over those of the first model at the same batch size (empty where either
    was not measured)."""
    first: dict[int, dict[str, Any]] = {}
    for row in rows:
        base = first.setdefault(row["batch_size"], row)
        if row.get("median_ms") is not None and base.get("median_ms") is not None:
            row["latency_ratio"] = float(f"{row['median_ms'] / base['median_ms']:.6g}")
        row["flops_ratio"] = (float(f"{row['flops'] / base['flops']:.6g}")
                              if base["flops"] else None)
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS).astype(object)
    return frame.where(frame.notna(), None)


# -- metadata ------------------------------------------------------------------------

def metadata(device: str, dtype: str, threads: int, channels_last: bool, compile: bool,
             policy: Policy) -> dict[str, Any]:
    """Where and how the run was measured, so that a report stands on its own."""
    cuda = device == "cuda"
    tf32 = bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
    not_measured: dict[str, str] = {}
    driver = _driver_version() if cuda else None
    if not cuda:
        not_measured["peak_memory_bytes"] = "peak memory is measured on CUDA only"
    elif driver is None:
        not_measured["driver_version"] = "nvidia-smi not found"
    return {
        "archstat_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else _cpu_name(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if cuda else None,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "driver_version": driver,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "dtype": dtype,
        "threads": threads,
        "channels_last": channels_last,
        "compile": compile,
        "tf32_allowed": tf32 if cuda else None,
        "timer": "CUDA events, synchronised" if cuda else "time.perf_counter_ns",
        "warmup": f"at least {policy.warmup} calls, then until the medians of two windows "
                  f"of {policy.window} agree within {policy.settle_rtol:.0%}"
                  if policy.warmup else "none",
        "iterations": f"{policy.iters} calls" if policy.iters is not None
                      else f"at least {policy.min_time_s} s and {policy.min_iters} calls",
        "flops": "2 x macs (conv, linear and matmul multiply-adds)",
        "convention": "flops",
        "not_measured": not_measured,
    }


def _roofline_meta(peak: Peak | None, device_name: str,
                   not_measured: dict[str, str]) -> dict[str, Any] | None:
    if peak is None:
        why = f"no roofline entry for {device_name!r} in this dtype"
        not_measured["peak_pct"] = not_measured["roofline_ms"] = why
        return None
    return {"peak_tflops": peak.tflops, "precision": peak.precision,
            "bandwidth_gbs": peak.bandwidth_gbs, "source": peak.source,
            "bytes": "eager layer-by-layer traffic: each layer's input + weight + output bytes"}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _driver_version() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None
