"""archstat: exact, fast per-layer memory, parameter and FLOP analysis of neural networks.

    >>> import archstat
    >>> result = archstat.analyze("vgg16")            # traced on the meta device
    >>> result.totals["flops"]                          # multiply-accumulates (macs)
    15470264320
    >>> from archstat.render import render
    >>> print(render(result, "csv"))                    # or table, json, markdown

Every name below is the public API, what the command line calls too. The heavy modules
(torch, pandas) load on first use of a name, so that ``import archstat`` and
``archstat --help`` stay fast; the names are listed for ``dir()`` and, through the
``TYPE_CHECKING`` imports, for type checkers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from archstat._version import __version__
from archstat.errors import ArchstatError

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from archstat.accuracy import AccuracyTable, accuracy_table
    from archstat.analysis import Analysis, analyze
    from archstat.bench import BenchReport, benchmark
    from archstat.bottlenecks import BottleneckReport, bottleneck
    from archstat.budget.checks import (
        CheckReport,
        assert_within_budget,
        suggest_budgets,
    )
    from archstat.budget.checks import run_checks as check
    from archstat.compare import Comparison, compare_models
    from archstat.conventions import CONVENTIONS, Convention
    from archstat.factorize import Factorization, factorize_model
    from archstat.inputs import InputSpec
    from archstat.lecture import LectureTable, lecture_table
    from archstat.memory import MemoryReport, estimate_memory
    from archstat.paper import PaperTable, paper_table
    from archstat.peers import CrossCheck, crosscheck
    from archstat.predictor import DeviceProfile, PredictReport, calibrate, predict
    from archstat.scaling import ScalingReport, ScalingSweep, scale, scale_sweep
    from archstat.snapshots import DiffReport, diff, snapshot
    from archstat.zoo import ZooListing, get_model, get_model_info, list_models, zoo_listing

#: public name -> (module, attribute there)
_EXPORTS: dict[str, tuple[str, str]] = {
    "analyze": ("archstat.analysis", "analyze"),
    "Analysis": ("archstat.analysis", "Analysis"),
    "compare_models": ("archstat.compare", "compare_models"),
    "Comparison": ("archstat.compare", "Comparison"),
    "lecture_table": ("archstat.lecture", "lecture_table"),
    "LectureTable": ("archstat.lecture", "LectureTable"),
    "paper_table": ("archstat.paper", "paper_table"),
    "PaperTable": ("archstat.paper", "PaperTable"),
    "bottleneck": ("archstat.bottlenecks", "bottleneck"),
    "BottleneckReport": ("archstat.bottlenecks", "BottleneckReport"),
    "estimate_memory": ("archstat.memory", "estimate_memory"),
    "MemoryReport": ("archstat.memory", "MemoryReport"),
    "benchmark": ("archstat.bench", "benchmark"),
    "BenchReport": ("archstat.bench", "BenchReport"),
    "check": ("archstat.budget.checks", "run_checks"),
    "CheckReport": ("archstat.budget.checks", "CheckReport"),
    "assert_within_budget": ("archstat.budget.checks", "assert_within_budget"),
    "suggest_budgets": ("archstat.budget.checks", "suggest_budgets"),
    "snapshot": ("archstat.snapshots", "snapshot"),
    "diff": ("archstat.snapshots", "diff"),
    "DiffReport": ("archstat.snapshots", "DiffReport"),
    "crosscheck": ("archstat.peers", "crosscheck"),
    "CrossCheck": ("archstat.peers", "CrossCheck"),
    "CONVENTIONS": ("archstat.conventions", "CONVENTIONS"),
    "Convention": ("archstat.conventions", "Convention"),
    "InputSpec": ("archstat.inputs", "InputSpec"),
    "list_models": ("archstat.zoo", "list_models"),
    "get_model": ("archstat.zoo", "get_model"),
    "get_model_info": ("archstat.zoo", "get_model_info"),
    "zoo_listing": ("archstat.zoo", "zoo_listing"),
    "ZooListing": ("archstat.zoo", "ZooListing"),
    "factorize_model": ("archstat.factorize", "factorize_model"),
    "Factorization": ("archstat.factorize", "Factorization"),
    "scale": ("archstat.scaling", "scale"),
    "scale_sweep": ("archstat.scaling", "scale_sweep"),
    "ScalingReport": ("archstat.scaling", "ScalingReport"),
    "ScalingSweep": ("archstat.scaling", "ScalingSweep"),
    "accuracy_table": ("archstat.accuracy", "accuracy_table"),
    "AccuracyTable": ("archstat.accuracy", "AccuracyTable"),
    "predict": ("archstat.predictor", "predict"),
    "calibrate": ("archstat.predictor", "calibrate"),
    "PredictReport": ("archstat.predictor", "PredictReport"),
    "DeviceProfile": ("archstat.predictor", "DeviceProfile"),
}

__all__ = [
    "ArchstatError", "__version__",
    "analyze", "Analysis", "compare_models", "Comparison", "lecture_table", "LectureTable",
    "paper_table", "PaperTable", "bottleneck", "BottleneckReport", "estimate_memory",
    "MemoryReport", "benchmark", "BenchReport", "check", "CheckReport",
    "assert_within_budget", "suggest_budgets", "snapshot", "diff", "DiffReport",
    "crosscheck", "CrossCheck", "CONVENTIONS", "Convention", "InputSpec", "list_models",
    "get_model", "get_model_info", "zoo_listing", "ZooListing",
    "factorize_model", "Factorization", "scale", "scale_sweep", "ScalingReport",
    "ScalingSweep", "accuracy_table", "AccuracyTable", "predict", "calibrate",
    "PredictReport", "DeviceProfile",
]
assert set(__all__[2:]) == set(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # a submodule import can no longer shadow it
        return value
    raise AttributeError(f"module 'archstat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
