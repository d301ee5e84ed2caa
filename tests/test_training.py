"""Training FLOPs (issue 15): the backward, frozen layers, checkpointing's recomputation and
the optimizer step, against counts archstat does not make.

Two independent oracles: torch's FlopCounterMode over a real CPU forward and
``.sum().backward()`` (the loss archstat backpropagates: the sum of the outputs), run in
the same test; and hand computation from the layer shapes (a conv's or a linear layer's
input gradient and weight gradient each cost its forward's multiply-adds) and from torch's
own optimizer source. ``flops`` is FlopCounterMode's unit; ``macs`` is half of it.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.realrun import smallest_input, zoo_model
from archstat.zoo import get_model, list_models

TRAIN_COLUMNS = ("flops", "backward_flops", "recompute_flops")
# Every zoo model on real CPU tensors is `slow` (pytest -m "not slow" skips it); resnet18
# stays in the development loop.
ZOO = [n if n == "resnet18" else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The real runs on one thread: counts do not depend on it, and on a shared machine
    two OpenMP threads contending with another process make a small backward 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class RealRun:
    """FlopCounterMode's counts (FLOPs) over one real forward and ``out.sum().backward()``."""

    forward: int
    backward: int  # the backward pass, checkpointing's recomputation included
    forward_by_module: dict[str, int]  # keys "ClassName.child.grandchild"
    by_module: dict[str, int]  # forward + backward (+ recomputation)


def _sampling_flops(*args, out_shape, **kwargs) -> int:
    """grid_sampler_2d, bilinear: 4 multiply-adds (8 FLOPs) per output element."""
    return 8 * math.prod(out_shape)


def _sampling_backward_flops(grad, x, grid, mode, padding, corners, mask, **kwargs) -> int:
    """Its backward: the input's gradient scatters each output element's gradient to 4
    taps (8 FLOPs); the grid's needs the 4 taps against both coordinates (16 FLOPs)."""
    return math.prod(grad) * (8 * mask[0] + 16 * mask[1])


#: FlopCounterMode has no formula for grid sampling (deformable_resnet50's offsets);
#: archstat counts its taps (docs/conventions.md): the oracle gets the same formulas.
_SAMPLING = {torch.ops.aten.grid_sampler_2d: _sampling_flops,
             torch.ops.aten.grid_sampler_2d_backward: _sampling_backward_flops}


def real_run(model: nn.Module, x: torch.Tensor) -> RealRun:
    with FlopCounterMode(display=False, custom_mapping=_SAMPLING) as counter:
        out = model(x)
        forward = counter.get_total_flops()
        forward_by_module = _module_totals(counter)
        out.sum().backward()
        total = counter.get_total_flops()
    return RealRun(forward, total - forward, forward_by_module, _module_totals(counter))


def _module_totals(counter: FlopCounterMode) -> dict[str, int]:
    return {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}


def by_top_module(layers, columns=TRAIN_COLUMNS) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in layers.to_dict("records"):
        top = row["name"].split(".")[0]
        out[top] = out.get(top, 0) + sum(int(row[c]) for c in columns)
    return out


def freeze(model: nn.Module, prefixes: str) -> nn.Module:
    """``requires_grad_(False)`` on the parameters under the comma-separated prefixes."""
    for name, p in model.named_parameters():
        if any(name == f or name.startswith(f + ".") for f in prefixes.split(",")):
            p.requires_grad_(False)
    return model


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- 1. the issue's reference figures: resnet18, batch 2, 224x224 -------------------------

RESNET18_FORWARD_MACS = 3_628_146_688
RESNET18_BACKWARD_MACS = 7_020_265_472
RESNET18_FROZEN = "conv1,bn1,layer1,layer2,layer3"
RESNET18_FROZEN_BACKWARD_MACS = 1_517_764_608


@pytest.fixture(scope="module")
def resnet18_real() -> tuple[RealRun, RealRun]:
    """The issue's measurement, made again: FlopCounterMode over a real CPU forward and
    backward of the zoo's resnet18 in training mode, all trainable, then frozen."""
    torch.manual_seed(0)
    model = get_model("resnet18").train()
    x = torch.randn(2, 3, 224, 224)
    trainable = real_run(model, x)
    frozen = real_run(freeze(model, RESNET18_FROZEN), x)
    return trainable, frozen


