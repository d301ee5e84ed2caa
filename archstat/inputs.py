"""What a model is traced on: its inputs, named by shape and dtype, or given as examples.

An input is written ``SHAPE[:DTYPE[:LOW..HIGH]]``, optionally behind ``NAME=`` for a
keyword input of the forward: ``3x224x224`` (the model's floating dtype),
``128:int64`` (token ids: zeros), ``128:int64:0..30522`` (values drawn from
``[0, 30522)``, which only matter where the model is executed on real values),
``attention_mask=128:int64:0..2``. The shape leaves out the batch dimension.

On the meta device values do not exist, so only shapes and dtypes reach the trace; a
real run (see :mod:`archstat.analysis` for when one happens) draws floating inputs from a
seeded normal distribution and integer inputs from their range (zeros without one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from archstat.errors import ArchstatError, did_you_mean
from archstat.trace.metakernels import tensors_in

#: The dtypes a model's parameters and floating inputs can be traced in.
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
#: The dtypes an input may have besides the model's floating dtype.
INPUT_DTYPES = (*FLOAT_DTYPES, "int64", "int32", "int16", "int8", "uint8", "bool")
#: The largest dimension accepted: beyond it no tensor's byte count fits in 64 bits.
MAX_DIM = 2**62
_SPEC = re.compile(r"^(?:(?P<name>[A-Za-z_]\w*)=)?(?P<shape>[^:]*)(?::(?P<dtype>[^:]+))?"
                   r"(?::(?P<low>-?\d+)\.\.(?P<high>-?\d+))?$")


@dataclass(frozen=True)
class InputSpec:
    """One input: ``shape`` without the batch dimension; ``dtype`` a name from
    INPUT_DTYPES, or None for the model's floating dtype; ``name`` the keyword it is
    passed as (None: positional); ``low``/``high`` the range integer values are drawn
    from on a real run (``[low, high)``; None: zeros)."""

    shape: tuple[int, ...]
    dtype: str | None = None
    name: str | None = None
    low: int | None = None
    high: int | None = None

    def text(self) -> str:
        """The spec as it is written on the command line."""
        out = "x".join(map(str, self.shape))
        if self.dtype:
            out += f":{self.dtype}"
        if self.low is not None:
            out += f":{self.low}..{self.high}"
        return f"{self.name}={out}" if self.name else out

    def to_dict(self, float_dtype: str) -> dict[str, Any]:
        """JSON-ready: name (or None), shape, dtype (the model's where unset)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype or float_dtype}


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``3x224x224`` (also ``3,224,224``) into a tuple of positive ints."""
    parts = text.strip().replace(",", "x").replace("X", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ArchstatError(
            f"malformed input shape {text!r}; expected dimensions joined by x, e.g. 3x224x224"
        ) from None
    return _checked(shape, text)


def _checked(shape: tuple[Any, ...], text: Any) -> tuple[int, ...]:
    if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in shape):
        raise ArchstatError(f"input shape {text!r} must have positive integer dimensions")
    if any(d > MAX_DIM for d in shape):
        raise ArchstatError(f"input shape {text!r} is too large: a dimension is over 2^62")
    return shape


def dtype_name(dtype: torch.dtype | str, allowed: Sequence[str], what: str) -> str:
    """The name of ``dtype`` if it is one of ``allowed``; else a one-line error about
    ``what`` (e.g. "the model's dtype")."""
    name = str(dtype).removeprefix("torch.")
    if name in allowed:
        return name
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ArchstatError(f"unknown dtype {name!r}{did_you_mean(name, allowed)}; {what} is "
                            f"one of {', '.join(allowed)}")
    raise ArchstatError(f"{what} cannot be {name}: choose one of {', '.join(allowed)}")


def parse_input(text: str) -> InputSpec:
    """One input spec (see the module docstring)."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise ArchstatError(f"malformed input {text!r}; expected SHAPE[:DTYPE[:LOW..HIGH]], "
                            "e.g. 3x224x224, 128:int64 or input_ids=128:int64:0..30522")
    dtype = match["dtype"]
    if dtype is not None:
        dtype = dtype_name(dtype, INPUT_DTYPES, f"the dtype of input {text!r}")
    low = high = None
    if match["low"] is not None:
        if dtype is None or dtype in FLOAT_DTYPES or dtype == "bool":
            raise ArchstatError(f"input {text!r}: a value range needs an integer dtype")
        low, high = int(match["low"]), int(match["high"])
        if low >= high:
            raise ArchstatError(f"input {text!r}: the range {low}..{high} is empty "
                                "(LOW..HIGH excludes HIGH)")
    return InputSpec(parse_shape(match["shape"]), dtype, match["name"], low, high)


