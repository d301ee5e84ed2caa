"""``archstat.analyze``: per-layer parameters, activation memory and FLOPs of a model.

Units, everywhere in this module:

* ``params``: number of parameter elements (weights and biases), counted by data flow:
  in the layer whose op first reads them, whether or not their own module was called
  (a parameter shared by several layers counts at its first use only). Parameters the
  forward never reads are ``params_unused``; ``params + params_unused`` is the model's
  parameter count.
* ``activation_bytes``: bytes of new storage the layer's ops allocate, for the traced
  batch and dtype (a view or an in-place result allocates nothing; every new output
  counts, max pooling's indices too). Summed, the bytes the forward allocates.
* ``peak_activation_bytes`` (totals): the most activation storage live at once
  (:mod:`archstat.trace.liveness`), the same figure as ``archstat memory``'s.
* ``live_bytes_after``: bytes of all activation storages still live once the layer has
  run (see :mod:`archstat.trace.liveness`; the model's input, parameters and buffers excluded),
  the memory profile over depth.
* ``flops`` and ``flops_<kind>``: counts in the unit of the chosen convention (see
  :mod:`archstat.conventions`; the default ``macs`` counts one multiply-add as one).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from archstat.conventions import Convention, get_convention
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean
from archstat.inputs import (
    FLOAT_DTYPES,
    InputSpec,
    ModelInputs,
    dtype_name,
    example_inputs,
    input_specs,
    make_inputs,
)
from archstat.receptive import FIELD_COLUMNS, field_columns, receptive_fields
from archstat.spec import ResolvedModel, resolve_model
from archstat.trace import liveness
from archstat.trace.metakernels import tensors_in
from archstat.trace.ops import KINDS, op_kind
from archstat.trace.tracer import DataDependentError, Trace, trace

if TYPE_CHECKING:
    import pandas as pd

FLOP_COLUMNS = ["flops"] + [f"flops_{kind}" for kind in KINDS]
LAYER_COLUMNS = [
    "name", "type", "input_shape", "output_shape", "params", "activation_bytes",
    *FLOP_COLUMNS, "unhandled_ops", "ops", "live_bytes_after", *FIELD_COLUMNS,
]
#: Per-layer columns of a training analysis (``train=True``), in the convention's unit:
#: the backward's ops attributed to the layer (the work for its input's gradient and for
#: its parameters' gradients), and the forward ops checkpointing runs again.
TRAIN_COLUMNS = ["backward_flops", "backward_input_flops", "backward_weight_flops",
                 "recompute_flops"]
_SUMMED = ["params", "activation_bytes", *FLOP_COLUMNS, *TRAIN_COLUMNS, "unhandled_ops"]
# a merged row keeps its last record's value
_LAST = ["output_shape", "live_bytes_after", *FIELD_COLUMNS]


@dataclass
class Analysis(Display):
    """The result of :func:`analyze`: data only (rendering it is :mod:`archstat.render`'s).

    ``rows`` has one dict per layer record (``columns``: LAYER_COLUMNS, with
    TRAIN_COLUMNS in a training analysis), in execution order, or per module at ``depth``
    (:meth:`at_depth`); exact Python ints. ``layers`` is the same as a pandas DataFrame.
    ``totals`` sums them (``layers`` is the row count) and adds ``params_unused`` and
    ``peak_activation_bytes``. ``unhandled_ops`` lists the ops that did work the
    convention has no formula for (op, calls, modules); ``unused_params`` maps a module
    path to the elements of its own parameters that the forward never read.
    ``convention`` is the Convention object the counts are in (a custom one too).
    """

    model: str
    input_shape: list[tuple[int, ...]]
    batch: int
    convention: Convention
    dtype: str
    rows: list[dict[str, Any]]
    columns: list[str]
    unhandled_ops: list[dict[str, Any]] = field(default_factory=list)
    module_types: dict[str, str] = field(default_factory=dict, repr=False)
    trace: Trace | None = field(default=None, repr=False)
    unused_params: dict[str, int] = field(default_factory=dict)
    peak_activation_bytes: int = 0
    #: every input as specified (shape without batch, dtype if not the model's, name)
    input_specs: list[InputSpec] = field(default_factory=list)
    #: the optimizer whose step a training analysis counts (None: no step)
    optimizer: str | None = None
    optimizer_flops: int = 0
    #: the module-path depth the rows are aggregated to (None: one row per record)
    depth: int | None = None

    @property
    def layers(self) -> pd.DataFrame:
        """``rows`` as a pandas DataFrame (object columns: exact integers)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns, dtype=object)

    @property
    def unhandled(self) -> pd.DataFrame:
        """``unhandled_ops`` as a pandas DataFrame (op, calls, modules)."""
        import pandas as pd

        return pd.DataFrame(self.unhandled_ops, columns=["op", "calls", "modules"])

    @property
    def train(self) -> bool:
        """Whether this is a training analysis (its rows carry the backward)."""
        return "backward_flops" in self.columns

    @property
    def executed(self) -> bool:
        """Whether the model ran for real on the CPU (its forward needs values)."""
        return bool(self.trace is not None and self.trace.real)

    @property
    def data_dependent(self) -> list[tuple[str, str]]:
        """(op, module) of the ops whose results depended on values, on a real run."""
        return list(self.trace.data_dependent) if self.trace is not None else []

    @property
    def totals(self) -> dict[str, int]:
        """Exact integers (Python ints, whatever their size). A training analysis adds
        ``backward_flops`` (with its input- and weight-gradient parts), ``recompute_flops``,
        ``optimizer_flops`` (0 without an optimizer) and ``train_step_flops``, their sum
        with the forward's ``flops``."""
        def total(col: str) -> int:
            return sum(row[col] for row in self.rows)

        totals = {"params": total("params"), "params_unused": sum(self.unused_params.values()),
                  "flops": total("flops"), "activation_bytes": total("activation_bytes"),
                  "peak_activation_bytes": self.peak_activation_bytes,
                  "layers": len(self.rows)}
        if self.train:
            totals.update({col: total(col) for col in TRAIN_COLUMNS})
            totals["optimizer_flops"] = self.optimizer_flops
            totals["train_step_flops"] = (totals["flops"] + totals["backward_flops"]
                                          + totals["recompute_flops"] + self.optimizer_flops)
        return totals

    def at_depth(self, depth: int) -> Analysis:
        """The same analysis with records aggregated to module-path depth ``depth``."""
        return replace(self, rows=aggregate(self.rows, depth, self.module_types), depth=depth)

    def settings(self) -> dict[str, Any]:
        """What was analysed, as plain data: model, input_shape (a shape, or a list of
        them for several inputs), batch, convention (its name), dtype, inputs (name,
        shape, dtype each) and execution (``meta``, or ``cpu`` for a real run)."""
        shapes = [list(s) for s in self.input_shape]
        return {
            "model": self.model,
            "input_shape": shapes[0] if len(shapes) == 1 else shapes,
            "batch": self.batch,
            "convention": self.convention.name,
            "dtype": self.dtype,
            "inputs": [s.to_dict(self.dtype) for s in self.input_specs],
            "execution": "cpu" if self.executed else "meta",
        }


    def data(self) -> dict[str, Any]:
        """The analysis as plain data (what JSON carries and a snapshot records):
        settings, totals, layers (every column, exact), the unhandled ops, the parameters
        never read, and the data-dependent ops of a real run."""
        return {
            **self.settings(),
            "totals": self.totals,
            "layers": [{k: _plain(row[k]) for k in self.columns} for row in self.rows],
            "unhandled": list(self.unhandled_ops),
            "unused_params": [{"module": m or "(root)", "params": n}
                              for m, n in self.unused_params.items()],
            "data_dependent": [{"op": op, "module": where}
                               for op, where in dict.fromkeys(self.data_dependent)],
        }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def aggregate(rows: list[dict[str, Any]], depth: int, module_types: dict[str, str]
              ) -> list[dict[str, Any]]:
    """Merge consecutive rows whose module paths agree to ``depth`` components.

    A merged row is named by the shared path prefix, typed by the module class at that
    path (``module_types``), takes the input shape of its first record and the output
    shape and live bytes of its last, and sums params, activation bytes and FLOPs.
    ``depth`` 0 merges everything into one row.
    """
    if not isinstance(depth, int) or depth < 0:
        raise ArchstatError(f"depth must be 0 or more, not {depth!r}")
    merged_rows: list[dict[str, Any]] = []
    for row in rows:
        key = ".".join(row["name"].split(".")[:depth]) if row["name"] else ""
        if merged_rows and merged_rows[-1]["name"] == key:
            merged = merged_rows[-1]
            for col in _SUMMED:
                if col in merged:
                    merged[col] += row[col]
            for col in _LAST:
                merged[col] = row[col]
            merged["ops"] = "+".join(dict.fromkeys(filter(None, [*merged["ops"].split("+"),
                                                                  *row["ops"].split("+")])))
        else:
            merged_rows.append(dict(row, name=key, type=module_types.get(key, row["type"])))
    return merged_rows


