"""``archstat calibrate``: measure the machine it runs on as a device profile.

What each figure of the profile (:mod:`archstat.predictor.profile`) is measured with:

``overhead_s``
    Seconds per call of ``torch.add`` on one-element tensors, over a loop of calls: what
    an op costs when it has no work, the dispatch and (on CUDA) the launch. Measured
    first, as the vector rate needs it.
``module_overhead_s``
    Seconds per call of an ``nn.Identity`` module on a one-element tensor: what calling
    a leaf module costs beyond its kernels.
``matrix_overhead_s``
    Seconds per call of a convolution too small to do work (4 channels, 4x4, 3x3
    kernel): a library call's fixed cost (oneDNN's on a CPU, cuDNN's on a GPU).
``matrix_flops_per_s``
    Per dtype, the best rate of square ``torch.mm`` calls, 2 n^3 FLOPs each; n doubles
    (from 256) until one call takes ``min_call_s`` or n reaches the size limit, and the
    best size's rate counts (on a shared CPU the largest sizes lose their cache to
    other processes first). On CUDA the
    float32 call is also timed with ``torch.backends.cuda.matmul.allow_tf32`` on (the
    ``tf32`` rate), on devices with TF32 (compute capability 8.0 and later).
``vector_flops_per_s``
    Per dtype, elements per second of ``torch.add(a, b, out=c)`` on tensors small enough
    to stay in cache (the elementwise work, one operation per element, without the
    memory's limit): n / (t(n) - overhead), n doubling until t(n) is 5 times the
    overhead or the tensors would leave the cache.
``pool_flops_per_s``
    Per dtype, window elements per second of ``max_pool2d`` (3x3, stride 2, padding 1)
    over an in-cache 64x56x56 map, its overhead subtracted.
``depthwise_flops_per_s``
    Per dtype, FLOPs per second of a 3x3 depthwise convolution over an in-cache
    64x56x56 map (2 per multiply-add), the convolution's overhead subtracted.
``spatial_conv_flops_per_s``
    Per dtype, the rate of four 3x3 convolutions (padding 1, batch 1) at the shapes of a
    ResNet's four stages, SPATIAL_SHAPES: 64 channels over 56x56, 128 over 28x28, 256
    over 14x14, 512 over 7x7 (channels in and out), which do the same FLOPs each: their
    FLOPs over their times, the convolution overhead subtracted from each. On this
    project's CPU the first three ran at 210-240 GFLOP/s and the 7x7 map at 130-140,
    186-207 together.
``fresh_bytes_above``, ``fresh_bytes_per_s``
    CPU only: ``torch.empty(n).fill_`` (a new allocation written once) against
    ``fill_`` of a buffer already written, n growing from 1 MiB by 2^(1/4) up to the
    copy's size; at the first n whose new allocation takes more than twice as long,
    ``fresh_bytes_above`` is the size tried before it, and n over the difference of the
    two times the rate at which the system faults new pages in (both left out when no
    size differs). glibc's threshold is 32 MiB (``M_MMAP_THRESHOLD``'s dynamic maximum);
    whether an allocation of exactly that size is mapped depends on what was freed
    before, so the figure reads 26.9 or 32 MiB.
``memory_bytes_per_s``
    ``dst.copy_(src)`` between two large buffers: 2 x their size (read and written) over
    the time of one copy.
``cache_bytes``, ``cache_bytes_per_s``
    Not written. The last cache level's size (the CPU's from
    ``/sys/devices/system/cpu``, the GPU's L2 from torch) and the bandwidth of ``copy_``
    between two buffers of an eighth of it each, over a loop of copies, go to the
    details (``cache_bytes``, ``cache_copy``) for whoever wants to add the two figures
    by hand: on this project's CPU the normalisations and activations between the
    layers of a real forward pass moved 30-35 GB/s, the memory's rate, however small
    their maps, where a copy looping over the same buffers reached 100-130 GB/s; the
    figures made predictions worse (``benchmarks/README.md``).

Every time is the best of ``repeats`` timed calls after one untimed call, each timed
with the :mod:`archstat.bench.timing` timers (``perf_counter_ns`` on the CPU, CUDA events
after a synchronise on the GPU), at torch's thread count (or ``threads``). The best, not
the median: a profile holds what the device can do, and whatever else runs on the
machine only ever adds time (``timeit`` takes the minimum for the same reason).

The logic is written against two small interfaces, a timer and :class:`Workloads` (the
calls to time), so that tests run the CUDA path on a CPU with a synthetic device whose
rates are known; :class:`TorchWorkloads` is the real one.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from archstat.bench.timing import Timer, time_call
from archstat.errors import ArchstatError
from archstat.predictor.profile import DTYPES, DeviceProfile

Call = Callable[[], Any]


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does: the GEMM side's start and limit, the
    shortest GEMM call timed (seconds), the vector test's start and limit (elements per
    tensor), the copy's buffer size (bytes), timed calls per figure, and the loop
    lengths of the overhead and vector tests."""

    gemm_start: int
    gemm_max: int
    min_call_s: float
    vector_start: int
    vector_max: int
    copy_bytes: int
    repeats: int = 5
    tiny_loops: int = 200
    vector_loops: int = 20


