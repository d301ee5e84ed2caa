"""Budget checks: every limit of a budget file against a fresh analysis, for CI
(``archstat check``), for test suites (:func:`assert_within_budget`), and budgets
written from today's figures (``archstat budget``).

The metrics, all exact integers:

* ``flops``: the model's total under the entry's convention (``macs`` by default:
  one multiply-accumulate counts 1);
* ``params``: parameter elements the forward pass uses;
* ``activation_bytes``: the bytes of new storage the forward allocates (archstat's one
  definition of activation memory, :mod:`archstat.analysis`);
* ``layer_activation_bytes``: the most that one layer (record) allocates;
* ``peak_activation_bytes``: the most activation storage live at once (the same figure
  as ``archstat memory``'s peak activations);
* ``train_step_flops`` (``max_train_flops``): a training step's forward and backward,
  plus the entry's ``optimizer`` step if it names one, traced in training mode (the
  other metrics of such an entry come from the same training trace);
* ``predicted_ms`` (``max_predicted_ms``): the forward latency :func:`archstat.predict`
  predicts on the entry's ``device``, held in whole nanoseconds and shown in ms.

A limit passes when ``actual <= limit``, so a budget exceeded by one FLOP fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from archstat.budget.file import (
    LIMIT_KEYS,
    NS_PER_MS,
    BudgetEntry,
    BudgetFileError,
    Limit,
    budget_toml,
    load_budgets,
    make_limit,
)
from archstat.display import Display
from archstat.errors import ArchstatError
from archstat.snapshots import (
    TOTAL_METRICS,
    Snapshot,
    analysis_settings,
    diff_model,
    growth_limit,
    growth_text,
    load_snapshot,
    recorded_settings,
    settings_text,
)
from archstat.units import format_percent, format_quantity, is_binary, round_up_quantity

METRIC_UNITS = {metric: unit for metric, unit in LIMIT_KEYS.values()}


def budget_metrics(analysis: Any) -> dict[str, int]:
    """The four budgeted metrics of an Analysis (see the module docstring)."""
    totals = analysis.totals
    peak = int(analysis.layers["activation_bytes"].max()) if len(analysis.layers) else 0
    measured = {"flops": totals["flops"], "params": totals["params"],
                "activation_bytes": totals["activation_bytes"], "layer_activation_bytes": peak,
                "peak_activation_bytes": totals["peak_activation_bytes"]}
    if "train_step_flops" in totals:
        measured["train_step_flops"] = totals["train_step_flops"]
    return measured


def _largest_layer(analysis: Any) -> str:
    if not len(analysis.layers):
        return ""
    name = analysis.layers.loc[analysis.layers["activation_bytes"].idxmax(), "name"]
    return name or "(root)"


@dataclass(frozen=True)
class CheckResult:
    """One limit of one entry. ``status`` is pass, fail or error; ``limit`` and ``actual``
    are exact integers in the metric's unit (None for an entry that could not be
    analysed); ``line`` is where the limit is set in the budget file; ``message`` says
    what went wrong (empty for a pass)."""

    label: str
    metric: str
    key: str
    unit: str
    limit: int | None
    limit_text: str
    actual: int | None
    status: str
    line: int
    message: str = ""

    def show(self, value: int) -> str:
        """``value`` in this limit's unit, exact, in the prefix family the budget was
        written in (MiB when it says MiB, else MB); a latency in ms."""
        if self.unit == "ms":
            return f"{value / NS_PER_MS:.6g}ms"
        return format_quantity(value, self.unit, is_binary(self.limit_text))

    @property
    def headroom(self) -> int | None:
        """limit - actual: negative when over budget."""
        return None if self.limit is None or self.actual is None else self.limit - self.actual

    @property
    def headroom_pct(self) -> Fraction | None:
        """The headroom in percent of the limit (None for a zero or missing limit)."""
        if self.headroom is None or not self.limit:
            return None
        return Fraction(self.headroom * 100, self.limit)


@dataclass(frozen=True)
class CheckReport(Display):
    """The results of a budget file, in file order."""

    display: str
    results: list[CheckResult]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @classmethod
    def from_file_error(cls, exc: BudgetFileError) -> CheckReport:
        """A report of one error, so that CI formats can show a broken budget file too."""
        return cls(exc.display, [CheckResult("(budget file)", "(configuration)", "", "", None,
                                             "", None, "error", exc.line, exc.problem)])

    @property
    def exit_code(self) -> int:
        """2 if an entry could not be evaluated, else 1 if a limit is exceeded, else 0."""
        if self.count("error"):
            return 2
        return 1 if self.count("fail") else 0


def compare(label: str, metrics: dict[str, int], limits: Sequence[Limit],
            analysis: Any = None) -> list[CheckResult]:
    """Each limit against the measured metrics."""
    results = []
    for limit in limits:
        actual = metrics[limit.metric]
        result = CheckResult(label, limit.metric, limit.key, limit.unit, limit.value,
                             limit.text, actual, "fail" if actual > limit.value else "pass",
                             limit.line)
        if result.status == "fail":
            over = actual - limit.value
            pct = f" ({format_percent(Fraction(over * 100, limit.value))})" if limit.value else ""
            where = (f" in layer {_largest_layer(analysis)}"
                     if limit.metric == "layer_activation_bytes" and analysis is not None else "")
            result = replace(result, message=(
                f"{label}: {limit.metric} {result.show(actual)}{where} exceeds {limit.key} = "
                f"{limit.text} by {result.show(over)}{pct}"))
        results.append(result)
    return results


def _error(entry: BudgetEntry, key: str, problem: str) -> CheckResult:
    return CheckResult(entry.label, "", key, "", None, "", None, "error", entry.line_of(key),
                       f"budget {entry.index} ({entry.label}) {key}: {problem}")


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ArchstatError) else f"{type(exc).__name__}: {exc}"


def evaluate(entry: BudgetEntry, snapshots: dict[Path, Snapshot] | None = None) \
        -> list[CheckResult]:
    """Analyse the entry's model and check each of its limits (and its baseline)."""
    from archstat.analysis import analyze

    try:
        analysis = analyze(entry.model, input_shape=entry.input_shape, batch=entry.batch,
                           convention=entry.convention, dtype=entry.dtype, train=entry.train,
                           optimizer=entry.optimizer)
    except Exception as exc:  # any failure: it is reported for this entry, others go on
        return [_error(entry, "model", _reason(exc))]
    metrics = budget_metrics(analysis)
    if entry.predicts:
        try:
            metrics["predicted_ms"] = _predicted_ns(entry, analysis)
        except Exception as exc:
            return [_error(entry, "max_predicted_ms", _reason(exc))]
    results = compare(entry.label, metrics, entry.limits, analysis)
    if entry.baseline is not None:
        if entry.train:  # a snapshot is of the inference forward: diff that one
            try:
                analysis = analyze(entry.model, input_shape=entry.input_shape,
                                   batch=entry.batch, convention=entry.convention,
                                   dtype=entry.dtype)
            except Exception as exc:
                return [*results, _error(entry, "baseline", _reason(exc))]
        results += _against_baseline(entry, analysis, snapshots if snapshots is not None else {})
    return results


