"""``archstat predict``, ``calibrate``, ``compare --device`` and ``max_predicted_ms``.

The arithmetic is checked on synthetic device profiles whose rates are round numbers,
against times and byte counts worked out by hand; FLOPs against torch's FlopCounterMode
on a real CPU run; calibration's logic (the CUDA path included) on a synthetic device
with a fake clock. No test times anything real.
"""

from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.predictor import (
    LAYER_COLUMNS,
    DeviceProfile,
    calibration,
    device_profile,
    load_profile,
)
from archstat.predictor.profile import profile_from_data
from archstat.render import render
from archstat.zoo import get_model

MS = 1e3


def synthetic(**changes) -> DeviceProfile:
    """1 TFLOP/s matrix units, 0.1 TFLOP/s vector units, 100 GB/s, 2 us per kernel."""
    fields = dict(name="synthetic", source="made up for the tests",
                  matrix_flops_per_s=MappingProxyType({"float32": 1e12, "bfloat16": 4e12}),
                  vector_flops_per_s=MappingProxyType({"float32": 1e11, "bfloat16": 2e11}),
                  memory_bytes_per_s=1e11, overhead_s=2e-6)
    fields.update(changes)
    return DeviceProfile(**fields)


class Clone(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(-1)


def only_row(report) -> dict:
    assert len(report.rows) == 1
    return report.rows[0]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the roofline, by hand ------------------------------------------------------------

def test_a_pure_matmul_is_compute_bound_at_the_profiles_peak() -> None:
    report = archstat.predict(nn.Linear(1024, 1024, bias=False), "1024", batch=1024,
                              device=synthetic())
    row = only_row(report)
    flops = 2 * 1024**3  # 1024 x 1024 x 1024 multiply-adds
    nbytes = 3 * 1024 * 1024 * 4  # input and weight read, output written, float32
    assert (row["flops"], row["bytes"], row["kernels"]) == (flops, nbytes, 1)
    # compute 2.147 ms > memory 0.126 ms: flops / peak + one kernel's overhead, exactly
    assert row["predicted_ms"] == pytest.approx((flops / 1e12 + 2e-6) * MS, rel=1e-12)
    assert row["bound"] == "compute" and row["compute_bound_ms"] == row["predicted_ms"]
    assert row["intensity"] == pytest.approx(flops / nbytes)


def test_a_copy_is_memory_bound_at_the_profiles_bandwidth() -> None:
    row = only_row(archstat.predict(Clone(), "1024", batch=1024, device=synthetic()))
    nbytes = 2 * 1024 * 1024 * 4  # read once, written once
    assert (row["flops"], row["bytes"]) == (0, nbytes)
    assert row["predicted_ms"] == pytest.approx((nbytes / 1e11 + 2e-6) * MS, rel=1e-12)
    assert row["bound"] == "memory"
    # twice the bandwidth: the time of the bytes halves, the overhead stays
    fast = only_row(archstat.predict(Clone(), "1024", batch=1024,
                                     device=synthetic(memory_bytes_per_s=2e11)))
    assert fast["predicted_ms"] == pytest.approx((nbytes / 2e11 + 2e-6) * MS, rel=1e-12)


def test_a_tiny_op_is_overhead_bound_and_a_view_launches_nothing() -> None:
    row = only_row(archstat.predict(nn.ReLU(), "4", device=synthetic()))
    # 4 ops at 0.1 TFLOP/s, 32 bytes at 100 GB/s: both far below 2 us
    assert (row["flops"], row["bytes"], row["bound"]) == (4, 32, "overhead")
    assert row["predicted_ms"] == pytest.approx((32 / 1e11 + 2e-6) * MS, rel=1e-12)
    view = only_row(archstat.predict(Flatten(), "4x4", device=synthetic()))
    assert (view["kernels"], view["bytes"], view["predicted_ms"], view["bound"]) == \
        (0, 0, 0.0, "none")


def test_conv_and_linear_bytes_and_flops_by_hand() -> None:
    conv = only_row(archstat.predict(nn.Conv2d(3, 8, 3, padding=1), "3x16x16",
                                     device=synthetic()))
    # input 3x16x16, weight 8x3x3x3, bias 8, output 8x16x16: float32
    assert conv["bytes"] == (3 * 16 * 16 + 8 * 3 * 3 * 3 + 8 + 8 * 16 * 16) * 4 == 12160
    assert conv["flops"] == 2 * 8 * 3 * 3 * 3 * 16 * 16  # 2 per multiply-add
    linear = only_row(archstat.predict(nn.Linear(16, 32), "16", batch=4, device=synthetic()))
    assert linear["bytes"] == (4 * 16 + 32 * 16 + 32 + 4 * 32) * 4 == 2944
    assert linear["flops"] == 2 * 4 * 16 * 32
    half = only_row(archstat.predict(nn.Linear(16, 32), "16", batch=4, dtype="bfloat16",
                                     device=synthetic()))
    assert half["bytes"] == 2944 // 2  # two bytes an element


def test_a_small_network_byte_by_byte() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(), nn.MaxPool2d(2))
    report = archstat.predict(net, "1x10x10", device=synthetic())
    by_type = {row["type"]: row for row in report.rows}
    conv_out = 4 * 8 * 8 * 4
    assert by_type["Conv2d"]["bytes"] == 10 * 10 * 4 + 4 * 9 * 4 + conv_out
    assert by_type["ReLU"]["bytes"] == 2 * conv_out  # read, and a new output written
    # max_pool2d writes its output and its indices (int64)
    assert by_type["MaxPool2d"]["bytes"] == conv_out + 4 * 4 * 4 * 4 + 4 * 4 * 4 * 8
    assert report.totals["bytes"] == sum(r["bytes"] for r in report.rows)
    assert report.totals["predicted_ms"] == pytest.approx(
        sum(r["predicted_ms"] for r in report.rows), rel=1e-12)
    shares = [report.totals[f"{b}_share"] for b in ("compute", "memory", "overhead")]
    assert sum(shares) == pytest.approx(1.0)


