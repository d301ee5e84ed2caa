"""The analyzer on models it did not write: attribution of functional ops, shared
modules, several inputs, tuple/dict outputs, in-place ops, buffers, and the promise
that a user's module is left unchanged and never run on real tensors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import archstat
from archstat.errors import ArchstatError
from archstat.render import render


class TwoTower(nn.Module):
    """Two inputs, a shared (twice-called) layer, a buffer, in-place and functional ops,
    and a dict output."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(8, 8)
        self.head = nn.Linear(16, 3)
        self.register_buffer("scale", torch.ones(8))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.shared(a) * self.scale
        y = self.shared(b)
        y.relu_()
        z = torch.cat([x, y], dim=1)
        return {"logits": self.head(z), "features": z}


def test_multiple_inputs_shared_module_dict_output() -> None:
    result = archstat.analyze(TwoTower(), input_shape=[(8,), (8,)], batch=5)
    layers = result.layers
    assert layers["name"].tolist() == ["shared", "", "shared", "", "head"]
    # the shared layer's parameters are counted once, at its first call
    assert layers["params"].tolist() == [72, 0, 0, 0, 16 * 3 + 3]
    assert result.totals["params"] == sum(p.numel() for p in TwoTower().parameters())
    assert layers["flops"].tolist() == [5 * 8 * 8, 0, 5 * 8 * 8, 0, 5 * 16 * 3]
    # the functional ops of the root (mul by the buffer, relu_, cat) are attributed to it
    assert layers["ops"].tolist()[1] == "mul"
    assert layers["ops"].tolist()[3] == "relu_+cat"
    assert layers["output_shape"].tolist()[3] == (5, 16)
    assert layers["activation_bytes"].tolist()[4] == 5 * 3 * 4
    assert result.input_shape == [(8,), (8,)]


def test_user_module_is_unchanged_and_stays_real() -> None:
    model = TwoTower().train()
    model.head.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    archstat.analyze(model, input_shape=[(8,), (8,)])
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert after[key].device.type == "cpu"
        assert torch.equal(value, after[key]), key
    assert model.training and not model.head.training and model.shared.training
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_example_inputs_are_used_by_shape_only() -> None:
    a = torch.randn(3, 8)
    result = archstat.analyze(TwoTower(), inputs=(a, a))
    assert result.batch == 3 and result.totals["flops"] == 3 * (8 * 8 * 2 + 16 * 3)


def test_residual_add_and_flatten_are_attributed_to_the_enclosing_module() -> None:
    result = archstat.analyze("resnet18")
    layers = result.layers
    block = layers[layers["name"] == "layer1.0"]
    assert block["ops"].tolist() == ["add_"]
    assert block["output_shape"].tolist() == [(1, 64, 56, 56)]
    root = layers[layers["name"] == ""]
    assert root["ops"].tolist() == ["view"]  # torch.flatten(x, 1) in ResNet.forward
    # the one ReLU module of a block runs twice: two records, in execution order
    assert (layers["name"] == "layer1.0.relu").sum() == 2


def test_depth_aggregation_sums_and_keeps_order() -> None:
    full = archstat.analyze("resnet50")
    top = archstat.analyze("resnet50", depth=1)
    assert top.layers["name"].tolist() == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
        "avgpool", "", "fc",
    ]
    assert top.layers.set_index("name").loc["layer3", "type"] == "Sequential"
    for key in ("params", "flops", "activation_bytes"):
        assert top.totals[key] == full.totals[key]
    layer1 = top.layers.set_index("name").loc["layer1"]
    assert layer1["input_shape"] == (1, 64, 56, 56)
    assert layer1["output_shape"] == (1, 256, 56, 56)
    assert archstat.analyze("resnet50", depth=0).layers.shape[0] == 1


def test_batch_and_dtype_scale_activations_not_params() -> None:
    one = archstat.analyze("alexnet")
    eight = archstat.analyze("alexnet", batch=8, dtype="float16")
    assert eight.totals["params"] == one.totals["params"]
    assert eight.totals["flops"] == 8 * one.totals["flops"]
    # float activations halve in float16; the three max pools' int64 indices do not
    # (AlexNet at 227: 64x27x27, 192x13x13, 256x6x6)
    indices = 8 * (64 * 27 * 27 + 192 * 13 * 13 + 256 * 6 * 6)
    assert eight.totals["activation_bytes"] == 8 * ((one.totals["activation_bytes"] - indices) // 2
                                                    + indices)


def test_large_inputs_trace_on_meta_without_memory() -> None:
    # 64 x 3 x 2048 x 2048 float32 would need 3 GiB for the input alone
    result = archstat.analyze("vgg16", input_shape=(3, 2048, 2048), batch=64)
    assert result.layers["activation_bytes"].iloc[0] == 64 * 64 * 2048 * 2048 * 4


