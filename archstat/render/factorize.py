"""A :class:`~archstat.factorize.Factorization`: every stack or large kernel against its
alternative, then the whole network against the network with every alternative in
place. CSV holds the rows; JSON the rows and the network."""

from __future__ import annotations

from typing import Any

from archstat.render import text
from archstat.render.table import Column, Table, records

#: The keys of a row, in order (CSV and JSON).
STACK_COLUMNS = [
    "direction", "layers", "input_shape", "output_shape", "in_channels", "out_channels",
    "kernel", "stride", "receptive_field", "params", "flops", "alt_kernel", "alt_stride",
    "alt_params", "alt_flops", "alt_params_ratio", "alt_flops_ratio",
]
NETWORK_COLUMNS = ["model", "params", "flops", "alt_params", "alt_flops", "alt_params_ratio",
                   "alt_flops_ratio"]
_RATIO = "the alternative's figure over the built one's (above 1: the built form is cheaper)"


def _ratio(alt: int, built: int) -> float | None:
    return alt / built if built else None


def _field(axes: tuple[int, ...]) -> int | tuple[int, ...]:
    """A receptive field: one number when every axis sees as far, else one per axis."""
    return axes[0] if len(set(axes)) == 1 else axes


def _chain(kernels: Any, strides: Any = None) -> str:
    """Convolutions in order: ``3x3 -> 3x3``; a stride other than 1 after a slash
    (``3x3/4``, ``1x11/1x4`` when the axes differ)."""
    parts = []
    for i, kernel in enumerate(kernels):
        part = text.shape_str(kernel)
        stride = strides[i] if strides is not None else (1,)
        if set(stride) != {1}:
            part += f"/{_side(stride)}"
        parts.append(part)
    return " -> ".join(parts)


def _rows(result: Any) -> list[dict[str, Any]]:
    return [{"direction": s.direction, "layers": list(s.layers), "input_shape": s.input_shape,
             "output_shape": s.output_shape, "in_channels": s.in_channels,
             "out_channels": s.out_channels, "kernel": [list(k) for k in s.kernel],
             "stride": [list(k) for k in s.stride],
             "receptive_field": _field(s.receptive_field), "params": s.params,
             "flops": s.flops, "alt_kernel": [list(k) for k in s.alt_kernel],
             "alt_stride": [list(k) for k in s.alt_stride], "alt_params": s.alt_params,
             "alt_flops": s.alt_flops, "alt_params_ratio": _ratio(s.alt_params, s.params),
             "alt_flops_ratio": _ratio(s.alt_flops, s.flops)} for s in result.stacks]


def _network(result: Any) -> dict[str, Any]:
    return {"model": result.model, "params": result.params, "flops": result.flops,
            "alt_params": result.alt_params, "alt_flops": result.alt_flops,
            "alt_params_ratio": _ratio(result.alt_params, result.params),
            "alt_flops_ratio": _ratio(result.alt_flops, result.flops)}