def _predicted_ns(entry: BudgetEntry, analysis: Any) -> int:
    """The entry's predicted forward latency on its device, in whole nanoseconds (the
    inference forward: a training entry's model is analysed again without training)."""
    from archstat.analysis import analyze
    from archstat.predictor import predict_analysis

    if analysis.train:
        analysis = analyze(entry.model, input_shape=entry.input_shape, batch=entry.batch,
                           convention=entry.convention, dtype=entry.dtype)
    report = predict_analysis(analysis, entry.device)
    return round(report.totals["predicted_ms"] * NS_PER_MS)


def _against_baseline(entry: BudgetEntry, analysis: Any, snapshots: dict[Path, Snapshot]) \
        -> list[CheckResult]:
    assert entry.baseline is not None
    try:
        if entry.baseline not in snapshots:
            snapshots[entry.baseline] = load_snapshot(entry.baseline)
        snap = snapshots[entry.baseline]
        record = snap.record(analysis.model)
    except ArchstatError as exc:
        return [_error(entry, "baseline", str(exc))]
    now = analysis_settings(analysis)
    if recorded_settings(record) != now:
        return [_error(entry, "baseline", f"{snap.display} holds {analysis.model} at "
                       f"{settings_text(recorded_settings(record))}, this budget analyses "
                       f"it at {settings_text(now)}; snapshot it again")]
    model_diff = diff_model(record, analysis, entry.tolerance)
    tolerance = format_percent(entry.tolerance, places=4)
    results = []
    for metric, (before, after) in model_diff.totals.items():
        unit = TOTAL_METRICS[metric]
        failed = metric in model_diff.exceeded
        message = (f"{entry.label}: {_growth_message(model_diff, metric)}, beyond the "
                   f"tolerance {tolerance} over {snap.display}") if failed else ""
        results.append(CheckResult(
            entry.label, f"{metric} vs baseline", "baseline", unit,
            growth_limit(before, entry.tolerance),
            f"{format_quantity(before, unit, False)} + {tolerance}", after,
            "fail" if failed else "pass", entry.line_of("baseline"), message))
    return results


