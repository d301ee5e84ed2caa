"""A :class:`~archstat.peers.CrossCheck`: per peer, archstat's count next to the peer's,
module by module, and every reason worded as a sentence (counts exact, in the peer's
unit). CSV holds every peer's module rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archstat.peers import MODULE_COLUMNS
from archstat.render.table import Column, Table
from archstat.render.text import exact, signed

PEER_LABELS = {"torch": "FlopCounterMode", "fvcore": "fvcore"}

_REASON_LABELS = {
    "no_formula": "no formula", "fused_kernel": "fused kernel", "no_handle": "no handle",
    "no_rule": "no rule", "different_ops": "other ops", "unexplained": "UNEXPLAINED",
}

# What archstat counts in an op FlopCounterMode has no formula for (conventions'
# EXTRA_FLOPS).
_EXTRA_WORK = {
    "aten._scaled_dot_product_flash_attention_for_cpu": "its QK^T and AV products",
    "aten._addmm_activation": "its matrix product (a linear layer with a fused activation)",
    "aten.mkldnn_rnn_layer": "its input and hidden-state products at every step",
    "aten.grid_sampler_2d": "its interpolation taps (4 multiply-adds a bilinear sample)",
    "torchvision.deform_conv2d": "its bilinear sampling and the conv on the samples",
}


def _calls(ops: Sequence[Any], what: str = "") -> str:
    """``aten::lstm (skipped; 2 calls), ...``"""
    lead = f"{what}; " if what else ""
    return ", ".join(f"{o.op} ({lead}{o.calls} call{'s' if o.calls != 1 else ''})"
                     for o in ops)


def _op_counts(ops: Sequence[Any], side: str) -> str:
    return ", ".join(f"{o.op} {exact(getattr(o, side))}" for o in ops
                     if getattr(o, side) is not None and (getattr(o, side) or side == "archstat"))


def reason_text(reason: Any, peer: str) -> str:
    """One reason of a crosscheck as a sentence (counts exact, in the peer's unit)."""
    label = PEER_LABELS[peer]
    where = reason.module or "(root)"
    if reason.kind == "no_formula":
        op = reason.peer_ops[0].op
        work = _EXTRA_WORK.get(op, "its matrix products")
        return (f"{where}: {label} has no formula for {_calls(reason.peer_ops)} and counts "
                f"it 0; archstat counts {work}: {exact(reason.archstat)}")
    if reason.kind == "fused_kernel":
        outside = (f" ({label} counts {exact(reason.peer)} of them, run outside the kernel)"
                   if reason.peer else "")
        return (f"{where}: {label} sees {_calls(reason.peer_ops)} as one op with no formula "
                f"and counts it 0; archstat follows its CPU kernel and counts the ops inside: "
                f"{_op_counts(reason.ops, 'archstat')}{outside}")
    if reason.kind == "no_handle":
        return (f"{where}: {label} has no handle for {_calls(reason.peer_ops, 'skipped')}; "
                f"archstat counts {exact(reason.archstat)} of {reason.op_kind} work here that "
                f"{label} does not (the {reason.op_kind} work on each side: archstat "
                f"{_op_counts(reason.ops, 'archstat')}; {label} "
                f"{_op_counts(reason.ops, 'peer') or '0'})")
    if reason.kind == "no_rule":
        ops = ", ".join(o.op for o in reason.ops)
        return (f"{where}: archstat's fvcore convention has no rule for {ops} and counts it "
                f"0; {label} counts its {exact(reason.peer)} multiply-adds")
    if reason.kind == "different_ops":
        return (f"{where}: the same count under other ops, {exact(reason.archstat)}: "
                f"archstat {_op_counts(reason.ops, 'archstat')}, {label} "
                f"{_op_counts(reason.ops, 'peer')} (the meta trace took another kernel than "
                f"the CPU run)")
    skipped = f"; {label} skipped {_calls(reason.peer_ops)}" if reason.peer_ops else ""
    what = f" in {reason.op_kind} work" if reason.op_kind else ""
    return (f"{where}: UNEXPLAINED difference{what} of {signed(reason.difference)}: archstat "
            f"{exact(reason.archstat)} ({_op_counts(reason.ops, 'archstat') or '-'}), {label} "
            f"{exact(reason.peer)} ({_op_counts(reason.ops, 'peer') or '-'}){skipped}")


def crosscheck_notes(check: Any) -> list[str]:
    """The sentences under one peer's table: why the runs differ, module by module, then
    the totals."""
    label = PEER_LABELS[check.peer]
    if check.error is not None:
        return [f"{label} could not run: {check.error}"]
    notes = [f"{m or '(root)'}: compared as a whole with {', '.join(subs)}, which only one "
             "of the two runs called (they took different code paths there)"
             for m, subs in check.merged.items()]
    notes += [reason_text(r, check.peer) for r in check.reasons]
    verdict = ("every difference explained" if check.explained
               else f"{signed(check.unexplained)} UNEXPLAINED")
    notes.append(f"total ({check.convention.unit}): archstat {exact(check.archstat_total)}, "
                 f"{label} {exact(check.peer_total)}, difference {signed(check.difference)}: "
                 f"{verdict}")
    return notes


def crosscheck_view(result: Any, check: Any) -> Table:
    """One peer's table (exact counts), with its reasons under it."""
    label = PEER_LABELS[check.peer]
    shapes = ", ".join(s.text() for s in result.analysis.input_specs)
    title = (f"{result.model}  input {shapes}  batch {result.analysis.batch}  "
             f"{result.analysis.dtype}: archstat ({check.convention.name}) vs {label}")
    kinds: dict[str, list[str]] = {}
    for reason in check.reasons:
        kinds.setdefault(reason.module, []).append(_REASON_LABELS[reason.kind])
    rows = []
    for row in (check.modules.to_dict("records") if check.error is None else []):
        name = row["module"] or "(root)"
        if row["module"] in check.merged:
            name += f" (+{len(check.merged[row['module']])})"
        rows.append({**row, "module": name,
                     "reason": ", ".join(dict.fromkeys(kinds.get(row["module"], [])))})
    columns = [Column("module", "module"), Column("type", "type"),
               Column("archstat_flops", "archstat", exact),
               Column("peer_flops", label, exact), Column("difference", "difference", signed),
               Column("reason", "reason")]
    footer = {"module": "total", "archstat_flops": check.archstat_total,
              "peer_flops": check.peer_total, "difference": check.difference,
              "reason": "" if check.explained else "UNEXPLAINED"}
    return Table(check.peer, title, columns, rows, footer=footer if rows else None,
                 notes=crosscheck_notes(check))


def views(result: Any, **_: Any) -> list[Table]:
    return [crosscheck_view(result, check) for check in result.peers]


def csv_table(result: Any, **_: Any) -> Table:
    """Every peer's module rows, with a leading ``peer`` column."""
    rows = [{"peer": check.peer, **row} for check in result.peers if check.error is None
            for row in check.modules.to_dict("records")]
    return Table("modules", "", [], rows, data_columns=["peer", *MODULE_COLUMNS])


def data(result: Any) -> dict[str, Any]:
    settings = result.analysis.settings()
    head = {"model": result.model, **{k: v for k, v in settings.items()
                                      if k not in ("model", "convention")},
            "cpu_bytes": result.cpu_bytes}
    peers = []
    for check in result.peers:
        peers.append({
            "peer": check.peer, "tool": check.tool, "convention": check.convention.name,
            "unit": check.convention.unit, "error": check.error,
            "totals": {"archstat_flops": check.archstat_total, "peer_flops": check.peer_total,
                       "difference": check.difference, "unexplained": check.unexplained},
            "modules": [] if check.error else check.modules.to_dict("records"),
            "merged": [{"module": m, "submodules": s} for m, s in check.merged.items()],
            "reasons": [r.to_dict() for r in check.reasons],
        })
    return {**head, "peers": peers}