def test_depthwise_pooling_cache_and_library_overheads_use_their_own_rates() -> None:
    profile = synthetic(pool_flops_per_s=MappingProxyType({"float32": 1e9}),
                        depthwise_flops_per_s=MappingProxyType({"float32": 5e9}),
                        matrix_overhead_s=10e-6, cache_bytes=2**20, cache_bytes_per_s=1e12)
    pool = only_row(archstat.predict(nn.MaxPool2d(2), "64x64x64", device=profile))
    ops = 64 * 32 * 32 * 4  # window elements
    assert pool["flops"] == ops
    assert pool["predicted_ms"] == pytest.approx((ops / 1e9 + 2e-6) * MS, rel=1e-12)
    avg = only_row(archstat.predict(nn.AvgPool2d(2), "64x64x64", device=profile))
    assert avg["predicted_ms"] < pool["predicted_ms"] / 5  # 2-d average pooling: vector
    depthwise = archstat.predict(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
                                 "16x32x32", device=profile)
    (op,) = [o for o in depthwise.ops if o.kernels]
    flops = 2 * 9 * 16 * 32 * 32
    assert (op.unit, op.flops) == ("vector", flops)
    assert op.time_s == pytest.approx(flops / 5e9 + 10e-6, rel=1e-12)  # a library call
    # 8 KiB copied: within the 1 MiB cache, at its 1 TB/s; 8 MiB: from memory
    small = only_row(archstat.predict(Clone(), "1024", device=profile))
    assert small["predicted_ms"] == pytest.approx((8192 / 1e12 + 2e-6) * MS, rel=1e-12)
    large = only_row(archstat.predict(Clone(), "1024", batch=1024, device=profile))
    assert large["predicted_ms"] == pytest.approx((2**23 / 1e11 + 2e-6) * MS, rel=1e-12)


def test_spatial_convolutions_run_at_their_rate_and_1x1_ones_do_not() -> None:
    profile = synthetic(spatial_conv_flops_per_s=MappingProxyType({"float32": 4e12}),
                        depthwise_flops_per_s=MappingProxyType({"float32": 5e9}))
    conv3 = archstat.predict(nn.Conv2d(64, 32, 3, bias=False), "64x10x10", device=profile)
    (op,) = [o for o in conv3.ops if o.kernels]
    assert op.flops == 2 * 64 * 9 * 32 * 8 * 8
    assert op.compute_s == 2 * 64 * 9 * 32 * 8 * 8 / 4e12
    assert conv3.peaks()["spatial_conv_flops_per_s"] == 4e12
    conv1 = archstat.predict(nn.Conv2d(64, 32, 1, bias=False), "64x8x8", device=profile)
    (op,) = [o for o in conv1.ops if o.kernels]
    assert op.compute_s == 2 * 64 * 32 * 8 * 8 / 1e12  # a GEMM: the matrix rate
    # a 1x3 kernel is spatial; a depthwise 3x3 keeps the depthwise rate
    conv13 = archstat.predict(nn.Conv2d(8, 8, (1, 3), bias=False), "8x4x6", device=profile)
    (op,) = [o for o in conv13.ops if o.kernels]
    assert op.compute_s == 2 * 8 * 3 * 8 * 4 * 4 / 4e12
    depthwise = archstat.predict(nn.Conv2d(16, 16, 3, groups=16, bias=False), "16x10x10",
                                 device=profile)
    (op,) = [o for o in depthwise.ops if o.kernels]
    assert op.compute_s == 2 * 9 * 16 * 8 * 8 / 5e9
    # it takes the place of conv_flops_per_s (and TF32) for spatial convolutions only
    both = synthetic(matrix_flops_per_s=MappingProxyType({"float32": 1e12, "tf32": 8e12}),
                     conv_flops_per_s=MappingProxyType({"float32": 2e12}),
                     spatial_conv_flops_per_s=MappingProxyType({"float32": 4e12}))
    (op,) = [o for o in archstat.predict(nn.Conv2d(64, 32, 3, bias=False), "64x10x10",
                                         device=both).ops if o.kernels]
    assert op.compute_s == 2 * 64 * 9 * 32 * 8 * 8 / 4e12
    (op,) = [o for o in archstat.predict(nn.Conv2d(64, 32, 1, bias=False), "64x8x8",
                                         device=both).ops if o.kernels]
    assert op.compute_s == 2 * 64 * 32 * 8 * 8 / 2e12
    # without the figure a 3x3 convolution runs at the matrix rate, as before
    (op,) = [o for o in archstat.predict(nn.Conv2d(64, 32, 3, bias=False), "64x10x10",
                                         device=synthetic()).ops if o.kernels]
    assert op.compute_s == 2 * 64 * 9 * 32 * 8 * 8 / 1e12


