"""Issue 10, item 9: every repro of the issue's problem list that runs on the 2.13 CPU
wheel without torchvision, timm or transformers, as a test (those belong to the
real-world corpus in ``tests/realworld/``).

Each expected figure comes from somewhere archstat is not: arithmetic written out here,
the model's own ``sum(p.numel() ...)``, a real CPU run watched by this file's own
``AllocWatch`` or by ``archstat.realrun``'s storage watch, or torch's ``FlopCounterMode``
on the same real run. Shapes are small so that the file runs in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat.budget.checks import suggest_budgets
from archstat.cli import main
from archstat.units import parse_quantity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

F32 = 4  # bytes per float32 element
I64 = 8  # bytes per int64 element


# -- helpers ---------------------------------------------------------------------------

def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``archstat ARGS``: (exit code, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("archstat: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err


@pytest.fixture
def spec_module(tmp_path, monkeypatch, request):
    """Write a Python module into tmp_path under a fresh name, importable as a spec
    (``NAME:attr``); returns the name. The module is forgotten after the test."""

    def write(source: str) -> str:
        name = f"exactness_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        request.addfinalizer(lambda: sys.modules.pop(name, None))
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    return write


class AllocWatch(TorchDispatchMode):
    """Bytes of new storage the ops of a real run allocate: an op output whose storage
    is not the input's, a weight's or an earlier output's (a view or an in-place result
    shares one) counts once. Outputs are kept alive so that no address is reused."""

    def __init__(self, existing: list[torch.Tensor]) -> None:
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in existing}
        self.kept: list[torch.Tensor] = []
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage.nbytes() and storage.data_ptr() not in self.known:
                    self.known.add(storage.data_ptr())
                    self.bytes += storage.nbytes()
                    self.kept.append(t)
        return out


def allocated_bytes(model: nn.Module, *inputs: torch.Tensor) -> int:
    """``AllocWatch`` over ``model(*inputs)`` in eval mode under no_grad."""
    model.eval()
    watch = AllocWatch([*inputs, *model.parameters(), *model.buffers()])
    with torch.no_grad(), watch:
        model(*inputs)
    return watch.bytes


def torch_flops(model: nn.Module, *args, **kwargs) -> int:
    """torch's FlopCounterMode on a real CPU run (eval, no_grad)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops()


def model_params(model: nn.Module) -> int:
    """The model's own parameter count (``parameters()`` yields a shared tensor once)."""
    return sum(p.numel() for p in model.parameters())


# -- 1. parameters by data flow --------------------------------------------------------

def test_multihead_attention_counts_out_proj() -> None:
    mha = nn.MultiheadAttention(64, 4)
    # in_proj: 3 x (64x64 weight + 64 bias); out_proj: 64x64 + 64
    by_hand = 3 * 64 * 64 + 3 * 64 + 64 * 64 + 64
    assert by_hand == 16_640 == model_params(mha)
    x = torch.zeros(5, 1, 64)  # seq, batch, width
    result = archstat.analyze(mha, inputs=(x, x, x))
    assert result.totals["params"] == by_hand
    assert result.totals["params_unused"] == 0 and result.unused_params == {}