def float_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """The model's floating dtype: parameters, buffers and floating inputs are traced in it."""
    return getattr(torch, dtype_name(dtype, FLOAT_DTYPES, "the model's dtype"))


def record_counts(t: Trace, convention: Convention) -> list[dict[str, Any]]:
    """Per trace record, its counts under ``convention``: FLOP_COLUMNS (and TRAIN_COLUMNS
    for a training trace), ``unhandled_ops`` and the ``unhandled`` events themselves. The
    one place a trace is costed: the layers table and every view built on records
    (lecture rows, paper tables) take their counts from here."""
    counts = []
    for record in t.records:
        flops = dict.fromkeys(FLOP_COLUMNS, 0)
        unhandled = []
        for event in (t.events[i] for i in record.events):
            cost = convention.cost(event)
            if cost is None:
                unhandled.append(event)
            elif cost:
                flops["flops"] += cost
                # A counted op of kind "none" (fvcore counts nearest upsampling) or of
                # unknown kind is reported under elementwise.
                kind = op_kind(event.op)
                flops[f"flops_{kind if kind in KINDS else 'elementwise'}"] += cost
        if t.train:
            flops.update(dict.fromkeys(TRAIN_COLUMNS, 0))
            for event in (t.backward[i] for i in record.backward_events):
                parts = convention.split(event)
                if parts is None:
                    unhandled.append(event)
                elif event.phase == "recompute":
                    flops["recompute_flops"] += sum(parts)
                else:
                    flops["backward_flops"] += sum(parts)
                    flops["backward_input_flops"] += parts[0]
                    flops["backward_weight_flops"] += parts[1]
        counts.append({**flops, "unhandled_ops": len(unhandled), "unhandled": unhandled})
    return counts


