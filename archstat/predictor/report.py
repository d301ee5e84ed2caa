"""``archstat.predict``: a model's latency on a device, per layer, from its meta trace.

Each forward op is costed on the device profile (:mod:`archstat.predictor.cost`: a
roofline per kernel plus a per-kernel overhead) and the ops are summed per layer record,
the rows ``archstat analyze`` shows. Per layer:

* ``flops``: the ``full`` convention's count (2 per multiply-add, plus elementwise,
  reduction, normalisation and pooling work);
* ``bytes``: what its ops read and write, in the traced dtype;
* ``intensity``: flops / bytes (FLOP per byte; None when nothing moves);
* ``kernels``: kernels launched (a view launches none);
* ``predicted_ms``: the sum of its ops' times (and, on a profile with a
  ``module_overhead_s``, a leaf module's call), milliseconds;
* ``compute_bound_ms``, ``memory_bound_ms``, ``overhead_bound_ms``: that time split by
  the bound of each op;
* ``bound``: the bound that holds most of the layer's time (``none`` for a layer that
  launches no kernel).

The prediction is of an eager, unfused forward pass with the device at its peak rates:
a calibrated profile's (measured on this machine's large GEMMs and copies) or a
datasheet's (a lower bound a real run approaches but rarely reaches).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archstat.display import Display
from archstat.errors import ArchstatError
from archstat.predictor.cost import BOUNDS, OpCost, op_costs
from archstat.predictor.profile import DeviceProfile, device_profile

if TYPE_CHECKING:
    import pandas as pd

LAYER_COLUMNS = ["name", "type", "kernels", "flops", "bytes", "intensity", "predicted_ms",
                 "compute_bound_ms", "memory_bound_ms", "overhead_bound_ms", "bound"]


@dataclass
class PredictReport(Display):
    """The result of :func:`predict` (units: see the module docstring).

    ``rows``: one dict per layer record (LAYER_COLUMNS), in execution order; ``ops``:
    every forward op's cost; ``profile``: the device; ``unhandled_ops``: ops that did work
    the ``full`` convention has no formula for (their bytes and overhead still count,
    their FLOPs are 0), as (op, calls)."""

    model: str
    batch: int
    dtype: str
    input_shape: list[tuple[int, ...]]
    profile: DeviceProfile
    rows: list[dict[str, Any]]
    ops: list[OpCost] = field(default_factory=list, repr=False)
    unhandled_ops: list[dict[str, Any]] = field(default_factory=list)

    @property
    def layers(self) -> pd.DataFrame:
        """``rows`` as a DataFrame (object columns: exact integers)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=LAYER_COLUMNS, dtype=object)

    @property
    def totals(self) -> dict[str, Any]:
        """Sums over the layers: ``predicted_ms``, ``flops``, ``bytes`` (exact), their
        ``intensity``, ``kernels``, ``layers``; the time per bound (``<bound>_bound_ms``)
        and its share of the total (``<bound>_share``, 0..1)."""
        total_ms = sum(row["predicted_ms"] for row in self.rows)
        flops = sum(row["flops"] for row in self.rows)
        nbytes = sum(row["bytes"] for row in self.rows)
        out: dict[str, Any] = {
            "predicted_ms": total_ms, "flops": flops, "bytes": nbytes,
            "intensity": flops / nbytes if nbytes else None,
            "kernels": sum(row["kernels"] for row in self.rows), "layers": len(self.rows),
        }
        for bound in BOUNDS:
            out[f"{bound}_bound_ms"] = sum(row[f"{bound}_bound_ms"] for row in self.rows)
        for bound in BOUNDS:
            out[f"{bound}_share"] = out[f"{bound}_bound_ms"] / total_ms if total_ms else 0.0
        return out

    def peaks(self) -> dict[str, Any]:
        """The rates this prediction used for its dtype: matrix and vector FLOP/s (and
        the float32 convolutions' TF32 rate, the spatial-convolution, pooling and
        depthwise rates, where they apply), bytes/s (and the first touch of fresh pages),
        seconds per kernel (and per convolution or matmul kernel)."""
        profile = self.profile
        peaks: dict[str, Any] = {"matrix_flops_per_s": profile.matrix_flops_per_s[self.dtype]}
        if self.dtype in profile.conv_flops_per_s:
            peaks["conv_flops_per_s"] = profile.conv_flops_per_s[self.dtype]
        elif self.dtype == "float32" and "tf32" in profile.matrix_flops_per_s:
            peaks["conv_flops_per_s"] = profile.matrix_flops_per_s["tf32"]
        peaks["vector_flops_per_s"] = profile.vector_flops_per_s[self.dtype]
        for key in ("spatial_conv_flops_per_s", "pool_flops_per_s", "depthwise_flops_per_s"):
            if self.dtype in getattr(profile, key):
                peaks[key] = getattr(profile, key)[self.dtype]
        peaks.update(memory_bytes_per_s=profile.memory_bytes_per_s,
                     overhead_s=profile.overhead_s)
        for key in ("cache_bytes", "cache_bytes_per_s", "fresh_bytes_above",
                    "fresh_bytes_per_s", "matrix_overhead_s", "module_overhead_s"):
            if getattr(profile, key) is not None:
                peaks[key] = getattr(profile, key)
        return peaks

    def settings(self) -> dict[str, Any]:
        """What was predicted, as plain data: model, input_shape, batch, dtype, device,
        the peaks used, and the profile's source."""
        shapes = [list(s) for s in self.input_shape]
        return {"model": self.model, "input_shape": shapes[0] if len(shapes) == 1 else shapes,
                "batch": self.batch, "dtype": self.dtype, "device": self.profile.name,
                "peaks": self.peaks(), "source": self.profile.source}

    def slowest(self, bound: str | None = None, n: int = 3) -> list[dict[str, Any]]:
        """The ``n`` slowest layers (of one ``bound``, when given), slowest first; ties
        in execution order."""
        rows = [r for r in self.rows if bound is None or r["bound"] == bound]
        return sorted(rows, key=lambda r: -r["predicted_ms"])[:n]