class _FunctionalOuter(nn.Module):
    """Uses ``inner``'s parameters through F.linear without calling ``inner``."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(8, 4)

    def forward(self, x):
        return F.linear(x, self.inner.weight, self.inner.bias)


def test_parameters_read_without_calling_their_module_count() -> None:
    model = _FunctionalOuter()
    result = archstat.analyze(model, input_shape=(8,))
    by_hand = 8 * 4 + 4
    assert result.totals["params"] == by_hand == model_params(model)
    assert result.totals["params_unused"] == 0
    # counted in the record of the module running the op: the root, inner never ran
    rows = result.layers.set_index("name")["params"].to_dict()
    assert rows == {"": by_hand}


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(self.embed(ids))


def test_tied_weight_counts_once_at_its_first_use() -> None:
    model = _Tied()
    result = archstat.analyze(model, input_shape="6:int64")
    by_hand = 10 * 4  # one 10x4 tensor, read twice
    assert result.totals["params"] == by_hand == model_params(model)
    assert result.totals["params_unused"] == 0
    rows = result.layers.set_index("name")["params"].to_dict()
    assert rows == {"embed": by_hand, "head": 0}


class _WithSpare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(8, 4)
        self.spare = nn.Linear(8, 3)  # built, never run
        self.scale = nn.Parameter(torch.ones(5))  # the root's own, never read

    def forward(self, x):
        return self.used(x)


def test_unused_parameters_are_reported_by_module() -> None:
    model = _WithSpare()
    result = archstat.analyze(model, input_shape=(8,))
    used, spare, scale = 8 * 4 + 4, 8 * 3 + 3, 5
    assert result.totals["params"] == used
    assert result.totals["params_unused"] == spare + scale
    assert result.unused_params == {"spare": spare, "": scale}
    assert result.totals["params"] + result.totals["params_unused"] == model_params(model)
    listed = {u["module"]: u["params"] for u in result.data()["unused_params"]}
    assert listed == {"spare": spare, "(root)": scale}


def _encoder(width: int = 32, heads: int = 4, hidden: int = 64, layers: int = 2) -> nn.Module:
    layer = nn.TransformerEncoderLayer(width, heads, hidden, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _encoder_params(width: int = 32, hidden: int = 64, layers: int = 2) -> int:
    attention = 3 * width * width + 3 * width + width * width + width  # in_proj + out_proj
    feedforward = width * hidden + hidden + hidden * width + width
    norms = 2 * 2 * width
    return layers * (attention + feedforward + norms)


def test_budget_fails_a_transformer_whose_params_were_undercounted() -> None:
    model = _encoder()
    true_count = _encoder_params()
    assert true_count == model_params(model)
    # before issue 10 each out_proj (32x32 + 32) counted 0, and this budget passed
    with pytest.raises(AssertionError, match="params"):
        archstat.assert_within_budget(model, "10x32", max_params=true_count - 1)
    result = archstat.assert_within_budget(model, "10x32", max_params=true_count)
    assert result.totals["params"] == true_count


def test_check_cli_fails_the_transformer_just_under_its_count(tmp_path, spec_module,
                                                               capsys) -> None:
    name = spec_module("""
        import torch.nn as nn
        def build():
            layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
            return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    """)
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(f'[[budget]]\nmodel = "{name}:build"\ninput = "10x32"\n'
                       f"max_params = {_encoder_params() - 1}\n")
    code, out, err = cli(capsys, "check", str(budgets), "-f", "json")
    assert code == 1, err
    (result,) = json.loads(out)["results"]
    assert result["status"] == "fail" and result["actual"] == _encoder_params()


_FLOW_NET = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        # attention (out_proj used through a function), a Linear read by F.linear,
        # a conv so that compare has a layer to show, and a head that is never run
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.inner = nn.Linear(8, 6)
            self.unused_head = nn.Linear(6, 100)

        def forward(self, x):
            x = self.conv(x).flatten(2).transpose(1, 2)  # N x 16 x 8
            x, _ = self.attn(x, x, x, need_weights=False)
            return F.linear(x, self.inner.weight, self.inner.bias)
"""


def test_every_command_agrees_on_params(spec_module) -> None:
    from archstat.budget.checks import budget_metrics
    from archstat.compare import compare_models
    from archstat.snapshots import snapshot

    name = spec_module(_FLOW_NET)
    spec = f"{name}:Net"
    model = importlib.import_module(name).Net()
    unused = 6 * 100 + 100
    used = (3 * 8 * 9 + 8) + (3 * 8 * 8 + 3 * 8 + 8 * 8 + 8) + (8 * 6 + 6)
    assert used + unused == model_params(model)

    analysis = archstat.analyze(spec, input_shape="3x4x4")
    memory = archstat.estimate_memory(spec, input_shape="3x4x4")
    figures = {
        "analyze": analysis.totals["params"],
        "compare": compare_models([spec], input_shape="3x4x4").totals["params"][0],
        "memory": memory.params,
        "check": budget_metrics(analysis)["params"],
        "snapshot": snapshot([spec], input_shape="3x4x4")["models"][0]["totals"]["params"],
    }
    assert figures == dict.fromkeys(figures, used)
    assert analysis.totals["params_unused"] == memory.params_unused == unused
    assert analysis.unused_params == {"unused_head": unused}


