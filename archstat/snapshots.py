"""Snapshots of per-layer analyses, and layer-by-layer diffs of models against them.

A snapshot is JSON: ``{"archstat_snapshot": 2, "archstat_version", "torch_version",
"models": [Analysis.data(), ...]}``, so it holds every layer's ``params``
(elements), ``activation_bytes`` (bytes) and ``flops`` (in the unit of the recorded
``convention``). A diff re-analyses each model with the recorded input, batch,
convention and dtype, so the two sides always count the same way.

Layers are matched by aligning the two sequences with :class:`difflib.SequenceMatcher`
(see :func:`align_layers`): a block inserted in the middle is reported as added layers,
and the layers after it still pair with their old selves, even when the insertion
renumbers them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from archstat._version import __version__
from archstat.display import Display
from archstat.errors import ArchstatError, did_you_mean
from archstat.units import format_percent

#: 2: parameters counted by data flow and activation_bytes as allocated storage (format 1
#: counted layer outputs), with peak_activation_bytes beside it.
SNAPSHOT_FORMAT = 2
#: Totals a diff compares and a baseline guards, with their units ("" counts, "B" bytes).
TOTAL_METRICS = {"flops": "", "params": "", "activation_bytes": "B",
                 "peak_activation_bytes": "B"}
LAYER_METRICS = ("params", "flops", "activation_bytes")


def snapshot(
    models: Sequence[str],
    input_shape: Any = None,
    batch: int = 1,
    convention: str = "macs",
    dtype: str = "float32",
) -> dict[str, Any]:
    """Analyse ``models`` and return the snapshot document (see the module docstring)."""
    import torch

    from archstat.analysis import analyze

    if not models:
        raise ArchstatError("name at least one model to snapshot")
    analyses = [analyze(m, input_shape=input_shape, batch=batch, convention=convention,
                        dtype=dtype) for m in dict.fromkeys(models)]
    return {
        "archstat_snapshot": SNAPSHOT_FORMAT,
        "archstat_version": __version__,
        "torch_version": torch.__version__,
        "models": [a.data() for a in analyses],
    }


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot; ``models`` maps each model's label to its analysis dict."""

    display: str
    archstat_version: str
    torch_version: str
    models: dict[str, dict[str, Any]]

    def record(self, model: str) -> dict[str, Any]:
        try:
            return self.models[model]
        except KeyError:
            raise ArchstatError(
                f"{self.display} has no model {model!r}{did_you_mean(model, self.models)}; "
                f"it holds {', '.join(self.models)}") from None


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot file written by ``archstat snapshot``."""
    display = Path(path).as_posix()
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArchstatError(f"snapshot {display!r} not found; make one with "
                            f"`archstat snapshot MODEL... -o {display}`") from None
    except json.JSONDecodeError as exc:
        raise ArchstatError(f"{display}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchstatError(f"cannot read snapshot {display!r}: {exc}") from None
    if not isinstance(document, dict) or "archstat_snapshot" not in document:
        raise ArchstatError(f"{display} is not an archstat snapshot; make one with "
                            f"`archstat snapshot MODEL... -o {display}`")
    if document["archstat_snapshot"] != SNAPSHOT_FORMAT:
        raise ArchstatError(f"{display} has snapshot format {document['archstat_snapshot']}; "
                            f"this archstat reads format {SNAPSHOT_FORMAT}; write it again "
                            "with `archstat snapshot`")
    models = _models(document, display)
    return Snapshot(display, str(document.get("archstat_version")),
                    str(document.get("torch_version")), {m["model"]: m for m in models})


# --- snapshot schema: a hand-edited or truncated file is one precise message, not a
# KeyError deep inside a diff

_RECORD_KEYS = {"input_shape": (list, "an array"), "inputs": (list, "an array"),
                "batch": (int, "an integer"), "convention": (str, "a string"),
                "dtype": (str, "a string"), "totals": (dict, "an object"),
                "layers": (list, "an array")}
_LAYER_KEYS = {"name": (str, "a string"), "type": (str, "a string"),
               **{m: (int, "an integer") for m in LAYER_METRICS}}


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return f"{names[type(value)]} ({json.dumps(value)[:40]})"


def _expect(display: str, name: str, value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ArchstatError(f"{display}: {name}: expected {what}, got {_json_type(value)}")
    return value


def _field(display: str, container: dict[str, Any], prefix: str, key: str, kind: type,
           what: str) -> Any:
    if key not in container:
        raise ArchstatError(f"{display}: {prefix}{key} is missing")
    return _expect(display, f"{prefix}{key}", container[key], kind, what)


def _models(document: dict[str, Any], display: str) -> list[dict[str, Any]]:
    """The document's model records, each checked for what a diff reads from it."""
    models = _field(display, document, "", "models", list, "an array of models")
    if not models:
        raise ArchstatError(f"{display} holds no model; make one with "
                            f"`archstat snapshot MODEL... -o {display}`")
    for i, record in enumerate(models):
        _expect(display, f"models[{i}]", record, dict, "an object")
        model = _field(display, record, f"models[{i}].", "model", str, "a string")
        for key, (kind, what) in _RECORD_KEYS.items():
            _field(display, record, f"model {model!r} ", key, kind, what)
        shapes = record["input_shape"]
        shapes = shapes if shapes and isinstance(shapes[0], list) else [shapes]
        for shape in shapes:  # one shape without batch, or a list of them for several inputs
            if not isinstance(shape, list) or not shape or not all(
                    isinstance(d, int) and d > 0 for d in shape):
                raise ArchstatError(f"{display}: model {model!r} input_shape: expected a "
                                    f"shape such as [3, 224, 224], got {_json_type(shape)}")
        for metric in TOTAL_METRICS:
            _field(display, record["totals"], f"model {model!r} totals.", metric, int,
                   "an integer")
        for j, layer in enumerate(record["layers"]):
            _expect(display, f"model {model!r} layers[{j}]", layer, dict, "an object")
            for key, (kind, what) in _LAYER_KEYS.items():
                _field(display, layer, f"model {model!r} layers[{j}].", key, kind, what)
    return models