def _side(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(set(axes)) == 1 else text.shape_str(axes)


def note_text(note: Any) -> str:
    kernel, stride = text.shape_str(note.kernel), _side(note.stride)
    if note.kind == "sparse":
        return (f"{note.layer}: the first factor, {kernel} at stride {stride}, is narrower "
                "than its stride and skips input pixels: the split keeps the receptive "
                "field, not the coverage (the asymmetric split keeps both)")
    return (f"{note.layer} ({kernel} at stride {stride}) has no 3x3 split with the stride on "
            "the first factor; the asymmetric split (1xn then nx1) splits it")


def _title(result: Any, what: str) -> str:
    shapes = ", ".join(text.shape_str(s) for s in result.input_shape)
    return f"{result.model}  input {shapes}  batch {result.batch}: {what}"


_STACK_VIEW = [
    Column("direction", "direction", text.text,
           "merge: a stride-1 stack against one conv; split: a large kernel against its "
           "factors"),
    Column("layers", "layers", lambda v: " -> ".join(v), "module paths of the built convs"),
    Column("in_channels", "C_in", text.text, "the first conv's input channels"),
    Column("out_channels", "C_out", text.text, "the last conv's output channels"),
    Column("output_shape", "output", text.shape_str, "NxCxHxW of the last conv"),
    Column("kernel", "built", text.text, "kernels (/stride) of the built convs, in order"),
    Column("receptive_field", "RF", text.text, "receptive field (one side, or HxW)"),
    Column("params", "params", text.human, "weights and biases (and norms in between)"),
    Column("flops", "macs", text.human, "multiply-accumulates"),
    Column("alt_kernel", "alternative", text.text, "kernels (/stride) of the alternative"),
    Column("alt_params", "alt params", text.human, "the alternative's params"),
    Column("alt_params_ratio", "alt/built params", text.times, _RATIO),
    Column("alt_flops", "alt macs", text.human, "the alternative's multiply-accumulates"),
    Column("alt_flops_ratio", "alt/built macs", text.times, _RATIO),
]
_NETWORK_VIEW = [
    Column("model", "model"), Column("params", "params", text.human),
    Column("alt_params", "alt params", text.human),
    Column("alt_params_ratio", "alt/built params", text.times, _RATIO),
    Column("flops", "macs", text.human), Column("alt_flops", "alt macs", text.human),
    Column("alt_flops_ratio", "alt/built macs", text.times, _RATIO),
]


def _shown(result: Any) -> list[dict[str, Any]]:
    """The rows with kernels as chains and a field as ``5`` or ``5x7``, for people."""
    return [dict(row, kernel=_chain(s.kernel, s.stride), alt_kernel=_chain(s.alt_kernel,
                 s.alt_stride), receptive_field=text.text(row["receptive_field"]))
            for row, s in zip(_rows(result), result.stacks, strict=True)]


def views(result: Any, **_: Any) -> list[Table]:
    """The rows, then the network (macs, in human units)."""
    what = {"merge": "stride-1 conv stacks against one conv of their receptive field",
            "split": f"large kernels against their {result.split} factors",
            "both": "stride-1 conv stacks against one conv of their receptive field; "
                    f"large kernels against their {result.split} factors"}[result.direction]
    stacks = Table("stacks", _title(result, what), _STACK_VIEW, _shown(result),
                   data_columns=STACK_COLUMNS)
    network = Table("network", _title(result, "the network with every alternative in place"),
                    _NETWORK_VIEW, [_network(result)], data_columns=NETWORK_COLUMNS,
                    notes=[note_text(n) for n in result.notes])
    return [stacks, network]


def csv_table(result: Any, **_: Any) -> Table:
    """The rows, one per stack: chains of convolutions as ``3x3 -> 3x3`` (strides in
    their own columns), a receptive field as ``5`` or ``5x7``."""
    rows = [dict(row, layers=" -> ".join(row["layers"]), kernel=_chain(s.kernel),
                 stride=_chain(s.stride), alt_kernel=_chain(s.alt_kernel),
                 alt_stride=_chain(s.alt_stride),
                 receptive_field=text.text(row["receptive_field"]))
            for row, s in zip(_rows(result), result.stacks, strict=True)]
    return Table("stacks", "stacks", [], rows, data_columns=STACK_COLUMNS)


def data(result: Any) -> dict[str, Any]:
    shapes = [list(s) for s in result.input_shape]
    stacks = Table("stacks", "stacks", [], _rows(result), data_columns=STACK_COLUMNS)
    network = _network(result)
    return {"model": result.model, "input_shape": shapes[0] if len(shapes) == 1 else shapes,
            "batch": result.batch, "convention": "macs", "direction": result.direction,
            "split": result.split, "stacks": records(stacks),
            "network": {k: network[k] for k in NETWORK_COLUMNS[1:]},
            "notes": [note_text(n) for n in result.notes]}
