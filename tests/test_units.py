"""Human units of budgets: parsing, exact formatting, rounding up, percentages."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archstat.errors import ArchstatError
from archstat.units import (
    format_percent,
    format_quantity,
    human,
    human_bytes,
    parse_int_list,
    parse_percent,
    parse_quantity,
    round_up_quantity,
)

counts = st.integers(min_value=0, max_value=10**18)


@given(counts, st.sampled_from(["", "B"]), st.sampled_from([None, False, True]))
def test_format_then_parse_is_the_identity(value: int, unit: str, binary: bool | None) -> None:
    text = format_quantity(value, unit, binary)
    assert parse_quantity(text, unit) == value


@given(counts, st.integers(min_value=1, max_value=6), st.sampled_from(["", "B"]))
def test_round_up_is_tight_and_never_below(value: int, digits: int, unit: str) -> None:
    limit = parse_quantity(round_up_quantity(value, digits, unit), unit)
    assert limit >= value
    # at most `digits` significant digits, so less than one unit of the last digit above
    assert limit - value < 10 ** max(len(str(value)) - digits, 0)
    assert len(str(limit).rstrip("0")) <= digits or limit == value


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("1.6G", "", 1_600_000_000),
        ("7M", "", 7_000_000),
        ("25MiB", "B", 25 * 1024**2),
        ("25MB", "B", 25_000_000),
        ("25M", "B", 25_000_000),
        ("1.5KiB", "B", 1536),
        ("37.9MiB", "B", 39_741_030),  # 39,741,030.4 bytes, rounded down
        ("2k", "", 2000),
        (".5K", "", 500),
        ("1_600_000_000", "", 1_600_000_000),
        (" 1.6 G ", "", 1_600_000_000),
        ("0", "", 0),
        (4089184256, "", 4089184256),
        (1.6e9, "", 1_600_000_000),
    ],
)
def test_parse_examples(text, unit, value) -> None:
    assert parse_quantity(text, unit) == value


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        ("1.6GB", "", "is a byte size, but this limit is a count"),
        ("7Mi", "", "binary prefixes are written KiB"),
        ("7Mi", "B", "binary prefixes are written KiB"),
        ("-5M", "", "must not be negative"),
        (-5, "", "must not be negative"),
        (True, "", "expected a number, got true"),
        ([1], "", "got list"),
        ("1.6 gigaflops", "", "cannot read '1.6 gigaflops'"),
        ("1.6m", "", "cannot read"),  # milli is not a thing for counts
        (float("inf"), "", "non-negative number"),
    ],
)
def test_parse_rejects(value, unit, message) -> None:
    with pytest.raises(ArchstatError, match=message):
        parse_quantity(value, unit)


def test_parse_int_list() -> None:
    assert parse_int_list("1, 32,256", "batch") == [1, 32, 256]
    assert parse_int_list(8, "batch") == parse_int_list([8], "batch") == [8]
    for bad, item in (("0", "'0'"), ("1,-2", "'-2'"), ("x", "'x'"), ("1.5", "'1.5'"),
                      ("", "''"), ("1,,2", "''"), ([True], "True"), ([2.0], "2.0")):
        with pytest.raises(ArchstatError, match=f"^--batch-sizes: {item} is not a positive "
                                                f"integer; expected e.g. 1,8,32$"):
            parse_int_list(bad, "--batch-sizes")
    with pytest.raises(ArchstatError, match="batch: none given"):
        parse_int_list([], "batch")


def test_format_examples() -> None:
    assert format_quantity(1_582_671_872) == "1.582671872G"
    assert format_quantity(26_214_400, "B") == "25MiB"  # shorter than 26.2144MB
    assert format_quantity(25_000_000, "B") == "25MB"
    assert format_quantity(26_214_400, "B", binary=False) == "26.2144MB"
    assert format_quantity(999) == "999"
    assert format_quantity(-1) == "-1"
    assert round_up_quantity(1_582_671_872) == "1.59G"
    assert round_up_quantity(39_649_056, unit="B") == "39.7MB"
    assert round_up_quantity(9_991) == "10K"


def test_percent() -> None:
    assert parse_percent("0.5%") == Fraction(1, 2)
    assert parse_percent("0.5") == parse_percent(0.5) == Fraction(1, 2)
    assert parse_percent(0.1) == Fraction(1, 10)  # exact, not the float 0.1
    assert format_percent(Fraction(1, 2)) == "0.5%"
    assert format_percent(Fraction(1, 10**9)) == "<0.01%"
    with pytest.raises(ArchstatError, match="cannot read tolerance"):
        parse_percent("half")
    with pytest.raises(ArchstatError, match="non-negative"):
        parse_percent(-1)


@pytest.mark.parametrize(("value", "decimal", "binary"), [
    (999_999, "1M", "977KiB"),  # rounds up to the next prefix, never "1e+03K"
    (999_499, "999K", "976KiB"),
    (1_047_552, "1.05M", "0.999MiB"),  # 1023 KiB: "1.02e+03KiB" before
    (1_024_000, "1.02M", "0.977MiB"),
    (999.5, "1K", "0.976KiB"),
    (1000, "1K", "1000B"),  # a whole number of bytes below 1 KiB stays exact
])
def test_human_rounds_into_the_next_prefix(value: float, decimal: str, binary: str) -> None:
    assert (human(value), human_bytes(value)) == (decimal, binary)
