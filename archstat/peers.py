"""``archstat.crosscheck``: archstat's counts next to those of the peers it reproduces,
run for real on the CPU, module by module, with the reason for every difference.

The peers, each run as a user runs it (defaults, eval mode; FlopCounterMode under
``torch.no_grad()``, fvcore with autograd on, as its documentation calls it; the
default SDPA backend), on the model built on the CPU with seeded random weights and
seeded random inputs:

``torch``
    ``torch.utils.flop_counter.FlopCounterMode``, against archstat's ``flops`` convention.
``fvcore``
    fvcore's ``FlopCountAnalysis``, against archstat's ``fvcore`` convention.

Every count is in the unit of the peer's convention (FLOPs, 2 per multiply-add, for
``torch``; fvcore's flops, 1 per multiply-add, for ``fvcore``). archstat's counts come
from its meta trace (:func:`archstat.analyze`), the numbers ``archstat analyze`` prints.

Both sides are compared per module and per op. A module's count is that of the ops it
runs itself, not those of its submodules (the peers report totals that include
submodules; they are taken apart here by subtracting the children). The reasons are
derived from the two runs, never assumed (see :data:`REASON_KINDS`); a difference no
reason accounts for is ``unexplained``, with the ops and both counts.

FlopCounterMode is run with ``custom_mapping`` entries for the ops archstat knows it has
no formula for (:data:`archstat.conventions.EXTRA_FLOPS`, and the fused kernels
of the transformer fast path, :data:`archstat.trace.cpupath.DESCEND`): each call of one counts
1 there, so that the peer says where it saw them. These calls are taken out of its
counts again; every other count is the default one.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from archstat.analysis import Analysis, analyze, float_dtype
from archstat.conventions import CONVENTIONS, Convention, extra_packets
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean
from archstat.inputs import ModelInputs, make_inputs
from archstat.spec import resolve_model
from archstat.trace.cpupath import DESCEND
from archstat.trace.ops import KINDS, op_kind
from archstat.units import human_bytes

#: The peers, and the archstat convention that reproduces each.
PEER_CONVENTIONS: Mapping[str, str] = {"torch": "flops", "fvcore": "fvcore"}
PEERS = tuple(PEER_CONVENTIONS)
#: What each peer is.
PEER_TOOLS: Mapping[str, str] = {
    "torch": "torch.utils.flop_counter.FlopCounterMode",
    "fvcore": "fvcore.nn.FlopCountAnalysis",
}

#: The kinds of reason, with what ``peer_ops``, ``archstat`` and ``peer`` hold in each.
REASON_KINDS: Mapping[str, str] = {
    "no_formula": "FlopCounterMode has no formula for the op in peer_ops and counts it 0; "
                  "archstat counts its matrix products (archstat), the peer 0",
    "fused_kernel": "FlopCounterMode sees the fused kernel in peer_ops as one op with no "
                    "formula; archstat follows its CPU kernel and counts the ops inside "
                    "(ops), archstat's count against the peer's count of those ops",
    "no_handle": "fvcore skipped the TorchScript ops in peer_ops (it has no handle for "
                 "them); archstat counts the matching work of that op kind (archstat), "
                 "fvcore 0",
    "no_rule": "archstat's fvcore convention has no rule for the ops in ops (their "
               "multiply-adds, peer, count 0 in archstat), which fvcore counts",
    "different_ops": "the same count of work under different ops on the two sides (the "
                     "meta trace took another kernel than the CPU run): ops with both counts; "
                     "no difference in the module's count",
    "unexplained": "no reason accounts for the difference: the ops of both sides, with "
                   "their counts",
}

#: crosscheck runs a model on the CPU only when archstat's estimate of its inference
#: memory (params + buffers + input + peak activations) is below this share of the
#: machine's physical memory; the peers need some room of their own.
CPU_MEMORY_FRACTION = 0.5

#: Module columns of :attr:`PeerCheck.modules`; counts in the peer's unit.
MODULE_COLUMNS = ["module", "type", "archstat_flops", "peer_flops", "difference",
                  "unexplained"]

# The fused kernels whose CPU kernel archstat's trace follows inside (the transformer
# fast path): FlopCounterMode sees each as one op.
_FUSED = frozenset(op.overloadpacket for op in DESCEND)

# fvcore's operator names (its handles', without "aten::") -> archstat's op kinds.
_FVCORE_KINDS = {
    "conv": "conv", "_convolution": "conv", "linear": "linear", "addmm": "linear",
    "matmul": "linear", "mm": "linear", "bmm": "linear", "einsum": "linear",
    "batch_norm": "norm", "group_norm": "norm", "layer_norm": "norm",
    "instance_norm": "norm", "adaptive_avg_pool2d": "pool",
    "upsample_nearest2d": "elementwise", "upsample_bilinear2d": "elementwise",
    "grid_sampler": "elementwise",
}
# Op kinds whose work fvcore counts as multiply-adds: archstat's macs convention counts
# the same work, which shows where archstat's fvcore convention has no rule.
_MAC_KINDS = ("conv", "linear")


@dataclass(frozen=True)
class OpCount:
    """One op's count on each side, in the peer's unit; None where that side does not
    count this op by itself (fvcore's TorchScript ops, ``aten::linear``, have no
    archstat count; archstat's dispatcher ops, ``aten.addmm``, no fvcore count)."""

    op: str
    archstat: int | None
    peer: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "archstat": self.archstat, "peer": self.peer}