def test_zoo_and_every_command_agree_on_googlenets_params() -> None:
    from archstat.budget.checks import budget_metrics
    from archstat.compare import compare_models
    from archstat.snapshots import snapshot
    from archstat.zoo import get_model, zoo_listing

    with torch.device("meta"):
        model = get_model("googlenet")
    # the auxiliary heads are built but not run in eval; listed by the module that owns
    # each parameter
    aux = {name: sum(p.numel() for p in m.parameters(recurse=False))
           for name, m in model.named_modules() if name.startswith("aux")}
    aux = {name: n for name, n in aux.items() if n}
    assert {name.split(".")[0] for name in aux} == {"aux1", "aux2"}
    analysis = archstat.analyze("googlenet")
    assert analysis.unused_params == aux
    used = model_params(model) - sum(aux.values())
    zoo = next(r for r in zoo_listing().rows if r["model"] == "googlenet")
    figures = {
        "analyze": analysis.totals["params"],
        "zoo": int(zoo["params"]),
        "compare": compare_models(["googlenet"]).totals["params"][0],
        "memory": archstat.estimate_memory("googlenet").params,
        "check": budget_metrics(analysis)["params"],
        "snapshot": snapshot(["googlenet"])["models"][0]["totals"]["params"],
    }
    assert figures == dict.fromkeys(figures, used)
    assert int(zoo["params_unused"]) == analysis.totals["params_unused"] == sum(aux.values())


# -- 2. no false "unhandled" on pure data movement -------------------------------------

class _Where(nn.Module):
    def forward(self, x):
        return torch.where(x > 0, x, 0.0)  # the 0.0 becomes aten.scalar_tensor


class _Tril(nn.Module):
    def forward(self, x):
        return torch.tril(x)


class _Unfold(nn.Module):
    def forward(self, x):
        return F.unfold(x, 3)  # aten.im2col


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN], ids=["lstm", "gru", "rnn"])
def test_recurrent_layers_raise_no_unhandled_op(cls, batch_first, train) -> None:
    # every LSTM and GRU flagged unsafe_split, a batch-first GRU transpose_ as well
    model = cls(8, 16, 2, batch_first=batch_first)
    result = archstat.analyze(model, input_shape=(2, 8), batch=5, train=train)
    assert result.unhandled.empty, result.unhandled.to_dict("records")
    assert result.totals["params"] == model_params(model)


@pytest.mark.parametrize(
    ("build", "shape"),
    [(_Where, (4, 4)), (_Tril, (4, 4)), (_Unfold, (2, 6, 6))],
    ids=["where_scalar", "tril", "unfold"],
)
def test_data_movement_is_not_unhandled(build, shape) -> None:
    model = build()
    result = archstat.analyze(model, input_shape=shape, convention="flops")
    assert result.unhandled.empty, result.unhandled.to_dict("records")
    assert result.layers["unhandled_ops"].sum() == 0
    # pure data movement: torch's counter counts nothing on the real run, nor archstat
    assert torch_flops(model, torch.randn(1, *shape)) == 0
    assert result.totals["flops"] == 0


# -- 3. one memory figure --------------------------------------------------------------

@pytest.mark.slow  # a real GoogLeNet forward on the CPU, twice
def test_googlenet_has_one_peak_and_one_activation_figure() -> None:
    from archstat.budget.checks import budget_metrics
    from archstat.compare import compare_models
    from archstat.realrun import measure_forward, zoo_model

    analysis = archstat.analyze("googlenet")
    compared = compare_models(["googlenet"]).totals.iloc[0]
    checked = budget_metrics(analysis)
    memory = archstat.estimate_memory("googlenet").estimates[0]

    real = zoo_model("googlenet")
    x = torch.zeros(1, 3, 224, 224)
    peak = measure_forward(real, [x]).peak_activation_bytes
    allocated = allocated_bytes(real, x)

    peaks = {"analyze": analysis.totals["peak_activation_bytes"],
             "compare": compared["peak_activation_bytes"],
             "check": checked["peak_activation_bytes"],
             "memory": memory.peak_activation_bytes}
    assert peaks == dict.fromkeys(peaks, peak)
    activation = {"analyze": analysis.totals["activation_bytes"],
                  "compare": compared["activation_bytes"],
                  "check": checked["activation_bytes"]}
    assert activation == dict.fromkeys(activation, allocated)
    # `archstat budget` writes the same figures (rounded up; 20 digits keep them exact)
    written = tomllib.loads(suggest_budgets(["googlenet"], digits=20))["budget"][0]
    assert parse_quantity(written["max_peak_activation_bytes"], "B") == peak
    assert parse_quantity(written["max_activation_bytes"], "B") == allocated


