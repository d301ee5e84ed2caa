"""A :class:`~archstat.memory.MemoryReport`: a summary of the first batch (each figure with
what it counts), what is live at its peak, and, for several batches or a budget, one
row per batch. CSV is the per-batch table; JSON the first batch's figures at the top."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table, records

ROWS = [  # (field, label, what it counts) of the memory summary, in reading order
    ("params_bytes", "params", ""),
    ("buffers_bytes", "buffers", "batch norm running statistics and the like"),
    ("input_bytes", "input", "the caller's tensor, not an activation"),
    ("peak_activation_bytes", "peak activations", "most activation storage live at once"),
    ("measured_tensor_peak_bytes", "measured peak activations", "a real CPU run"),
    ("allocator_peak_bytes", "allocator peak (CPU, modelled)", "peak activations with the "
     "CPU kernels' workspaces"),
    ("measured_allocator_peak_bytes", "measured allocator peak", "a real CPU run, the "
     "profiler's allocations"),
    ("saved_activation_bytes", "saved activations", "kept by autograd for backward"),
    ("saved_concat_bytes", "  of them concatenations", "copies torch.cat made of maps that "
     "already exist"),
    ("backward_peak_bytes", "forward+backward peak", "activations, saved activations and "
     "gradients live at once"),
    ("gradient_bytes", "gradients", "one per trainable parameter the forward uses"),
    ("optimizer_bytes", "optimizer state", ""),
    ("inference_peak_bytes", "inference peak", "params + buffers + input + peak activations"),
    ("training_peak_bytes", "training peak", "params + buffers + input + optimizer state "
     "+ max(forward+backward peak, optimizer step)"),
    ("train_step_macs", "training step", "forward + backward multiply-accumulates of the "
     "same step"),
]
#: measured row -> the estimate it checks
_MEASURED_OF = {"measured_tensor_peak_bytes": "peak_activation_bytes",
                "measured_allocator_peak_bytes": "allocator_peak_bytes"}
_BATCH_HEADERS = {
    "peak_activation_bytes": "peak activations", "peak_layer": "peak layer",
    "saved_activation_bytes": "saved activations", "saved_concat_bytes": "saved concat.",
    "gradient_bytes": "gradients",
    "backward_peak_bytes": "fwd+bwd peak", "optimizer_bytes": "optimizer state",
    "inference_peak_bytes": "inference peak", "training_peak_bytes": "training peak",
    "allocator_peak_bytes": "allocator peak", "measured_tensor_peak_bytes": "measured peak act.",
    "measured_allocator_peak_bytes": "measured alloc. peak", "train_step_macs": "training MACs",
}


def title(report: Any) -> str:
    shapes = ", ".join(text.shape_str(s) for s in report.input_shape)
    mode = f"training step, {report.optimizer}" if report.train else "inference"
    if report.executed:
        mode += " (ran on the CPU: the forward needs real values)"
    return (f"{report.model}  input {shapes}  batch {report.estimates[0].batch}  "
            f"{report.dtype}  {mode}")


def _against(estimate: int, measured: int) -> str:
    """``exact``, or the estimate's ratio to the measurement (``0.713x``)."""
    if estimate == measured:
        return "exact"
    return f"{estimate / measured:.3f}x" if measured else "-"


def allocator_line(report: Any) -> str | None:
    """What the allocator-level estimate leaves out, in a line (None if nothing or in
    training): ``allocator peak, not modelled: oneDNN LSTM scratchpad (...), 2 ops``."""
    if report.cpu is None:
        return None
    missing = report.estimates[0].allocator_unmodelled
    return f"allocator peak, not modelled: {'; '.join(missing)}" if missing else None


def fit_line(report: Any) -> str | None:
    """``largest batch within 24GiB: 181``, or None without a budget."""
    if report.budget_bytes is None:
        return None
    budget = text.human_bytes(report.budget_bytes)
    if not report.largest_batch:
        return f"does not fit in {budget} even at batch 1"
    if report.search_capped:
        return (f"largest batch within {budget}: at least {report.largest_batch} "
                f"(the search stops there)")
    return f"largest batch within {budget}: {report.largest_batch}"


