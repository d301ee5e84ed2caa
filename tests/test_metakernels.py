"""The fast meta kernels must give exactly what torch's own meta kernels give: shapes,
dtypes and strides, and an error wherever torch raises one."""

from __future__ import annotations

import pytest
import torch

import archstat
from archstat.trace import metakernels
from archstat.zoo import list_models

aten = torch.ops.aten


def meta(*shape: int, dtype: torch.dtype = torch.float32, channels_last: bool = False):
    t = torch.empty(shape, dtype=dtype, device="meta")
    return t.to(memory_format=torch.channels_last) if channels_last else t


def _same(ours, theirs) -> None:
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.shape, a.dtype, a.stride(), a.device) == (b.shape, b.dtype, b.stride(), b.device)


CASES = [
    (aten.convolution.default, (meta(2, 6, 17, 19), meta(12, 3, 5, 3), None, [2, 1], [2, 0],
                                [1, 2], False, [0, 0], 2)),
    (aten.convolution.default, (meta(1, 8, 9, 9, channels_last=True), meta(4, 8, 3, 3), None,
                                [1, 1], [1, 1], [1, 1], False, [0, 0], 1)),
    (aten.convolution.default, (meta(1, 8, 9, 9), meta(8, 4, 3, 3), None, [2, 2], [1, 1],
                                [1, 1], True, [1, 1], 1)),
    (aten.convolution.default, (meta(1, 3, 32), meta(5, 3, 4), None, [3], [1], [1], False,
                                [0], 1)),
    (aten.max_pool2d_with_indices.default, (meta(1, 64, 112, 112), [3, 3], [2, 2], [0, 0],
                                            [1, 1], True)),
    (aten.max_pool2d_with_indices.default, (meta(1, 4, 14, 14), [3, 3], [2, 2], [1, 1],
                                            [1, 1], False)),
    (aten.max_pool2d_with_indices.default, (meta(2, 4, 7, 7, channels_last=True), [2], [],
                                            [0], [1], True)),
    (aten.avg_pool2d.default, (meta(1, 528, 14, 14), [5, 5], [3, 3])),
    (aten.avg_pool3d.default, (meta(1, 1, 68, 56, 56), [5, 1, 1], [1, 1, 1])),
    (aten._adaptive_avg_pool2d.default, (meta(2, 256, 6, 6), [6, 6])),
    (aten.mean.dim, (meta(2, 512, 7, 7), [-1, -2], True)),
    (aten.mean.dim, (meta(2, 5, 3), [1])),
    (aten.mm.default, (meta(3, 4), meta(4, 5))),
    (aten.bmm.default, (meta(2, 3, 4), meta(2, 4, 5))),
    (aten.addmm.default, (meta(5), meta(3, 4), meta(4, 5))),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4), meta(8), meta(8), meta(8), meta(8),
                                      False, 0.1, 1e-5)),
    (aten.native_batch_norm.default, (meta(2, 8, 4, 4, dtype=torch.float16, channels_last=True),
                                      None, None, meta(8), meta(8), False, 0.1, 1e-5)),
    (aten.cat.default, ([meta(1, 64, 28, 28), meta(1, 32, 28, 28)], 1)),
    (aten.cat.default, ([meta(1, 2, 5, 5, channels_last=True)] * 2, -3)),
    (aten.add.Tensor, (meta(2, 1, 4), meta(3, 1))),
    (aten.add.Tensor, (meta(1, 4, 5, 5, channels_last=True), meta(1, 4, 5, 5))),
    (aten.mul.Scalar, (meta(3, 3, dtype=torch.float16), 2.5)),
    (aten.pow.Tensor_Scalar, (meta(3, 3), 0.75)),
    (aten.tanh.default, (meta(4, 6),)),
    (aten.relu_.default, (meta(4, 6),)),
    (aten.add_.Tensor, (meta(4, 6), meta(6))),
    (aten.zero_.default, (meta(4, 6),)),
    (aten.normal_.default, (meta(4, 6), 0.0, 0.02)),
]


@pytest.mark.parametrize(("op", "args"), CASES, ids=[str(c[0]) for c in CASES])
def test_shortcut_matches_torch_meta_kernel(op, args) -> None:
    shortcut = metakernels._shortcut(op)
    assert shortcut is not None
    ours = shortcut(*args)
    assert ours is not NotImplemented
    _same(ours, op(*args))
    if torch.Tag.inplace in op.tags:
        assert ours is args[0]


