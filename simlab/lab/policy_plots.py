"""Figures of adaptive heartbeat runs: each function takes results and returns a matplotlib Figure.

Built with matplotlib's object API, never pyplot (no global state; any backend can
draw them, a notebook shows them inline), like :mod:`simlab.lab.plots`, with every axis
labelled with its unit.

- :func:`interval_over_time`: the heartbeat interval each policy used on one
  connection slot, with its NAT breaks and false disconnects marked;
- :func:`policy_costs`: overhead and breaks per policy and network, from
  :func:`simlab.lab.policies.run_policy_mix`' table.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from simlab.engines.policy_metrics import interval_records

BREAK, FALSE = "#b2182b", "#e08214"
NICE_SECONDS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200)


def interval_over_time(
    runs: Mapping[str, object],
    *,
    slot: int = 0,
    reference: Mapping[str, float] | None = None,
    log: bool | None = None,
) -> Figure:
    """One panel per run: the gap before each heartbeat over time on connection slot ``slot``.

    ``runs`` maps a label to a Result of an adaptive run (a fixed, unthrottled run has no
    interval records: draw it as a ``reference`` instead). ``reference`` maps a label to a
    horizontal line in seconds (the NAT's timeout, the best fixed interval). NAT breaks
    are red ticks, false disconnects orange ones. ``log``: a log interval axis (default:
    when the intervals span more than a factor of ten).
    """
    fig = Figure(figsize=(8.0, 0.6 + 1.9 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
    spans = []
    for ax, (label, result) in zip(axes, runs.items(), strict=True):
        records = result.records
        gaps = interval_records(records)
        gaps = gaps[gaps.slot == slot]
        hours = gaps.time.to_numpy() / 3600
        ax.step(hours, gaps.interval_s.to_numpy(), where="pre", color="#2166ac", lw=1.4)
        ax.plot(hours, gaps.interval_s.to_numpy(), ".", color="#2166ac", ms=3)
        mine = records[records.slot == slot]
        nat_breaks = mine.time[(mine.event == "break") & (mine.detail == "nat")]
        false = mine.time[mine.event == "false_positive"]
        for times, color in ((nat_breaks, BREAK), (false, FALSE)):
            for t in times.to_numpy() / 3600:
                ax.axvline(t, color=color, lw=0.9, alpha=0.7)
        for name, seconds in (reference or {}).items():
            ax.axhline(seconds, color="0.4", ls="--", lw=1)
            ax.annotate(
                name,
                (1.0, seconds),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=8,
                color="0.3",
            )
        ax.set_ylabel("interval (s)")
        ax.set_title(label, loc="left", fontsize=10)
        if len(gaps):
            spans.append((gaps.interval_s.min(), gaps.interval_s.max()))
    low = min((a for a, _ in spans), default=1.0)
    high = max((b for _, b in spans), default=1.0)
    if log if log is not None else high > 10 * low:
        for ax in axes:  # plain seconds at round values, not powers of ten
            ax.set_yscale("log")
            lo, hi = ax.get_ylim()
            ax.yaxis.set_major_locator(FixedLocator([v for v in NICE_SECONDS if lo <= v <= hi]))
            ax.yaxis.set_major_formatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_minor_formatter(NullFormatter())
    axes[-1].set_xlabel(f"time on connection slot {slot} (h)")
    fig.legend(
        handles=[
            Line2D([], [], color="#2166ac", lw=1.4, label="gap before each heartbeat"),
            Line2D([], [], color=BREAK, lw=0.9, label="NAT break"),
            Line2D([], [], color=FALSE, lw=0.9, label="false disconnect"),
        ],
        loc="outside upper center",
        ncols=3,
        fontsize=8,
        frameon=False,
    )
    return fig


def policy_costs(
    table, *, key="overhead_bytes_per_conn_hour", breaks="nat_breaks_per_conn_hour"
) -> Figure:
    """Per network: each policy's (and each fixed interval's) cost and break rate, side by side.

    ``table``: :func:`simlab.lab.policies.run_policy_mix`' table. Bars are the cost
    ``key``; the dots on the right axis the rate ``breaks`` (per connection-hour).
    """
    networks = list(dict.fromkeys(table.network))
    fig = Figure(figsize=(8.0, 0.8 + 2.6 * len(networks)), layout="constrained")
    axes = fig.subplots(len(networks), 1, squeeze=False)[:, 0]
    for ax, network in zip(axes, networks, strict=True):
        rows = table[table.network == network]
        x = np.arange(len(rows))
        colors = ["#92c5de" if np.isfinite(f) else "#2166ac" for f in rows.fixed]
        ax.bar(x, rows[key].to_numpy(), color=colors)
        ax.set_xticks(x, rows.label.tolist(), rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(
            "heartbeat bytes per\nconnection-hour" if key.startswith("overhead_bytes") else key
        )
        ax.set_title(network, loc="left", fontsize=10)
        right = ax.twinx()
        right.plot(x, rows[breaks].to_numpy(), "o", color=BREAK)
        right.set_ylabel(
            "NAT breaks per\nconnection-hour" if breaks.startswith("nat_breaks") else breaks,
            color=BREAK,
        )
        right.set_ylim(bottom=0)
    return fig
