"""``archstat.scale``: compound scaling (Tan and Le 2019, Section 3.3) as a measurement.

A zoo network of the efficientnet, resnet or vgg family is rebuilt deeper (depth
multiplier d), wider (width w) and at a larger input (resolution r), and its measured
cost is set beside the prediction: FLOPs grow as d w^2 r^2, so a compound coefficient
phi (d = alpha^phi, w = beta^phi, r = gamma^phi with alpha = 1.2, beta = 1.1,
gamma = 1.15) predicts (alpha beta^2 gamma^2)^phi = 1.92^phi.

How each family scales (the multipliers apply to the base model's own values):

* ``efficientnet``: the zoo's EfficientNet at width ``w0 w`` and depth ``d0 d`` (w0, d0
  the base variant's multipliers): stage widths, the stem and the head (4x the last
  stage) round to a multiple of 8 never more than 10% down, repeats per stage round up,
  as in the reference implementation.
* ``resnet``: blocks per stage times d, rounded up; the stem and the four stage widths
  (64, 128, 256, 512; a bottleneck outputs 4x) times w, rounded as EfficientNet rounds.
* ``vgg``: convolutions per stage (between two max pools) times d, rounded up; every
  convolution's channels times w, rounded alike. Only the first fc layer's input follows
  the last conv's width: the classifier's 4096 hidden features stay.

The input side is ``side x r`` rounded to the nearest pixel (halves up). The measured
ratio departs from the prediction because of that rounding, and because some layers do
not scale: the 3 input channels, the classifier's outputs, and (VGG) the fc layers,
which an adaptive pool shields from the resolution.

Units: ``flops`` are multiply-accumulates under the ``macs`` convention, batch 1;
``params`` parameter elements; ``*_ratio`` the scaled model's figure over the base's.
Multipliers, the exact figures they ask for and the predicted ratio are exact fractions
(so that 5 x 1.2 repeats is 6, not 7); the reports show them as floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

from torch import nn

from archstat.analysis import analyze
from archstat.display import Display
from archstat.errors import ArchstatError
from archstat.trace.tracer import fast_meta_build
from archstat.zoo import get_model, get_model_info, list_models
from archstat.zoo.efficientnet import (
    ALPHA,
    BETA,
    GAMMA,
    PAPER_COST,
    STAGES,
    TORCHVISION,
    VARIANTS,
    EfficientNet,
    round_channels,
    round_repeats,
)
from archstat.zoo.resnet import STAGE_WIDTHS, ResNet
from archstat.zoo.vgg import VGG, make_layers

FAMILIES = ("efficientnet", "resnet", "vgg")
#: The most blocks (VGG: convolutions) and the widest stage a scaled network may have:
#: beyond them tracing takes minutes (depth) or torch cannot size a weight (width).
MAX_BLOCKS = 4096
MAX_CHANNELS = 1 << 16
#: The largest compound coefficient either way: 1.2^50 x any base's blocks is past
#: MAX_BLOCKS, 1.15^-50 x any base's side is below a pixel.
MAX_PHI = 100
#: The base of the published sweep: phi = n sits beside efficientnet_b<n>.
SWEEP_BASE = "efficientnet_b0"

Number = int | float | Fraction


def exact(value: Number) -> Fraction:
    """A multiplier as an exact fraction; a float as its shortest decimal (1.1 is 11/10)."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


@dataclass(frozen=True)
class StageScaling:
    """How one stage was scaled: its width (``channels``: an EfficientNet stage's output
    channels, a ResNet stage's 3x3 width, a VGG stage's conv channels; the stem and
    head as their own rows) and its ``repeats`` (blocks, or convolutions for VGG) in the
    base model, the exact figures the multipliers ask for, and what was built."""

    stage: str
    channels: int
    exact_channels: Fraction
    scaled_channels: int
    repeats: int
    exact_repeats: Fraction
    scaled_repeats: int


@dataclass(frozen=True)
class Network:
    """A network as built: its multipliers over the base, its input (C, H, W), the
    input side before rounding, and its totals (``params``; ``flops`` in macs)."""

    depth: Fraction
    width: Fraction
    resolution: Fraction
    input_shape: tuple[int, ...]
    exact_side: Fraction
    params: int
    flops: int


