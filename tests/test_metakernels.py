"""The fast meta kernels must give exactly what torch's own meta kernels give: shapes,
dtypes and strides, and an error wherever torch raises one. Hand-picked cases first, then
random calls of every shortcut (hypothesis, derandomized), then the fallbacks."""

from __future__ import annotations

import importlib
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


QUICK = ("resnet18", "densenet121", "efficientnet_b0", "googlenet")


@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow)
                                  for n in list_models()])
def test_zoo_traces_identically_without_shortcuts(name, monkeypatch) -> None:
    fast = archstat.analyze(name).trace
    monkeypatch.setattr(metakernels, "FAST_META", False)
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
def test_permuted_operands_keep_torchs_strides(op, args) -> None:
    # elementwise shortcuts leave non-canonical layouts to torch; the others follow
    # torch's rule (reductions: contiguous; pooling and cat: the suggested layout)
    if op in (aten.mul.Tensor, aten.add.Tensor):
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


# ---------------------------------------------------------------- random calls
# Every shortcut against torch's own meta kernel (the op called outside any dispatch
# mode) over random calls: shapes with size-1, empty and broadcast dims; contiguous,
# channels-last, permuted, sliced and expanded operands; all floating dtypes and some
# integer ones; arguments torch refuses. Derandomized, so a run tests the same calls
# every time. Where torch raises, the shortcut must decline (or raise) and run_meta raise
# torch's error; where torch answers, the shortcut must answer alike or decline.
FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
DTYPES = st.sampled_from(FLOATS * 3 + (torch.int64, torch.int32, torch.uint8, torch.bool))
SIZES = st.sampled_from((1, 1, 1, 2, 2, 3, 3, 4, 5, 7) * 2 + (0,))
SMALL = st.integers(1, 3)
REALS = st.sampled_from((2, 0.5, -1.5, 0, True))
NUMBERS = st.sampled_from((2, 0.5, -1.5, 0, True) * 3 + (1j,))
LAYOUTS = st.sampled_from(("contiguous", "contiguous", "channels_last", "channels_last",
                           "permuted", "sliced", "expanded"))


def shapes(min_dims: int = 0, max_dims: int = 5):
    return st.lists(SIZES, min_size=min_dims, max_size=max_dims)


@st.composite
def meta_tensors(draw, shape, dtype=None):
    """A meta tensor of ``shape`` in a random layout."""
    shape, n = list(shape), len(shape)
    dtype = draw(DTYPES) if dtype is None else dtype
    layout = draw(LAYOUTS)
    if layout == "channels_last" and n in (4, 5):
        fmt = torch.channels_last if n == 4 else torch.channels_last_3d
        return torch.empty(shape, dtype=dtype, device="meta", memory_format=fmt)
    if layout == "permuted" and n >= 2:
        perm = draw(st.permutations(range(n)))
        base = torch.empty([shape[p] for p in perm], dtype=dtype, device="meta")
        return base.permute([perm.index(i) for i in range(n)])
    if layout in ("sliced", "expanded") and n >= 1:
        d = draw(st.integers(0, n - 1))
        if layout == "sliced":  # every other element along d: odd strides, size-1 dims too
            big = [*shape[:d], 2 * shape[d], *shape[d + 1:]]
            return torch.empty(big, dtype=dtype, device="meta")[(slice(None),) * d + (
                slice(None, None, 2),)]
        small = [*shape[:d], 1, *shape[d + 1:]]
        return torch.empty(small, dtype=dtype, device="meta").expand(shape)
    return torch.empty(shape, dtype=dtype, device="meta")


