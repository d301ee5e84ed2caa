"""Budget files: ``archstat.toml`` or the ``[tool.archstat]`` table of a pyproject.toml.

A file holds an array of ``[[budget]]`` tables, one per model and setting::

    [[budget]]
    model = "googlenet"           # zoo name or spec string (package.module:callable)
    input = "3x224x224"           # optional; a list for several inputs; "ids=128:int64"
    batch = 1                     # optional
    convention = "macs"           # optional; the unit of max_flops
    max_flops = "1.6G"            # multiply-accumulates under "macs"
    max_params = "7M"             # parameter elements
    max_activation_bytes = "58MB" # bytes of new storage the forward allocates
    max_layer_activation_bytes = "3.3MB"  # the most one layer allocates
    max_peak_activation_bytes = "10MB"    # the most activation storage live at once
    max_train_flops = "4.8G"      # forward + backward (+ an optimizer step) of training
    optimizer = "adam"            # optional, with max_train_flops: whose step is counted
    baseline = "baseline.json"    # optional: `archstat snapshot` output, beside this file
    tolerance = "0.5%"            # optional: growth over the baseline that still passes
    max_predicted_ms = 2.5        # predicted forward latency (archstat predict), ms
    device = "H100"               # with max_predicted_ms: a device of the table, or a
                                  # profile JSON file beside this budget file

Loading validates everything it can without building a model (keys, types, units, signs,
shapes, conventions), so a configuration mistake is one precise ``file:line`` message.
A model that does not build is found later, when its entry is evaluated.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from archstat.errors import ArchstatError, did_you_mean
from archstat.units import parse_percent, parse_quantity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

#: Budget key -> (metric it limits, unit for human values: "" counts, "B" bytes).
LIMIT_KEYS: dict[str, tuple[str, str]] = {
    "max_flops": ("flops", ""),
    "max_params": ("params", ""),
    "max_activation_bytes": ("activation_bytes", "B"),
    "max_layer_activation_bytes": ("layer_activation_bytes", "B"),
    "max_peak_activation_bytes": ("peak_activation_bytes", "B"),
    "max_train_flops": ("train_step_flops", ""),
    "max_predicted_ms": ("predicted_ms", "ms"),
}
#: Limits in milliseconds, held as exact integers of nanoseconds.
NS_PER_MS = 1_000_000
#: Limits measured on a training trace (forward and backward).
TRAIN_METRICS = frozenset({"train_step_flops"})
ENTRY_KEYS = ("model", "name", "input", "batch", "convention", "dtype", *LIMIT_KEYS,
              "optimizer", "baseline", "tolerance", "device")
DEFAULT_FILE = "archstat.toml"


class BudgetFileError(ArchstatError):
    """A mistake at ``line`` (1-based) of the budget file ``display``; the message
    starts with ``file:line:`` (``file:line:column:`` for TOML syntax)."""

    def __init__(self, display: str, line: int, problem: str, column: int | None = None):
        where = f"{display}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {problem}")
        self.display, self.line, self.problem = display, line, problem


@dataclass(frozen=True)
class Limit:
    """One limit: ``metric`` must stay ``<= value`` (an exact integer in the metric's
    unit); ``text`` is the limit as the file spells it; ``line`` is where."""

    key: str
    metric: str
    unit: str
    value: int
    text: str
    line: int


@dataclass(frozen=True)
class BudgetEntry:
    """One ``[[budget]]`` table, validated. ``index`` counts from 1 in file order;
    ``label`` names it in reports (``name``, else ``model``); ``input_shape`` is None for
    the model's default input; ``tolerance`` is in percent."""

    index: int
    label: str
    model: str
    input_shape: list[Any] | None  # InputSpecs (archstat.inputs)
    batch: int
    convention: str
    dtype: str
    limits: tuple[Limit, ...]
    baseline: Path | None
    tolerance: Fraction
    line: int
    key_lines: Mapping[str, int] = field(default_factory=dict, repr=False)
    optimizer: str | None = None
    device: Any = None  # with max_predicted_ms: a DeviceProfile

    @property
    def predicts(self) -> bool:
        """Whether a limit needs a latency prediction (``max_predicted_ms``)."""
        return any(limit.metric == "predicted_ms" for limit in self.limits)

    @property
    def train(self) -> bool:
        """Whether a limit needs the training trace (``max_train_flops``)."""
        return any(limit.metric in TRAIN_METRICS for limit in self.limits)

    def line_of(self, key: str) -> int:
        """The line of ``key`` in this entry, or the entry's ``[[budget]]`` line."""
        return self.key_lines.get(key, self.line)