@dataclass
class ScalingReport(Display):
    """The result of :func:`scale`: the base network, the scaled one, how each stage
    rounded, and the compound-scaling prediction ``d w^2 r^2`` (``phi`` is None when
    the multipliers were given directly)."""

    model: str
    family: str
    phi: int | None
    base: Network
    scaled: Network
    stages: list[StageScaling]
    predicted_ratio: Fraction

    @property
    def flops_ratio(self) -> float:
        return self.scaled.flops / self.base.flops

    @property
    def params_ratio(self) -> float:
        return self.scaled.params / self.base.params


@dataclass(frozen=True)
class Published:
    """A published EfficientNet variant: its hand-picked multipliers and resolution (the
    reference implementation's); the paper's Table 2 cost as printed, ``paper_params``
    in millions and ``paper_flops`` in billions of multiply-adds; torchvision's
    documented ``torchvision_params`` and ``torchvision_gmacs`` (at its ``torchvision_crop``,
    which differs for B2); and the zoo model measured at the paper's resolution:
    ``params``, ``flops`` (macs) and the ratio of its flops to B0's."""

    variant: str
    depth: float
    width: float
    resolution: int
    paper_params: float
    paper_flops: float
    torchvision_params: int
    torchvision_gmacs: float
    torchvision_crop: int
    params: int
    flops: int
    flops_ratio: float


@dataclass(frozen=True)
class SweepRow:
    phi: int
    network: Network
    stages: list[StageScaling]
    predicted_ratio: Fraction
    flops_ratio: float
    params_ratio: float
    published: Published | None


@dataclass
class ScalingSweep(Display):
    """The result of :func:`scale_sweep`: one row per phi, each with the published
    EfficientNet-B<phi> beside it when the base is efficientnet_b0."""

    model: str
    family: str
    base: Network
    rows: list[SweepRow]


def blocks(stages: Iterable[StageScaling]) -> tuple[int, Fraction]:
    """The blocks (VGG: convolutions) the depth multiplier repeats, summed over the
    stages (not the stem or the head): as built, and as the multiplier asks."""
    scaled = [s for s in stages if s.stage not in ("stem", "head")]
    return sum(s.scaled_repeats for s in scaled), sum(s.exact_repeats for s in scaled)


# -- the families ------------------------------------------------------------------------

Plan = tuple[list[StageScaling], Callable[[], nn.Module]]


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def _stage(name: str, channels: int, exact_channels: Fraction, repeats: int,
           exact_repeats: Fraction) -> StageScaling:
    return StageScaling(name, channels, exact_channels, round_channels(exact_channels),
                        repeats, exact_repeats, math.ceil(exact_repeats))


def _efficientnet(name: str, depth: Fraction, width: Fraction) -> Plan:
    w0, d0, _, _ = (exact(v) for v in VARIANTS[name.removeprefix("efficientnet_")])
    w, d = w0 * width, d0 * depth
    stem = STAGES[0][3]
    one = Fraction(1)
    stages = [StageScaling("stem", round_channels(stem * w0), stem * w,
                           round_channels(stem * w), 1, one, 1)]
    stages += [StageScaling(str(i), round_channels(cout * w0), cout * w,
                            round_channels(cout * w), round_repeats(n, d0), n * d,
                            round_repeats(n, d))
               for i, (_, _, _, _, cout, n) in enumerate(STAGES, 1)]
    last = STAGES[-1][4]
    # the head is 4x the last stage's width as built (1280 for B0)
    stages.append(StageScaling("head", 4 * round_channels(last * w0), 4 * last * w,
                               4 * round_channels(last * w), 1, one, 1))
    return stages, lambda: EfficientNet(w, d)


class ScaledResNet(ResNet):
    """The zoo's ResNet at other widths: a ``stem`` width in place of 64 and ``widths``
    in place of STAGE_WIDTHS; its blocks, ``_make_layer`` and ``forward`` unchanged.
    Built on the meta device only (no weight initialisation)."""

    def __init__(self, block: type, layers: tuple[int, ...], widths: tuple[int, ...],
                 stem: int, stride_in_1x1: bool = False, num_classes: int = 1000) -> None:
        nn.Module.__init__(self)
        self.inplanes = stem
        self.stride_in_1x1 = stride_in_1x1
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)