def test_flop_counter_mode_gives_the_issues_resnet18_figures(resnet18_real) -> None:
    trainable, frozen = resnet18_real
    assert trainable.forward == 2 * RESNET18_FORWARD_MACS
    assert trainable.backward == 2 * RESNET18_BACKWARD_MACS
    assert frozen.forward == 2 * RESNET18_FORWARD_MACS
    assert frozen.backward == 2 * RESNET18_FROZEN_BACKWARD_MACS


def test_resnet18_reference_figures_from_the_api(resnet18_real) -> None:
    trainable, frozen = resnet18_real
    totals = archstat.analyze("resnet18", batch=2, train=True).totals
    assert totals["flops"] == trainable.forward // 2 == RESNET18_FORWARD_MACS
    assert totals["backward_flops"] == trainable.backward // 2 == RESNET18_BACKWARD_MACS
    assert totals["train_step_flops"] == (trainable.forward + trainable.backward) // 2
    totals = archstat.analyze("resnet18", batch=2, train=True, freeze=RESNET18_FROZEN).totals
    assert totals["flops"] == RESNET18_FORWARD_MACS
    assert totals["backward_flops"] == frozen.backward // 2 == RESNET18_FROZEN_BACKWARD_MACS
    # the same freeze as a list of prefixes
    listed = archstat.analyze("resnet18", batch=2, train=True,
                              freeze=RESNET18_FROZEN.split(",")).totals
    assert listed["backward_flops"] == RESNET18_FROZEN_BACKWARD_MACS


def test_resnet18_reference_figures_from_the_cli(resnet18_real, capsys) -> None:
    trainable, frozen = resnet18_real
    code, out, err = run(capsys, "analyze", "resnet18", "--train", "-b", "2", "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"]["flops"] == trainable.forward // 2 == RESNET18_FORWARD_MACS
    assert data["totals"]["backward_flops"] == trainable.backward // 2 == RESNET18_BACKWARD_MACS
    conv1 = next(layer for layer in data["layers"] if layer["name"] == "conv1")
    # not 2x the forward: conv1 reads the image, which needs no gradient
    assert (conv1["backward_input_flops"], conv1["backward_weight_flops"]) == (0, conv1["flops"])
    code, out, err = run(capsys, "analyze", "resnet18", "--train", "-b", "2", "-f", "json",
                         "--freeze", RESNET18_FROZEN)
    assert code == 0, err
    totals = json.loads(out)["totals"]
    assert totals["backward_flops"] == frozen.backward // 2 == RESNET18_FROZEN_BACKWARD_MACS


def test_cli_table_says_training_and_sums_the_step(capsys) -> None:
    code, out, _ = run(capsys, "analyze", "lenet5", "--train", "-f", "markdown")
    totals = archstat.analyze("lenet5", train=True).totals
    assert code == 0 and "training" in out and "bwd input" in out and "bwd weight" in out
    assert "recompute" not in out  # shown only when checkpointing recomputes something
    assert f"training step: {_human(totals['train_step_flops'])} macs" in out


def _human(n: int) -> str:
    from archstat.render.text import human

    return human(n)


# --- 2. per top-level module against FlopCounterMode, every zoo model ---------------------

@dataclass
class ZooRun:
    shape: tuple[int, ...]
    cls: str  # the model's class name: FlopCounterMode's module keys start with it
    children: list[str]
    first_conv: str
    real: RealRun


@functools.cache
def zoo_real(name: str) -> ZooRun:
    """A zoo model at its smallest input, batch 2, in training mode, run for real once
    (the model itself is not kept: VGG's weights are half a gigabyte)."""
    shape = smallest_input(name, 2)
    model = zoo_model(name).train()  # zero weights: counts depend on shapes only
    torch.manual_seed(0)
    real = real_run(model, torch.randn(2, *shape))
    first = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    return ZooRun(shape, type(model).__name__, [n for n, _ in model.named_children()], first,
                  real)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_forward_and_backward_per_top_module_equal_flop_counter_mode(name: str) -> None:
    run_ = zoo_real(name)
    real = run_.real
    result = archstat.analyze(name, input_shape=run_.shape, batch=2, train=True,
                              convention="flops")
    totals = result.totals
    assert (totals["flops"], totals["backward_flops"]) == (real.forward, real.backward)
    assert totals["recompute_flops"] == 0
    ours = by_top_module(result.layers)
    for child in run_.children:
        assert ours.get(child, 0) == real.by_module.get(f"{run_.cls}.{child}", 0), child


