"""Per-layer latency (``archstat bench --per-layer``): how long each leaf module's call
takes, joined with the analyzer's FLOPs and bytes for the same call.

Method: a forward pre-hook and a forward hook on every leaf module (a module without
children) take a timer mark before and after the call: ``perf_counter_ns`` on the CPU,
a recorded CUDA event on the GPU (no synchronisation inside the forward pass; the
events are read after the pass has been synchronised once). A leaf's time is the
median over the measured iterations of its own call. What runs outside leaf modules
(a container's ``x + identity`` or ``torch.cat``, Python between calls, the hooks' own
cost) forms the row ``(outside leaf modules)``: per iteration, the hooked forward's
time minus its leaf calls, median over iterations. (Medians do not add up exactly, so
the rows' sum is close to, not equal to, the hooked model's median.) Hooks cost
time, so the hooked forward pass is slower than the plain one; that overhead is
measured on the same model and batch and reported beside the table.

Units: times in ms; FLOPs = 2 x multiply-adds (conv, linear, matmul: other layers
show 0); bytes = the layer's input + weight + output bytes (see
:func:`archstat.bench.stats.record_traffic`); GFLOP/s = 10^9 FLOP/s; arithmetic
intensity in FLOP/byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from torch import nn

from archstat.bench import stats
from archstat.bench.devices import Peak
from archstat.bench.timing import Policy, Timer, measure, time_call
from archstat.errors import ArchstatError

OUTSIDE = "(outside leaf modules)"
LAYER_COLUMNS = [
    "name", "type", "time_ms", "time_pct", "flops", "bytes", "gflops_achieved",
    "arithmetic_intensity", "bound",
]


@dataclass
class LayerTiming:
    """Per-call median times (ms) of the leaf calls, in call order; the hooked model's
    per-iteration latencies (ms); per iteration, the time outside leaf calls (ms)."""

    calls: list[tuple[str, str, float]]  # (module path, module type, median ms)
    hooked_ms: list[float]
    outside_ms: list[float]


@contextmanager
def leaf_hooks(model: nn.Module, timer: Timer) -> Iterator[list[list[Any]]]:
    """Hooks that append ``[name, type, start mark, end mark]`` to the yielded list for
    every leaf-module call; removed on exit."""
    log: list[list[Any]] = []

    def make_hooks(name: str, kind: str) -> tuple[Callable[..., None], Callable[..., None]]:
        def pre(module: nn.Module, args: Any) -> None:
            log.append([name, kind, timer.mark(), None])

        def post(module: nn.Module, args: Any, output: Any) -> None:
            log[-1][3] = timer.mark()

        return pre, post

    with ExitStack() as stack:
        for name, module in model.named_modules():
            if next(iter(module.children()), None) is not None:
                continue
            pre, post = make_hooks(name, type(module).__name__)
            stack.enter_context(module.register_forward_pre_hook(pre))
            stack.enter_context(module.register_forward_hook(post))
        yield log


def time_layers(model: nn.Module, forward: Callable[[], Any], timer: Timer,
                policy: Policy) -> LayerTiming:
    """Run ``forward`` with leaf hooks under the measurement ``policy`` (already warm)."""
    per_call: list[list[float]] = []
    outside: list[float] = []
    names: list[tuple[str, str]] = []

    with leaf_hooks(model, timer) as log:
        def run() -> float:
            log.clear()
            total = time_call(timer, forward)  # synchronised: every mark is complete
            names[:] = [(name, kind) for name, kind, _, _ in log]
            per_call.append([timer.elapsed_ms(start, end) for _, _, start, end in log])
            outside.append(total - sum(per_call[-1]))
            return total

        hooked = measure(run, policy)
    medians = [stats.percentile([it[i] for it in per_call], 50) for i in range(len(names))]
    calls = [(n, k, t) for (n, k), t in zip(names, medians, strict=True)]
    return LayerTiming(calls, hooked, outside)


def layer_rows(analysis: Any, timing: LayerTiming, peak: Peak | None) -> list[dict[str, Any]]:
    """One row per leaf call plus the ``(outside leaf modules)`` row, slowest first.

    ``analysis`` is the :class:`~archstat.analysis.Analysis` (``macs`` convention) of the
    same model, batch and dtype; its leaf records are matched to the timed calls in
    execution order.
    """
    trace = analysis.trace
    macs = analysis.layers["flops"].tolist()
    leaves = [i for i, r in enumerate(trace.records) if r.leaf]
    timed = [name for name, _, _ in timing.calls]
    if [trace.records[i].name for i in leaves] != timed:
        raise ArchstatError("per-layer timing: the timed leaf calls do not match the traced "
                            "ones (does the model's forward depend on more than its input?)")
    total_ms = stats.percentile(timing.hooked_ms, 50)
    rows = [_row(name, kind, ms, total_ms, 2 * macs[i],
                 sum(stats.record_traffic(trace, trace.records[i])), peak)
            for i, (name, kind, ms) in zip(leaves, timing.calls, strict=True)]
    others = [i for i, r in enumerate(trace.records) if not r.leaf]
    rows.append(_row(
        OUTSIDE, "", stats.percentile(timing.outside_ms, 50), total_ms,
        2 * sum(macs[i] for i in others),
        sum(sum(stats.record_traffic(trace, trace.records[i])) for i in others), peak,
    ))
    return sorted(rows, key=lambda r: -r["time_ms"])


def _row(name: str, kind: str, ms: float, total_ms: float, flops: int, nbytes: int,
         peak: Peak | None) -> dict[str, Any]:
    intensity = stats.arithmetic_intensity(flops, nbytes)
    return {
        "name": name or "(root)",
        "type": kind,
        "time_ms": ms,
        "time_pct": 100.0 * ms / total_ms if total_ms else None,
        "flops": int(flops),
        "bytes": int(nbytes),
        "gflops_achieved": flops / (ms / 1e3) / 1e9 if ms else None,
        "arithmetic_intensity": intensity,
        "bound": (stats.bound(intensity, peak.tflops, peak.bandwidth_gbs)
                  if peak is not None and intensity is not None else None),
    }
