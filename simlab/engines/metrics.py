"""The metric registry: every figure a run reports, with its section, unit and kind.

The keys are the JSON keys of ``simlab run --json``; the sweep's columns and their pooling,
the ``simlab run`` table, the chooser and the fast engine's absent keys all read this
registry. The figures are computed by :mod:`simlab.engines.figures` (and by each engine).
"""

from __future__ import annotations

from dataclasses import dataclass

# Adding a metric: one entry in METRICS (or FLEET_METRICS, simlab.fleet.model) plus the
# code that computes it; the sweep columns, their pooling, the ``simlab run`` table and
# the fast engine's absent keys all read it.

KINDS = ("count", "rate", "per-run-only", "value")
# The headings of the ``simlab run`` table, in order.
RUN_SECTIONS = (
    "exposure",
    "false positives",
    "breaks (ground truth)",
    "detection",
    "accuracy (Chen et al.)",
    "cost",
    "rare events",
    "adaptive heartbeats",
    "provenance",
)


@dataclass(frozen=True)
class Metric:
    """One key of a run's figures.

    ``section``: the heading its table (``simlab run``; ``simlab storm`` for fleet
    figures) prints it under, None: not in the table. ``row``: its place within the
    section, ties in registry order. ``unit``: what the number counts or measures.
    ``kind``: how a sweep summary pools it over replications: ``count`` (rare
    independent events: summed, Poisson interval), ``rate`` (``rate_of``'s count over
    its exposure, pooled, Poisson interval), ``per-run-only`` (a run's own interval
    bound: recomputed from the pooled counts, not summarized), ``value`` (mean,
    bootstrap interval). ``not_produced_by``: engines that never report it (the key is
    absent, not zero); ``"fast:tcp"``: the fast engine over TCP only.
    """

    key: str
    section: str | None
    unit: str
    kind: str = "value"
    rate_of: tuple[str, str] | None = None
    not_produced_by: frozenset[str] = frozenset()
    row: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.key}: kind {self.kind!r} not one of {KINDS}")
        if (self.kind == "rate") != (self.rate_of is not None):
            raise ValueError(f"{self.key}: a rate names (count key, exposure key), nothing else")


def _m(key, section, unit, kind="value", **more) -> Metric:
    more["not_produced_by"] = frozenset(more.get("not_produced_by", ()))
    return Metric(key, section, unit, kind, **more)