def layer_table(t: Trace, convention: Convention, live: liveness.LiveProfile | None = None,
                ) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """Apply ``convention`` to a trace: the layer columns, one row per record, and the
    unhandled ops (op, calls, modules)."""
    rows = []
    unhandled: dict[str, dict[str, Any]] = {}
    live_after = liveness.live_bytes_after_records(t, live or liveness.profile(t))
    fields = receptive_fields(t).records
    for record, counts, after, rf in zip(t.records, record_counts(t, convention), live_after,
                                         fields, strict=True):
        for event in counts.pop("unhandled"):
            entry = unhandled.setdefault(event.packet.__name__, {"calls": 0, "modules": []})
            entry["calls"] += 1
            if record.name not in entry["modules"]:
                entry["modules"].append(record.name)
        ops = "+".join(dict.fromkeys(t.events[i].packet.__name__ for i in record.events))
        rows.append({
            "name": record.name, "type": record.type,
            "input_shape": record.input_shape, "output_shape": record.output_shape,
            "params": record.params, "activation_bytes": record.activation_bytes,
            **counts, "ops": ops, "live_bytes_after": after, **field_columns(rf),
        })
    columns = LAYER_COLUMNS
    if t.train:
        at = LAYER_COLUMNS.index("unhandled_ops")
        columns = [*LAYER_COLUMNS[:at], *TRAIN_COLUMNS, *LAYER_COLUMNS[at:]]
    rows = [{col: row[col] for col in columns} for row in rows]
    missing = [{"op": op, "calls": v["calls"],
                "modules": ",".join(m or "(root)" for m in v["modules"])}
               for op, v in unhandled.items()]
    return columns, rows, missing


