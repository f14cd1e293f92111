"""Figures of the notebooks' studies (:mod:`simlab.lab.notebook`): each function returns a matplotlib
Figure built with the object API (no pyplot, no global state), every axis labelled with
its unit, like :mod:`simlab.lab.plots`.

- :func:`survival_grid`: which heartbeat intervals keep which middleboxes open;
- :func:`expiry_curves`: idle expiries against the interval behind one middlebox, one
  line per amount of jitter;
- :func:`rate_bars`: a rate per scenario as bars with 95 % intervals (log scale);
- :func:`rtt_histogram`: round trips of pongs, with the TCP retransmission ladder;
- :func:`detector_comparison`: detectors at one detection latency: the latency they
  reached, their false positives and their mistakes' durations;
- :func:`crosscheck_figure`: model against real sockets, metric by metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from simlab.units import RATE_UNITS

GOOD, BAD, LATE, BLUE = "#1b7837", "#b2182b", "#e08214", "#2166ac"


def _plain(value: float, _pos=None) -> str:
    return f"{value:g}"


def _log(axis) -> None:
    """A log axis labelled with plain numbers."""
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _column(frame: pd.DataFrame, key: str, k: float = 1.0) -> tuple[np.ndarray, ...]:
    def get(name):
        if name in frame:
            return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float) * k
        return np.full(len(frame), np.nan)

    if f"{key}_mean" in frame:
        return get(f"{key}_mean"), get(f"{key}_ci_low"), get(f"{key}_ci_high")
    return get(key), np.full(len(frame), np.nan), np.full(len(frame), np.nan)


def survival_grid(table: pd.DataFrame, rate_unit: str = "day") -> Figure:
    """Middleboxes (rows, by idle timeout) against heartbeat intervals (columns, s): green
    where heartbeats keep the mapping open, else coloured by the idle expiries per
    connection-``rate_unit`` (:func:`simlab.lab.notebook.survival_table`)."""
    intervals = [c for c in table.columns if isinstance(c, int | float)]
    values = table[intervals].to_numpy(dtype=float)
    fig = Figure(figsize=(8.6, 0.6 + 0.3 * len(table)), layout="constrained")
    ax = fig.add_subplot()
    positive = values[values > 0]
    norm = LogNorm(positive.min(), positive.max()) if len(positive) else None
    shown = np.where(values > 0, values, np.nan)
    image = ax.imshow(shown, aspect="auto", cmap=colormaps["OrRd"], norm=norm)
    ok = np.where(values <= 0, 1.0, np.nan)
    ax.imshow(ok, aspect="auto", cmap="Greens", vmin=0, vmax=2.5, alpha=0.9)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = "ok" if values[i, j] <= 0 else f"{values[i, j]:.0f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(intervals)), [f"{t:g}" for t in intervals])
    names = [
        f"{name} ({row['idle timeout (s)']:g} s{', ' + row['protocol'] if 'protocol' in row else ''})"
        for name, row in table.iterrows()
    ]
    ax.set_yticks(range(len(table)), names, fontsize=8)
    ax.set_xlabel("heartbeat interval (s)")
    ax.set_ylabel("middlebox (idle timeout, protocol)")
    if norm is not None:
        bar = fig.colorbar(image, ax=ax)
        bar.set_label(f"idle expiries per connection-{rate_unit}")
        _log(bar.ax.yaxis)
    ax.set_title("Which heartbeat intervals keep which middleboxes open (ok: never expires)")
    return fig


def expiry_curves(curves: pd.DataFrame, idle: float, name: str = "") -> Figure:
    """Idle expiries per connection against the mean heartbeat interval, one line per
    jitter (the tidy rows of :func:`simlab.lab.notebook.expiry_curves`); the idle timeout dashed."""
    rate = next(c for c in curves.columns if c.startswith("expiries_per_conn_"))
    unit = rate.removeprefix("expiries_per_conn_")
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    jitters = sorted(curves.jitter.unique())
    for i, (j, group) in enumerate(curves.groupby("jitter", sort=True)):
        color = cmap(i / max(1, len(jitters) - 1) * 0.85)
        ax.plot(group.interval_s, group[rate], color=color, lw=1.6, label=f"jitter ±{j:.0%}")
    ax.axvline(idle, color=BAD, ls="--", lw=1.2, label=f"idle timeout {idle:g} s")
    ax.set_xlabel("mean heartbeat interval (s)")
    ax.set_ylabel(f"idle expiries per connection-{unit}")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title(f"Behind {name or 'the middlebox'}: the longest gap, not the mean, must fit")
    return fig


def rate_bars(
    frame: pd.DataFrame,
    key: str = "fp_per_conn_hour",
    *,
    label: str = "label",
    rate_unit: str = "day",
    name: str = "false positives",
    title: str | None = None,
) -> Figure:
    """One horizontal bar per row: the rate ``key`` (per connection-hour in the data) per
    connection-``rate_unit`` with its 95 % interval, on a log scale; a row with no event
    is drawn as its upper bound (a triangle)."""
    mean, low, high = _column(frame, key, RATE_UNITS[rate_unit])
    labels = frame[label].astype(str).tolist()
    fig = Figure(figsize=(8.0, 0.9 + 0.42 * len(frame)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(frame))[::-1]
    positive = mean > 0
    floor = np.nanmin(np.r_[high[high > 0], mean[positive]]) / 10 if (high > 0).any() else 1e-3
    ax.barh(y[positive], mean[positive], left=0, color=BLUE, alpha=0.8, height=0.6)
    err = np.vstack([np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)])
    ok = positive & np.isfinite(low)
    ax.errorbar(mean[ok], y[ok], xerr=err[:, ok], fmt="none", ecolor="k", capsize=3, lw=1)
    none = ~positive & np.isfinite(high)
    ax.plot(high[none], y[none], "<", color="0.35", ms=7)
    for yi, h in zip(y[none], high[none], strict=True):
        ax.annotate(" none seen (95 % upper bound)", (h, yi), fontsize=7, va="center", color="0.35")
    ax.set_xscale("log")
    ax.set_xlim(left=floor)
    _log(ax.xaxis)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(f"{name} per connection-{rate_unit} (log scale; bars: 95 % interval)")
    ax.set_ylabel("scenario")
    ax.grid(True, axis="x", which="both", alpha=0.25)
    ax.set_title(title or f"{name.capitalize()} per connection-{rate_unit}")
    return fig


def rtt_histogram(
    rtts: Sequence[float],
    ladder: pd.DataFrame | None = None,
    *,
    slack: float | None = None,
    title: str | None = None,
) -> Figure:
    """Histogram of pong round trips (s, log scale, counts log scale). ``ladder`` (from
    :func:`simlab.lab.notebook.ladder`) marks where a round trip lands after k losses in a row;
    ``slack`` (s) marks how late a pong may be before the detector's deadline passes."""
    a = np.asarray(rtts, dtype=float)
    a = a[np.isfinite(a) & (a > 0)]
    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    top = max(a.max() if len(a) else 1.0, slack or 0.0) * 1.5
    bottom = (a.min() if len(a) else 0.01) / 1.5
    bins = np.geomspace(bottom, top, 90)
    ax.hist(a, bins=bins, color=BLUE, alpha=0.85)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log(ax.xaxis)
    _log(ax.yaxis)
    handles = [Line2D([], [], color=BLUE, lw=6, alpha=0.85, label=f"{len(a):,} pongs")]
    if ladder is not None:
        for row in ladder.itertuples(index=False):
            if row.round_trip_s > top:
                break
            ax.axvline(row.round_trip_s, color=LATE, lw=0.9, ls=":")
            ax.text(
                row.round_trip_s,
                0.98,
                f" {row.losses}",
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                color=LATE,
                va="top",
            )
        handles.append(
            Line2D([], [], color=LATE, ls=":", label="after k losses in a row (k on top)")
        )
    if slack is not None:
        ax.axvline(slack, color=BAD, lw=1.6, ls="--")
        handles.append(
            Line2D(
                [], [], color=BAD, ls="--", label=f"deadline slack {slack:g} s: a false positive"
            )
        )
    ax.set_xlabel("ping to pong round trip (s, log scale)")
    ax.set_ylabel("pongs (count, log scale)")
    ax.grid(True, which="major", alpha=0.25)
    ax.legend(handles=handles, fontsize=8, loc="upper right", bbox_to_anchor=(1, 0.9))
    ax.set_title(title or "Loss over TCP becomes delay: the retransmission ladder")
    return fig


