"""Peak dense throughput and memory bandwidth of known GPUs, for roofline context.

Units: ``peak_tflops`` in TFLOP/s (10^12 floating-point operations per second, one
multiply-add = 2 FLOPs, dense: the vendors' "with sparsity" figures are halved);
``bandwidth_gbs`` in GB/s (10^9 bytes per second). Every figure names its source. A
device that is not in the table (any CPU, a GPU variant we have no datasheet figure for)
gets ``None``: the report leaves its roofline columns empty rather than guess.

Which peak a float32 run is held against: PyTorch lets cuDNN convolutions use TF32
tensor cores by default (``torch.backends.cudnn.allow_tf32``), so on a GPU that has
them the float32 peak is the TF32 one whenever TF32 is allowed; otherwise plain FP32.
float16 and bfloat16 are held against the tensor-core peak with FP32 accumulation,
which is what cuBLAS and cuDNN use for PyTorch's half-precision matmuls and convs.

What the latency predictor (:mod:`archstat.predictor`) needs besides: ``vector_tflops``,
the rate of the CUDA cores that run elementwise work, normalisation and pooling
(non-tensor FP32, FP16 and BF16), and ``overhead_us``, the time each kernel costs
beyond its work. Where a datasheet gives no non-tensor half-precision rate, the
architecture's ratio to FP32 is used and the source says so. The overhead is not a
datasheet figure: 5 us is the low end of eager PyTorch's host-side cost of dispatching
and launching one op (Python, the dispatcher, ``cudaLaunchKernel``), which is what a
stream of small kernels waits on; ``archstat calibrate`` measures it on a real device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType

A100_WP = "NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), Table 1"
A100_DS = "NVIDIA A100 Tensor Core GPU datasheet (2021, 40GB and 80GB editions)"
H100_WP = "NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022), Table 1"
H100_DS = "NVIDIA H100 Tensor Core GPU datasheet (2022); sparsity figures halved"
H200_DS = "NVIDIA H200 Tensor Core GPU datasheet (2024); sparsity figures halved"
L4_DS = "NVIDIA L4 Tensor Core GPU datasheet (2023); sparsity figures halved"
T4_DS = "NVIDIA T4 Tensor Core GPU datasheet (2019)"
V100_DS = "NVIDIA Tesla V100 GPU Accelerator datasheet (2018/2020)"
ADA_WP = ("NVIDIA Ada GPU Architecture whitepaper (2022), Appendix A, GeForce RTX 4090 "
          "(FP16/BF16 tensor with FP32 accumulate)")
# Non-tensor (vector) rates: the sources' own figures where they give them, else FP32
# times the architecture's FP16/BF16 ratio (Hopper 2x, H100 whitepaper: 133.8 = 2 x 66.9;
# Ada 1x, Ada whitepaper: 82.6 = 82.6; Volta and Turing 2x, FP16x2 instructions).
A100_VECTOR = f"{A100_WP}: FP32 19.5, FP16 78, BF16 39 (non-tensor)"
H100_VECTOR = f"{H100_WP}: FP32 66.9, FP16 and BF16 133.8 (non-tensor)"
HOPPER_VECTOR = "datasheet FP32; FP16/BF16 non-tensor at 2x FP32 (Hopper, as in " \
                "the H100 whitepaper's Table 1)"
ADA_VECTOR = f"{ADA_WP}: FP32, FP16 and BF16 non-tensor 82.6"
L4_VECTOR = "datasheet FP32; FP16/BF16 non-tensor at 1x FP32 (Ada, as in the Ada " \
            "whitepaper's Appendix A)"
FP16X2_VECTOR = "datasheet FP32; FP16 non-tensor at 2x FP32 (FP16x2 instructions)"
#: Seconds of per-kernel overhead of a table entry, and why (see the module docstring).
OVERHEAD_US = 5.0
OVERHEAD_SOURCE = ("assumed 5 us per kernel: eager PyTorch's host-side dispatch and launch "
                   "of one op, not a datasheet figure; `archstat calibrate` measures it")


@dataclass(frozen=True)
class DeviceSpec:
    """One device's datasheet figures.

    ``peak_tflops`` maps ``float32`` (FP32, CUDA cores), ``tf32``, ``float16`` and
    ``bfloat16`` (tensor cores) to dense TFLOP/s; a precision the device lacks is absent.
    ``vector_tflops`` maps ``float32``, ``float16`` and ``bfloat16`` to the non-tensor
    (CUDA core) rate in TFLOP/s; ``overhead_us`` is microseconds per kernel.
    ``aliases`` are the short names a user may give (``H100``) for this entry.
    """

    name: str
    pattern: str  # regular expression matched against torch.cuda.get_device_name()
    peak_tflops: MappingProxyType
    bandwidth_gbs: float
    compute_source: str
    bandwidth_source: str
    vector_tflops: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    vector_source: str = ""
    overhead_us: float = OVERHEAD_US
    overhead_source: str = OVERHEAD_SOURCE
    aliases: tuple[str, ...] = ()


def _spec(name: str, pattern: str, peaks: dict[str, float], bandwidth: float,
          compute_source: str, bandwidth_source: str | None = None, *,
          vector: dict[str, float], vector_source: str,
          aliases: tuple[str, ...] = ()) -> DeviceSpec:
    return DeviceSpec(name, pattern, MappingProxyType(peaks), bandwidth, compute_source,
                      bandwidth_source or compute_source, MappingProxyType(vector),
                      vector_source, aliases=aliases)


_A100 = {"float32": 19.5, "tf32": 156.0, "float16": 312.0, "bfloat16": 312.0}
_H100_SXM = {"float32": 66.9, "tf32": 494.7, "float16": 989.4, "bfloat16": 989.4}
_V100 = {"float32": 15.7, "float16": 125.0}
_A100_VECTOR = {"float32": 19.5, "float16": 78.0, "bfloat16": 39.0}

#: Known devices, most specific pattern first; the first match wins.
DEVICES: tuple[DeviceSpec, ...] = (
    _spec("A100 PCIe 80GB", r"A100.*(80GB.*PCIE|PCIE.*80GB)", _A100, 1935, A100_WP, A100_DS,
          vector=_A100_VECTOR, vector_source=A100_VECTOR, aliases=("A100 PCIe",)),
    _spec("A100 SXM4 80GB", r"A100.*SXM.*80GB", _A100, 2039, A100_WP, A100_DS,
          vector=_A100_VECTOR, vector_source=A100_VECTOR, aliases=("A100", "A100 SXM4")),
    _spec("A100 40GB", r"A100.*40GB", _A100, 1555, A100_WP, A100_DS,
          vector=_A100_VECTOR, vector_source=A100_VECTOR),
    _spec("H100 PCIe", r"H100.*PCIE",
          {"float32": 51.0, "tf32": 378.0, "float16": 756.5, "bfloat16": 756.5}, 2000, H100_DS,
          vector={"float32": 51.0, "float16": 102.0, "bfloat16": 102.0},
          vector_source=HOPPER_VECTOR),
    # torch names the SXM5 board "NVIDIA H100 80GB HBM3"
    _spec("H100 SXM5", r"H100.*(SXM|HBM3)", _H100_SXM, 3350, H100_WP, H100_DS,
          vector={"float32": 66.9, "float16": 133.8, "bfloat16": 133.8},
          vector_source=H100_VECTOR, aliases=("H100", "H100 SXM")),
    _spec("H200 NVL", r"H200.*NVL",
          {"float32": 60.0, "tf32": 417.5, "float16": 835.5, "bfloat16": 835.5}, 4800, H200_DS,
          vector={"float32": 60.0, "float16": 120.0, "bfloat16": 120.0},
          vector_source=HOPPER_VECTOR),
    _spec("H200 SXM", r"H200(?!.*NVL)",
          {"float32": 67.0, "tf32": 494.5, "float16": 989.5, "bfloat16": 989.5}, 4800, H200_DS,
          vector={"float32": 67.0, "float16": 134.0, "bfloat16": 134.0},
          vector_source=HOPPER_VECTOR, aliases=("H200",)),
    _spec("L4", r"\bL4\b",
          {"float32": 30.3, "tf32": 60.0, "float16": 121.0, "bfloat16": 121.0}, 300, L4_DS,
          vector={"float32": 30.3, "float16": 30.3, "bfloat16": 30.3}, vector_source=L4_VECTOR),
    _spec("T4", r"\bT4\b", {"float32": 8.1, "float16": 65.0}, 320, T4_DS,
          vector={"float32": 8.1, "float16": 16.2}, vector_source=FP16X2_VECTOR),
    _spec("V100S PCIe", r"V100S.*PCIE", {"float32": 16.4, "float16": 130.0}, 1134, V100_DS,
          vector={"float32": 16.4, "float16": 32.8}, vector_source=FP16X2_VECTOR,
          aliases=("V100S",)),
    _spec("V100 PCIe", r"V100-PCIE", {"float32": 14.0, "float16": 112.0}, 900, V100_DS,
          vector={"float32": 14.0, "float16": 28.0}, vector_source=FP16X2_VECTOR),
    _spec("V100 SXM2", r"V100-SXM2", _V100, 900, V100_DS,
          vector={"float32": 15.7, "float16": 31.4}, vector_source=FP16X2_VECTOR,
          aliases=("V100",)),
    _spec("GeForce RTX 4090", r"RTX 4090(?! ?D)(?!.*LAPTOP)",
          {"float32": 82.6, "tf32": 82.6, "float16": 165.2, "bfloat16": 165.2}, 1008, ADA_WP,
          vector={"float32": 82.6, "float16": 82.6, "bfloat16": 82.6}, vector_source=ADA_VECTOR,
          aliases=("RTX 4090", "4090")),
)


def _key(name: str) -> str:
    """A device name as users vary it: case, spaces, hyphens and the vendor's words."""
    words = re.sub(r"\b(nvidia|geforce|tesla)\b", "", name.lower())
    return re.sub(r"[\s_-]+", "", words)