def analyze(
    model: str | nn.Module,
    input_shape: str | Sequence[Any] | None = None,
    batch: int = 1,
    convention: str | Convention = "macs",
    dtype: torch.dtype | str = torch.float32,
    depth: int | None = None,
    inputs: Any = None,
    train: bool = False,
    execute: str = "auto",
    optimizer: str | None = None,
    freeze: str | Sequence[str] = (),
    **config: Any,
) -> Analysis:
    """Trace ``model`` on the meta device and count, layer by layer, parameters,
    activation bytes and FLOPs under ``convention``.

    ``model`` is a zoo name, a spec string (``package.module:callable``,
    ``torchvision:NAME``, ``timm:NAME``) or an ``nn.Module`` (left unchanged).
    ``input_shape`` describes the inputs without the batch dimension: a shape
    (``(3, 224, 224)``, ``"3x224x224"``), a spec string with a dtype and a keyword name
    (``"input_ids=128:int64"``, see :mod:`archstat.inputs`), or a list of those for a model
    with several inputs; it defaults to the zoo entry's input, else 3x224x224. ``inputs``
    instead passes example inputs (a tensor, a tuple of positional inputs, or a dict of
    keyword inputs); only their shapes and dtypes are used. ``dtype`` is the model's
    floating dtype (float32, float16, bfloat16 or float64). ``config`` goes to the
    model's builder (e.g. ``aux=True`` for googlenet). ``train`` traces the model in
    training mode with autograd on (dropout active, batch norm on batch statistics;
    ``trace.saved`` then lists what autograd keeps for backward) instead of in eval mode.

    A forward that needs real values (``nonzero``, ``.item()``, a boolean mask, NMS,
    ``if x.sum() > 0``) cannot run on meta. With ``execute="auto"`` (the default) such a
    model is then run for real on the CPU, with seeded random weights and inputs (integer
    inputs are zeros unless their spec gives a range), and counted under the same
    conventions: ``result.executed`` is True and ``result.data_dependent`` names the ops
    whose results depended on the values (counts after them hold for that input only).
    ``execute="never"`` raises instead.

    With ``train``, the backward of the sum of the outputs is traced too: per layer
    ``backward_flops`` (split into ``backward_input_flops``, the activations' gradients,
    and ``backward_weight_flops``, the parameters'), ``recompute_flops`` (forward ops that
    activation checkpointing runs again in the backward), as autograd runs them (no input
    gradient below the first layer that needs one, no weight gradient for a frozen
    parameter: ``requires_grad=False``, or a module-path prefix in ``freeze``, e.g.
    ``"conv1,layer1"``; the model itself is not changed); ``optimizer`` (``sgd``,
    ``sgd-momentum``, ``adam`` or ``adamw``) adds the work of one steady-state step
    (:mod:`archstat.training`).
    """
    conv = get_convention(convention)
    if optimizer is not None and not train:
        raise ArchstatError("an optimizer needs train=True (an inference analysis has none)")
    with collector_paused():
        resolved, model_inputs, t = traced(model, input_shape, batch, dtype, inputs, train,
                                           execute, config, freeze)
        live = liveness.profile(t)
        columns, rows, unhandled = layer_table(t, conv, live)
    fdtype = str(float_dtype(dtype)).removeprefix("torch.")
    result = Analysis(
        model=resolved.label,
        input_shape=[s.shape for s in model_inputs.specs],
        batch=model_inputs.batch,
        convention=conv,
        dtype=fdtype,
        rows=rows,
        columns=columns,
        unhandled_ops=unhandled,
        module_types={name: type(m).__name__ for name, m in resolved.module.named_modules()},
        trace=t,
        unused_params=dict(t.unused_params),
        peak_activation_bytes=live.peak_bytes,
        input_specs=list(model_inputs.specs),
        optimizer=optimizer,
    )
    if optimizer is not None:
        from archstat.training import optimizer_step

        result.optimizer_flops = sum(conv.cost(e) or 0 for e in optimizer_step(t, optimizer))
    return result.at_depth(depth) if depth is not None else result


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for one analysis, and back as it was after.
    Building and tracing a model makes tens of thousands of objects, and each full
    collection they trigger walks the several hundred thousand that ``import torch``
    made: 0.08 s of a 0.19 s resnet152 analysis. What the analysis frees it frees by
    reference counting; cycles wait for the next collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: How a forward that needs real values is handled (see :func:`analyze`).