def _resnet(name: str, depth: Fraction, width: Fraction) -> Plan:
    base = get_model(name)
    stages_ = [base.layer1, base.layer2, base.layer3, base.layer4]
    block = type(base.layer1[0])
    stem = base.conv1.out_channels
    stages = [_stage("stem", stem, stem * width, 1, Fraction(1))]
    stages += [_stage(f"layer{i}", planes, planes * width, len(layer), len(layer) * depth)
               for i, (planes, layer) in enumerate(zip(STAGE_WIDTHS, stages_, strict=True), 1)]
    layers = tuple(s.scaled_repeats for s in stages[1:])
    widths = tuple(s.scaled_channels for s in stages[1:])
    return stages, lambda: ScaledResNet(block, layers, widths, stages[0].scaled_channels,
                                        base.stride_in_1x1)


def _vgg(name: str, depth: Fraction, width: Fraction) -> Plan:
    base = get_model(name)
    batch_norm = any(isinstance(m, nn.BatchNorm2d) for m in base.features)
    convs: list[list[int]] = [[]]
    for layer in base.features:
        if isinstance(layer, nn.Conv2d):
            convs[-1].append(layer.out_channels)
        elif isinstance(layer, nn.MaxPool2d):
            convs.append([])
    # every stage of Table 1 has one width, and every stage ends in a max pool
    stages = [_stage(str(i), widths[0], widths[0] * width, len(widths), len(widths) * depth)
              for i, widths in enumerate(convs[:-1], 1)]
    cfg: list[int | str] = []
    for s in stages:
        cfg += [s.scaled_channels] * s.scaled_repeats + ["M"]

    def build() -> nn.Module:
        model = VGG(make_layers(cfg, batch_norm=batch_norm))
        # VGG's first fc layer expects 512 x 7 x 7: it follows the last conv's width
        model.classifier[0] = nn.Linear(stages[-1].scaled_channels * 7 * 7, 4096)
        return model

    return stages, build


_PLANS: dict[str, Callable[[str, Fraction, Fraction], Plan]] = {
    "efficientnet": _efficientnet, "resnet": _resnet, "vgg": _vgg}


# -- the API --------------------------------------------------------------------------


def _family(model: object) -> str:
    scalable = ", ".join(FAMILIES)
    if not isinstance(model, str) or ":" in model:
        label = model if isinstance(model, str) else type(model).__name__
        raise ArchstatError(f"{label} cannot be scaled: scaling rebuilds a zoo model of the "
                            f"{scalable} families (`archstat zoo` lists them)")
    family = get_model_info(model).family
    if family not in _PLANS:
        examples = ", ".join(list_models(f)[0] for f in FAMILIES)
        raise ArchstatError(f"{model} (family {family}) does not scale: scaling rebuilds the "
                            f"{scalable} families ({examples}, ...)")
    return family


def multipliers(phi: int | None = None, depth: Number | None = None,
                width: Number | None = None, resolution: Number | None = None
                ) -> tuple[Fraction, Fraction, Fraction]:
    """(d, w, r) as exact fractions: ``alpha^phi, beta^phi, gamma^phi`` for a compound
    coefficient ``phi``, else the multipliers given (1 where not given)."""
    given = {"depth": depth, "width": width, "resolution": resolution}
    if phi is not None:
        if any(v is not None for v in given.values()):
            raise ArchstatError("give `phi` or the `depth`, `width` and `resolution` "
                                "multipliers, not both")
        if isinstance(phi, bool) or not isinstance(phi, int) or abs(phi) > MAX_PHI:
            raise ArchstatError(f"`phi` is a whole number from -{MAX_PHI} to {MAX_PHI} (the "
                                f"compound coefficient), not {phi!r}")
        return exact(ALPHA) ** phi, exact(BETA) ** phi, exact(GAMMA) ** phi
    if all(v is None for v in given.values()):
        raise ArchstatError("give `phi`, or one or more of the `depth`, `width` and "
                            "`resolution` multipliers")
    for name, value in given.items():
        if value is not None and not (value > 0 and (not isinstance(value, float)
                                                     or math.isfinite(value))):
            raise ArchstatError(f"`{name}` is a finite multiplier above 0, not {value!r}")
    d, w, r = (exact(1 if v is None else v) for v in given.values())
    return d, w, r