def _grouped_extra(name: str, shape: tuple[int, ...]) -> int:
    """What torch's conv_backward_flop adds to a grouped convolution's weight gradient:
    it counts the gradient as if the convolution were ungrouped, groups times its
    multiply-adds (FLOPs, 2 per multiply-add); archstat's flops and macs follow torch's
    registry (issue 15), documented in docs/conventions.md."""
    with torch.device("meta"):
        model = get_model(name)
    extra = 0

    def hook(module, args, output):
        nonlocal extra
        if module.groups > 1:
            forward = 2 * output.numel() * module.weight[0].numel()
            extra += (module.groups - 1) * forward

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    model(torch.empty(2, *shape, device="meta"))
    for handle in handles:
        handle.remove()
    return extra


#: Models with grouped (incl. depthwise) convolutions, whose weight gradients torch's
#: formula counts groups times (see _grouped_extra).
GROUPED = {"alexnet2012", *(f"efficientnet_b{i}" for i in range(8))}


# deformable_resnet50's grid sampling costs more backward than forward: its split is
# checked by hand in tests/test_zoo_families.py.
@pytest.mark.parametrize("name", [p for p, n in zip(ZOO, list_models(), strict=True)
                                  if n != "deformable_resnet50"])
def test_zoo_backward_split_by_hand(name: str) -> None:
    """Every weight is trainable: each conv/linear layer's weight gradient costs its
    forward's multiply-adds, and its input gradient too, except the first conv's: the
    image needs no gradient. (Norms, pools and activations are 0 under flops.) A grouped
    convolution's weight gradient is counted as torch's formula counts it (see
    _grouped_extra): alexnet2012 and the EfficientNets (depthwise) have some."""
    run_ = zoo_real(name)
    real = run_.real
    totals = archstat.analyze(name, input_shape=run_.shape, batch=2, train=True,
                              convention="flops").totals
    assert totals["backward_input_flops"] == real.forward - real.forward_by_module[
        f"{run_.cls}.{run_.first_conv}"]
    extra = _grouped_extra(name, run_.shape)
    assert (extra > 0) == (name in GROUPED)
    assert totals["backward_weight_flops"] == real.forward + extra


# (model, freeze, modules with no weight gradient, modules whose input needs no gradient),
# the last two worked out by hand from where the first trainable parameter sits.
FROZEN_CASES = [
    # a frozen middle: layer2 still passes gradients down to layer1, without weight gradients
    ("resnet18", "layer2", ["layer2"], ["conv1"]),
    # a frozen prefix: below layer2, nothing needs a gradient, so layer2's first convs
    # (conv1 and the shortcut's) read an input that needs none
    pytest.param("resnet50", "conv1,bn1,layer1", ["conv1", "layer1"],
                 ["conv1", "layer1", "layer2.0.conv1", "layer2.0.downsample.0"],
                 marks=pytest.mark.slow),
    # frozen convs with a trainable batch norm between them: features.5 (bn) needs the
    # gradient of its output only, so features.4 computes none; features.8 reads bn5's
    # output, which needs a gradient for bn5's weights
    pytest.param("vgg11_bn", "features.0,features.1,features.4", ["features.0", "features.4"],
                 ["features.0", "features.4"], marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "prefixes", "no_weight", "no_input"), FROZEN_CASES)
