"""``archstat.analyze``: per-layer parameters, activation memory and FLOPs of a model.

Units, everywhere in this module:

* ``params``: number of parameter elements (weights and biases); a parameter shared by
  several layers is counted at its first use only.
* ``activation_bytes``: bytes of a layer's output tensors, for the traced batch and dtype.
* ``live_bytes_after``: bytes of all activation storages still live once the layer has
  run (see :mod:`archstat.liveness`; the model's input, parameters and buffers excluded),
  the memory profile over depth.
* ``flops`` and ``flops_<kind>``: counts in the unit of the chosen convention (see
  :mod:`archstat.conventions`; the default ``macs`` counts one multiply-add as one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch
from torch import nn

from archstat import liveness, render
from archstat.conventions import Convention, get_convention
from archstat.errors import ArchstatError
from archstat.ops import KINDS, op_kind
from archstat.spec import parse_shape, resolve_model
from archstat.tracer import Trace, trace

FLOP_COLUMNS = ["flops"] + [f"flops_{kind}" for kind in KINDS]
LAYER_COLUMNS = [
    "name", "type", "input_shape", "output_shape", "params", "activation_bytes",
    *FLOP_COLUMNS, "unhandled_ops", "ops", "live_bytes_after",
]
_SUMMED = ["params", "activation_bytes", *FLOP_COLUMNS, "unhandled_ops"]
_LAST = ["output_shape", "live_bytes_after"]  # a merged row keeps its last record's value


@dataclass
class Analysis:
    """The result of :func:`analyze`.

    ``layers`` has one row per layer record (see LAYER_COLUMNS), in execution order;
    ``totals`` sums them (``layers`` is the row count); ``unhandled`` lists ops that did
    work the convention has no formula for (op, calls, modules).
    """

    model: str
    input_shape: list[tuple[int, ...]]
    batch: int
    convention: str
    dtype: str
    layers: pd.DataFrame
    unhandled: pd.DataFrame
    module_types: dict[str, str] = field(default_factory=dict, repr=False)
    trace: Trace | None = field(default=None, repr=False)

    @property
    def totals(self) -> dict[str, int]:
        sums = {col: int(self.layers[col].sum()) for col in ("params", "flops", "activation_bytes")}
        return {**sums, "layers": len(self.layers)}

    def at_depth(self, depth: int) -> Analysis:
        """The same analysis with records aggregated to module-path depth ``depth``."""
        return replace(self, layers=aggregate(self.layers, depth, self.module_types))

    def header(self) -> dict[str, Any]:
        """What was analysed: model, input_shape, batch, convention, dtype (JSON-ready)."""
        return {
            "model": self.model,
            "input_shape": render.input_shapes(self.input_shape),
            "batch": self.batch,
            "convention": self.convention,
            "dtype": self.dtype,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: model, input_shape, batch, convention, totals, layers, unhandled."""
        return {
            **self.header(),
            "totals": self.totals,
            "layers": render.records(self.layers),
            "unhandled": render.records(self.unhandled),
        }

    def to_csv(self) -> str:
        """The layers table as CSV (exact integers, shapes as 1x3x224x224)."""
        return render.to_csv(self.layers)

    def to_json(self) -> str:
        return render.to_json(self.to_dict())


def aggregate(layers: pd.DataFrame, depth: int, module_types: dict[str, str]) -> pd.DataFrame:
    """Merge consecutive records whose module paths agree to ``depth`` components.

    A merged row is named by the shared path prefix, typed by the module class at that
    path (``module_types``), takes the input shape of its first record and the output
    shape and live bytes of its last, and sums params, activation bytes and FLOPs.
    ``depth`` 0 merges everything into one row.
    """
    if depth < 0:
        raise ArchstatError(f"depth must be 0 or more, not {depth}")
    rows: list[dict[str, Any]] = []
    for row in layers.to_dict("records"):
        key = ".".join(row["name"].split(".")[:depth]) if row["name"] else ""
        if rows and rows[-1]["name"] == key:
            merged = rows[-1]
            for col in _SUMMED:
                merged[col] += row[col]
            for col in _LAST:
                merged[col] = row[col]
            merged["ops"] = "+".join(dict.fromkeys(filter(None, [*merged["ops"].split("+"),
                                                                  *row["ops"].split("+")])))
        else:
            rows.append(dict(row, name=key, type=module_types.get(key, row["type"])))
    return pd.DataFrame(rows, columns=layers.columns)


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ArchstatError(f"unknown dtype {dtype!r}; e.g. float32, float16, bfloat16")
    return value


def _input_shapes(
    input_shape: str | Sequence[int] | Sequence[Sequence[int]] | None,
    default: tuple[int, ...],
) -> list[tuple[int, ...]]:
    if input_shape is None:
        return [default]
    if isinstance(input_shape, str):
        return [parse_shape(input_shape)]
    items = list(input_shape)
    if items and all(isinstance(d, int) for d in items):
        shapes = [tuple(items)]
    else:
        shapes = [parse_shape(s) if isinstance(s, str) else tuple(s) for s in items]
    for shape in shapes:
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise ArchstatError(f"input shape {shape} must have positive integer dimensions")
    return shapes