INVALID = [
    (aten.convolution.default, (meta(1, 3, 4, 4), meta(8, 3, 5, 5), None, [1, 1], [0, 0],
                                [1, 1], False, [0, 0], 1)),  # output would be 0x0
    (aten.convolution.default, (meta(1, 4, 9, 9), meta(8, 3, 3, 3), None, [1, 1], [0, 0],
                                [1, 1], False, [0, 0], 1)),  # channel mismatch
    (aten.max_pool2d_with_indices.default, (meta(1, 512, 1, 1), [2, 2], [2, 2], [0, 0],
                                            [1, 1], False)),
    (aten.mm.default, (meta(3, 4), meta(5, 5))),
    (aten.add.Tensor, (meta(2, 3), meta(4))),
    (aten.add_.Tensor, (meta(3), meta(2, 3))),
    (aten.cat.default, ([meta(1, 2, 3), meta(1, 2, 4)], 1)),
]


@pytest.mark.parametrize(("op", "args"), INVALID, ids=[str(c[0]) for c in INVALID])
def test_shortcut_defers_to_torch_where_torch_raises(op, args) -> None:
    assert metakernels._shortcut(op)(*args) is NotImplemented
    with pytest.raises(RuntimeError):
        metakernels.run_meta(op, args, {})


def test_broadcast_shape_agrees_with_torch() -> None:
    for shapes in [((2, 1, 4), (3, 1)), ((), (5,)), ((1,), (7, 1)), ((3, 4), (4,))]:
        assert metakernels.broadcast_shape(*shapes) == tuple(torch.broadcast_shapes(*shapes))
    assert metakernels.broadcast_shape((2, 3), (4,)) is None


@pytest.mark.parametrize("name", list_models())
def test_zoo_traces_identically_without_shortcuts(name, monkeypatch) -> None:
    fast = archstat.analyze(name).trace
    monkeypatch.setattr(metakernels, "_shortcut", lambda func: None)
    slow = archstat.analyze(name).trace
    assert fast.tensors == slow.tensors
    assert [(e.op, e.inputs, e.outputs) for e in fast.events] == [
        (e.op, e.inputs, e.outputs) for e in slow.events
    ]


PERMUTED = [
    (aten.mul.Tensor, (meta(2, 64, 128).transpose(1, 2), 2.0)),
    (aten.add.Tensor, (meta(2, 64, 128).transpose(1, 2), meta(2, 64, 128).transpose(1, 2))),
    (aten.mean.dim, (meta(2, 5, 3).permute(2, 0, 1), [1])),
    (aten.cat.default, ([meta(4, 6).t(), meta(4, 6).t()], 0)),
    (aten.max_pool2d_with_indices.default, (meta(1, 9, 9, 4).permute(0, 3, 2, 1), [3, 3],
                                            [2, 2], [0, 0], [1, 1], False)),
]


@pytest.mark.parametrize(("op", "args"), PERMUTED, ids=[str(c[0]) for c in PERMUTED])
def test_permuted_operands_go_to_torch_and_keep_its_strides(op, args) -> None:
    assert metakernels._shortcut(op)(*args) is NotImplemented
    _same(metakernels.run_meta(op, args, {}), op(*args))


def test_a_view_that_torch_refuses_is_refused_in_the_trace_too() -> None:
    class Attention(torch.nn.Module):
        def __init__(self, reshape: bool) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(64, 8)
            self.reshape = reshape

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.transpose(1, 2) * 2  # keeps the transposed strides
            return self.fc(y.reshape(-1, 64) if self.reshape else y.view(-1, 64))

    with pytest.raises(archstat.ArchstatError, match="view size is not compatible"):
        archstat.analyze(Attention(reshape=False), input_shape=(64, 128), batch=2)
    # reshape of a non-viewable tensor copies: the copy is in the trace
    ops = archstat.analyze(Attention(reshape=True), input_shape=(64, 128), batch=2).layers
    assert "clone" in "+".join(ops["ops"]) or "_unsafe_view" in "+".join(ops["ops"])