def test_frozen_prefixes_equal_flop_counter_mode(name, prefixes, no_weight, no_input) -> None:
    shape = smallest_input(name, 2)
    model = freeze(zoo_model(name).train(), prefixes)
    real = real_run(model, torch.randn(2, *shape))
    result = archstat.analyze(name, input_shape=shape, batch=2, train=True, convention="flops",
                              freeze=prefixes)
    totals = result.totals
    assert (totals["flops"], totals["backward_flops"]) == (real.forward, real.backward)
    ours = by_top_module(result.layers)
    cls = type(model).__name__
    for child, _ in model.named_children():
        assert ours.get(child, 0) == real.by_module.get(f"{cls}.{child}", 0), child

    def forward_of(modules: list[str]) -> int:
        return sum(real.forward_by_module[f"{cls}.{m}"] for m in modules)

    assert totals["backward_weight_flops"] == real.forward - forward_of(no_weight)
    assert totals["backward_input_flops"] == real.forward - forward_of(no_input)
    # the model given is not changed by freeze=
    assert all(p.requires_grad for p in get_model(name).parameters())


class Tower(nn.Module):
    """conv1 (frozen) -> conv2 (weight frozen, bias trainable) -> conv3 -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)
        self.conv1.requires_grad_(False)
        self.conv2.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))  # N x 8 x 8 x 8
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(x.flatten(1))  # N x 10


def test_requires_grad_false_in_a_users_module_is_honoured() -> None:
    n = 2
    conv = n * 8 * 8 * 8 * 3 * 3 * 8  # conv2 and conv3 MACs (conv1: 3 input channels)
    fc = n * 512 * 10
    model = Tower().train()
    layers = archstat.analyze(model, (3, 8, 8), batch=n, train=True).layers
    assert all(p.grad is None for p in model.parameters())  # the model is not changed
    real = real_run(model, torch.randn(n, 3, 8, 8))
    # conv1: frozen and first, nothing. conv2: its weight is frozen and its input (conv1's
    # output) needs no gradient; its bias's gradient is a sum, 0 MACs. conv3 and fc: both.
    assert by_module(layers, "backward_input_flops") == {"conv1": 0, "conv2": 0,
                                                         "conv3": conv, "fc": fc}
    assert by_module(layers, "backward_weight_flops") == {"conv1": 0, "conv2": 0,
                                                          "conv3": conv, "fc": fc}
    assert 2 * sum(layers["backward_flops"]) == real.backward == 2 * (2 * conv + 2 * fc)
    # freeze= adds to what the module already freezes
    frozen = archstat.analyze(model, (3, 8, 8), batch=n, train=True, freeze="conv3").layers
    assert by_module(frozen, "backward_weight_flops") == {"conv1": 0, "conv2": 0, "conv3": 0,
                                                          "fc": fc}


def by_module(layers, column: str) -> dict[str, int]:
    """``column`` per module record; the root's own stretches (relu, flatten) count 0 here
    and are left out."""
    rows = layers[layers["name"] != ""]
    assert sum(layers[column]) == sum(rows[column])
    return {name: int(v) for name, v in zip(rows["name"], rows[column], strict=True)}


# --- checkpointing's recomputation ---------------------------------------------------------

class Checkpointed(nn.Module):
    """stem -> block (checkpointed, or not when ``reentrant`` is None) -> head."""

    def __init__(self, reentrant: bool | None) -> None:
        super().__init__()
        self.reentrant = reentrant
        self.stem = nn.Linear(16, 32)
        self.block = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # N x 32, needs a gradient: the checkpoint's input
        if self.reentrant is None:
            x = self.block(x)
        else:
            x = checkpoint(self.block, x, use_reentrant=self.reentrant)
        return self.head(x)  # N x 4


# FLOPs by hand at batch 2 (2 per multiply-add, biases not counted)
N = 2
STEM, BLOCK0, BLOCK2, HEAD = 2 * N * 16 * 32, 2 * N * 32 * 64, 2 * N * 64 * 32, 2 * N * 32 * 4
FORWARD = STEM + BLOCK0 + BLOCK2 + HEAD
# the stem's input is the data (no input gradient); every other layer both gradients
BACKWARD = STEM + 2 * (BLOCK0 + BLOCK2 + HEAD)


def _checkpointed(reentrant: bool | None, device: str) -> nn.Module:
    with torch.device(device):
        return Checkpointed(reentrant).train()


def _real_total(reentrant: bool | None) -> int:
    torch.manual_seed(0)
    real = real_run(Checkpointed(reentrant).train(), torch.randn(N, 16))
    return real.forward + real.backward


@pytest.mark.parametrize(("reentrant", "early_stop", "recompute"), [
    # Non-reentrant, early stop (torch's default): recomputation stops once the last tensor
    # the backward needs is saved again; block.2's addmm saves its inputs before its
    # kernel runs, so only block.0's matmul runs again.
    (False, True, BLOCK0),
    (False, False, BLOCK0 + BLOCK2),  # without early stop: the whole block
    (True, True, BLOCK0 + BLOCK2),  # reentrant: the whole block
])
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_checkpoint_recompute_equals_flop_counter_mode_and_hand_count(
        reentrant, early_stop, recompute, device) -> None:
    with set_checkpoint_early_stop(early_stop), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reentrant checkpointing's deprecation warning
        plain = _real_total(None)
        real = _real_total(reentrant)
        model = _checkpointed(reentrant, device)
        result = archstat.analyze(model, (16,), batch=N, train=True, convention="flops")
    assert plain == FORWARD + BACKWARD
    assert real - plain == recompute  # what FlopCounterMode sees recomputed
    totals = result.totals
    assert (totals["flops"], totals["backward_flops"]) == (FORWARD, BACKWARD)
    assert totals["recompute_flops"] == recompute
    assert totals["train_step_flops"] == real
    layers = result.layers
    assert by_module(layers, "recompute_flops")["block.0"] == BLOCK0
    assert by_module(layers, "backward_input_flops") == {
        "stem": 0, "block.0": BLOCK0, "block.1": 0, "block.2": BLOCK2, "head": HEAD}
    assert by_module(layers, "backward_weight_flops") == {
        "stem": STEM, "block.0": BLOCK0, "block.1": 0, "block.2": BLOCK2, "head": HEAD}
    assert all(p.grad is None for p in model.parameters())  # the model is not changed


def test_cli_shows_recompute_column_when_checkpointing_recomputes(tmp_path, monkeypatch,
                                                                  capsys) -> None:
    (tmp_path / "ckptnet.py").write_text(
        "from torch import nn\n"
        "from torch.utils.checkpoint import checkpoint\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.stem = nn.Linear(16, 32)\n"
        "        self.block = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))\n\n"
        "    def forward(self, x):\n"
        "        return checkpoint(self.block, self.stem(x), use_reentrant=False)\n\n\n"
        "def net():\n"
        "    return Net()\n")  # a model named by string is built on meta
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run(capsys, "analyze", "ckptnet:net", "-i", "16", "-b", "2", "--train",
                         "-c", "flops", "-f", "markdown")
    assert code == 0, err
    assert "recompute" in out
    assert f"recompute {_human(BLOCK0)}" in out


# --- 3. hand counts: a conv's and a linear layer's input and weight gradients --------------

def test_conv_input_and_weight_gradients_by_hand() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # N x 8 x 8 x 8: reads the data
        nn.Conv2d(8, 16, 3, stride=2, padding=1),  # N x 16 x 4 x 4
    )
    n = 2
    first = n * 8 * 8 * 8 * (3 * 3 * 3)
    strided = n * 16 * 4 * 4 * (8 * 3 * 3)
    layers = archstat.analyze(model, (3, 8, 8), batch=n, train=True).layers
    assert layers["flops"].tolist() == [first, strided]
    # input gradient (a transposed convolution of the output's gradient): the forward's
    # multiply-adds; the first layer's input is the data, which needs none
    assert layers["backward_input_flops"].tolist() == [0, strided]
    # weight gradient (output gradient against the input, per weight): the forward's too
    assert layers["backward_weight_flops"].tolist() == [first, strided]
    assert layers["backward_flops"].tolist() == [first, 2 * strided]


@pytest.mark.parametrize("groups", [2, pytest.param(16, id="depthwise")])
def test_grouped_conv_gradients_by_hand(groups: int) -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=groups))
    n = 2
    grouped = n * 16 * 8 * 8 * (16 // groups * 3 * 3)  # N x 16 x 8 x 8, 16/groups inputs each
    layers = archstat.analyze(model, (3, 8, 8), batch=n, train=True).layers
    assert layers["flops"].tolist()[1] == grouped
    assert layers["backward_input_flops"].tolist()[1] == grouped
    # torch's conv_backward_flop counts the weight gradient as if ungrouped (groups x the
    # multiply-adds); macs follow torch's registry, as the issue asks (docs/conventions.md)
    assert layers["backward_weight_flops"].tolist()[1] == groups * grouped


def test_linear_input_and_weight_gradients_by_hand() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 5))
    n, positions = 4, 6  # a 3-d input: N x 6 x 10
    tokens = n * positions
    first, second = tokens * 10 * 20, tokens * 20 * 5
    result = archstat.analyze(model, (positions, 10), batch=n, train=True)
    layers = result.layers
    assert layers["flops"].tolist() == [first, second]
    assert layers["backward_input_flops"].tolist() == [0, second]  # grad_out @ W
    assert layers["backward_weight_flops"].tolist() == [first, second]  # grad_out^T @ x
    # under full, the bias gradient (a sum of the output gradient over the tokens) is
    # weight-gradient work beside the matmul's 2 per multiply-add
    full = archstat.analyze(model, (positions, 10), batch=n, train=True,
                            convention="full").layers
    assert full["backward_input_flops"].tolist() == [0, 2 * second]
    assert full["backward_weight_flops"].tolist() == [2 * first + tokens * 20,
                                                      2 * second + tokens * 5]


# --- 4. the optimizer step --------------------------------------------------------------------

def _optimizer_ops_by_hand(optimizer: str, elements: int, tensors: int) -> int:
    """One steady-state step of torch's foreach implementation (torch/optim/sgd.py
    ``_multi_tensor_sgd``, adam.py ``_multi_tensor_adam``; default hyperparameters, SGD's
    weight decay 0, AdamW's 0.01), under ``full``: one operation per element of each
    ``_foreach_`` op's (first) tensor list, N = trainable parameter elements.

    * sgd: ``_foreach_add_(params, grads, alpha=-lr)``: N.
    * sgd-momentum, after the first step made the buffers: ``_foreach_mul_(bufs,
      momentum)``, ``_foreach_add_(bufs, grads)``, ``_foreach_add_(params, bufs,
      alpha=-lr)``: 3N.
    * adam: ``_foreach_add_(state_steps, 1)`` (one scalar per parameter tensor), then
      ``_foreach_lerp_`` (exp_avg), ``_foreach_mul_`` and ``_foreach_addcmul_``
      (exp_avg_sq), ``_foreach_sqrt``, ``_foreach_div_`` (bias correction),
      ``_foreach_add_`` (eps), ``_foreach_addcdiv_`` (the update): 7N + tensors. The bias
      corrections are Python floats from ``step.item()``: no tensor work.
    * adamw: Adam with decoupled weight decay, ``_foreach_mul_(params, 1 - lr * wd)``
      first: 8N + tensors.
    """
    return {"sgd": elements, "sgd-momentum": 3 * elements, "adam": 7 * elements + tensors,
            "adamw": 8 * elements + tensors}[optimizer]


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam", "adamw"])
def test_optimizer_step_by_hand_under_full_and_zero_under_macs(optimizer: str) -> None:
    params = list(get_model("lenet5").parameters())
    elements, tensors = sum(p.numel() for p in params), len(params)
    assert (elements, tensors) == (61_706, 10)
    full = archstat.analyze("lenet5", train=True, optimizer=optimizer, convention="full")
    expected = _optimizer_ops_by_hand(optimizer, elements, tensors)
    totals = full.totals
    assert totals["optimizer_flops"] == expected
    assert totals["train_step_flops"] == (totals["flops"] + totals["backward_flops"]
                                          + totals["recompute_flops"] + expected)
    # a frozen feature extractor: only the classifier's parameters are stepped
    frozen = archstat.analyze("lenet5", train=True, optimizer=optimizer, convention="full",
                              freeze="features")
    head = [p for name, p in get_model("lenet5").named_parameters()
            if name.startswith("classifier.")]
    assert frozen.totals["optimizer_flops"] == _optimizer_ops_by_hand(
        optimizer, sum(p.numel() for p in head), len(head))
    for convention in ("macs", "flops", "fvcore", "lecture"):  # no elementwise work counted
        result = archstat.analyze("lenet5", train=True, optimizer=optimizer,
                                  convention=convention)
        assert result.totals["optimizer_flops"] == 0, convention


def test_cli_says_the_optimizer_step_is_zero_under_macs(capsys) -> None:
    code, out, _ = run(capsys, "analyze", "lenet5", "--train", "--optimizer", "adam",
                       "-f", "markdown")
    assert code == 0
    assert "adam step 0 (macs counts no elementwise work)" in out
    code, out, _ = run(capsys, "analyze", "lenet5", "--train", "--optimizer", "adam",
                       "-c", "full", "-f", "markdown")
    assert code == 0
    assert f"adam step {_human(7 * 61_706 + 10)}" in out and "counts no" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["analyze", "lenet5", "--optimizer", "adam"], "--optimizer needs --train"),
    (["analyze", "lenet5", "--freeze", "features"], "--freeze needs --train"),
    (["analyze", "lenet5", "--train", "--freeze", "nosuch"],
     "no parameter under 'nosuch' to freeze"),
    (["analyze", "resnet18", "--train", "--freeze", "layr1"], "(did you mean: layer1"),
    (["analyze", "lenet5", "--train", "--optimizer", "adamx"], "did you mean: adam, adamw"),
])
def test_cli_training_option_errors_are_one_line_and_exit_2(args, message, capsys) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_api_training_option_errors() -> None:
    with pytest.raises(ArchstatError, match="needs train=True"):
        archstat.analyze("lenet5", optimizer="adam")
    with pytest.raises(ArchstatError, match="needs train=True"):
        archstat.analyze("lenet5", freeze="features")
    with pytest.raises(ArchstatError, match="did you mean: layer1"):
        archstat.analyze("resnet18", train=True, freeze="layr1")


# --- 5. the views: compare, budgets, the lecture layout, memory ------------------------------

@pytest.fixture(scope="module")
def lenet_real() -> RealRun:
    torch.manual_seed(0)
    return real_run(get_model("lenet5").train(), torch.randn(1, 1, 32, 32))


def test_compare_train_equals_flop_counter_mode(lenet_real, capsys) -> None:
    torch.manual_seed(0)
    alexnet = real_run(zoo_model("alexnet").train(), torch.randn(1, 3, 227, 227))
    code, out, err = run(capsys, "compare", "lenet5", "alexnet", "--train", "-f", "json")
    assert code == 0, err
    rows = {row["model"]: row for row in json.loads(out)["models"]}
    for name, real in (("lenet5", lenet_real), ("alexnet", alexnet)):
        assert rows[name]["flops"] == real.forward // 2, name
        assert rows[name]["backward_flops"] == real.backward // 2, name
        assert rows[name]["train_step_flops"] == (real.forward + real.backward) // 2, name
    assert rows["alexnet"]["backward_flops_ratio"] == pytest.approx(
        alexnet.backward / lenet_real.backward)
    code, out, _ = run(capsys, "compare", "lenet5", "alexnet", "--train", "-f", "markdown")
    assert code == 0 and "backward (macs)" in out and "fwd+bwd (macs)" in out
    code, out, _ = run(capsys, "compare", "lenet5", "alexnet", "-f", "json")
    assert "backward_flops" not in json.loads(out)["models"][0]  # only with --train


def _budget(tmp_path: Path, limit: int, extra: str = "") -> Path:
    path = tmp_path / "archstat.toml"
    path.write_text(f'[[budget]]\nmodel = "lenet5"\nmax_train_flops = {limit}\n{extra}')
    return path


def test_budget_max_train_flops_passes_at_the_step_and_fails_one_over(lenet_real, tmp_path,
                                                                       capsys) -> None:
    step = (lenet_real.forward + lenet_real.backward) // 2
    code, out, _ = run(capsys, "check", str(_budget(tmp_path, step)), "-f", "json")
    result = json.loads(out)["results"][0]
    assert code == 0 and (result["status"], result["actual"], result["headroom"]) == (
        "pass", step, 0)
    code, out, _ = run(capsys, "check", str(_budget(tmp_path, step - 1)), "-f", "json")
    result = json.loads(out)["results"][0]
    assert code == 1 and (result["status"], result["actual"]) == ("fail", step)
    # in FLOPs, with an optimizer whose step counts 0 there
    path = _budget(tmp_path, lenet_real.forward + lenet_real.backward,
                   'convention = "flops"\noptimizer = "sgd"\n')
    assert run(capsys, "check", str(path))[0] == 0
    path = _budget(tmp_path, step, 'optimizer = "adamx"\n')
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and "did you mean: adam, adamw" in err
    path = tmp_path / "archstat.toml"
    path.write_text('[[budget]]\nmodel = "lenet5"\nmax_flops = 1\noptimizer = "adam"\n')
    code, _, err = run(capsys, "check", str(path))
    assert code == 2 and "an optimizer only counts with max_train_flops" in err


def test_assert_within_budget_max_train_flops(lenet_real) -> None:
    step = (lenet_real.forward + lenet_real.backward) // 2
    archstat.assert_within_budget("lenet5", max_train_flops=step)
    with pytest.raises(AssertionError, match="max_train_flops"):
        archstat.assert_within_budget("lenet5", max_train_flops=step - 1)
    archstat.assert_within_budget("lenet5", max_train_flops=step, optimizer="adam")  # 0 MACs
    with pytest.raises(ArchstatError, match="max_train_flops"):
        archstat.assert_within_budget("lenet5", max_flops="1G", optimizer="adam")


def test_lecture_style_backward_column_totals_the_backward(lenet_real, capsys) -> None:
    code, out, err = run(capsys, "analyze", "lenet5", "--style", "lecture", "--train",
                         "-f", "json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    # the lecture convention: MACs, plus pooling at kernel area per output element; an
    # average pool's backward spreads each output gradient over its 2x2 window again
    pools = 6 * 14 * 14 * 4 + 16 * 5 * 5 * 4
    expected = lenet_real.backward // 2 + pools
    assert round(sum(row["backward_flop_m"] for row in rows) * 1e6) == expected
    assert archstat.analyze("lenet5", train=True, convention="lecture").totals[
        "backward_flops"] == expected
    code, out, _ = run(capsys, "analyze", "lenet5", "--style", "lecture", "--train",
                       "-f", "markdown")
    assert "backward (M, lecture)" in out


def test_memory_train_shows_the_steps_macs(lenet_real, capsys) -> None:
    code, out, err = run(capsys, "memory", "lenet5", "--train", "-f", "json")
    assert code == 0, err
    step = (lenet_real.forward + lenet_real.backward) // 2
    assert json.loads(out)["train_step_macs"] == step
    assert archstat.analyze("lenet5", train=True).totals["train_step_flops"] == step
    code, out, _ = run(capsys, "memory", "lenet5", "--train", "-f", "markdown")
    assert f"{_human(step)} MACs" in out


# --- 6. fvcore counts no backward ---------------------------------------------------------

def test_fvcore_counts_no_backward() -> None:
    """fvcore's FlopCountAnalysis traces the forward with torch.jit.trace and counts the
    ops of that graph: it never sees a backward, so "what fvcore would count" for the
    backward (and for an optimizer step) is nothing. The forward stays fvcore's."""
    shape = (3, 32, 32)
    result = archstat.analyze("resnet18", input_shape=shape, batch=2, train=True,
                              convention="fvcore", optimizer="adam")
    for column in ("backward_flops", "backward_input_flops", "backward_weight_flops",
                   "recompute_flops"):
        assert set(result.layers[column]) == {0}, column
    totals = result.totals
    assert totals["flops"] > 0 and totals["optimizer_flops"] == 0
    assert totals["train_step_flops"] == totals["flops"]
    assert result.unhandled.empty


def test_fvcore_counts_no_recomputation() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = archstat.analyze(_checkpointed(False, "meta"), (16,), batch=N, train=True,
                                  convention="fvcore")
    assert result.totals["flops"] == FORWARD // 2  # fvcore: MACs of the forward
    assert result.totals["recompute_flops"] == 0
    assert result.totals["train_step_flops"] == FORWARD // 2


def test_training_columns_roll_up_with_depth() -> None:
    result = archstat.analyze("resnet18", input_shape=(3, 32, 32), batch=2, train=True)
    rolled = result.at_depth(1).layers
    assert by_top_module(rolled, ["backward_flops"]) == by_top_module(result.layers,
                                                                      ["backward_flops"])
    assert sum(rolled["backward_flops"]) == result.totals["backward_flops"]
