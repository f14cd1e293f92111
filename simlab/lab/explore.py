"""What the notebooks show of a run, and their sliders (static output without ipywidgets).

- :func:`headline`: a run's figures as a small table with units and 95 % intervals,
  rates per connection-day;
- :func:`what_if`: a scenario with a few keys changed, run through a fast engine, as a
  headline table (or the validation problem, as text, when the change is impossible);
- :func:`interact`: sliders that re-run a function when ipywidgets is installed and the
  notebook runs in a live kernel; otherwise (or with ``SIMLAB_STATIC=1``) the function
  called once with the sliders' defaults, so the notebook reads the same on paper and
  executes in the test suite without widgets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from simlab.engines import registry as engines
from simlab.errors import ScenarioError
from simlab.scenario.reader import load
from simlab.units import RATE_UNITS

# (key, label, unit kind): "rate" (per connection-hour in the data), "s", "count", "bytes"...
HEADLINE = [
    ("connected_hours", "time connected", "connection-hours"),
    ("fp_per_conn_hour", "false positives (live peer declared dead)", "rate"),
    ("breaks_nat", "middlebox idle expiries", "count"),
    ("breaks_crash", "peer crashes", "count"),
    ("breaks_tcp_timeout", "TCP gave up", "count"),
    ("detections", "breaks detected", "count"),
    ("undetected_breaks", "breaks still undetected at the horizon", "count"),
    ("detection_latency_mean_s", "detection latency, mean", "s"),
    ("detection_latency_p95_s", "detection latency, 95th percentile", "s"),
    ("mistake_duration_mean_s", "mistake duration, mean", "s"),
    ("query_accuracy", "fraction of live time trusted", "fraction"),
    ("overhead_msgs_per_conn_hour", "heartbeat messages", "per connection-hour"),
    ("overhead_bytes_per_conn_hour", "heartbeat bytes (with headers)", "per connection-hour"),
    ("wakeups_per_conn_hour", "radio wake-ups", "per connection-hour"),
]


def headline(summary: Mapping, rate_unit: str = "day") -> pd.DataFrame:
    """The run's main figures: ``figure``, ``value``, ``95 % interval``, ``unit``.

    Rates are shown per connection-``rate_unit`` (the false-positive rate with its exact
    interval; middlebox expiries as a count and per connection-``rate_unit``). Figures the
    engine did not produce are left out (an engine's missing key is not a zero).
    """
    k = RATE_UNITS[rate_unit]
    hours = summary.get("connected_hours")
    rows = []
    for key, name, unit in HEADLINE:
        value = summary.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        interval = ""
        if unit == "rate":
            value *= k
            low, high = summary.get(f"{key}_ci_low"), summary.get(f"{key}_ci_high")
            if low is not None and high is not None:
                interval = f"{low * k:.3g} to {high * k:.3g}"
            unit = f"per connection-{rate_unit}"
        elif f"{key}_se" in summary and summary[f"{key}_se"] is not None:
            se = summary[f"{key}_se"]
            interval = f"{value - 1.96 * se:.3g} to {value + 1.96 * se:.3g}"
        shown = round(float(value), 4)
        if unit == "count" and shown.is_integer():
            shown = int(shown)  # a count reads 3, not 3.0
        rows.append((name, shown, interval, unit))
        if key == "breaks_nat" and hours:
            rows.append(
                (
                    "middlebox idle expiries, rate",
                    round(float(value) / hours * k, 4),
                    "",
                    f"per connection-{rate_unit}",
                )
            )
    # object values: a float column would show every count as 3.0
    frame = pd.DataFrame(rows, columns=["figure", "value", "95 % interval", "unit"], dtype=object)
    return frame.set_index("figure")


def what_if(
    base: str | Path | dict,
    overrides: Mapping[str, object],
    *,
    engine: str = "fast",
    rate_unit: str = "day",
) -> pd.DataFrame | str:
    """``base`` with ``overrides`` (dotted keys), run through ``engine``, as :func:`headline`.

    A combination the scenario format rejects (a timeout not above the interval) or the
    engine does not cover comes back as the problem, in words, instead of an exception:
    a slider should not break the notebook.
    """
    try:
        scenario, _ = load(base, dict(overrides))
        out = engines.run(scenario, engine)
    except ScenarioError as exc:
        return str(exc)
    table = headline(out, rate_unit)
    table.attrs["engine"] = out.get("engine", engine)
    return table


def widgets_available() -> bool:
    """Whether to draw sliders: ipywidgets importable and ``SIMLAB_STATIC`` not set to 1."""
    if os.environ.get("SIMLAB_STATIC") == "1":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def interact(
    fn: Callable,
    controls: Mapping[str, tuple[str, Sequence, object]],
    *,
    widgets: bool | None = None,
):
    """Sliders for ``fn``'s keyword arguments, or ``fn`` called once with the defaults.

    ``controls`` maps an argument name to (label with its unit, the values a slider
    offers, the default). With ipywidgets (``widgets`` None: :func:`widgets_available`)
    the result is an ``ipywidgets.interactive`` that re-runs ``fn`` when a slider is
    released and displays what it returns; without, it is what ``fn`` returns for the
    defaults (a table or a figure, displayed as the cell's output).
    """
    defaults = {name: default for name, (_, _, default) in controls.items()}
    for name, (label, values, default) in controls.items():
        if default not in list(values):
            raise ValueError(
                f"{name}: the default {default!r} is not among the values of {label!r}"
            )
    if widgets is None:
        widgets = widgets_available()
    if not widgets:
        return fn(**defaults)
    import ipywidgets

    sliders = {
        name: ipywidgets.SelectionSlider(
            options=list(values),
            value=default,
            description=label,
            continuous_update=False,
            style={"description_width": "initial"},
            layout=ipywidgets.Layout(width="480px"),
        )
        for name, (label, values, default) in controls.items()
    }
    # auto_display: show what fn returns (a table, a figure), as ipywidgets.interact does
    return ipywidgets.interactive(fn, {"auto_display": True}, **sliders)