def recorded_settings(record: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot's model was analysed with: input_shape (input spec strings, see
    :mod:`archstat.inputs`), batch, convention, dtype."""
    from archstat.inputs import InputSpec

    specs = [InputSpec(tuple(i["shape"]), None if i["dtype"] == record["dtype"] else i["dtype"],
                       i["name"]).text() for i in record["inputs"]]
    return {"input_shape": specs, "batch": record["batch"],
            "convention": record["convention"], "dtype": record["dtype"]}


def analysis_settings(analysis: Any) -> dict[str, Any]:
    """The settings of an Analysis, in the form of :func:`recorded_settings`."""
    return {"input_shape": [s.text() for s in analysis.input_specs], "batch": analysis.batch,
            "convention": analysis.convention.name, "dtype": analysis.dtype}


def settings_text(settings: dict[str, Any]) -> str:
    shapes = ", ".join(settings["input_shape"])
    return (f"input {shapes}, batch {settings['batch']}, {settings['dtype']}, "
            f"convention {settings['convention']}")


# --- layer alignment

@dataclass(frozen=True)
class LayerChange:
    """One layer that differs: ``change`` is added, removed or changed; ``before`` and
    ``after`` are the layer's rows (None for the side where it does not exist)."""

    change: str
    name: str
    type: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def delta(self, metric: str) -> int:
        """after - before, in the metric's unit (a missing side counts as 0)."""
        return (self.after or {}).get(metric, 0) - (self.before or {}).get(metric, 0)


def _renumbered(name: str) -> str:
    # a layer inserted into an nn.Sequential renumbers every later sibling (features.10
    # becomes features.12); they must still pair with their old selves
    return re.sub(r"(?<![^.])\d+(?![^.])", "#", name)


def _counts(layer: dict[str, Any]) -> tuple[Any, ...]:
    shapes = json.dumps([layer.get("input_shape"), layer.get("output_shape")])
    return (*(layer.get(k) for k in LAYER_METRICS), shapes)


#: Alignment keys, strictest first: identical layer under its own name, identical layer
#: renumbered, then the same kind of layer in the same place (a changed layer).
_KEYS = (
    lambda layer: (layer["name"], layer["type"], *_counts(layer)),
    lambda layer: (_renumbered(layer["name"]), layer["type"], *_counts(layer)),
    lambda layer: (_renumbered(layer["name"]), layer["type"]),
)


def _opcodes(before: Sequence[Any], after: Sequence[Any], key: Any) -> list[Any]:
    # autojunk would treat frequent keys (the many "features.# Conv2d") as noise in
    # models with 200+ layers and misalign them
    matcher = difflib.SequenceMatcher(None, [key(x) for x in before], [key(x) for x in after],
                                      autojunk=False)
    return matcher.get_opcodes()