def test_large_new_outputs_pay_for_their_first_touch() -> None:
    profile = synthetic(fresh_bytes_above=2**20, fresh_bytes_per_s=1e9)
    # a copy of 2^18 + 1 float32 elements: a new output of 1 MiB + 4 bytes, read and
    # written at 100 GB/s, then faulted in at 1 GB/s
    nbytes = 2**20 + 4
    large = only_row(archstat.predict(Clone(), "262145", device=profile))
    assert large["predicted_ms"] == pytest.approx(
        (2 * nbytes / 1e11 + 2e-6 + nbytes / 1e9) * MS, rel=1e-12)
    assert large["bound"] == "overhead"
    # exactly 1 MiB is not above the threshold: no first touch
    small = only_row(archstat.predict(Clone(), "262144", device=profile))
    assert small["predicted_ms"] == pytest.approx((2**21 / 1e11 + 2e-6) * MS, rel=1e-12)
    # an in-place op allocates nothing
    inplace = only_row(archstat.predict(nn.ReLU(inplace=True), "262145", device=profile))
    assert inplace["predicted_ms"] == pytest.approx(
        (2 * nbytes / 1e11 + 2e-6) * MS, rel=1e-12)
    # a profile without the figures: the same copy costs its bytes and one overhead
    plain = only_row(archstat.predict(Clone(), "262145", device=synthetic()))
    assert plain["predicted_ms"] == pytest.approx((2 * nbytes / 1e11 + 2e-6) * MS, rel=1e-12)


def test_depthwise_convolutions_fault_in_their_library_buffers_too() -> None:
    profile = synthetic(fresh_bytes_above=2**19, fresh_bytes_per_s=1e9)
    # a 64x64x64 float32 map is 2^20 bytes: above the threshold. Stride 1: the new
    # output (2^20) and the library's two buffers (the input and the output in its
    # blocked layout, 2^20 each) are faulted in at 1 GB/s, on top of the 2 us overhead
    conv = nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)
    (op,) = [o for o in archstat.predict(conv, "64x64x64", device=profile).ops if o.kernels]
    assert op.overhead_s == pytest.approx(2e-6 + 3 * 2**20 / 1e9, rel=1e-12)
    # stride 2: a 64x32x32 output of 2^18 bytes, below the threshold, as is its buffer;
    # only the input's buffer is faulted in
    conv = nn.Conv2d(64, 64, 3, stride=2, padding=1, groups=64, bias=False)
    (op,) = [o for o in archstat.predict(conv, "64x64x64", device=profile).ops if o.kernels]
    assert op.overhead_s == pytest.approx(2e-6 + 2**20 / 1e9, rel=1e-12)
    # a convolution that is not depthwise: no library buffers, and its small output
    # is not faulted in
    conv = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
    (op,) = [o for o in archstat.predict(conv, "64x64x64", device=profile).ops if o.kernels]
    assert op.overhead_s == pytest.approx(2e-6, rel=1e-12)
    # a profile without the figures (a GPU's): one overhead
    conv = nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)
    (op,) = [o for o in archstat.predict(conv, "64x64x64", device=synthetic()).ops
             if o.kernels]
    assert op.overhead_s == pytest.approx(2e-6, rel=1e-12)


def test_a_module_call_costs_its_overhead_even_without_kernels() -> None:
    profile = synthetic(module_overhead_s=7e-6)
    view = only_row(archstat.predict(Flatten(), "4x4", device=profile))
    assert (view["kernels"], view["bound"]) == (0, "overhead")
    assert view["predicted_ms"] == pytest.approx(7e-6 * MS, rel=1e-12)
    relu = only_row(archstat.predict(nn.ReLU(), "4", device=profile))
    assert relu["predicted_ms"] == pytest.approx((32 / 1e11 + 2e-6 + 7e-6) * MS, rel=1e-12)
    # a container's own call is not a leaf's: two leaves, two module calls
    net = archstat.predict(nn.Sequential(nn.ReLU(), nn.ReLU()), "4", device=profile)
    assert net.totals["predicted_ms"] == pytest.approx(
        2 * (32 / 1e11 + 2e-6 + 7e-6) * MS, rel=1e-12)