@dataclass(frozen=True)
class PeerOp:
    """An op as the peer saw it, and how many times it ran in the module."""

    op: str
    calls: int

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "calls": self.calls}


@dataclass(frozen=True)
class Reason:
    """Why archstat's count of ``module`` differs from the peer's, for part of the work.

    ``kind`` is one of REASON_KINDS; ``peer_ops`` are the ops of the peer's run it is
    about; ``ops`` the ops behind the counts; ``archstat`` and ``peer`` the two counts of
    the work concerned (peer's unit), so that ``difference`` is the part of the module's
    difference this reason accounts for. A module's reasons sum to its difference.
    """

    module: str
    kind: str
    archstat: int
    peer: int
    peer_ops: tuple[PeerOp, ...] = ()
    ops: tuple[OpCount, ...] = ()
    op_kind: str | None = None  # the kind of work compared (fvcore's reasons: see KINDS)

    @property
    def difference(self) -> int:
        return self.archstat - self.peer

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "kind": self.kind, "archstat": self.archstat,
                "peer": self.peer, "difference": self.difference, "op_kind": self.op_kind,
                "peer_ops": [o.to_dict() for o in self.peer_ops],
                "ops": [o.to_dict() for o in self.ops]}


@dataclass
class PeerCheck:
    """archstat against one peer.

    ``modules`` has one row per module with a count on either side (MODULE_COLUMNS):
    the counts of the ops the module runs itself, ``difference`` = archstat - peer and
    ``unexplained`` the part of it no reason accounts for (0 when all is explained).
    ``merged`` maps a row to the submodules whose counts it holds because only one of
    the two runs called them (the runs took different code paths there; fvcore's hooks
    on every module turn torch's transformer fast path off, for one). ``error`` says why
    the peer could not run (then there are no rows).
    """

    peer: str
    convention: Convention
    modules: pd.DataFrame
    reasons: list[Reason]
    archstat_total: int
    peer_total: int
    merged: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def tool(self) -> str:
        return PEER_TOOLS[self.peer]

    @property
    def difference(self) -> int:
        return self.archstat_total - self.peer_total

    @property
    def unexplained(self) -> int:
        """The part of the difference no reason accounts for (signed, summed)."""
        return sum(r.difference for r in self.reasons if r.kind == "unexplained")

    @property
    def explained(self) -> bool:
        """Whether every difference has a reason (none is ``unexplained``)."""
        return self.error is None and not any(r.kind == "unexplained" for r in self.reasons)


