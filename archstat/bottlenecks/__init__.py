"""``archstat.bottlenecks``: what each 1x1 bottleneck of a model saves, at three levels.

* ``pair``: every 1x1 reduce -> kxk convolution pair against the kxk convolution
  applied straight to the 1x1's input (:mod:`archstat.bottlenecks.detect`).
* ``module``: every inception module against the naive module of Szegedy et al. 2014
  Figure 2(a), every residual bottleneck block against a basic block at its width, and
  the lecture's view of those blocks in units of H W C^2.
* ``network``: the whole network, traced again with every inception module naive or
  every bottleneck replaced by a basic block (:mod:`archstat.bottlenecks.counterfactual`), against
  the real one, both counted by :func:`archstat.analyze` on the meta device.

Units: ``macs`` are multiply-accumulates under the ``macs`` convention (one fused
multiply-add is 1; at pair and module level, convolutions only; at network level, the
whole model: convolutions and the classifier) for the traced batch; ``params`` are
weight + bias elements (at pair and module level of the convolutions concerned, at
network level every parameter the forward pass uses). A ``*_saving_ratio`` is the
counterpart's figure over the built one (9.68: the built layers cost 9.68 times less).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from archstat.analysis import Analysis, analyze
from archstat.bottlenecks.counterfactual import COUNTERFACTUALS
from archstat.bottlenecks.detect import convolutions, links, module_rows, pair_row
from archstat.errors import ArchstatError, did_you_mean
from archstat.trace.dataflow import DataFlow

if TYPE_CHECKING:
    import pandas as pd

LEVELS = ("pair", "module", "network", "all")

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

# The table behind each level (the module level also carries the lecture view).
TABLES = {"pair": ("pairs",), "module": ("modules", "lecture"), "network": ("network",)}
COLUMNS = {"pairs": PAIR_COLUMNS, "modules": MODULE_COLUMNS, "lecture": LECTURE_COLUMNS,
           "network": NETWORK_COLUMNS}


@dataclass
class BottleneckReport:
    """The result of :func:`bottleneck`: per table of the requested level, its rows
    (``rows["pairs"]`` ...; other levels' tables are absent), exact values.

    ``pairs``, ``modules`` and ``network`` have the columns PAIR_COLUMNS, MODULE_COLUMNS
    and NETWORK_COLUMNS (a pair names its 1x1 ``reduce`` and kxk ``spatial`` modules);
    ``lecture`` (LECTURE_COLUMNS, module level) shows the residual bottleneck blocks in
    units of H W C^2 (C the 3x3's input width, HxW its output size, per image).
    ``notes`` say why a table is empty: ``no_pairs``, ``no_modules``,
    ``no_counterfactual``. The tables are also DataFrame attributes (``report.pairs``).
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

    def table_for(self, level: str | None = None) -> str:
        """The name of the one table a level's CSV holds (the module level: modules);
        ``level`` defaults to the report's own, which must then not be ``all``."""
        level = level or self.level
        if level == "all":
            raise ArchstatError("CSV holds one table: choose the pair, module or network "
                                "level")
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
    return LEVELS[:3] if level == "all" else (level,)


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


def bottleneck(
    model: str | nn.Module,
    input_shape: str | Sequence[int] | Sequence[Sequence[int]] | None = None,
    batch: int = 1,
    level: str = "all",
    **config: Any,
) -> BottleneckReport:
    """Measure what every 1x1 bottleneck of ``model`` saves (see the module docstring
    for the levels, the counterparts and the units).

    ``model``, ``input_shape``, ``batch`` and ``config`` are as for :func:`analyze`;
    ``level`` is ``pair``, ``module``, ``network`` or ``all``. The network level needs
    a counterfactual builder, which exists for the zoo's googlenet, googlenet_tv and
    bottleneck ResNets (:data:`archstat.bottlenecks.counterfactual.COUNTERFACTUALS`). A model with
    no 1x1 bottleneck gets empty tables and one note saying so.
    """
    levels = _levels(level)
    actual = analyze(model, input_shape=input_shape, batch=batch, convention="macs", **config)
    flow = DataFlow(actual.trace)
    convs = convolutions(flow)
    found = links(flow, convs)
    pairs = [link for link in found if link.is_pair]
    rows: dict[str, list[dict[str, Any]]] = {name: [] for lv in levels for name in TABLES[lv]}
    notes = []
    if not pairs:
        notes.append("no_pairs")
    else:
        if "pair" in levels:
            rows["pairs"] = [pair_row(link, flow) for link in pairs]
        if "module" in levels:
            rows["modules"], rows["lecture"] = module_rows(flow, convs, found)
            if not rows["modules"]:
                notes.append("no_modules")
        if "network" in levels:
            rows["network"] = _network_rows(actual, model, config) or []
            if not rows["network"]:
                notes.append("no_counterfactual")
    return BottleneckReport(model=actual.model, input_shape=actual.input_shape,
                            batch=actual.batch, level=level, rows=rows, notes=notes)
