"""The optimizer step of a training step, traced on meta: the ops torch's optimizer runs.

An optimizer's update is elementwise work per parameter (``p -= lr * g`` for SGD; moment
updates, a square root and a division for Adam). Rather than a formula per optimizer,
archstat runs torch's own optimizer, in its foreach implementation (torch's default on
GPU), on meta copies of the trainable parameters with meta gradients, and records its
ops. Two steps run and the second is kept: the steady state, after the first has made
the state (SGD with momentum clones the gradient into its buffer on the first step and
multiplies and adds on every later one).

Conventions count these ops like any other: ``full`` one operation per element of each
``_foreach_`` op's tensors; ``macs``, ``flops``, ``fvcore`` and ``lecture`` count no
elementwise work, so the step is 0 there (and said so).
"""

from __future__ import annotations

from typing import Any

import torch

from archstat.errors import ArchstatError, did_you_mean
from archstat.trace.ops import OpEvent, shapes_of
from archstat.trace.tracer import Trace, _NoDynamoMode

#: The optimizers archstat models, as torch builds them (foreach implementation).
OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw")


def make_optimizer(name: str, params: list[torch.Tensor], foreach: bool | None = True
                   ) -> torch.optim.Optimizer:
    """The torch optimizer an archstat optimizer name stands for (default hyperparameters;
    SGD's momentum 0.9, AdamW's weight decay 0.01)."""
    if name == "adam":
        return torch.optim.Adam(params, foreach=foreach)
    if name == "adamw":
        return torch.optim.AdamW(params, foreach=foreach)
    if name in ("sgd", "sgd-momentum"):
        momentum = 0.9 if name == "sgd-momentum" else 0.0
        return torch.optim.SGD(params, lr=0.1, momentum=momentum, foreach=foreach)
    raise ArchstatError(f"unknown optimizer {name!r}{did_you_mean(name, OPTIMIZERS)}; "
                        f"choose one of {', '.join(OPTIMIZERS)}")


class _StepRecorder(_NoDynamoMode):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[OpEvent] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.events.append(OpEvent(func, shapes_of(tuple(args)), shapes_of(kwargs),
                                   shapes_of(out), -1, phase="optimizer"))
        return out


def optimizer_step(trace: Trace, optimizer: str) -> list[OpEvent]:
    """The ops of one steady-state ``optimizer.step()`` over the trainable parameters the
    traced forward read (each once), in ``trace``'s dtype."""
    trainable: dict[int, torch.Tensor] = {}
    for event in trace.events:
        for serial in event.inputs:
            meta = trace.tensors[serial]
            if meta.role == "param" and meta.requires_grad:
                trainable.setdefault(meta.storage, torch.empty(
                    meta.shape, dtype=getattr(torch, meta.dtype), device="meta"))
    params = [p.requires_grad_() for p in trainable.values()]
    if not params:
        return []
    for p in params:
        p.grad = torch.empty_like(p)
    opt = make_optimizer(optimizer, params)
    opt.step()
    recorder = _StepRecorder()
    with recorder:
        opt.step()
    return recorder.events
