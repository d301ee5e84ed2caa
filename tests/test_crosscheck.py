"""``archstat crosscheck``: archstat's counts next to FlopCounterMode's and fvcore's on a
real CPU run, with a reason for every difference, checked against hand counts."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from archstat import peers
from archstat.cli import main
from archstat.conventions import CONVENTIONS
from archstat.render import render
from archstat.render.crosscheck import reason_text


def _no_unexplained(result: peers.CrossCheck) -> None:
    for check in result.peers:
        assert check.error is None, check.error
        assert check.explained, [r for r in check.reasons if r.kind == "unexplained"]
        # a module's reasons add up to its difference, and the rows to the totals
        by_module: dict[str, int] = {}
        for reason in check.reasons:
            by_module[reason.module] = by_module.get(reason.module, 0) + reason.difference
        for row in check.modules.to_dict("records"):
            assert by_module.get(row["module"], 0) == row["difference"], row
            assert row["unexplained"] == 0
        assert sum(check.modules["archstat_flops"]) == check.archstat_total
        assert sum(check.modules["peer_flops"]) == check.peer_total


@pytest.mark.parametrize("name", [pytest.param("vgg16", marks=pytest.mark.slow), "resnet50",
                                  pytest.param("googlenet", marks=pytest.mark.slow)])
def test_zoo_agrees_with_both_peers_module_by_module(name: str) -> None:
    result = archstat.crosscheck(name)
    _no_unexplained(result)
    for check in result.peers:
        assert check.reasons == [], check.reasons
        assert check.archstat_total == check.peer_total
        assert (check.modules["difference"] == 0).all()
    assert result.peer("torch").archstat_total == archstat.analyze(
        name, convention="flops").totals["flops"]
    assert result.peer("fvcore").archstat_total == archstat.analyze(
        name, convention="fvcore").totals["flops"]


class CrossAttention(nn.Module):
    """Queries from x (L tokens), keys and values from memory (S tokens), H heads of E."""

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q = self.q(x).view(b, length, self.heads, -1).transpose(1, 2)  # B x H x L x E
        k, v = self.kv(memory).view(b, memory.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # B x H x L x E
        return self.out(y.transpose(1, 2).reshape(b, length, d))


def test_sdpa_on_the_cpu_flash_kernel_is_two_bmms_flop_counter_mode_misses() -> None:
    b, heads, length, source, dim = 2, 4, 16, 24, 32
    e = dim // heads
    result = archstat.crosscheck(CrossAttention(dim, heads), [(length, dim), (source, dim)],
                                 batch=b)
    _no_unexplained(result)
    torch_check = result.peer("torch")
    bmm = 2 * b * heads * length * source * e  # FLOPs of one of QK^T and AV
    assert torch_check.difference == 2 * bmm
    (reason,) = torch_check.reasons
    assert (reason.kind, reason.module, reason.archstat, reason.peer) == (
        "no_formula", "", 2 * bmm, 0)
    assert reason.peer_ops == (peers.PeerOp(
        "aten._scaled_dot_product_flash_attention_for_cpu", 1),)
    linears = 2 * b * (length * dim * dim + source * dim * 2 * dim + length * dim * dim)
    assert torch_check.peer_total == linears
    # fvcore skips aten::scaled_dot_product_attention, and so does its archstat convention
    fvcore_check = result.peer("fvcore")
    assert fvcore_check.reasons == []
    assert fvcore_check.peer_total == fvcore_check.archstat_total == linears // 2
    text = reason_text(reason, "torch")
    assert "no formula for aten._scaled_dot_product_flash_attention_for_cpu" in text
    assert "QK^T and AV" in text and f"{2 * bmm:,}" in text


def test_lstm_on_onednn_flop_counter_mode_counts_zero() -> None:
    steps, features, hidden, b = 20, 32, 64, 2
    model = nn.LSTM(features, hidden, num_layers=2, batch_first=True)
    result = archstat.crosscheck(model, (steps, features), batch=b)
    _no_unexplained(result)
    check = result.peer("torch")
    gates = 4 * hidden  # every step: input and hidden state times their 4H-row weights
    expected = 2 * steps * b * gates * ((features + hidden) + (hidden + hidden))
    assert (check.archstat_total, check.peer_total) == (expected, 0)
    (reason,) = check.reasons
    assert reason.kind == "no_formula"
    assert reason.peer_ops == (peers.PeerOp("aten.mkldnn_rnn_layer", 2),)
    # fvcore skips aten::lstm; archstat's fvcore convention does not count the oneDNN layer
    assert result.peer("fvcore").archstat_total == result.peer("fvcore").peer_total == 0
    assert model.training  # the caller's module is handed back as it was


def test_transformer_encoder_fast_path() -> None:
    d, heads, ff, length, b = 64, 4, 128, 10, 2
    layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    result = archstat.crosscheck(model, (length, d), batch=b)
    _no_unexplained(result)
    e = d // heads
    projections = b * length * (3 * d * d + d * d + d * ff + ff * d)  # MACs of one layer
    attention = 2 * b * heads * length * length * e  # QK^T and AV, MACs
    # FlopCounterMode sees each layer as one op with no formula: 0
    check = result.peer("torch")
    assert check.peer_total == 0
    assert check.archstat_total == 2 * 2 * (projections + attention)
    for index, reason in enumerate(check.reasons):
        assert (reason.kind, reason.module) == ("fused_kernel", f"layers.{index}")
        assert reason.peer_ops == (peers.PeerOp("aten._transformer_encoder_layer_fwd", 1),)
        ops = {o.op: o.archstat for o in reason.ops}
        assert ops["aten._addmm_activation"] == 2 * b * length * d * ff  # linear1 + ReLU
        assert ops["aten.bmm"] == 2 * attention
    # fvcore runs with autograd on, which turns the fast path off: it counts the in/out
    # projections and linear1/linear2 as aten::linear and the two layer norms (5 per
    # element), and skips the attention products (aten::scaled_dot_product_attention).
    # archstat's fvcore convention knows which composite each op ran in, so its fast-path
    # trace counts the same: the projections, not the attention's bmm
    check = result.peer("fvcore")
    assert check.reasons == [] or all(r.kind != "unexplained" for r in check.reasons)
    per_layer = projections + 2 * 5 * b * length * d
    assert check.archstat_total == check.peer_total == 2 * per_layer


def test_a_difference_without_a_reason_is_unexplained(monkeypatch) -> None:
    """A convention that counts what the peer does not, for no reason crosscheck knows."""
    aten = torch.ops.aten
    doubled = CONVENTIONS["flops"].with_rules(
        {aten.addmm: lambda event: 2 * CONVENTIONS["flops"].rules[aten.addmm](event)})
    monkeypatch.setattr(peers, "CONVENTIONS", {**CONVENTIONS, "flops": doubled})
    result = archstat.crosscheck(nn.Sequential(nn.Linear(8, 4)), (8,), peers="torch")
    check = result.peer("torch")
    assert not check.explained and check.unexplained == 2 * 8 * 4
    (reason,) = check.reasons
    assert reason.kind == "unexplained" and reason.ops == (
        peers.OpCount("aten.addmm", 4 * 8 * 4, 2 * 8 * 4),)
    assert "UNEXPLAINED" in reason_text(reason, "torch")


def test_api_errors() -> None:
    with pytest.raises(archstat.ArchstatError, match="did you mean: torch"):
        archstat.crosscheck("lenet5", peers="troch")
    with torch.device("meta"):
        meta = nn.Linear(4, 4)
    with pytest.raises(archstat.ArchstatError, match="on meta"):
        archstat.crosscheck(meta, (4,))
    with pytest.raises(archstat.ArchstatError, match="float64"):
        archstat.crosscheck(nn.Linear(4, 4).double(), (4,))


class KeywordOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, *, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_a_peer_that_cannot_run_is_reported_not_fatal() -> None:
    result = archstat.crosscheck(KeywordOnly(), "x=4")
    assert result.peer("torch").explained and result.peer("torch").peer_total == 2 * 4 * 3
    fvcore_check = result.peer("fvcore")
    assert not fvcore_check.explained and "x by keyword only" in fvcore_check.error
    assert "fvcore could not run: fvcore passes inputs by position" in render(result, "markdown")
    assert "fvcore,fc" not in render(result, "csv")
    with pytest.raises(archstat.ArchstatError, match="FlopCountAnalysis failed on KeywordOnly"):
        archstat.crosscheck(KeywordOnly(), "x=4", peers=["fvcore"])


def test_too_large_for_this_machine_is_refused_before_it_is_built(monkeypatch) -> None:
    monkeypatch.setattr(peers, "physical_memory_bytes", lambda: 1 << 16)
    with pytest.raises(archstat.ArchstatError, match=r"lenet5 needs about .*KiB to run"):
        archstat.crosscheck("lenet5")


# -- the command line ----------------------------------------------------------------------


def test_cli_formats(capsys, tmp_path) -> None:
    assert main(["crosscheck", "lenet5", "-f", "csv"]) == 0
    csv = capsys.readouterr().out
    assert csv.splitlines()[0] == "peer,module,type,archstat_flops,peer_flops,difference," \
                                  "unexplained"
    assert "torch,features.0,Conv2d,235200,235200,0,0" in csv
    assert "fvcore,features.0,Conv2d,117600,117600,0,0" in csv
    assert main(["crosscheck", "lenet5", "-f", "csv"]) == 0
    assert capsys.readouterr().out == csv  # byte for byte
    assert main(["crosscheck", "lenet5", "--peer", "fvcore", "-f", "json"]) == 0
    text = capsys.readouterr().out
    assert main(["crosscheck", "lenet5", "--peer", "fvcore", "-f", "json"]) == 0
    assert capsys.readouterr().out == text
    data = json.loads(text)
    assert [p["peer"] for p in data["peers"]] == ["fvcore"]
    assert data["peers"][0]["totals"] == {"archstat_flops": 416520, "peer_flops": 416520,
                                          "difference": 0, "unexplained": 0}
    out = tmp_path / "x.md"
    assert main(["crosscheck", "lenet5", "-p", "torch", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("**lenet5  input 1x32x32  batch 1  float32: archstat (flops) vs "
                           "FlopCounterMode**")
    assert "every difference explained" in text
    assert main(["crosscheck", "lenet5", "-p", "torch"]) == 0
    assert "FlopCounterMode" in capsys.readouterr().out


def test_cli_states_the_reasons(capsys) -> None:
    assert main(["crosscheck", "tests.test_crosscheck:CrossAttention", "-i", "16x32",
                 "-i", "24x32", "-p", "torch", "-f", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| (root) | CrossAttention | 49,152 | 0 | +49,152 | no formula |" in out
    assert "(root): FlopCounterMode has no formula for " \
           "aten._scaled_dot_product_flash_attention_for_cpu (1 call)" in out


@pytest.mark.parametrize("argv, message", [
    (["crosscheck", "lenet5", "--peer", "fvcorr"], "unknown peer 'fvcorr'"),
    (["crosscheck", "lenet5", "-i", "1x0x3"], "positive integer dimensions"),
    (["crosscheck", "lenet9"], "lenet9"),
    (["crosscheck", "lenet5", "--dtype", "int8"], "int8"),
    (["crosscheck", "lenet5", "-o", "out.xlsx"], "cannot tell the format"),
])
def test_cli_user_errors_are_one_line(capsys, argv, message) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("archstat: error: ") and message in captured.err
    assert captured.err.count("\n") == 1