def test_float32_convolutions_run_at_tf32_and_matmuls_do_not() -> None:
    profile = synthetic(matrix_flops_per_s=MappingProxyType({"float32": 1e12, "tf32": 8e12}))
    conv = archstat.predict(nn.Conv2d(64, 64, 3, bias=False), "64x34x34", device=profile)
    (op,) = [o for o in conv.ops if o.kernels]
    assert op.compute_s == op.flops / 8e12
    mm = archstat.predict(nn.Linear(256, 256, bias=False), "256", batch=256, device=profile)
    (op,) = [o for o in mm.ops if o.kernels]
    assert op.compute_s == op.flops / 1e12
    # a profile's own convolution rate takes the place of TF32
    profile = synthetic(matrix_flops_per_s=MappingProxyType({"float32": 1e12, "tf32": 8e12}),
                        conv_flops_per_s=MappingProxyType({"float32": 3e12}))
    conv = archstat.predict(nn.Conv2d(64, 64, 3, bias=False), "64x34x34", device=profile)
    (op,) = [o for o in conv.ops if o.kernels]
    assert op.compute_s == op.flops / 3e12
    assert conv.peaks()["conv_flops_per_s"] == 3e12


def test_the_table_devices_carry_their_datasheet_figures() -> None:
    h100 = device_profile("H100")
    assert h100.name == "H100 SXM5" and device_profile("nvidia h100 sxm") == h100
    assert h100.matrix_flops_per_s["bfloat16"] == 989.4e12
    assert h100.vector_flops_per_s["bfloat16"] == 133.8e12
    assert (h100.memory_bytes_per_s, h100.overhead_s) == (3.35e12, 5e-6)
    assert "whitepaper" in h100.source and "5 us" in h100.source
    assert device_profile("T4").dtypes == ("float32", "float16")


# --- FLOPs and bytes against independent counts ------------------------------------

def test_matrix_flops_match_flop_counter_mode_on_a_real_cpu_run() -> None:
    torch.manual_seed(0)
    model = get_model("googlenet").eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.randn(1, 3, 224, 224))
    counts = counter.get_flop_counts()
    report = archstat.predict("googlenet", device="H100")
    assert sum(o.flops for o in report.ops if o.unit == "matrix") == counter.get_total_flops()
    prefix = type(model).__name__
    checked = 0
    for row in report.rows:
        if row["type"] in ("Conv2d", "Linear"):
            assert row["flops"] == sum(counts[f"{prefix}.{row['name']}"].values()), row["name"]
            checked += 1
    assert checked == 58  # googlenet's conv and fc layers


def test_bytes_of_every_conv_and_linear_of_a_zoo_model_by_hand() -> None:
    """Each conv and fc layer of resnet18 reads its input and its parameters and writes
    its output once: counted from shapes that forward hooks see on a meta run."""
    with torch.device("meta"):
        model = get_model("resnet18").eval()
    expected = {}

    def hook(name):
        def record(module, args, output):
            params = sum(p.numel() for p in module.parameters())
            expected[name] = (args[0].numel() + params + output.numel()) * 4
        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook(name))
    model(torch.empty(1, 3, 224, 224, device="meta"))
    report = archstat.predict("resnet18", device="H100")
    got = {r["name"]: r["bytes"] for r in report.rows if r["type"] in ("Conv2d", "Linear")}
    assert got == expected and len(got) == 21


# --- outputs --------------------------------------------------------------------------

