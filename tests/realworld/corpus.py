"""A corpus case, its measurement (every oracle and archstat, once per model) and the
checks the test modules run on it.

A case builds its model on the CPU with seeded random weights; the same module is run
by the oracles (:mod:`.oracles`) and passed to ``archstat.analyze``, which traces it
on the meta device without changing it. Each model is built and measured once per
test session (``measure`` caches the numbers, never the model), and every oracle's
test reads from that.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

import archstat
from archstat.conventions import CONVENTIONS, EXTRA_FLOPS, get_convention
from archstat.trace.ops import op_kind

from . import oracles


@dataclass(frozen=True)
class Case:
    """One corpus model. ``inputs`` returns what ``archstat.analyze(inputs=...)`` takes:
    a tensor, a tuple of positional inputs or a dict of keyword inputs. ``train`` runs
    the model (and archstat's trace) in training mode. ``cannot_trace`` says why archstat
    cannot trace the model on meta at all (an expected failure of every archstat check);
    ``fvcore_cannot_trace`` why fvcore cannot (its check then asserts that it still
    cannot). ``flops_counted_twice`` says which module FlopCounterMode counts under two
    top-level modules (one registered under one and called from the other): its
    per-module figures then overlap and only the totals are compared."""

    id: str
    build: Callable[[], nn.Module] = field(repr=False)
    inputs: Callable[[], Any] = field(repr=False)
    train: bool = False
    cannot_trace: str | None = None
    fvcore_cannot_trace: str | None = None
    flops_counted_twice: str | None = None
    #: (reason, low, high): fvcore's own arithmetic is off; archstat - fvcore lies in
    #: [low, high] and is not 0 (the check asserts both, so a fixed fvcore is noticed)
    fvcore_quirk: tuple[str, int, int] | None = None


#: Ops whose work archstat counts and FlopCounterMode has no formula for, and which the
#: oracle's real run reaches too (it counts 0 for them): the oracle's count plus
#: archstat's count of these is archstat's. The other kernels of EXTRA_FLOPS are
#: not reached by the oracle's run, which counts the same work under ops it has formulas
#: for: the math SDPA backend's bmm's, oneDNN switched off for recurrent layers (addmm,
#: mm), autograd on (no transformer fast path: addmm for _addmm_activation).
UNREGISTERED = frozenset({"_grouped_mm"})
assert {p.__name__ for p in EXTRA_FLOPS} >= UNREGISTERED


@dataclass(frozen=True)
class Counts:
    """archstat's figures under one convention."""

    flops: int
    by_module: dict[str, int]
    by_op: dict[str, int]  # for failure messages only
    params: int
    params_unused: int | None  # None while archstat's totals have no such key
    unhandled: tuple[str, ...]  # ops the convention reported as unhandled
    #: top-level module -> archstat's count of UNREGISTERED ops in it (flops only)
    unregistered: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    """Every oracle and archstat on one case. An ``*_error`` is the one-line message
    of what failed (archstat's trace, fvcore's tracing); the figures are then None."""

    case: str
    params: int
    torch: oracles.TorchRun
    fvcore: oracles.FvcoreRun | None
    fvcore_error: str | None
    flops: Counts | None  # archstat, convention "flops"
    fvcore_convention: Counts | None  # archstat, convention "fvcore"
    archstat_error: str | None
    ops: frozenset[Any]  # every op overload archstat's trace recorded
    seconds: dict[str, float]


_MEASURED: dict[str, Measurement] = {}


def measure(case: Case) -> Measurement:
    """Build ``case`` once, run every oracle and archstat on it (cached by id)."""
    if case.id not in _MEASURED:
        # One thread: the corpus runs small inputs, where intra-op threads gain little,
        # and on a busy machine their spin-waits made it three times slower.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _MEASURED[case.id] = _measure(case)
        finally:
            torch.set_num_threads(threads)
        gc.collect()
    return _MEASURED[case.id]


def _measure(case: Case) -> Measurement:
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    torch.manual_seed(0)
    model = case.build()
    torch.manual_seed(0)
    inputs = case.inputs()
    lap("build")
    params = oracles.model_params(model)
    torch_run = oracles.torch_flops(model, inputs, train=case.train)
    lap("torch")
    fvcore_run, fvcore_error = None, None
    try:
        fvcore_run = oracles.fvcore_flops(model, inputs, train=case.train)
    except Exception as exc:  # TorchScript cannot trace every model
        fvcore_error = _one_line(exc)
    lap("fvcore")
    flops = fvcore_conv = None
    archstat_error = None
    ops: frozenset[Any] = frozenset()
    try:
        result = archstat.analyze(model, inputs=inputs, convention="flops", train=case.train)
        flops = _counts(result)
        ops = frozenset(event.op for event in result.trace.events)
        fvcore_conv = _counts(archstat.analyze(model, inputs=inputs, convention="fvcore",
                                               train=case.train))
    except Exception as exc:
        archstat_error = f"{type(exc).__name__}: {_one_line(exc)}"
    lap("archstat")
    return Measurement(case.id, params, torch_run, fvcore_run, fvcore_error, flops,
                       fvcore_conv, archstat_error, ops, seconds)


def _counts(result: archstat.Analysis) -> Counts:
    by_module: dict[str, int] = {}
    for name, count in zip(result.layers["name"], result.layers["flops"], strict=True):
        top = name.split(".")[0]
        by_module[top] = by_module.get(top, 0) + int(count)
    # Per op, to say which op a difference comes from (the assertions use only the
    # layers table): the convention's own cost of each traced op.
    convention = get_convention(result.convention)
    by_op: dict[str, int] = {}
    unregistered: dict[str, int] = {}
    for event in result.trace.events:
        cost = convention.cost(event) or 0
        by_op[event.packet.__name__] = by_op.get(event.packet.__name__, 0) + cost
        if cost and event.packet.__name__ in UNREGISTERED:
            top = result.trace.records[event.record].name.split(".")[0]
            unregistered[top] = unregistered.get(top, 0) + cost
    totals = result.totals
    return Counts(
        flops=totals["flops"],
        by_module={k: v for k, v in sorted(by_module.items()) if v},
        by_op={k: v for k, v in sorted(by_op.items()) if v},
        params=totals["params"],
        params_unused=totals.get("params_unused"),
        unhandled=tuple(sorted(result.unhandled["op"])),
        unregistered=unregistered,
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# -- ops ---------------------------------------------------------------------------

def _counted_packets() -> frozenset[Any]:
    return frozenset(packet for conv in CONVENTIONS.values() for packet in conv.rules)


def unknown_ops(ops: Iterable[Any]) -> list[str]:
    """Names (overload packets) of the ops archstat neither counts under any convention
    nor knows the kind of (``archstat.trace.ops.op_kind`` is None): the ops that would be
    reported unhandled. Sorted."""
    counted = _counted_packets()
    return sorted({op.overloadpacket.__name__ for op in ops
                   if op.overloadpacket not in counted and op_kind(op) is None})


# -- checks --------------------------------------------------------------------------

def _traced(m: Measurement) -> None:
    assert m.archstat_error is None, f"archstat failed: {m.archstat_error}"


def check_params(m: Measurement) -> None:
    """archstat's params are the parameters the forward read; with the unused ones they
    are the model's own count."""
    _traced(m)
    counts = m.flops
    assert counts.params == m.torch.params_read, (
        f"params: archstat {counts.params:,}, read by the forward {m.torch.params_read:,} "
        f"(model {m.params:,})")
    assert counts.params_unused is not None, "archstat's totals have no params_unused"
    assert counts.params + counts.params_unused == m.params, (
        f"params + params_unused: archstat {counts.params:,} + {counts.params_unused:,}, "
        f"model {m.params:,}")


def check_flops(m: Measurement, case: Case) -> None:
    """Convention ``flops`` is FlopCounterMode's count, in total and per top-level module
    (in total only where FlopCounterMode counts some ops under two top-level modules),
    less archstat's count of the ops FlopCounterMode has no formula for (UNREGISTERED:
    a mixture of experts' _grouped_mm)."""
    _traced(m)
    theirs = m.torch
    ours = dataclasses.replace(m.flops, flops=m.flops.flops - sum(m.flops.unregistered.values()),
                               by_module=oracles._nonzero({
                                   k: v - m.flops.unregistered.get(k, 0)
                                   for k, v in m.flops.by_module.items()}))
    message = (f"flops: archstat {ours.flops:,}, FlopCounterMode {theirs.flops:,}; "
               f"per module (archstat, torch): {_diff(ours.by_module, theirs.by_module)}; "
               f"per op: {_diff(ours.by_op, theirs.by_op)}")
    if case.flops_counted_twice:
        # The oracle's top-level counts add up to more than its total.
        assert theirs.by_module.get("", 0) < 0, (
            f"FlopCounterMode no longer counts ops twice: drop flops_counted_twice "
            f"({case.flops_counted_twice})")
        assert ours.flops == theirs.flops, message
        return
    assert (ours.flops, _diff(ours.by_module, theirs.by_module)) == (theirs.flops, {}), message


def check_fvcore(m: Measurement, case: Case) -> None:
    """Convention ``fvcore`` is FlopCountAnalysis's count, where fvcore can trace."""
    _traced(m)
    if case.fvcore_cannot_trace:
        assert m.fvcore_error is not None, (
            f"fvcore traces {case.id} now: drop fvcore_cannot_trace ({case.fvcore_cannot_trace})")
        return
    assert m.fvcore_error is None, f"fvcore failed (declare fvcore_cannot_trace?): {m.fvcore_error}"
    ours, theirs = m.fvcore_convention, m.fvcore
    if case.fvcore_quirk:
        reason, low, high = case.fvcore_quirk
        difference = ours.flops - theirs.flops
        assert difference and low <= difference <= high, (
            f"{case.id}: archstat - fvcore = {difference}, expected within [{low}, {high}] "
            f"and not 0 ({reason})")
        return
    assert (ours.flops, _diff(ours.by_module, theirs.by_module)) == (theirs.flops, {}), (
        f"fvcore: archstat {ours.flops:,}, FlopCountAnalysis {theirs.flops:,}; "
        f"per module (archstat, fvcore): {_diff(ours.by_module, theirs.by_module)}; "
        f"per op: archstat {ours.by_op}, fvcore {theirs.by_op}, fvcore skipped {theirs.skipped}")


def check_ops_known(m: Measurement) -> None:
    """Every op the trace reached is counted by a convention or has a kind (data
    movement is declared zero-cost); none would be reported unhandled."""
    _traced(m)
    unknown = unknown_ops(m.ops)
    assert not unknown, f"ops archstat neither counts nor declares: {unknown}"


def _diff(ours: dict[str, int], theirs: dict[str, int]) -> dict[str, tuple[int, int]]:
    keys = sorted(set(ours) | set(theirs))
    return {k: (ours.get(k, 0), theirs.get(k, 0)) for k in keys
            if ours.get(k, 0) != theirs.get(k, 0)}


def parametrize(cases: Iterable[Case]) -> list[Any]:
    """pytest params for ``cases``: an expected failure (strict) where archstat cannot trace."""
    return [
        pytest.param(case, id=case.id, marks=[pytest.mark.xfail(reason=case.cannot_trace,
                                                                strict=True)]
                     if case.cannot_trace else [])
        for case in cases
    ]
