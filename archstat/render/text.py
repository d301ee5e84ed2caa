"""Numbers, shapes and ratios as people read them: the one place archstat formats a value
for a human. CSV and JSON never go through here; they carry the exact values."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def missing(value: Any) -> bool:
    """None or NaN: a cell with nothing to show."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def shape_str(shape: Any) -> str:
    """``(1, 3, 224, 224)`` -> ``1x3x224x224``; None -> ``""``."""
    if missing(shape):
        return ""
    return "x".join(str(int(d)) for d in shape)


from archstat.units import human, human_bytes  # noqa: E402,F401  (one formatter for both)


def ratio(value: Any) -> str:
    """A ratio to the first model of a comparison: ``19.8x``, ``0.28x``; blank where there
    is none or it is exactly 1. Findings word ratios with this too, so that a sentence and
    its table agree."""
    if missing(value) or value == 1:
        return ""
    return f"{value:.2f}x" if value < 1 else f"{value:.1f}x"


def times(value: Any) -> str:
    """A measured ratio (latency, FLOPs): ``3.03x``, ``0.00352x``."""
    if missing(value):
        return ""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3g}x"


def saving(value: Any) -> str:
    """A saving ratio (alternative / built) as ``9.68x (89.7%)``: times cheaper, and the
    share of the alternative's cost saved (negative when the built layers cost more)."""
    if missing(value):
        return ""
    return f"{value:.3g}x ({1 - 1 / value:.1%})"


def significant(digits: int) -> Any:
    """A formatter to ``digits`` significant digits, never in exponent form for large
    values (timings, rates)."""
    def fmt(value: Any) -> str:
        if missing(value):
            return ""
        return f"{value:.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"

    return fmt


def slide_number(value: Any) -> str:
    """Round like the lecture's slides: whole numbers with thousands separators; a
    non-zero value below 1 keeps one significant digit (a pool's 0.4 MFLOP)."""
    if missing(value):
        return ""
    if 0 < abs(value) < 1:
        return format(Decimal(f"{value:.1g}"), "f")  # 0.4, 0.00006: never 6e-05
    return f"{int(value + 0.5):,}"  # half up, as the slides round


def paper_k(value: Any) -> str:
    """Params as GoogLeNet's Table 1 prints them: thousands of 1024, e.g. 2.7K, 159K."""
    return "" if missing(value) else _paper_unit(value / 1024, "K")


def paper_m(value: Any) -> str:
    """Ops as Table 1 prints them: millions, e.g. 34M, 1M."""
    return "" if missing(value) else _paper_unit(value / 1e6, "M")


def _paper_unit(scaled: float, unit: str) -> str:
    if scaled == 0:
        return "0"
    return f"{scaled:.2g}{unit}" if scaled < 10 else f"{int(scaled + 0.5)}{unit}"


def exact(value: Any) -> str:
    """An exact integer with thousands separators: ``11,174,215,680``."""
    return "" if missing(value) else f"{value:,}"


def signed(value: int) -> str:
    """An exact integer with its sign: ``+301,989,888``, ``-26``, ``0``."""
    return f"{value:+,}" if value else "0"


def plural(count: int, noun: str) -> str:
    """``1 layer``, ``2 layers``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def text(value: Any) -> str:
    """Any other value: a shape as ``1x3x224x224``, nothing for None."""
    if missing(value):
        return ""
    if isinstance(value, tuple):
        return shape_str(value)
    return str(value)
