"""archstat's memory estimates against two oracles of a real CPU run, per model.

    python benchmarks/memory_oracles.py            # zoo at its default input, batch 1
    python benchmarks/memory_oracles.py --quick    # zoo at its smallest input, batch 2
    python benchmarks/memory_oracles.py --blocks   # only the RNN/attention blocks
    python benchmarks/memory_oracles.py --train    # also the training forward
    python benchmarks/memory_oracles.py -o benchmarks/results/memory_oracles_cpu.md

Prints a Markdown table, a row per model (the zoo, then the RNN, transformer and SDPA
blocks of ``BLOCKS``), inference: archstat's tensor-level peak (``peak_activation_bytes``)
against ``tensor_peak`` below, and its allocator-level peak (``allocator_peak_bytes``)
against ``allocator_peak``, with what the allocator estimate does not model; with
``--train``, a second table of the training forward's saved activations and peak.

The tensor-level oracle reads nothing of archstat (the watch is written again, so that the
oracle shares no code with what it checks); the allocator-level one, ``allocator_peak``,
lives in :mod:`archstat.realrun` (``archstat memory --measure`` runs it too) and reads only
torch's profiler:

* ``tensor_peak`` counts the storages that aten ops return, from the op that makes them
  until torch frees them, with their full size; storages of the inputs, parameters and
  buffers are not counted. Unlike ``archstat.realrun.measure_forward``'s StorageWatch, it
  also looks inside the CPU kernels that are themselves sequences of dispatcher calls
  (``FUSED``: the transformer fast path), and through the CompositeImplicitAutograd ops
  those kernels call (``layer_norm``), as archstat's trace decomposes them: without this,
  ``nn.TransformerEncoderLayer``'s fast path looks like one op that makes only its
  output. Memory a kernel takes other than by a dispatcher call (oneDNN's weight reorders
  and scratchpads, im2col buffers made with ``at::native::`` calls) is not tensor-level.
* ``allocator_peak`` is what the process really allocates: see its docstring.
"""

from __future__ import annotations

import argparse
import re
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archstat.realrun import allocator_peak

aten = torch.ops.aten
_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)

#: Ops whose CPU kernel is a sequence of dispatcher calls (aten/src/ATen/native/
#: transformers/{transformer,attention}.cpp): their intermediates are tensors.
FUSED = {aten._transformer_encoder_layer_fwd.default, aten._native_multi_head_attention.default}


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _composite(func: Any) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(func.name(),
                                                          "CompositeImplicitAutograd")


