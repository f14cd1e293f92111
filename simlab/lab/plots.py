"""Figures of a sweep's results: each function takes data and returns a matplotlib Figure.

The data is a DataFrame with one row per point or per setting: a sweep's summary
(:func:`simlab.sweeps.data.read`), the chooser's table (``Choice.table``, the worst case of each
setting), or tidy rows. A metric ``key`` is read from ``<key>_mean`` with its 95 % interval
``<key>_ci_low`` / ``<key>_ci_high`` when present, else from the column ``key`` itself.

Figures are built with matplotlib's object API, never pyplot: no global state, nothing shown
on a screen, and any backend can draw them (the report renders them with Agg; a notebook
displays them inline). Every axis is labelled with its unit. Rates are per connection-hour in
the data and drawn per connection-``rate_unit`` (hour, day, week, month, year).

- :func:`tradeoff`: detection latency against false disconnects, coloured by the cost;
- :func:`nat_survival`: middlebox expiries against the ping interval, middlebox timeouts as
  vertical lines;
- :func:`sensitivity`: a metric against the loss and outage conditions, one line per setting;
- :func:`metric_vs_param`: any metric against any varied key, lines with 95 % bands.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from simlab.engines.analytic import theory
from simlab.scenario.schema import DURATION_KEYS as SCENARIO_DURATION_KEYS
from simlab.units import RATE_UNITS

RATE_NAMES = {
    "false_disconnects_per_conn_hour": "false disconnects",
    "fp_per_conn_hour": "false positives",
    "nat_breaks_per_conn_hour": "middlebox idle expiries",
}
LABELS = {
    "detection_latency_mean_s": "detection latency, mean (s)",
    "detection_latency_p50_s": "detection latency, median (s)",
    "detection_latency_p95_s": "detection latency, 95th percentile (s)",
    "detection_latency_p99_s": "detection latency, 99th percentile (s)",
    "detection_latency_max_s": "detection latency, maximum (s)",
    "overhead_bytes_per_conn_hour": "heartbeat bytes per connection-hour",
    "overhead_msgs_per_conn_hour": "heartbeat messages per connection-hour",
    "wakeups_per_conn_hour": "radio wake-ups per connection-hour",
    "mistake_duration_mean_s": "mean mistake duration (s)",
    "query_accuracy": "query accuracy (fraction of time trusted)",
    "heartbeat.interval": "ping interval (s)",
    "heartbeat.jitter": "interval jitter (fraction)",
    "detector.timeout": "detector timeout (s)",
    "detector.missed.k": "missed pings before declaring (count)",
    "detector.missed.ack_timeout": "pong deadline per ping (s)",
    "nat.idle_timeout": "middlebox idle timeout (s)",
    "link.loss.p": "packet loss probability",
    "link.outages.mtbf": "mean time between outages (s)",
    "link.outages.duration.median": "median outage duration (s)",
    "link.outages.duration.mean": "mean outage duration (s)",
    "name": "network (scenario name)",
}
DURATION_WORDS = ("interval", "timeout", "mtbf", "duration", "delay", "median", "mean", "delta")
# the last part of a dotted key whose value is a duration in seconds
DURATION_KEYS = SCENARIO_DURATION_KEYS  # simlab.scenario.schema: fields marked seconds()
GOOD, WARN = "#1b7837", "#b2182b"


def label(key: str, rate_unit: str = "hour") -> str:
    """An axis label with its unit for a metric or a dotted scenario key."""
    if key in RATE_NAMES:
        return f"{RATE_NAMES[key]} per connection-{rate_unit}"
    if key in LABELS:
        return LABELS[key]
    if key.endswith("_per_conn_hour"):
        return f"{key.removesuffix('_per_conn_hour').replace('_', ' ')} per connection-hour"
    if key.endswith("_s"):
        return f"{key.removesuffix('_s').replace('_', ' ')} (s)"
    last = key.rsplit(".", 1)[-1]
    if key.startswith("link.loss") or last.startswith("loss") or last.startswith("p_"):
        return f"{key} (probability)"
    if any(w in last for w in DURATION_WORDS):
        return f"{key} (s)"
    return key


def _scale(key: str, rate_unit: str) -> float:
    return RATE_UNITS[rate_unit] if key.endswith("_per_conn_hour") and key in RATE_NAMES else 1.0


def column(frame: pd.DataFrame, key: str, rate_unit: str = "hour") -> tuple[np.ndarray, ...]:
    """(mean, low, high) of a metric as float arrays (NaN where absent), rates in rate_unit."""
    k = _scale(key, rate_unit)

    def get(name):
        if name in frame:
            return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float) * k
        return np.full(len(frame), np.nan)

    if f"{key}_mean" in frame:
        return get(f"{key}_mean"), get(f"{key}_ci_low"), get(f"{key}_ci_high")
    mean = get(key)
    return mean, np.full(len(frame), np.nan), np.full(len(frame), np.nan)


def _values(frame: pd.DataFrame, key: str) -> np.ndarray:
    return pd.to_numeric(frame[key], errors="coerce").to_numpy(dtype=float)


def _plain(value: float, _pos=None) -> str:
    return f"{value:g}"


def _log_y(ax) -> None:
    """A log y axis labelled with plain numbers (0.5, 1, 2), not powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, pos: ""))
    low, high = ax.get_ylim()
    if high / low < 20:  # less than about a decade: label the minor ticks too
        ax.yaxis.set_minor_formatter(FuncFormatter(_plain))


