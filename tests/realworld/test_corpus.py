"""torchvision, timm and transformers models (zoos.py) against the oracles: the model's
parameter count and the parameters its forward reads, FlopCounterMode (convention
``flops``) and fvcore (convention ``fvcore``), in total and per top-level module; and
every op reached is one archstat knows.

Memory on a subset of these models (MEMORY_SUBSET): the tensor-level peak against a
watch of a real CPU run, and the allocator-level one against the profiler's peak
(test_memory_estimates_against_real_cpu_runs).
"""

from __future__ import annotations

import pytest
import timm

import archstat

from .corpus import check_flops, check_fvcore, check_ops_known, check_params, measure, parametrize
from .timm_sample import SAMPLE
from .zoos import timm_cases, torchvision_cases, transformers_cases

pytestmark = pytest.mark.realworld

CASES = parametrize([*torchvision_cases(), *timm_cases(), *transformers_cases()])


@pytest.mark.parametrize("case", CASES)
def test_params(case) -> None:
    check_params(measure(case))


@pytest.mark.parametrize("case", CASES)
def test_flops_equal_flop_counter_mode(case) -> None:
    check_flops(measure(case), case)


@pytest.mark.parametrize("case", CASES)
def test_fvcore_convention_equals_fvcore(case) -> None:
    check_fvcore(measure(case), case)


@pytest.mark.parametrize("case", CASES)
def test_every_op_is_counted_or_declared(case) -> None:
    check_ops_known(measure(case))


def test_timm_sample_covers_every_family() -> None:
    sampled = {name for name, _, _ in SAMPLE}
    missing = [family for family in sorted(timm.list_modules())
               if not sampled & set(timm.list_models(module=family))]
    assert missing == []
    assert len(sampled) == len(SAMPLE) >= 150


def test_detectors_run_on_the_cpu_and_name_their_data_dependent_ops() -> None:
    # Built from spec strings: no backbone weights are downloaded (weights_backbone=None).
    for spec in ("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
                 "torchvision:ssdlite320_mobilenet_v3_large"):
        result = archstat.analyze(spec, input_shape=(3, 160, 160), batch=1)
        ops = {op for op, _ in result.data_dependent}
        assert result.executed and result.settings()["execution"] == "cpu"
        assert {"nonzero", "nms"} & ops, ops
        with pytest.raises(archstat.ArchstatError, match="execute='auto'"):
            archstat.analyze(spec, input_shape=(3, 160, 160), execute="never")


def test_builder_options_reach_hub_specs() -> None:
    import torchvision

    ten = archstat.analyze("torchvision:resnet18", num_classes=10)
    model = torchvision.models.resnet18(num_classes=10)
    assert ten.totals["params"] == sum(p.numel() for p in model.parameters())
    tiny = archstat.analyze("timm:resnet18", num_classes=7)
    assert tiny.totals["params"] == sum(
        p.numel() for p in timm.create_model("resnet18", num_classes=7).parameters())


def test_segmentation_models_trace_exactly() -> None:
    import torchvision

    result = archstat.analyze("torchvision:deeplabv3_resnet50", input_shape=(3, 64, 64))
    model = torchvision.models.get_model("deeplabv3_resnet50", weights=None,
                                         weights_backbone=None)
    total = sum(p.numel() for p in model.parameters())
    assert total == 39_638_869  # torchvision's documented figure (aux classifier included)
    assert result.totals["params"] + result.totals["params_unused"] == total
    assert not result.executed


#: The subset whose memory is measured for real (issue 10, section 4): conv nets, a ViT,
#: a Swin, transformers' BERT and GPT-2, and the attention, recurrent and encoder blocks.
MEMORY_SUBSET = (
    "torchvision:resnet18", "torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0",
    "torchvision:convnext_tiny", "torchvision:vit_b_16", "torchvision:swin_t",
    "timm:vit_tiny_patch16_224", "transformers:bert", "transformers:gpt2",
    "block:lstm", "block:gru", "block:mha_fast_path", "block:sdpa_attention",
    "block:transformer_encoder",
)


def _memory_cases() -> list:
    from .blocks import BLOCKS

    cases = {c.id: c for c in [*torchvision_cases(), *timm_cases(), *transformers_cases(),
                               *BLOCKS]}
    return [cases[name] for name in MEMORY_SUBSET]


@pytest.mark.parametrize("case", _memory_cases(), ids=lambda c: c.id)
def test_memory_estimates_against_real_cpu_runs(case) -> None:
    """The tensor-level peak is exact against a watch of a real CPU run (one that sees
    inside fused kernels); the allocator-level one equals the profiler's peak, or names
    the ops it does not model."""
    import torch

    from archstat.realrun import measure_peaks

    torch.manual_seed(0)
    model = case.build().eval()
    inputs = case.inputs()
    if isinstance(inputs, dict):
        args, kwargs = (), inputs
    elif isinstance(inputs, torch.Tensor):
        args, kwargs = (inputs,), {}
    else:
        args, kwargs = tuple(inputs), {}
    report = archstat.estimate_memory(model, inputs=inputs, allocator=True)
    estimate = report.estimates[0]
    measured = measure_peaks(model, args, kwargs)
    assert estimate.peak_activation_bytes == measured.tensor_peak_bytes
    assert measured.allocator_peak_bytes >= measured.tensor_peak_bytes
    if not estimate.allocator_unmodelled:  # else it names what it leaves out
        assert estimate.allocator_peak_bytes == measured.allocator_peak_bytes