#: The CPU's: GEMMs up to 2048 (17 GFLOP in float32), vectors within a 2 MiB L2, copies
#: of 256 MiB (far beyond any cache).
CPU_SIZES = Sizes(gemm_start=256, gemm_max=2048, min_call_s=0.05, vector_start=2**14,
                  vector_max=2**17, copy_bytes=2**28)
#: The GPU's: GEMMs up to 16384, vectors within a 40 MiB L2, copies of 1 GiB.
CUDA_SIZES = Sizes(gemm_start=256, gemm_max=16384, min_call_s=0.005, vector_start=2**16,
                   vector_max=2**21, copy_bytes=2**30, repeats=10)
#: A quick look (seconds, not tens of seconds): smaller copies, shorter GEMMs.
QUICK = {"cpu": Sizes(gemm_start=256, gemm_max=1024, min_call_s=0.01, vector_start=2**14,
                      vector_max=2**16, copy_bytes=2**26, repeats=3, tiny_loops=100),
         "cuda": Sizes(gemm_start=256, gemm_max=4096, min_call_s=0.001, vector_start=2**16,
                       vector_max=2**20, copy_bytes=2**28, repeats=5)}


#: The map the pooling and depthwise rates are measured on (800 KB in float32: in cache).
POOL_SHAPE = (1, 64, 56, 56)
#: Window elements of ``max_pool2d(3, 2, 1)`` over POOL_SHAPE: 9 per output element.
POOL_OPS = 9 * 64 * 28 * 28
#: FLOPs of the 3x3 depthwise convolution over POOL_SHAPE: 2 per multiply-add.
DEPTHWISE_FLOPS = 2 * 9 * 64 * 56 * 56
#: (channels, map side) of the 3x3 convolutions the spatial rate is measured on.
SPATIAL_SHAPES = ((64, 56), (128, 28), (256, 14), (512, 7))
#: The first-touch test's first allocation, and its steps per doubling.
FRESH_START, FRESH_STEPS = 2**20, 4


def spatial_flops(channels: int, side: int) -> int:
    """FLOPs of a 3x3 convolution, padding 1, batch 1, ``channels`` in and out."""
    return 2 * 9 * channels * channels * side * side


class Workloads(Protocol):
    """The calls calibration times, ready to run (tensors allocated)."""

    def gemm(self, dtype: str, n: int) -> Call: ...
    def add(self, dtype: str, n: int) -> Call: ...
    def copy(self, nbytes: int) -> Call: ...
    def tiny(self) -> Call: ...
    def tiny_conv(self) -> Call: ...
    def module_call(self) -> Call: ...
    def cache_size(self) -> int | None:
        """Bytes of the last cache level, or None when unknown."""
    def pool(self, dtype: str) -> Call:
        """max_pool2d, 3x3, stride 2, padding 1, over a (1, 64, 56, 56) map."""
    def depthwise(self, dtype: str) -> Call:
        """A 3x3 depthwise convolution, padding 1, over a (1, 64, 56, 56) map."""
    def spatial_conv(self, dtype: str, channels: int, side: int) -> Call:
        """A 3x3 convolution, padding 1, ``channels`` in and out, over a side x side map."""
    def fill(self, nbytes: int, fresh: bool) -> Call:
        """Write ``nbytes``: into a new allocation per call (``fresh``) or into one
        buffer allocated (and written) once."""
    def tf32(self) -> Any:
        """A context manager turning TF32 matmuls on, or None when there is no TF32."""