@dataclass(frozen=True)
class BudgetFile:
    """A loaded budget file; ``display`` is its path as reports show it."""

    path: Path
    display: str
    entries: list[BudgetEntry]


def make_limit(key: str, value: int | float | str, line: int = 0) -> Limit:
    """A :class:`Limit` from a key such as ``max_flops`` and a value such as ``"1.6G"``."""
    if key not in LIMIT_KEYS:
        raise ArchstatError(f"unknown limit {key!r}{did_you_mean(key, LIMIT_KEYS)}")
    metric, unit = LIMIT_KEYS[key]
    text = value if isinstance(value, str) else str(value)
    if unit == "ms":
        return Limit(key, metric, unit, _nanoseconds(value), text, line)
    return Limit(key, metric, unit, parse_quantity(value, unit), text, line)


def _nanoseconds(value: int | float | str) -> int:
    """A positive number of milliseconds (``2.5``, ``"2.5"``, ``"2.5ms"``) as whole
    nanoseconds."""
    from decimal import Decimal, InvalidOperation

    number: Any = value
    if isinstance(value, str):
        try:
            number = Decimal(value.strip().removesuffix("ms").strip())
        except InvalidOperation:
            number = None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = Decimal(str(value))
    else:
        number = None
    if number is None or not number.is_finite() or number <= 0:
        raise ArchstatError(f"expected a positive number of milliseconds such as 2.5, "
                            f"got {value!r}")
    return int(number * NS_PER_MS)


def find_budget_file(path: str | Path | None = None) -> Path:
    """``path``, or ``archstat.toml`` in the current directory, or a pyproject.toml there
    that has a ``[tool.archstat]`` table."""
    if path is not None:
        return Path(path)
    if Path(DEFAULT_FILE).is_file():
        return Path(DEFAULT_FILE)
    pyproject = Path("pyproject.toml")
    if pyproject.is_file():
        tool = _parse_toml(_read_text(pyproject, "pyproject.toml"), "pyproject.toml").get("tool")
        if isinstance(tool, dict) and "archstat" in tool:
            return pyproject
    raise ArchstatError(f"no budget file: {DEFAULT_FILE} not found and no pyproject.toml "
                        f"with a [tool.archstat] table in the current directory")


def load_budgets(path: str | Path | None = None) -> BudgetFile:
    """Read and validate a budget file (see the module docstring for its keys)."""
    target = find_budget_file(path)
    display = _display_path(target)
    text = _read_text(target, display)
    document = _parse_toml(text, display)
    is_pyproject = target.name == "pyproject.toml"
    table = _tool_archstat(document, text, display) if is_pyproject else document
    where = "[tool.archstat]" if is_pyproject else display
    for key in table:
        if key != "budget":
            raise BudgetFileError(display, _key_line(text, key),
                                  f"unknown key {key!r} in {where}"
                                  f"{did_you_mean(key, ['budget'])}; budgets are [[budget]] "
                                  f"tables")
    raw = table.get("budget")
    if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) for e in raw):
        header = "[[tool.archstat.budget]]" if is_pyproject else "[[budget]]"
        raise BudgetFileError(display, 1, f"no budgets; add {header} tables with a model and "
                            f"limits such as max_flops")
    spans = _entry_spans(text, is_pyproject, len(raw))
    entries = [_EntryReader(i + 1, e, spans[i], display).read(target.parent)
               for i, e in enumerate(raw)]
    _refuse_duplicate_labels(entries, display)
    return BudgetFile(target, display, entries)


def _tool_archstat(document: dict[str, Any], text: str, display: str) -> dict[str, Any]:
    """The ``[tool.archstat]`` table of a pyproject.toml."""
    tool = document.get("tool", {})
    if not isinstance(tool, dict):
        raise BudgetFileError(display, _key_line(text, "tool"),
                              f"tool: expected a table, got {_toml_type(tool)}")
    if "archstat" not in tool:
        raise BudgetFileError(display, 1, "no [tool.archstat] table")
    table = tool["archstat"]
    if not isinstance(table, dict):
        raise BudgetFileError(display, _key_line(text, "archstat"),
                              f"tool.archstat: expected a table, got {_toml_type(table)}")
    return table


