"""Human units for budgets: ``"1.6G"`` flops, ``"7M"`` params, ``"25MiB"`` or ``"25MB"``.

The one place that reads and writes them, so a budget file, the check table,
``archstat budget`` and ``archstat memory --fit`` agree. Prefixes: ``K`` (or ``k``),
``M``, ``G``, ``T``, ``P`` are powers of 1000; ``Ki``, ``Mi``, ``Gi``, ``Ti``, ``Pi``
are powers of 1024 and are only written before ``B``. ``B`` (bytes) is accepted only
for byte quantities. Values are exact: the text is read as a decimal, never a float,
so ``"1.6G"`` is 1,600,000,000. A value that is not a whole number (``"37.9MiB"`` is
39,741,030.4 bytes) is rounded down; every count is an integer, so a limit compared
with ``<=`` means the same thing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from archstat.errors import ArchstatError

_PREFIXES = ("", "K", "M", "G", "T", "P")
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([kKMGTP]?)(i?)(B?)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*%?")


def _scale(prefix: str, binary: bool) -> int:
    return (1024 if binary else 1000) ** _PREFIXES.index(prefix.upper())


def parse_quantity(value: int | float | str, unit: str = "") -> int:
    """A non-negative whole count from an int or a human string.

    ``unit`` is ``""`` for counts (flops, params) or ``"B"`` for bytes, where both
    ``25MB`` (25,000,000) and ``25MiB`` (26,214,400) are accepted.
    """
    if isinstance(value, bool):
        raise ArchstatError(f"expected a number, got {str(value).lower()}")
    if isinstance(value, int):
        if value < 0:
            raise ArchstatError(f"must not be negative, got {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ArchstatError(f"must be a non-negative number, got {value!r}")
        return math.floor(Fraction(value))
    if not isinstance(value, str):
        raise ArchstatError(f"expected a number or a string such as '1.6G', "
                            f"got {type(value).__name__}")
    return _parse_text(value, unit)


def _parse_text(text: str, unit: str) -> int:
    example = "'25MiB', '25MB' or 26214400" if unit else "'1.6G', '7M' or 1600000000"
    match = _QUANTITY.fullmatch(text.strip().replace("_", ""))
    if text.strip().startswith("-"):
        raise ArchstatError(f"must not be negative, got {text!r}")
    if not match:
        raise ArchstatError(f"cannot read {text!r}; expected e.g. {example}")
    number, prefix, binary, byte = match.groups()
    if byte and not unit:
        raise ArchstatError(f"{text!r} is a byte size, but this limit is a count; "
                            f"write it without 'B', e.g. '1.6G'")
    if binary and not (prefix and byte):
        raise ArchstatError(f"cannot read {text!r}; binary prefixes are written "
                            f"KiB, MiB, GiB, TiB")
    return math.floor(Decimal(number) * _scale(prefix, bool(binary)))


def parse_int_list(value: int | str | Sequence[int], what: str) -> list[int]:
    """``8``, ``"1,32,256"`` or ``[1, 32]`` -> a non-empty list of positive integers.
    ``what`` names the list in errors (``"--batch-sizes"``)."""
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",")]
    elif isinstance(value, int):
        items = [value]
    else:
        items = list(value)
    if not items:
        raise ArchstatError(f"{what}: none given; expected positive integers, e.g. 1,8,32")
    numbers = []
    for item in items:
        number = _positive_int(item)
        if number is None:
            raise ArchstatError(f"{what}: {item!r} is not a positive integer; "
                                f"expected e.g. 1,8,32")
        numbers.append(number)
    return numbers


def _positive_int(item: object) -> int | None:
    if isinstance(item, str) and item.isascii() and item.isdigit():
        item = int(item)
    if isinstance(item, int) and not isinstance(item, bool) and item > 0:
        return item
    return None


def _exact(value: int, scale: int) -> str:
    """``value / scale`` written exactly in decimal (scale is a power of 1000 or 1024,
    whose reciprocal always has a finite decimal expansion)."""
    whole, rest = divmod(value, scale)
    if not rest:
        return str(whole)
    digits = ""
    while rest:
        rest *= 10
        digit, rest = divmod(rest, scale)
        digits += str(digit)
    return f"{whole}.{digits}"


def format_quantity(value: int, unit: str = "", binary: bool | None = None) -> str:
    """The shortest exact human spelling of a whole count: ``1600000000`` -> ``1.6G``,
    ``26214400`` bytes -> ``25MiB``; :func:`parse_quantity` reads it back to ``value``.

    Counts use powers of 1000. Bytes use MB with ``binary=False``, MiB with ``True``, and
    by default whichever is shorter (MB on a tie).
    """
    if value < 0:
        return "-" + format_quantity(-value, unit, binary)
    if not unit or binary is not None:
        return _spell(value, unit, binary=bool(unit and binary))
    return min((_spell(value, unit, binary=False), _spell(value, unit, binary=True)), key=len)


def is_binary(text: str) -> bool:
    """Whether a human value is written with a binary prefix (``"25MiB"``)."""
    return "iB" in text


def _spell(value: int, unit: str, binary: bool) -> str:
    base = 1024 if binary else 1000
    index = 0
    while index < len(_PREFIXES) - 1 and value >= base ** (index + 1):
        index += 1
    prefix = _PREFIXES[index] + ("i" if binary and index else "")
    return f"{_exact(value, base ** index)}{prefix}{unit}"


def round_up_quantity(value: int, digits: int = 3, unit: str = "") -> str:
    """The smallest human value with at most ``digits`` significant digits that is
    ``>= value``: ``1582671872`` -> ``1.59G``. With three digits the headroom it leaves
    is under 1%, which is how ``archstat budget`` writes tight budgets. Bytes are
    rounded in MB (powers of 1000) so the limit is a whole number of bytes."""
    if digits < 1:
        raise ArchstatError(f"digits must be at least 1, not {digits}")
    if value <= 0:
        return f"0{unit}"
    step = 10 ** max(len(str(value)) - digits, 0)
    return format_quantity(-(-value // step) * step, unit)


def parse_percent(value: int | float | str) -> Fraction:
    """A tolerance in percent: ``"0.5%"``, ``"0.5"`` or ``0.5`` -> 1/2 (exact)."""
    if isinstance(value, bool):
        raise ArchstatError(f"expected a percentage, got {str(value).lower()}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ArchstatError(f"a tolerance must be a non-negative percentage, got {value!r}")
        return Fraction(Decimal(str(value)))
    match = _PERCENT.fullmatch(str(value).strip())
    if not match:
        raise ArchstatError(f"cannot read tolerance {value!r}; expected e.g. '0.5%'")
    return Fraction(Decimal(match.group(1)))


def format_percent(value: Fraction, places: int = 2) -> str:
    """``Fraction(1, 2)`` -> ``0.5%``: rounded to ``places`` decimals, trailing zeros
    dropped; a value too small to show is ``<0.01%``, never a misleading ``0%``."""
    text = f"{float(value):.{places}f}".rstrip("0").rstrip(".")
    if text == "0" and value:
        return f"<{Fraction(1, 10 ** places).__float__():.{places}f}%"
    return f"{text}%"


def human(value: Any, unit: str = "", base: int = 1000, digits: int = 3) -> str:
    """A number as people read it: ``15470264320`` -> ``15.5G``; with ``base=1024`` and
    unit ``B``, ``1.2MiB``. (Display only: budgets are exact, see :func:`format_quantity`.)"""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    prefixes = ["", "K", "M", "G", "T", "P", "E", "Z", "Y"]
    scaled, index = float(value), 0
    while abs(scaled) >= base and index < len(prefixes) - 1:
        scaled /= base
        index += 1
    exact = index == 0 and float(value).is_integer()
    # 999,999 rounds to 1000K at 3 digits (printed 1e+03K): that is 1M
    if (not exact and abs(float(f"{scaled:.{digits}g}")) >= min(base, 10**digits)
            and index < len(prefixes) - 1):
        scaled /= base
        index += 1
    prefix = prefixes[index] + ("i" if base == 1024 and index else "")
    text = str(int(value)) if exact else f"{scaled:.{digits}g}"
    return f"{text}{prefix}{unit}"


def human_bytes(value: Any) -> str:
    """Bytes with binary prefixes: ``1.2MiB``."""
    return human(value, "B", base=1024)