def test_compare_keeps_the_lectures_sum_of_outputs_apart() -> None:
    from archstat.compare import compare

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    x = torch.zeros(1, 3, 8, 8)
    conv, pool, flat, fc = 8 * 8 * 8 * F32, 8 * 4 * 4 * F32, 8 * 4 * 4 * F32, 10 * F32
    totals = compare([archstat.analyze(net, inputs=x)]).totals.iloc[0]
    # the lecture's rows: conv, pool, flatten, fc outputs (the in-place ReLU not again)
    assert totals["output_bytes"] == conv + pool + flat + fc
    # new storage: the flatten is a view; the pool's int64 indices are allocated
    pool_indices = 8 * 4 * 4 * I64
    assert totals["activation_bytes"] == conv + pool + pool_indices + fc == \
        allocated_bytes(net, x)


class _FunctionalPool(nn.Module):
    def forward(self, x):
        return F.max_pool2d(x, 2)


def test_max_pool_module_and_function_count_the_same_bytes() -> None:
    x = torch.randn(1, 4, 8, 8)
    out = 1 * 4 * 4 * 4
    by_hand = out * F32 + out * I64  # values, and the int64 indices the kernel returns
    for model in (nn.MaxPool2d(2), _FunctionalPool()):
        result = archstat.analyze(model, inputs=x)
        assert result.totals["activation_bytes"] == by_hand
        assert allocated_bytes(model, x) == by_hand


def test_inception_row_shows_the_modules_input() -> None:
    from archstat.zoo import get_model

    with torch.device("meta"):
        model = get_model("googlenet").eval()
    seen = {}
    model.inception3a.register_forward_pre_hook(
        lambda _, args: seen.update(input=tuple(args[0].shape)))
    model(torch.empty(1, 3, 224, 224, device="meta"))
    # Table 1: maxpool2 leaves 192 channels at 28x28
    assert seen["input"] == (1, 192, 28, 28)
    layers = archstat.analyze("googlenet").layers.set_index("name")
    assert tuple(layers.loc["inception3a", "input_shape"]) == seen["input"]
    depth1 = archstat.analyze("googlenet", depth=1).layers.set_index("name")
    assert tuple(depth1.loc["inception3a", "input_shape"]) == seen["input"]


# -- 5. typed inputs -------------------------------------------------------------------

_EMBED = """
    import torch.nn as nn

    class Positional(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(100, 8)
            self.fc = nn.Linear(8, 2)

        def forward(self, ids):
            return self.fc(self.embed(ids))

    class Keyword(Positional):
        def forward(self, *, ids):  # keyword only: a positional input cannot reach it
            return self.fc(self.embed(ids))
"""
_EMBED_PARAMS = 100 * 8 + 8 * 2 + 2


def _embed_bytes(tokens: int) -> int:
    return tokens * 8 * F32 + tokens * 2 * F32  # embedding output, fc output