@dataclass
class CrossCheck(Display):
    """The result of :func:`crosscheck`: one PeerCheck per peer, in the order asked.
    ``cpu_bytes`` is archstat's estimate of the memory the CPU run needed (params +
    buffers + input + peak activations, bytes) that decided it could run."""

    model: str
    analysis: Analysis = field(repr=False)
    peers: list[PeerCheck]
    cpu_bytes: int

    @property
    def explained(self) -> bool:
        return all(p.explained for p in self.peers)

    def peer(self, name: str) -> PeerCheck:
        for check in self.peers:
            if check.peer == name:
                return check
        raise KeyError(name)


def crosscheck(
    model: str | nn.Module,
    input_shape: str | Sequence[Any] | None = None,
    batch: int = 1,
    peers: Iterable[str] = PEERS,
    dtype: torch.dtype | str = torch.float32,
    **config: Any,
) -> CrossCheck:
    """Run ``model`` on the CPU under each of ``peers`` (``torch``, ``fvcore``) and
    compare, module by module and op by op, the peer's count with archstat's under the
    matching convention (``flops``, ``fvcore``), with the reason for every difference.

    ``model``, ``input_shape`` (without batch), ``batch``, ``dtype`` and ``config`` are as
    for :func:`archstat.analyze`. A model named by string is built on the CPU with seeded
    weights; an ``nn.Module`` must be on the CPU already, and is run as it is (in eval
    mode; its training flags are restored). The model is built only if archstat's meta
    estimate of its inference memory fits CPU_MEMORY_FRACTION of the machine's memory;
    otherwise this raises ArchstatError naming the estimate. A peer that fails to run on
    the model is reported in its PeerCheck's ``error``; if every peer fails, this raises.
    Counts and units: see the module docstring.
    """
    names = _peer_names(peers)
    fdtype = float_dtype(dtype)
    if isinstance(model, nn.Module):
        _check_on_cpu(model, fdtype)
    analysis = analyze(model, input_shape=input_shape, batch=batch, dtype=dtype,
                       convention=PEER_CONVENTIONS[names[0]], **config)
    label = analysis.model
    needed = cpu_bytes(analysis)
    available = physical_memory_bytes()
    if needed > CPU_MEMORY_FRACTION * available:
        raise ArchstatError(
            f"{label} needs about {human_bytes(needed)} to run on the CPU (archstat's "
            "estimate: params + buffers + input + peak activations), more than "
            f"{CPU_MEMORY_FRACTION:.0%} of this machine's {human_bytes(available)}; "
            "crosscheck runs the model for real: try a smaller batch or input")
    module = model if isinstance(model, nn.Module) else (
        resolve_model(model, device="cpu", **config).module.to(fdtype))
    inputs = make_inputs(analysis.input_specs, analysis.batch, fdtype, device="cpu")
    checks = [_check(name, module, inputs, analysis) for name in names]
    if all(c.error for c in checks):
        raise ArchstatError("; ".join(f"{c.tool} failed on {label}: {c.error}" for c in checks))
    return CrossCheck(label, analysis, checks, needed)


def _peer_names(peers: Iterable[str]) -> list[str]:
    if isinstance(peers, str):
        peers = [peers]
    names = list(dict.fromkeys(peers))
    for name in names:
        if name not in PEER_CONVENTIONS:
            raise ArchstatError(f"unknown peer {name!r}{did_you_mean(name, PEERS)}; choose "
                                f"from {', '.join(PEERS)}")
    if not names:
        raise ArchstatError(f"no peer to check against; choose from {', '.join(PEERS)}")
    return names


def _check_on_cpu(model: nn.Module, dtype: torch.dtype) -> None:
    """A module the caller passes is run as it is: on the CPU, with real weights, in
    the dtype the inputs are made in."""
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.is_meta for t in tensors):
        raise ArchstatError("crosscheck runs the model on the CPU, and this module's "
                            "weights are on meta: pass it with real weights, or pass a "
                            "zoo name or spec string")
    elsewhere = next((t.device for t in tensors if t.device.type != "cpu"), None)
    if elsewhere is not None:
        raise ArchstatError(f"crosscheck runs the model on the CPU, and this module's "
                            f"weights are on {elsewhere}: move it to the CPU first")
    other = next((t.dtype for t in tensors if t.is_floating_point() and t.dtype != dtype),
                 None)
    if other is not None:
        name = str(other).removeprefix("torch.")
        raise ArchstatError(f"this module's weights are {name}, and the peers run it as it "
                            f"is: crosscheck it with dtype {name}")