def _live_rows(groups: Sequence[Any], limit: int = 10) -> list[dict[str, Any]]:
    """The ``limit`` largest groups live at the peak, in execution order, then one row
    summing the rest."""
    largest = set(sorted(range(len(groups)), key=lambda i: -groups[i].bytes)[:limit])
    rows = [{"layer": g.layer, "tensors": g.tensors, "bytes": g.bytes,
             "largest": f"{text.shape_str(g.shape)} {g.dtype}"}
            for i, g in enumerate(groups) if i in largest]
    rest = [g for i, g in enumerate(groups) if i not in largest]
    if rest:
        rows.append({"layer": f"({len(rest)} more layers)",
                     "tensors": sum(g.tensors for g in rest),
                     "bytes": sum(g.bytes for g in rest), "largest": ""})
    return rows


def batches_table(report: Any) -> Table:
    """One row per batch size: every figure, exactly (CSV)."""
    columns = [Column(c, _BATCH_HEADERS.get(c, c),
                      text.text if c in ("batch", "peak_layer") else
                      (lambda v: "yes" if v else "no") if c == "fits" else
                      text.human if c == "train_step_macs" else text.human_bytes)
               for c in report.batch_rows[0]]
    shown = [c for c in columns if c.key not in ("params_bytes", "buffers_bytes",
                                                   "input_bytes")]
    return Table("batches", "by batch size", shown, report.batch_rows,
                 data_columns=[c.key for c in columns])


def views(report: Any, **_: Any) -> list[Table]:
    first = report.batch_rows[0]
    summary = []
    for key, label, note in ROWS:
        if key not in first:
            continue
        if key == "peak_activation_bytes":
            note = f"{note}, in {first['peak_layer']}"
        elif key == "optimizer_bytes":
            note = report.optimizer
        elif key == "allocator_peak_bytes" and report.cpu is not None:
            note = f"{note}, {report.cpu.threads} threads, {report.cpu.capability}"
        elif key == "saved_concat_bytes":
            if not first[key]:
                continue
            share = first[key] / first["saved_activation_bytes"]
            note = f"{share:.0%} of them: {note}"
        elif key in _MEASURED_OF:
            note = f"{note}; estimate {_against(first[_MEASURED_OF[key]], first[key])}"
        size = (text.human(first[key]) + " MACs" if key == "train_step_macs"
                else text.human_bytes(first[key]))
        summary.append({"quantity": label, "size": size, "note": note})
    tables = [
        Table("summary", title(report), [Column("quantity", "quantity"),
                                         Column("size", "size"), Column("note", "note")],
              summary),
        Table("live", "live at the peak", [
            Column("layer", "made by"), Column("tensors", "tensors"),
            Column("bytes", "size", text.human_bytes), Column("largest", "largest")],
            _live_rows(report.estimates[0].live_at_peak)),
    ]
    if len(report.estimates) > 1 or report.budget_bytes is not None:
        tables.append(batches_table(report))
    tables[-1].notes = [line for line in (allocator_line(report), fit_line(report)) if line]
    return tables


def data(report: Any) -> dict[str, Any]:
    """The first batch's figures at the top level (with what is live at its peak), every
    batch under ``batches``, and the budget search under ``fit``."""
    batches = records(batches_table(report))
    first = dict(batches[0])
    first.pop("fits", None)
    shapes = [list(s) for s in report.input_shape]
    out: dict[str, Any] = {
        "model": report.model,
        "input_shape": shapes[0] if len(shapes) == 1 else shapes,
        "dtype": report.dtype,
        "mode": "training" if report.train else "inference",
        "execution": "cpu" if report.executed else "meta",
        "optimizer": report.optimizer,
        "params": report.params,
        "params_unused": report.params_unused,
        **first,
        "live_at_peak": [
            {"layer": g.layer, "tensors": g.tensors, "bytes": g.bytes,
             "largest_shape": list(g.shape), "dtype": g.dtype}
            for g in report.estimates[0].live_at_peak
        ],
        "batches": batches,
    }
    if report.cpu is not None:
        out["allocator_unmodelled"] = list(report.estimates[0].allocator_unmodelled)
        out["cpu"] = {"threads": report.cpu.threads, "capability": report.cpu.capability,
                      "onednn": report.cpu.mkldnn}
    if report.budget_bytes is not None:
        out["fit"] = {"budget_bytes": report.budget_bytes,
                      "largest_batch": report.largest_batch,
                      "search_capped": report.search_capped}
    return out


def csv_table(report: Any, **_: Any) -> Table:
    return batches_table(report)