def test_integer_input_on_the_command_line(spec_module, capsys) -> None:
    name = spec_module(_EMBED)
    code, out, err = cli(capsys, "analyze", f"{name}:Positional", "--input", "128:int64",
                         "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["inputs"] == [{"name": None, "shape": [128], "dtype": "int64"}]
    assert data["totals"]["params"] == _EMBED_PARAMS
    assert data["totals"]["flops"] == 128 * 8 * 2  # fc MACs; the lookup is data movement
    assert data["totals"]["activation_bytes"] == _embed_bytes(128)


def test_keyword_integer_input(spec_module, capsys) -> None:
    name = spec_module(_EMBED)
    code, out, err = cli(capsys, "analyze", f"{name}:Keyword", "--input", "ids=12:int64",
                         "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["inputs"] == [{"name": "ids", "shape": [12], "dtype": "int64"}]
    assert data["totals"]["activation_bytes"] == _embed_bytes(12)
    result = archstat.analyze(importlib.import_module(name).Keyword(), "ids=12:int64",
                              batch=3)
    assert result.totals["flops"] == 3 * 12 * 8 * 2


def test_integer_input_in_a_budget_file(tmp_path, spec_module, capsys) -> None:
    name = spec_module(_EMBED)
    budgets = tmp_path / "archstat.toml"
    budgets.write_text(
        f'[[budget]]\nmodel = "{name}:Positional"\ninput = "128:int64"\n'
        f"max_params = {_EMBED_PARAMS}\nmax_activation_bytes = {_embed_bytes(128)}\n"
        f'[[budget]]\nname = "tight"\nmodel = "{name}:Keyword"\ninput = ["ids=128:int64"]\n'
        f"max_activation_bytes = {_embed_bytes(128) - 1}\n")
    code, out, err = cli(capsys, "check", str(budgets), "-f", "json")
    assert code == 1, err
    results = {(r["model"], r["metric"]): (r["status"], r["actual"])
               for r in json.loads(out)["results"]}
    assert results == {
        (f"{name}:Positional", "params"): ("pass", _EMBED_PARAMS),
        (f"{name}:Positional", "activation_bytes"): ("pass", _embed_bytes(128)),
        ("tight", "activation_bytes"): ("fail", _embed_bytes(128)),
    }


@pytest.mark.parametrize("dtype", ["int8", "int64", "bool", "complex64"])
def test_dtype_is_the_models_floating_type_only(dtype, capsys) -> None:
    assert_one_line_error(*cli(capsys, "analyze", "lenet5", "--dtype", dtype)[::2])
    with pytest.raises(archstat.ArchstatError, match=dtype):
        archstat.analyze("lenet5", dtype=dtype)


def test_dict_inputs_record_their_batch_and_shapes() -> None:
    model = nn.Linear(7, 2)
    result = archstat.analyze(model, inputs={"input": torch.zeros(3, 7)})
    assert result.batch == 3 and result.input_shape == [(7,)]
    assert result.data()["inputs"] == [{"name": "input", "shape": [7], "dtype": "float32"}]
    assert result.totals["flops"] == 3 * 7 * 2
    assert result.totals["activation_bytes"] == 3 * 2 * F32


class _Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 4)
        self.b = nn.Linear(3, 4)

    def forward(self, x, extra):
        return self.a(x) + self.b(extra["y"])


def test_nested_example_inputs_record_every_tensor() -> None:
    x, y = torch.zeros(2, 5), torch.zeros(2, 3)
    model = _Nested()
    result = archstat.analyze(model, inputs=(x, {"y": y}))
    assert result.batch == 2
    assert result.input_shape == [(5,), (3,)]
    assert result.totals["params"] == model_params(model) == 5 * 4 + 4 + 3 * 4 + 4
    assert result.totals["flops"] == 2 * 5 * 4 + 2 * 3 * 4
    assert result.totals["flops"] * 2 == torch_flops(model, x, {"y": y})


# -- 6. data-dependent models ----------------------------------------------------------

class _Pick(nn.Module):
    def forward(self, x):
        return x[torch.nonzero(x[:, 0] > 0).squeeze(1)]


class _Nonzero(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pick = _Pick()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.pick(x))


class _Item(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        rows = int((x[:, 0] > 0).sum().item())
        return self.fc(x[: max(rows, 1)])


class _Branch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Linear(8, 4)
        self.large = nn.Linear(8, 16)

    def forward(self, x):
        if x.sum() > 0:
            return self.small(x)
        return self.large(x)


def _positive_rows(x: torch.Tensor) -> int:
    return int((x[:, 0] > 0).sum())


DATA_DEPENDENT = {
    # model -> (op named, module that ran it, FLOPs by hand for input x: 2 per multiply-add)
    "nonzero": (_Nonzero, "nonzero", "pick", lambda x: 2 * _positive_rows(x) * 8 * 4),
    "item": (_Item, "_local_scalar_dense", "(root)",
             lambda x: 2 * max(_positive_rows(x), 1) * 8 * 4),
    "branch": (_Branch, "_local_scalar_dense", "(root)",
               lambda x: 2 * x.shape[0] * 8 * (4 if x.sum() > 0 else 16)),
}


@pytest.mark.parametrize("case", DATA_DEPENDENT)
@pytest.mark.parametrize("sign", [1, -1])
def test_data_dependent_forward_runs_on_the_cpu(case, sign) -> None:
    build, op, where, by_hand = DATA_DEPENDENT[case]
    torch.manual_seed(0)
    model = build()
    x = sign * torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    assert 0 < _positive_rows(x) < 6  # neither every row nor none: the values matter
    result = archstat.analyze(model, inputs=x, convention="flops")
    assert result.executed is True
    assert result.data()["execution"] == "cpu"
    assert any(name == op and module.startswith(where)
               for name, module in result.data_dependent), result.data_dependent
    assert result.totals["flops"] == by_hand(x) == torch_flops(model, x)
    assert result.totals["params"] + result.totals["params_unused"] == model_params(model)


@pytest.mark.parametrize("case", DATA_DEPENDENT)
def test_data_dependent_forward_with_execute_never_names_op_and_way_out(case) -> None:
    build, op, where, _ = DATA_DEPENDENT[case]
    with pytest.raises(archstat.ArchstatError) as info:
        archstat.analyze(build(), input_shape=(8,), batch=6, execute="never")
    message = str(info.value)
    assert f"aten.{op}" in message and "execute='auto'" in message
    assert f"in {where}" in message


def test_integer_inputs_are_zeros_unless_a_range_is_given(spec_module) -> None:
    name = spec_module("""
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(10, 8)
                self.fc = nn.Linear(8, 4)

            def forward(self, ids):
                x = self.embed(ids[ids > 0])  # only the non-zero ids: data dependent
                return self.fc(x)
    """)
    zeros = archstat.analyze(f"{name}:Net", "12:int64", convention="flops")
    ranged = archstat.analyze(f"{name}:Net", "12:int64:1..5", convention="flops")
    assert zeros.executed and ranged.executed
    assert zeros.totals["flops"] == 0  # every id is 0: no row reaches fc
    assert ranged.totals["flops"] == 2 * 12 * 8 * 4  # every id in [1, 5) is kept


def test_builder_options_reach_an_import_spec(spec_module) -> None:
    name = spec_module("""
        import torch.nn as nn
        def build(width=8):
            return nn.Linear(3, width)
    """)
    assert archstat.analyze(f"{name}:build", "3").totals["params"] == 3 * 8 + 8
    assert archstat.analyze(f"{name}:build", "3", width=5).totals["params"] == 3 * 5 + 5
    assert archstat.estimate_memory(f"{name}:build", "3", width=5).params == 3 * 5 + 5


def test_meta_traceable_model_is_not_executed() -> None:
    result = archstat.analyze(nn.Linear(8, 4), input_shape=(8,))
    assert result.executed is False and result.data_dependent == []


def test_data_dependent_spec_runs_with_seeded_weights_and_inputs(spec_module) -> None:
    from archstat.inputs import InputSpec, make_inputs
    from archstat.spec import SEED

    name = spec_module("""
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 4)

            def forward(self, x):
                return self.fc(x[torch.nonzero(x[:, 0] > 0).squeeze(1)])
    """)
    result = archstat.analyze(f"{name}:Net", input_shape="8", batch=16, convention="flops")
    assert result.executed
    # the same run by hand: the builder under the seed archstat documents, and its inputs
    torch.manual_seed(SEED)
    model = importlib.import_module(name).Net()
    (x,) = make_inputs([InputSpec((8,))], 16, torch.float32, device="cpu").args
    rows = _positive_rows(x)
    assert 0 < rows < 16  # the count really depends on the values
    assert result.totals["flops"] == torch_flops(model, x) == 2 * rows * 8 * 4


# -- tracebacks and silent wrong results -----------------------------------------------

@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "lenet5", "-o", "/proc/x.csv"],
        ["memory", "lenet5", "-o", "/proc/x.csv"],
        ["snapshot", "lenet5", "-o", "/proc/x.json"],
        ["plot", "lenet5", "-o", "/proc/x.png"],
        ["check", "BUDGET", "-o", "/proc/x.json"],
    ],
    ids=["analyze", "memory", "snapshot", "plot", "check"],
)
def test_unwritable_output_is_one_line(args, tmp_path, capsys) -> None:
    budgets = tmp_path / "archstat.toml"
    budgets.write_text('[[budget]]\nmodel = "lenet5"\nmax_params = "1M"\n')
    args = [str(budgets) if a == "BUDGET" else a for a in args]
    code, _, err = cli(capsys, *args)
    assert_one_line_error(code, err)
    assert "/proc/x." in err
    assert not Path(args[-1]).exists()