def test_json_layout(capsys) -> None:
    code, out, err = run(capsys, "predict", "lenet5", "--device", "H100", "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert {"device", "dtype", "batch", "peaks", "source"} <= set(data["meta"])
    assert (data["meta"]["device"], data["meta"]["dtype"], data["meta"]["batch"]) == \
        ("H100 SXM5", "float32", 1)
    assert data["meta"]["peaks"]["memory_bytes_per_s"] == 3.35e12
    for layer in data["layers"]:
        assert {"name", "flops", "bytes", "intensity", "predicted_ms", "bound"} <= set(layer)
        assert layer["bound"] in ("compute", "memory", "overhead", "none")
    totals = data["totals"]
    assert totals["predicted_ms"] == pytest.approx(
        sum(layer["predicted_ms"] for layer in data["layers"]), rel=1e-5)
    assert totals["flops"] == sum(layer["flops"] for layer in data["layers"])
    report = archstat.predict("lenet5", device="H100")
    assert totals["flops"] == report.totals["flops"] and totals["bytes"] == \
        report.totals["bytes"]


def test_csv_and_table(capsys) -> None:
    code, out, _ = run(capsys, "predict", "lenet5", "--device", "A100", "-f", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    report = archstat.predict("lenet5", device="A100")
    assert list(rows[0]) == LAYER_COLUMNS and len(rows) == len(report.rows)
    assert [int(r["flops"]) for r in rows] == [r["flops"] for r in report.rows]
    code, out, _ = run(capsys, "predict", "lenet5", "--device", "A100")
    assert code == 0
    assert "predicted on A100 SXM4 80GB" in out and "time by bound" in out
    assert "total" in out and "source: compute: NVIDIA A100" in out


def test_outputs_are_deterministic(capsys) -> None:
    outputs = []
    for _ in range(2):
        for fmt in ("json", "csv", "table"):
            code, out, _ = run(capsys, "predict", "googlenet", "--device", "L4", "-f", fmt)
            assert code == 0
            outputs.append(out)
    assert outputs[:3] == outputs[3:]


# --- profiles ----------------------------------------------------------------------

def test_profile_json_round_trip(tmp_path, capsys) -> None:
    profile = synthetic(matrix_overhead_s=3e-6, module_overhead_s=1e-6, cache_bytes=2**25,
                        cache_bytes_per_s=1e12,
                        pool_flops_per_s=MappingProxyType({"float32": 1e8}),
                        conv_flops_per_s=MappingProxyType({"float32": 2e12}),
                        spatial_conv_flops_per_s=MappingProxyType({"float32": 4e12}),
                        depthwise_flops_per_s=MappingProxyType({"float32": 3e10}),
                        fresh_bytes_above=2**25, fresh_bytes_per_s=3e9,
                        details=MappingProxyType({"how": "by hand"}))
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(profile.data()))
    assert load_profile(path) == profile
    h100 = tmp_path / "h100.json"
    h100.write_text(json.dumps(device_profile("H100").data()))
    by_name = run(capsys, "predict", "resnet18", "--device", "H100", "-f", "json")
    by_file = run(capsys, "predict", "resnet18", "--device", str(h100), "-f", "json")
    assert by_name == by_file and by_name[0] == 0


BASE = {"name": "mine", "source": "me", "matrix_flops_per_s": {"float32": 1e13},
        "vector_flops_per_s": {"float32": 1e12}, "memory_bytes_per_s": 1e12,
        "overhead_s": 5e-6}


@pytest.mark.parametrize(("change", "message"), [
    ({"overhead_s": None}, "missing overhead_s"),
    ({"memory_bytes_per_s": -1}, "memory_bytes_per_s: expected a positive number"),
    ({"memory_bytes_per_s": "1TB/s"}, "memory_bytes_per_s: expected a positive number"),
    ({"matrix_flops_per_s": {"float64": 1e13}}, "matrix_flops_per_s.float64: unknown dtype"),
    ({"bandwith": 1e12}, "bandwith: unknown key"),
    ({"matrix_flops_per_s": {"float32": 1e13, "bfloat16": 1e14}},
     "vector_flops_per_s: needs bfloat16 too"),
    ({"cache_bytes": 2**20}, "cache_bytes_per_s: needed too"),
    ({"fresh_bytes_per_s": 3e9}, "fresh_bytes_above: needed too"),
    ({"fresh_bytes_above": 1.5, "fresh_bytes_per_s": 3e9},
     "fresh_bytes_above: expected a non-negative whole number"),
    ({"spatial_conv_flops_per_s": {"float32": -2e12}},
     "spatial_conv_flops_per_s.float32: expected a positive"),
    ({"pool_flops_per_s": {"float32": 0}}, "pool_flops_per_s.float32: expected a positive"),
    ({"matrix_flops_per_s": [1e13]}, "matrix_flops_per_s: expected an object"),
])
def test_profile_mistakes_are_one_line_exit_2(tmp_path, capsys, change, message) -> None:
    data = {**BASE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchstatError, match=message.replace(".", r"\.")):
        load_profile(path)
    code, out, err = run(capsys, "predict", "lenet5", "--device", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and str(path) in err


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "H10"], "did you mean: H100"),
    (["--device", "nowhere.json"], "'nowhere.json' not found"),
    (["--device", "T4", "--dtype", "bfloat16"], "T4 has no bfloat16 rates"),
    (["--device", "H100", "--batch", "0"], "batch"),
])
def test_predict_usage_errors_are_one_line_exit_2(capsys, args, message) -> None:
    code, out, err = run(capsys, "predict", "lenet5", *args)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_invalid_json_names_the_place(tmp_path, capsys) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n  "source": }')
    code, _, err = run(capsys, "predict", "lenet5", "--device", str(path))
    assert code == 2 and f"{path}:2:" in err and "invalid JSON" in err


# --- calibration on a synthetic device --------------------------------------------

