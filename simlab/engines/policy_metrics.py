"""Figures of adaptive heartbeat runs.

:func:`summarize` adds, to a simpy run of a non-fixed policy (or a throttled
client), the keys below; a fixed, unthrottled run gets none of them (its figures
stay exactly what they were), and a key a policy cannot produce is absent, not
zero. ``None`` means "applies, but nothing to average" (no slot converged).

The per-event records of such a run also hold, per connection: ``interval``
(detail: the side; value: the gap since that side's previous heartbeat or the
opening), ``skip`` (value: when the timer fires again) and ``policy`` (detail: what
the policy decided, e.g. ``state:weak``, ``probe_failed``, ``settled``; value: the
interval or gap concerned). :func:`interval_records` extracts the first as a table.
"""

from __future__ import annotations

import math

import numpy as np

from simlab.engines.metrics import _ADAPT as ADAPTIVE_SECTION
from simlab.engines.metrics import METRICS

# the registry's "adaptive heartbeats" section (simlab.engines.metrics)
ADAPTIVE_KEYS = tuple(m.key for m in METRICS if m.section == ADAPTIVE_SECTION)
# counts of rare events, pooled with Poisson intervals in sweep summaries
ADAPTIVE_COUNT_KEYS = frozenset(
    m.key for m in METRICS if m.section == ADAPTIVE_SECTION and m.kind == "count"
)


def is_adaptive(scenario) -> bool:
    """Whether a run of ``scenario`` has adaptive figures (a non-fixed policy or a throttle)."""
    policy = scenario.heartbeat.policy
    return policy.kind != "fixed" or policy.throttle is not None


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summarize(scenario, slots) -> dict:
    """The adaptive figures of finished SlotModels (empty for a fixed, unthrottled policy)."""
    if not is_adaptive(scenario):
        return {}
    slots = list(slots)
    gaps = sum(m.stats.gaps for m in slots)
    out = {
        "heartbeat_interval_mean_s": sum(m.stats.gaps_s for m in slots) / gaps if gaps else None,
        "policy_breaks": sum(m.stats.policy_breaks for m in slots),
    }
    kind = scenario.heartbeat.policy.kind
    policies = [p for m in slots for p in m.policies.values()]
    if kind == "traffic-aware":
        out["heartbeats_skipped"] = sum(p.skipped for p in policies)
    if kind == "nat-probe":
        out.update(_nat_probe(scenario, slots, policies))
    if kind == "network-state":
        out.update(_network_state(scenario, slots, policies))
    return out


def _nat_probe(scenario, slots, policies) -> dict:
    first = [m.stats.settles[0] for m in slots if m.stats.settles]  # (t, interval, estimate, idle)
    out = {
        "nat_probe_settled_fraction": len(first) / len(slots),
        "nat_probe_converge_time_mean_s": _mean([f[0] for f in first]),
        "nat_probe_converge_time_max_s": max((f[0] for f in first), default=None),
        "nat_probe_probes_mean": _mean(
            [p.probes_to_settle for p in policies if p.probes_to_settle is not None]
        ),
        "nat_probe_failed_probes": sum(p.failed for p in policies),
        "nat_probe_estimate_mean_s": _mean([f[2] for f in first]),
        "nat_probe_interval_mean_s": _mean([f[1] for f in first]),
    }
    if scenario.nat.idle_timeout is not None:  # the error against the mapping's true timeout
        errors = [f[2] - f[3] for f in first]
        out["nat_probe_error_mean_s"] = _mean(errors)
        out["nat_probe_error_max_abs_s"] = max((abs(e) for e in errors), default=None)
    return out


def _network_state(scenario, slots, policies) -> dict:
    horizon = scenario.horizon
    time_in = dict.fromkeys(("normal", "weak", "high_latency"), 0.0)
    changes = 0
    for p in policies:
        history = p.history + [(horizon, None)]
        for (t, state), (t_next, _) in zip(history, history[1:], strict=False):
            time_in[state] += t_next - t
        changes += len(p.history) - 1
    total = sum(time_in.values())
    hours = sum(m.stats.connected_s for m in slots) / 3600
    out = {f"state_time_{k}": (v / total if total > 0 else None) for k, v in time_in.items()}
    out["state_changes_per_conn_hour"] = changes / hours if hours > 0 else math.nan
    return out


def interval_records(records):
    """The heartbeat gaps of an adaptive run's records: slot, connection, time, side, interval_s."""
    rows = records[records.event == "interval"]
    return rows.rename(columns={"detail": "side", "value": "interval_s"})[
        ["slot", "connection", "time", "side", "interval_s"]
    ].reset_index(drop=True)