def _figure(width=7.5, height=4.6, **kw) -> Figure:
    return Figure(figsize=(width, height), layout="constrained", **kw)


def _matches(frame: pd.DataFrame, settings: Mapping | None) -> np.ndarray:
    """Rows whose values equal every item of ``settings``."""
    mask = np.ones(len(frame), dtype=bool)
    if not settings:
        return mask & False
    for key, value in settings.items():
        if key not in frame:
            return mask & False
        col = frame[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            mask &= np.isclose(pd.to_numeric(col, errors="coerce").to_numpy(float), float(value))
        else:
            mask &= (col.astype(str) == str(value)).to_numpy()
    return mask


def _short(settings: Mapping) -> str:
    parts = []
    for key, value in settings.items():
        if key == "name":  # a network or scenario: its name says it
            parts.append(str(value))
            continue
        name = key.rsplit(".", 1)[-1]
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{float(value):g}"
            value += " s" if any(w in name for w in DURATION_WORDS) else ""
        parts.append(f"{name} {value}")
    return ", ".join(parts)


def _errors(mean, low, high) -> np.ndarray:
    low = np.where(np.isnan(low), mean, low)
    high = np.where(np.isnan(high), mean, high)
    return np.vstack([np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)])


def tradeoff(
    frame: pd.DataFrame,
    *,
    latency: str = "detection_latency_p95_s",
    rate: str = "false_disconnects_per_conn_hour",
    cost: str = "overhead_bytes_per_conn_hour",
    rate_unit: str = "month",
    max_detection: float | None = None,
    max_rate: float | None = None,
    highlight: Mapping | None = None,
    title: str | None = None,
    narrow: bool = False,
) -> Figure:
    """Detection latency (x) against false disconnects (y, log), each setting coloured by
    its cost, with 95 % intervals as error bars. A setting with no events is drawn as a
    downward triangle at its upper bound. ``max_detection`` (s) and ``max_rate`` (per
    connection-hour) draw the bounds and shade where both hold; ``highlight`` (a mapping of
    setting keys to values, e.g. the recommendation's) rings that setting. ``narrow``: for a
    phone's width (4.2 x 4.8 in): the colour bar and the legend under the axes."""
    x, x_low, x_high = column(frame, latency)
    y, y_low, y_high = column(frame, rate, rate_unit)
    c, _, _ = column(frame, cost)
    fig = _figure(4.2, 4.8) if narrow else _figure()
    ax = fig.add_subplot()
    ok = ~np.isnan(x) & ~np.isnan(y)
    zero = ok & (y <= 0)
    pos = ok & (y > 0)
    finite_c = c[ok & ~np.isnan(c)]
    norm = (
        LogNorm(finite_c.min(), finite_c.max())
        if len(finite_c) and finite_c.min() > 0 and finite_c.max() > 3 * finite_c.min()
        else Normalize(*(finite_c.min(), finite_c.max()) if len(finite_c) else (0, 1))
    )
    cmap = colormaps["viridis"]
    colors = [cmap(norm(v)) if not np.isnan(v) else "0.6" for v in c]
    handles: list = []
    for mask, marker, shown_y, name in (
        (pos, "o", y, "estimate (bars: 95 % interval)"),
        (zero, "v", y_high, "no events: the 95 % upper bound"),
    ):
        if not mask.any():
            continue
        idx = np.flatnonzero(mask & ~np.isnan(shown_y))
        if not len(idx):
            continue
        ax.errorbar(
            x[idx],
            shown_y[idx],
            xerr=_errors(x[idx], x_low[idx], x_high[idx]),
            yerr=_errors(y[idx], y_low[idx], y_high[idx]) if marker == "o" else None,
            fmt="none",
            ecolor="0.65",
            elinewidth=0.8,
            zorder=1,
        )
        ax.scatter(
            x[idx],
            shown_y[idx],
            c=[colors[i] for i in idx],
            marker=marker,
            s=46,
            edgecolors="0.2",
            linewidths=0.5,
            zorder=2,
        )
        handles.append(
            Line2D([], [], marker=marker, ls="", color="0.55", mec="0.2", ms=7, label=name)
        )
    _log_y(ax)
    ax.set_xlabel(label(latency))
    ax.set_ylabel(label(rate, rate_unit))
    if max_detection is not None:
        ax.axvline(max_detection, color=WARN, ls="--", lw=1.2)
    if max_rate is not None:
        ax.axhline(max_rate * RATE_UNITS[rate_unit], color=WARN, ls="--", lw=1.2)
    if max_detection is not None or max_rate is not None:
        handles.append(Line2D([], [], color=WARN, ls="--", label="bounds"))
    if max_detection is not None and max_rate is not None:
        x0, _ = ax.get_xlim()
        y0, _ = ax.get_ylim()
        ax.fill_between(
            [x0, max_detection], y0, max_rate * RATE_UNITS[rate_unit], color=GOOD, alpha=0.07
        )
        ax.set_xlim(left=x0)
        ax.set_ylim(bottom=y0)
        handles.append(Patch(color=GOOD, alpha=0.15, label="both bounds hold"))
    mark = _matches(frame, highlight) & ok
    if mark.any():
        i = np.flatnonzero(mark)[0]
        shown = y[i] if y[i] > 0 else y_high[i]
        ax.scatter(
            [x[i]], [shown], s=260, facecolors="none", edgecolors="k", linewidths=1.8, zorder=3
        )
        left = x[i] > np.nanmedian(x)  # the label on the side with room: inside the axes
        ax.annotate(
            "chosen" if narrow else "chosen: " + _short(highlight),
            (x[i], shown),
            xytext=(-10 if left else 10, 12),
            textcoords="offset points",
            ha="right" if left else "left",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "0.3"},
        )
    if len(finite_c):
        where = {"location": "bottom", "shrink": 0.9, "aspect": 30} if narrow else {}
        bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, **where)
        bar.set_label(label(cost))
        along = bar.ax.xaxis if narrow else bar.ax.yaxis
        along.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        along.set_minor_formatter(FuncFormatter(lambda v, _: "" if narrow else f"{v:,.0f}"))
        if narrow:  # a few round costs along the bar
            ticks = [float(f"{v:.1g}") for v in np.geomspace(norm.vmin, norm.vmax, 4)]
            bar.set_ticks([t for t in ticks if norm.vmin <= t <= norm.vmax])
    ax.grid(True, which="both", alpha=0.25)
    if narrow:
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7)
        ax.set_title(title or "Latency against false disconnects", fontsize=10)
    else:
        ax.legend(handles=handles, loc="best", fontsize=8)
        ax.set_title(title or "Detection latency against false disconnects, coloured by cost")
    return fig