def detector_comparison(
    frame: pd.DataFrame, *, target: float | None = None, rate_unit: str = "day"
) -> Figure:
    """Three panels, one bar per detector (the rows of
    :func:`simlab.lab.notebook.compare_detectors`): the mean detection latency reached (the
    ``target`` dashed), false positives per connection-``rate_unit`` with 95 % intervals,
    and the mean duration of a mistake; linear axes from zero, so equal bars look equal."""
    fig = Figure(figsize=(10.0, 3.9), layout="constrained")
    axes = fig.subplots(1, 3)
    names = [f"{d}\n{s}" for d, s in zip(frame.detector, frame.setting, strict=True)]
    x = np.arange(len(frame))
    colors = [colormaps["tab10"](i) for i in range(len(frame))]
    panels = (
        ("detection_latency_mean_s", 1.0, "mean detection latency (s)"),
        ("fp_per_conn_hour", RATE_UNITS[rate_unit], f"false positives per connection-{rate_unit}"),
        ("mistake_duration_mean_s", 1.0, "mean mistake duration (s)"),
    )
    for ax, (key, k, name) in zip(axes, panels, strict=True):
        mean, low, high = _column(frame, key, k)
        shown = np.where(np.isfinite(mean), mean, 0.0)
        ax.bar(x, shown, color=colors, alpha=0.85)
        err = np.vstack([np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)])
        ok = np.isfinite(low) & np.isfinite(mean)
        ax.errorbar(x[ok], mean[ok], yerr=err[:, ok], fmt="none", ecolor="k", capsize=3, lw=1)
        ax.set_ylim(bottom=0)
        ax.set_xticks(x, names, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel(name)
        ax.set_xlabel("detector and its setting")
        ax.grid(True, axis="y", which="both", alpha=0.25)
    if target is not None:
        axes[0].axhline(target, color=BAD, ls="--", lw=1.2, label=f"target {target:g} s")
        axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Detectors at one detection latency: false positives and how long they last")
    return fig


def crosscheck_figure(check) -> Figure:
    """One panel per compared metric of a :class:`simlab.harness.crosscheck.CrossCheck`: the model's
    and the harness's values with their 95 % intervals, the verdict in the title."""
    rows = [r for r in check.rows() if r["model"] is not None or r["harness"] is not None]
    n = max(1, len(rows))
    fig = Figure(figsize=(8.0, 0.8 + 0.95 * n), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, row in zip(axes, rows, strict=False):
        for y, side, color in ((1, "model", BLUE), (0, "harness", LATE)):
            value = row[side]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            lo, hi = row[f"{side}_low"], row[f"{side}_high"]
            err = [[max(0.0, value - lo)], [max(0.0, hi - value)]] if lo is not None else None
            ax.errorbar([value], [y], xerr=err, fmt="o", color=color, capsize=4)
        ax.set_yticks([0, 1], ["real sockets", "model"], fontsize=8)
        ax.set_ylabel("run by", fontsize=8)
        ax.set_ylim(-0.6, 1.6)
        metric = row["metric"]
        if metric.endswith(" /conn-h"):
            shown = metric.removesuffix(" /conn-h") + " per connection-hour"
        elif "proportion" in row["test"]:
            shown = metric + " (fraction of pongs)"
        else:
            shown = metric
        ax.set_xlabel(shown, fontsize=8)
        p = "" if row["p_value"] is None else f", p = {row['p_value']:.3g}"
        ax.set_title(f"{metric}: {row['verdict']}{p}", fontsize=8, loc="left")
        ax.grid(True, axis="x", alpha=0.25)
    # AGREE, DISAGREE, or NO EVIDENCE: a check where nothing could be tested agrees on nothing
    verdict = {"AGREE": "agree", "DISAGREE": "DISAGREE"}.get(check.verdict, "no evidence")
    fig.suptitle(f"{check.name}: model and real sockets: {verdict}", fontsize=10)
    return fig