class SyntheticGPU:
    """A fake CUDA device: its own clock (the timer) and calls that take known times
    (the workloads). GEMMs above 4096 lose half their rate, as on a shared machine."""

    device = "cuda"
    OVERHEAD, CONV_OVERHEAD, MODULE_CALL = 4e-6, 9e-6, 1.5e-6
    MATRIX = {"float32": 2e13, "bfloat16": 4e14}
    TF32 = 1.5e14
    VECTOR = {"float32": 5e12, "bfloat16": 1e13}
    POOL = {"float32": 2e11, "bfloat16": 3e11}
    DEPTHWISE = {"float32": 1e12, "bfloat16": 2e12}
    #: the 3x3 convolutions' rate per map side (their FLOPs are equal)
    SPATIAL = {56: 4e13, 28: 4e13, 14: 2e13, 7: 1e13}
    #: first touch: allocations of 8 MiB and more are written at 1e10 bytes/s
    FRESH_MIN, FRESH_RATE = 8 * 2**20, 1e10
    BANDWIDTH, CACHE, CACHE_BANDWIDTH = 2e12, 50 * 2**20, 8e12

    def __init__(self) -> None:
        self.now = 0.0
        self.tf32_on = False

    # the timer
    def mark(self) -> float:
        return self.now

    def sync(self) -> None:
        pass

    def elapsed_ms(self, start: float, end: float) -> float:
        return (end - start) * 1e3

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory_bytes(self) -> None:
        return None

    # the workloads
    def _takes(self, seconds: float):
        def call() -> None:
            self.now += seconds
        return call

    def gemm(self, dtype: str, n: int):
        def call() -> None:
            rate = self.TF32 if self.tf32_on and dtype == "float32" else self.MATRIX[dtype]
            self.now += 2 * n**3 / (rate if n <= 4096 else rate / 2)
        return call

    def add(self, dtype: str, n: int):
        return self._takes(self.OVERHEAD + n / self.VECTOR[dtype])

    def copy(self, nbytes: int):
        rate = self.CACHE_BANDWIDTH if 2 * nbytes <= self.CACHE else self.BANDWIDTH
        return self._takes(self.OVERHEAD + 2 * nbytes / rate)

    def tiny(self):
        return self._takes(self.OVERHEAD)

    def tiny_conv(self):
        return self._takes(self.CONV_OVERHEAD)

    def module_call(self):
        return self._takes(self.MODULE_CALL)

    def pool(self, dtype: str):
        return self._takes(self.OVERHEAD + calibration.POOL_OPS / self.POOL[dtype])

    def depthwise(self, dtype: str):
        return self._takes(self.CONV_OVERHEAD + calibration.DEPTHWISE_FLOPS
                           / self.DEPTHWISE[dtype])

    def spatial_conv(self, dtype: str, channels: int, side: int):
        scale = 1 if dtype == "float32" else 2
        return self._takes(self.CONV_OVERHEAD + calibration.spatial_flops(channels, side)
                           / (scale * self.SPATIAL[side]))

    def fill(self, nbytes: int, fresh: bool):
        first_touch = nbytes / self.FRESH_RATE if fresh and nbytes >= self.FRESH_MIN else 0
        return self._takes(self.OVERHEAD + nbytes / self.BANDWIDTH + first_touch)

    def cache_size(self) -> int:
        return self.CACHE

    def tf32(self):
        @contextmanager
        def allowed():
            self.tf32_on = True
            try:
                yield
            finally:
                self.tf32_on = False
        return allowed()


def test_calibration_recovers_a_synthetic_gpus_rates() -> None:
    gpu = SyntheticGPU()
    profile = calibration.measure("cuda", gpu, gpu, ["float32", "bfloat16"],
                                  calibration.CUDA_SIZES, "Synthetic GPU")
    g = SyntheticGPU
    assert profile.overhead_s == pytest.approx(g.OVERHEAD, rel=1e-9)
    assert profile.matrix_overhead_s == pytest.approx(g.CONV_OVERHEAD, rel=1e-9)
    assert profile.module_overhead_s == pytest.approx(g.MODULE_CALL, rel=1e-9)
    # the best GEMM rate, not the largest size's (which runs at half the rate)
    assert profile.matrix_flops_per_s == pytest.approx(
        {"float32": g.MATRIX["float32"], "tf32": g.TF32, "bfloat16": g.MATRIX["bfloat16"]},
        rel=1e-9)
    assert profile.details["gemm"]["float32"]["n"] <= 4096
    assert not gpu.tf32_on  # TF32 switched back off
    for dtype in ("float32", "bfloat16"):
        assert profile.vector_flops_per_s[dtype] == pytest.approx(g.VECTOR[dtype], rel=1e-9)
        assert profile.pool_flops_per_s[dtype] == pytest.approx(g.POOL[dtype], rel=1e-9)
        assert profile.depthwise_flops_per_s[dtype] == pytest.approx(g.DEPTHWISE[dtype],
                                                                     rel=1e-9)
        # four convolutions of F FLOPs each at 4e13, 4e13, 2e13 and 1e13 FLOP/s take
        # F (1/4 + 1/4 + 1/2 + 1) / 1e13 = 2 F / 1e13 seconds: 4 F over it is 2e13
        # (bfloat16: twice each rate)
        scale = 1 if dtype == "float32" else 2
        assert profile.spatial_conv_flops_per_s[dtype] == pytest.approx(2e13 * scale,
                                                                        rel=1e-9)
    # the cache's size and copy rate are recorded, not used (see calibration.py)
    assert (profile.cache_bytes, profile.cache_bytes_per_s) == (None, None)
    assert profile.details["cache_bytes"] == g.CACHE
    assert profile.details["cache_copy"]["bytes_per_s"] == pytest.approx(g.CACHE_BANDWIDTH,
                                                                         rel=1e-9)
    # first touch is a CPU figure: a GPU's caching allocator reuses its memory
    assert profile.fresh_bytes_above is None and "fresh_bytes_above" not in profile.data()
    # a 1 GiB copy: the 4 us overhead is 0.4% of it
    assert profile.memory_bytes_per_s == pytest.approx(g.BANDWIDTH, rel=0.01)
    assert profile.memory_bytes_per_s < g.BANDWIDTH
    assert "measured by archstat calibrate on cuda" in profile.source
    # what calibrate writes is a valid profile file, read back unchanged
    assert profile_from_data(json.loads(json.dumps(profile.data()))) == profile