def test_json_and_csv_are_deterministic_and_shaped() -> None:
    first = archstat.analyze("googlenet")
    second = archstat.analyze("googlenet")
    assert render(first, "csv") == render(second, "csv")
    assert render(first, "json") == render(second, "json")
    data = json.loads(render(first, "json"))
    assert list(data)[:8] == ["model", "input_shape", "batch", "convention", "dtype", "inputs",
                              "execution", "totals"]
    assert data["inputs"] == [{"name": None, "shape": [3, 224, 224], "dtype": "float32"}]
    assert data["execution"] == "meta"
    assert data["input_shape"] == [3, 224, 224]
    assert set(data["totals"]) == {"params", "params_unused", "flops", "activation_bytes",
                                   "peak_activation_bytes", "layers"}
    assert data["totals"]["params_unused"] == sum(u["params"] for u in data["unused_params"])
    assert data["totals"]["layers"] == len(data["layers"])
    header = render(first, "csv").splitlines()[0].split(",")
    assert header[:7] == ["name", "type", "input_shape", "output_shape", "params",
                          "activation_bytes", "flops"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "vgg61"}, r"unknown model 'vgg61' \(did you mean: .*vgg16"),
        ({"model": "alexnet", "input_shape": "3x22a"}, "malformed input shape"),
        ({"model": "alexnet", "input_shape": "3x0x224"}, "positive"),
        ({"model": "no_such_pkg.mod:build"}, "cannot import 'no_such_pkg.mod'"),
        ({"model": "alexnet", "dtype": "float33"}, "unknown dtype"),
        ({"model": "alexnet", "batch": 0}, "batch must be a positive integer"),
        ({"model": "lenet5", "input_shape": "99999999x99999999x99999999"}, "is too large"),
    ],
)
def test_user_errors(kwargs, message) -> None:
    with pytest.raises(ArchstatError, match=message):
        archstat.analyze(**kwargs)


def test_too_small_input_names_the_layer_and_shape() -> None:
    with pytest.raises(ArchstatError) as info:
        archstat.analyze("vgg16", input_shape=(3, 16, 16))
    message = str(info.value)
    assert "features.30 (MaxPool2d)" in message and "1x512x1x1" in message
    assert "\n" not in message


def test_spec_string_builds_a_users_model(tmp_path, monkeypatch) -> None:
    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\n"
        "def tiny():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = archstat.analyze("mymodels:tiny", input_shape=(3, 10, 10))
    assert result.model == "mymodels:tiny"
    assert result.totals["flops"] == 4 * 8 * 8 * 27


def test_trace_records_data_flow_and_aliasing() -> None:
    t = archstat.analyze("resnet18").trace
    records = {r.name: r for r in t.records}
    add = t.events[records["layer1.0"].events[0]]
    # the residual add reads bn2's output and the block's input (the maxpool's output)
    assert set(add.inputs) == {records["layer1.0.bn2"].outputs[0], records["maxpool"].outputs[0]}
    # relu_ is in place: same tensor in and out
    relu = t.events[records["relu"].events[0]]
    assert relu.inputs == relu.outputs
    roles = {t.tensors[i].role for i in t.events[0].inputs}
    assert roles == {"input", "param"}
    # a view shares its base's storage
    flatten = t.events[records[""].events[0]]
    base, view = t.tensors[flatten.inputs[0]], t.tensors[flatten.outputs[0]]
    assert base.storage == view.storage and base.nbytes == view.nbytes == 512 * 4


@pytest.mark.parametrize("spec", ["torchvision:resnet50", "timm:resnet50"])
def test_hub_specs_say_which_package_is_missing(spec) -> None:
    import importlib.util

    package = spec.split(":")[0]
    if importlib.util.find_spec(package) is not None:
        result = archstat.analyze(spec)  # installed here: it must simply work
        assert result.totals["params"] > 0
    else:
        with pytest.raises(ArchstatError, match=f"needs the {package} package"):
            archstat.analyze(spec)


def test_a_trace_leaves_no_global_module_hook_behind() -> None:
    """The tracer's hooks are global while it runs; after a trace, a failed one and a
    training one, torch sees none (else torch.compile warns on every later call)."""
    from torch.nn.modules import module as torch_module

    class Fails(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("boom")

    archstat.analyze("lenet5")
    archstat.analyze(nn.Linear(4, 2), (4,), train=True)
    with pytest.raises(ArchstatError):
        archstat.analyze(Fails(), (4,))
    assert not torch_module._has_any_global_hook()


def test_an_analysis_pauses_the_collector_and_restores_it() -> None:
    """analyze turns the cyclic collector off while it builds and traces (speed), and
    leaves it as it found it, on or off, even when the analysis fails."""
    import gc

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(gc.isenabled())
            return x * 2

    assert gc.isenabled()
    archstat.analyze(Probe(), input_shape=(4,))
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        archstat.analyze(Probe(), input_shape=(4,))
        assert not gc.isenabled()
    finally:
        gc.enable()

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("no")

    with pytest.raises(archstat.ArchstatError):
        archstat.analyze(Broken(), input_shape=(4,))
    assert gc.isenabled()
