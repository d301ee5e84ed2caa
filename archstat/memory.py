"""``archstat.estimate_memory``: will a model fit? Its peak memory for inference, or for
one training step, estimated on the meta device (nothing is allocated).

All figures are bytes, for the traced batch and dtype:

* ``params_bytes``, ``buffers_bytes``: every parameter and buffer of the model (shared
  ones once), floating-point ones in the chosen dtype.
* ``input_bytes``: the model's input. It is the caller's tensor and exists before and
  after the forward, so it is not an activation; the totals include it.
* ``peak_activation_bytes``: the most activation storage live at once during the forward
  (:mod:`archstat.trace.liveness`), reached in ``peak_layer``; ``live_at_peak`` lists it. In
  training this is the training-mode forward, where what autograd saves stays live.
* ``inference_peak_bytes`` = params + buffers + input + peak activations.
* ``allocator_peak_bytes`` (inference, with ``allocator=True`` or ``measure=True``): the
  peak activations as torch's CPU allocator sees them, with the workspaces the CPU
  kernels allocate and free inside themselves (oneDNN's blocked copies, attention
  blocks, ...), modelled per op by
  :mod:`archstat.workspace` for this machine (its thread count and CPU); what it does not
  model is named in ``allocator_unmodelled``. Params, buffers and input excluded, as in
  ``peak_activation_bytes``. It depends on the machine, so it is left out unless asked:
  every other figure is the same on every machine.

With ``measure=True`` the model also runs once on the CPU (inference), and each
estimate's ``measured`` holds the two peaks of that real run
(:class:`archstat.realrun.MeasuredPeaks`): the tensor-level one against
``peak_activation_bytes``, the allocator-level one against ``allocator_peak_bytes``.
Measured figures depend on the machine (threads, CPU, oneDNN's choices).

With ``train=True`` (one step of ``loss.backward(); optimizer.step();
optimizer.zero_grad()``):

* ``saved_activation_bytes``: the storages autograd saves for backward (captured with
  ``saved_tensors_hooks``), each counted once however many ops save it; the input and
  the weights are not activations and are not included.
* ``saved_concat_bytes``: the part of ``saved_activation_bytes`` that concatenations
  made (``torch.cat`` copies its inputs into new storage). In a DenseNet each layer
  concatenates every earlier map of its block anew and autograd keeps each copy, so this
  grows quadratically with the layers of a block; the memory-efficient implementation
  (Pleiss et al. 2017, ``memory_efficient=True`` for the zoo's DenseNets) recomputes the
  concatenations in the backward instead of keeping them.
* ``gradient_bytes``: one gradient per trainable parameter the forward uses (a frozen or
  unused parameter gets none).
* ``optimizer_bytes``: the optimizer's state for those parameters: none for ``sgd``,
  a momentum buffer for ``sgd-momentum``, ``exp_avg`` and ``exp_avg_sq`` plus a 4-byte
  float32 step count per parameter tensor for ``adam`` and ``adamw``.
* ``backward_peak_bytes``: the most the forward and backward hold at once: activations,
  saved activations, activation and parameter gradients, watched while the meta run
  backpropagates the sum of the outputs (gradients start out as None, as after
  ``zero_grad()``).
* ``training_peak_bytes`` = params + buffers + input + optimizer state + the larger of
  ``backward_peak_bytes`` and the optimizer step's own peak: gradients + the step's
  temporaries (one parameter-sized copy for ``adam``, whose foreach implementation,
  torch's default on GPU, materialises ``sqrt(exp_avg_sq)`` for all parameters at once;
  none for the SGDs).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from archstat import workspace
from archstat.analysis import analyze, float_dtype
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean
from archstat.inputs import example_inputs, input_specs, make_inputs
from archstat.realrun import MeasuredPeaks, available_memory, measure_peaks
from archstat.spec import resolve_model
from archstat.trace import liveness
from archstat.trace.metakernels import tensors_in
from archstat.trace.tracer import Trace
from archstat.units import parse_int_list, parse_quantity

if TYPE_CHECKING:
    import pandas as pd

aten = torch.ops.aten

#: Optimizer -> parameter-sized state tensors it keeps per trainable parameter.
OPTIMIZER_STATES = {"sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}
#: Optimizer -> parameter-sized temporaries its step holds at once (foreach implementation).
_STEP_TEMPORARIES = {"sgd": 0, "sgd-momentum": 0, "adam": 1, "adamw": 1}
_ADAM_STEP_BYTES = 4  # Adam's ``state["step"]``: a float32 scalar tensor per parameter
#: The largest batch :func:`largest_batch` looks for.
MAX_BATCH = 2**31
_SECANT_STEPS = 6  # then bisection, should memory be far from linear in the batch


@dataclass(frozen=True)
class LiveGroup:
    """The activation storages live at the peak that one layer made: how many, their
    bytes, and the shape and dtype of the largest."""

    layer: str
    tensors: int
    bytes: int
    shape: tuple[int, ...]
    dtype: str


@dataclass
class MemoryEstimate:
    """The memory of one traced batch; bytes throughout (see the module docstring).
    Training figures are None for an inference estimate."""

    batch: int
    params_bytes: int
    buffers_bytes: int
    input_bytes: int
    peak_activation_bytes: int
    peak_layer: str
    live_at_peak: list[LiveGroup] = field(repr=False)  # in the order the layers ran
    saved_activation_bytes: int | None = None
    saved_concat_bytes: int | None = None
    backward_peak_bytes: int | None = None
    gradient_bytes: int | None = None
    optimizer_bytes: int | None = None
    training_peak_bytes: int | None = None
    #: the training step's forward and backward in MACs, from the same trace (the
    #: optimizer's elementwise step counts no MACs; ``analyze --train -c full`` counts it)
    train_step_macs: int | None = None
    allocator_peak_bytes: int | None = None  # inference only
    allocator_unmodelled: list[str] = field(default_factory=list, repr=False)
    measured: MeasuredPeaks | None = None  # with measure=True

    @property
    def measured_tensor_peak_bytes(self) -> int | None:
        return self.measured.tensor_peak_bytes if self.measured else None

    @property
    def measured_allocator_peak_bytes(self) -> int | None:
        return self.measured.allocator_peak_bytes if self.measured else None

    @property
    def total_bytes(self) -> int:
        """The estimated peak: training_peak_bytes in training, else inference_peak_bytes."""
        if self.training_peak_bytes is not None:
            return self.training_peak_bytes
        return self.inference_peak_bytes

    @property
    def inference_peak_bytes(self) -> int:
        return (self.params_bytes + self.buffers_bytes + self.input_bytes
                + self.peak_activation_bytes)


@dataclass
class MemoryReport(Display):
    """The result of :func:`estimate_memory`: one estimate per batch size, in the order
    asked, and with a budget, the largest batch whose estimated peak fits it (0 when not
    even batch 1 fits; when ``search_capped``, at least that: the search stops at
    MAX_BATCH)."""

    model: str
    input_shape: list[tuple[int, ...]]
    dtype: str
    optimizer: str | None  # None: inference
    estimates: list[MemoryEstimate]
    budget_bytes: int | None = None
    largest_batch: int | None = None
    params: int = 0  # parameter elements the forward reads (as analyze counts them)
    params_unused: int = 0  # and those it never reads; params_bytes holds both
    #: the CPU the allocator-level figures are modelled for (None in training)
    cpu: workspace.CpuFacts | None = None
    #: whether the forward needed real values and ran on the CPU (archstat.analyze)
    executed: bool = False

    @property
    def measured(self) -> bool:
        """Whether the estimates carry a real run's peaks (``measure=True``)."""
        return any(est.measured is not None for est in self.estimates)

    @property
    def train(self) -> bool:
        return self.optimizer is not None

    @property
    def search_capped(self) -> bool:
        """Whether the budget search stopped at MAX_BATCH, so ``largest_batch`` is only a
        lower bound."""
        return self.largest_batch == MAX_BATCH

    @property
    def columns(self) -> list[str]:
        common = ["batch", "params_bytes", "buffers_bytes", "input_bytes",
                  "peak_activation_bytes", "peak_layer"]
        if self.train:
            common += ["saved_activation_bytes", "saved_concat_bytes", "backward_peak_bytes",
                       "gradient_bytes",
                       "optimizer_bytes", "training_peak_bytes", "train_step_macs"]
        else:
            common.append("inference_peak_bytes")
            if self.cpu is not None:
                common.append("allocator_peak_bytes")
        if self.measured:
            common += ["measured_tensor_peak_bytes", "measured_allocator_peak_bytes"]
        return common + (["fits"] if self.budget_bytes is not None else [])

    @property
    def batch_rows(self) -> list[dict[str, Any]]:
        """One row per batch size (``columns``); ``fits`` compares the peak to the budget."""
        rows = []
        for est in self.estimates:
            row = {col: getattr(est, col, None) for col in self.columns}
            if self.budget_bytes is not None:
                row["fits"] = est.total_bytes <= self.budget_bytes
            rows.append(row)
        return rows

    @property
    def batches(self) -> pd.DataFrame:
        """``batch_rows`` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.batch_rows, columns=self.columns)


def parse_budget(fit: int | str) -> int:
    """A ``--fit`` budget in bytes, read as every archstat byte size is
    (:func:`archstat.units.parse_quantity`: ``24GiB`` binary, ``24G`` and ``24GB``
    decimal, a bare number bytes); it must be positive."""
    try:
        budget = parse_quantity(fit, "B")
    except ArchstatError as exc:
        raise ArchstatError(f"memory budget: {exc}") from None
    if budget <= 0:
        raise ArchstatError(f"memory budget must be positive, not {fit!r}")
    return budget


def _optimizer(name: str | None) -> str | None:
    if name is None or name in OPTIMIZER_STATES:
        return name
    raise ArchstatError(f"unknown optimizer {name!r}{did_you_mean(name, OPTIMIZER_STATES)}; "
                        f"choose one of {', '.join(OPTIMIZER_STATES)}")


def _tensor_bytes(tensors: list[torch.Tensor], dtype: torch.dtype) -> int:
    """Bytes of ``tensors`` as the trace holds them: floating point ones in ``dtype``."""
    unique = {id(t): t for t in tensors}.values()
    return sum(t.numel() * (dtype.itemsize if t.is_floating_point() else t.element_size())
               for t in unique)


def _trainable(trace: Trace) -> list[int]:
    """Bytes of each trainable parameter the traced forward used (one per storage)."""
    sizes = {}
    for event in trace.events:
        for serial in event.inputs:
            meta = trace.tensors[serial]
            if meta.role == "param" and meta.requires_grad:
                sizes[meta.storage] = meta.storage_nbytes
    return list(sizes.values())


def _live_at(trace: Trace, profile: liveness.LiveProfile, event: int) -> list[LiveGroup]:
    """What is live while ``event`` runs, grouped by the layer record that made it."""
    groups: dict[int, list[liveness.Lifetime]] = {}
    for lt in profile.live_at(event):
        groups.setdefault(trace.events[lt.start].record, []).append(lt)
    out = []
    for record, spans in sorted(groups.items()):
        largest = trace.tensors[max(spans, key=lambda lt: lt.nbytes).tensor]
        out.append(LiveGroup(trace.records[record].name or "(root)", len(spans),
                             sum(lt.nbytes for lt in spans), largest.shape, largest.dtype))
    return out


def _estimate(module: nn.Module, specs: list[Any] | None, batch: int, dtype: torch.dtype,
              optimizer: str | None, inputs: Any = None,
              cpu: workspace.CpuFacts | None = None) -> tuple[MemoryEstimate, Any]:
    """The estimate at ``batch``, and the Analysis it was made from."""
    analysis = analyze(module, input_shape=specs, batch=batch, dtype=dtype, inputs=inputs,
                       train=optimizer is not None)
    t = analysis.trace
    assert t is not None
    live = liveness.profile(t)
    peak = live.peak_event
    estimate = MemoryEstimate(
        batch=batch,
        params_bytes=_tensor_bytes(list(module.parameters()), dtype),
        buffers_bytes=_tensor_bytes(list(module.buffers()), dtype),
        input_bytes=sum(t.tensors[s].nbytes for s in _input_serials(t)),
        peak_activation_bytes=live.peak_bytes,
        peak_layer=(t.records[t.events[peak].record].name or "(root)") if peak >= 0 else "",
        live_at_peak=_live_at(t, live, peak) if peak >= 0 else [],
    )
    if optimizer is not None:
        _add_training(estimate, t, optimizer)
        estimate.train_step_macs = analysis.totals["train_step_flops"]
    elif cpu is not None:
        allocator = workspace.allocator_profile(t, live, cpu)
        estimate.allocator_peak_bytes = allocator.peak_bytes
        estimate.allocator_unmodelled = allocator.notes()
    return estimate, analysis


def _input_serials(t: Trace) -> list[int]:
    seen: dict[int, int] = {}
    for serial, meta in enumerate(t.tensors):
        if meta.role == "input":
            seen.setdefault(meta.storage, serial)
    return list(seen.values())


def _add_training(est: MemoryEstimate, t: Trace, optimizer: str) -> None:
    trainable = _trainable(t)
    gradients = sum(trainable)
    state = OPTIMIZER_STATES[optimizer] * gradients
    if optimizer in ("adam", "adamw"):
        state += _ADAM_STEP_BYTES * len(trainable)
    step = gradients + _STEP_TEMPORARIES[optimizer] * gradients
    saved = liveness.saved_storages(t)
    concatenated = {t.tensors[s].storage for event in t.events if event.packet is aten.cat
                    for s in event.outputs}
    est.saved_activation_bytes = sum(saved.values())
    est.saved_concat_bytes = sum(n for storage, n in saved.items() if storage in concatenated)
    est.backward_peak_bytes = t.backward_peak_bytes or 0
    est.gradient_bytes = gradients
    est.optimizer_bytes = state
    est.training_peak_bytes = (est.params_bytes + est.buffers_bytes + est.input_bytes + state
                               + max(est.backward_peak_bytes, step))


def largest_batch(total: Callable[[int], int], budget: int) -> int:
    """The largest batch ``b <= MAX_BATCH`` with ``total(b) <= budget`` (0 if none), for a
    ``total`` that grows with the batch.

    Secant steps first, from batches 1 and 2: memory is close to linear in the batch, so
    two or three land next to the answer. The bracket they leave (the largest batch seen
    to fit, the smallest seen not to) is closed by bisection, so the answer is exact even
    where memory is not linear."""
    if total(1) > budget:
        return 0
    low, high = 1, MAX_BATCH + 1  # total(low) fits; total(high) does not, or high is past
    previous, current = 1, 2
    for step in itertools.count():
        if total(current) <= budget:
            low = max(low, current)
        else:
            high = min(high, current)
        if high - low <= 1:
            return low
        following = (low + high) // 2
        slope = (total(current) - total(previous)) / (current - previous)
        if step < _SECANT_STEPS and slope > 0:
            guess = math.floor(current + (budget - total(current)) / slope)
            following = min(max(guess, low + 1), high - 1)
        previous, current = current, following
    raise AssertionError("unreachable")


def estimate_memory(
    model: str | nn.Module,
    input_shape: str | Sequence[Any] | None = None,
    batch: int | str | Sequence[int] = 1,
    dtype: torch.dtype | str = torch.float32,
    train: bool = False,
    optimizer: str | None = None,
    fit: int | str | None = None,
    inputs: Any = None,
    allocator: bool = False,
    measure: bool = False,
    **config: Any,
) -> MemoryReport:
    """Estimate the peak memory of ``model`` for each batch size in ``batch`` (an int,
    ``"1,32,256"`` or a list), for inference or, with ``train``, for one training step with
    ``optimizer`` (``sgd``, the default, ``sgd-momentum``, ``adam`` or ``adamw``; only with
    ``train``).
    With ``fit`` (bytes, or a size such as ``"24GiB"``), also find the largest batch whose
    estimated peak fits it. With ``allocator`` (inference only), also model the peak as
    this machine's CPU allocator sees it; with ``measure`` (inference only, implies
    ``allocator``), run the model once on the CPU at each batch asked and attach the real
    run's peaks (see the module docstring); a model that would not fit in the memory the
    machine has free is refused.

    ``model``, ``input_shape`` (without batch), ``inputs`` (example inputs, whose batch is
    then the only one) and ``config`` are as for :func:`archstat.analyze`. Units and what
    each figure counts: see the module docstring.
    """
    torch_dtype = float_dtype(dtype)
    sizes = parse_int_list(batch, "`batch`")
    budget = parse_budget(fit) if fit is not None else None
    if optimizer is not None and not train:
        raise ArchstatError("an optimizer needs train=True (an inference estimate has none)")
    opt = _optimizer(optimizer or "sgd") if train else None
    if (measure or allocator) and train:
        raise ArchstatError("the allocator-level peak and measuring are for inference: "
                            "leave out train")
    cpu = workspace.CpuFacts.current() if (allocator or measure) else None
    resolved = resolve_model(model, **config)
    specs = None
    if inputs is not None:
        if budget is not None or sizes != [1]:
            raise ArchstatError("with example inputs the batch is theirs: give input shapes "
                                "instead to estimate other batch sizes or fit a budget")
        sizes = [example_inputs(inputs, torch_dtype).batch]
    else:
        specs = input_specs(input_shape, resolved.input_shape)
    cache: dict[int, tuple[MemoryEstimate, Any]] = {}

    def at(b: int) -> MemoryEstimate:
        if b not in cache:
            cache[b] = _estimate(resolved.module, specs, b, torch_dtype, opt, inputs, cpu)
        return cache[b][0]

    estimates = [at(b) for b in sizes]
    largest = None
    if budget is not None:
        largest = largest_batch(lambda b: at(b).total_bytes, budget)
    if measure:
        _measure(resolved, estimates, specs, torch_dtype, inputs)
    first = cache[sizes[0]][1]
    return MemoryReport(resolved.label, first.input_shape, first.dtype, opt, estimates, budget,
                        largest, first.totals["params"], first.totals["params_unused"], cpu,
                        first.executed)


def _cpu_model(resolved: Any, dtype: torch.dtype) -> nn.Module:
    """The model with real weights on the CPU, in ``dtype``: a named model is built there
    (seeded), a module the caller passed is used as it is, if its weights are real."""
    if resolved.build is not None:
        module = resolved.build("cpu")
    else:
        module = resolved.module
        devices = {t.device.type for t in (*module.parameters(), *module.buffers())}
        if devices - {"cpu"}:
            raise ArchstatError("measuring needs the model's weights on the CPU, not on "
                                f"{', '.join(sorted(devices - {'cpu'}))}")
    if any(t.is_floating_point() and t.dtype != dtype
           for t in (*module.parameters(), *module.buffers())):
        module = copy.deepcopy(module).to(dtype)
    return module


def _measure(resolved: Any, estimates: list[MemoryEstimate], specs: list[Any] | None,
             dtype: torch.dtype, inputs: Any) -> None:
    """Attach a real CPU run's peaks to each estimate (see :func:`estimate_memory`)."""
    free = available_memory()
    for est in estimates:
        need = (est.inference_peak_bytes - est.peak_activation_bytes
                + max(est.peak_activation_bytes, est.allocator_peak_bytes or 0))
        if free is not None and need > free // 2:
            raise ArchstatError(f"measuring batch {est.batch} needs about {need:,} bytes on "
                                f"the CPU, more than half of the {free:,} free here")
    module = _cpu_model(resolved, dtype)
    for est in estimates:
        if inputs is not None:
            if any(t.device.type != "cpu" for t in tensors_in(inputs)):
                raise ArchstatError("measuring needs the example inputs on the CPU")
            real = example_inputs(_in_dtype(inputs, dtype), dtype)
        else:
            real = make_inputs(specs, est.batch, dtype, device="cpu")
        est.measured = measure_peaks(module, real.args, real.kwargs)


def _in_dtype(value: Any, dtype: torch.dtype) -> Any:
    """Example inputs with their floating tensors in the traced dtype, as the trace casts
    them (tensors in nested tuples, lists and dicts too)."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_in_dtype(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _in_dtype(v, dtype) for k, v in value.items()}
    return value