def layer_table(t: Trace, convention: Convention) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply ``convention`` to a trace: the layers table and the unhandled-ops table."""
    rows = []
    unhandled: dict[str, dict[str, Any]] = {}
    live_after = liveness.live_bytes_after_records(t, liveness.profile(t))
    for record, live in zip(t.records, live_after, strict=True):
        flops = dict.fromkeys(FLOP_COLUMNS, 0)
        missing = 0
        names = []
        for index in record.events:
            event = t.events[index]
            names.append(event.packet.__name__)
            cost = convention.cost(event)
            if cost is None:
                missing += 1
                entry = unhandled.setdefault(event.packet.__name__, {"calls": 0, "modules": []})
                entry["calls"] += 1
                if record.name not in entry["modules"]:
                    entry["modules"].append(record.name)
                continue
            if cost:
                flops["flops"] += cost
                # A counted op of kind "none" (fvcore counts nearest upsampling) or of
                # unknown kind is reported under elementwise.
                kind = op_kind(event.op)
                flops[f"flops_{kind if kind in KINDS else 'elementwise'}"] += cost
        rows.append({
            "name": record.name, "type": record.type,
            "input_shape": record.input_shape, "output_shape": record.output_shape,
            "params": record.params, "activation_bytes": record.activation_bytes,
            **flops, "unhandled_ops": missing, "ops": "+".join(dict.fromkeys(names)),
            "live_bytes_after": live,
        })
    layers = pd.DataFrame(rows, columns=LAYER_COLUMNS)
    missing_rows = [
        {"op": op, "calls": v["calls"], "modules": ",".join(m or "(root)" for m in v["modules"])}
        for op, v in unhandled.items()
    ]
    return layers, pd.DataFrame(missing_rows, columns=["op", "calls", "modules"])


def analyze(
    model: str | nn.Module,
    input_shape: str | Sequence[int] | Sequence[Sequence[int]] | None = None,
    batch: int = 1,
    convention: str | Convention = "macs",
    dtype: torch.dtype | str = torch.float32,
    depth: int | None = None,
    inputs: Any = None,
    train: bool = False,
    **config: Any,
) -> Analysis:
    """Trace ``model`` on the meta device and count, layer by layer, parameters,
    activation bytes and FLOPs under ``convention``.

    ``model`` is a zoo name, a spec string (``package.module:callable``,
    ``torchvision:NAME``, ``timm:NAME``) or an ``nn.Module`` (left unchanged).
    ``input_shape`` excludes the batch dimension (``(3, 224, 224)`` or ``"3x224x224"``,
    or a list of shapes for a model with several inputs); it defaults to the zoo entry's
    input, else 3x224x224. ``inputs`` instead passes example inputs (a tensor, a tuple of
    positional inputs, or a dict of keyword inputs); only their shapes and dtypes are used.
    ``config`` goes to a zoo builder (e.g. ``aux=True`` for googlenet). ``train`` traces
    the model in training mode with autograd on (dropout active, batch norm on batch
    statistics; ``trace.saved`` then lists what autograd keeps for backward) instead of
    in eval mode.
    """
    conv = get_convention(convention)
    torch_dtype = _dtype(dtype)
    if not isinstance(batch, int) or batch <= 0:
        raise ArchstatError(f"batch must be a positive integer, not {batch!r}")
    resolved = resolve_model(model, **config)
    if inputs is not None:
        args, kwargs = _example_inputs(inputs)
        shapes = [tuple(t.shape) for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
        batch = shapes[0][0] if shapes and shapes[0] else batch
    else:
        shapes = [(batch, *s) for s in _input_shapes(input_shape, resolved.input_shape)]
        try:
            args = tuple(torch.empty(s, dtype=torch_dtype, device="meta") for s in shapes)
        except RuntimeError as exc:  # sizes whose byte count overflows
            shape_text = ", ".join("x".join(map(str, s[1:])) for s in shapes)
            raise ArchstatError(f"input {shape_text} at batch {batch} is too large: "
                                f"{str(exc).splitlines()[0]}") from None
        kwargs = {}
    t = trace(resolved.module, args, kwargs, dtype=torch_dtype, train=train)
    layers, unhandled = layer_table(t, conv)
    result = Analysis(
        model=resolved.label,
        input_shape=[s[1:] for s in shapes],
        batch=batch,
        convention=conv.name,
        dtype=str(torch_dtype).removeprefix("torch."),
        layers=layers,
        unhandled=unhandled,
        module_types={name: type(m).__name__ for name, m in resolved.module.named_modules()},
        trace=t,
    )
    return result.at_depth(depth) if depth is not None else result


def _example_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(inputs, dict):
        return (), dict(inputs)
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    return tuple(inputs), {}
