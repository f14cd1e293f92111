"""``simlab validate``: a built-in panel of scenarios run through every engine that covers them.

Each panel scenario goes to every engine in :data:`simlab.engines.registry.ENGINES` but
``auto``; an engine that refuses (:class:`~simlab.errors.EngineRefusal`) does not
cover it (shown as ``-``). For each scenario and metric of :data:`METRICS` the
engines' values are compared pairwise:

- an exact engine (``analytic``) has no interval (standard error 0);
- a stochastic engine's interval is the one it reports (``<metric>_ci_low`` and
  ``<metric>_ci_high``, read as mean +- 1.96 SE, or ``<metric>_se``); for the
  simpy engine, metrics without a reported interval get the standard error of
  the run's pooled ratio across independent connection slots (from
  ``result.slots`` for the rates and accuracy, from the per-slot sums of
  ``result.records`` for mistake durations and detection latencies), shown as
  value +- 1.96 SE;
- two values agree when ``|a - b| <= Z * sqrt(se_a**2 + se_b**2)`` (Z = 4, plus
  a relative 1e-9 for floating-point rounding); two exact engines must agree to
  a relative 1e-9.

Seeds are fixed, so the panel's verdict is reproducible bit for bit.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np

from simlab.engines import registry as engines
from simlab.errors import EngineRefusal, Problem, ScenarioError

Z = 4.0  # standard errors of the difference: a correct pair fails about once in 16,000
CI_Z = 1.96  # a reported 95 % interval is mean +- CI_Z standard errors
EXACT_REL = 1e-9  # relative tolerance between exact values (and rounding slack for all)
EXACT_ENGINES = frozenset(e.name for e in engines.REGISTRY.values() if e.exact)
QUICK_SCALE = 0.2  # --quick: this fraction of each scenario's horizon

METRICS = (
    "fp_per_conn_hour",
    "mistake_rate_per_s",
    "mistake_duration_mean_s",
    "query_accuracy",
    "detection_latency_mean_s",
    "nat_mean_time_to_expiry_s",
)

GILBERT = {"model": "gilbert", "p_gb": 0.05, "p_bg": 0.4, "loss_good": 0.01, "loss_bad": 0.6}

_BASE = {
    "horizon": "10000s",
    "connections": 16,
    "heartbeat": {"style": "pingpong", "initiator": "server", "interval": "1s"},
    "detector": {"kind": "timeout", "timeout": "2.5s"},
    "link": {"transport": "datagram", "loss": 0.0, "delay": "50ms"},
}


def _case(name: str, seed: int, **sections) -> dict:
    """A full scenario mapping: the panel's shared defaults, updated section by section."""
    out = copy.deepcopy(_BASE) | {"name": name, "seed": seed}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# Sized so that the whole panel takes well under 20 s with the simpy engine.
