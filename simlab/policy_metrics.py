"""Figures of adaptive heartbeat runs, and how an adaptive policy compares with fixed intervals.

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

import copy
import math
from collections.abc import Iterable, Mapping

import numpy as np

ADAPTIVE_KEYS = (
    "heartbeat_interval_mean_s",
    "heartbeats_skipped",
    "policy_breaks",
    "nat_probe_settled_fraction",
    "nat_probe_converge_time_mean_s",
    "nat_probe_converge_time_max_s",
    "nat_probe_probes_mean",
    "nat_probe_failed_probes",
    "nat_probe_estimate_mean_s",
    "nat_probe_error_mean_s",
    "nat_probe_error_max_abs_s",
    "nat_probe_interval_mean_s",
    "state_time_normal",
    "state_time_weak",
    "state_time_high_latency",
    "state_changes_per_conn_hour",
)
# counts of rare events, pooled with Poisson intervals in sweep summaries
ADAPTIVE_COUNT_KEYS = frozenset({"policy_breaks", "nat_probe_failed_probes"})


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


# -- comparing with fixed intervals -----------------------------------------------------------


def _figures(result) -> Mapping:
    return result.summary if hasattr(result, "summary") else result


def meets(result, constraints: Mapping[str, float]) -> bool:
    """Whether every constrained figure is at most its bound (``{"fp_per_conn_hour": 0.01, ...}``).

    A figure that is None (nothing to measure: no detection, so no latency) meets its
    bound; a missing or NaN one does not.
    """
    figures = _figures(result)
    for key, bound in constraints.items():
        if key not in figures:
            return False
        value = figures[key]
        if value is None:
            continue
        if isinstance(value, float) and math.isnan(value) or value > bound:
            return False
    return True


def best(results: Mapping, constraints: Mapping[str, float], key="overhead_bytes_per_conn_hour"):
    """``(label, result)`` of the cheapest (by ``key``) result meeting the constraints, or None."""
    ok = [(label, r) for label, r in results.items() if meets(r, constraints)]
    if not ok:
        return None
    return min(ok, key=lambda item: _figures(item[1])[key])


def overhead_saved(adaptive, fixed, key="overhead_bytes_per_conn_hour") -> dict:
    """How much less ``adaptive`` costs than ``fixed`` by ``key``: absolute and as a fraction of fixed."""
    a, f = _figures(adaptive)[key], _figures(fixed)[key]
    return {
        "key": key,
        "adaptive": a,
        "fixed": f,
        "saved": f - a,
        "saved_fraction": (f - a) / f if f else math.nan,
    }


def recommend(
    fixed: Mapping,
    adaptive: Mapping,
    constraints: Mapping[str, float],
    key="overhead_bytes_per_conn_hour",
) -> dict:
    """The best fixed setting and the best adaptive policy under the constraints, and which to use.

    ``fixed`` and ``adaptive`` map labels to results. The adaptive policy is recommended
    when it meets the constraints and costs less than every fixed setting that does
    (or when no fixed setting does); ``saved`` says by how much.
    """
    best_fixed, best_adaptive = best(fixed, constraints, key), best(adaptive, constraints, key)
    out = {
        "best_fixed": best_fixed[0] if best_fixed else None,
        "best_adaptive": best_adaptive[0] if best_adaptive else None,
        "recommend": None,
    }
    if best_adaptive and best_fixed:
        saved = overhead_saved(best_adaptive[1], best_fixed[1], key)
        out.update(saved=saved["saved"], saved_fraction=saved["saved_fraction"])
        out["recommend"] = out["best_adaptive"] if saved["saved"] > 0 else out["best_fixed"]
    elif best_adaptive or best_fixed:
        out["recommend"] = out["best_adaptive"] or out["best_fixed"]
    return out


# -- a policy comparison on a network mix ------------------------------------------------------


def compare_policies(
    networks: Mapping[str, Mapping],
    policies: Mapping[str, object],
    fixed_intervals: Iterable[float],
    base: Mapping,
    overrides: Mapping | None = None,
):
    """Run every policy and every fixed interval on every network; one row per run.

    ``networks`` maps a name to the scenario sections of that network (``link``, ``nat``,
    ...), laid over ``base``; ``policies`` maps a label to a ``heartbeat.policy`` value;
    ``fixed_intervals`` are the fixed settings to beat (seconds), each with the detector
    timeout moved along (timeout = interval + the base's timeout - interval slack), so
    every candidate tolerates the same lateness. ``overrides``: dotted keys for all runs
    (``connections``, ``horizon``). Returns ``(table, results)``: the table has the network,
    the label, ``fixed`` (the interval, or NaN), the figures and the per-hour NAT break
    rate ``nat_breaks_per_conn_hour``; ``results[(network, label)]`` is the Result.
    """
    import pandas as pd

    from . import load_scenario, simulate
    from .validate import set_dotted

    rows, results = [], {}
    for network, sections in networks.items():
        raw = copy.deepcopy(dict(base))
        for key, value in sections.items():
            raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
        for key, value in (overrides or {}).items():
            set_dotted(raw, key, value)
        scenario = load_scenario(raw)
        slack = scenario.detector.timeout - scenario.heartbeat.interval
        runs = {label: {"heartbeat.policy": value} for label, value in policies.items()}
        for interval in fixed_intervals:
            runs[f"fixed {interval:g}s"] = {
                "heartbeat.policy": "fixed",
                "heartbeat.interval": interval,
                "detector.timeout": interval + slack,
            }
        for label, changes in runs.items():
            result = simulate(load_scenario(raw, changes))
            results[(network, label)] = result
            figures = dict(result.summary)
            hours = figures["connected_hours"]
            figures["nat_breaks_per_conn_hour"] = (
                figures["breaks_nat"] / hours if hours else math.nan
            )
            fixed = (
                changes.get("heartbeat.interval", math.nan)
                if "detector.timeout" in changes
                else math.nan
            )
            rows.append({"network": network, "label": label, "fixed": fixed, **figures})
    return pd.DataFrame(rows), results


def mix_table(
    table,
    constraints: Mapping[str, float],
    key="overhead_bytes_per_conn_hour",
    weights: Mapping[str, float] | None = None,
):
    """Each policy and fixed interval over the network mix: one row per label.

    ``table``: :func:`compare_policies`' table. The cost ``key`` and the rates are
    averaged over the networks (``weights``: their shares of the clients, equal by
    default); ``meets`` is whether the constraints hold on *every* network (a setting
    must work wherever its clients are); ``worst_<figure>`` is the constrained figure on
    the network where it is largest. ``saved_fraction`` compares each row with the
    cheapest fixed interval that meets the constraints (``best_fixed``; negative:
    it costs more); ``recommended`` marks the cheapest row that meets them.
    """
    import pandas as pd

    networks = list(dict.fromkeys(table.network))
    w = {n: (weights or {}).get(n, 1.0) for n in networks}
    total = sum(w.values())
    averaged = [key, "nat_breaks_per_conn_hour", "fp_per_conn_hour", "policy_breaks"]
    rows = []
    for label, group in table.groupby("label", sort=False):
        group = group.set_index("network").reindex(networks)
        row = {"label": label, "fixed": group.fixed.iloc[0]}
        for col in averaged:
            if col in group:
                values = pd.to_numeric(group[col], errors="coerce")
                row[col] = float(sum(w[n] * values[n] for n in networks) / total)
        row["meets"] = all(meets(group.loc[n].to_dict(), constraints) for n in networks)
        for col in constraints:
            values = pd.to_numeric(group[col], errors="coerce")
            row[f"worst_{col}"] = float(values.max())
        rows.append(row)
    out = pd.DataFrame(rows)
    fixed_ok = out[out.fixed.notna() & out.meets]
    if len(fixed_ok):
        best_row = fixed_ok.loc[fixed_ok[key].idxmin()]
        out["best_fixed"] = best_row.label
        out["saved_fraction"] = 1 - out[key] / best_row[key]
    ok = out[out.meets]
    out["recommended"] = out.label == ok.loc[ok[key].idxmin()].label if len(ok) else False
    return out
