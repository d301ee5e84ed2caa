"""Measure on real tensors what :mod:`archstat.memory` estimates on the meta device.

This is the check behind the estimates, not a way to get them: it allocates the model
and runs it. Two levels, in bytes, each the counterpart of one estimate:

* tensor level (:func:`measure_forward`, :func:`measure_peaks`): the storages that ops
  return (through :class:`~archstat.trace.tracer.StorageWatch`), from the moment an op makes
  them until torch frees them; memory a kernel allocates and frees internally (a
  convolution's workspace) and an allocator's caching are not counted, on either side.
  Against ``peak_activation_bytes``.
* allocator level (:func:`allocator_peak`): every allocation torch's CPU allocator
  makes during the forward, kernel workspaces included, from the profiler's memory
  events. Against ``allocator_peak_bytes`` (:mod:`archstat.workspace`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.trace import cpupath
from archstat.trace.metakernels import tensors_in
from archstat.trace.tracer import StorageWatch
from archstat.zoo import get_model_info

#: Square input sizes tried, smallest first, by :func:`smallest_input`.
SIZES = (32, 64, 128, 224, 227)


@dataclass(frozen=True)
class Measured:
    """``peak_activation_bytes``: the most bytes of storages made by the forward's ops
    live at once. ``saved_activation_bytes`` (training only, else None): the storages
    autograd saved for backward, each once, the input's and the weights' excluded."""

    peak_activation_bytes: int
    saved_activation_bytes: int | None


def zoo_model(name: str, device: str | torch.device = "cpu", **config: Any) -> nn.Module:
    """Zoo model ``name`` with real, zero-filled parameters and buffers on ``device``:
    built on meta and materialised, which skips the random initialisation (memory does
    not depend on the values)."""
    with torch.device("meta"):
        model = get_model_info(name).builder(**config)
    model = model.to_empty(device=device)
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.zero_()
    return model


def smallest_input(name: str, batch: int = 2) -> tuple[int, ...]:
    """The smallest square input (without batch) among SIZES that zoo model ``name``
    accepts at ``batch``, to keep a real run cheap: most take 32x32, the paper's GoogLeNet
    needs 224 for its fixed 7x7 average pool, AlexNet-2012 227 for its fixed classifier."""
    from archstat.analysis import analyze

    channels = get_model_info(name).input_shape[0]
    for size in SIZES:
        try:
            analyze(name, input_shape=(channels, size, size), batch=batch)
        except ArchstatError:
            continue
        return (channels, size, size)
    raise ArchstatError(f"{name} accepts none of the input sizes {SIZES}")


def torch_optimizer(name: str, params: Sequence[nn.Parameter],
                    foreach: bool | None = None) -> torch.optim.Optimizer:
    """The torch optimizer an archstat optimizer name stands for (``sgd``, ``sgd-momentum``
    or ``adam``). The estimates assume the foreach implementation (``foreach=True``,
    torch's default on GPU; on the CPU torch defaults to a per-parameter loop)."""
    if name == "adam":
        return torch.optim.Adam(params, foreach=foreach)
    momentum = {"sgd": 0.0, "sgd-momentum": 0.9}[name]
    return torch.optim.SGD(params, lr=0.1, momentum=momentum, foreach=foreach)


def _existing(model: nn.Module, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [*inputs, *model.parameters(), *model.buffers()]


def measure_forward(model: nn.Module, inputs: Sequence[torch.Tensor],
                    train: bool = False) -> Measured:
    """Run ``model(*inputs)`` once, in eval mode under ``no_grad`` or, with ``train``, in
    training mode with autograd, and measure its activations (see :class:`Measured`)."""
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
    watch = StorageWatch(existing)
    try:
        with torch.set_grad_enabled(train), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), watch:
            output = model(*inputs)
        # ``saved`` is keyed by address, which is only unique while ``output`` keeps the
        # graph, and so every saved storage, alive.
        total = sum(saved.values()) if train else None
        del output
    finally:
        model.train(was_training)
    return Measured(watch.peak_bytes, total)


def measure_training_step(model: nn.Module, inputs: Sequence[torch.Tensor],
                          optimizer: torch.optim.Optimizer) -> int:
    """Peak bytes of a steady-state training step ``loss = sum of the outputs' sums;
    loss.backward(); optimizer.step(); optimizer.zero_grad()``: parameters, buffers,
    inputs and optimizer state, plus the most that the step's ops hold at once. One
    unmeasured step runs first, so that the optimizer's state exists."""

    def step() -> None:
        output = model(*inputs)
        outputs = [output] if isinstance(output, torch.Tensor) else list(output)
        sum(o.sum() for o in outputs).backward()
        optimizer.step()
        optimizer.zero_grad()

    model.train()
    step()
    state = [v for s in optimizer.state.values() for v in s.values()
             if isinstance(v, torch.Tensor)]
    existing = [*_existing(model, inputs), *state]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in existing}
    watch = StorageWatch(existing)
    with watch:
        step()
    return sum(storages.values()) + watch.peak_bytes


