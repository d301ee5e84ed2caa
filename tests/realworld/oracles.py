"""Independent counts of a real CPU run, to hold archstat's meta-device numbers against.

None of these reads archstat's trace or tables: each runs the model itself, with real
(seeded, random) weights and inputs, and counts the way another tool or torch does.

* ``model_params``: the model's own parameter count, shared tensors once.
* ``torch_flops``: ``torch.utils.flop_counter.FlopCounterMode`` over one forward with
  autograd on and the reference kernels (math SDPA; for recurrent layers, oneDNN off),
  so that attention and RNN cells run as matmuls it has formulas for, in total and per
  top-level module; the same forward records which parameters any op read
  (``ParamReads``), the oracle for "parameters the forward uses".
* ``fvcore_flops``: fvcore's ``FlopCountAnalysis`` (TorchScript tracing), in total and
  per top-level module, where fvcore can trace the model.
* memory: real CPU runs of a subset of the corpus, measured by
  :func:`archstat.realrun.measure_peaks` (a storage watch and the profiler's ``[memory]``
  events); see test_corpus.test_memory_estimates_against_real_cpu_runs.

Per-module figures are keyed by the top-level child's name, with ``""`` for the ops the
root module runs itself (residual adds, reshapes and heads written in its ``forward``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat denormal floats as zero while the oracles run: random weights drive some
    activations there, where x86 arithmetic is several times slower. No count depends
    on values. torch has no getter for the flag; its default (off) is restored."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def split_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``archstat.analyze``'s ``inputs`` convention: a tensor, a tuple of positional
    inputs, or a dict of keyword inputs."""
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    return tuple(inputs), {}


def model_params(model: nn.Module) -> int:
    """Parameter elements of ``model``, a tensor shared by several modules once."""
    unique = {id(p): p for p in model.parameters()}
    return sum(p.numel() for p in unique.values())


class ParamReads(TorchDispatchMode):
    """Remember the storage of every tensor an op receives, to tell which parameters a
    forward read. Storages, not tensors: a view of a weight (``w[:, :k]``, ``w.t()``)
    reads the weight."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        for t in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(t, torch.Tensor):
                self.storages.add(t.untyped_storage().data_ptr())
        return func(*args, **(kwargs or {}))

    def params_read(self, model: nn.Module) -> int:
        unique = {id(p): p for p in model.parameters()}
        return sum(p.numel() for p in unique.values()
                   if p.untyped_storage().data_ptr() in self.storages)


@dataclass(frozen=True)
class TorchRun:
    """One real forward under FlopCounterMode: FLOPs (2 per multiply-add) in total, per
    top-level module and per op, and the parameter elements any op read."""

    flops: int
    by_module: dict[str, int]
    by_op: dict[str, int]
    params_read: int


def torch_flops(model: nn.Module, inputs: Any, train: bool = False) -> TorchRun:
    """Run ``model`` on its real inputs under FlopCounterMode (autograd on, math SDPA)."""
    args, kwargs = split_inputs(inputs)
    model.train(train)
    counter = FlopCounterMode(display=False)
    reads = ParamReads()
    # FlopCounterMode has formulas for matmuls, none for the fused kernels: SDPA's flash
    # kernel on the CPU, and oneDNN's RNN layer (aten.mkldnn_rnn_layer), which LSTMs
    # take on the CPU. The math SDPA backend and oneDNN off (only for recurrent models:
    # it also slows convolutions) make both matmuls it counts. Autograd on, as when a
    # user counts a training step.
    has_rnn = any(isinstance(m, nn.RNNBase) for m in model.modules())
    with warnings.catch_warnings():
        # mkldnn.flags also sets oneDNN's TF32 switch, which warns without an Intel GPU
        warnings.filterwarnings("ignore", "TF32 acceleration on top of oneDNN")
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), flush_denormals(), \
                torch.backends.mkldnn.flags(enabled=not has_rnn), counter, reads:
            model(*args, **kwargs)
    counts = counter.get_flop_counts()
    by_module = _top_level(counts, model)
    total = counter.get_total_flops()
    by_module[""] = total - sum(by_module.values())
    by_op = {op.__name__: n for op, n in counts.get("Global", {}).items()}
    return TorchRun(total, _nonzero(by_module), _nonzero(by_op), reads.params_read(model))


def _top_level(counts: dict[str, dict[Any, int]], model: nn.Module) -> dict[str, int]:
    """FLOPs per top-level child from FlopCounterMode's per-module counts, which are
    keyed ``Root.child.grandchild`` and include what ran in nested calls. A container
    that is never called itself (an nn.ModuleList) has no key: its outermost called
    descendants are summed instead."""
    root = type(model).__name__
    totals = {name: sum(ops.values()) for name, ops in counts.items()}
    out = {}
    for child, _ in model.named_children():
        prefix = f"{root}.{child}"
        keys = [k for k in totals if k == prefix or k.startswith(prefix + ".")]
        outer = [k for k in keys if not any(k.startswith(o + ".") for o in keys)]
        out[child] = sum(totals[k] for k in outer)
    return out


@dataclass(frozen=True)
class FvcoreRun:
    """fvcore's count (its own unit: one multiply-add is one flop, plus norms and some
    pools), in total and per top-level module."""

    flops: int
    by_module: dict[str, int]
    by_op: dict[str, int]  # fvcore's handle names: conv, linear, matmul, batch_norm, ...
    skipped: dict[str, int]  # ops fvcore has no handle for, by call count


def fvcore_flops(model: nn.Module, inputs: Any, train: bool = False) -> FvcoreRun:
    """FlopCountAnalysis of ``model`` (in eval mode unless ``train``); raises what fvcore's
    tracing raises.

    fvcore passes inputs positionally: keyword inputs are put in the order of the
    forward's signature (None for a parameter that is skipped)."""
    from fvcore.nn import FlopCountAnalysis

    model.train(train)
    counter = FlopCountAnalysis(model, _positional(model, inputs))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings(), flush_denormals():
        warnings.simplefilter("ignore")
        total = counter.total()
        found = counter.by_module()
        by_op = dict(counter.by_operator())
        skipped = dict(counter.unsupported_ops())
    by_module = {name: found.get(name, 0) for name, _ in model.named_children()}
    by_module[""] = total - sum(by_module.values())
    return FvcoreRun(total, _nonzero(by_module), _nonzero(by_op), dict(sorted(skipped.items())))


def _positional(model: nn.Module, inputs: Any) -> tuple[Any, ...]:
    args, kwargs = split_inputs(inputs)
    if not kwargs:
        return args
    params = list(inspect.signature(model.forward).parameters.values())
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][len(args):]
    names = [p.name for p in positional]
    missing = sorted(set(kwargs) - set(names))
    if missing:
        raise TypeError(f"fvcore takes positional inputs only; {missing} are keyword-only")
    last = max(names.index(k) for k in kwargs)
    return (*args, *(kwargs.get(p.name, p.default) for p in positional[: last + 1]))


def _nonzero(by_module: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in sorted(by_module.items()) if count}
