"""Tests for simlab.units: durations with units in, short human form out."""

from __future__ import annotations

import math

import pytest

from simlab.units import ALLOWED, format_duration, parse_duration

# --- parse_duration: accepted forms ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("100us", 1e-4),
        ("200ms", 0.2),
        ("30s", 30.0),
        ("30sec", 30.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1e3ms", 1.0),
        ("45", 45.0),
        ("2.5", 2.5),
        ("  2 h ", 7200.0),
        ("2H", 7200.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration_units(text, seconds):
    value = parse_duration(text)
    assert isinstance(value, float)
    assert value == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(("number", "seconds"), [(30, 30.0), (0, 0.0), (1.5, 1.5), (0.2, 0.2)])
def test_parse_duration_plain_numbers_are_seconds(number, seconds):
    value = parse_duration(number)
    assert isinstance(value, float)
    assert value == seconds


def test_allowed_lists_every_unit():
    for unit in ("us", "ms", "s", "m", "h", "d"):
        assert unit in ALLOWED


# --- parse_duration: rejections ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [True, False, "3x", None, [], {}, "inf", "", "1h30m", "ms", "s30", "5 s s", "--5s"],
    ids=repr,
)
def test_parse_duration_rejects_with_allowed_forms(bad):
    with pytest.raises(ValueError) as info:
        parse_duration(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "expected a duration" in message
    assert ALLOWED in message  # says what is allowed: seconds or a number with a unit


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=repr)
def test_parse_duration_rejects_non_finite_numbers(bad):
    with pytest.raises(ValueError, match="finite duration"):
        parse_duration(bad)


def test_parse_duration_rejects_overflowing_string():
    # '1e400s' parses to inf: must be rejected as not finite, not returned
    with pytest.raises(ValueError, match="finite"):
        parse_duration("1e400s")


def test_parse_duration_huge_integer_is_a_value_error():
    with pytest.raises(ValueError):
        parse_duration(10**400)


# --- format_duration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "200ms"),
        (90.0, "1.5m"),
        (7200.0, "2h"),
        (1e-4, "100us"),
        (0, "0s"),
        (1.5, "1.5s"),
        (30.0, "30s"),
        (172800.0, "2d"),
        (None, "none"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.2, 1e-4, 1.5, 30.0, 90.0, 300.0, 7200.0, 86400.0, 1234.5678])
def test_format_then_parse_round_trip(seconds):
    # four significant digits: exact for round values, within 5e-4 relative otherwise
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=5e-4)


@pytest.mark.parametrize("text", ["200ms", "30s", "5m", "2h", "1d", "1.5s", "100us"])
def test_parse_then_format_round_trip(text):
    assert format_duration(parse_duration(text)) == text