def _middlebox_items(middleboxes) -> list[tuple[str, float]]:
    """(name, idle timeout in s) pairs from a DataFrame like fielddata.middleboxes() or a mapping."""
    if middleboxes is None:
        return []
    if isinstance(middleboxes, pd.DataFrame):
        frame = middleboxes
        if "timeout_kind" in frame:
            frame = frame[frame["timeout_kind"].astype(str) != "lifetime"]
        if "protocol" in frame:
            frame = frame[frame["protocol"].astype(str) == "tcp"]
        return [
            (str(n), float(t)) for n, t in zip(frame["name"], frame["idle_timeout_s"], strict=True)
        ]
    return [(str(n), float(t)) for n, t in dict(middleboxes).items()]


def _names(names: list[str], most: int = 2) -> str:
    """At most ``most`` names, then how many more: a label along a line fits the axes."""
    more = len(names) - most
    return ", ".join(names[:most]) + (f" +{more}" if more > 0 else "")


def nat_survival(
    frame: pd.DataFrame,
    *,
    interval: str = "heartbeat.interval",
    rate: str = "nat_breaks_per_conn_hour",
    simulated: bool = True,
    middleboxes=None,
    behind: tuple[str, float] | None = None,
    highlight: float | None = None,
    rate_unit: str = "day",
    jitter: float = 0.0,
) -> Figure:
    """Middlebox idle expiries per connection against the ping interval.

    Points (``simulated``): the sweep's simulated expiries (``rate``) with 95 % intervals, by
    ``nat.idle_timeout`` when the sweep varies it. Line: for ``behind`` (name, idle timeout
    in s), the expiries the heartbeats' gaps alone imply (:func:`simlab.engines.analytic.theory.nat_survival`,
    no loss: over TCP a lost heartbeat is retransmitted well within the timeout). Dotted
    vertical lines: each middlebox's idle timeout (``middleboxes``:
    ``simlab.scenario.fielddata.middleboxes()`` or a mapping name -> seconds), the interval at and
    beyond which it can expire between two heartbeats; those beyond the plot are listed
    under it. ``highlight``: the chosen interval (s).
    """
    fig = _figure(8.2, 4.8)
    ax = fig.add_subplot()
    xs = _values(frame, interval) if interval in frame else np.array([])
    finite = np.unique(xs[~np.isnan(xs)])
    lo = float(finite.min()) if len(finite) else 5.0
    hi = float(finite.max()) if len(finite) else 120.0
    if behind is not None:
        hi = max(hi, behind[1] * 1.15)
    span = (max(lo * 0.8, 0.1), hi * 1.1)
    has_rate = f"{rate}_mean" in frame or rate in frame
    if simulated and interval in frame and has_rate:
        mean, low, high = column(frame, rate, rate_unit)
        varied = "nat.idle_timeout" in frame and frame["nat.idle_timeout"].nunique() > 1
        groups = frame.groupby("nat.idle_timeout", sort=True) if varied else [(None, frame)]
        for value, group in groups:
            idx = frame.index.get_indexer(group.index)
            idx = idx[np.argsort(xs[idx], kind="stable")]
            tag = f" (NAT {float(value):g} s)" if value is not None else ""
            ax.errorbar(
                xs[idx],
                mean[idx],
                yerr=_errors(mean[idx], low[idx], high[idx]),
                fmt="o",
                ms=4,
                capsize=2,
                label="simulated" + tag,
            )
    if behind is not None:
        grid = np.linspace(span[0], span[1], 400)
        per = [
            theory.nat_survival(g, behind[1], 0.0, jitter).expiries_per_hour * RATE_UNITS[rate_unit]
            for g in grid
        ]
        ax.plot(grid, per, color=WARN, lw=1.6, label=f"{behind[0]}: from the heartbeat gaps")
        ax.axvspan(behind[1], span[1], color=WARN, alpha=0.06, label=f"expires behind {behind[0]}")
    at: dict[float, list[str]] = {}
    for name, timeout in _middlebox_items(middleboxes):
        at.setdefault(timeout, []).append(name)
    shown = sorted(t for t in at if span[0] <= t <= span[1])
    beyond = sorted(t for t in at if t > span[1])
    place = ax.get_xaxis_transform()  # x in data, y in axes fractions
    for timeout in shown:
        ax.axvline(timeout, color="0.45", lw=0.9, ls=":")
        ax.text(
            timeout,
            0.03,
            f"{_names(at[timeout])} {timeout:g} s ",
            rotation=90,
            transform=place,
            va="bottom",
            ha="right",
            fontsize=7,
            color="0.3",
        )
    if highlight is not None:
        ax.axvline(highlight, color=GOOD, lw=2, label=f"chosen interval {highlight:g} s")
    if len(finite):
        ax.plot(
            finite,
            np.zeros(len(finite)),
            "|",
            color="k",
            ms=10,
            clip_on=False,
            label="intervals in the sweep",
        )
    ax.set_xlim(*span)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(label(interval))
    ax.set_ylabel(f"middlebox idle expiries per connection-{rate_unit}")
    if beyond:
        names = [f"{', '.join(at[t])} {t:g} s" for t in beyond]
        text = "Timeouts beyond the plot: " + "; ".join(names[:8])
        text += f"; and {len(names) - 8} more" if len(names) > 8 else ""
        ax.set_title(textwrap.fill(text, 120), fontsize=7, color="0.35", loc="left")
    ax.grid(True, alpha=0.25)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("Which ping intervals keep the middleboxes alive")
    return fig