# The analytic engine covers the first six (datagrams, constant delays or NFD-S
# oneway in monitor mode); TCP and NAT expiry are the simpy engine's alone.
_CASES = [
    _case(
        "oneway-timeout-monitor-gilbert",
        101,
        heartbeat={"style": "oneway", "interval": "1s"},
        detector={"timeout": "2.5s", "on_declare": "monitor"},
        link={"loss": GILBERT},
    ),
    _case(
        "pingpong-timeout-reconnect-gilbert",
        102,
        detector={"timeout": "2.5s", "on_declare": "reconnect"},
        link={"loss": GILBERT},
        reconnect={"delay": "0.5s"},
    ),
    _case(
        "pingpong-missed-reconnect-bernoulli",
        103,
        detector={"kind": "missed", "missed": {"k": 2, "ack_timeout": "0.5s"}},
        link={"loss": 0.1},
        reconnect={"delay": "0.25s"},
    ),
    _case(
        "client-missed-monitor-asymmetric",
        104,
        heartbeat={"initiator": "client"},
        detector={
            "kind": "missed",
            "missed": {"k": 2, "ack_timeout": "0.6s"},
            "on_declare": "monitor",
        },
        link={"uplink": {"loss": 0.15}, "downlink": {"loss": 0.05, "delay": "120ms"}},
    ),
    _case(
        "oneway-nfd-monitor-exponential",
        105,
        heartbeat={"style": "oneway", "interval": "1s"},
        detector={"kind": "nfd", "nfd": {"delta": "0.3s"}, "on_declare": "monitor"},
        link={"loss": 0.1, "delay": {"dist": "exponential", "mean": "200ms"}},
    ),
    _case(
        "pingpong-nfd-monitor-crash-gilbert",
        106,
        detector={"kind": "nfd", "nfd": {"delta": "1.2s"}, "on_declare": "monitor"},
        link={"loss": GILBERT, "uplink": {"loss": 0.05}},
        peer={"crash": {"mtbf": "1200s"}},
    ),
    _case(
        "tcp-timeout-reconnect-bernoulli",
        107,
        detector={"timeout": "2.5s"},
        link={"transport": "tcp", "loss": 0.05},
        reconnect={"delay": "0.5s"},
    ),
    _case(
        "nat-pingpong-timeout-reconnect",
        108,
        horizon="20000s",
        heartbeat={"interval": "20s"},
        detector={"timeout": "45s"},
        link={"loss": 0.02},
        nat={"idle_timeout": {"dist": "uniform", "low": "10s", "high": "60s"}},
    ),
    _case(
        "nat-client-pings-refresh-both-app-monitor",
        109,
        horizon="40000s",
        heartbeat={"initiator": "client", "interval": "10s"},
        detector={"timeout": "25s", "on_declare": "monitor"},
        link={"loss": 0.15, "delay": "1s"},
        nat={"idle_timeout": {"dist": "uniform", "low": "12s", "high": "25s"}, "refresh": "both"},
        app={"rate": 0.05, "direction": "up"},
    ),
]

# The fast engine's link outages (datagram; TCP through a NAT): a packet or retransmission
# sent during an outage is lost, a reconnection waits for the link; engines compared: fast
# and simpy (the analytic engine refuses outages).
_CASES += [
    _case(
        "outages-datagram-reconnect-bernoulli",
        110,
        detector={"timeout": "2.5s"},
        link={
            "loss": 0.05,
            "outages": {"mtbf": "120s", "duration": {"dist": "exponential", "mean": "3s"}},
        },
        reconnect={"delay": "0.5s"},
    ),
    _case(
        "outages-tcp-nat-crash-gilbert",
        111,
        horizon="40000s",
        connections=24,
        heartbeat={"interval": "20s"},
        detector={"timeout": "45s"},
        link={
            "transport": "tcp",
            "loss": GILBERT,
            "outages": {
                "mtbf": "300s",
                "duration": {"dist": "lognormal", "median": "8s", "sigma": 1},
            },
        },
        nat={"idle_timeout": {"dist": "uniform", "low": "25s", "high": "60s"}},
        peer={"crash": {"mtbf": "1h"}},
        reconnect={"delay": "1s"},
    ),
]

# Application traffic over TCP, both ways, as liveness (``liveness: any``): the peer's app
# messages keep a timeout barely longer than the interval from firing on every late pong;
# they share the segments' order, losses and RTO with the heartbeats; crashes, a NAT.
# Engines compared: fast and simpy (the analytic engine refuses TCP).
_CASES.append(
    _case(
        "app-liveness-any-tcp-nat-reconnect",
        114,
        horizon="20000s",
        heartbeat={"interval": "10s"},
        detector={"timeout": "10.5s", "liveness": "any"},
        link={
            "transport": "tcp",
            "loss": 0.2,
            "delay": {"dist": "lognormal", "median": "80ms", "sigma": 0.5},
        },
        nat={"idle_timeout": {"dist": "uniform", "low": "8s", "high": "40s"}},
        app={"rate": 0.3, "direction": "both"},
        peer={"crash": {"mtbf": "1h"}},
        reconnect={"delay": "1s"},
    )
)

# The peer's stalls (its event loop blocked): its heartbeats due during a stall go out when
# it ends, the schedule moving with them (here: the server pings the client's detector).
_CASES.append(
    _case(
        "stall-peer-pings-tcp-crash",
        112,
        detector={"timeout": "3s", "side": "client"},
        link={"transport": "tcp", "loss": 0.05},
        peer={
            "stall": {"mtbf": "60s", "duration": {"dist": "lognormal", "median": "2s", "sigma": 1}},
            "crash": {"mtbf": "600s"},
        },
        reconnect={"delay": "0.5s"},
    )
)