def physical_memory_bytes() -> int:
    """This machine's physical memory, in bytes (``os.sysconf``)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cpu_bytes(analysis: Analysis) -> int:
    """archstat's estimate, from a trace, of the bytes a CPU forward needs: parameters
    (read or not, floating ones in the traced dtype), the buffers and inputs the forward
    reads, and the peak of live activations."""
    t = analysis.trace
    assert t is not None
    itemsize = getattr(torch, analysis.dtype).itemsize
    held = {m.storage: m.storage_nbytes for m in t.tensors if m.role in ("buffer", "input")}
    params = analysis.totals["params"] + analysis.totals["params_unused"]
    return params * itemsize + sum(held.values()) + analysis.peak_activation_bytes


def _check(name: str, module: nn.Module, inputs: ModelInputs, analysis: Analysis) -> PeerCheck:
    convention = CONVENTIONS[PEER_CONVENTIONS[name]]
    try:
        # as each peer's documentation runs it: FlopCounterMode around an inference call,
        # FlopCountAnalysis as constructed (autograd on: MultiheadAttention's slow path)
        with _eval(module), (torch.no_grad() if name == "torch" else torch.enable_grad()):
            if name == "torch":
                return _torch_check(module, inputs, analysis, convention)
            return _fvcore_check(module, inputs, analysis, convention)
    except ArchstatError as exc:
        return PeerCheck(name, convention, pd.DataFrame(columns=MODULE_COLUMNS), [], 0, 0,
                         error=str(exc))


@contextmanager
def _eval(module: nn.Module) -> Iterator[None]:
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# -- archstat's side -----------------------------------------------------------------------


@dataclass
class _Side:
    """Per module (the ops it runs itself): op -> count, and op -> calls."""

    counts: dict[str, Counter] = field(default_factory=dict)
    calls: dict[str, Counter] = field(default_factory=dict)

    def add(self, module: str, op: Any, count: int, calls: int = 1) -> None:
        self.counts.setdefault(module, Counter())[op] += count
        self.calls.setdefault(module, Counter())[op] += calls

    def total(self, module: str) -> int:
        return sum(self.counts.get(module, Counter()).values())


def _archstat_side(analysis: Analysis, convention: Convention) -> _Side:
    """archstat's counts per module and aten packet, under ``convention`` (an op it
    cannot count, unhandled, counts 0, as in ``analyze``)."""
    t = analysis.trace
    assert t is not None
    side = _Side()
    for event in t.events:
        side.add(t.records[event.record].name, event.packet, convention.cost(event) or 0)
    return side


def _called(analysis: Analysis) -> set[str]:
    """Modules archstat's traced run called: those with a record, and their ancestors."""
    t = analysis.trace
    assert t is not None
    called = {""}
    for record in t.records:
        parts = record.name.split(".") if record.name else []
        called.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return called


def _order(analysis: Analysis, module: nn.Module, names: Iterable[str]) -> list[str]:
    """Modules in the order archstat's run first reached them, then the others in
    definition order, then any the model does not name, sorted."""
    t = analysis.trace
    assert t is not None
    rank: dict[str, int] = {}
    for record in t.records:
        rank.setdefault(record.name, len(rank))
    for name, _ in module.named_modules():
        rank.setdefault(name, len(rank))
    return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), n))


def _exclusive(inclusive: Mapping[str, Counter]) -> dict[str, Counter]:
    """Per-module counts of the ops a module runs itself, from counts that include every
    submodule's: each module's count less those of its nearest descendants present."""
    out = {name: Counter(counts) for name, counts in inclusive.items()}
    for name, counts in inclusive.items():
        parent = _nearest_ancestor(name, inclusive)
        if parent is not None:
            out[parent].subtract(counts)
    return out