def _groups_of_conditions(frame: pd.DataFrame, conditions: Iterable[str]) -> list[list[str]]:
    """Condition keys grouped when they move together (each determines the others)."""
    groups: list[list[str]] = []
    codes: list[tuple] = []
    for key in conditions:
        if key not in frame or frame[key].nunique(dropna=False) < 2:
            continue
        code = tuple(pd.factorize(frame[key].astype(str))[0])
        for i, other in enumerate(codes):
            if _same_partition(code, other):
                groups[i].append(key)
                break
        else:
            codes.append(code)
            groups.append([key])
    return groups


def _moves_with(frame: pd.DataFrame, a: str, b: str) -> bool:
    """Whether two columns move together: each value of one comes with one value of the other."""
    codes = [tuple(pd.factorize(frame[k].astype(str))[0]) for k in (a, b)]
    return _same_partition(*codes)


def _same_partition(a: tuple, b: tuple) -> bool:
    pairs = set(zip(a, b, strict=True))
    return len(pairs) == len(set(a)) == len(set(b))


def sensitivity_factors(frame: pd.DataFrame, conditions: Iterable[str]) -> list[str]:
    """The conditions to plot sensitivity against: one key per group of loss or outage keys
    that move together (the scenario name when it moves with them: a network preset)."""
    out = []
    for group in _groups_of_conditions(frame, conditions):
        related = [k for k in group if "loss" in k or "outages" in k]
        if not related:
            continue
        out.append("name" if "name" in group else related[0])
    return out


