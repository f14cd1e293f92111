"""From the harness's raw events to the model's records, counters and figures.

The harness notes what happened (open, ping, pong, injected break, declaration,
close); this module applies the model's bookkeeping to it, connection by
connection: a declaration after the break is a detection (latency from the
break), before it a false positive (down until the slot's next connection opens);
a break still undetected at the horizon is counted as such. The figures then come
from :func:`simlab.engines.figures.summarize`, the model's own code, so both sides of a
cross-check are computed the same way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pandas as pd

from simlab.engines.figures import summarize
from simlab.engines.model import Stats
from simlab.rules.nat import expiry_from_log

# Figures the harness cannot measure the model's way: absent, not zero.
NOT_MEASURED = (
    "overhead_bytes_per_conn_hour",
    "wakeups_per_conn_hour",
    "app_msgs_blackholed",
    "tcp_retransmissions",
    "mistake_rate_per_s",
    "query_accuracy",
)

RECORD_COLUMNS = ["slot", "connection", "time", "event", "detail", "value"]


def account(
    scenario, events: list[tuple], nat: dict, policies: list[dict] | None = None
) -> tuple[dict, pd.DataFrame]:
    """Summary (the model's JSON keys) and records from raw events.

    ``nat`` maps (slot, connection) to (start, idle, refresh times): the mapping's
    expiry, read off those times, is the NAT break's ground truth. ``policies``
    (per slot, side -> the heartbeat policy objects the run drove) feed the
    adaptive figures, as the model's slots do.
    """
    horizon = scenario.horizon
    lives: dict[tuple, list] = defaultdict(list)
    for ev in events:
        lives[(ev[0], ev[1])].append(ev)
    records: list[tuple] = []
    slots: dict[int, SimpleNamespace] = {}
    opens: dict[int, list[float]] = defaultdict(list)
    for (slot, _), evs in lives.items():
        for ev in evs:
            if ev[3] == "open":
                opens[slot].append(ev[2])
    for times in opens.values():
        times.sort()
    for (slot, number), evs in sorted(lives.items()):
        m = slots.setdefault(
            slot, SimpleNamespace(stats=Stats(), policies=policies[slot] if policies else {})
        )
        st = m.stats
        evs = sorted(evs, key=lambda e: e[2])
        opened = next((e[2] for e in evs if e[3] == "open"), None)
        if opened is None:  # a connection attempt that failed: no connection, no exposure
            records.extend(evs)
            continue
        closed = next((e[2] for e in evs if e[3] == "close"), horizon)
        breaks = [(e[2], e[4]) for e in evs if e[3] == "break"]
        if (slot, number) in nat:
            start, idle, log = nat[(slot, number)]
            expiry = expiry_from_log(start, idle, log, closed)
            if expiry <= closed:
                breaks.append((expiry, "nat"))
                records.append((slot, number, expiry, "break", "nat", None))
        broken_at, cause = min(breaks) if breaks else (math.inf, None)
        _adaptive(st, evs, broken_at, cause, nat.get((slot, number)))
        st.connections += 1
        st.connected_s += closed - opened
        st.alive_s += min(closed, broken_at) - opened
        if cause is not None and broken_at <= closed:
            st.breaks[cause] += 1
        declared = next((e for e in evs if e[3] == "declare"), None)
        for e in evs:
            if e[3] == "ping":
                st.heartbeats += 1
            if e[3] != "declare":
                records.append(e)
        if declared is not None:
            t, by = declared[2], declared[4]
            if t >= broken_at:
                st.latencies.append(t - broken_at)
                st.detections_by[by] += 1
                records.append((slot, number, t, "detection", by, t - broken_at))
            else:
                st.false_positives += 1
                records.append((slot, number, t, "false_positive", by, None))
                later = [o for o in opens[slot] if o > t]
                up_at = later[0] if later else math.inf
                down = min(up_at, horizon) - t
                st.alive_s += down
                st.suspect_alive_s += down
                if up_at <= horizon:
                    st.mistake_durations.append(up_at - t)
        elif broken_at <= horizon:
            st.undetected += 1
    summary = summarize(scenario, list(slots.values()))
    for key in NOT_MEASURED:
        summary.pop(key, None)
    frame = pd.DataFrame(sorted(records, key=lambda r: (r[0], r[1], r[2])), columns=RECORD_COLUMNS)
    return summary, frame


def _adaptive(st, evs: list[tuple], broken_at: float, cause, nat) -> None:
    """The counters behind the adaptive figures, the model's way (simlab.engines.policy_metrics)."""
    estimate = math.nan
    after_break = None
    for e in evs:
        if e[3] == "interval":
            st.gaps += 1
            st.gaps_s += e[5]
            if after_break is None and e[2] >= broken_at:
                after_break = e[5]  # the gap the schedule left when the mapping lapsed
        elif e[3] == "policy" and e[4] == "nat_estimate":
            estimate = e[5]
        elif e[3] == "policy" and e[4] == "settled":
            idle = nat[1] if nat is not None else math.nan
            st.settles.append((e[2], e[5], estimate, idle))
    if cause == "nat" and after_break is not None and after_break >= nat[1]:
        st.policy_breaks += 1