class TensorWatch(TorchDispatchMode):
    """Bytes of the storages aten ops create, live now (``live_bytes``) and at most
    (``peak_bytes``, sampled after every op), on real tensors. A storage counts from the
    op that returns it until torch frees it (a weakref on the storage), once, with its
    full size; storages of ``existing`` never count. Descends into ``FUSED`` ops by
    calling their CPU kernel under the watch, and, below such an op, decomposes
    CompositeImplicitAutograd ops."""

    def __init__(self, existing: Sequence[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._external = {t.untyped_storage()._cdata for t in existing}
        self._tracked: dict[int, weakref.ref] = {}
        self._depth = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # spare the 0.7 s import of torch._dynamo
        return False

    def _free(self, key: int, nbytes: int, _ref: Any = None) -> None:
        del self._tracked[key]
        self.live_bytes -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = kwargs or {}
        cpu = all(t.device.type == "cpu" for t in _tensors((args, kwargs)))
        if cpu and (func in FUSED or (self._depth and _composite(func))):
            self._depth += 1
            try:
                with self:
                    if func in FUSED:
                        return func.redispatch(_CPU, *args, **kwargs)
                    out = func.decompose(*args, **kwargs)
                    if out is not NotImplemented:
                        return out
            finally:
                self._depth -= 1
        out = func(*args, **kwargs)
        for t in _tensors(out):
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._external or key in self._tracked:
                continue
            self._tracked[key] = weakref.ref(storage, partial(self._free, key, storage.nbytes()))
            self.live_bytes += storage.nbytes()
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return out


def _existing(model: nn.Module, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [*_tensors(list(inputs)), *model.parameters(), *model.buffers()]


def tensor_peak(model: nn.Module, inputs: Sequence[Any],
                train: bool = False) -> tuple[int, int | None]:
    """Tensor-level oracle: ``(peak, saved)`` of one ``model(*inputs)``, in eval mode under
    ``no_grad`` or, with ``train``, in training mode with autograd. ``peak``: the most
    bytes of op-made storages live at once (``TensorWatch``); ``saved`` (training only,
    else None): the storages autograd saved for backward, each once, the inputs' and the
    weights' excluded."""
    existing = _existing(model, inputs)
    skip = {t.untyped_storage().data_ptr() for t in existing}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = model.training
    model.train(train)
    watch = TensorWatch(existing)
    try:
        with torch.set_grad_enabled(train), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), watch:
            output = model(*inputs)
        # addresses are unique only while ``output`` keeps the graph alive
        total = sum(saved.values()) if train else None
        del output
    finally:
        model.train(was_training)
    return watch.peak_bytes, total


# --------------------------------------------------------------------------- blocks
class SDPAttention(nn.Module):
    """A fused qkv projection and ``F.scaled_dot_product_attention`` (on the CPU:
    ``_scaled_dot_product_flash_attention_for_cpu``)."""

    def __init__(self, dim: int = 64, heads: int = 4, causal: bool = False) -> None:
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4).unbind(0)
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` on one tensor, batch first: in eval, its fast path
    (``_native_multi_head_attention``)."""

    def __init__(self, dim: int = 64, heads: int = 4, need_weights: bool = False) -> None:
        super().__init__()
        self.need_weights = need_weights
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


def _encoder(dim: int = 64, heads: int = 4, ff: int = 256, layers: int = 2,
             batch_first: bool = True) -> nn.Module:
    layer = nn.TransformerEncoderLayer(dim, heads, ff, batch_first=batch_first)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


#: name -> (builder, input shape without batch, batch). Recurrent layers are time-major
#: unless batch_first: their "batch" argument is the sequence length, and the shape
#: starts with the batch. The issue's cases: LSTM/GRU(32, 64, 2) over 20 steps of batch
#: 1, a 2-layer encoder of width 64 (feed-forward 256) on the fast path; ff2048 is
#: nn.TransformerEncoderLayer's default width.
BLOCKS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "lstm": (lambda: nn.LSTM(32, 64, 2), (1, 32), 20),
    "lstm_batch_first": (lambda: nn.LSTM(32, 64, 2, batch_first=True), (20, 32), 1),
    "lstm_bidirectional": (lambda: nn.LSTM(32, 64, 2, bidirectional=True), (1, 32), 20),
    "lstm_proj": (lambda: nn.LSTM(32, 64, 2, proj_size=16), (1, 32), 20),
    "gru": (lambda: nn.GRU(32, 64, 2), (1, 32), 20),
    "gru_bidirectional": (lambda: nn.GRU(32, 64, 2, bidirectional=True), (1, 32), 20),
    "rnn_tanh": (lambda: nn.RNN(32, 64, 2), (1, 32), 20),
    "encoder_fastpath": (_encoder, (20, 64), 1),
    "encoder_ff2048": (lambda: _encoder(ff=2048), (20, 64), 1),
    "encoder_seq_first": (lambda: _encoder(batch_first=False), (1, 64), 20),
    "mha_fastpath": (SelfAttention, (20, 64), 1),
    "mha_fastpath_weights": (lambda: SelfAttention(need_weights=True), (20, 64), 1),
    "sdpa": (SDPAttention, (20, 64), 1),
    "sdpa_causal": (lambda: SDPAttention(causal=True), (20, 64), 2),
}


def _zoo_cases(quick: bool) -> list[tuple[str, Callable[[], nn.Module], tuple[int, ...], int]]:
    from archstat.realrun import smallest_input, zoo_model
    from archstat.zoo import get_model_info, list_models

    cases = []
    for name in list_models():
        shape, batch = ((smallest_input(name, 2), 2) if quick
                        else (get_model_info(name).input_shape, 1))
        cases.append((name, partial(zoo_model, name), shape, batch))
    return cases


def _ratio(a: int | None, b: int | None) -> str:
    if a is None or not b:
        return "-"
    return "exact" if a == b else f"{a / b:.3f}"


def _fmt(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


@dataclass
class Row:
    """One model's figures, bytes (None where an estimate failed or was not asked)."""

    name: str
    input: str
    tensor_est: int | None
    tensor: int
    alloc_est: int | None
    alloc: int
    unmodelled: list[str]
    saved_est: int | None = None
    saved: int | None = None
    train_est: int | None = None
    train: int | None = None

    def inference_cells(self) -> str:
        note = "; ".join(self.unmodelled)
        return (f"| {self.name} | {self.input} | {_fmt(self.tensor_est)} | {_fmt(self.tensor)} "
                f"| {_ratio(self.tensor_est, self.tensor)} | {_fmt(self.alloc_est)} "
                f"| {_fmt(self.alloc)} | {_ratio(self.alloc_est, self.alloc)} "
                f"| {f'{self.alloc / self.tensor:.3f}' if self.tensor else '-'} | {note} |")

    def training_cells(self) -> str:
        return (f"| {self.name} | {self.input} | {_fmt(self.saved_est)} | {_fmt(self.saved)} "
                f"| {_ratio(self.saved_est, self.saved)} | {_fmt(self.train_est)} "
                f"| {_fmt(self.train)} | {_ratio(self.train_est, self.train)} |")


def measure_row(name: str, build: Callable[[], nn.Module], shape: tuple[int, ...],
                batch: int, train: bool = False) -> Row:
    """Estimate (``estimate_memory``) and measure (``tensor_peak``, ``allocator_peak``)
    one model at ``batch``; with ``train`` also the training forward's saved activations
    and peak."""
    from archstat.memory import estimate_memory

    torch.manual_seed(0)
    model = build()
    inputs = (torch.randn(batch, *shape),)
    est = alloc_est = None
    unmodelled: list[str] = []
    try:
        inference = estimate_memory(model, input_shape=shape, batch=batch).estimates[0]
        est, alloc_est = inference.peak_activation_bytes, inference.allocator_peak_bytes
        unmodelled = inference.allocator_unmodelled
    except Exception as exc:  # an estimate that fails is a row, not the end of the table
        unmodelled = [f"estimate failed: {type(exc).__name__}: {exc}"]
    row = Row(name, f"{batch}x{'x'.join(map(str, shape))}", est, tensor_peak(model, inputs)[0],
              alloc_est, allocator_peak(model, inputs), unmodelled)
    if train:
        training = estimate_memory(model, input_shape=shape, batch=batch,
                                   train=True).estimates[0]
        row.saved_est, row.train_est = (training.saved_activation_bytes,
                                        training.peak_activation_bytes)
        row.train, row.saved = tensor_peak(model, inputs, train=True)
    return row


INFERENCE_HEADER = (
    "| model | input | tensor est | tensor measured | est/measured | allocator est "
    "| allocator measured | est/measured | allocator/tensor | not modelled |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
)
TRAINING_HEADER = (
    "| model | input | saved est | saved | est/saved | train peak est | train peak "
    "| est/measured |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|"
)


def _onednn() -> str:
    found = re.search(r"(?:MKL-DNN|oneDNN) (v[\d.]+)", torch.__config__.show())
    return f"oneDNN {found[1]}" if found else "no oneDNN"


def machine() -> str:
    """torch, threads, CPU capability and oneDNN, in a line."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, {_onednn()}"
            f"{'' if torch.backends.mkldnn.is_available() else ' (off)'}")


def _summary(rows: list[Row]) -> str:
    tensor = sum(r.tensor_est == r.tensor for r in rows)
    alloc = sum(r.alloc_est == r.alloc for r in rows)
    off = [f"{r.name} ({_ratio(r.alloc_est, r.alloc)}, {_fmt(r.alloc - (r.alloc_est or 0))} "
           "bytes short)" for r in rows if r.alloc_est != r.alloc]
    return (f"Exact: tensor level {tensor} of {len(rows)}, allocator level {alloc} of "
            f"{len(rows)}." + (f" Not exact at allocator level: {', '.join(off)}." if off else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="zoo at its smallest input, batch 2 (as the validation test)")
    parser.add_argument("--blocks", action="store_true", help="only the blocks")
    parser.add_argument("--train", action="store_true",
                        help="also the training forward: saved activations and peak")
    parser.add_argument("-o", "--output", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    command = "python benchmarks/memory_oracles.py " + " ".join(sys.argv[1:])
    head = ["# Memory estimates against a real CPU run\n",
            f"`{command.strip()}` on {machine()}.\n",
            "Bytes, inference (eval, no_grad), above the parameters, buffers and inputs. "
            "tensor: archstat's peak activations (`estimate_memory`) against `tensor_peak` "
            "(the storages ops return, inside fused kernels too); allocator: "
            "`allocator_peak_bytes` (liveness plus `archstat.workspace`'s per-op kernel "
            "workspaces) against `archstat.realrun.allocator_peak` (the profiler's "
            "allocation events). Allocator-level figures depend on the thread count and "
            "the CPU.\n"]
    print("\n".join(head))
    print(INFERENCE_HEADER, flush=True)
    cases = [] if args.blocks else _zoo_cases(args.quick)
    cases += [(name, build, shape, batch) for name, (build, shape, batch) in BLOCKS.items()]
    rows = []
    for name, build, shape, batch in cases:
        rows.append(measure_row(name, build, shape, batch, args.train))
        print(rows[-1].inference_cells(), flush=True)
    lines = [*head, INFERENCE_HEADER, *(r.inference_cells() for r in rows), "",
             _summary(rows)]
    print("\n" + _summary(rows))
    if args.train:
        training = [TRAINING_HEADER, *(r.training_cells() for r in rows)]
        print("\n" + "\n".join(training))
        lines += ["", "Training forward (train mode, autograd on), tensor level:", "",
                  *training]
    if args.output:
        with open(args.output, "w") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
