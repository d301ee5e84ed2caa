"""Device profiles: the five numbers the latency predictor knows about a device.

A profile is a small JSON file that anyone can write for their own hardware (``archstat
calibrate -o PROFILE.json`` measures one)::

    {
      "name": "H100 SXM5",
      "source": "NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022), Table 1",
      "matrix_flops_per_s": {"float32": 6.69e13, "tf32": 4.947e14,
                             "float16": 9.894e14, "bfloat16": 9.894e14},
      "vector_flops_per_s": {"float32": 6.69e13, "float16": 1.338e14, "bfloat16": 1.338e14},
      "memory_bytes_per_s": 3.35e12,
      "overhead_s": 5e-06
    }

``name``
    What reports call the device.
``source``
    Where the numbers come from (a datasheet, a calibration run).
``matrix_flops_per_s``
    dtype -> FLOP/s of the matrix units (tensor cores; a CPU's GEMM rate) that run
    convolutions, linear layers, matmuls and attention; ``float32``, ``float16``,
    ``bfloat16`` (at least one), and ``tf32``, optional: the rate float32
    convolutions reach (PyTorch lets cuDNN use TF32 by default).
``vector_flops_per_s``
    dtype -> operations/s of the vector units (CUDA cores, a CPU's SIMD lanes) that run
    everything else: elementwise work, activations, normalisation, pooling, depthwise
    convolutions. Every dtype of ``matrix_flops_per_s`` but ``tf32`` needs one.
``memory_bytes_per_s``
    Memory bandwidth, bytes/s.
``overhead_s``
    Seconds each kernel costs beyond its work (launch, dispatch).
``matrix_overhead_s``
    Optional: seconds each convolution or matmul kernel costs beyond its work, where a
    library call costs more than an elementwise kernel (a CPU's oneDNN and MKL calls);
    default ``overhead_s``.
``module_overhead_s``
    Optional: seconds each call of a leaf module costs beyond its kernels (Python's
    ``nn.Module.__call__``), which an eager forward pass pays even for a module that
    launches nothing (``Dropout`` in eval); default 0. On a GPU it overlaps the kernels
    queued before it, on a CPU it adds up.
``cache_bytes``, ``cache_bytes_per_s``
    Optional, together: the size of the last cache level and its bandwidth. An op whose
    traffic (bytes read and written) fits in it moves at ``cache_bytes_per_s``: at small
    batches a layer's input was written by the layer before and is still in cache.
    ``calibrate`` records them in ``details`` but leaves them out: on this project's CPU
    the layers of a real forward pass did not reach a looping copy's in-cache rate.
``fresh_bytes_above``, ``fresh_bytes_per_s``
    Optional, together: where a new output of more than ``fresh_bytes_above`` bytes lands in
    pages the operating system maps on first touch (glibc serves large allocations with
    ``mmap`` and returns them on free, so every call faults them in again), and the rate
    at which it does: such an op costs its new outputs' bytes / ``fresh_bytes_per_s`` on
    top of its overhead. A CPU figure; a GPU's caching allocator reuses its memory. On
    this project's CPU (a KVM guest) outputs of more than 32 MiB were written at 3 GB/s
    against 50 for reused memory: VGG's first layers at batch 8.
``conv_flops_per_s``
    Optional, dtype -> FLOP/s of (not depthwise) convolutions, where they run at another
    rate than matmuls; it takes the place of ``tf32`` for float32 convolutions. Default:
    the matrix rate (``tf32`` for float32 where given). ``calibrate`` leaves it out: on
    this project's CPU a large 3x3 convolution ran at twice the GEMM rate, but most of
    the zoo's convolutions (1x1, narrow) far below it, and predictions got worse; it
    measures ``spatial_conv_flops_per_s`` instead.
``spatial_conv_flops_per_s``
    Optional, dtype -> FLOP/s of (not depthwise) convolutions whose kernel covers more
    than one position (3x3, 7x7, ...); it takes the place of ``conv_flops_per_s`` (and of
    ``tf32``) for them, while 1x1 convolutions keep the rate they had. On this project's
    CPU oneDNN's direct 3x3 kernels (AVX-512) reached 200-240 GFLOP/s on one core where
    1x1 convolutions and ``torch.mm`` (MKL) reached 90-110. ``calibrate`` measures it on
    a 3x3, 128-channel convolution over a 28x28 map.
``pool_flops_per_s``, ``depthwise_flops_per_s``
    Optional, dtype -> operations/s of max pooling and 3-d average pooling (the window
    sum inside ``LocalResponseNorm``; one operation per window element) and of
    depthwise convolutions (2 FLOPs per multiply-add); default the vector rate. On a
    CPU these kernels run far below the vector units' rate (PyTorch's NCHW pooling is
    scalar code), on a GPU they are memory-bound anyway.
``details``
    Optional, any JSON object: how the numbers were obtained (``calibrate`` writes its
    sizes and raw timings there). The predictor never reads it.

FLOPs are counted as the ``full`` convention counts them (:mod:`archstat.conventions`):
one multiply-add is 2, one elementwise operation 1. A profile is validated when it is
read; a mistake is one message naming the file and the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from archstat.bench.devices import DEVICES, DeviceSpec, device_named
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean

#: The dtypes a profile gives rates for (``tf32``: matrix units only).
DTYPES = ("float32", "float16", "bfloat16")
MATRIX_DTYPES = ("float32", "tf32", "float16", "bfloat16")
REQUIRED_KEYS = ("name", "source", "matrix_flops_per_s", "vector_flops_per_s",
                 "memory_bytes_per_s", "overhead_s")
OPTIONAL_KEYS = ("matrix_overhead_s", "module_overhead_s", "cache_bytes", "cache_bytes_per_s",
                 "fresh_bytes_above", "fresh_bytes_per_s",
                 "conv_flops_per_s", "spatial_conv_flops_per_s", "pool_flops_per_s",
                 "depthwise_flops_per_s")
#: The optional dtype -> rate keys.
RATE_KEYS = ("conv_flops_per_s", "spatial_conv_flops_per_s", "pool_flops_per_s",
             "depthwise_flops_per_s")
KEYS = (*REQUIRED_KEYS, *OPTIONAL_KEYS, "details")


@dataclass(frozen=True)
class DeviceProfile(Display):
    """A device as the predictor sees it (units: see the module docstring): FLOP/s of
    the matrix and vector units per dtype, memory bytes/s, seconds of overhead per
    kernel, and where the numbers come from."""

    name: str
    source: str
    matrix_flops_per_s: Mapping[str, float]
    vector_flops_per_s: Mapping[str, float]
    memory_bytes_per_s: float
    overhead_s: float
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    matrix_overhead_s: float | None = None
    module_overhead_s: float | None = None
    cache_bytes: int | None = None
    cache_bytes_per_s: float | None = None
    fresh_bytes_above: int | None = None
    fresh_bytes_per_s: float | None = None
    conv_flops_per_s: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    spatial_conv_flops_per_s: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({}))
    pool_flops_per_s: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    depthwise_flops_per_s: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({}))

    def kernel_overhead_s(self, matrix: bool) -> float:
        """Seconds per kernel: a convolution's or matmul's (``matrix``) or any other's."""
        if matrix and self.matrix_overhead_s is not None:
            return self.matrix_overhead_s
        return self.overhead_s

    def bandwidth(self, nbytes: int) -> float:
        """Bytes/s for an op that moves ``nbytes``: the cache's when they fit in it."""
        if self.cache_bytes is not None and self.cache_bytes_per_s is not None \
                and nbytes <= self.cache_bytes:
            return self.cache_bytes_per_s
        return self.memory_bytes_per_s

    def fresh_s(self, nbytes: int) -> float:
        """Seconds to fault in a new output of ``nbytes`` (0 up to ``fresh_bytes_above``)."""
        if self.fresh_bytes_above is None or self.fresh_bytes_per_s is None \
                or nbytes <= self.fresh_bytes_above:
            return 0.0
        return nbytes / self.fresh_bytes_per_s

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The dtypes this profile can predict for."""
        return tuple(d for d in DTYPES if d in self.matrix_flops_per_s)

    def check_dtype(self, dtype: str) -> None:
        """Raise ArchstatError when the profile has no rate for ``dtype``."""
        if dtype not in self.dtypes:
            raise ArchstatError(f"{self.name} has no {dtype} rates (it has "
                                f"{', '.join(self.dtypes)}); choose another `dtype`")

    def data(self) -> dict[str, Any]:
        """The profile as its JSON file holds it (``details`` only when not empty)."""
        out: dict[str, Any] = {
            "name": self.name, "source": self.source,
            "matrix_flops_per_s": dict(self.matrix_flops_per_s),
            "vector_flops_per_s": dict(self.vector_flops_per_s),
            "memory_bytes_per_s": self.memory_bytes_per_s, "overhead_s": self.overhead_s,
        }
        for key in ("matrix_overhead_s", "module_overhead_s", "cache_bytes",
                    "cache_bytes_per_s", "fresh_bytes_above", "fresh_bytes_per_s"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in RATE_KEYS:
            if getattr(self, key):
                out[key] = dict(getattr(self, key))
        if self.details:
            out["details"] = dict(self.details)
        return out


def _rate(value: float, scale: int) -> float:
    # decimal arithmetic: 66.9 TFLOP/s is 66900000000000.0, not ...0.01
    return float(Decimal(str(value)) * scale)


def profile_from_spec(spec: DeviceSpec) -> DeviceProfile:
    """The profile of a device table entry (:mod:`archstat.bench.devices`), with every
    figure's source."""
    sources = [f"compute: {spec.compute_source}"]
    if spec.bandwidth_source != spec.compute_source:
        sources.append(f"bandwidth: {spec.bandwidth_source}")
    sources += [f"vector: {spec.vector_source}", f"overhead: {spec.overhead_source}"]
    return DeviceProfile(
        name=spec.name,
        source="; ".join(sources),
        matrix_flops_per_s=MappingProxyType(
            {d: _rate(spec.peak_tflops[d], 10**12) for d in MATRIX_DTYPES
             if d in spec.peak_tflops}),
        vector_flops_per_s=MappingProxyType(
            {d: _rate(spec.vector_tflops[d], 10**12) for d in DTYPES
             if d in spec.vector_tflops}),
        memory_bytes_per_s=_rate(spec.bandwidth_gbs, 10**9),
        overhead_s=float(Decimal(str(spec.overhead_us)) / 10**6),
    )