def _growth_message(model_diff: Any, metric: str) -> str:
    """``flops grew from A to B (+x%); most growth in layer (added, +n), ...``"""
    unit = TOTAL_METRICS[metric]
    before, after = model_diff.totals[metric]
    grown = ", ".join(f"{c.name or '(root)'} ({c.change}, "
                      f"+{format_quantity(c.delta(metric), unit, False)})"
                      for c in model_diff.largest_growth(metric))
    return (f"{metric} grew from {format_quantity(before, unit, False)} to "
            f"{format_quantity(after, unit, False)} ({growth_text(before, after)})"
            + (f"; most growth in {grown}" if grown else ""))


def run_checks(path: str | Path | None = None) -> CheckReport:
    """Load a budget file (default: ./archstat.toml, else ./pyproject.toml's
    [tool.archstat]) and evaluate every entry; an entry whose model fails to build is an
    ``error`` result and the others are still checked."""
    budgets = load_budgets(path)
    snapshots: dict[Path, Snapshot] = {}
    results = [r for entry in budgets.entries for r in evaluate(entry, snapshots)]
    return CheckReport(budgets.display, results)


def assert_within_budget(
    model: Any,
    input_shape: Any = None,
    *,
    batch: int = 1,
    convention: str = "macs",
    dtype: str = "float32",
    max_flops: int | str | None = None,
    max_params: int | str | None = None,
    max_activation_bytes: int | str | None = None,
    max_layer_activation_bytes: int | str | None = None,
    max_peak_activation_bytes: int | str | None = None,
    max_train_flops: int | str | None = None,
    optimizer: str | None = None,
    **config: Any,
) -> Any:
    """Raise AssertionError, with one line per metric, when ``model`` exceeds a limit.

    Limits are exact integers or human strings (``"1.6G"``, ``"25MiB"``); ``max_flops`` is
    in the unit of ``convention``. ``model``, ``input_shape``, ``batch``, ``dtype`` and
    ``config`` are as for :func:`archstat.analyze`. Returns the Analysis when every limit
    holds, so a test can look further.
    """
    from archstat.analysis import analyze

    given = {"max_flops": max_flops, "max_params": max_params,
             "max_activation_bytes": max_activation_bytes,
             "max_layer_activation_bytes": max_layer_activation_bytes,
             "max_peak_activation_bytes": max_peak_activation_bytes,
             "max_train_flops": max_train_flops}
    limits = []
    for key, value in given.items():
        if value is not None:
            try:
                limits.append(make_limit(key, value))
            except ArchstatError as exc:
                raise ArchstatError(f"{key}: {exc}") from None
    if not limits:
        raise ArchstatError(f"assert_within_budget needs a limit: {', '.join(given)}")
    train = max_train_flops is not None
    if optimizer is not None and not train:
        raise ArchstatError("an optimizer only counts with max_train_flops")
    analysis = analyze(model, input_shape=input_shape, batch=batch, convention=convention,
                       dtype=dtype, train=train, optimizer=optimizer, **config)
    results = compare(analysis.model, budget_metrics(analysis), limits, analysis)
    if any(r.status == "fail" for r in results):
        raise AssertionError(_budget_message(analysis, results))
    return analysis


def _budget_message(analysis: Any, results: list[CheckResult]) -> str:
    lines = [f"{analysis.model} is over budget ({settings_text(analysis_settings(analysis))}):"]
    for r in results:
        if r.status == "fail":
            lines.append(f"  {r.metric}: {r.show(r.actual)} > {r.key} {r.limit_text}, "
                         f"over by {r.show(-r.headroom)}")
        else:
            lines.append(f"  {r.metric}: {r.show(r.actual)} <= {r.key} {r.limit_text}, ok")
    return "\n".join(lines)


def suggest_budgets(
    models: Sequence[str] | None = None,
    digits: int = 3,
    input_shape: Any = None,
    batch: int = 1,
    convention: str = "macs",
    dtype: str = "float32",
) -> str:
    """A budget file (TOML text) limiting each model (default: every zoo model) to its
    current figures rounded up to ``digits`` significant digits: tight (under 1% of
    headroom with 3 digits) but passing."""
    from archstat.analysis import analyze
    from archstat.zoo import list_models

    entries = []
    for name in dict.fromkeys(models or list_models()):
        analysis = analyze(name, input_shape=input_shape, batch=batch,
                           convention=convention, dtype=dtype)
        shapes = [s.text() for s in analysis.input_specs]
        entry: dict[str, Any] = {
            "model": analysis.model, "input": shapes[0] if len(shapes) == 1 else shapes,
            "batch": analysis.batch, "convention": analysis.convention.name,
        }
        if analysis.dtype != "float32":
            entry["dtype"] = analysis.dtype
        for key, value in budget_metrics(analysis).items():
            entry[f"max_{key}"] = round_up_quantity(value, digits, METRIC_UNITS[key])
        entries.append(entry)
    return budget_toml(entries, comment=(
        f"Written by `archstat budget`: each limit is today's figure rounded up to {digits}\n"
        f"significant digits. max_flops is in the entry's convention; bytes are in MB (10^6)."))
