"""The life of one connection, read from a traced run: every heartbeat round, every event.

``simlab.simulate(scenario, trace=True)`` records one trace row per message event (send,
lost, nat_drop, receive) and one record per connection-life event (open, break,
detection, false_positive, trust, close). This module puts one connection's rows back
together:

- :func:`rounds`: one row per heartbeat round (a ping and its pong, or a one-way
  heartbeat): when it was sent, how many of its transmissions were lost, whether an
  expired NAT dropped it, when it was answered and its round trip;
- :func:`life`: the connection's own records (its opening, the break and its cause, the
  declaration, the close);
- :func:`down_periods`: the link outages and peer stalls of a connection slot, exactly as
  the model drew them (they are drawn up front, per slot);
- :func:`pick`: a connection worth looking at (one that was declared dead, preferably
  with retransmissions on the way);
- :func:`timeline`: the figure: a message sequence chart of the rounds around the
  declaration above the round trip of every round of the connection.

The trace records a TCP segment's fate when it is first sent: its lost transmissions
are rows at that time (``value`` = the transmission's index), and the transmission that
gets through is seen where it arrives (``attempts`` counts them all). Arrivals are
traced on the detector's side only; a ping's arrival at the peer shows as the pong the
peer sends (at once, or when a stall ends).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from simlab.engines.model import SlotModel
from simlab.scenario.schema import Scenario

ROUND_COLUMNS = [
    "pinger",
    "seq",
    "kind",
    "sent",
    "lost",
    "nat_dropped",
    "answered",
    "answer_lost",
    "received",
    "rtt_s",
    "attempts",
    "retransmitted",
]
DECLARATIONS = ("false_positive", "detection")
OK, LATE, MISSING = "#2166ac", "#e08214", "#b2182b"
OUTAGE, STALL = "#999999", "#c2a5cf"


def _connection(frame: pd.DataFrame | None, slot: int, connection: int) -> pd.DataFrame:
    if frame is None:
        raise ValueError("the run has no trace: simulate(scenario, trace=True)")
    return frame[(frame.slot == slot) & (frame.connection == connection)]


def rounds(result, slot: int, connection: int) -> pd.DataFrame:
    """One row per heartbeat round of connection ``connection`` of slot ``slot``.

    ``pinger``/``seq``/``kind``: who sent the ping (or one-way heartbeat), its number and
    kind; ``sent``: its first transmission (s since the slot started); ``lost``: its lost
    transmissions; ``nat_dropped``: an expired NAT dropped it or its answer;
    ``answered``: when the peer sent the pong (NaN: never); ``answer_lost``: the pong's
    lost transmissions; ``received``: when the pong (or the one-way heartbeat) reached
    the detector's side (NaN: never); ``rtt_s``: from the ping's send to its pong's
    arrival (the one-way delay for a one-way heartbeat); ``attempts``: transmissions of
    the message that arrived last; ``retransmitted``: any of the round's messages needed
    more than one.
    """
    trace = _connection(result.trace, slot, connection)
    beats = trace[trace.kind.isin(("ping", "heartbeat"))]
    pongs = trace[trace.kind == "pong"]
    out = []
    for (src, seq), rows in beats.groupby(["src", "seq"], sort=False):
        sent = rows.time[rows.event == "send"]
        if sent.empty:
            continue
        answer = pongs[(pongs.src != src) & (pongs.seq == seq)]
        kind = rows.kind.iloc[0]
        lost = int((rows.event == "lost").sum())
        dropped = bool((rows.event == "nat_drop").any() or (answer.event == "nat_drop").any())
        got = (answer if kind == "ping" else rows).query("event == 'receive'")
        answered = answer.time[answer.event == "send"]
        answer_lost = int((answer.event == "lost").sum())
        received = float(got.time.iloc[0]) if len(got) else math.nan
        attempts = int(got.attempts.iloc[0]) if len(got) else 0
        out.append(
            (
                src,
                int(seq),
                kind,
                float(sent.iloc[0]),
                lost,
                dropped,
                float(answered.iloc[0]) if len(answered) else math.nan,
                answer_lost,
                received,
                float(got.value.iloc[0]) if len(got) else math.nan,
                attempts,
                bool(lost or answer_lost),
            )
        )
    frame = pd.DataFrame(out, columns=ROUND_COLUMNS)
    return frame.sort_values(["sent", "pinger"], kind="stable").reset_index(drop=True)


def life(result, slot: int, connection: int) -> pd.DataFrame:
    """The connection's records: time, event (open, break, detection, false_positive, trust,
    close), detail (a break's cause, what declared) and value (a detection's latency, s)."""
    rows = _connection(result.records, slot, connection)
    return rows[["time", "event", "detail", "value"]].reset_index(drop=True)


def down_periods(scenario: Scenario, slot: int) -> pd.DataFrame:
    """The link outages and peer stalls of connection slot ``slot``: kind, start, end (s).

    The model draws them up front from the slot's own random streams; building the slot's
    model (without running it) gives exactly the periods its run had.
    """
    model = SlotModel(scenario, slot)
    rows = []
    for kind, periods in (("outage", model.outages), ("stall", model.stalls)):
        if periods is not None:
            rows += [(kind, a, b) for a, b in zip(periods.starts, periods.ends, strict=True)]
    frame = pd.DataFrame(rows, columns=["kind", "start", "end"])
    return frame.sort_values("start", kind="stable").reset_index(drop=True)


def pick(result, prefer: tuple[str, ...] = ("break", "false_positive")) -> tuple[int, int]:
    """(slot, connection) of a connection worth drawing.

    A connection that was declared dead after one of the
    ``prefer`` events happened to it (``break``: a real failure, then its detection;
    ``false_positive``: a mistaken declaration), tried in that order: among those, one
    with lost transmissions when the run was traced, then the longest-lived (the most
    history to draw); else the connection with the most lost transmissions; else the
    first connection.
    """
    records = result.records
    keyed = records.set_index(["slot", "connection"]).sort_index()
    lossy: dict[tuple[int, int], int] = {}
    if result.trace is not None and len(result.trace):
        lost = result.trace[result.trace.event == "lost"]
        lossy = lost.groupby(["slot", "connection"]).size().to_dict()
    for event in prefer:
        want = "detection" if event == "break" else event
        hits = records[records.event == want][["slot", "connection"]].drop_duplicates()
        keys = [tuple(map(int, k)) for k in hits.itertuples(index=False)]
        if event == "break":
            keys = [k for k in keys if (keyed.loc[k].event == "break").any()]
        if keys:
            lived = {k: float(keyed.loc[k].time.max() - keyed.loc[k].time.min()) for k in keys}
            return min(keys, key=lambda k: (lossy.get(k, 0) == 0, -lived[k], k))
    if lossy:
        return tuple(map(int, max(lossy, key=lambda k: (lossy[k], -k[0], -k[1]))))
    first = records.iloc[0]
    return int(first.slot), int(first.connection)


def _window(events: pd.DataFrame, table: pd.DataFrame, span: float | None) -> tuple[float, float]:
    start = float(events.time[events.event == "open"].min())
    end = float(events.time.max())
    declared = events.time[events.event.isin(DECLARATIONS)]
    broke = events.time[events.event == "break"]
    focus = float(declared.iloc[0]) if len(declared) else end
    if span is None:
        period = float(np.median(np.diff(table.sent))) if len(table) > 2 else 30.0
        first = float(broke.iloc[0]) if len(broke) else focus
        span = max(6 * period, focus - first + 2 * period)
    low = max(start, focus - span)
    return low, min(end, focus + 0.08 * span)


def _shade(ax, periods: pd.DataFrame, low: float, high: float) -> None:
    for row in periods.itertuples(index=False):
        if row.end >= low and row.start <= high:
            color = OUTAGE if row.kind == "outage" else STALL
            ax.axvspan(max(row.start, low), min(row.end, high), color=color, alpha=0.35, lw=0)


def _mark_events(ax, events: pd.DataFrame, label: bool) -> None:
    for row in events.itertuples(index=False):
        if row.event == "break":
            ax.axvline(row.time, color=MISSING, lw=1.6, ls="--")
            if label:
                ax.annotate(
                    f"break: {row.detail} ",
                    (row.time, 0.99),
                    xycoords=("data", "axes fraction"),
                    fontsize=8,
                    color=MISSING,
                    ha="right",
                    va="top",
                )
        elif row.event in DECLARATIONS:
            ax.axvline(row.time, color="k", lw=1.8)
            if label:
                what = (
                    f"declared dead {row.value:.1f} s after the break"
                    if row.event == "detection"
                    else "declared dead: a false positive"
                )
                ax.annotate(
                    f"{what} ({row.detail}) ",
                    (row.time, 0.01),
                    xycoords=("data", "axes fraction"),
                    fontsize=8,
                    ha="right",
                    va="bottom",
                )


def _two_five(value: float, _pos=None) -> str:
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if round(mantissa, 6) in (2.0, 5.0) else ""


LANES = ("ping sent", "lost transmission", "pong sent", "pong received")


def timeline(
    result,
    slot: int,
    connection: int,
    *,
    scenario: Scenario | None = None,
    span: float | None = None,
) -> Figure:
    """One connection's life: its messages around the declaration above every round trip.

    Top, in a window ending just after the declaration (``span`` seconds long; by default
    six intervals, or from the break on), one lane per kind of message event: pings sent,
    lost transmissions (x; a square: dropped by an expired NAT), pongs sent (when the
    ping reached the peer's application) and pongs received by the pinging side.
    Orange: a round that needed retransmissions; red: a round never answered. The arrow
    is the silence the detector saw: from the last message it heard to the declaration.
    Bottom: every round of the connection: the round trip (log scale), orange if
    retransmitted, red ticks on top for rounds never answered. Both: the break (dashed
    red) and the declaration (black); link outages (grey) and peer stalls (purple)
    shaded when ``scenario`` is given (they are not in the trace). One-way heartbeats
    have no pongs: their lanes are sent, lost and received.
    """
    table = rounds(result, slot, connection)
    events = life(result, slot, connection)
    if events.empty:
        raise ValueError(f"slot {slot} has no connection {connection}")
    periods = down_periods(scenario, slot) if scenario is not None else None
    low, high = _window(events, table, span)
    pingpong = "ping" in set(table.kind) or table.empty
    lanes = LANES if pingpong else ("heartbeat sent", "lost transmission", "heartbeat received")
    lane = {name: len(lanes) - 1 - i for i, name in enumerate(lanes)}

    fig = Figure(figsize=(9.0, 6.4), layout="constrained")
    ax, rtt_ax = fig.subplots(2, 1, height_ratios=[1.2, 1.0])
    if periods is not None:
        _shade(ax, periods, low, high)
        _shade(rtt_ax, periods, -math.inf, math.inf)
    shown = table[(table.sent <= high) & (table.sent >= low)]
    for row in shown.itertuples(index=False):
        answered = not math.isnan(row.received)
        color = MISSING if not answered else (LATE if row.retransmitted else OK)
        ax.plot([row.sent], [lane[lanes[0]]], "|", color=color, ms=14, mew=2)
        if row.lost or row.answer_lost:
            at = row.sent if row.lost else row.answered
            ax.plot([at], [lane["lost transmission"]], "x", color=LATE, ms=8, mew=1.6)
            ax.annotate(
                f"{row.lost + row.answer_lost}",
                (at, lane["lost transmission"]),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=7,
                color=LATE,
            )
        if row.nat_dropped:
            at = row.sent if math.isnan(row.answered) else row.answered
            ax.plot([at], [lane["lost transmission"]], "s", color=MISSING, ms=8, mfc="none")
        if pingpong and not math.isnan(row.answered):
            ax.plot([row.answered], [lane["pong sent"]], "|", color=color, ms=14, mew=2)
        if answered:
            ax.plot([row.received], [lane[lanes[-1]]], "|", color=color, ms=14, mew=2)
            if row.retransmitted:
                ax.plot(
                    [row.sent, row.received],
                    [lane[lanes[0]], lane[lanes[-1]]],
                    color=LATE,
                    lw=0.8,
                    ls=":",
                )
    declared = events[events.event.isin(DECLARATIONS)]
    if len(declared):
        at = float(declared.time.iloc[0])
        heard = table.received[table.received <= at]
        opened = float(events.time[events.event == "open"].min())
        last = float(heard.max()) if len(heard) else opened
        what = "since the last pong" if len(heard) else "since the opening"
        if not pingpong:
            what = "since the last heartbeat" if len(heard) else what
        y0 = lane[lanes[-1]] + 0.5
        ax.annotate("", (at, y0), (last, y0), arrowprops={"arrowstyle": "<->", "color": "0.3"})
        ax.text(
            (max(last, low) + at) / 2,
            y0 + 0.05,
            f"silence {what}: {at - last:.1f} s",
            ha="center",
            va="bottom",
            fontsize=8,
            color="0.3",
        )
    _mark_events(ax, events[(events.time >= low) & (events.time <= high)], True)
    ax.set_xlim(low, high)
    ax.set_ylim(-0.7, len(lanes) - 0.4)
    ax.set_yticks(list(lane.values()), list(lane.keys()))
    ax.set_ylabel("message event")
    ax.set_xlabel("time since the slot started (s)")
    ax.grid(True, axis="x", alpha=0.25)
    ax.set_title(
        f"Slot {slot}, connection {connection}: the messages before the declaration", fontsize=10
    )
    handles = [
        Line2D([], [], color=OK, ls="", marker="|", ms=10, mew=2, label="round delivered at once"),
        Line2D([], [], color=LATE, ls="", marker="|", ms=10, mew=2, label="retransmitted"),
        Line2D([], [], color=MISSING, ls="", marker="|", ms=10, mew=2, label="never answered"),
        Line2D([], [], color=LATE, ls="", marker="x", label="lost transmissions (count)"),
        Line2D([], [], color=MISSING, ls="", marker="s", mfc="none", label="dropped by the NAT"),
        Line2D([], [], color=MISSING, ls="--", lw=1.6, label="break (cause)"),
        Line2D([], [], color="k", lw=1.8, label="declaration"),
    ]
    if periods is not None and len(periods):
        handles += [
            Patch(color=OUTAGE, alpha=0.35, label="link outage"),
            Patch(color=STALL, alpha=0.35, label="peer stall"),
        ]
    fig.legend(handles=handles, fontsize=7, ncols=5, loc="outside lower center")

    ok = table[~np.isnan(table.rtt_s)]
    late = ok.retransmitted.to_numpy(dtype=bool)
    rtt_ax.plot(ok.sent[~late], ok.rtt_s[~late], ".", color=OK, ms=4)
    rtt_ax.plot(ok.sent[late], ok.rtt_s[late], "o", color=LATE, ms=4)
    rtt_ax.set_yscale("log")
    rtt_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    rtt_ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    if not ok.empty:  # at least a factor of 4 shown; the 2s and 5s labelled in a short range
        rtt_ax.set_ylim(float(ok.rtt_s.min()) / 2, float(ok.rtt_s.max()) * 2)
        low_y, high_y = rtt_ax.get_ylim()
        if high_y / low_y < 20:
            rtt_ax.yaxis.set_minor_formatter(FuncFormatter(_two_five))
    if ok.empty:
        rtt_ax.set_ylim(0.01, 10)
        rtt_ax.text(0.5, 0.5, "no round was answered", transform=rtt_ax.transAxes, ha="center")
    missing = table[np.isnan(table.rtt_s)]
    if len(missing):
        rtt_ax.plot(
            missing.sent,
            np.ones(len(missing)),
            "|",
            color=MISSING,
            ms=10,
            transform=rtt_ax.get_xaxis_transform(),
            clip_on=False,
        )
    _mark_events(rtt_ax, events, False)
    rtt_ax.axvspan(low, high, color="k", alpha=0.05, lw=0)
    start, end = float(events.time.min()), float(events.time.max())
    rtt_ax.set_xlim(start, end + 0.01 * (end - start))
    rtt_ax.set_xlabel("time since the slot started (s); the window above shaded")
    rtt_ax.set_ylabel("ping to pong (s)" if "ping" in set(table.kind) else "one-way delay (s)")
    rtt_ax.grid(True, which="both", alpha=0.25)
    return fig