EXECUTE = ("auto", "never")


def traced(
    model: str | nn.Module,
    input_shape: Any,
    batch: int,
    dtype: torch.dtype | str,
    inputs: Any,
    train: bool,
    execute: str,
    config: dict[str, Any],
    freeze: str | Sequence[str] = (),
) -> tuple[ResolvedModel, ModelInputs, Trace]:
    """Resolve ``model`` and its inputs and trace it: on meta, or for real on the CPU
    when the forward needs values and ``execute`` allows it (see :func:`analyze`)."""
    if execute not in EXECUTE:
        raise ArchstatError(f"execute must be one of {', '.join(EXECUTE)}, not {execute!r}")
    torch_dtype = float_dtype(dtype)
    resolved = resolve_model(model, **config)
    prefixes = frozen_prefixes(resolved.module, freeze)
    if prefixes and not train:
        raise ArchstatError("freezing parameters changes the backward only: it needs "
                            "train=True")
    if inputs is not None:
        model_inputs = example_inputs(inputs, torch_dtype)
    else:
        model_inputs = make_inputs(input_specs(input_shape, resolved.input_shape), batch,
                                   torch_dtype)
    try:
        t = trace(resolved.module, model_inputs.args, model_inputs.kwargs, dtype=torch_dtype,
                  train=train, freeze=prefixes)
    except DataDependentError as exc:
        if execute == "never":
            raise ArchstatError(f"{exc}; analyze it with execute='auto' to run it on the "
                                "CPU with seeded weights and inputs") from None
        module = _real_module(resolved, exc)
        real = _real_inputs(model_inputs, inputs, torch_dtype, exc)
        t = trace(module, real.args, real.kwargs, dtype=torch_dtype, train=train, real=True,
                  freeze=prefixes)
    return resolved, model_inputs, t


def frozen_prefixes(module: nn.Module, freeze: str | Sequence[str]) -> list[str]:
    """Module-path prefixes to freeze, from ``"conv1,layer1"`` or a list; each must name a
    module with parameters."""
    prefixes = [p.strip() for p in (freeze.split(",") if isinstance(freeze, str) else freeze)
                if p.strip()]
    names = [name for name, _ in module.named_parameters()]
    for prefix in prefixes:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            modules = [m for m, _ in module.named_modules() if m]
            raise ArchstatError(f"no parameter under {prefix!r} to freeze"
                                f"{did_you_mean(prefix, modules)}")
    return prefixes


def _real_module(resolved: ResolvedModel, exc: DataDependentError) -> nn.Module:
    if resolved.build is not None:
        return resolved.build("cpu")
    if any(t.is_meta for t in (*resolved.module.parameters(), *resolved.module.buffers())):
        raise ArchstatError(f"{exc}; this module's weights are on meta, so it cannot run: "
                            "pass it with real weights (on the CPU) to count it on a real "
                            "run") from None
    return resolved.module


def _real_inputs(model_inputs: ModelInputs, given: Any, dtype: torch.dtype,
                 exc: DataDependentError) -> ModelInputs:
    if given is not None:
        if any(t.is_meta for t in tensors_in(given)):
            raise ArchstatError(f"{exc}; the example inputs are on meta, so the model cannot "
                                "run: pass real tensors (their values are used)") from None
        return model_inputs
    return make_inputs(model_inputs.specs, model_inputs.batch, dtype, device="cpu")