@st.composite
def partner_shapes(draw, shape):
    """A shape that broadcasts with ``shape``: size-1 dims, fewer dims; now and then an
    arbitrary one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(shapes())
    out = [1 if draw(st.integers(0, 2)) == 0 else n for n in shape]
    return out[min(draw(st.sampled_from((0, 0, 0, 1, 2))), len(out)):]


def partner_dtypes(dtype):
    return st.one_of(st.just(dtype), st.just(dtype), st.just(dtype), DTYPES)


def _outcome(value):
    """``value()``, or the exception it raised."""
    try:
        return value()
    except Exception as exc:
        return exc


def check_against_torch(op, args, kwargs=None) -> str:
    """run_meta and the shortcut against torch's meta kernel; what happened."""
    kwargs = kwargs or {}
    shortcut = metakernels._shortcut(op)
    expected = _outcome(lambda: op(*args, **kwargs))
    ours = _outcome(lambda: shortcut(*args, **kwargs))
    if isinstance(expected, Exception):
        assert ours is NotImplemented or isinstance(ours, Exception), (
            f"the shortcut answers where torch raises {expected!r}")
        with pytest.raises(type(expected)):
            metakernels.run_meta(op, args, kwargs)
        return "torch raises"
    assert not isinstance(ours, Exception), f"the shortcut raises where torch does not: {ours!r}"
    _same(metakernels.run_meta(op, args, kwargs), expected)
    if ours is NotImplemented:
        return "declined"
    _same(ours, expected)
    if torch.Tag.inplace in op.tags:
        assert ours is args[0]
    return "answered"


def fuzz(op, calls, examples: int) -> None:
    """Check ``examples`` random calls of ``op``, and that its shortcut answered some of
    them (else the test would check nothing)."""
    seen: Counter = Counter()

    @settings(FUZZ, max_examples=examples)
    @given(calls(op))
    def run(call) -> None:
        args, kwargs = call
        seen[check_against_torch(op, args, kwargs)] += 1

    run()
    assert seen["answered"], seen


TENSOR_TENSOR = [aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor,
                 aten.maximum.default, aten.minimum.default]
TENSOR_SCALAR = [aten.add.Scalar, aten.mul.Scalar, aten.pow.Tensor_Scalar]
ELEMENTWISE = [op for op, f in metakernels.SHORTCUTS.items()
               if f in (metakernels._elementwise, metakernels._clamp, metakernels._gelu)]


@st.composite
def elementwise_calls(draw, op):
    x = draw(meta_tensors(draw(shapes())))
    name, kwargs = op.overloadpacket.__name__, {}
    if op in TENSOR_TENSOR:
        other = draw(meta_tensors(draw(partner_shapes(x.shape)), draw(partner_dtypes(x.dtype))))
        args = (x, other) if draw(st.booleans()) else (other, x)
        if op in (aten.add.Tensor, aten.sub.Tensor) and draw(st.booleans()):
            kwargs["alpha"] = draw(NUMBERS)
    elif op in TENSOR_SCALAR:
        args = (x, draw(NUMBERS))
    elif name == "clamp":
        args = (x, draw(st.none() | REALS), draw(st.none() | REALS))
    elif name == "gelu":
        args, kwargs = (x,), {"approximate": draw(st.sampled_from(("none", "tanh", "erf")))}
    elif name in ("leaky_relu", "hardtanh", "elu"):
        params = {"leaky_relu": 1, "hardtanh": 2, "elu": 3}[name]
        args = (x, *draw(st.lists(REALS, max_size=params)))
    else:
        args = (x,)
    return args, kwargs


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("op", ELEMENTWISE, ids=str)
def test_elementwise_shortcut_matches_torch(op) -> None:
    fuzz(op, elementwise_calls, 40)


INPLACE = [op for op, f in metakernels.SHORTCUTS.items()
           if f in (metakernels._inplace, metakernels._clamp_inplace)]


@st.composite
def inplace_calls(draw, op):
    """Arguments drawn from the op's schema."""
    x = draw(meta_tensors(draw(shapes())))
    args, kwargs = [x], {}
    for i, arg in enumerate(op._schema.arguments[1:], start=1):
        kind = str(arg.type)
        if arg.has_default_value() and draw(st.booleans()):
            continue
        if kind.startswith("Optional[") and draw(st.integers(0, 3)) == 0:
            value = None
        elif "Tensor" in kind:
            value = draw(meta_tensors(draw(partner_shapes(x.shape)), draw(partner_dtypes(x.dtype))))
        elif "number" in kind:
            value = draw(NUMBERS)
        elif "float" in kind:
            value = draw(st.sampled_from((0.5, 2.0, -1.0)))
        elif "int" in kind:
            value = draw(st.integers(0, 2))
        else:  # a rounding mode
            value = draw(st.sampled_from(("trunc", "floor")))
        if arg.kwarg_only or len(args) != i:  # after a skipped default: by name
            kwargs[arg.name] = value
        else:
            args.append(value)
    return tuple(args), kwargs


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("op", INPLACE, ids=str)
def test_inplace_shortcut_matches_torch(op) -> None:
    assert torch.Tag.inplace in op.tags
    fuzz(op, inplace_calls, 30)