def known_devices() -> list[str]:
    """The names of the table's devices, and their aliases."""
    return [name for spec in DEVICES for name in (spec.name, *spec.aliases)]


def device_profile(device: str | Path | DeviceProfile) -> DeviceProfile:
    """The profile ``device`` names: a profile (passed through), a device of the table
    (``H100``, ``A100 PCIe 80GB``, ...: see :func:`known_devices`), or a profile JSON
    file."""
    if isinstance(device, DeviceProfile):
        return device
    if not isinstance(device, (str, Path)):
        raise ArchstatError(f"`device`: expected a device name or a profile file, got "
                            f"{type(device).__name__}")
    text = str(device)
    spec = device_named(text) if isinstance(device, str) else None
    if spec is not None:
        return profile_from_spec(spec)
    path = Path(device)
    if path.suffix.lower() == ".json" or path.is_file():
        return load_profile(path)
    raise ArchstatError(f"`device`: unknown device {text!r}"
                        f"{did_you_mean(text, known_devices())}; name one of "
                        f"{', '.join(spec.name for spec in DEVICES)} or a profile JSON file "
                        f"(archstat calibrate -o PROFILE.json writes one)")


def load_profile(path: str | Path) -> DeviceProfile:
    """Read and validate a profile JSON file (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArchstatError(f"profile {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchstatError(f"cannot read profile {str(path)!r}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchstatError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") \
            from None
    return profile_from_data(data, str(path))


def profile_from_data(data: Any, where: str = "profile") -> DeviceProfile:
    """A profile from its JSON object; every problem is one ArchstatError that starts
    with ``where`` and names the key."""
    def fail(key: str, problem: str) -> ArchstatError:
        return ArchstatError(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")

    if not isinstance(data, dict):
        raise fail("", f"expected a JSON object, got {_json_type(data)}")
    for key in data:
        if key not in KEYS:
            raise fail(key, f"unknown key{did_you_mean(key, KEYS)}; a profile has "
                            f"{', '.join(KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise fail("", f"missing {', '.join(missing)} (see `archstat calibrate`, or the "
                       f"documented example)")
    for key in ("name", "source"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise fail(key, f"expected a non-empty string, got {_json_type(data[key])}")
    matrix = _rates(data["matrix_flops_per_s"], "matrix_flops_per_s", MATRIX_DTYPES,
                    "FLOP/s", fail)
    vector = _rates(data["vector_flops_per_s"], "vector_flops_per_s", DTYPES, "op/s", fail)
    if not any(d in matrix for d in DTYPES):
        raise fail("matrix_flops_per_s", f"needs a rate for at least one of {', '.join(DTYPES)}")
    lacking = [d for d in DTYPES if d in matrix and d not in vector]
    if lacking:
        raise fail("vector_flops_per_s", f"needs {', '.join(lacking)} too (as "
                                         f"matrix_flops_per_s has)")
    optional: dict[str, Any] = {}
    for key in ("matrix_overhead_s", "module_overhead_s"):
        if key in data:
            optional[key] = _positive(data[key], key, "seconds", fail, zero=True)
    for size_key, rate_key in (("cache_bytes", "cache_bytes_per_s"),
                               ("fresh_bytes_above", "fresh_bytes_per_s")):
        if (size_key in data) != (rate_key in data):
            raise fail(size_key if rate_key in data else rate_key,
                       f"needed too: {size_key} and {rate_key} go together")
        if size_key in data:
            size = data[size_key]
            least = 0 if size_key == "fresh_bytes_above" else 1
            if isinstance(size, bool) or not isinstance(size, int) or size < least:
                what = "non-negative" if least == 0 else "positive"
                raise fail(size_key, f"expected a {what} whole number of bytes, got "
                                     f"{_json_type(size)}")
            optional[size_key] = size
            optional[rate_key] = _positive(data[rate_key], rate_key, "bytes/s", fail)
    for key in RATE_KEYS:
        if key in data:
            optional[key] = MappingProxyType(_rates(data[key], key, DTYPES, "op/s", fail))
    details = data.get("details", {})
    if not isinstance(details, dict):
        raise fail("details", f"expected a JSON object, got {_json_type(details)}")
    return DeviceProfile(
        name=data["name"].strip(), source=data["source"].strip(),
        matrix_flops_per_s=MappingProxyType(matrix), vector_flops_per_s=MappingProxyType(vector),
        memory_bytes_per_s=_positive(data["memory_bytes_per_s"], "memory_bytes_per_s",
                                     "bytes/s", fail),
        overhead_s=_positive(data["overhead_s"], "overhead_s", "seconds", fail, zero=True),
        details=MappingProxyType(details), **optional)


def _rates(value: Any, key: str, allowed: tuple[str, ...], unit: str, fail: Any
           ) -> dict[str, float]:
    if not isinstance(value, dict):
        raise fail(key, f"expected an object dtype -> {unit}, e.g. {{\"float32\": 1.5e13}}, "
                        f"got {_json_type(value)}")
    rates = {}
    for dtype, rate in value.items():
        if dtype not in allowed:
            raise fail(f"{key}.{dtype}", f"unknown dtype{did_you_mean(dtype, allowed)}; "
                                         f"choose among {', '.join(allowed)}")
        rates[dtype] = _positive(rate, f"{key}.{dtype}", unit, fail)
    return {d: rates[d] for d in allowed if d in rates}  # a fixed order


def _positive(value: Any, key: str, unit: str, fail: Any, zero: bool = False) -> float:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > 0 or (zero and value == 0)))
    if not ok:
        what = "non-negative" if zero else "positive"
        raise fail(key, f"expected a {what} number of {unit}, got {_json_type(value)}")
    return float(value)


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return f"{names.get(type(value), type(value).__name__)} ({json.dumps(value)[:40]})"