def _nearest_ancestor(name: str, present: Mapping[str, Any]) -> str | None:
    while name:
        name = name.rpartition(".")[0]
        if name in present:
            return name
    return None


def _types(module: nn.Module) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in module.named_modules()}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=MODULE_COLUMNS, dtype=object)


def _row(module: str, types: Mapping[str, str], archstat: int, peer: int,
         reasons: list[Reason]) -> dict[str, Any]:
    unexplained = sum(r.difference for r in reasons if r.kind == "unexplained")
    return {"module": module, "type": types.get(module, ""), "archstat_flops": archstat,
            "peer_flops": peer, "difference": archstat - peer, "unexplained": unexplained}


# -- FlopCounterMode -----------------------------------------------------------------------


def _probes() -> dict[Any, Any]:
    """``custom_mapping`` for FlopCounterMode: the ops archstat knows it has no formula
    for count 1 a call, so that it reports where it saw them (taken out again)."""
    from torch.utils.flop_counter import flop_registry

    def one_call(*args: Any, **kwargs: Any) -> int:
        return 1

    packets = {*extra_packets(), *_FUSED}
    # an op with a formula of its own keeps it: a probe would change the peer's count
    return {p: one_call for p in packets if p not in flop_registry}


def _torch_check(module: nn.Module, inputs: ModelInputs, analysis: Analysis,
                 convention: Convention) -> PeerCheck:
    from torch.utils.flop_counter import FlopCounterMode

    probes = _probes()
    try:
        with FlopCounterMode(display=False, custom_mapping=probes) as counter:
            module(*inputs.args, **inputs.kwargs)
    except Exception as exc:
        raise ArchstatError(f"the forward failed under it: {_one_line(exc)}") \
            from exc
    root = type(module).__name__
    inclusive: dict[str, Counter] = {}
    flop_counts = counter.get_flop_counts()
    total = sum(v for k, v in flop_counts.get("Global", {}).items() if k not in probes)
    for path, counts in flop_counts.items():
        if path == "Global":
            continue
        name = "" if path == root else path.removeprefix(root + ".")
        inclusive[name] = Counter(dict(counts))
    own = _exclusive(inclusive)
    peer, seen = _Side(), _Side()
    for name, counts in own.items():
        for packet, value in counts.items():
            if packet in probes:
                if value:
                    seen.add(name, packet, 0, value)
            else:
                peer.add(name, packet, value, 0)
    ours = _archstat_side(analysis, convention)
    modules = _order(analysis, module, [*ours.counts, *peer.counts, *seen.calls])
    types = _types(module)
    rows, reasons = [], []
    for name in modules:
        found = _torch_reasons(name, ours, peer, seen)
        a, p = ours.total(name), peer.total(name)
        if a or p or found:
            rows.append(_row(name, types, a, p, found))
            reasons += found
    return PeerCheck("torch", convention, _frame(rows), reasons,
                     sum(map(ours.total, ours.counts)), total)


def _torch_reasons(module: str, ours: _Side, peer: _Side, seen: _Side) -> list[Reason]:
    """Per op: an op the peer has no formula for, ops inside a fused kernel the peer
    sees as one, and the rest unexplained."""
    a, p = ours.counts.get(module, Counter()), peer.counts.get(module, Counter())
    calls = seen.calls.get(module, Counter())
    fused = tuple(PeerOp(str(k), n) for k, n in calls.items() if k in _FUSED and n)
    reasons, inside, other = [], [], []
    for packet in sorted({*a, *p}, key=str):
        av, pv = a.get(packet, 0), p.get(packet, 0)
        if av == pv:
            continue
        if pv == 0 and packet in extra_packets() and calls.get(packet):
            reasons.append(Reason(module, "no_formula", av, 0,
                                  (PeerOp(str(packet), calls[packet]),),
                                  (OpCount(str(packet), av, 0),)))
        elif fused and av > pv:
            inside.append(OpCount(str(packet), av, pv))
        else:
            other.append(OpCount(str(packet), av, pv))
    if inside:
        reasons.append(Reason(module, "fused_kernel", sum(o.archstat for o in inside),
                              sum(o.peer for o in inside), fused, tuple(inside)))
    if other:
        a_sum, p_sum = sum(o.archstat for o in other), sum(o.peer for o in other)
        kind = "different_ops" if a_sum == p_sum else "unexplained"
        reasons.append(Reason(module, kind, a_sum, p_sum, (), tuple(other)))
    return reasons