@st.composite
def init_calls(draw, op):
    """The in-place ops that build modules: initialisers and copies."""
    x = draw(meta_tensors(draw(shapes())))
    if op is aten.fill_.Scalar:
        return (x, draw(NUMBERS)), {}
    if op is aten.copy_.default:
        return (x, draw(meta_tensors(draw(partner_shapes(x.shape))))), {}
    if op in (aten.normal_.default, aten.uniform_.default):
        return (x, *draw(st.lists(REALS, max_size=2))), {}
    return (x,), {}


INIT = [aten.zero_.default, aten.fill_.Scalar, aten.normal_.default, aten.uniform_.default,
        aten.copy_.default]


@pytest.mark.filterwarnings("ignore:Casting complex values to real")
@pytest.mark.parametrize("op", INIT, ids=str)
def test_init_shortcut_matches_torch(op) -> None:
    fuzz(op, init_calls, 40)


def floats_mostly():
    return st.one_of(st.sampled_from(FLOATS), st.sampled_from(FLOATS), DTYPES)


@st.composite
def matmul_calls(draw, op):
    m, k, n, b = (draw(SIZES) for _ in range(4))
    k2 = k if draw(st.integers(0, 5)) else k + 1  # now and then, shapes that do not chain
    dtype = draw(floats_mostly())
    other = dtype if draw(st.integers(0, 5)) else draw(DTYPES)
    if op is aten.bmm.default:
        return (draw(meta_tensors([b, m, k], dtype)), draw(meta_tensors([b, k2, n], other))), {}
    mats = (draw(meta_tensors([m, k], dtype)), draw(meta_tensors([k2, n], other)))
    if op is aten.mm.default:
        return mats, {}
    bias = draw(meta_tensors(draw(partner_shapes([m, n])), draw(partner_dtypes(dtype))))
    kwargs = {name: draw(NUMBERS) for name in ("beta", "alpha") if draw(st.booleans())}
    return (bias, *mats), kwargs


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("op", [aten.mm.default, aten.bmm.default, aten.addmm.default], ids=str)
def test_matmul_shortcut_matches_torch(op) -> None:
    fuzz(op, matmul_calls, 60)