PANEL: dict[str, dict] = {case["name"]: case for case in _CASES}


# -- estimates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One engine's value of one metric: exact (se 0) or with a standard error."""

    value: float
    se: float  # 0 for an exact value; nan when it cannot be estimated (too few samples)
    exact: bool
    low: float | None = None  # the 95 % interval shown (None for an exact value)
    high: float | None = None
    source: str = "exact"  # exact | reported | slots | none

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "se": _finite(self.se),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "exact": self.exact,
            "interval": self.source,
        }


@dataclass
class Outcome:
    """What one engine made of one scenario."""

    engine: str
    status: str  # ok | refused | error
    estimates: dict[str, Estimate] = field(default_factory=dict)
    reason: str = ""
    wall_s: float = 0.0


def _finite(x):
    """JSON has no NaN or infinity: null instead."""
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _number(figures: dict, key: str) -> float | None:
    v = figures.get(key)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _ratio(y, x) -> tuple[float, float]:
    """The pooled ratio sum(y) / sum(x) over slots and its standard error across slots."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    n, total = len(x), x.sum()
    if n < 2 or total <= 0:
        return math.nan, math.nan
    r = y.sum() / total
    resid = y - r * x
    se = math.sqrt(n / (n - 1) * float(resid @ resid)) / total
    return float(r), se


def _with_se(metric: str, value: float, se: float, source: str) -> Estimate:
    """value +- 1.96 SE, kept inside the metric's range (every metric is >= 0, accuracy <= 1)."""
    if math.isnan(se):
        return Estimate(value, se, False, None, None, source)
    high = value + CI_Z * se
    if metric == "query_accuracy":
        high = min(1.0, high)
    return Estimate(value, se, False, max(0.0, value - CI_Z * se), high, source)


def _reported(figures: dict, metric: str, value: float) -> Estimate | None:
    """The engine's own interval for ``metric``, if it reports one."""
    low, high = _number(figures, f"{metric}_ci_low"), _number(figures, f"{metric}_ci_high")
    if low is not None and high is not None:
        return Estimate(value, (high - low) / (2 * CI_Z), False, low, high, "reported")
    se = _number(figures, f"{metric}_se")
    if se is not None:
        return _with_se(metric, value, se, "reported")
    return None


def figure_estimates(engine: str, figures: dict) -> dict[str, Estimate]:
    """Estimates from an engine's figures alone: exact, or with the interval it reports.

    A stochastic engine that reports no interval for a metric gets se 0 (a strict
    check, marked ``interval: none``), so a missing interval shows as a failure,
    never as a silent pass.
    """
    out = {}
    for metric in METRICS:
        value = _number(figures, metric)
        if value is None:
            continue
        if engine in EXACT_ENGINES:
            out[metric] = Estimate(value, 0.0, True)
        else:
            out[metric] = _reported(figures, metric, value) or Estimate(
                value, 0.0, False, None, None, "none"
            )
    return out


def _mistake_durations(records, monitor: bool):
    """(slot, duration) of every completed mistake, as the model measures them.

    Monitor mode: the ``trust`` rows. Reconnect mode: from each false positive to
    the next ``open`` of its slot (the mistake lasts until the new connection is up).
    """
    if monitor:
        rows = records.loc[records.event == "trust"]
        return rows["slot"].to_numpy(), rows["value"].to_numpy(dtype=float)
    slots, durations = [], []
    for slot, rows in records.groupby("slot"):
        fp = rows.loc[rows.event == "false_positive", "time"].to_numpy(dtype=float)
        opened = rows.loc[rows.event == "open", "time"].to_numpy(dtype=float)
        nxt = np.searchsorted(opened, fp, side="left")
        done = nxt < len(opened)
        durations.append(opened[nxt[done]] - fp[done])
        slots.append(np.full(int(done.sum()), slot))
    if not durations:
        return np.array([]), np.array([])
    return np.concatenate(slots), np.concatenate(durations)


