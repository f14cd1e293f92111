"""Durations with units: ``200ms``, ``30s``, ``5m``, ``2h``, ``1d`` or plain seconds.

Every time inside simlab is a float number of seconds; this module is the one
place that turns what people write in scenario files into that number, and back.
"""

from __future__ import annotations

import math
import re

_UNITS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PATTERN = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")
ALLOWED = "a number of seconds or a number with a unit: " + ", ".join(_UNITS)
# Rates are per connection-hour in the data; shown per connection-<unit>: hours in a unit.
RATE_UNITS = {"hour": 1.0, "day": 24.0, "week": 168.0, "month": 720.0, "year": 8760.0}


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ValueError saying what is allowed."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({ALLOWED}), got {value!r}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError(
                f"expected a finite duration, got a {len(str(value))}-digit number"
            ) from None
    elif isinstance(value, str):
        match = _PATTERN.match(value.lower())
        if not match or match.group(2) not in _UNITS | {"": 1.0}:
            raise ValueError(f"expected a duration ({ALLOWED}), got {value!r}")
        seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    else:
        raise ValueError(f"expected a duration ({ALLOWED}), got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form: 0.2 -> '200ms', 90 -> '1.5m', 7200 -> '2h'."""
    if seconds is None:
        return "none"
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        if abs(seconds) >= size:
            return f"{seconds / size:.4g}{unit}"
    return f"{seconds * 1e6:.4g}us"