@pytest.mark.parametrize("output", ["x.xlsx", "x"])
def test_unknown_output_suffix_is_refused(output, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "analyze", "lenet5", "-o", output)
    assert_one_line_error(code, err)
    assert list(tmp_path.iterdir()) == []


def test_huge_dimension_is_one_line(capsys) -> None:
    assert_one_line_error(*cli(capsys, "analyze", "lenet5", "--input",
                               "3x99999999999999999999x2")[::2])
    with pytest.raises(archstat.ArchstatError):
        archstat.analyze("lenet5", input_shape="3x99999999999999999999x2")


class _Lazy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(x)


def test_lazy_module_is_counted_and_left_lazy(spec_module, capsys) -> None:
    model = _Lazy()
    result = archstat.analyze(model, input_shape=(20,))
    by_hand = 20 * 10 + 10
    assert result.totals["params"] == by_hand
    assert result.totals["flops"] == 20 * 10
    assert model.fc.has_uninitialized_params()  # the caller's module is untouched
    model(torch.zeros(1, 20))  # initialised for real: the model's own count agrees
    assert model_params(model) == by_hand

    name = spec_module("""
        import torch.nn as nn
        def build():
            return nn.Sequential(nn.LazyLinear(10), nn.ReLU(), nn.LazyLinear(3))
    """)
    code, out, err = cli(capsys, "analyze", f"{name}:build", "--input", "20", "-f", "json")
    assert code == 0, err
    assert json.loads(out)["totals"]["params"] == by_hand + 10 * 3 + 3