def test_calibration_finds_where_new_allocations_are_faulted_in() -> None:
    device = SyntheticGPU()
    profile = calibration.measure("cpu", device, device, ["float32"],
                                  calibration.CPU_SIZES, "Synthetic CPU")
    # up to 2^(11/4) MiB new memory writes as fast; 8 MiB (2^(12/4)) takes 1e10 bytes/s
    # longer
    assert profile.fresh_bytes_above == round(2**20 * 2 ** (11 / 4)) < 8 * 2**20
    assert profile.fresh_bytes_per_s == pytest.approx(1e10, rel=1e-9)
    assert [f["bytes"] for f in profile.details["fresh"]][-2:] == [
        round(2**20 * 2 ** (11 / 4)), 8 * 2**20]
    assert profile_from_data(json.loads(json.dumps(profile.data()))) == profile
    # a machine where no size differs leaves both figures out
    device.FRESH_MIN = 2**40
    profile = calibration.measure("cpu", device, device, ["float32"],
                                  calibration.CPU_SIZES, "Synthetic CPU")
    assert (profile.fresh_bytes_above, profile.fresh_bytes_per_s) == (None, None)
    sizes = [f["bytes"] for f in profile.details["fresh"]]
    assert (len(sizes), sizes[0], sizes[-1]) == (33, 2**20, 2**28)  # up to the 256 MiB copy


def test_calibration_stops_growing_a_gemm_that_takes_long_enough() -> None:
    gpu = SyntheticGPU()
    sizes = calibration.Sizes(gemm_start=256, gemm_max=2**20, min_call_s=0.99 * 2 * 1024**3 / 2e13,
                              vector_start=2**10, vector_max=2**12, copy_bytes=2**20,
                              repeats=2)
    n, seconds = calibration._gemm(gpu, gpu, "float32", sizes)
    assert n in (256, 512, 1024) and 2 * n**3 / seconds == pytest.approx(2e13, rel=1e-9)
    # sizes tried: 256, 512, 1024 (the first to take min_call_s), not 2048; each one
    # untimed call and 2 timed
    assert gpu.now == pytest.approx(sum(3 * 2 * m**3 / 2e13 for m in (256, 512, 1024)))


