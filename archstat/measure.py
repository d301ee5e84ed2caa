"""Measure on real tensors what :mod:`archstat.memory` estimates on the meta device.

This is the check behind the estimates, not a way to get them: it allocates the model
and runs it. Counted here, in bytes, are the storages that ops return (through
:class:`~archstat.tracer.StorageWatch`), from the moment an op makes them until torch
frees them; memory a kernel allocates and frees internally (a convolution's workspace)
and an allocator's caching are not, on either side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.tracer import StorageWatch
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
