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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class DeviceSpec:
    """One device's datasheet figures.

    ``peak_tflops`` maps ``float32`` (FP32, CUDA cores), ``tf32``, ``float16`` and
    ``bfloat16`` (tensor cores) to dense TFLOP/s; a precision the device lacks is absent.
    """

    name: str
    pattern: str  # regular expression matched against torch.cuda.get_device_name()
    peak_tflops: MappingProxyType
    bandwidth_gbs: float
    compute_source: str
    bandwidth_source: str


def _spec(name: str, pattern: str, peaks: dict[str, float], bandwidth: float,
          compute_source: str, bandwidth_source: str | None = None) -> DeviceSpec:
    return DeviceSpec(name, pattern, MappingProxyType(peaks), bandwidth, compute_source,
                      bandwidth_source or compute_source)


_A100 = {"float32": 19.5, "tf32": 156.0, "float16": 312.0, "bfloat16": 312.0}
_H100_SXM = {"float32": 66.9, "tf32": 494.7, "float16": 989.4, "bfloat16": 989.4}
_V100 = {"float32": 15.7, "float16": 125.0}

#: Known devices, most specific pattern first; the first match wins.
DEVICES: tuple[DeviceSpec, ...] = (
    _spec("A100 PCIe 80GB", r"A100.*(80GB.*PCIE|PCIE.*80GB)", _A100, 1935, A100_WP, A100_DS),
    _spec("A100 SXM4 80GB", r"A100.*SXM.*80GB", _A100, 2039, A100_WP, A100_DS),
    _spec("A100 40GB", r"A100.*40GB", _A100, 1555, A100_WP, A100_DS),
    _spec("H100 PCIe", r"H100.*PCIE",
          {"float32": 51.0, "tf32": 378.0, "float16": 756.5, "bfloat16": 756.5}, 2000, H100_DS),
    # torch names the SXM5 board "NVIDIA H100 80GB HBM3"
    _spec("H100 SXM5", r"H100.*(SXM|HBM3)", _H100_SXM, 3350, H100_WP, H100_DS),
    _spec("H200 NVL", r"H200.*NVL",
          {"float32": 60.0, "tf32": 417.5, "float16": 835.5, "bfloat16": 835.5}, 4800, H200_DS),
    _spec("H200 SXM", r"H200(?!.*NVL)",
          {"float32": 67.0, "tf32": 494.5, "float16": 989.5, "bfloat16": 989.5}, 4800, H200_DS),
    _spec("L4", r"\bL4\b",
          {"float32": 30.3, "tf32": 60.0, "float16": 121.0, "bfloat16": 121.0}, 300, L4_DS),
    _spec("T4", r"\bT4\b", {"float32": 8.1, "float16": 65.0}, 320, T4_DS),
    _spec("V100S PCIe", r"V100S.*PCIE", {"float32": 16.4, "float16": 130.0}, 1134, V100_DS),
    _spec("V100 PCIe", r"V100-PCIE", {"float32": 14.0, "float16": 112.0}, 900, V100_DS),
    _spec("V100 SXM2", r"V100-SXM2", _V100, 900, V100_DS),
    _spec("GeForce RTX 4090", r"RTX 4090(?! ?D)(?!.*LAPTOP)",
          {"float32": 82.6, "tf32": 82.6, "float16": 165.2, "bfloat16": 165.2}, 1008, ADA_WP),
)


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