def _vgg16_activation_bytes_batch_1() -> int:
    """VGG-16 (configuration D) at 224x224, float32, by hand: every conv output, every
    max pool's values and int64 indices, the adaptive pool, the three fc outputs; the
    in-place ReLUs, the flatten view and eval-mode dropout allocate nothing."""
    convs = (2 * 64 * 224 * 224 + 2 * 128 * 112 * 112 + 3 * 256 * 56 * 56
             + 3 * 512 * 28 * 28 + 3 * 512 * 14 * 14)
    pools = 64 * 112 * 112 + 128 * 56 * 56 + 256 * 28 * 28 + 512 * 14 * 14 + 512 * 7 * 7
    adaptive = 512 * 7 * 7
    fcs = 4096 + 4096 + 1000
    return (convs + pools + adaptive + fcs) * F32 + pools * I64


def _vgg16_macs_batch_1() -> int:
    """VGG-16's multiply-adds at 224x224 by hand: 3x3 convs and the three fc layers."""
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112),
             (128, 256, 56), (256, 256, 56), (256, 256, 56), (256, 512, 28),
             (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14), (512, 512, 14)]
    return (sum(cin * cout * 9 * side * side for cin, cout, side in convs)
            + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000)


def test_vgg16_at_a_huge_batch_is_exact(capsys) -> None:
    batch = 100_000_000_000
    code, out, err = cli(capsys, "analyze", "vgg16", "--batch", str(batch), "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    # -6966280073709551616 before: int64 wrapped
    assert data["totals"]["activation_bytes"] == batch * _vgg16_activation_bytes_batch_1()
    assert data["totals"]["flops"] == batch * _vgg16_macs_batch_1()
    assert data["totals"]["flops"] > 2**63  # a Python int: exact beyond int64
    assert sum(row["flops"] for row in data["layers"]) == data["totals"]["flops"]
    # counts and sizes (not the receptive field's start, a pixel offset into the padding)
    numbers = [v for row in data["layers"] for k, v in row.items()
               if isinstance(v, int) and not isinstance(v, bool)
               and k != "receptive_field_start"]
    numbers += [v for v in data["totals"].values()]
    assert numbers and min(numbers) >= 0


@pytest.mark.slow  # a real VGG-16 forward on the CPU
def test_vgg16_activation_bytes_by_hand_match_a_real_run() -> None:
    from archstat.realrun import zoo_model

    x = torch.zeros(1, 3, 224, 224)
    assert allocated_bytes(zoo_model("vgg16"), x) == _vgg16_activation_bytes_batch_1()


@pytest.mark.parametrize("function", ["analyze", "estimate_memory", "bottleneck"])
@pytest.mark.parametrize("model", ["module", "lenet5"])
def test_misspelt_keyword_raises(function, model) -> None:
    target = nn.Linear(3, 3) if model == "module" else model
    with pytest.raises(archstat.ArchstatError, match="input_shapes"):
        getattr(archstat, function)(target, input_shapes=(3,))


def test_estimate_memory_uses_the_example_inputs() -> None:
    from archstat.realrun import measure_forward

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    for batch in (2, 5):
        x = torch.zeros(batch, 8)
        (est,) = archstat.estimate_memory(model, inputs=x).estimates
        assert est.batch == batch
        assert est.input_bytes == batch * 8 * F32
        # the peak is while the ReLU runs: the first Linear's output and the ReLU's
        by_hand = 2 * batch * 16 * F32
        assert est.peak_activation_bytes == by_hand
        assert measure_forward(model, [x]).peak_activation_bytes == by_hand


def test_bottleneck_uses_the_example_inputs() -> None:
    model = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1))
    for batch, side in ((1, 6), (2, 10)):
        report = archstat.bottleneck(model, inputs=torch.zeros(batch, 16, side, side),
                                     level="pair")
        assert report.batch == batch and report.input_shape == [(16, side, side)]
        (pair,) = report.pairs.to_dict("records")
        pixels = batch * side * side
        assert pair["macs"] == pixels * 16 * 4 + pixels * 4 * 8 * 9
        assert pair["direct_macs"] == pixels * 16 * 8 * 9


