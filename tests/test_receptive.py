"""Receptive fields (issue 13, part 1): the ``receptive_field`` columns of ``analyze``
against an independent oracle, the input gradient of one output unit of a real CPU
model, and against hand computation.

The oracle: with every weight positive (and biases zero, batch norm at its initial
running statistics), nothing cancels and every ReLU passes, so the input pixels where the
gradient of one unit is nonzero are exactly the pixels the unit depends on. Max pooling
is the one exception: its gradient goes to the window's largest input only, although the
unit depends on the whole window. The oracle's forward therefore adds a thousandth of
the window's sum to every max pool (``_smooth_max_pools``): the same windows, a gradient
over all of them. The unit is chosen with its field inside the image, so that padding
clips nothing, and its rows and columns of nonzero gradient are compared with the field.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import archstat
from archstat.receptive import ReceptiveField, receptive_fields
from archstat.render import render
from archstat.zoo.registry import get_model

# -- the oracle -------------------------------------------------------------------------

_MAX_POOL2D = F.max_pool2d


def _smooth_max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    out = _MAX_POOL2D(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)
    assert not return_indices
    if dilation in (1, (1, 1)):
        window = F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode)
    else:  # avg_pool2d has no dilation; unfold has no ceil_mode (never drawn together)
        assert not ceil_mode
        cols = F.unfold(x, kernel_size, dilation, padding, stride or kernel_size)
        window = cols.view(x.shape[0], x.shape[1], -1, cols.shape[-1]).mean(2)
        window = window.view(out.shape)
    return out + 1e-3 * window


@contextlib.contextmanager
def _smooth_max_pools() -> Iterator[None]:
    with mock.patch.object(F, "max_pool2d", _smooth_max_pool2d):
        yield


def _positive(model: nn.Module) -> nn.Module:
    """Weights 1 / fan-in (the values stay near 1 however deep), biases 0, norms' scales
    1; eval mode (batch norm on its running statistics: mean 0, variance 1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.fill_(1.0 / p[0].numel())
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            p.requires_grad_(False)
    return model.eval()


def _extent(grad: torch.Tensor) -> list[tuple[int, int]] | None:
    """Per spatial axis, the first and last pixel where a 1 x C x H x W gradient is
    nonzero; None when it is zero everywhere."""
    seen = grad[0].abs().sum(0) != 0
    if not seen.any():
        return None
    rows = seen.any(1).nonzero().flatten()
    cols = seen.any(0).nonzero().flatten()
    return [(int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))]


def _oracle(model: nn.Module, size: int, channels: int,
            targets: list[tuple[str, tuple[int, int]]], batched: bool = False
            ) -> list[list[tuple[int, int]] | None]:
    """The gradient's extent for each (module path, unit (h, w)) of ``targets`` (an empty
    path is the model's output): one forward, then one backward per target from the
    module's output; or, ``batched``, the image repeated once per target (the samples of
    a model in eval mode do not meet) and one backward of the sum, target i in sample i."""
    model = _positive(model)
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for name in {name for name, _ in targets if name}:
        modules[name].register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o))
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, channels, size, size, generator=gen) + 0.5
    x = image.repeat(len(targets) if batched else 1, 1, 1, 1).requires_grad_()
    with _smooth_max_pools():
        outputs[""] = model(x)
    if batched:
        total = sum(outputs[name][i, :, h, w].sum() for i, (name, (h, w)) in enumerate(targets))
        grad, = torch.autograd.grad(total, x)
        return [_extent(grad[i:i + 1]) for i in range(len(targets))]
    found = []
    for name, (h, w) in targets:
        grad, = torch.autograd.grad(outputs[name][0, :, h, w].sum(), x, retain_graph=True)
        found.append(_extent(grad))
    return found


# -- the zoo ----------------------------------------------------------------------------