def align_layers(
    before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]], level: int = 0
) -> tuple[list[LayerChange], int]:
    """The changed, added and removed layers in model order, and how many are unchanged.

    The sequences are aligned on the strictest key of ``_KEYS`` first; what is left
    between matched stretches is aligned again on the next key. So an inserted block is
    exactly its own layers, even when it renumbers the layers after it, and a layer
    that changed pairs with its old self by name and type as ``changed``.
    """
    changes: list[LayerChange] = []
    unchanged = 0
    for tag, i1, i2, j1, j2 in _opcodes(before, after, _KEYS[level]):
        old, new = before[i1:i2], after[j1:j2]
        if tag == "equal":
            for o, n in zip(old, new, strict=True):
                if _counts(o) != _counts(n):
                    changes.append(LayerChange("changed", n["name"], n["type"], o, n))
                else:
                    unchanged += 1
        elif level + 1 < len(_KEYS):
            more, same = align_layers(old, new, level + 1)
            changes += more
            unchanged += same
        else:
            changes += [LayerChange("removed", r["name"], r["type"], r, None) for r in old]
            changes += [LayerChange("added", r["name"], r["type"], None, r) for r in new]
    return changes, unchanged


def growth_limit(before: int, tolerance: Fraction) -> int:
    """The largest whole value that is at most ``tolerance`` percent above ``before``."""
    return int(before * (100 + tolerance) // 100)


# --- diffs

@dataclass(frozen=True)
class ModelDiff:
    """One model against its snapshot record. ``totals`` maps each of TOTAL_METRICS to
    (before, after); ``exceeded`` lists the totals that grew beyond the tolerance."""

    model: str
    settings: dict[str, Any]
    changes: list[LayerChange]
    unchanged: int
    totals: dict[str, tuple[int, int]]
    tolerance: Fraction
    exceeded: list[str] = field(default_factory=list)

    def largest_growth(self, metric: str, count: int = 3) -> list[LayerChange]:
        """The layers whose ``metric`` grew most, largest first (ties in model order)."""
        grown = [c for c in self.changes if c.delta(metric) > 0]
        return sorted(grown, key=lambda c: -c.delta(metric))[:count]


def diff_model(record: dict[str, Any], analysis: Any, tolerance: Fraction = Fraction(0)) \
        -> ModelDiff:
    """Compare an :class:`~archstat.analysis.Analysis` with a snapshot record of the
    same model and settings."""
    changes, unchanged = align_layers(record["layers"], analysis.data()["layers"])
    totals = {m: (int(record["totals"][m]), int(analysis.totals[m])) for m in TOTAL_METRICS}
    exceeded = [m for m, (old, new) in totals.items() if new > growth_limit(old, tolerance)]
    return ModelDiff(analysis.model, recorded_settings(record), changes, unchanged, totals,
                     tolerance, exceeded)


def analyze_recorded(record: dict[str, Any], model: str | None = None) -> Any:
    """Analyse ``model`` (default: the recorded one) with a record's settings."""
    from archstat.analysis import analyze

    return analyze(model or record["model"], **recorded_settings(record))


@dataclass(frozen=True)
class DiffReport(Display):
    """Every compared model; ``notes`` says when the snapshot came from other versions
    of archstat or torch (counts can then differ for reasons outside the model)."""

    baseline: str
    tolerance: Fraction
    models: list[ModelDiff]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        """1 when a total of any model grew beyond the tolerance, else 0."""
        return 1 if any(m.exceeded for m in self.models) else 0


def diff(
    baseline: str | Path, models: Sequence[str] | None = None, tolerance: Fraction | str = "0"
) -> DiffReport:
    """Compare ``models`` (default: every model in the snapshot) with ``baseline``.
    ``tolerance`` is the growth of a total, in percent, that still passes."""
    import torch

    from archstat.units import parse_percent

    tol = tolerance if isinstance(tolerance, Fraction) else parse_percent(tolerance)
    snap = load_snapshot(baseline)
    records = [snap.record(m) for m in dict.fromkeys(models or snap.models)]
    diffs = [diff_model(r, analyze_recorded(r), tol) for r in records]
    notes = [f"{snap.display} was made with {tool} {old}, this is {tool} {new}"
             for tool, old, new in (("archstat", snap.archstat_version, __version__),
                                    ("torch", snap.torch_version, torch.__version__))
             if old != new]
    return DiffReport(snap.display, tol, diffs, notes)


def growth_text(before: int, after: int) -> str:
    """``+2.23%`` style relative change ('new' when before is 0)."""
    if before == 0:
        return "new" if after else "+0%"
    pct = Fraction(after - before, before) * 100
    sign = "+" if pct >= 0 else "-"
    return sign + format_percent(abs(pct))