def test_cpu_cache_size_reads_sysfs(tmp_path) -> None:
    for index, (kind, size) in enumerate([("Data", "48K"), ("Instruction", "32K"),
                                          ("Unified", "1024K"), ("Unified", "32768K")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "type").write_text(kind + "\n")
        (folder / "size").write_text(size + "\n")
    assert calibration.cpu_cache_size(str(tmp_path)) == 32 * 2**20
    assert calibration.cpu_cache_size(str(tmp_path / "none")) is None


def test_calibrate_errors_are_one_line_exit_2(capsys) -> None:
    with pytest.raises(ArchstatError, match="unknown dtype 'float64'"):
        archstat.calibrate("cpu", dtypes=["float64"])
    if not torch.cuda.is_available():
        code, _, err = run(capsys, "calibrate", "--device", "cuda")
        assert code == 2 and err.count("\n") == 1 and "CUDA is not available" in err
    code, _, err = run(capsys, "calibrate", "--device", "cpu", "--threads", "0")
    assert code == 2 and err.count("\n") == 1 and "threads" in err


# --- compare --device ------------------------------------------------------------------

@pytest.fixture(scope="module")
def googlenet_vgg16():
    return archstat.compare_models(["googlenet", "vgg16"], device="H100")


def test_compare_adds_predicted_latency_and_its_ratio(googlenet_vgg16) -> None:
    rows = googlenet_vgg16.total_rows
    alone = [archstat.predict(m, device="H100").totals["predicted_ms"]
             for m in ("googlenet", "vgg16")]
    assert [r["predicted_ms"] for r in rows] == alone
    assert rows[1]["predicted_ms_ratio"] == alone[1] / alone[0]
    assert rows[0]["predicted_ms_ratio"] == 1.0
    assert googlenet_vgg16.settings["device"] == "H100 SXM5"


def test_compare_names_the_memory_bound_layers(googlenet_vgg16) -> None:
    (finding,) = [f for f in googlenet_vgg16.findings if f.kind == "latency"]
    vgg = archstat.predict("vgg16", device="H100")
    slow = vgg.slowest("memory", 3)
    assert slow and all(r["bound"] == "memory" for r in slow)
    text = json.dumps(render(googlenet_vgg16, "json"))
    assert "latency on H100 SXM5: vgg16 is predicted at" in text
    for row in slow:
        assert f"{row['name']} ({row['type']}," in text
    assert finding.figures["memory_ms"] == vgg.totals["memory_bound_ms"]


def test_compare_device_csv_and_errors(capsys) -> None:
    code, out, _ = run(capsys, "compare", "lenet5", "alexnet", "--device", "L4", "-f", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "predicted_ms" in rows[0] and "predicted_ms_ratio" in rows[0]
    alone = archstat.predict("alexnet", device="L4").totals["predicted_ms"]
    assert float(rows[1]["predicted_ms"]) == pytest.approx(alone, rel=1e-5)
    code, out, _ = run(capsys, "compare", "lenet5", "alexnet", "-f", "csv")
    assert "predicted_ms" not in out.splitlines()[0]
    for args, message in [(["--device", "H10"], "did you mean: H100"),
                          (["--device", "H100", "--train"], "inference forward"),
                          (["--device", "V100", "--dtype", "bfloat16"], "no bfloat16")]:
        code, _, err = run(capsys, "compare", "lenet5", "alexnet", *args)
        assert code == 2 and err.count("\n") == 1 and message in err


def test_compare_cut_predicts_the_compared_part_only() -> None:
    whole = archstat.predict("vgg16", device="H100").totals["predicted_ms"]
    cut = archstat.compare_models(["googlenet", "vgg16"], device="H100", until_resolution=28)
    part = cut.total_rows[1]["predicted_ms"]
    assert 0 < part < whole


# --- max_predicted_ms -----------------------------------------------------------------

def write(tmp_path: Path, text: str, name: str = "archstat.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_budget_max_predicted_ms_passes_and_fails_on_the_prediction(tmp_path, capsys):
    predicted = archstat.predict("resnet18", device="H100").totals["predicted_ms"]
    above, below = f"{predicted * 1.001:.6f}", f"{predicted * 0.999:.6f}"
    ok = write(tmp_path, f'[[budget]]\nmodel = "resnet18"\nmax_predicted_ms = {above}\n'
                         f'device = "H100"\n')
    code, out, _ = run(capsys, "check", str(ok))
    assert code == 0 and "predicted_ms" in out
    bad = write(tmp_path, f'[[budget]]\nmodel = "resnet18"\nmax_predicted_ms = "{below}ms"\n'
                          f'device = "H100"\n', "bad.toml")
    code, out, err = run(capsys, "check", str(bad), "-f", "json")
    assert code == 1
    (result,) = json.loads(out)["results"]
    assert result["status"] == "fail" and result["metric"] == "predicted_ms"
    assert result["actual"] == round(predicted * 1e6)  # nanoseconds
    assert f"exceeds max_predicted_ms = {below}ms" in result["message"]


def test_budget_device_may_be_a_profile_beside_the_file(tmp_path, monkeypatch, capsys):
    profile = synthetic(name="my board")
    (tmp_path / "board.json").write_text(json.dumps(profile.data()))
    predicted = archstat.predict("lenet5", device=profile).totals["predicted_ms"]
    path = write(tmp_path, f'[[budget]]\nmodel = "lenet5"\nmax_predicted_ms = '
                           f'{predicted * 2}\ndevice = "board.json"\n')
    monkeypatch.chdir(Path(__file__).parent)  # the profile is found beside the budget file
    code, _, err = run(capsys, "check", str(path))
    assert code == 0, err


@pytest.mark.parametrize(("body", "line", "message"), [
    ('max_predicted_ms = 1.5\n', 3, 'max_predicted_ms: needs device = "NAME"'),
    ('max_flops = "1G"\ndevice = "H100"\n', 4, "device: a device only counts with "
                                              "max_predicted_ms"),
    ('max_predicted_ms = -2\ndevice = "H100"\n', 3, "expected a positive number of "
                                                   "milliseconds"),
    ('max_predicted_ms = "fast"\ndevice = "H100"\n', 3, "expected a positive number"),
    ('max_predicted_ms = 1\ndevice = "H10"\n', 4, "did you mean: H100"),
    ('max_predicted_ms = 1\ndevice = "gone.json"\n', 4, "not found"),
    ('dtype = "bfloat16"\nmax_predicted_ms = 1\ndevice = "T4"\n', 5, "T4 has no bfloat16"),
])
def test_budget_predicted_ms_mistakes_are_file_line_exit_2(tmp_path, capsys, body, line,
                                                           message) -> None:
    path = write(tmp_path, f'[[budget]]\nmodel = "lenet5"\n{body}')
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and err.count("\n") == 1
    assert f"archstat.toml:{line}:" in err and message in err
