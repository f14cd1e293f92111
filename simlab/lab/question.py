"""The chooser's question: bounds on detection and false disconnects, a middlebox to keep
open, and the cost to minimize; parsed once, with every problem reported together.

- rates: ``N/conn-hour`` ... ``N/conn-year`` (:func:`parse_rate`), shown in the question's unit;
- the middlebox: ``--nat-timeout`` or ``--behind`` a row of ``data/middleboxes.csv``;
- :func:`constraints` turns the raw question into a :class:`Constraints`, or raises
  :class:`ChooseError` listing every problem.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from simlab.errors import ScenarioError
from simlab.scenario import fielddata
from simlab.scenario.reader import Reader
from simlab.units import RATE_UNITS, format_duration

_UNIT_NAMES = {
    "h": "hour",
    "hr": "hour",
    "hour": "hour",
    "d": "day",
    "day": "day",
    "w": "week",
    "wk": "week",
    "week": "week",
    "mo": "month",
    "month": "month",
    "y": "year",
    "yr": "year",
    "year": "year",
}
_RATE = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?:/|per\s)\s*(?:conn(?:ection)?s?[-_ ]?)?([a-z]+)\s*$"
)
RATE_ALLOWED = "a count per connection-time: N/conn-hour, N/conn-day, N/conn-week, N/conn-month (30 days) or N/conn-year, e.g. 1/conn-month"

OBJECTIVES = {
    "bytes": ("overhead_bytes_per_conn_hour", "heartbeat bytes per connection-hour"),
    "wakeups": ("wakeups_per_conn_hour", "radio wake-ups per connection-hour"),
    "messages": ("overhead_msgs_per_conn_hour", "heartbeat messages per connection-hour"),
}
DETECTION = ("p95", "p99", "max", "p50", "mean")
FALSE_DISCONNECTS = "false_disconnects_per_conn_hour"
NAT_ALLOWANCE_S = 1.0  # delay variation and one retransmission between two refreshes
# refresh values of data/middleboxes.csv, and which heartbeat packets renew each
REFRESH = ("outbound", "both", "any-data", "downstream", "none", "unknown")


def seconds(value: float | None) -> str:
    """A duration for people: '200 ms', '45 s', '2.5 s' below two minutes, else '5m', '2h'."""
    if value is None or math.isnan(value):
        return "unknown"
    if 0 < abs(value) < 1:
        return f"{value * 1000:.3g} ms"
    if abs(value) < 120:
        return f"{value:.3g} s"
    return format_duration(value)


def amount(value: float) -> str:
    """A count or cost: '20,270', '239.7', '0.0123'."""
    if value is None or math.isnan(value):
        return "unknown"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


class ChooseError(ScenarioError):
    """Bad input to the chooser: every problem, with the option, the value and what is allowed."""


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """A rate of events per connection-hour, remembered with the unit it was written in."""

    per_hour: float
    unit: str = "hour"

    def shown(self, per_hour: float | None = None) -> str:
        return format_rate(self.per_hour if per_hour is None else per_hour, self.unit)


def format_rate(per_hour: float, unit: str = "hour") -> str:
    if per_hour is None or (isinstance(per_hour, float) and math.isnan(per_hour)):
        return "unknown"
    return f"{per_hour * RATE_UNITS[unit]:.3g}/conn-{unit}"


def parse_rate(value) -> Rate:
    """``'1/conn-month'`` -> Rate(1/720, 'month'); a bare number is per connection-hour.

    Raises ValueError saying what is allowed.
    """
    if isinstance(value, Rate):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected {RATE_ALLOWED}; got {value!r}")
    if isinstance(value, int | float):
        count, unit = float(value), "hour"
    else:
        match = _RATE.match(str(value).lower())
        name = match.group(2) if match else ""
        name = name if name in _UNIT_NAMES else name.removesuffix("s")
        if not match or name not in _UNIT_NAMES:
            raise ValueError(f"expected {RATE_ALLOWED}; got {value!r}")
        count, unit = float(match.group(1)), _UNIT_NAMES[name]
    if not math.isfinite(count) or count < 0:
        raise ValueError(f"expected a finite rate >= 0, got {value!r}")
    return Rate(count / RATE_UNITS[unit], unit)


@dataclass(frozen=True)
class Middlebox:
    """What the heartbeats must keep alive: an idle timeout and which packets renew it."""

    name: str
    idle_timeout_s: float
    refresh: str = "outbound"
    lifetime: bool = False  # a cap on the connection's age that no traffic extends
    expiry: str = "unknown"

    def describe(self) -> str:
        what = "lifetime limit" if self.lifetime else "idle timeout"
        return f"{self.name} ({what} {seconds(self.idle_timeout_s)}, refreshed by: {self.refresh})"


def _middlebox(nat_timeout, behind, r: Reader) -> Middlebox | None:
    """``--nat-timeout`` or ``--behind``, read into ``r`` (problems go to ``r.errors``)."""
    if nat_timeout is not None and behind is not None:
        r.error("--behind", "give either --nat-timeout or --behind (a middlebox), not both")
        return None
    if nat_timeout is not None:
        seconds = r.duration({"--nat-timeout": nat_timeout}, "--nat-timeout", "", None)
        if seconds is None:
            return None
        # a NAT of unknown make: RFC 4787 only promises that outbound packets refresh it
        return Middlebox("the --nat-timeout middlebox", seconds)
    if behind is None:
        return None
    try:
        row = fielddata.middlebox(str(behind), "--behind")
        seconds = fielddata.middlebox_timeout(str(behind), "--behind")
    except ScenarioError as exc:
        r.errors.extend(exc.problems)
        return None
    refresh = str(row.get("refresh", "unknown") or "unknown")
    return Middlebox(
        str(behind),
        seconds,
        refresh if refresh in REFRESH else "unknown",
        str(row.get("timeout_kind", "idle")) == "lifetime",
        str(row.get("expiry", "unknown") or "unknown"),
    )


@dataclass(frozen=True)
class Constraints:
    """The question: bounds (None: no bound), the middlebox, what to minimize."""

    max_detection_s: float | None
    max_false_disconnects: Rate | None
    middlebox: Middlebox | None = None
    minimize: str = "bytes"
    detection: str = "p95"

    @property
    def detection_key(self) -> str:
        return f"detection_latency_{self.detection}_s"

    @property
    def cost_key(self) -> str:
        return OBJECTIVES[self.minimize][0]

    @property
    def rate_unit(self) -> str:
        return self.max_false_disconnects.unit if self.max_false_disconnects else "month"

    def describe(self) -> list[str]:
        """The question in words, one bound per line."""
        out = []
        if self.max_detection_s is not None:
            out.append(
                f"a vanished peer is detected within {seconds(self.max_detection_s)}"
                f" (detection latency, {self.detection})"
            )
        if self.max_false_disconnects is not None:
            out.append(
                f"at most {self.max_false_disconnects.shown()} false disconnects"
                " (false positives plus middlebox idle expiries)"
            )
        if self.middlebox is not None:
            out.append(f"the heartbeats keep {self.middlebox.describe()} alive")
        out.append(f"minimizing {OBJECTIVES[self.minimize][1]}")
        return out

    def to_dict(self) -> dict:
        mb = self.middlebox
        return {
            "max_detection_s": self.max_detection_s,
            "detection_metric": self.detection_key,
            "max_false_disconnects_per_conn_hour": (
                self.max_false_disconnects.per_hour if self.max_false_disconnects else None
            ),
            "max_false_disconnects": (
                self.max_false_disconnects.shown() if self.max_false_disconnects else None
            ),
            "middlebox": None
            if mb is None
            else {
                "name": mb.name,
                "idle_timeout_s": mb.idle_timeout_s,
                "refresh": mb.refresh,
                "lifetime": mb.lifetime,
            },
            "minimize": self.minimize,
            "cost_metric": self.cost_key,
        }


def constraints(
    max_detection=None,
    max_false_disconnects=None,
    nat_timeout=None,
    behind=None,
    minimize: str = "bytes",
    detection: str = "p95",
) -> Constraints:
    """Check the bounds; raise ChooseError listing every problem (option names as on the CLI)."""
    # read like every other input (simlab.scenario.reader.Reader): each option by its
    # command-line name, every problem collected before one ChooseError
    r = Reader()
    given = {
        name: value
        for name, value in (
            ("--max-detection", max_detection),
            ("--max-false-disconnects", max_false_disconnects),
            ("--minimize", minimize),
            ("--detection-metric", detection),
        )
        if value is not None
    }
    detection_s = r.duration(given, "--max-detection", "", None)
    rate = r.value(given, "--max-false-disconnects", "", parse_rate, None)
    middlebox = _middlebox(nat_timeout, behind, r)
    minimize = r.choice(given, "--minimize", "", minimize, list(OBJECTIVES))
    detection = r.choice(given, "--detection-metric", "", detection, list(DETECTION))
    if r.errors:
        raise ChooseError(r.errors, "simlab choose")
    return Constraints(detection_s, rate, middlebox, minimize, detection)