def device_named(name: str) -> DeviceSpec | None:
    """The table entry a user means by ``name``: its own name or one of its aliases
    (``H100`` is the SXM5 board, the one most clouds rent), ignoring case, spaces,
    hyphens and "NVIDIA"/"GeForce"/"Tesla"; None if none is."""
    key = _key(name)
    for spec in DEVICES:
        if key in {_key(n) for n in (spec.name, *spec.aliases)}:
            return spec
    return None


def find_device(name: str) -> DeviceSpec | None:
    """The table entry whose pattern matches a device name (``torch.cuda.get_device_name``),
    or None: an unknown device is never guessed."""
    for spec in DEVICES:
        if re.search(spec.pattern, name, flags=re.IGNORECASE):
            return spec
    return None


@dataclass(frozen=True)
class Peak:
    """The peak a run is held against: dense TFLOP/s, the precision it is quoted for,
    the memory bandwidth in GB/s, and where both come from."""

    tflops: float
    precision: str
    bandwidth_gbs: float
    source: str


def peak_for(spec: DeviceSpec | None, dtype: str, tf32_allowed: bool) -> Peak | None:
    """The peak for a run in ``dtype`` on ``spec``, or None when it is not known.

    float32 uses the TF32 tensor-core peak when ``tf32_allowed`` and the device has
    TF32 (the highest rate the run may reach, so the roofline stays a lower bound).
    """
    if spec is None:
        return None
    precision = "tf32" if (dtype == "float32" and tf32_allowed
                           and "tf32" in spec.peak_tflops) else dtype
    tflops = spec.peak_tflops.get(precision)
    if tflops is None:
        return None
    source = spec.compute_source
    if spec.bandwidth_source != spec.compute_source:
        source = f"{spec.compute_source}; bandwidth: {spec.bandwidth_source}"
    return Peak(tflops, precision, spec.bandwidth_gbs, source)

