"""``archstat.bottlenecks``: what each 1x1 bottleneck of a model saves, at three levels,
and what its squeeze-and-excitation blocks cost.

* ``pair``: every 1x1 reduce -> kxk convolution pair against the kxk convolution
  applied straight to the 1x1's input (:mod:`archstat.bottlenecks.detect`).
* ``module``: every inception module against the naive module of Szegedy et al. 2014
  Figure 2(a), every residual bottleneck block against a basic block at its width, and
  the lecture's view of those blocks in units of H W C^2; every dense block (DenseNet-BC)
  against its layers without their 1x1s (:mod:`archstat.bottlenecks.dense`); every MBConv
  block (MobileNetV2, EfficientNet) against one standard kxk convolution
  (:mod:`archstat.bottlenecks.mobile`). The ``kind`` column says which:
  ``inception``, ``residual``, ``dense``, ``mbconv``.
* ``network``: the whole network, traced again with every inception module naive, every
  bottleneck replaced by a basic block, every dense layer without its 1x1 or every MBConv
  block replaced by a standard convolution (:mod:`archstat.bottlenecks.counterfactual`),
  against the real one, both counted by :func:`archstat.analyze` on the meta device.
* ``se``: every squeeze-and-excitation block (:mod:`archstat.bottlenecks.se`), its
  ``macs`` and ``params``, and their total against the whole model's (``se_total``):
  an overhead, not a saving.

Units: ``macs`` are multiply-accumulates under the ``macs`` convention (one fused
multiply-add is 1; at pair and module level, convolutions only, plus an MBConv's or a
residual block's SE blocks in full; at network level, the whole model: convolutions and
the classifier; at se level, the SE blocks' fc layers or 1x1 convolutions) for the
traced batch; ``params`` are weight + bias elements (at pair and module level of the
convolutions concerned, at network level every parameter the forward pass uses). A
``*_saving_ratio`` is the counterpart's figure over the built one (9.68: the built
layers cost 9.68 times less; below 1 they cost more); a ``*_share`` is the SE blocks'
total over the model's (``analyze``'s totals, same convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from archstat.analysis import Analysis, analyze
from archstat.bottlenecks.counterfactual import COUNTERFACTUALS
from archstat.bottlenecks.dense import dense_blocks, dense_row
from archstat.bottlenecks.detect import convolutions, links, module_rows, pair_row
from archstat.bottlenecks.mobile import mbconv_blocks, mbconv_row
from archstat.bottlenecks.naming import ModuleNames
from archstat.bottlenecks.se import SEBlock, se_blocks
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean
from archstat.trace.dataflow import DataFlow

if TYPE_CHECKING:
    import pandas as pd

LEVELS = ("pair", "module", "network", "se", "all")

PAIR_COLUMNS = [
    "reduce", "spatial", "input_shape", "in_channels", "reduced_channels", "out_channels",
    "kernel", "macs", "params", "direct_macs", "direct_params", "macs_saving_ratio",
    "params_saving_ratio",
]
MODULE_COLUMNS = [
    "module", "kind", "input_shape", "in_channels", "out_channels", "naive_out_channels",
    "macs", "naive_macs", "params", "naive_params", "macs_saving_ratio", "params_saving_ratio",
]
LECTURE_COLUMNS = ["module", "width", "output_size", "macs_hwc2", "basic_macs_hwc2"]
NETWORK_COLUMNS = ["model", "variant", "macs", "params"]
SE_COLUMNS = ["module", "input_shape", "channels", "squeezed", "macs", "params"]
SE_TOTAL_COLUMNS = ["model", "se_blocks", "se_macs", "se_params", "model_macs",
                    "model_params", "macs_share", "params_share"]

# The table behind each level (the module level also carries the lecture view, the se
# level the network's SE total).
TABLES = {"pair": ("pairs",), "module": ("modules", "lecture"), "network": ("network",),
          "se": ("se", "se_total")}
COLUMNS = {"pairs": PAIR_COLUMNS, "modules": MODULE_COLUMNS, "lecture": LECTURE_COLUMNS,
           "network": NETWORK_COLUMNS, "se": SE_COLUMNS, "se_total": SE_TOTAL_COLUMNS}


@dataclass
class BottleneckReport(Display):
    """The result of :func:`bottleneck`: per table of the requested level, its rows
    (``rows["pairs"]`` ...; other levels' tables are absent), exact values.

    ``pairs``, ``modules`` and ``network`` have the columns PAIR_COLUMNS, MODULE_COLUMNS
    and NETWORK_COLUMNS (a pair names its 1x1 ``reduce`` and kxk ``spatial`` modules);
    ``lecture`` (LECTURE_COLUMNS, module level) shows the residual bottleneck blocks in
    units of H W C^2 (C the 3x3's input width, HxW its output size, per image; an SE
    block's convolutions left out). ``se`` (SE_COLUMNS) has one row per SE block: the
    module it ran in, the shape of the map it gates, its ``channels`` C and ``squeezed``
    width C/r; ``se_total`` (SE_TOTAL_COLUMNS, one row, none without SE blocks) their sum
    against the model's totals. ``notes`` say why a table is empty: ``no_pairs`` (no
    1x1 bottleneck at all), ``no_pairs_depthwise`` (no pair, but MBConv blocks),
    ``no_modules``, ``no_counterfactual``, and ``no_se`` (at the ``se`` level only: most
    models have no SE block, so ``all`` does not say so). The tables are also DataFrame
    attributes (``report.pairs``).
    """

    model: str
    input_shape: list[tuple[int, ...]]
    batch: int
    level: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def _frame(self, name: str) -> pd.DataFrame | None:
        import pandas as pd

        if name not in self.rows:
            return None
        return pd.DataFrame(self.rows[name], columns=COLUMNS[name])

    @property
    def pairs(self) -> pd.DataFrame | None:
        return self._frame("pairs")

    @property
    def modules(self) -> pd.DataFrame | None:
        return self._frame("modules")

    @property
    def lecture(self) -> pd.DataFrame | None:
        return self._frame("lecture")

    @property
    def network(self) -> pd.DataFrame | None:
        return self._frame("network")

    @property
    def se(self) -> pd.DataFrame | None:
        return self._frame("se")

    @property
    def se_total(self) -> pd.DataFrame | None:
        return self._frame("se_total")

    def table_for(self, level: str | None = None) -> str:
        """The name of the one table a level's CSV holds (the module level: modules);
        ``level`` defaults to the report's own, which must then not be ``all``."""
        level = level or self.level
        if level == "all":
            raise ArchstatError("CSV holds one table: choose the pair, module, network or "
                                "se level")
        name = TABLES[_levels(level)[0]][0]
        if name not in self.rows:
            raise ArchstatError(f"this report was made at level {self.level!r}, not {level!r}")
        return name


def _levels(level: str) -> tuple[str, ...]:
    if level not in LEVELS:
        raise ArchstatError(
            f"unknown level {level!r}{did_you_mean(level, LEVELS)}; choose one of "
            f"{', '.join(LEVELS)}"
        )
    return LEVELS[:-1] if level == "all" else (level,)


def _network_rows(
    actual: Analysis, model: str | nn.Module, config: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """The real network and its counterfactual, both through analyze() on the meta device;
    None when archstat has no counterfactual builder for ``model``."""
    builder = COUNTERFACTUALS.get(model) if isinstance(model, str) else None
    if builder is None:
        return None
    with torch.device("meta"):
        naive_module = builder(**config)
    naive = analyze(naive_module, input_shape=actual.input_shape, batch=actual.batch,
                    convention="macs")
    return [
        {"model": actual.model, "variant": variant, "macs": result.totals["flops"],
         "params": result.totals["params"]}
        for variant, result in (("actual", actual), ("naive", naive))
    ]


def _se_rows(actual: Analysis, gates: dict[int, SEBlock]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per SE block, and the network's SE total against the model's totals."""
    blocks = [
        {"module": se.module, "input_shape": se.input_shape, "channels": se.channels,
         "squeezed": se.squeezed, "macs": se.macs, "params": se.params}
        for se in gates.values()
    ]
    if not blocks:
        return [], []
    macs, params = sum(b["macs"] for b in blocks), sum(b["params"] for b in blocks)
    model_macs, model_params = actual.totals["flops"], actual.totals["params"]
    total = {"model": actual.model, "se_blocks": len(blocks), "se_macs": macs,
             "se_params": params, "model_macs": model_macs, "model_params": model_params,
             "macs_share": macs / model_macs if model_macs else float("nan"),
             "params_share": params / model_params if model_params else float("nan")}
    return blocks, [total]


def bottleneck(
    model: str | nn.Module,
    input_shape: str | Sequence[int] | Sequence[Sequence[int]] | None = None,
    batch: int = 1,
    level: str = "all",
    **config: Any,
) -> BottleneckReport:
    """Measure what every 1x1 bottleneck of ``model`` saves, and what its SE blocks cost
    (see the module docstring for the levels, the counterparts and the units).

    ``model``, ``input_shape``, ``batch`` and ``config`` are as for :func:`analyze`;
    ``level`` is ``pair``, ``module``, ``network``, ``se`` or ``all``. The network level
    needs a counterfactual builder, which exists for the zoo's googlenet, googlenet_tv,
    bottleneck ResNets, DenseNets and EfficientNets
    (:data:`archstat.bottlenecks.counterfactual.COUNTERFACTUALS`). A model with no 1x1
    bottleneck (no pair, no MBConv block) gets empty tables and one note saying so.
    """
    levels = _levels(level)
    actual = analyze(model, input_shape=input_shape, batch=batch, convention="macs", **config)
    flow = DataFlow(actual.trace)
    names = ModuleNames(flow, actual.module_types)
    convs = convolutions(flow)
    found = links(flow, convs)
    pairs = [link for link in found if link.is_pair]
    gates = se_blocks(flow, names)
    mobile = mbconv_blocks(flow, convs, gates, names)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for lv in levels for name in TABLES[lv]}
    notes = []
    if not pairs and not mobile:
        if set(levels) - {"se"}:
            notes.append("no_pairs")
    else:
        if "pair" in levels:
            rows["pairs"] = [pair_row(link, flow) for link in pairs]
            if not pairs:
                notes.append("no_pairs_depthwise")
        if "module" in levels:
            dense = dense_blocks(flow, convs, pairs, names)
            extra = [(b.key, dense_row(b, flow, convs, pairs)) for b in dense]
            extra += [(b.key, mbconv_row(b, flow)) for b in mobile]
            rows["modules"], rows["lecture"] = module_rows(
                flow, convs, found, gates, skip={c for b in dense for c in b.cats},
                extra=extra)
            if not rows["modules"]:
                notes.append("no_modules")
        if "network" in levels:
            rows["network"] = _network_rows(actual, model, config) or []
            if not rows["network"]:
                notes.append("no_counterfactual")
    if "se" in levels:
        rows["se"], rows["se_total"] = _se_rows(actual, gates)
        if not rows["se"] and level == "se":
            notes.append("no_se")
    return BottleneckReport(model=actual.model, input_shape=actual.input_shape,
                            batch=actual.batch, level=level, rows=rows, notes=notes)