def nat_lifetimes(records, ids) -> tuple[np.ndarray, np.ndarray]:
    """Per slot in ``ids``: (time the NAT mappings lived, how many of them expired).

    Their ratio is the renewal estimate of the mean lifetime: a mapping still alive at
    the horizon adds its time but no expiry, so long lives are not censored away (the
    plain mean of the completed ones is biased low). Only in monitor mode without
    crashes is a lifetime never cut short by something else (a reconnection after a
    false positive, a crash), as the analytic figure assumes.
    """
    keys = ["slot", "connection"]
    opened = records.loc[records.event == "open"].set_index(keys).time
    broke = records.loc[(records.event == "break") & (records.detail == "nat")]
    broke = broke.drop_duplicates(keys).set_index(keys).time
    closed = records.loc[records.event == "close"].drop_duplicates(keys).set_index(keys).time
    end = closed.reindex(opened.index)
    end.loc[broke.index] = broke
    life = (end - opened).dropna()
    slot_of = life.index.get_level_values("slot").to_numpy()
    lived, _ = _per_slot(ids, slot_of, life.to_numpy())
    expired, _ = _per_slot(ids, slot_of, life.index.isin(broke.index).astype(float))
    return lived, expired


def _per_slot(ids, slot_of, values):
    """Sums and counts of ``values`` by slot, in the order of ``ids`` (zeros for none)."""
    pos = {s: i for i, s in enumerate(ids)}
    index = np.array([pos[s] for s in slot_of], dtype=int)
    sums = np.bincount(index, weights=values, minlength=len(ids))
    counts = np.bincount(index, minlength=len(ids)).astype(float)
    return sums, counts


def simpy_estimates(result, scenario) -> dict[str, Estimate]:
    """Estimates from a simpy run: its reported intervals, else standard errors across slots."""
    figures, slots, records = result.summary, result.slots, result.records
    ids = slots["slot"].to_numpy()
    detections = records.loc[records.event == "detection"]
    monitor = scenario.detector.on_declare == "monitor"
    per_slot = {
        "fp_per_conn_hour": (slots.false_positives, slots.connected_s / 3600),
        "mistake_rate_per_s": (slots.false_positives, slots.alive_s),
        "query_accuracy": (slots.alive_s - slots.suspect_alive_s, slots.alive_s),
        "mistake_duration_mean_s": _per_slot(ids, *_mistake_durations(records, monitor)),
        "detection_latency_mean_s": _per_slot(
            ids, detections["slot"].to_numpy(), detections["value"].to_numpy(dtype=float)
        ),
    }
    if scenario.nat.idle_timeout is not None and monitor and scenario.peer.crash is None:
        lived, expired = nat_lifetimes(records, ids)
        if expired.sum() > 0:
            per_slot["nat_mean_time_to_expiry_s"] = (lived, expired)
            figures = {**figures, "nat_mean_time_to_expiry_s": lived.sum() / expired.sum()}
    out = {}
    for metric in METRICS:
        value = _number(figures, metric)
        if value is None:
            continue
        reported = _reported(figures, metric, value)
        if reported is not None:
            out[metric] = reported
            continue
        _, se = _ratio(*per_slot[metric])
        out[metric] = _with_se(metric, value, se, "slots")
    return out


def evaluate(scenario, engine: str) -> Outcome:
    """Run ``scenario`` through ``engine``: its estimates, or its refusal, or its error."""
    started = time.perf_counter()
    try:
        if engine == "simpy":  # directly: the slots and records give the intervals
            from simlab.engines import runner

            estimates = simpy_estimates(runner.simulate(scenario), scenario)
        else:
            estimates = figure_estimates(engine, engines.run(scenario, engine))
    except EngineRefusal as exc:
        return Outcome(engine, "refused", reason="; ".join(exc.features))
    except Exception as exc:  # an engine that crashes fails the panel; the others still run
        return Outcome(engine, "error", reason=f"{type(exc).__name__}: {exc}")
    return Outcome(engine, "ok", estimates, wall_s=time.perf_counter() - started)


# -- comparisons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    diff: float  # |a - b|
    tolerance: float
    score: float  # diff in combined standard errors, or relative for two exact values
    exact: bool  # both values exact
    agree: bool | None  # None: cannot be judged (a standard error could not be estimated)

    def as_dict(self) -> dict:
        return {
            "engines": [self.a, self.b],
            "diff": _finite(self.diff),
            "tolerance": _finite(self.tolerance),
            "score": _finite(self.score),
            "exact": self.exact,
            "agree": self.agree,
        }