def test_spec_in_the_current_directory_imports_without_pythonpath(tmp_path, monkeypatch,
                                                                   capsys) -> None:
    (tmp_path / "mynets.py").write_text(
        "import torch.nn as nn\n"
        "def net():\n"
        "    return nn.Linear(5, 3)\n"
    )
    monkeypatch.chdir(tmp_path)
    here = {"", ".", os.getcwd(), str(tmp_path)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in here])
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    assert importlib.util.find_spec("mynets") is None  # not importable as things stand
    try:
        code, out, err = cli(capsys, "analyze", "mynets:net", "--input", "5", "-f", "json")
        assert code == 0, err
        assert json.loads(out)["totals"]["params"] == 5 * 3 + 3
    finally:
        sys.modules.pop("mynets", None)


# -- attention on every SDPA backend (item 3) -------------------------------------------

class _SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


class _Kernel(nn.Module):
    """One fused attention kernel called directly (CUDA kernels have meta kernels too)."""

    def __init__(self, kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, q, k, v):
        return self.kernel(q, k, v)[0]


@pytest.mark.parametrize("kernel", [
    "math", "cpu_flash",
    lambda q, k, v: torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, False),
    lambda q, k, v: torch.ops.aten._scaled_dot_product_flash_attention(q, k, v),
], ids=["math", "cpu_flash", "efficient", "flash"])
def test_attention_counts_the_same_on_every_backend(kernel) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    batch, heads, length, width = 2, 4, 10, 8
    shape = (heads, length, width)
    if kernel in ("math", "cpu_flash"):
        backend = SDPBackend.MATH if kernel == "math" else SDPBackend.FLASH_ATTENTION
        with sdpa_kernel(backend):
            result = archstat.analyze(_SDPA(), input_shape=[shape] * 3, batch=batch)
        ops = result.layers["ops"].iloc[0]
        assert ("bmm" in ops) == (kernel == "math")
    else:
        result = archstat.analyze(_Kernel(kernel), input_shape=[shape] * 3, batch=batch)
    # QK^T and the product with V: 2 x B x H x L x S x E multiply-adds
    assert result.totals["flops"] == 2 * batch * heads * length * length * width
    assert result.unhandled.empty


def test_multihead_attention_fast_path_counts_its_matmuls() -> None:
    embed, heads, length, batch = 16, 4, 6, 2
    model = nn.MultiheadAttention(embed, heads, batch_first=True).eval()
    x = torch.zeros(batch, length, embed)  # self-attention: the fast path's condition
    result = archstat.analyze(model, inputs=(x, x, x))
    assert "_transform_bias_rescale_qkv" in "+".join(result.layers["ops"])  # the fast path
    tokens = batch * length
    projections = tokens * 3 * embed * embed + tokens * embed * embed  # in_proj, out_proj
    attention = 2 * batch * heads * length * length * (embed // heads)  # QK^T, AV
    assert result.totals["flops"] == projections + attention
