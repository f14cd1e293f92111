"""Figures of reconnect storms: attempts per second over time, one line per policy.

Functions return a matplotlib ``Figure`` (no pyplot state), so notebooks show them
and scripts save them with ``fig.savefig``.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure


def attempts_figure(
    timeline: pd.DataFrame, *, by: str = "policy", title: str | None = None
) -> Figure:
    """Connection attempts per second after the trigger, one line per value of ``by``.

    ``timeline``: rows of :attr:`simlab.fleet.model.StormResult.timeline` (several runs stacked,
    e.g. from :func:`simlab.fleet.model.compare_policies`). A dashed line marks what the
    servers can admit (handshake_rate x servers, full handshakes), the level above which
    attempts queue, time out or are refused. The y axis is linear up to 10 and
    logarithmic above, so a synchronized wave of every client and a jittered trickle
    are both readable.
    """
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    for name, rows in timeline.groupby(by, sort=False):
        ax.plot(rows["t"], rows["attempts_per_s"], drawstyle="steps-post", lw=1.2, label=name)
    rate, servers = "param.server.handshake_rate", "param.server.servers"
    if rate in timeline and servers in timeline:
        capacity = (timeline[rate] * timeline[servers]).max()
        ax.axhline(capacity, color="black", ls="--", lw=0.8, label="admission capacity")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=0)
    ax.set_xlim(timeline["t"].min(), timeline["t"].max())
    ax.set_xlabel("time after the trigger (s)")
    ax.set_ylabel("connection attempts per second")
    if title is None and "fleet" in timeline:
        clients = timeline["param.clients"].iloc[0] if "param.clients" in timeline else None
        title = f"{timeline['fleet'].iloc[0]}" + (f": {clients:,} clients" if clients else "")
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right", fontsize="small", ncols=2)
    return fig


RECOVERY_QUANTILES = (50, 95, 99, 100)


def recovery_figure(
    summary: pd.DataFrame, labels: list[str] | None = None, *, title: str | None = None
) -> Figure:
    """After the disconnect, per point of a fleet sweep: time to reconnect and peak attempts.

    ``summary``: a fleet sweep's summary (one row per point, figures as ``<key>_mean``,
    ``_ci_low``, ``_ci_high``, e.g. :attr:`simlab.sweeps.data.SweepData.summary`);
    ``labels``: one label per row (default: the row number). Left: the time from the
    trigger until 50, 95, 99 and 100 % of the disconnected clients were connected again,
    one marker per quantile with its 95 % interval (a quantile not reached by the horizon
    is left out). Right: the peak connection attempts per second, with its interval.
    """
    labels = list(labels) if labels is not None else [str(i) for i in range(len(summary))]
    n = len(summary)
    fig = Figure(figsize=(9, max(2.8, 1.4 + 0.42 * n)), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    y = list(range(n))[::-1]
    markers = dict(zip(RECOVERY_QUANTILES, ("o", "s", "^", "D"), strict=True))
    for q in RECOVERY_QUANTILES:
        key = f"time_to_{q}pct_reconnected_s"
        if f"{key}_mean" not in summary:
            continue
        mean = pd.to_numeric(summary[f"{key}_mean"], errors="coerce").to_numpy()
        low = pd.to_numeric(summary.get(f"{key}_ci_low", summary[f"{key}_mean"]), errors="coerce")
        high = pd.to_numeric(summary.get(f"{key}_ci_high", summary[f"{key}_mean"]), errors="coerce")
        err = [(mean - low.to_numpy()).clip(min=0), (high.to_numpy() - mean).clip(min=0)]
        left.errorbar(
            mean, y, xerr=err, fmt=markers[q], ms=5, capsize=2, lw=1, label=f"{q} % reconnected"
        )
    left.set_xlabel("time after the trigger (s)")
    left.set_yticks(y, labels)
    left.set_xlim(left=0)
    left.grid(True, axis="x", alpha=0.3)
    handles, names = left.get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncols=4, fontsize="small")
    key = "peak_attempts_per_s"
    if f"{key}_mean" in summary:
        mean = pd.to_numeric(summary[f"{key}_mean"], errors="coerce").to_numpy()
        low = pd.to_numeric(summary.get(f"{key}_ci_low", summary[f"{key}_mean"]), errors="coerce")
        high = pd.to_numeric(summary.get(f"{key}_ci_high", summary[f"{key}_mean"]), errors="coerce")
        err = [(mean - low.to_numpy()).clip(min=0), (high.to_numpy() - mean).clip(min=0)]
        right.barh(y, mean, xerr=err, color="#8da0cb", capsize=2)
    right.set_xlabel("peak connection attempts per second")
    right.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