def sensitivity(
    frame: pd.DataFrame,
    factors: Iterable[str],
    settings: Iterable[str],
    *,
    metric: str = "false_disconnects_per_conn_hour",
    highlight: Iterable[Mapping] = (),
    rate_unit: str = "month",
) -> Figure:
    """A metric (log scale) against each condition in ``factors`` (one panel each), one line
    per setting (the ``settings`` keys): the ``highlight`` settings (the recommendation and
    its alternatives) in colour with 95 % bands, the others thin and grey. A factor that is
    not numeric (a network name) is categorical. Zero means sit at their upper bound (v)."""
    factors, settings = list(factors), list(settings)
    highlight = list(highlight)
    fig = _figure(max(4.2 * len(factors), 6.0), 4.6)
    axes = fig.subplots(1, max(1, len(factors)), squeeze=False)[0]
    mean, low, high = column(frame, metric, rate_unit)
    groups = frame.groupby(settings, sort=False, dropna=False) if settings else [((), frame)]
    for ax, factor in zip(axes, factors, strict=False):
        numeric = pd.to_numeric(frame[factor], errors="coerce")
        categorical = numeric.isna().any()
        if categorical:
            cats = list(dict.fromkeys(frame[factor].astype(str)))
            xpos = frame[factor].astype(str).map({c: i for i, c in enumerate(cats)}).to_numpy(float)
        else:
            xpos = numeric.to_numpy(float)
        colour = 0
        for key, group in groups:
            values = dict(zip(settings, key if isinstance(key, tuple) else (key,), strict=True))
            idx = frame.index.get_indexer(group.index)
            idx = idx[np.argsort(xpos[idx], kind="stable")]
            y = np.where(mean[idx] > 0, mean[idx], high[idx])
            chosen = any(all(_eq(values.get(k), v) for k, v in h.items()) for h in highlight if h)
            if chosen:
                color = colormaps["tab10"](colour % 10)
                colour += 1
                ax.fill_between(xpos[idx], low[idx], high[idx], color=color, alpha=0.15, lw=0)
                ax.plot(xpos[idx], y, "-o", color=color, ms=4, lw=1.8, label=_short(values))
                zero = mean[idx] <= 0
                if zero.any():
                    ax.plot(xpos[idx][zero], high[idx][zero], "v", color=color, ms=7)
            else:
                ax.plot(xpos[idx], y, "-", color="0.75", lw=0.7, zorder=0)
        _log_y(ax)
        if categorical:
            ax.set_xticks(range(len(cats)), cats)
        elif np.nanmin(xpos) > 0 and np.nanmax(xpos) >= 10 * np.nanmin(xpos):
            ax.set_xscale("log")
        ax.set_xlabel(label(factor))
        ax.set_ylabel(label(metric, rate_unit))
        ax.grid(True, which="both", alpha=0.25)
    if highlight:
        axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"Sensitivity of {RATE_NAMES.get(metric, metric)} to the conditions (grey: other settings)"
    )
    return fig