def _network(model: str, module: nn.Module, depth: Fraction, width: Fraction,
             resolution: Fraction, side: int) -> Network:
    exact_side = side * resolution
    shape = (3, _round_half_up(exact_side), _round_half_up(exact_side))
    where = f"{model} at resolution {float(resolution):g} (input {shape[1]}x{shape[2]})"
    if shape[1] < 1:
        raise ArchstatError(f"{where} has no pixel: give a larger `resolution`")
    try:
        result = analyze(module, input_shape=shape, convention="macs", execute="never")
    except ArchstatError as exc:  # an input too small for the network's pools
        raise ArchstatError(f"{where}: {exc}") from None
    return Network(depth, width, resolution, shape, exact_side, result.totals["params"],
                   result.totals["flops"])


def _g(value: Fraction) -> str:
    return f"{float(value):g}" if value <= 10**308 else "above 1e308"  # a float's range


def _plan(model: str, family: str, d: Fraction, w: Fraction) -> Plan:
    """The family's plan at depth ``d`` and width ``w``; ArchstatError where the network
    would be past MAX_BLOCKS or MAX_CHANNELS. Call under fast_meta_build."""
    asked = f"{model} scaled by depth {_g(d)} and width {_g(w)}"
    try:
        stages, build = _PLANS[family](model, d, w)
    except OverflowError:  # a width past a float's range
        raise ArchstatError(f"{asked} is too large to build: give a smaller `width`") from None
    built, _ = blocks(stages)
    if built > MAX_BLOCKS:
        raise ArchstatError(f"{asked} would have {built} blocks; at most {MAX_BLOCKS} are "
                            "built: give a smaller `depth` or `phi`")
    widest = max(s.scaled_channels for s in stages)
    if widest > MAX_CHANNELS:
        raise ArchstatError(f"{asked} would have {widest} channels in one layer; at most "
                            f"{MAX_CHANNELS} are built: give a smaller `width` or `phi`")
    return stages, build


def _scaled(model: str, family: str, d: Fraction, w: Fraction, r: Fraction
            ) -> tuple[Network, list[StageScaling]]:
    with fast_meta_build():
        stages, build = _plan(model, family, d, w)
        module = build()
    return _network(model, module, d, w, r, get_model_info(model).input_shape[-1]), stages


def scale(model: str, phi: int | None = None, depth: Number | None = None,
          width: Number | None = None, resolution: Number | None = None) -> ScalingReport:
    """Rebuild the zoo model ``model`` (efficientnet, resnet or vgg family) scaled by the
    compound coefficient ``phi``, or by the ``depth``, ``width`` and ``resolution``
    multipliers (1 where not given), and measure it against the base at its zoo input
    (see the module docstring for the rules and the units). A network past MAX_BLOCKS
    blocks or MAX_CHANNELS channels raises ArchstatError before anything is traced."""
    family = _family(model)
    d, w, r = multipliers(phi, depth, width, resolution)
    one = Fraction(1)
    base, _ = _scaled(model, family, one, one, one)
    scaled, stages = _scaled(model, family, d, w, r)
    return ScalingReport(model, family, phi, base, scaled, stages, d * w**2 * r**2)


def _published(phi: int, b0: int) -> Published | None:
    variant = f"b{phi}"
    if variant not in VARIANTS:
        return None
    width, depth, resolution, crop = VARIANTS[variant]
    totals = analyze(f"efficientnet_{variant}", convention="macs", execute="never").totals
    return Published(variant, depth, width, resolution, *PAPER_COST[variant],
                     *TORCHVISION[variant], crop, totals["params"], totals["flops"],
                     totals["flops"] / b0)


def scale_sweep(model: str = SWEEP_BASE, phis: Iterable[int] = range(8)) -> ScalingSweep:
    """:func:`scale` for every compound coefficient in ``phis``; from efficientnet_b0,
    each row also carries the published EfficientNet-B<phi> (:class:`Published`)."""
    family = _family(model)
    phis = list(phis)
    if not phis:
        raise ArchstatError("`phis` is empty: give the compound coefficients to sweep")
    with fast_meta_build():  # every phi within the limits before tracing any
        for phi in phis:
            d, w, _ = multipliers(phi)
            _plan(model, family, d, w)
    one = Fraction(1)
    base, _ = _scaled(model, family, one, one, one)
    rows = []
    for phi in phis:
        d, w, r = multipliers(phi)
        network, stages = _scaled(model, family, d, w, r)
        published = _published(phi, base.flops) if model == SWEEP_BASE else None
        rows.append(SweepRow(phi, network, stages, d * w**2 * r**2,
                             network.flops / base.flops, network.params / base.params,
                             published))
    return ScalingSweep(model, family, base, rows)