def input_specs(value: Any, default: tuple[int, ...]) -> list[InputSpec]:
    """Input specs from what an API caller passes as ``input_shape``: None (the model's
    default), a spec string, a shape tuple, an InputSpec, or a list of those."""
    if value is None:
        return [InputSpec(_checked(tuple(default), default))]
    if isinstance(value, (str, InputSpec)):
        value = [value]
    items = list(value)
    if items and all(isinstance(d, int) and not isinstance(d, bool) for d in items):
        items = [tuple(items)]
    specs = []
    for item in items:
        if isinstance(item, InputSpec):
            specs.append(item)
        elif isinstance(item, str):
            specs.append(parse_input(item))
        elif isinstance(item, (tuple, list)):
            specs.append(InputSpec(_checked(tuple(item), item)))
        else:
            raise ArchstatError(f"an input is a shape such as (3, 224, 224) or a spec string "
                                f"such as '128:int64', not {item!r}")
    names = [s.name for s in specs if s.name]
    if len(set(names)) < len(names):
        raise ArchstatError(f"input names must be distinct: {', '.join(names)}")
    return specs


@dataclass
class ModelInputs:
    """What the forward is called with: ``args`` and ``kwargs`` (tensors on meta, or real
    ones), the batch, and the specs they were made from (or read back from examples)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    batch: int
    specs: list[InputSpec]


def make_inputs(specs: Sequence[InputSpec], batch: int, dtype: torch.dtype,
                device: str = "meta", seed: int = 0) -> ModelInputs:
    """Tensors for ``specs`` at ``batch``: on meta (shapes only), or real and seeded."""
    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise ArchstatError(f"batch must be a positive integer, not {batch!r}")
    generator = torch.Generator().manual_seed(seed) if device != "meta" else None
    args, kwargs = [], {}
    for spec in specs:
        shape = (batch, *spec.shape)
        target = getattr(torch, spec.dtype) if spec.dtype else dtype
        if math.prod(shape) * target.itemsize >= 2**63:
            raise ArchstatError(f"input {spec.text()} at batch {batch} is too large: its "
                                "byte count does not fit in 64 bits")
        if device == "meta":
            tensor = torch.empty(shape, dtype=target, device="meta")
        elif target.is_floating_point:
            tensor = torch.randn(shape, generator=generator).to(target)
        elif spec.low is not None:
            tensor = torch.randint(spec.low, spec.high, shape, generator=generator,
                                   dtype=target)
        else:
            tensor = torch.zeros(shape, dtype=target)
        if spec.name:
            kwargs[spec.name] = tensor
        else:
            args.append(tensor)
    return ModelInputs(tuple(args), kwargs, batch, list(specs))


def example_inputs(inputs: Any, float_dtype: torch.dtype) -> ModelInputs:
    """Inputs a caller passes as examples: a tensor, a tuple of positional inputs (nested
    lists, tuples and dicts of tensors are fine), or a dict of keyword inputs. Only
    shapes and dtypes are used; the batch is the first tensor's first dimension."""
    if isinstance(inputs, dict):
        args, kwargs = (), dict(inputs)
    elif isinstance(inputs, torch.Tensor):
        args, kwargs = (inputs,), {}
    elif isinstance(inputs, (tuple, list)):
        args, kwargs = tuple(inputs), {}
    else:
        raise ArchstatError("inputs are a tensor, a tuple of positional inputs or a dict of "
                            f"keyword inputs, not {type(inputs).__name__}")
    specs = []
    for name, value in [*((None, a) for a in args), *kwargs.items()]:
        for t in tensors_in(value):
            dtype = str(t.dtype).removeprefix("torch.")
            specs.append(InputSpec(tuple(t.shape[1:]), None if t.dtype == float_dtype
                                   else dtype, name))
    first = tensors_in((args, kwargs))
    if not first:
        raise ArchstatError("the example inputs hold no tensor")
    batch = first[0].shape[0] if first[0].dim() else 1
    return ModelInputs(args, kwargs, batch, specs)