def predict(
    model: Any,
    input_shape: Any = None,
    *,
    device: str | Path | DeviceProfile,
    batch: int = 1,
    dtype: str = "float32",
    **config: Any,
) -> PredictReport:
    """Predict the forward latency of ``model`` (a zoo name, a spec string or an
    ``nn.Module``; ``input_shape``, ``batch``, ``dtype`` and ``config`` as for
    :func:`archstat.analyze`) on ``device``: a device of the table (``"H100"``), a
    profile JSON file, or a :class:`DeviceProfile`."""
    from archstat.analysis import analyze

    profile = device_profile(device)
    profile.check_dtype(dtype)  # before tracing: a mistake costs nothing
    analysis = analyze(model, input_shape=input_shape, batch=batch, convention="full",
                       dtype=dtype, **config)
    return predict_analysis(analysis, profile)


def predict_analysis(analysis: Any, device: str | Path | DeviceProfile,
                     events: Iterable[int] | None = None) -> PredictReport:
    """The prediction for an existing inference :class:`~archstat.analysis.Analysis` (any
    convention: its trace is costed under ``full``), over all its forward ops or only
    the ``events`` given (indices into its trace's events; layers with none of them are
    left out)."""
    if analysis.train:
        raise ArchstatError("latency is predicted for the inference forward pass; analyse "
                            "the model without `train`")
    if analysis.trace is None:
        raise ArchstatError("the analysis carries no trace to predict from")
    profile = device_profile(device)
    selected = None if events is None else sorted(set(events))
    costs = op_costs(analysis.trace, profile, analysis.dtype, selected)
    rows = layer_rows(analysis.trace, costs, keep_empty=selected is None,
                      module_overhead_s=profile.module_overhead_s or 0.0)
    calls = Counter(c.op for c in costs if c.unhandled)
    return PredictReport(
        model=analysis.model, batch=analysis.batch, dtype=analysis.dtype,
        input_shape=list(analysis.input_shape), profile=profile, rows=rows, ops=costs,
        unhandled_ops=[{"op": op, "calls": n} for op, n in sorted(calls.items())])


def layer_rows(trace: Any, costs: list[OpCost], keep_empty: bool = True,
               module_overhead_s: float = 0.0) -> list[dict[str, Any]]:
    """One row per layer record (LAYER_COLUMNS) from its ops' costs, in execution order;
    records without costed ops only when ``keep_empty``. A leaf module's call adds
    ``module_overhead_s`` (overhead-bound time) to its row."""
    by_record: dict[int, list[OpCost]] = {}
    for cost in costs:
        by_record.setdefault(cost.record, []).append(cost)
    rows = []
    for index, record in enumerate(trace.records):
        mine = by_record.get(index, [])
        if mine or keep_empty:
            extra = module_overhead_s if record.leaf else 0.0
            rows.append(_row(record.name or "(root)", record.type, mine, extra))
    return rows


def _row(name: str, kind: str, costs: list[OpCost], call_s: float = 0.0) -> dict[str, Any]:
    flops = sum(c.flops for c in costs)
    nbytes = sum(c.bytes for c in costs)
    by_bound = dict.fromkeys(BOUNDS, 0.0)
    by_bound["overhead"] += call_s * 1e3
    for cost in costs:
        if cost.kernels:
            by_bound[cost.bound] += cost.time_s * 1e3
    total = sum(by_bound.values())
    return {
        "name": name, "type": kind, "kernels": sum(c.kernels for c in costs),
        "flops": flops, "bytes": nbytes, "intensity": flops / nbytes if nbytes else None,
        "predicted_ms": total,
        **{f"{bound}_bound_ms": by_bound[bound] for bound in BOUNDS},
        "bound": max(BOUNDS, key=by_bound.__getitem__) if total else "none",
    }