def compare(a: str, ea: Estimate, b: str, eb: Estimate) -> Comparison:
    """Do two engines' values of a metric agree (module docstring)?"""
    diff = abs(ea.value - eb.value)
    scale = max(abs(ea.value), abs(eb.value))
    slack = EXACT_REL * scale
    if ea.exact and eb.exact:
        rel = diff / scale if scale > 0 else 0.0
        return Comparison(a, b, diff, slack, rel, True, diff <= slack)
    se = math.sqrt(ea.se**2 + eb.se**2)
    if math.isnan(se):
        return Comparison(a, b, diff, math.nan, math.nan, False, None)
    tolerance = Z * se + slack
    score = diff / se if se > 0 else (0.0 if diff <= slack else math.inf)
    return Comparison(a, b, diff, tolerance, score, False, diff <= tolerance)


@dataclass
class Row:
    scenario: str
    metric: str
    cells: dict[str, Estimate | None]  # by engine; None: refused, failed or not reported
    comparisons: list[Comparison]

    @property
    def agree(self) -> bool | None:
        """False if any pair disagrees; None if nothing could be compared."""
        verdicts = [c.agree for c in self.comparisons if c.agree is not None]
        if not verdicts:
            return None
        return all(verdicts)


@dataclass
class Report:
    engines: list[str]
    quick: bool
    rows: list[Row]
    outcomes: dict[str, dict[str, Outcome]]  # scenario -> engine -> outcome
    wall_s: float

    @property
    def disagreements(self) -> list[Row]:
        return [r for r in self.rows if r.agree is False]

    @property
    def errors(self) -> list[tuple[str, Outcome]]:
        return [
            (name, o)
            for name, by in self.outcomes.items()
            for o in by.values()
            if o.status == "error"
        ]

    @property
    def ok(self) -> bool:
        return not self.disagreements and not self.errors


# -- the panel -----------------------------------------------------------------------------------


def available_engines() -> list[str]:
    """Every engine ``validate`` can try: all of ``engines.ENGINES`` but ``auto``."""
    return [e for e in engines.ENGINES if e != engines.AUTO]


def parse_engines(text: str | None) -> list[str]:
    """``"simpy,analytic"`` -> ``["simpy", "analytic"]``; None: every available engine."""
    known = available_engines()
    if text is None:
        return known
    names = [t.strip() for t in text.split(",") if t.strip()]
    problems = [
        Problem("--engines", f"{n!r} is not an engine: choose from {', '.join(known)}")
        for n in names
        if n not in known
    ]
    if not names:
        problems.append(Problem("--engines", f"empty: name one or more of {', '.join(known)}"))
    if len(set(names)) != len(names):
        problems.append(Problem("--engines", f"{text!r} names an engine twice"))
    if problems:
        raise ScenarioError(problems, "simlab validate")
    return names


def panel_scenarios(quick: bool = False, panel: dict[str, dict] | None = None) -> dict:
    """The panel as Scenarios (``quick``: QUICK_SCALE of each horizon)."""
    from simlab.scenario.reader import load
    from simlab.units import parse_duration

    out = {}
    for name, mapping in (PANEL if panel is None else panel).items():
        raw = copy.deepcopy(mapping) | {"name": name}
        if quick:
            raw["horizon"] = parse_duration(raw.get("horizon", "1h")) * QUICK_SCALE
        out[name], _ = load(raw)
    return out


def run_panel(
    engine_names: list[str] | None = None,
    *,
    quick: bool = False,
    panel: dict[str, dict] | None = None,
) -> Report:
    """Every panel scenario through every engine, compared metric by metric."""
    started = time.perf_counter()
    names = available_engines() if engine_names is None else list(engine_names)
    rows, outcomes = [], {}
    for scenario_name, scenario in panel_scenarios(quick, panel).items():
        by = {e: evaluate(scenario, e) for e in names}
        outcomes[scenario_name] = by
        for metric in METRICS:
            cells = {e: by[e].estimates.get(metric) for e in names}
            present = [(e, c) for e, c in cells.items() if c is not None]
            pairs = [
                compare(a, ea, b, eb)
                for i, (a, ea) in enumerate(present)
                for b, eb in present[i + 1 :]
            ]
            rows.append(Row(scenario_name, metric, cells, pairs))
    return Report(names, quick, rows, outcomes, time.perf_counter() - started)