@st.composite
def convolution_calls(draw, op):
    spatial, groups = draw(st.integers(1, 3)), draw(st.sampled_from((1, 1, 2, 3)))
    transposed = draw(st.integers(0, 2)) == 0
    c_in, c_out = groups * draw(SMALL), groups * draw(SMALL)
    if draw(st.integers(0, 9)) == 0:
        c_in += 1  # channels that do not divide into groups
    kernel = [draw(SMALL) for _ in range(spatial)]
    stride = [draw(st.integers(1, 2)) for _ in range(spatial)]
    padding = [draw(st.integers(0, 1)) for _ in range(spatial)]
    dilation = [draw(st.integers(1, 2)) for _ in range(spatial)]
    output_padding = [draw(st.integers(0, 1)) for _ in range(spatial)]
    dtype = draw(floats_mostly())
    x = draw(meta_tensors([draw(st.integers(1, 2)), c_in,
                           *(draw(st.integers(1, 7)) for _ in range(spatial))], dtype))
    w_shape = [c_in, c_out // groups, *kernel] if transposed else [c_out, c_in // groups, *kernel]
    w = draw(meta_tensors(w_shape, dtype))
    bias = draw(st.none() | meta_tensors([draw(st.sampled_from((c_out, c_out, 1)))], dtype))
    return (x, w, bias, stride, padding, dilation, transposed, output_padding, groups), {}


def test_convolution_shortcut_matches_torch() -> None:
    fuzz(aten.convolution.default, convolution_calls, 200)


@st.composite
def pooling_calls(draw, op):
    spatial = 3 if op is aten.avg_pool3d.default else 2
    x = draw(meta_tensors(draw(shapes(spatial, spatial + 1)), draw(floats_mostly())))
    if op is aten._adaptive_avg_pool2d.default:
        return (x, [draw(SIZES), draw(SIZES)]), {}

    def per_dim(values, lengths=(1, spatial)):
        return [draw(values) for _ in range(draw(st.sampled_from(lengths)))]

    kernel, stride = per_dim(st.integers(1, 3)), per_dim(st.integers(1, 3), (0, 1, spatial))
    padding, ceil_mode = per_dim(st.integers(0, 1)), draw(st.booleans())
    if op is aten.max_pool2d_with_indices.default:
        return (x, kernel, stride, padding, per_dim(st.integers(1, 2)), ceil_mode), {}
    return (x, kernel, stride, padding, ceil_mode, draw(st.booleans()),
            draw(st.sampled_from((None, None, 2, 0)))), {}


POOLING = [aten.max_pool2d_with_indices.default, aten.avg_pool2d.default,
           aten.avg_pool3d.default, aten._adaptive_avg_pool2d.default]


@pytest.mark.parametrize("op", POOLING, ids=str)
def test_pooling_shortcut_matches_torch(op) -> None:
    fuzz(op, pooling_calls, 100)


@st.composite
def batch_norm_calls(draw, op):
    x = draw(meta_tensors(draw(shapes(1, 5)), draw(floats_mostly())))
    channels = x.shape[1] if x.dim() > 1 else 1
    stats_dtype = draw(st.sampled_from((torch.float32, x.dtype)))

    def per_channel(optional: bool):
        if draw(st.integers(0, 1 if optional else 7)) == 0:
            return None
        size = channels if draw(st.integers(0, 9)) else channels + 1
        return draw(meta_tensors([size], stats_dtype))

    weight, bias, mean, var = per_channel(True), per_channel(True), *(
        per_channel(False) for _ in range(2))
    return (x, weight, bias, mean, var, draw(st.integers(0, 3)) == 0, 0.1, 1e-5), {}


def test_batch_norm_shortcut_matches_torch() -> None:
    fuzz(aten.native_batch_norm.default, batch_norm_calls, 150)


@st.composite
def cat_calls(draw, op):
    shape = draw(shapes(1, 5))
    dim = draw(st.integers(-len(shape) - 1, len(shape)))  # out of range now and then
    dtype = draw(DTYPES)
    tensors = []
    for _ in range(draw(st.integers(1, 3))):
        part = list(shape)
        part[dim % len(shape)] = draw(SIZES)
        if draw(st.integers(0, 9)) == 0:
            part = draw(shapes())  # a shape that does not fit
        tensors.append(draw(meta_tensors(part, draw(partner_dtypes(dtype)))))
    return (tensors, dim), {}


def test_cat_shortcut_matches_torch() -> None:
    fuzz(aten.cat.default, cat_calls, 200)


@st.composite
def mean_calls(draw, op):
    x = draw(meta_tensors(draw(shapes()), draw(floats_mostly())))
    ndim = max(x.dim(), 1)
    dims = draw(st.none() | st.lists(st.integers(-ndim - 1, ndim), max_size=3))
    kwargs = {"dtype": torch.float64} if draw(st.integers(0, 9)) == 0 else {}
    return (x, dims, draw(st.booleans())), kwargs


def test_mean_shortcut_matches_torch() -> None:
    fuzz(aten.mean.dim, mean_calls, 150)


def test_every_shortcut_is_fuzzed() -> None:
    fuzzed = {*ELEMENTWISE, *INPLACE, *INIT, aten.mm.default, aten.bmm.default,
              aten.addmm.default, aten.convolution.default, *POOLING,
              aten.native_batch_norm.default, aten.cat.default, aten.mean.dim}
    assert set(metakernels.SHORTCUTS) - fuzzed == set()


# CPU_KERNELS are not shortcuts. aten.mkldnn_rnn_layer's deliberately differs from torch's
# meta kernel: it adds the oneDNN training workspace a CPU run allocates (checked in
# tests/test_memory_paths.py). _transform_bias_rescale_qkv has no meta kernel to compare
# with: its port is compared with the CPU kernel, on the calls the fast path makes.
@settings(FUZZ, max_examples=30)
@given(batch=st.integers(1, 3), length=st.integers(1, 5), heads=st.integers(1, 4),
       head_dim=st.integers(1, 4), dtype=st.sampled_from(FLOATS))
def test_transform_bias_rescale_qkv_matches_the_cpu_kernel(batch, length, heads, head_dim,
                                                           dtype) -> None:
    qkv = torch.zeros(batch, length, 3 * heads * head_dim, dtype=dtype)
    bias = torch.zeros(3 * heads * head_dim, dtype=dtype)
    op = aten._transform_bias_rescale_qkv.default
    _same(metakernels.run_meta(op, (qkv.to("meta"), bias.to("meta"), heads), {}),
          tuple(t.to("meta") for t in op(qkv, bias, heads)))


# ---------------------------------------------------------------- fallbacks
def _raise(*args, **kwargs):
    raise IndexError("a shortcut bug")


def test_a_raising_shortcut_falls_back_to_torch(monkeypatch) -> None:
    monkeypatch.setitem(metakernels.SHORTCUTS, aten.add.Tensor, _raise)
    monkeypatch.setitem(metakernels.SHORTCUTS, aten.relu_.default, _raise)
    args = (meta(2, 3, 4), meta(3, 1))
    _same(metakernels.run_meta(aten.add.Tensor, args, {}), aten.add.Tensor(*args))
    assert metakernels.run_meta(aten.relu_.default, (args[0],), {}) is args[0]
    # torch's own error for a wrong call, not the shortcut's
    with pytest.raises(RuntimeError, match="broadcast"):
        metakernels.run_meta(aten.add.Tensor, (meta(2, 3), meta(4)), {})


def test_a_model_traces_alike_when_a_shortcut_raises(monkeypatch) -> None:
    expected = archstat.analyze("resnet18").trace
    monkeypatch.setitem(metakernels.SHORTCUTS, aten.convolution.default, _raise)
    monkeypatch.setitem(metakernels.SHORTCUTS, aten.native_batch_norm.default, _raise)
    got = archstat.analyze("resnet18").trace
    assert [(e.op, e.outputs) for e in got.events] == [(e.op, e.outputs)
                                                       for e in expected.events]
    assert got.tensors == expected.tensors


def test_fast_meta_off_takes_torchs_kernel_for_every_op(monkeypatch) -> None:
    calls = []
    for op in (aten.add.Tensor, aten.relu_.default):
        monkeypatch.setitem(metakernels.SHORTCUTS, op, lambda *a: calls.append(a))
    monkeypatch.setattr(metakernels, "FAST_META", False)
    x = meta(2, 3)
    _same(metakernels.run_meta(aten.add.Tensor, (x, x), {}), aten.add.Tensor(x, x))
    assert metakernels.run_meta(aten.relu_.default, (x,), {}) is x
    assert calls == []
    # the CPU kernels stay: torch has no meta kernel for this one
    qkv = metakernels.run_meta(aten._transform_bias_rescale_qkv.default,
                               (meta(2, 3, 12), meta(12), 2), {})
    assert [tuple(t.shape) for t in qkv] == [(2, 2, 3, 2)] * 3


def test_fast_meta_is_read_from_the_environment(monkeypatch) -> None:
    try:
        monkeypatch.setenv("ARCHSTAT_FAST_META", "0")
        assert not importlib.reload(metakernels).FAST_META
        monkeypatch.setenv("ARCHSTAT_FAST_META", "1")
        assert importlib.reload(metakernels).FAST_META
    finally:
        monkeypatch.undo()
        importlib.reload(metakernels)  # functions keep their module: the tracer's run_meta too