class _DeepWatch(StorageWatch):
    """A StorageWatch that also sees inside the CPU kernels the trace follows op by op
    (``cpupath.DESCEND``: the transformer fast path) and, below them, decomposes the
    CompositeImplicitAutograd ops it meets (``layer_norm``), as the trace does."""

    def __init__(self, existing: Sequence[torch.Tensor] = ()) -> None:
        super().__init__(existing)
        self._depth = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = kwargs or {}
        composite = self._depth and torch._C._dispatch_has_kernel_for_dispatch_key(
            func.name(), "CompositeImplicitAutograd")
        cpu = all(t.device.type == "cpu" for t in tensors_in((args, kwargs)))
        if cpu and (func in cpupath.DESCEND or composite):
            self._depth += 1
            try:
                with self:
                    if func in cpupath.DESCEND:
                        return func.redispatch(cpupath.CPU_KEYS, *args, **kwargs)
                    out = func.decompose(*args, **kwargs)
                    if out is not NotImplemented:
                        return out
            finally:
                self._depth -= 1
        return super().__torch_dispatch__(func, types, args, kwargs)


def available_memory() -> int | None:
    """Bytes of physical memory free now (None where the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _call(model: nn.Module, inputs: Sequence[Any], kwargs: dict[str, Any] | None) -> Any:
    return model(*inputs, **(kwargs or {}))


def allocator_peak(model: nn.Module, inputs: Sequence[Any], train: bool = False,
                   warmup: bool = True, kwargs: dict[str, Any] | None = None) -> int:
    """Allocator level: the most bytes torch's CPU allocator held at once, above what it
    held when ``model(*inputs, **kwargs)`` started, over that one call (eval mode under
    ``no_grad``, or with ``train`` training mode with autograd).

    Counted: every allocation and free that torch's profiler reports during the call
    (``torch.profiler.profile(profile_memory=True)``, the ``[memory]`` events of
    ``prof.profiler.kineto_results``): each tensor's storage, also those a kernel makes
    and frees inside itself, and the buffers oneDNN (through ideep) takes from torch's
    allocator (weight and activation reorders to blocked layouts, RNN scratchpads and
    workspaces), and the tensors torch wraps Python numbers in. The running sum of their
    sizes (allocations positive, frees negative), in time order, starts at 0, and the
    peak is its largest value; what the call returns is still held at its end.
    Parameters, buffers and inputs exist before the call and are not counted. With
    ``warmup`` one unmeasured call runs first, so that one-time initialisation (lazy
    modules, first-call caches) is not counted.

    Not counted: memory that does not come from torch's CPU allocator (MKL's own buffers
    for GEMM packing, OpenMP thread stacks, Python objects), nor, should a forward free
    memory it did not allocate, anything but a smaller running sum. The figure depends
    on the machine: oneDNN picks layouts by CPU, some buffers are per thread."""
    from torch.profiler import ProfilerActivity, profile

    was_training = model.training
    model.train(train)
    try:
        with torch.set_grad_enabled(train):
            if warmup:
                _call(model, inputs, kwargs)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                output = _call(model, inputs, kwargs)
            del output
    finally:
        model.train(was_training)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


@dataclass(frozen=True)
class MeasuredPeaks:
    """One real inference forward on the CPU, in bytes, both above what exists before it
    (parameters, buffers, inputs): ``tensor_peak_bytes``, the most bytes of storages made
    by its ops live at once (a StorageWatch that also sees inside the transformer fast
    path, as the trace does); ``allocator_peak_bytes``, :func:`allocator_peak`."""

    tensor_peak_bytes: int
    allocator_peak_bytes: int


def measure_peaks(model: nn.Module, inputs: Sequence[Any],
                  kwargs: dict[str, Any] | None = None) -> MeasuredPeaks:
    """Run ``model(*inputs, **kwargs)`` on the CPU in eval mode under ``no_grad`` and
    measure both peaks (see :class:`MeasuredPeaks`)."""
    was_training = model.training
    model.eval()
    watch = _DeepWatch([*tensors_in((list(inputs), kwargs or {})), *model.parameters(),
                        *model.buffers()])
    try:
        with torch.no_grad(), watch:
            output = _call(model, inputs, kwargs)
        del output
    finally:
        model.train(was_training)
    return MeasuredPeaks(watch.peak_bytes, allocator_peak(model, inputs, kwargs=kwargs))
