"""Adaptive policies against fixed intervals, judged on point estimates: for exploring in notebooks.

These helpers compare runs by their *means* (a figure meets its bound when the estimate
does), which is what a notebook's quick look needs. The chooser, :func:`simlab.choose`, is the
rule for a recommendation: it judges every setting by the upper end of its 95 % interval on its
worst network. The names here say "by means" so the two are never confused.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

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


def best_by_means(
    results: Mapping, constraints: Mapping[str, float], key="overhead_bytes_per_conn_hour"
):
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


def recommend_by_means(
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
    best_fixed, best_adaptive = (
        best_by_means(fixed, constraints, key),
        best_by_means(adaptive, constraints, key),
    )
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


def run_policy_mix(
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

    from simlab.engines.runner import simulate
    from simlab.scenario.reader import load, set_dotted

    rows, results = [], {}
    for network, sections in networks.items():
        raw = copy.deepcopy(dict(base))
        for key, value in sections.items():
            raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
        for key, value in (overrides or {}).items():
            set_dotted(raw, key, value)
        scenario = load(raw)[0]
        slack = scenario.detector.timeout - scenario.heartbeat.interval
        runs = {label: {"heartbeat.policy": value} for label, value in policies.items()}
        for interval in fixed_intervals:
            runs[f"fixed {interval:g}s"] = {
                "heartbeat.policy": "fixed",
                "heartbeat.interval": interval,
                "detector.timeout": interval + slack,
            }
        for label, changes in runs.items():
            result = simulate(load(raw, changes)[0])
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

    ``table``: :func:`run_policy_mix`' table. The cost ``key`` and the rates are
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