def _inside(row: dict, size: int) -> int | None:
    """A unit (the same index along H and W) whose field, from the row's size, jump and
    start, lies inside a size x size image: the middle one of those that do."""
    field, jump, start = (row[k] for k in ("receptive_field", "receptive_field_jump",
                                           "receptive_field_start"))
    if not all(isinstance(v, int) for v in (field, jump, start)):
        return None  # not square, or not on whole pixels: not in these models
    units = min(row["output_shape"][2:])
    fits = [i for i in range(units) if start + i * jump >= 0
            and start + i * jump + field - 1 <= size - 1]
    return fits[len(fits) // 2] if fits else None


#: (model, input side, module paths that must be among the checked layers)
ZOO = [
    ("vgg16", 224, ["features.28", "features.30"]),  # conv5_3 and pool5
    ("alexnet", 227, ["features.12"]),  # pool5: 195 pixels
    ("resnet18", 224, ["layer3.1.conv2"]),
    ("googlenet", 224, ["inception4b.branch4.1"]),  # through every inception branch
    ("densenet121", 160, ["features.denseblock2.denselayer6.conv1"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "size", "required"), ZOO, ids=[z[0] for z in ZOO])
def test_zoo_fields_match_the_gradient_oracle(model: str, size: int, required: list[str]
                                               ) -> None:
    analysis = archstat.analyze(model, input_shape=(3, size, size))
    names = [row["name"] for row in analysis.rows]
    candidates = [(row, unit) for row in analysis.rows
                  if row["type"] in ("Conv2d", "MaxPool2d", "AvgPool2d")
                  and names.count(row["name"]) == 1
                  and (unit := _inside(row, size)) is not None]
    # four layers spread over the depth, the deepest whose field fits among them
    count = len(candidates)
    chosen = {candidates[round(k * (count - 1) / 3)][0]["name"] for k in range(4)}
    chosen |= set(required)
    checked = [(row, unit) for row, unit in candidates if row["name"] in chosen]
    assert {row["name"] for row, _ in checked} == chosen
    found = _oracle(get_model(model), size, 3,
                    [(row["name"], (unit, unit)) for row, unit in checked])
    for (row, unit), extent in zip(checked, found, strict=True):
        first = row["receptive_field_start"] + unit * row["receptive_field_jump"]
        expected = (first, first + row["receptive_field"] - 1)
        assert extent == [expected, expected], (row["name"], unit)


def test_vgg16_conv5_3_sees_196_pixels_and_pool5_212() -> None:
    # By hand: r += (k - 1) j, j *= s. Thirteen 3x3 convs and four 2x2/2 pools before
    # conv5_3: 1 + 2*(2*1 + 2*2 + 3*4 + 3*8 + 3*16) + 1*(1 + 2 + 4 + 8) = 196; pool5
    # adds (2 - 1) * 16 = 212, at a jump of 32.
    rows = {row["name"]: row for row in archstat.analyze("vgg16").rows}
    assert rows["features.28"]["receptive_field"] == 196  # conv5_3
    assert rows["features.30"]["receptive_field"] == 212  # pool5
    assert rows["features.30"]["receptive_field_jump"] == 32
    assert rows["features.30"]["receptive_field_min"] == 212  # a chain: one path
    # the fc layers read every position: no field
    assert rows["classifier.0"]["receptive_field"] is None
    lecture = archstat.lecture_table(archstat.analyze("vgg16", convention="lecture"))
    by_name = {row["layer"]: row["receptive_field"] for row in lecture.rows}
    assert (by_name["conv13"], by_name["pool13"], by_name["fc14"]) == (196, 212, None)


def test_resnet18_largest_and_smallest_path() -> None:
    # Through every conv: conv1 7, maxpool 11 (j 4); layer1's four 3x3 add 8 each (43);
    # layer2 adds 8 then 3 x 16 (99, j 8); layer3 16 then 3 x 32 (211, j 16); layer4
    # 32 then 3 x 64 (435, j 32). Through the shortcuts (identities and 1x1 convs) only
    # conv1 and the max pool count: 11.
    rows = archstat.analyze("resnet18").rows
    last = [row for row in rows if row["name"] == "layer4.1"][-1]
    assert (last["receptive_field"], last["receptive_field_min"]) == (435, 11)
    assert (last["receptive_field_jump"], last["receptive_field_start"]) == (32, -217)
    conv2 = next(row for row in rows if row["name"] == "layer4.1.conv2")
    assert conv2["receptive_field_min"] == 139  # 11 + 2 * 64, its own 3x3 and conv1


# -- random conv stacks -----------------------------------------------------------------

C = 2  # channels of every layer (a concatenation makes 4, a 1x1 conv brings it back)
SIDE = 48


@st.composite
def _layers(draw: st.DrawFn) -> list[tuple]:
    kinds = st.sampled_from(["conv", "conv", "convT", "max", "avg", "adaptive", "up", "add",
                             "cat"])
    layers = []
    for kind in draw(st.lists(kinds, min_size=1, max_size=4)):
        if kind == "conv":
            layers.append((kind, draw(st.integers(1, 4)), draw(st.integers(1, 3)),
                           draw(st.integers(0, 2)), draw(st.integers(1, 3))))
        elif kind == "convT":
            k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
            p = draw(st.integers(0, d * (k - 1) // 2))
            layers.append((kind, k, s, p, d, draw(st.integers(0, max(s, d) - 1))))
        elif kind in ("max", "avg"):
            k = draw(st.integers(1, 3))
            d = draw(st.integers(1, 2)) if kind == "max" else 1
            layers.append((kind, k, draw(st.integers(1, 3)), draw(st.integers(0, k // 2)), d,
                           d == 1 and draw(st.booleans())))
        elif kind == "adaptive":  # windows of uneven widths (or a stretch, above the input)
            layers.append((kind, draw(st.integers(8, 40)), draw(st.integers(8, 40))))
        elif kind == "up":
            mode = draw(st.sampled_from(["nearest", "bilinear"]))
            layers.append((kind, mode, mode == "bilinear" and draw(st.booleans())))
        else:  # two branches of odd kernels, "same" padding, one stride; or a shortcut
            s = draw(st.integers(1, 2))
            branches = [(draw(st.sampled_from([1, 3, 5])), draw(st.integers(1, 2)))
                        for _ in range(2)]
            shortcut = s == 1 and kind == "add" and draw(st.booleans())
            layers.append((kind, s, branches[: 1 if shortcut else 2]))
    return layers


class _Join(nn.Module):
    def __init__(self, kind: str, stride: int, branches: list[tuple[int, int]]) -> None:
        super().__init__()
        self.kind = kind
        self.branches = nn.ModuleList(
            nn.Conv2d(C, C, k, stride, d * (k - 1) // 2, d) for k, d in branches)
        self.merge = nn.Conv2d(2 * C, C, 1) if kind == "cat" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        if len(outs) == 1:
            outs.append(x)  # a residual shortcut
        if self.kind == "add":
            return outs[0] + outs[1]
        return self.merge(torch.cat(outs, dim=1))


def _stack(layers: list[tuple]) -> nn.Module:
    modules: list[nn.Module] = []
    for kind, *args in layers:
        if kind == "conv":
            k, s, p, d = args
            modules += [nn.Conv2d(C, C, k, s, p, d), nn.ReLU()]
        elif kind == "convT":
            k, s, p, d, extra = args
            modules.append(nn.ConvTranspose2d(C, C, k, s, p, extra, dilation=d))
        elif kind == "max":
            k, s, p, d, ceil = args
            modules.append(nn.MaxPool2d(k, s, p, d, ceil_mode=ceil))
        elif kind == "avg":
            k, s, p, _, ceil = args
            modules.append(nn.AvgPool2d(k, s, p, ceil_mode=ceil))
        elif kind == "adaptive":
            modules.append(nn.AdaptiveAvgPool2d(tuple(args)))
        elif kind == "up":
            mode, corners = args
            modules.append(nn.Upsample(scale_factor=2, mode=mode,
                                       align_corners=corners if mode == "bilinear" else None))
        else:
            modules.append(_Join(kind, *args))
    return nn.Sequential(*modules)


def _output_field(analysis: archstat.Analysis) -> ReceptiveField | None:
    trace = analysis.trace
    made = max(i for i, event in enumerate(trace.events) if trace.outputs[0] in event.outputs)
    return receptive_fields(trace).event(made)


def _middle_units(field: ReceptiveField, units: int, axis: int) -> list[int]:
    """Up to six consecutive units near the middle of the axis, whose fields (or lack of
    one) lie inside the image."""
    def inside(i: int) -> bool:
        bounds = field.bounds([i, i])[axis]
        return bounds is None or (bounds[0] >= 0 and bounds[1] <= SIDE - 1)

    middle = sorted(range(units), key=lambda i: (abs(2 * i - units), i))
    fits = sorted(i for i in middle[:6] if inside(i))
    return fits


@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(_layers())
def test_random_conv_stacks_match_the_gradient_oracle(layers: list[tuple]) -> None:
    model = _stack(layers)
    try:
        analysis = archstat.analyze(model, input_shape=(C, SIDE, SIDE))
    except archstat.ArchstatError:
        assume(False)  # the stack shrinks the input to nothing
    field = _output_field(analysis)
    assert field is not None and field.size is not None
    out = analysis.trace.tensors[analysis.trace.outputs[0]].shape
    assume(max(field.size) <= SIDE // 2)  # room for units well inside the image
    assume(max(out[2:]) <= 2 * SIDE)  # upsamplings: keep the backward cheap
    rows, cols = _middle_units(field, out[2], 0), _middle_units(field, out[3], 1)
    assume(rows and cols)
    units = [(h, w) for h in rows for w in cols][::3] + [(rows[0], cols[-1])]
    found = _oracle(model, SIDE, C, [("", unit) for unit in units], batched=True)
    for unit, extent in zip(units, found, strict=True):
        bounds = field.bounds(unit)
        expected = None if None in bounds else bounds
        assert extent == expected, (layers, unit)
    # size is the largest field over the units (of one period: the fields repeat)
    for axis, span in enumerate(field.spans):
        seen = [field.bounds([i, i])[axis] for i in range(span.period)]
        assert max(b[1] - b[0] + 1 for b in seen if b) == field.size[axis]


# -- hand cases -------------------------------------------------------------------------

def _analysis_of(*modules: nn.Module, side: tuple[int, int] = (32, 32),
                 channels: int = 1) -> archstat.Analysis:
    return archstat.analyze(nn.Sequential(*modules), input_shape=(channels, *side))


def test_dilation_stride_and_padding_by_hand() -> None:
    # k 3, d 2: 5 pixels, from -2 (padding 2); then k 3 s 2 on jump 1: 5 + 2 = 7, jump 2,
    # start -2 - 1 = -3; then a 2x2/2 max pool: 7 + 1 * 2 = 9, jump 4, start -3.
    rows = _analysis_of(nn.Conv2d(1, 1, 3, padding=2, dilation=2),
                        nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.MaxPool2d(2)).rows
    assert [(r["receptive_field"], r["receptive_field_jump"], r["receptive_field_start"])
            for r in rows] == [(5, 1, -2), (7, 2, -3), (9, 4, -3)]


def test_transposed_conv_and_upsampling_give_fractional_jumps() -> None:
    # A 3x3 transposed conv of stride 2: even outputs read two input units, odd ones one;
    # the field is the larger, 2 pixels, moving half a pixel per unit. Nearest 2x halves
    # the jump again and keeps the field.
    rows = _analysis_of(nn.ConvTranspose2d(1, 1, 3, stride=2),
                        nn.Upsample(scale_factor=2)).rows
    assert [(r["receptive_field"], r["receptive_field_jump"]) for r in rows] == [
        (2, 0.5), (2, 0.25)]


class _Parts(nn.Module):
    """A split along the channels (unequal parts) and one along H (a crop)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(C, 4, 3)
        self.after = nn.Conv2d(3, C, 3, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one, three = self.conv(x).split([1, 3], dim=1)
        return self.after(three).chunk(2, dim=2)[1] + one[:, :, 10:31, 2:44]


def test_splits_against_the_gradient_oracle() -> None:
    model = _Parts()
    analysis = archstat.analyze(model, input_shape=(C, SIDE, SIDE))
    field = _output_field(analysis)
    # 3x3 then a dilated 3x3: 7 pixels, from 0; its lower half starts 21 units down. The
    # other path, 3 pixels, is cropped at 10 and 2. Rows: 21..27 and 10..12, so 10..27;
    # columns: 0..6 and 2..4.
    assert field is not None and field.size == (18, 7) and field.start == (10, 0)
    assert field.size_min == (3, 3)
    units = [(0, 0), (9, 20), (20, 41)]
    found = _oracle(model, SIDE, C, [("", unit) for unit in units], batched=True)
    assert found == [field.bounds(unit) for unit in units]


def test_non_square_field_is_h_w_in_json_and_hxw_in_csv() -> None:
    analysis = _analysis_of(nn.Conv2d(1, 1, (3, 5), stride=(1, 2)), side=(16, 20))
    row = json.loads(render(analysis, "json"))["layers"][0]
    assert row["receptive_field"] == [3, 5]
    assert row["receptive_field_jump"] == [1, 2]
    csv = render(analysis, "csv").splitlines()
    header, values = csv[0].split(","), csv[1].split(",")
    assert values[header.index("receptive_field")] == "3x5"


def test_columns_in_csv_json_and_table() -> None:
    analysis = archstat.analyze("lenet5")
    header = render(analysis, "csv").splitlines()[0].split(",")
    for column in ("receptive_field", "receptive_field_min", "receptive_field_jump",
                   "receptive_field_start"):
        assert column in header
    layers = json.loads(render(analysis, "json"))["layers"]
    # LeNet-5: 5x5 conv, 2x2/2 pool, 5x5 conv (5 + 4 * 2 = 13... + 1: 14), pool: 16
    assert [layer["receptive_field"] for layer in layers[:6]] == [5, 5, 6, 14, 14, 16]
    assert all(layer["receptive_field"] is None for layer in layers
               if layer["type"] == "Linear")
    assert "| RF |" in render(analysis, "markdown").splitlines()[2]


def test_depth_keeps_the_last_record_field() -> None:
    rows = archstat.analyze("resnet18", depth=1).rows
    by_name = {row["name"]: row for row in rows}
    assert by_name["layer4"]["receptive_field"] == 435
    assert by_name["fc"]["receptive_field"] is None


class _Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def test_a_recurrent_model_has_no_field() -> None:
    analysis = archstat.analyze(_Tagger(), input_shape=(12, 16))
    assert analysis.rows and all(row["receptive_field"] is None
                                 and row["receptive_field_min"] is None
                                 for row in analysis.rows)
    csv = render(analysis, "csv").splitlines()
    at = csv[0].split(",").index("receptive_field")
    assert all(line.split(",")[at] == "" for line in csv[1:])
    assert "| RF |" not in render(analysis, "markdown")


class _Mixer(nn.Module):
    """An MLP block with a residual on N x L x D tokens: nothing here reads positions."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.fc = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(self.norm(x))


@pytest.mark.parametrize("model", [
    nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2),
    _Mixer(),
], ids=["transformer", "mlp"])
def test_tokens_have_no_field(model: nn.Module) -> None:
    # 1 x 10 x 32 has rank 3, but its last axis is features: the residual path used to
    # report a "field" of one feature (receptive_field_min 1) on every layer
    analysis = archstat.analyze(model, input_shape=(10, 32))
    assert all(row[key] is None for row in analysis.rows
               for key in ("receptive_field", "receptive_field_min", "receptive_field_jump",
                           "receptive_field_start"))


def test_a_patch_embedding_gives_tokens_their_patch() -> None:
    class ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, 32, 16, 16)
            self.block = _Mixer()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(self.patch(x).flatten(2).transpose(1, 2))

    rows = {row["name"]: row for row in archstat.analyze(ViT(), input_shape=(3, 64, 64)).rows}
    assert (rows["patch"]["receptive_field"], rows["patch"]["receptive_field_jump"]) == (16, 16)
    # the MLP reads every patch's features, not other patches: each token keeps its 16 x 16
    assert rows["block"]["receptive_field"] == 16