# -- output ----------------------------------------------------------------------------------------


def _cell(outcome: Outcome, estimate: Estimate | None) -> str:
    if outcome.status == "refused":
        return "-"
    if outcome.status == "error":
        return "error"
    if estimate is None:
        return "n/a"
    if estimate.exact:
        return f"{estimate.value:.6g}"
    if estimate.low is None:
        tail = "(no interval)" if estimate.source == "none" else "(se n/a)"
        return f"{estimate.value:.5g} {tail}"
    return f"{estimate.value:.5g} [{estimate.low:.5g}, {estimate.high:.5g}]"


def _verdict(row: Row) -> str:
    agree = row.agree
    if agree is None:
        return "n/a"
    judged = [c for c in row.comparisons if c.agree is not None]
    worst = max(judged, key=lambda c: (c.agree is False, c.score))
    score = f"rel {worst.score:.1e}" if worst.exact else f"{worst.score:.2f} SE"
    word = "yes" if agree else "NO"
    if agree is False and len(row.comparisons) > 1:
        word += f" ({worst.a} vs {worst.b})"
    return f"{word}  {score}"


def format_table(report: Report) -> str:
    """The panel as a text table, then a one-line verdict and each refusal's reason."""
    header = ["scenario", "metric", *report.engines, "agree"]
    lines = []
    for row in report.rows:
        by = report.outcomes[row.scenario]
        lines.append(
            [
                row.scenario,
                row.metric,
                *(_cell(by[e], row.cells[e]) for e in report.engines),
                _verdict(row),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])]
    previous = None
    for cells in lines:
        if previous is not None and cells[0] != previous:
            out.append("")
        shown = cells if cells[0] != previous else ["", *cells[1:]]
        previous = cells[0]
        out.append(fmt(shown))
    judged = [r for r in report.rows if r.agree is not None]
    bad = report.disagreements
    mode = " (--quick)" if report.quick else ""
    out.append("")
    out.append(
        f"{len(judged)} comparisons{mode}: {len(judged) - len(bad)} agree, {len(bad)} disagree"
        f" (tolerance {Z:g} combined standard errors; exact engines to a relative {EXACT_REL:g});"
        f" {len(report.outcomes)} scenarios in {report.wall_s:.1f} s"
    )
    out.append(
        "intervals: 95 %, the engine's own where it reports one (simpy: the exact Poisson"
        " interval of fp_per_conn_hour), else value +- 1.96 SE across connection slots;"
        " '-': the engine does not cover the scenario; n/a: no value, or nothing to compare"
    )
    for name, by in report.outcomes.items():
        for o in by.values():
            if o.status == "refused":
                out.append(f"  {o.engine} refuses {name}: {o.reason}")
            elif o.status == "error":
                out.append(f"  {o.engine} FAILED on {name}: {o.reason}")
    return "\n".join(out)


def to_json(report: Report) -> dict:
    """The panel as one JSON-ready object: a row per (scenario, metric)."""
    rows = []
    for row in report.rows:
        by = report.outcomes[row.scenario]
        engines_out = {}
        for e in report.engines:
            o, est = by[e], row.cells[e]
            status = o.status if o.status != "ok" else ("ok" if est is not None else "absent")
            engines_out[e] = {"status": status} | (est.as_dict() if est is not None else {})
        rows.append(
            {
                "scenario": row.scenario,
                "metric": row.metric,
                "agree": row.agree,
                "engines": engines_out,
                "comparisons": [c.as_dict() for c in row.comparisons],
            }
        )
    return {
        "ok": report.ok,
        "quick": report.quick,
        "engines": report.engines,
        "z": Z,
        "exact_rel": EXACT_REL,
        "scenarios": {
            name: {
                e: {"status": o.status, "reason": o.reason or None, "wall_s": o.wall_s}
                for e, o in by.items()
            }
            for name, by in report.outcomes.items()
        },
        "rows": rows,
        "disagreements": len(report.disagreements),
        "wall_s": report.wall_s,
    }