# -- fvcore --------------------------------------------------------------------------------


def _positional(module: nn.Module, inputs: ModelInputs) -> tuple[Any, ...]:
    """fvcore passes inputs by position: keyword inputs go where the forward's signature
    puts them, if they are its next parameters."""
    args, kwargs = list(inputs.args), dict(inputs.kwargs)
    if not kwargs:
        return tuple(args)
    params = [p for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for param in params[len(args):]:
        if not kwargs:
            break
        if param.name not in kwargs:
            raise ArchstatError(f"fvcore passes inputs by position, and the forward's "
                                f"parameter {param.name!r} comes before keyword input(s) "
                                f"{', '.join(kwargs)}")
        args.append(kwargs.pop(param.name))
    if kwargs:
        raise ArchstatError(f"fvcore passes inputs by position, and the forward takes "
                            f"{', '.join(kwargs)} by keyword only")
    return tuple(args)


def _fvcore_check(module: nn.Module, inputs: ModelInputs, analysis: Analysis,
                  convention: Convention) -> PeerCheck:
    args = _positional(module, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation warnings, on import too
        from fvcore.nn import FlopCountAnalysis

        counter = FlopCountAnalysis(module, args)
        counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        counter.tracer_warnings("none")
        try:
            inclusive = {name: Counter(c) for name, c in counter.by_module_and_operator().items()}
            total = counter.total()
        except Exception as exc:
            raise ArchstatError(f"its TorchScript trace failed: {_one_line(exc)}") from exc
    skipped = _exclusive({name: Counter(counter.unsupported_ops(name)) for name in inclusive})
    called_peer = set(inclusive) - counter.uncalled_modules()
    own = _exclusive(inclusive)
    ours = _archstat_side(analysis, convention)
    macs = _archstat_side(analysis, CONVENTIONS["macs"])
    names = [n for n in {*ours.counts, *own, *skipped}
             if ours.total(n) or any(own.get(n, {}).values()) or any(skipped.get(n, {}).values())]
    rows_of = _fvcore_rows(names, _called(analysis), called_peer)
    # everything by the row module it is compared in
    groups: dict[str, dict[str, Any]] = {}
    for name in names:
        group = groups.setdefault(rows_of[name], {"ours": Counter(), "macs": Counter(),
                                                  "peer": Counter(), "skipped": Counter(),
                                                  "members": []})
        group["ours"].update(ours.counts.get(name, Counter()))
        group["macs"].update(macs.counts.get(name, Counter()))
        group["peer"].update(own.get(name, Counter()))
        group["skipped"].update(skipped.get(name, Counter()))
        if name != rows_of[name]:
            group["members"].append(name)
    types = _types(module)
    rows, reasons, merged = [], [], {}
    for name in _order(analysis, module, groups):
        g = groups[name]
        a, p = _int_sum(g["ours"]), _int_sum(g["peer"])
        found = _fvcore_reasons(name, g)
        if not (a or p or found):
            continue
        rows.append(_row(name, types, a, p, found))
        reasons += found
        if g["members"]:
            merged[name] = sorted(g["members"])
    return PeerCheck("fvcore", convention, _frame(rows), reasons,
                     sum(map(ours.total, ours.counts)), _exact(total), merged)


def _fvcore_rows(names: Iterable[str], called_ours: set[str],
                 called_peer: set[str]) -> dict[str, str]:
    """The row each module is compared in: its own, unless it or an ancestor was called
    by only one of the two runs; then the parent of the outermost such module, the
    nearest module both runs reached."""
    rows = {}
    for name in names:
        parts = name.split(".") if name else []
        row = name
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if (prefix in called_ours) != (prefix in called_peer):
                row = ".".join(parts[:depth - 1])
                break
        rows[name] = row
    return rows


def _exact(value: Any) -> int:
    """fvcore's counts are Python numbers; its default handles give whole ones."""
    if isinstance(value, float) and not value.is_integer():
        raise ArchstatError(f"fvcore returned a fractional count {value!r}")
    return int(value)


def _int_sum(counts: Counter) -> int:
    return sum(_exact(v) for v in counts.values())


def _packet_kind(packet: Any) -> str | None:
    """archstat's kind of an aten op packet (kinds are per packet, or per tags, which
    the overloads of one op share), None if it does not know the op."""
    overloads = packet.overloads()
    return op_kind(getattr(packet, overloads[0])) if overloads else None


def _counted_kind(packet: Any) -> str:
    # as in analyze: a counted op of kind "none" or of no known kind is elementwise
    kind = _packet_kind(packet)
    return kind if kind in KINDS else "elementwise"


def _skipped_kind(name: str) -> str | None:
    """The op kind of a TorchScript op fvcore skipped (``aten::mean`` -> pool), or None
    when archstat does not know its kind (``aten::lstm``, ``aten::scaled_dot_product_
    attention``: composite ops, whose work is whatever they decompose into)."""
    namespace, _, op = name.partition("::")
    try:
        return _packet_kind(getattr(getattr(torch.ops, namespace), op))
    except (AttributeError, RuntimeError):
        return None  # not an op torch knows here (a Python autograd Function, say)


def _by_kind(counts: Counter, kind_of: Any) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for op, value in counts.items():
        if value:
            out.setdefault(kind_of(op), Counter())[op] += _exact(value)
    return out


def _fvcore_reasons(module: str, group: Mapping[str, Any]) -> list[Reason]:
    """Per op kind (fvcore counts by TorchScript op, archstat by aten op): the work
    archstat's fvcore convention has no rule for, the work of ops fvcore skipped, and
    the rest unexplained."""
    ours = _by_kind(group["ours"], _counted_kind)
    peer = _by_kind(group["peer"], lambda op: _FVCORE_KINDS.get(op, op))
    gaps = _by_kind(Counter({op: v for op, v in group["macs"].items()
                             if v and not group["ours"].get(op)}), _counted_kind)
    skipped = Counter({op: n for op, n in group["skipped"].items() if n > 0})
    reasons = []
    for kind in sorted({*ours, *peer}):
        a, p = sum(ours.get(kind, {}).values()), sum(peer.get(kind, {}).values())
        if a == p:
            continue
        gap = gaps.get(kind, Counter()) if kind in _MAC_KINDS else Counter()
        work = a - p + sum(gap.values())  # archstat's count of the work fvcore skipped
        matching = tuple(PeerOp(op, n) for op, n in sorted(skipped.items())
                         if _skipped_kind(op) in (kind, None))
        ops = (*(OpCount(str(op), v, None) for op, v in sorted(ours.get(kind, {}).items(),
                                                                key=lambda i: str(i[0]))),
               *(OpCount(f"aten::{op}", None, v) for op, v in sorted(peer.get(kind, {}).items())))
        if work == 0 or (work > 0 and matching):
            if gap:
                reasons.append(Reason(module, "no_rule", 0, sum(gap.values()), (),
                                      tuple(OpCount(str(op), 0, v) for op, v in
                                            sorted(gap.items(), key=lambda i: str(i[0]))),
                                      kind))
            if work:
                reasons.append(Reason(module, "no_handle", work, 0, matching, ops, kind))
        else:
            reasons.append(Reason(module, "unexplained", a, p, tuple(
                PeerOp(op, n) for op, n in sorted(skipped.items())), ops, kind))
    return reasons