def _display_path(path: Path) -> str:
    """The path relative to the current directory when it lies below it (what GitHub
    annotations need), else as given; always with forward slashes."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _read_text(path: Path, display: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArchstatError(f"budget file {display!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchstatError(f"cannot read budget file {display!r}: {exc}") from None


def _parse_toml(text: str, display: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position is None:  # tomllib reports most errors with a position; not all
            raise BudgetFileError(display, 1, f"invalid TOML: {message}") from None
        line, column = position.groups()
        raise BudgetFileError(display, int(line), f"invalid TOML: {message[:position.start()]}",
                              column=int(column)) from None


# --- where things are: tomllib returns values without positions, so the lines of the
# [[budget]] headers and of each key are found in the text itself.

@dataclass(frozen=True)
class _Span:
    line: int  # the [[budget]] header's line
    lines: tuple[str, ...]  # the entry's text, header included

    def key_lines(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for offset, text in enumerate(self.lines):
            match = re.match(r"\s*[\"']?([A-Za-z0-9_-]+)[\"']?\s*=", text)
            if match:
                found.setdefault(match.group(1), self.line + offset)
        return found


def _entry_spans(text: str, is_pyproject: bool, count: int) -> list[_Span]:
    header = (r"\s*\[\[\s*tool\s*\.\s*archstat\s*\.\s*budget\s*\]\]" if is_pyproject
              else r"\s*\[\[\s*budget\s*\]\]")
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(header, line)]
    spans = []
    for start in starts:
        end = next((j for j in range(start + 1, len(lines)) if re.match(r"\s*\[", lines[j])),
                   len(lines))
        spans.append(_Span(start + 1, tuple(lines[start:end])))
    # an inline array (budget = [{...}]) has no headers: point at line 1
    return spans + [_Span(1, ())] * (count - len(spans))


def _key_line(text: str, key: str) -> int:
    lines = text.splitlines()
    pattern = rf"\s*[\"']?{re.escape(key)}[\"']?\s*[=.]|\s*\[+\s*{re.escape(key)}\b"
    return next((i + 1 for i, text in enumerate(lines) if re.match(pattern, text)), 1)


# --- one entry

@dataclass
class _EntryReader:
    """Validates one raw ``[[budget]]`` table; every problem names its file:line."""

    index: int
    raw: dict[str, Any]
    span: _Span
    display: str

    def __post_init__(self) -> None:
        self.key_lines = self.span.key_lines()
        model = self.raw.get("model")
        self.context = f"budget {self.index}" + (f" ({model})" if isinstance(model, str) else "")

    def fail(self, key: str | None, problem: str) -> ArchstatError:
        line = self.key_lines.get(key, self.span.line) if key else self.span.line
        return BudgetFileError(self.display, line,
                               f"{self.context}{f' {key}' if key else ''}: {problem}")

    def read(self, base: Path) -> BudgetEntry:
        for key in self.raw:
            if key not in ENTRY_KEYS:
                raise self.fail(key, f"unknown key{did_you_mean(key, ENTRY_KEYS)}; "
                                     f"known keys: {', '.join(ENTRY_KEYS)}")
        model, limits = self.model(), self.limits()
        if not limits and "baseline" not in self.raw:
            raise self.fail(None, f"sets no limit; add one of {', '.join(LIMIT_KEYS)} "
                                  f"or a baseline")
        return BudgetEntry(
            index=self.index, label=self.string("name") or model, model=model,
            input_shape=self.input_shape(), batch=self.batch(),
            convention=self.convention(), dtype=self.dtype(), limits=limits,
            baseline=self.baseline(base), tolerance=self.tolerance(),
            line=self.span.line, key_lines=self.key_lines, optimizer=self.optimizer(limits),
            device=self.device(limits, base))

    def model(self) -> str:
        model = self.raw.get("model")
        if not isinstance(model, str) or not model.strip():
            raise self.fail("model" if "model" in self.raw else None,
                            'needs model = "NAME" (a zoo name or package.module:callable)')
        return model.strip()

    def limits(self) -> tuple[Limit, ...]:
        limits = []
        for key in LIMIT_KEYS:
            if key in self.raw:
                try:
                    limits.append(make_limit(key, self.raw[key],
                                              self.key_lines.get(key, self.span.line)))
                except ArchstatError as exc:
                    raise self.fail(key, str(exc)) from None
        return tuple(limits)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_toml_type(value)}")
        return value

    def optimizer(self, limits: tuple[Limit, ...]) -> str | None:
        from archstat.training import OPTIMIZERS

        name = self.string("optimizer")
        if name is None:
            return None
        if not any(limit.metric in TRAIN_METRICS for limit in limits):
            raise self.fail("optimizer", "an optimizer only counts with max_train_flops")
        if name not in OPTIMIZERS:
            raise self.fail("optimizer", f"unknown optimizer {name!r}"
                                         f"{did_you_mean(name, OPTIMIZERS)}; choose one of "
                                         f"{', '.join(OPTIMIZERS)}")
        return name

    def device(self, limits: tuple[Limit, ...], base: Path) -> Any:
        from archstat.predictor import device_profile
        from archstat.predictor.profile import device_named

        predicts = any(limit.metric == "predicted_ms" for limit in limits)
        name = self.string("device")
        if name is None:
            if predicts:
                raise self.fail("max_predicted_ms", 'needs device = "NAME" (a device of the '
                                "table, e.g. H100, or a profile JSON file)")
            return None
        if not predicts:
            raise self.fail("device", "a device only counts with max_predicted_ms")
        try:
            beside = base / name
            is_file = not device_named(name) and (name.lower().endswith(".json")
                                                  or beside.is_file())
            profile = device_profile(beside if is_file else name)
            profile.check_dtype(self.dtype())
        except ArchstatError as exc:
            raise self.fail("device", str(exc)) from None
        return profile

    def batch(self) -> int:
        batch = self.raw.get("batch", 1)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
            raise self.fail("batch", f"expected a positive integer, got {batch!r}")
        return batch

    def convention(self) -> str:
        from archstat.conventions import get_convention

        convention = self.string("convention", "macs")
        try:
            return get_convention(convention).name
        except ArchstatError as exc:
            raise self.fail("convention", str(exc)) from None

    def dtype(self) -> str:
        from archstat.inputs import FLOAT_DTYPES, dtype_name

        dtype = self.string("dtype", "float32")
        try:
            return dtype_name(dtype, FLOAT_DTYPES, "the model's dtype")
        except ArchstatError as exc:
            raise self.fail("dtype", str(exc)) from None

    def input_shape(self) -> list[Any] | None:
        from archstat.inputs import parse_input

        value = self.raw.get("input")
        if value is None:
            return None
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts or not all(isinstance(v, str) for v in texts):
            raise self.fail("input", f'expected a shape such as "3x224x224" or "128:int64", or '
                                     f"a list of them, got {_toml_type(value)}")
        try:
            return [parse_input(text) for text in texts]
        except ArchstatError as exc:
            raise self.fail("input", str(exc)) from None

    def tolerance(self) -> Fraction:
        if "tolerance" not in self.raw:
            return Fraction(0)
        if "baseline" not in self.raw:
            raise self.fail("tolerance", "a tolerance applies to a baseline; set baseline too")
        try:
            return parse_percent(self.raw["tolerance"])
        except ArchstatError as exc:
            raise self.fail("tolerance", str(exc)) from None

    def baseline(self, base: Path) -> Path | None:
        if "baseline" not in self.raw:
            return None
        name = self.raw["baseline"]
        if not isinstance(name, str) or not name:
            raise self.fail("baseline", f"expected a file name, got {_toml_type(name)}")
        return base / name  # relative to the budget file, not to the shell's cwd


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return f"{names.get(type(value), type(value).__name__)} ({value!r})"


def _refuse_duplicate_labels(entries: list[BudgetEntry], display: str) -> None:
    seen: dict[str, BudgetEntry] = {}
    for entry in entries:
        if entry.label in seen:
            raise BudgetFileError(
                display, entry.line, f"budget {entry.index} ({entry.label}) repeats the "
                f"model of line {seen[entry.label].line}; give one of them a distinct "
                f"name = \"...\" so reports can tell them apart")
        seen[entry.label] = entry


def budget_toml(entries: list[dict[str, Any]], comment: str = "") -> str:
    """``[[budget]]`` tables as TOML text, keys in the given order; ``comment`` lines go
    on top. Values are strings or integers (JSON string escapes are valid TOML)."""
    import json

    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    for entry in entries:
        lines += ["", "[[budget]]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    return "\n".join(lines).lstrip("\n") + "\n"
