"""Trace a model on the ``meta`` device: every aten op it runs, with shapes, attributed
to the innermost module that ran it.

Nothing is allocated and nothing is computed: parameters, buffers and inputs are meta
tensors, so tracing costs the same at 224x224 and at 2048x2048. This is the only module
that touches ``torch.utils._python_dispatch`` (a private torch API).

The trace is a list of :class:`LayerRecord` (one per leaf-module call, plus one per
stretch of a container's own functional code between its children, e.g. the residual
``x + identity`` or an inception module's ``torch.cat``) and a flat list of
:class:`~archstat.ops.OpEvent` in execution order. FLOP conventions are applied later,
to the events, so one trace serves every convention.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from archstat.errors import ArchstatError
from archstat.metakernels import run_meta, tensors_in
from archstat.ops import OpEvent, op_kind, shapes_of

# Ops that only ask about metadata; FlopCounterMode skips the same set.
_METADATA_OPS = {
    torch.ops.aten.size.default, torch.ops.aten.sym_size.default,
    torch.ops.aten.stride.default, torch.ops.aten.sym_stride.default,
    torch.ops.aten.storage_offset.default, torch.ops.aten.sym_storage_offset.default,
    torch.ops.aten.numel.default, torch.ops.aten.sym_numel.default,
    torch.ops.aten.dim.default, torch.ops.aten.is_contiguous.default,
    torch.ops.aten.is_contiguous.memory_format, torch.ops.prim.layout.default,
}


@dataclass(frozen=True)
class TensorMeta:
    """A tensor seen during the trace. ``storage`` is a serial shared by every view of
    one storage (and by an in-place op's result), so aliasing is visible; ``role`` is
    ``input``, ``param``, ``buffer`` or ``activation`` (made by an op)."""

    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    storage: int
    storage_nbytes: int
    role: str


@dataclass
class LayerRecord:
    """One module call (or one stretch of a container's own ops).

    ``params`` counts the parameters this call used for the first time in the trace,
    so a module called twice has its parameters counted once. ``activation_bytes`` is
    the size of the call's output tensors for the traced batch and dtype.
    """

    name: str
    type: str
    leaf: bool
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    params: int = 0
    activation_bytes: int = 0
    events: list[int] = field(default_factory=list)
    inputs: tuple[int, ...] = ()  # tensor serials (Trace.tensors) the call received
    outputs: tuple[int, ...] = ()  # tensor serials it returned


@dataclass
class Trace:
    """``events[i].inputs``/``.outputs`` and ``records[j].inputs``/``.outputs`` index
    ``tensors``: the data flow of the traced run."""

    records: list[LayerRecord]
    events: list[OpEvent]
    tensors: list[TensorMeta]
    output: Any  # the model's output, meta tensors


_tensors = tensors_in


def _first_shape(value: Any) -> tuple[int, ...] | None:
    tensors = _tensors(value)
    return tuple(tensors[0].shape) if tensors else None


def _nbytes(value: Any) -> int:
    return sum(math.prod(t.shape) * t.element_size() for t in _tensors(value))


@dataclass
class _Frame:
    name: str
    module: nn.Module
    record: int | None  # the open record of this call, None between children


class _Recorder(TorchDispatchMode):
    """Dispatch mode + per-module hooks that fill records and events."""

    def __init__(self, names: dict[int, str], roles: dict[int, str]) -> None:
        super().__init__()
        self.names = names
        self.records: list[LayerRecord] = []
        self.events: list[OpEvent] = []
        self.tensors: list[TensorMeta] = []
        self.stack: list[_Frame] = []
        self._roles = roles  # id(tensor) -> role, for the inputs, parameters and buffers
        self._pending_params: dict[int, int] = {}
        self._seen_params: set[int] = set()
        self._serials: dict[int, int] = {}
        self._storages: dict[int, int] = {}
        self._alive: list[torch.Tensor] = []  # keeps id()s unique while tracing

    def serials(self, value: Any) -> tuple[int, ...]:
        """Serials of the tensors in ``value``, registering tensors seen for the first time."""
        out = []
        for t in _tensors(value):
            serial = self._serials.get(id(t))
            if serial is None:
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self._storages:
                    self._storages[key] = len(self._storages)
                serial = len(self.tensors)
                self._serials[id(t)] = serial
                self._alive.append(t)
                self.tensors.append(TensorMeta(
                    tuple(t.shape), str(t.dtype).removeprefix("torch."),
                    math.prod(t.shape) * t.element_size(), self._storages[key],
                    storage.nbytes(), self._roles.get(id(t), "activation"),
                ))
            out.append(serial)
        return tuple(out)

    # -- module hooks -------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        if self.stack:
            self.stack[-1].record = None  # the parent's own stretch of ops ends here
        leaf = next(iter(module.children()), None) is None
        frame = _Frame(self.names.get(id(module), type(module).__name__), module, None)
        self.stack.append(frame)
        self._pending_params[len(self.stack) - 1] = self._claim_params(module)
        if leaf:
            frame.record = self._open(frame, leaf=True, inputs=(args, kwargs))
            self.records[frame.record].inputs = self.serials((args, kwargs))

    def post_hook(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        frame = self.stack.pop()
        unclaimed = self._pending_params.pop(len(self.stack), 0)
        if frame.record is not None and self.records[frame.record].leaf:
            record = self.records[frame.record]
            record.output_shape = _first_shape(output)
            record.activation_bytes = _nbytes(output)
            record.outputs = self.serials(output)
        elif unclaimed and self.records:
            # A container that owns parameters but ran no op of its own: attribute
            # them to the last record inside it so that totals stay exact.
            self.records[-1].params += unclaimed
        if self.stack:
            self.stack[-1].record = None

    def _claim_params(self, module: nn.Module) -> int:
        count = 0
        for p in module.parameters(recurse=False):
            if id(p) not in self._seen_params:
                self._seen_params.add(id(p))
                count += p.numel()
        return count

    def _open(self, frame: _Frame, leaf: bool, inputs: Any) -> int:
        record = LayerRecord(
            name=frame.name,
            type=type(frame.module).__name__,
            leaf=leaf,
            input_shape=_first_shape(inputs),
        )
        depth = len(self.stack) - 1
        record.params = self._pending_params.get(depth, 0)
        self._pending_params[depth] = 0
        self.records.append(record)
        return len(self.records) - 1

    # -- dispatch -----------------------------------------------------------------
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Otherwise torch wraps __torch_dispatch__ in torch._disable_dynamo, whose first
        # call imports torch._dynamo (0.7 s a process) only to keep torch.compile from
        # tracing into the mode; archstat never runs under torch.compile. This is the
        # opt-out torch's TorchDispatchMode._should_skip_dynamo docstring describes.
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = kwargs or {}
        if func in _METADATA_OPS:
            return func(*args, **kwargs)
        if op_kind(func) is None and func.overloadpacket not in _COUNTED:
            # Like FlopCounterMode: an op we know nothing about may decompose into
            # ops we do know (CompositeImplicitAutograd ops reaching the mode).
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        in_serials = self.serials((args, kwargs))
        out = run_meta(func, args, kwargs)
        if self.stack:
            frame = self.stack[-1]
            if frame.record is None:
                frame.record = self._open(frame, leaf=False, inputs=args)
                self.records[frame.record].inputs = in_serials
            record = self.records[frame.record]
            out_serials = self.serials(out)
            if not record.leaf:
                record.output_shape = _first_shape(out)
                record.activation_bytes = _nbytes(out)
                record.outputs = out_serials
            self.events.append(
                OpEvent(func, shapes_of(tuple(args)), shapes_of(kwargs), shapes_of(out),
                        frame.record, in_serials, out_serials)
            )
            record.events.append(len(self.events) - 1)
        return out


def _counted_packets() -> set[Any]:
    from archstat.conventions import CONVENTIONS

    return {packet for conv in CONVENTIONS.values() for packet in conv.rules}


_COUNTED: set[Any] = set()


def _meta_like(value: Any, dtype: torch.dtype | None) -> Any:
    def convert(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        target = dtype if (dtype is not None and t.is_floating_point()) else t.dtype
        return torch.empty_strided(t.shape, t.stride(), dtype=target, device="meta")

    return tree_map(convert, value)


@contextmanager
def _eval_mode(model: nn.Module):
    """Analyse in inference mode and put every module's training flag back after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def trace(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Trace:
    """Run ``model(*args, **kwargs)`` on the meta device and record every op.

    The model itself is not changed: its parameters and buffers are replaced for the
    duration of the call by meta tensors (``torch.func.functional_call``), its training
    flags are restored, and the hooks are removed. Floating-point parameters, buffers
    and inputs are cast to ``dtype`` when it is given.
    """
    if not _COUNTED:
        _COUNTED.update(_counted_packets())
    kwargs = kwargs or {}
    names = {id(m): name for name, m in model.named_modules()}
    # One meta tensor per distinct tensor, so tied weights stay tied (and are counted once).
    memo: dict[int, torch.Tensor] = {}
    state = {
        name: memo.setdefault(id(t), _meta_like(t, dtype))
        for name, t in [
            *model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False),
        ]
    }
    meta_args, meta_kwargs = _meta_like(args, dtype), _meta_like(kwargs, dtype)
    roles = {id(t): "input" for t in _tensors((meta_args, meta_kwargs))}
    roles.update({id(memo[id(p)]): "param" for p in model.parameters()})
    roles.update({id(memo[id(b)]): "buffer" for b in model.buffers()})
    recorder = _Recorder(names, roles)
    with ExitStack() as stack:
        for module in model.modules():
            stack.enter_context(module.register_forward_pre_hook(recorder.pre_hook,
                                                                 with_kwargs=True))
            stack.enter_context(module.register_forward_hook(recorder.post_hook,
                                                             with_kwargs=True))
        stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.no_grad())
        try:
            with recorder:
                output = torch.func.functional_call(model, state, meta_args, meta_kwargs)
        except ArchstatError:
            raise
        except Exception as exc:  # a user's model failing on our input: say where
            raise ArchstatError(_failure_message(recorder, exc)) from exc
    return Trace(recorder.records, recorder.events, recorder.tensors, output)


def _failure_message(recorder: _Recorder, exc: Exception) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if len(detail) > 200:
        detail = detail[:197] + "..."
    if not recorder.stack:
        return f"the model's forward failed: {detail}"
    frame = recorder.stack[-1]
    shape = None
    if frame.record is not None:
        shape = recorder.records[frame.record].input_shape
    where = f"{frame.name or '(root)'} ({type(frame.module).__name__})"
    got = f" on input {'x'.join(map(str, shape))}" if shape else ""
    return f"forward failed in {where}{got}: {detail}"