ADAPTIVE_SECTION = "adaptive heartbeats"  # simlab.engines.policy_metrics computes these
_FP, _BREAKS, _DETECT, _ACC, _COST, _ADAPT = RUN_SECTIONS[1:6] + (ADAPTIVE_SECTION,)
assert RUN_SECTIONS[7] == ADAPTIVE_SECTION
_RATE = "1/conn-hour"
# Every key a run reports, in JSON order; sweeps use it for their columns (a key
# an engine does not produce stays empty there).
METRICS = (
    _m("connections_opened", "exposure", "connections"),
    _m("connected_hours", "exposure", "h"),
    _m("false_positives", _FP, "count", "count"),
    _m("fp_per_conn_hour", _FP, _RATE, "rate", rate_of=("false_positives", "connected_hours")),
    _m("fp_per_conn_hour_ci_low", _FP, _RATE, "per-run-only"),
    _m("fp_per_conn_hour_ci_high", _FP, _RATE, "per-run-only"),
    _m("breaks", _BREAKS, "count", "count"),
    _m("breaks_crash", _BREAKS, "count", "count"),
    _m("breaks_nat", _BREAKS, "count", "count"),
    _m("breaks_tcp_timeout", _BREAKS, "count", "count"),
    _m("detections", _DETECT, "count", "count"),
    _m("detections_by_detector", _DETECT, "count", "count"),
    _m("detections_by_reset", _DETECT, "count", "count"),
    _m("detections_by_tcp_timeout", _DETECT, "count", "count"),
    _m("undetected_breaks", _DETECT, "count", "count"),
    _m("detection_latency_mean_s", _DETECT, "s"),
    _m("detection_latency_p50_s", _DETECT, "s"),
    _m("detection_latency_p95_s", _DETECT, "s"),
    _m("detection_latency_p99_s", _DETECT, "s"),
    _m("detection_latency_max_s", _DETECT, "s"),
    _m("mistakes", _ACC, "count", "count"),
    _m("mistake_rate_per_s", _ACC, "1/s"),
    _m("mistake_duration_mean_s", _ACC, "s"),
    _m("query_accuracy", _ACC, "fraction"),
    _m("heartbeats_sent", _COST, "messages"),
    _m("app_msgs_sent", _COST, "messages", row=2),
    _m("app_msgs_blackholed", _COST, "messages", "count", row=2),
    # over datagrams: 0
    _m("tcp_retransmissions", _COST, "segments", row=1),
    _m("overhead_msgs_per_conn_hour", _COST, "messages/conn-hour"),
    # fast engine, TCP: the client's radio wakeups need in-order bookkeeping it does not
    # keep (see simlab.engines.fast)
    _m("overhead_bytes_per_conn_hour", _COST, "bytes/conn-hour"),
    _m("wakeups_per_conn_hour", _COST, "wakeups/conn-hour", not_produced_by={"fast:tcp"}),
    # adaptive heartbeat policies only (simlab.engines.policy_metrics: ADAPTIVE_KEYS)
    _m("heartbeat_interval_mean_s", _ADAPT, "s"),
    _m("heartbeats_skipped", _ADAPT, "heartbeats"),
    _m("policy_breaks", _ADAPT, "count", "count"),
    _m("nat_probe_settled_fraction", _ADAPT, "fraction"),
    _m("nat_probe_converge_time_mean_s", _ADAPT, "s"),
    _m("nat_probe_converge_time_max_s", _ADAPT, "s"),
    _m("nat_probe_probes_mean", _ADAPT, "probes"),
    _m("nat_probe_failed_probes", _ADAPT, "count", "count"),
    _m("nat_probe_estimate_mean_s", _ADAPT, "s"),
    _m("nat_probe_error_mean_s", _ADAPT, "s"),
    _m("nat_probe_error_max_abs_s", _ADAPT, "s"),
    _m("nat_probe_interval_mean_s", _ADAPT, "s"),
    _m("state_time_normal", _ADAPT, "fraction"),
    _m("state_time_weak", _ADAPT, "fraction"),
    _m("state_time_high_latency", _ADAPT, "fraction"),
    _m("state_changes_per_conn_hour", _ADAPT, _RATE),
)
# The other keys a run reports, not sweep columns: the scenario, engine-specific figures
# (the fast engine's standard errors, the analytic engine's NAT figures, the rare-event
# estimate's own: its sweep columns are simlab.engines.rare.METRIC_KEYS) and provenance.
RUN_EXTRAS = (
    _m("scenario", None, "name"),
    _m("connections", "exposure", "connections", row=-1),
    _m("mistake_rate_per_s_se", None, "1/s"),
    _m("query_accuracy_se", None, "fraction"),
    _m("mistake_duration_mean_s_se", None, "s"),
    _m("detection_latency_mean_s_se", None, "s"),
    _m("nat_survives", None, "bool"),
    _m("nat_expiring_share", None, "fraction"),
    _m("nat_gap_too_long_p", None, "probability"),
    _m("nat_mean_time_to_expiry_s", None, "s"),
    _m("nat_expiries_per_mapping_hour", None, "1/mapping-hour"),
    _m("analytic_omitted", None, "text"),
    _m("fp_per_round", "rare events", "1/round"),
    _m("rare_event_method", "rare events", "text"),
    _m("rare_event_windows", "rare events", "windows"),
    _m("rare_event_effective_sample_size", "rare events", "windows"),
    _m("rare_event_rel_half_width", "rare events", "fraction"),
    _m("rare_event_budget_exhausted", "rare events", "bool"),
    _m("rare_event_truncation_bound", None, "probability"),
    _m("engine", "provenance", "name"),
    _m("engine_reason", "provenance", "text"),
    _m("seed", "provenance", "seed"),
    _m("wall_s", "provenance", "s"),
)
_BY_KEY = {m.key: m for m in (*METRICS, *RUN_EXTRAS)}


def by_key(key: str) -> Metric:
    """The registry entry of a run's key (KeyError: not registered)."""
    return _BY_KEY[key]


def sections(metrics, headings) -> list[tuple[str, list[str]]]:
    """(heading, keys) for a table: ``metrics`` grouped under ``headings``, in order (each
    section's keys by ``row``, ties in registry order; a heading with no keys is kept)."""
    rows = sorted((m for m in metrics if m.section is not None), key=lambda m: m.row)
    unknown = {m.section for m in rows} - set(headings)
    if unknown:
        raise ValueError(f"sections not in the table's headings: {sorted(unknown)}")
    return [(h, [m.key for m in rows if m.section == h]) for h in headings]


def absent_from(engine: str) -> tuple[str, ...]:
    """The keys ``engine`` never reports (``"fast:tcp"``: the fast engine over TCP), in order."""
    return tuple(m.key for m in METRICS if engine in m.not_produced_by)


METRIC_KEYS = tuple(m.key for m in METRICS)
# Counts of rare independent events: pooled over replications with Poisson intervals.
COUNT_KEYS = frozenset(m.key for m in METRICS if m.kind == "count")
# Rates whose pooled value is a count over an exposure: (count key, exposure key).
RATE_KEYS = {m.key: m.rate_of for m in METRICS if m.kind == "rate"}
# Per-run interval bounds: a sweep's summary recomputes them from pooled counts.
PER_RUN_ONLY = frozenset(m.key for m in METRICS if m.kind == "per-run-only")
# The ``simlab run`` table: (heading, keys) in order.
RUN_TABLE = sections((*METRICS, *RUN_EXTRAS), RUN_SECTIONS)