def _eq(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(a) == str(b)


def metric_vs_param(
    frame: pd.DataFrame,
    param: str,
    metric: str,
    *,
    by: Iterable[str] | str | None = None,
    rate_unit: str = "month",
    logy: bool | None = None,
    title: str | None = None,
    columns: int | None = None,
    size: tuple[float, float] | None = None,
) -> Figure:
    """``metric`` against ``param`` as small multiples: one panel per combination of the
    ``by`` keys (a network, a condition; shared axes), and in each panel one labelled line per
    combination of the other varied settings (``heartbeat.*``, ``detector.*``, ``name``; a
    key that moves with ``param`` adds none), the same colour in every panel. Dots are
    estimates, bars their 95 % intervals; on a log scale a point with no event at all is a
    downward triangle at its 95 % upper bound. One legend, under the panels, names every line
    and mark. ``logy`` defaults to a log scale for rates spanning more than a factor of 30.
    ``columns``: panels per row (default: up to 3 side by side); ``size``: inches."""
    by = [by] if isinstance(by, str) else list(by or [])
    x = _values(frame, param)
    mean, low, high = column(frame, metric, rate_unit)
    others = [
        c
        for c in frame.columns
        if c not in (param, *by)
        and not c.endswith(("_mean", "_ci_low", "_ci_high"))
        and (c.startswith(("heartbeat.", "detector.")) or c == "name")
        and frame[c].nunique(dropna=False) > 1
        and not _moves_with(frame, c, param)  # a zipped key adds no line of its own
    ]
    finite = mean[np.isfinite(mean) & (mean > 0)]
    if logy is None:
        logy = bool(
            metric.endswith("_per_conn_hour") and len(finite) and finite.max() > 30 * finite.min()
        )
    panels = list(frame.groupby(by, sort=False, dropna=False)) if by else [((), frame)]
    columns = max(1, min(columns or 3, len(panels)))
    rows = math.ceil(len(panels) / columns)
    width, height = size or (7.5, 4.6 if rows == 1 else 1.8 + 2.6 * rows)
    fig = _figure(width, height)
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    # one colour per line, the same in every panel: ordered by the other settings' values
    keys = (
        sorted(
            set(frame[others].dropna().itertuples(index=False, name=None)),
            key=lambda k: tuple(_order(v) for v in k),
        )
        if others
        else [()]
    )
    cmap = colormaps["viridis" if len(keys) > 10 or _numeric(frame, others) else "tab10"]
    spread = len(keys) > 10 or _numeric(frame, others)
    colour = {
        k: cmap(0.9 * i / max(1, len(keys) - 1)) if spread else cmap(i % 10)
        for i, k in enumerate(keys)
    }
    handles: dict = {}
    zeros = False
    for ax, (head, panel) in zip(axes, panels, strict=False):
        head = head if isinstance(head, tuple) else (head,)
        lines = panel.groupby(others, sort=False, dropna=False) if others else [((), panel)]
        for key, group in lines:
            key = key if isinstance(key, tuple) else (key,)
            color = colour.get(key, "0.4")
            idx = frame.index.get_indexer(group.index)
            idx = idx[np.argsort(x[idx], kind="stable")]
            y = mean[idx]
            if logy:  # no events: the upper bound, marked v, instead of a fall to zero
                zero = y <= 0
                if zero.any():
                    zeros = True
                    ax.plot(x[idx][zero], high[idx][zero], "v", color=color, ms=6, mec="0.2")
                y = np.where(zero, np.nan, y)
            ax.errorbar(
                x[idx],
                y,
                yerr=_errors(y, low[idx], high[idx]),
                fmt="-o",
                color=color,
                ms=4,
                lw=1.4,
                elinewidth=0.8,
                capsize=2,
            )
            name = _short(dict(zip(others, key, strict=True))) if others else metric
            handles.setdefault(
                key, Line2D([], [], color=color, marker="o", ms=4, lw=1.4, label=name)
            )
        if by:
            ax.set_title(_short(dict(zip(by, head, strict=True))), fontsize=10)
        if logy:
            _log_y(ax)
        ax.set_xlabel(label(param))
        ax.set_ylabel(label(metric, rate_unit))
        ax.grid(True, which="both", alpha=0.25)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    marks = [
        Line2D(
            [], [], color="0.35", marker="o", ms=4, lw=0, label="dot: estimate; bar: 95 % interval"
        )
    ]
    if zeros:
        marks.append(
            Line2D(
                [], [], color="0.35", marker="v", ms=6, lw=0, label="no events: 95 % upper bound"
            )
        )
    entries = (list(handles.values()) if others else []) + marks
    fig.legend(
        handles=entries,
        loc="outside lower center",
        ncols=min(2 if width < 5.5 else 4, len(entries)),
        fontsize=8,
        title=", ".join(k.rsplit(".", 1)[-1] for k in others) or None,
        title_fontsize=8,
    )
    per = ", ".join("network" if k == "name" else k for k in by)
    text = title or f"{label(metric, rate_unit)}, by {param}" + (
        f", one panel per {per}" if by and len(panels) > 1 else ""
    )
    fig.suptitle(textwrap.fill(text, int(width * 11)), fontsize=10)
    return fig


def _order(value):
    """A sort key that puts numbers in numeric order, before text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _numeric(frame: pd.DataFrame, keys: list[str]) -> bool:
    """Whether the first key's values are all numbers (a sequential colour map fits them)."""
    return bool(keys) and pd.to_numeric(frame[keys[0]], errors="coerce").notna().all()
