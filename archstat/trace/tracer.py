"""Trace a model on the ``meta`` device: every aten op it runs, with shapes, attributed
to the innermost module that ran it.

Nothing is allocated and nothing is computed: parameters, buffers and inputs are meta
tensors, so tracing costs the same at 224x224 and at 2048x2048. This is the only module
that touches ``torch.utils._python_dispatch`` (a private torch API).

The trace is a list of :class:`LayerRecord` (one per leaf-module call, plus one per
stretch of a container's own functional code between its children, e.g. the residual
``x + identity`` or an inception module's ``torch.cat``) and a flat list of
:class:`~archstat.trace.ops.OpEvent` in execution order. FLOP conventions are applied later,
to the events, so one trace serves every convention.

:class:`StorageWatch` is the measuring counterpart: it watches a real run and counts
the bytes of the storages ops create while they are alive.

``trace(..., train=True)`` runs the model in training mode with autograd on (parameters
require grad as in the model), records which tensors autograd saves for backward
(``Trace.saved``, through ``torch.autograd.graph.saved_tensors_hooks``), and watches a
backward pass on meta too.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.nn.parameter import is_lazy
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from archstat.errors import ArchstatError
from archstat.trace import cpupath
from archstat.trace.metakernels import run_meta, tensors_in
from archstat.trace.ops import OpEvent, op_kind, shapes_of

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
    requires_grad: bool = False


@dataclass
class LayerRecord:
    """One module call (or one stretch of a container's own ops).

    ``params`` counts, by data flow, the parameter elements the record's ops read for
    the first time in the trace, whichever module owns them: a module called twice has
    its parameters counted once, and a weight that a container passes to a function
    (``F.linear(x, self.inner.weight)``, ``nn.MultiheadAttention``'s ``out_proj``) counts
    where it is read. ``activation_bytes`` is the bytes of new storage the record's ops
    allocate for the traced batch and dtype: a view or an in-place result allocates
    nothing, an op's every new output counts (max pooling's int64 indices too).
    ``input_shape`` is the first input of the module call, also for a stretch of a
    container's own ops (an inception module's ``cat`` row shows the module's input).
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
    backward_events: list[int] = field(default_factory=list)  # indices into Trace.backward


@dataclass
class Trace:
    """``events[i].inputs``/``.outputs`` and ``records[j].inputs``/``.outputs`` index
    ``tensors``: the data flow of the traced run.

    ``outputs`` are the serials of the model's output tensors. ``freed`` maps a storage
    to the number of events that had run when the traced run freed it (Python dropped
    its last reference); storages alive at the end (outputs, parameters, what autograd
    saved) are absent. ``saved`` lists the serials of the tensors autograd saved for
    backward, in the order it saved them (empty unless traced with ``train=True``; a
    tensor saved by two ops appears twice). ``backward_peak_bytes`` (training traces
    only) is the most bytes of storages made by ops that were live at once over the
    forward and a backward from the sum of the outputs: activations, what autograd
    saved, activation gradients and parameter gradients, as a StorageWatch saw them.
    """

    records: list[LayerRecord]
    events: list[OpEvent]
    tensors: list[TensorMeta]
    output: Any  # the model's output, meta tensors
    outputs: tuple[int, ...] = ()
    freed: dict[int, int] = field(default_factory=dict)
    saved: tuple[int, ...] = ()
    train: bool = False
    backward_peak_bytes: int | None = None
    #: (op, module) of every op whose result depended on values, on a real run (``real``)
    data_dependent: list[tuple[str, str]] = field(default_factory=list)
    real: bool = False
    #: module path -> parameter elements of that module's own parameters that no op of
    #: the forward read (an idle auxiliary head); shared tensors once.
    unused_params: dict[str, int] = field(default_factory=dict)
    #: a training trace's backward pass, op by op (``phase`` backward or recompute), each
    #: attributed to the record whose forward ops made the autograd node that ran it
    backward: list[OpEvent] = field(default_factory=list)


_tensors = tensors_in


def _first_shape(value: Any) -> tuple[int, ...] | None:
    tensors = _tensors(value)
    return tuple(tensors[0].shape) if tensors else None


class _NodeTagger(TorchFunctionMode):
    """Tags the autograd nodes a training forward creates with the record whose ops made
    them (nodes a composite op makes inside, such as a linear layer's transposed weight,
    are tagged too: every untagged node reachable from a call's outputs). The tags are how
    the backward's ops are attributed to modules."""

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        out = func(*args, **(kwargs or {}))
        stack = self.recorder.stack
        record = stack[-1].record if stack else None
        if record is not None and torch.is_grad_enabled():
            tag_nodes(out, record)
        return out


_RECORD = "archstat_record"


def tag_nodes(value: Any, record: int) -> list[Any]:
    """Tag the untagged autograd nodes behind the tensors in ``value`` with ``record``;
    returns the nodes tagged."""
    tagged = []
    pending = [t.grad_fn for t in _tensors(value) if t.grad_fn is not None]
    while pending:
        node = pending.pop()
        if node is None or _RECORD in node.metadata:
            continue
        node.metadata[_RECORD] = record
        tagged.append(node)
        pending.extend(next_node for next_node, _ in node.next_functions)
    return tagged


class _GradSides:
    """Which backward ops compute activations' gradients and which parameters': after a
    node runs (a post-hook), each output of one of its ops that is the gradient the node
    hands to a parameter (through views and transposes only) is weight-gradient work; an
    op that makes both kinds (convolution_backward) is ``mixed``."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder
        self.params: dict[int, int] = {}  # id(parameter meta tensor) -> record reading it
        self._events: dict[int, list[tuple[int, list[int]]]] = {}  # id(node) -> events
        self._weight_side: dict[Any, bool] = {}
        self._handles: list[Any] = []

    def watch(self, roots: list[torch.Tensor]) -> None:
        """Hook every node of the graph behind ``roots`` (see :meth:`remove`)."""
        seen = set()
        pending = [t.grad_fn for t in roots if t.grad_fn is not None]
        nodes = []
        while pending:
            node = pending.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            nodes.append(node)
            pending.extend(next_node for next_node, _ in node.next_functions)
        self.watch_nodes(nodes)

    def watch_nodes(self, nodes: list[Any]) -> None:
        self._handles += [node.register_hook(partial(self._classify, node)) for node in nodes]

    def remove(self) -> None:
        """Remove every hook :meth:`watch` placed."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def record_of(self, node: Any) -> int | None:
        if node is None:
            return None
        if type(node).__name__ == "AccumulateGrad":
            return self.params.get(id(node.variable))
        return node.metadata.get(_RECORD)

    def note(self, node: Any, index: int, out: Any) -> None:
        keys = [t.untyped_storage()._cdata for t in _tensors(out)]
        self._events.setdefault(id(node), []).append((index, keys))

    def _classify(self, node: Any, grad_inputs: Any, grad_outputs: Any) -> None:
        weight = {g.untyped_storage()._cdata
                  for g, (next_node, _) in zip(grad_inputs, node.next_functions, strict=False)
                  if g is not None and self._to_parameter(next_node)}
        if not weight:
            return
        backward = self.recorder.backward
        for index, keys in self._events.pop(id(node), []):
            sides = {key in weight for key in keys}
            if True in sides:
                grad = "weight" if sides == {True} else "mixed"
                backward[index] = dataclasses.replace(backward[index], grad=grad)

    def _to_parameter(self, node: Any) -> bool:
        """Whether ``node`` only hands its gradient on to parameters (AccumulateGrad,
        through view and transpose nodes)."""
        if node is None:
            return False
        if node not in self._weight_side:
            if type(node).__name__ == "AccumulateGrad":
                self._weight_side[node] = id(node.variable) in self.params
            elif type(node).__name__ in _PASS_NODES:
                nexts = [n for n, _ in node.next_functions if n is not None]
                self._weight_side[node] = bool(nexts) and all(map(self._to_parameter, nexts))
            else:
                self._weight_side[node] = False
        return self._weight_side[node]


#: Autograd nodes that only move a gradient (views, transposes, casts, expands).
_PASS_NODES = frozenset({
    "TBackward0", "TransposeBackward0", "PermuteBackward0", "ViewBackward0",
    "UnsafeViewBackward0", "ReshapeAliasBackward0", "ExpandBackward0", "UnsqueezeBackward0",
    "SqueezeBackward0", "SqueezeBackward1", "AliasBackward0", "ToCopyBackward0",
    "CloneBackward0", "SelectBackward0", "SliceBackward0", "AsStridedBackward0",
})


def data_dependent(func: Any) -> bool:
    """Whether an op's output, or its shape, depends on its input's values (``nonzero``,
    ``.item()``, boolean masks, ``unique``): such an op cannot run on meta."""
    return torch.Tag.data_dependent_output in func.tags or \
        torch.Tag.dynamic_output_shape in func.tags


def _value_dependent(func: Any, args: Any) -> bool:
    """Whether this call's result depends on values: indexing does with a boolean mask,
    not with integer indices (aten.index is tagged for the mask case)."""
    if func.overloadpacket is torch.ops.aten.index:
        return any(t.dtype in (torch.bool, torch.uint8) for t in _tensors(args[1:]))
    return True


class DataDependentError(ArchstatError):
    """The forward reached an op that needs real values; ``op`` names it, ``where`` the
    module that ran it."""

    def __init__(self, func: Any, where: str) -> None:
        self.op = func.overloadpacket.__name__
        self.where = where
        super().__init__(f"forward needs real values in {where}: aten.{self.op} has a result "
                         "that depends on the input's values, which do not exist on meta")


@dataclass
class _Frame:
    name: str
    module: nn.Module
    record: int | None  # the open record of this call, None between children
    input_shape: tuple[int, ...] | None = None  # of the call's first input tensor
    opened: list[int] = field(default_factory=list)  # records opened for this call


class _NoDynamoMode(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Otherwise torch wraps __torch_dispatch__ in torch._disable_dynamo, whose first
        # call imports torch._dynamo (0.7 s a process) only to keep torch.compile from
        # tracing into the mode; archstat never runs under torch.compile. This is the
        # opt-out torch's TorchDispatchMode._should_skip_dynamo docstring describes.
        return False


class _FastMeta(_NoDynamoMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        return run_meta(func, args, kwargs or {})


@contextmanager
def fast_meta_build() -> Iterator[None]:
    """Build modules on the meta device, with initialisers (``zero_``, ``normal_``, ...)
    answered by archstat.trace.metakernels' shortcuts instead of torch's Python references."""
    with torch.device("meta"), _FastMeta():
        yield


class _Recorder(_NoDynamoMode):
    """Dispatch mode + per-module hooks that fill records and events."""

    def __init__(self, names: dict[int, str], roles: dict[int, str],
                 params: dict[int, int]) -> None:
        super().__init__()
        self.names = names
        self.records: list[LayerRecord] = []
        self.events: list[OpEvent] = []
        self.tensors: list[TensorMeta] = []
        self.stack: list[_Frame] = []
        self.saved: list[int] = []
        self.freed: dict[int, int] = {}
        self._roles = roles  # id(tensor) -> role, for the inputs, parameters and buffers
        # storage address -> elements of the parameters on it, until an op first reads it
        self.unread_params = params
        self.data_dependent: list[tuple[str, str]] = []  # (op, where) that ran on real values
        self.phase = "forward"  # "backward" while the backward pass runs
        self.failed_in: _Frame | None = None
        self.backward: list[OpEvent] = []
        self.grads = _GradSides(self)
        # Tensors are held weakly, so that the traced run frees them when Python would:
        # the moment a storage dies is part of what the trace measures. A weakref's
        # callback forgets a dead tensor's id, or storage's address, before its reuse.
        self._serials: dict[int, tuple[int, weakref.ref]] = {}  # id(tensor) -> serial
        self._storages: dict[int, tuple[int, weakref.ref]] = {}  # address -> storage serial
        self._storage_count = 0

    def serials(self, value: Any) -> tuple[int, ...]:
        """Serials of the tensors in ``value``, registering tensors seen for the first time."""
        out = []
        for t in _tensors(value):
            entry = self._serials.get(id(t))
            if entry is None:
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self._storages:
                    ref = weakref.ref(storage, partial(self._free, key))
                    self._storages[key] = (self._storage_count, ref)
                    self._storage_count += 1
                entry = (len(self.tensors), weakref.ref(t, partial(self._forget, id(t))))
                self._serials[id(t)] = entry
                self.tensors.append(TensorMeta(
                    tuple(t.shape), str(t.dtype).removeprefix("torch."),
                    math.prod(t.shape) * t.element_size(), self._storages[key][0],
                    storage.nbytes(), self._roles.get(id(t), "activation"), t.requires_grad,
                ))
            out.append(entry[0])
        return tuple(out)

    def _forget(self, key: int, _ref: Any = None) -> None:
        self._serials.pop(key, None)

    def _free(self, key: int, _ref: Any = None) -> None:
        self.freed[self._storages.pop(key)[0]] = len(self.events)

    # -- module hooks -------------------------------------------------------------
    # Global module hooks (filtered to the model's modules), not hooks on the modules:
    # a module with hooks of its own loses TransformerEncoderLayer's fast path ("forward
    # pre-/hooks are attached to the module"), so hooking it would change what runs. A
    # global pre-hook sees no keyword arguments: a call's keyword inputs are read by the
    # post-hook, which does.
    def pre_hook(self, module: nn.Module, args: Any) -> None:
        if id(module) not in self.names:
            return
        if self.phase != "forward":  # checkpointing runs the module again: no new record
            name = self.names[id(module)]
            record = next((i for i, r in enumerate(self.records) if r.name == name), None)
            self.stack.append(_Frame(name, module, record))
            return
        if self.stack:
            self.stack[-1].record = None  # the parent's own stretch of ops ends here
        leaf = next(iter(module.children()), None) is None
        frame = _Frame(self.names[id(module)], module, None, _first_shape(args))
        self.stack.append(frame)
        if leaf:
            frame.record = self._open(frame, leaf=True)

    def post_hook(self, module: nn.Module, args: Any, *rest: Any) -> None:
        """``rest`` is (kwargs, output), or (output,) when the call raised: the hook is
        registered with always_call, so that the stack stays right when a forward catches
        an exception of its own, or checkpointing stops a recomputation early."""
        if id(module) not in self.names:
            return
        kwargs, output = rest if len(rest) == 2 else ({}, rest[0])
        frame = self.stack.pop()
        if len(rest) == 1:
            self.failed_in = self.failed_in or frame  # the innermost module that raised
        else:
            self.failed_in = None  # a forward that caught an exception of its own
        if self.phase != "forward":
            # A recomputation whose graph is backpropagated at once (reentrant
            # checkpointing): its nodes belong to the module run again. (No torch function
            # mode is active inside autograd's backward to tag them as they are made.)
            if frame.record is not None and torch.is_grad_enabled():
                self.grads.watch_nodes(tag_nodes(output, frame.record))
            return
        if frame.input_shape is None:
            shape = _first_shape(kwargs)
            for index in frame.opened:
                self.records[index].input_shape = shape
        if frame.record is not None and self.records[frame.record].leaf:
            record = self.records[frame.record]
            record.inputs = self.serials((args, kwargs))
            record.output_shape = _first_shape(output)
            record.outputs = self.serials(output)
        if self.stack:
            self.stack[-1].record = None

    def _open(self, frame: _Frame, leaf: bool) -> int:
        self.records.append(LayerRecord(name=frame.name, type=type(frame.module).__name__,
                                        leaf=leaf, input_shape=frame.input_shape))
        frame.opened.append(len(self.records) - 1)
        return len(self.records) - 1

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        """saved_tensors_hooks pack hook: note what autograd keeps for backward."""
        self.saved.extend(self.serials(tensor))
        return tensor

    # -- dispatch -----------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = kwargs or {}
        if func in _METADATA_OPS:
            return func(*args, **kwargs)
        if func in cpupath.DESCEND and any(t.is_meta for t in _tensors(args)):
            # The CPU kernel of the transformer fast path is itself dispatcher calls:
            # follow it on meta, so that its ops are recorded one by one.
            with self, cpupath.origin(func.overloadpacket.__name__):
                return func.redispatch(cpupath.CPU_KEYS, *args, **kwargs)
        if op_kind(func) is None and func.overloadpacket not in _COUNTED:
            # Like FlopCounterMode: an op we know nothing about may decompose into
            # ops we do know (CompositeImplicitAutograd ops reaching the mode).
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        if self.phase == "loss":
            return run_meta(func, args, kwargs)
        if self.phase != "forward":
            return self._backward_op(func, args, kwargs)
        in_serials = self.serials((args, kwargs))
        on_meta = any(t.is_meta for t in _tensors((args, kwargs)))
        try:
            out = run_meta(func, args, kwargs)
        except Exception as exc:
            if data_dependent(func) and on_meta:
                raise DataDependentError(func, self._where()) from exc
            raise
        if on_meta:
            out = cpupath.cpu_outputs(func, args, out)
        if data_dependent(func) and _value_dependent(func, args):
            self.data_dependent.append((func.overloadpacket.__name__, self._where()))
        if self.stack:
            frame = self.stack[-1]
            if frame.record is None:
                frame.record = self._open(frame, leaf=False)
                self.records[frame.record].inputs = in_serials
            record = self.records[frame.record]
            if self.unread_params:
                record.params += self._read_params(args, kwargs)
            known = self._storage_count
            out_serials = self.serials(out)
            # Storages first seen among the outputs are what this op allocated.
            allocated = sum({m.storage: m.storage_nbytes
                             for m in map(self.tensors.__getitem__, out_serials)
                             if m.storage >= known}.values())
            record.activation_bytes += allocated
            if not record.leaf:
                record.output_shape = _first_shape(out)
                record.outputs = out_serials
            self.events.append(
                OpEvent(func, shapes_of(tuple(args)), shapes_of(kwargs), shapes_of(out),
                        frame.record, in_serials, out_serials, allocated,
                        origin=cpupath.ORIGIN.get())
            )
            record.events.append(len(self.events) - 1)
        return out

    def _backward_op(self, func: Any, args: Any, kwargs: Any) -> Any:
        """Record one op of the backward pass: under the record of the module whose forward
        made the autograd node running it, or, inside a module that checkpointing runs
        again, as that module's recomputation."""
        out = run_meta(func, args, kwargs)
        if self.stack:
            phase, record, node = "recompute", self.stack[-1].record, None
        else:
            node = torch._C._current_autograd_node()
            phase, record = "backward", self.grads.record_of(node)
        if record is None:  # the loss the trace backpropagates: not part of the model
            return out
        grad = ""
        if phase == "backward":
            grad = "weight" if type(node).__name__ == "AccumulateGrad" else "input"
        event = OpEvent(func, shapes_of(tuple(args)), shapes_of(kwargs), shapes_of(out),
                        record, phase=phase, grad=grad)
        self.backward.append(event)
        self.records[record].backward_events.append(len(self.backward) - 1)
        if node is not None:
            self.grads.note(node, len(self.backward) - 1, out)
        return out

    def _where(self) -> str:
        frame = self.stack[-1] if self.stack else None
        return f"{frame.name or '(root)'} ({type(frame.module).__name__})" if frame else "(root)"

    def _read_params(self, args: Any, kwargs: Any) -> int:
        """Elements of the parameters an op reads (directly or through a view) for the
        first time in the trace."""
        count = 0
        for t in _tensors((args, kwargs)):
            count += self.unread_params.pop(t.untyped_storage()._cdata, 0)
        return count


def _counted_packets() -> set[Any]:
    from archstat.conventions import CONVENTIONS

    return {packet for conv in CONVENTIONS.values() for packet in conv.rules}


_COUNTED: set[Any] = set()


def _meta_like(value: Any, dtype: torch.dtype | None, grad: bool = False,
               real: bool = False) -> Any:
    """Meta copies of the tensors in ``value``; with ``grad``, a copy requires grad where
    the original does (parameters in a training trace). With ``real``, the tensors
    themselves (detached copies in ``dtype`` where they are in another floating dtype).
    A tensor that appears twice gets one copy (self-attention passes ``x, x, x``, and
    nn.MultiheadAttention's fast path asks whether query is key)."""
    copies: dict[int, torch.Tensor] = {}

    def convert(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        if id(t) not in copies:
            copies[id(t)] = copy_of(t)
        return copies[id(t)]

    def copy_of(t: torch.Tensor) -> torch.Tensor:
        target = dtype if (dtype is not None and t.is_floating_point()) else t.dtype
        if real:
            copy = t.detach().to(target) if t.dtype != target else t.detach()
        else:
            copy = torch.empty_strided(t.shape, t.stride(), dtype=target, device="meta")
        return copy.requires_grad_(grad and t.requires_grad and copy.is_floating_point())

    return tree_map(convert, value)


@contextmanager
def _attributes_kept(model: nn.Module) -> Iterator[None]:
    """Put back every module's plain attributes after the traced call: a forward that
    caches tensors in an attribute (torchvision's AnchorGenerator keeps its anchors in a
    list) would otherwise keep meta tensors in the caller's model."""
    saved = [(m, dict(m.__dict__)) for m in model.modules()]
    try:
        yield
    finally:
        for module, attributes in saved:
            for key in set(module.__dict__) - set(attributes):
                del module.__dict__[key]
            module.__dict__.update(attributes)


@contextmanager
def _training_flags(model: nn.Module, train: bool):
    """Set every module's training flag to ``train`` and put the flags back after."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag



@contextmanager
def _global_post_hook(hook: Callable[..., Any]) -> Iterator[None]:
    """A forward hook on every module, called with kwargs and on exceptions too. torch's
    handle forgets the ``with_kwargs`` entry it made (torch 2.13/2.14), which would leave
    ``torch.compile`` warning of global hooks after every trace; it is removed here."""
    from torch.nn.modules import module as torch_module

    handle = register_module_forward_hook(hook, with_kwargs=True, always_call=True)
    try:
        yield
    finally:
        handle.remove()
        torch_module._global_forward_hooks_with_kwargs.pop(handle.id, None)

def trace(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    train: bool = False,
    real: bool = False,
    freeze: Iterable[str] = (),
) -> Trace:
    """Run ``model(*args, **kwargs)`` on the meta device and record every op.

    The model itself is not changed: its parameters and buffers are replaced for the
    duration of the call by meta tensors (``torch.func.functional_call``), its training
    flags are restored, and the hooks are removed. Floating-point parameters, buffers
    and inputs are cast to ``dtype`` when it is given. By default the model runs in eval
    mode under ``torch.no_grad()``; with ``train=True`` it runs in training mode with
    autograd on, the tensors saved for backward are recorded in ``Trace.saved``, and a
    backward from the sum of the outputs runs after the forward, watched for
    ``Trace.backward_peak_bytes`` (its ops are not recorded as events).

    ``freeze`` names module-path prefixes whose parameters are traced as frozen
    (``requires_grad=False``), whatever the model says; the model is not changed.

    With ``real=True`` the model runs on its own device and values instead (inputs must
    be real tensors too), for a forward that needs values (:class:`DataDependentError`);
    ``Trace.data_dependent`` then names the ops whose results depended on them.
    """
    if not _COUNTED:
        _COUNTED.update(_counted_packets())
    kwargs = kwargs or {}
    if not real and any(is_lazy(t) for t in (*model.parameters(), *model.buffers())):
        model = _materialized(model, args, kwargs)
    names = {id(m): name for name, m in model.named_modules()}
    frozen = {id(p) for name, p in model.named_parameters(remove_duplicate=False)
              if any(name == f or name.startswith(f + ".") for f in freeze)}
    # One meta tensor per distinct tensor, so tied weights stay tied (and are counted once).
    memo: dict[int, torch.Tensor] = {}
    state = {
        # Parameters keep requires_grad in eval too: torch's matmul chooses between a
        # folded mm and a bmm by it, so a real run's ops (and memory) depend on it.
        name: memo.setdefault(id(t), _meta_like(t, dtype, id(t) not in frozen, real))
        for name, t in [
            *model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False),
        ]
    }
    meta_args, meta_kwargs = _meta_like((args, kwargs), dtype, real=real)
    roles = {id(t): "input" for t in _tensors((meta_args, meta_kwargs))}
    roles.update({id(memo[id(p)]): "param" for p in model.parameters()})
    roles.update({id(memo[id(b)]): "buffer" for b in model.buffers()})
    # Each distinct parameter has a meta storage of its own: it counts once, when an op
    # first reads it (or a view of it).
    param_storage = {name: memo[id(p)].untyped_storage()._cdata
                     for name, p in model.named_parameters()}
    recorder = _Recorder(names, roles, {
        key: memo[id(p)].numel()
        for (name, p), key in zip(model.named_parameters(), param_storage.values(), strict=True)})
    with ExitStack() as stack:
        stack.enter_context(register_module_forward_pre_hook(recorder.pre_hook))
        stack.enter_context(_global_post_hook(recorder.post_hook))
        if not real:
            stack.enter_context(cpupath.as_cpu())
        stack.enter_context(_attributes_kept(model))
        stack.enter_context(_training_flags(model, train))
        if train:
            stack.enter_context(torch.enable_grad())
            stack.enter_context(torch.autograd.graph.saved_tensors_hooks(recorder.pack,
                                                                         lambda t: t))
        else:
            stack.enter_context(torch.no_grad())
        # In training, a watch under the recorder sees every op of the forward and of
        # the backward, and so how much the two hold at once.
        watch = StorageWatch([*state.values(), *_tensors((meta_args, meta_kwargs))])
        try:
            with watch if train else ExitStack(), \
                    _NodeTagger(recorder) if train else ExitStack(), recorder:
                if train:
                    # The backward runs inside the call, while the model still holds the
                    # traced parameters: checkpointing recomputes with them.
                    params = [memo[id(p)] for p in model.parameters()]
                    step = _ForwardBackward(model, partial(_record_backward, recorder,
                                                           params=params))
                    output = torch.func.functional_call(
                        step, {f"model.{k}": v for k, v in state.items()}, meta_args,
                        meta_kwargs)
                else:
                    output = torch.func.functional_call(model, state, meta_args, meta_kwargs)
        except ArchstatError:
            raise
        except Exception as exc:  # a user's model failing on our input: say where
            raise ArchstatError(_failure_message(recorder, exc)) from exc
    unused: dict[str, int] = {}
    for (name, p), key in zip(model.named_parameters(), param_storage.values(), strict=True):
        if key in recorder.unread_params:
            module = name.rpartition(".")[0]
            unused[module] = unused.get(module, 0) + p.numel()
    return Trace(recorder.records, recorder.events, recorder.tensors, output,
                 recorder.serials(output), dict(recorder.freed), tuple(recorder.saved), train,
                 watch.peak_bytes if train else None, recorder.data_dependent, real, unused,
                 recorder.backward)


def _materialized(model: nn.Module, args: Any, kwargs: dict[str, Any]) -> nn.Module:
    """A meta copy of a model with lazy modules (``nn.LazyLinear``), their parameters
    initialised by one untraced forward, as a first call would; ``model`` is unchanged."""
    copy = deepcopy(model)
    for module in copy.modules():
        for group in (module._parameters, module._buffers):
            for name, t in group.items():
                if t is None:
                    continue
                if is_lazy(t):
                    kind = (nn.UninitializedParameter if isinstance(t, nn.Parameter)
                            else nn.UninitializedBuffer)
                    group[name] = kind(requires_grad=t.requires_grad, device="meta",
                                       dtype=t.dtype)
                else:
                    meta = torch.empty_like(t, device="meta")
                    group[name] = (nn.Parameter(meta, t.requires_grad)
                                   if isinstance(t, nn.Parameter) else meta)
    try:
        with torch.no_grad(), _FastMeta():
            copy(*_meta_like(args, None), **_meta_like(kwargs, None))
    except Exception as exc:
        raise ArchstatError(f"initialising the model's lazy modules failed: "
                            f"{_one_line(exc)}") from exc
    return copy


class _ForwardBackward(nn.Module):
    """The model's forward, then ``after(output)`` (the recorded backward), as one call."""

    def __init__(self, model: nn.Module, after: Any) -> None:
        super().__init__()
        self.model = model
        self._after = after

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.model(*args, **kwargs)
        self._after(output)
        return output


def _record_backward(recorder: _Recorder, output: Any, params: list[torch.Tensor]) -> None:
    """Backpropagate the sum of the outputs' sums (the simplest loss that reaches them
    all), recording its ops (:attr:`Trace.backward`)."""
    roots = [t for t in _tensors(output) if t.requires_grad]
    if not roots:
        return
    recorder.phase = "loss"  # the loss is not the model's: its ops are not recorded
    loss = sum(t.sum() for t in roots)
    # a parameter's gradient is weight-gradient work of the record that first read it
    first_reader = {}
    for index, record in enumerate(recorder.records):
        for event in (recorder.events[e] for e in record.events):
            for serial in event.inputs:
                first_reader.setdefault(recorder.tensors[serial].storage, index)
    for meta in params:
        storage = recorder._storages.get(meta.untyped_storage()._cdata)
        if storage is not None and storage[0] in first_reader:
            recorder.grads.params[id(meta)] = first_reader[storage[0]]
    recorder.grads.watch([loss])
    recorder.phase = "backward"
    try:
        loss.backward()
    except ArchstatError:
        raise
    except Exception as exc:  # an op with no meta backward, say
        raise ArchstatError(f"the backward pass failed on meta: {_one_line(exc)}") from exc
    finally:
        recorder.phase = "forward"
        recorder.grads.remove()


def _one_line(exc: Exception) -> str:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return detail if len(detail) <= 200 else detail[:197] + "..."


def _failure_message(recorder: _Recorder, exc: Exception) -> str:
    detail = _one_line(exc)
    frame = recorder.failed_in or (recorder.stack[-1] if recorder.stack else None)
    if frame is None:
        return f"the model's forward failed: {detail}"
    shape = frame.input_shape
    if frame.record is not None:
        shape = recorder.records[frame.record].input_shape or shape
    where = f"{frame.name or '(root)'} ({type(frame.module).__name__})"
    got = f" on input {'x'.join(map(str, shape))}" if shape else ""
    return f"forward failed in {where}{got}: {detail}"


class StorageWatch(_NoDynamoMode):
    """Measure, on real tensors, the bytes of the storages that ops create while they
    live: ``live_bytes`` now, ``peak_bytes`` the most ever live at once (sampled after
    every op, when its inputs and outputs both exist).

    A storage counts from the op that returns it until torch frees it (a weakref
    callback on the storage), with its full ``nbytes``; storages of the tensors in
    ``existing`` (inputs, parameters, buffers) are never counted, nor is memory an op
    allocates and frees internally. Storage Python objects live exactly as long as the
    storage itself (torch preserves them), which is what makes the callback exact.
    """

    def __init__(self, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._external = {t.untyped_storage()._cdata for t in existing}
        self._tracked: dict[int, weakref.ref] = {}  # storage address -> weakref

    def _free(self, key: int, nbytes: int, _ref: Any = None) -> None:
        del self._tracked[key]
        self.live_bytes -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        out = func(*args, **(kwargs or {}))
        for t in _tensors(out):
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._external or key in self._tracked:
                continue
            self._tracked[key] = weakref.ref(storage, partial(self._free, key, storage.nbytes()))
            self.live_bytes += storage.nbytes()
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return out
