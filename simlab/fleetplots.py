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

    ``timeline``: rows of :attr:`simlab.fleet.StormResult.timeline` (several runs stacked,
    e.g. from :func:`simlab.fleet.compare_policies`). A dashed line marks what the
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