class TorchWorkloads:
    """The real calls, on ``device`` (``cpu`` or ``cuda``)."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch, self.device = torch, device

    def _randn(self, *shape: int, dtype: str = "float32") -> Any:
        return self.torch.randn(*shape, device=self.device, dtype=getattr(self.torch, dtype))

    def gemm(self, dtype: str, n: int) -> Call:
        a, b = self._randn(n, n, dtype=dtype), self._randn(n, n, dtype=dtype)
        return lambda: self.torch.mm(a, b)

    def add(self, dtype: str, n: int) -> Call:
        a, b, c = (self._randn(n, dtype=dtype) for _ in range(3))
        return lambda: self.torch.add(a, b, out=c)

    def copy(self, nbytes: int) -> Call:
        src = self.torch.empty(nbytes, dtype=self.torch.uint8, device=self.device).fill_(1)
        dst = self.torch.empty_like(src)
        return lambda: dst.copy_(src)

    def tiny(self) -> Call:
        a, b = self._randn(1), self._randn(1)
        return lambda: self.torch.add(a, b)

    def cache_size(self) -> int | None:
        if self.device == "cuda":
            size = getattr(self.torch.cuda.get_device_properties(0), "L2_cache_size", 0)
            return int(size) or None
        return cpu_cache_size()

    def module_call(self) -> Call:
        module, x = self.torch.nn.Identity(), self._randn(1)
        return lambda: module(x)

    def tiny_conv(self) -> Call:
        x, w = self._randn(1, 4, 4, 4), self._randn(4, 4, 3, 3)
        return lambda: self.torch.nn.functional.conv2d(x, w)

    def pool(self, dtype: str) -> Call:
        x = self._randn(*POOL_SHAPE, dtype=dtype)
        return lambda: self.torch.nn.functional.max_pool2d(x, 3, 2, 1)

    def depthwise(self, dtype: str) -> Call:
        x = self._randn(*POOL_SHAPE, dtype=dtype)
        w = self._randn(POOL_SHAPE[1], 1, 3, 3, dtype=dtype)
        return lambda: self.torch.nn.functional.conv2d(x, w, padding=1, groups=POOL_SHAPE[1])

    def spatial_conv(self, dtype: str, channels: int, side: int) -> Call:
        x = self._randn(1, channels, side, side, dtype=dtype)
        w = self._randn(channels, channels, 3, 3, dtype=dtype)
        return lambda: self.torch.nn.functional.conv2d(x, w, padding=1)

    def fill(self, nbytes: int, fresh: bool) -> Call:
        torch, device = self.torch, self.device
        if fresh:
            return lambda: torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
        buffer = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
        return lambda: buffer.fill_(1)

    def tf32(self) -> Any:
        torch = self.torch
        if self.device != "cuda" or torch.cuda.get_device_capability() < (8, 0):
            return None

        @contextmanager
        def allowed() -> Iterator[None]:
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old

        return allowed()


def cpu_cache_size(root: str = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """The largest data or unified cache of CPU 0, in bytes (Linux sysfs), or None."""
    from pathlib import Path

    sizes = []
    for index in sorted(Path(root).glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        if kind != "Instruction" and size[:-1].isdigit() and size[-1] in units:
            sizes.append(int(size[:-1]) * units[size[-1]])
        elif kind != "Instruction" and size.isdigit():
            sizes.append(int(size))
    return max(sizes, default=None)


def seconds_per_call(timer: Timer, call: Call, loops: int = 1, repeats: int = 5) -> float:
    """The best over ``repeats`` of the time of ``loops`` calls in a row, per call, in
    seconds, after one untimed call (which allocates and picks kernels)."""
    call()

    def run() -> None:
        for _ in range(loops):
            call()

    samples = [time_call(timer, run) / 1e3 / loops for _ in range(repeats)]
    return min(samples)


def _gemm(timer: Timer, workloads: Workloads, dtype: str, sizes: Sizes) -> tuple[int, float]:
    """(n, seconds per call) of the GEMM size with the best rate, over the sizes tried."""
    n = sizes.gemm_start
    best: tuple[int, float] | None = None
    while True:
        call = workloads.gemm(dtype, n)
        seconds = seconds_per_call(timer, call, 1, sizes.repeats)
        if best is None or 2 * n**3 / seconds > 2 * best[0] ** 3 / best[1]:
            best = (n, seconds)
        if n * 2 > sizes.gemm_max or seconds >= sizes.min_call_s:
            return best
        n *= 2


def _rate(work: float, seconds: float, overhead_s: float) -> float:
    """work / (seconds - overhead); over the whole time when the overhead is as long."""
    net = seconds - overhead_s
    return work / (net if net > 0 else seconds)


def _vector(timer: Timer, workloads: Workloads, dtype: str, sizes: Sizes,
            overhead_s: float) -> tuple[int, float]:
    """(elements, seconds per call) of the largest in-cache add tried."""
    n = sizes.vector_start
    while True:
        seconds = seconds_per_call(timer, workloads.add(dtype, n), sizes.vector_loops,
                                   sizes.repeats)
        if n * 2 > sizes.vector_max or seconds >= 5 * overhead_s:
            return n, seconds
        n *= 2


def _fresh(timer: Timer, workloads: Workloads, sizes: Sizes, raw: dict[str, Any]
           ) -> dict[str, Any]:
    """fresh_bytes_above and fresh_bytes_per_s (see the module docstring), or {}."""
    step = 0
    raw["fresh"] = []
    while (n := round(FRESH_START * 2 ** (step / FRESH_STEPS))) <= sizes.copy_bytes:
        reused = seconds_per_call(timer, workloads.fill(n, False), 1, sizes.repeats)
        new = seconds_per_call(timer, workloads.fill(n, True), 1, sizes.repeats)
        raw["fresh"].append({"bytes": n, "reused_s": reused, "fresh_s": new})
        if new > 2 * reused:
            below = raw["fresh"][-2]["bytes"] if step else 0
            return {"fresh_bytes_above": below, "fresh_bytes_per_s": n / (new - reused)}
        step += 1
    return {}


def measure(target: str, timer: Timer, workloads: Workloads, dtypes: Sequence[str],
            sizes: Sizes, name: str, about: dict[str, Any] | None = None) -> DeviceProfile:
    """Measure a profile (see the module docstring) of the device ``target`` (``cpu`` or
    ``cuda``) through ``timer`` and ``workloads``; ``about`` (torch version, threads,
    ...) goes into the profile's details with the raw measurements."""
    overhead = seconds_per_call(timer, workloads.tiny(), sizes.tiny_loops, sizes.repeats)
    conv_overhead = seconds_per_call(timer, workloads.tiny_conv(), sizes.tiny_loops // 4,
                                     sizes.repeats)
    module_call = seconds_per_call(timer, workloads.module_call(), sizes.tiny_loops,
                                   sizes.repeats)
    matrix: dict[str, float] = {}
    vector: dict[str, float] = {}
    pool: dict[str, float] = {}
    depthwise: dict[str, float] = {}
    spatial: dict[str, float] = {}
    raw: dict[str, Any] = {"tiny_op_s": overhead, "tiny_conv_s": conv_overhead,
                           "module_call_s": module_call, "gemm": {},
                           "vector": {}, "pool": {}, "depthwise": {}, "spatial_conv": {}}
    for dtype in dtypes:
        n, seconds = _gemm(timer, workloads, dtype, sizes)
        matrix[dtype] = 2 * n**3 / seconds
        raw["gemm"][dtype] = {"n": n, "s": seconds}
        if dtype == "float32":
            tf32 = workloads.tf32()
            if tf32 is not None:
                with tf32:
                    n, seconds = _gemm(timer, workloads, dtype, sizes)
                matrix["tf32"] = 2 * n**3 / seconds
                raw["gemm"]["tf32"] = {"n": n, "s": seconds}
        elements, seconds = _vector(timer, workloads, dtype, sizes, overhead)
        vector[dtype] = _rate(elements, seconds, overhead)
        raw["vector"][dtype] = {"elements": elements, "s": seconds}
        seconds = seconds_per_call(timer, workloads.pool(dtype), sizes.vector_loops,
                                   sizes.repeats)
        pool[dtype] = _rate(POOL_OPS, seconds, overhead)
        raw["pool"][dtype] = {"ops": POOL_OPS, "s": seconds}
        seconds = seconds_per_call(timer, workloads.depthwise(dtype), sizes.vector_loops,
                                   sizes.repeats)
        depthwise[dtype] = _rate(DEPTHWISE_FLOPS, seconds, conv_overhead)
        raw["depthwise"][dtype] = {"flops": DEPTHWISE_FLOPS, "s": seconds}
        times = [seconds_per_call(timer, workloads.spatial_conv(dtype, c, side),
                                  sizes.vector_loops // 4, sizes.repeats)
                 for c, side in SPATIAL_SHAPES]
        work = [spatial_flops(c, side) for c, side in SPATIAL_SHAPES]
        spatial[dtype] = _rate(sum(work), sum(times), len(times) * conv_overhead)
        raw["spatial_conv"][dtype] = {"shapes": [list(s) for s in SPATIAL_SHAPES],
                                      "flops": work, "s": times}
    fresh: dict[str, Any] = {}
    if target == "cpu":
        fresh = _fresh(timer, workloads, sizes, raw)
    copy_s = seconds_per_call(timer, workloads.copy(sizes.copy_bytes), 1, sizes.repeats)
    raw["copy"] = {"bytes": sizes.copy_bytes, "s": copy_s}
    cache_size = workloads.cache_size()
    if cache_size:
        nbytes = cache_size // 8
        seconds = seconds_per_call(timer, workloads.copy(nbytes), sizes.vector_loops,
                                   sizes.repeats)
        raw["cache_bytes"] = cache_size
        raw["cache_copy"] = {"bytes": nbytes, "s": seconds,
                             "bytes_per_s": _rate(2 * nbytes, seconds, overhead)}
    order = ("float32", "tf32", "float16", "bfloat16")
    source = (f"measured by archstat calibrate on {target}: torch.mm, in-cache torch.add, "
              f"max_pool2d, 3x3 and depthwise conv2d, a {sizes.copy_bytes // 2**20} MiB copy_, "
              f"one-element adds, a 4x4 conv2d and an nn.Identity call")
    return DeviceProfile(
        name=name, source=source,
        matrix_flops_per_s=MappingProxyType({d: matrix[d] for d in order if d in matrix}),
        vector_flops_per_s=MappingProxyType({d: vector[d] for d in order if d in vector}),
        memory_bytes_per_s=2 * sizes.copy_bytes / copy_s, overhead_s=overhead,
        details=MappingProxyType({"device": target, **(about or {}), **raw}),
        matrix_overhead_s=max(conv_overhead, overhead), module_overhead_s=module_call,
        **fresh,
        spatial_conv_flops_per_s=MappingProxyType({d: spatial[d] for d in order
                                                   if d in spatial}),
        pool_flops_per_s=MappingProxyType({d: pool[d] for d in order if d in pool}),
        depthwise_flops_per_s=MappingProxyType({d: depthwise[d] for d in order
                                                if d in depthwise}))


def calibrate(
    device: str = "auto",
    *,
    dtypes: Sequence[str] | None = None,
    threads: int | None = None,
    quick: bool = False,
    name: str | None = None,
) -> DeviceProfile:
    """Measure this machine's CPU or CUDA GPU as a :class:`DeviceProfile` (see the
    module docstring). ``device``: ``auto`` (cuda when available), ``cpu`` or ``cuda``;
    ``dtypes``: the dtypes to measure (default float32, float16, bfloat16); ``threads``:
    CPU threads (default: torch's setting); ``quick``: smaller sizes, a rougher profile in
    seconds; ``name``: what reports call the device (default: its name)."""
    from archstat.bench.harness import device_settings, metadata, resolve_device
    from archstat.bench.timing import CpuTimer, CudaTimer, Policy

    target = resolve_device(device)
    chosen = list(dict.fromkeys(dtypes or DTYPES))
    for dtype in chosen:
        if dtype not in DTYPES:
            raise ArchstatError(f"`dtypes`: unknown dtype {dtype!r}; choose among "
                                f"{', '.join(DTYPES)}")
    timer = CudaTimer() if target == "cuda" else CpuTimer()
    sizes = QUICK[target] if quick else (CUDA_SIZES if target == "cuda" else CPU_SIZES)
    with device_settings(target, threads) as used_threads:
        meta = metadata(target, "float32", used_threads, False, False, Policy())
        about = {key: meta[key] for key in ("device_name", "torch_version", "cuda_version",
                                            "threads", "platform")}
        about["date"] = datetime.date.today().isoformat()
        about["quick"] = quick
        profile = measure(target, timer, TorchWorkloads(target), chosen, sizes,
                          name or meta["device_name"], about)
    return profile
