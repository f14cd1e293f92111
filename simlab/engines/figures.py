"""From slot counters to the run's figures: rates with exact Poisson intervals, latency quantiles, cost.

The keys are the JSON keys of ``simlab run --json`` and are registered, with their units
and sections, in :mod:`simlab.engines.metrics`; every engine reports under the same names.
A key an engine cannot produce is absent, not zero.
"""

from __future__ import annotations

import math

import numpy as np

from simlab.engines.analytic.theory import poisson_interval
from simlab.engines.policy_metrics import summarize as adaptive_figures


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {f"detection_latency_{k}_s": None for k in ("mean", "p50", "p95", "p99", "max")}
    a = np.asarray(values)
    p50, p95, p99 = np.quantile(a, [0.5, 0.95, 0.99])
    return {
        "detection_latency_mean_s": float(a.mean()),
        "detection_latency_p50_s": float(p50),
        "detection_latency_p95_s": float(p95),
        "detection_latency_p99_s": float(p99),
        "detection_latency_max_s": float(a.max()),
    }


def summarize(scenario, slots) -> dict:
    """Add up the slots' counters into the run's figures (``slots``: finished SlotModels)."""
    connected_s = alive_s = suspect_s = 0.0
    fp = undetected = heartbeats = app_msgs = blackholed = nbytes = wakeups = retrans = 0
    connections = 0
    breaks = {"crash": 0, "nat": 0, "tcp_timeout": 0}
    by = {"detector": 0, "reset": 0, "tcp_timeout": 0}
    latencies: list[float] = []
    durations: list[float] = []
    for m in slots:
        st = m.stats
        connected_s += st.connected_s
        alive_s += st.alive_s
        suspect_s += st.suspect_alive_s
        fp += st.false_positives
        undetected += st.undetected
        heartbeats += st.heartbeats
        app_msgs += st.app_msgs
        blackholed += st.blackholed
        nbytes += st.bytes
        wakeups += st.wakeups
        retrans += st.retransmissions
        connections += st.connections
        latencies += st.latencies
        durations += st.mistake_durations
        for k in breaks:
            breaks[k] += st.breaks[k]
        for k in by:
            by[k] += st.detections_by[k]
    hours = connected_s / 3600
    low, high = poisson_interval(fp, hours) if hours > 0 else (math.nan, math.nan)
    per_hour = (lambda x: x / hours) if hours > 0 else (lambda x: math.nan)
    out = {
        "scenario": scenario.name,
        "connections": scenario.connections,
        "connections_opened": connections,
        "connected_hours": hours,
        "false_positives": fp,
        "fp_per_conn_hour": per_hour(fp),
        "fp_per_conn_hour_ci_low": low,
        "fp_per_conn_hour_ci_high": high,
        "breaks": sum(breaks.values()),
        "breaks_crash": breaks["crash"],
        "breaks_nat": breaks["nat"],
        "breaks_tcp_timeout": breaks["tcp_timeout"],
        "detections": len(latencies),
        "detections_by_detector": by["detector"],
        "detections_by_reset": by["reset"],
        "detections_by_tcp_timeout": by["tcp_timeout"],
        "undetected_breaks": undetected,
        **_quantiles(latencies),
        "mistakes": fp,
        "mistake_rate_per_s": fp / alive_s if alive_s > 0 else math.nan,
        "mistake_duration_mean_s": float(np.mean(durations)) if durations else None,
        "query_accuracy": 1 - suspect_s / alive_s if alive_s > 0 else math.nan,
        "heartbeats_sent": heartbeats,
        "app_msgs_sent": app_msgs,
        "app_msgs_blackholed": blackholed,
        "tcp_retransmissions": retrans if scenario.link.transport == "tcp" else None,
        "overhead_msgs_per_conn_hour": per_hour(heartbeats),
        "overhead_bytes_per_conn_hour": per_hour(nbytes),
        "wakeups_per_conn_hour": per_hour(wakeups),
    }
    if out["tcp_retransmissions"] is None:
        del out["tcp_retransmissions"]
    out.update(adaptive_figures(scenario, slots))  # adaptive heartbeat policies only
    return out
