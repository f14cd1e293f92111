"""The chooser: from a sweep, the cheapest heartbeat setting shown to meet the user's bounds.

``choose(sweep, max_detection="60s", max_false_disconnects="1/conn-month")`` reads a sweep's
results (:mod:`simlab.sweeps.data`), judges each setting (the ``heartbeat.*`` and
``detector.*`` keys the sweep varied) by its worst condition (loss, outages, network...),
and returns a :class:`Choice`: the recommendation with its predicted figures and 95 %
intervals, runner-up alternatives, the binding constraint, each library's configuration
(:mod:`simlab.scenario.libraries`) or, when nothing qualifies, which bound cannot be met and what the
closest setting costs.

Bounds are checked against the *upper* 95 % confidence bounds, not the point estimates: a
setting qualifies only if the sweep shows, with 95 % confidence, that it meets them. A sweep
too short to show a rate that low says so rather than recommending on hope.

- detection: ``detection_latency_<q>_s`` (q = p95 by default; mean, p50, p99, max);
- false disconnects: false positives plus NAT/load-balancer idle expiries, per
  connection-hour (``false_disconnects_per_conn_hour``); bounds are written as rates such as
  ``1/conn-month`` (30 days), ``0.1/conn-day`` or ``2/conn-hour``;
- a middlebox (``nat_timeout=55`` or ``behind="aws-alb"`` from ``data/middleboxes.csv``):
  the heartbeats must refresh it, their longest gap (interval x (1 + jitter), plus 1 s for
  delay variation and a retransmission) below its idle timeout;
- the cost to minimize: heartbeat ``bytes``, radio ``wakeups`` or ``messages`` per
  connection-hour (the mean; costs within 1 % are a tie, which goes to the larger margin).

Note: ``simlab.choose`` is this module's :func:`choose` function (the package exports it);
import the module's other names with ``from simlab.lab.choose import Choice``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from simlab.engines.analytic.theory import poisson_interval
from simlab.errors import Problem, ScenarioError
from simlab.lab.choice_text import format_choice
from simlab.lab.question import (
    FALSE_DISCONNECTS,
    NAT_ALLOWANCE_S,
    OBJECTIVES,
    ChooseError,
    Constraints,
    Middlebox,
    amount,
    constraints,
    seconds,
)
from simlab.scenario.libraries import (
    LibrarySetting,
    adaptive_recipe,
    deadline,
    is_adaptive_kind,
    translate,
)
from simlab.scenario.reader import load
from simlab.scenario.schema import DURATION_KEYS, Scenario
from simlab.sweeps import data as sweepdata

TIE = 0.01  # costs within 1 % are tied


# -- the answer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95 % interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {k: _clean(getattr(self, k)) for k in ("value", "low", "high")}


@dataclass(frozen=True)
class Option:
    """One setting: its varied keys, its worst-case figures, its cost and what it fails."""

    settings: dict = field(hash=False)
    figures: dict = field(hash=False)  # metric key -> Estimate
    cost: float
    violations: tuple[str, ...] = ()
    reasons: dict = field(default_factory=dict, hash=False)  # constraint -> why it fails
    worst_condition: str = ""
    interval_s: float | None = None
    deadline_s: float | None = None
    policy: str = "fixed"  # heartbeat.policy.kind

    @property
    def adaptive(self) -> bool:
        """Whether the setting's policy moves or skips heartbeats (see libraries.ADAPTIVE_KINDS)."""
        return is_adaptive_kind(self.policy)

    def label(self) -> str:
        if not self.settings:
            return "the sweep's only setting"
        return ", ".join(f"{k} = {_value(k, v)}" for k, v in self.settings.items())

    def to_dict(self) -> dict:
        return {
            "settings": {k: _clean(v) for k, v in self.settings.items()},
            "figures": {k: e.to_dict() for k, e in self.figures.items()},
            "cost": _clean(self.cost),
            "violations": list(self.violations),
            "reasons": dict(self.reasons),
            "worst_condition": self.worst_condition,
            "interval_s": self.interval_s,
            "deadline_s": self.deadline_s,
            "policy": self.policy,
            "adaptive": self.adaptive,
        }


@dataclass(frozen=True)
class Choice:
    """The chooser's answer. ``table`` has one row per setting (worst case over conditions)
    with ``feasible`` and ``violations`` columns, for plots and notebooks."""

    feasible: bool
    recommendation: Option | None
    alternatives: tuple[Option, ...]
    binding: tuple[str, ...]
    binding_notes: tuple[str, ...]  # one sentence per binding constraint
    unmet: tuple[str, ...]
    closest: Option | None
    closest_note: str
    constraints: Constraints
    libraries: tuple[LibrarySetting, ...]
    notes: tuple[str, ...]
    source: str
    table: pd.DataFrame = field(repr=False, compare=False, hash=False)
    # when the sweep has adaptive policies: the best of them against the best fixed setting
    policies: dict | None = field(default=None, compare=False, hash=False)

    def to_dict(self) -> dict:
        return {
            "feasible": self.feasible,
            "source": self.source,
            "constraints": self.constraints.to_dict(),
            "bounds_use": "upper 95% confidence bounds",
            "recommendation": self.recommendation.to_dict() if self.recommendation else None,
            "alternatives": [o.to_dict() for o in self.alternatives],
            "binding": list(self.binding),
            "binding_notes": list(self.binding_notes),
            "unmet": list(self.unmet),
            "closest": self.closest.to_dict() if self.closest else None,
            "closest_note": self.closest_note,
            "libraries": [lib.to_dict() for lib in self.libraries],
            "notes": list(self.notes),
            "policies": None
            if self.policies is None
            else {k: _clean(v) for k, v in self.policies.items()},
        }

    def __str__(self) -> str:
        return format_choice(self)


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _value(key: str, value) -> str:
    if key.rsplit(".", 1)[-1] in DURATION_KEYS and isinstance(value, int | float):
        return seconds(float(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- judging settings -------------------------------------------------------------------------

CONSTRAINT_NAMES = ("max_detection", "max_false_disconnects", "middlebox")


def _estimate(row, key: str) -> Estimate:
    get = lambda s: float(row.get(key + s, math.nan))  # noqa: E731
    return Estimate(get("_mean"), get("_ci_low"), get("_ci_high"))


def _cost_problems(data: sweepdata.SweepData, c: Constraints) -> list[Problem]:
    """The cost to minimize must be in the sweep for every setting (an engine may not count it)."""

    def missing(key: str) -> int:
        column = data.summary.get(key + "_mean")
        return len(data.summary) if column is None else int(column.isna().sum())

    lacking = missing(c.cost_key)
    if not lacking:
        return []
    have = [name for name, (key, _) in OBJECTIVES.items() if not missing(key)]
    engine = (data.meta or {}).get("engine")
    engine = f" (engine {engine})" if engine else ""
    where = "none" if lacking == len(data.summary) else f"{lacking} of {len(data.summary)}"
    allowed = f"use --minimize {' or '.join(have)}" if have else "no cost figure is complete"
    return [
        Problem(
            "--minimize",
            f"{c.minimize!r}: {where} of the sweep's settings have {OBJECTIVES[c.minimize][1]}"
            f"{engine}; {allowed}, or sweep with engine simpy",
        )
    ]


def _resolve(base: dict | None, settings: dict) -> Scenario | None:
    try:
        scenario, _ = load(base or {}, {k: _plain(v) for k, v in settings.items()})
    except ScenarioError:
        return None
    return scenario


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def refreshes(s: Scenario, refresh: str) -> bool:
    """Whether the heartbeat traffic of ``s`` holds packets that renew a middlebox whose
    ``refresh`` rule is one of REFRESH (``none``: a lifetime cap, nothing renews it)."""
    hb = s.heartbeat
    client_sends = hb.style == "pingpong" or hb.initiator in ("client", "both")
    server_sends = hb.style == "pingpong" or hb.initiator in ("server", "both")
    if refresh == "none":
        return False
    if refresh == "outbound":  # client -> server packets; over TCP the client's ACKs count
        return client_sends or s.link.transport == "tcp"
    if refresh == "downstream":
        return server_sends
    return True  # both, any-data, unknown


def policy_kind(scenario: Scenario | None, settings: dict) -> str:
    """The setting's ``heartbeat.policy.kind`` (from its scenario, else from the swept value)."""
    if scenario is not None:
        return scenario.heartbeat.policy.kind
    for key in ("heartbeat.policy.kind", "heartbeat.policy"):
        if isinstance(settings.get(key), str):
            return settings[key]
    return "fixed"


def longest_interval(s: Scenario) -> float | None:
    """The longest nominal interval ``s``'s policy can use (None: nat-probe, which finds it)."""
    hb, p = s.heartbeat, s.heartbeat.policy
    if p.kind == "nat-probe":
        return None
    if p.kind == "network-state":
        normal = p.normal.interval if p.normal.interval is not None else hb.interval
        return max(normal, p.weak.interval, p.high_latency.interval)
    return hb.interval


def _middlebox_problem(s: Scenario | None, mb: Middlebox, simulated: bool = False) -> str:
    """Why the heartbeats of ``s`` fail to keep ``mb`` alive ('' when they do).

    ``simulated``: the sweep simulated this middlebox's timeout, so its expiries are in the
    false-disconnect figures (what a nat-probe policy, which finds the timeout by breaking
    it, is judged by)."""
    if mb.lifetime:
        return (
            f"{mb.name} closes every connection after {seconds(mb.idle_timeout_s)}"
            " whatever it carries: no heartbeat setting helps (reconnect, or raise its limit)"
        )
    if s is None:
        return "the interval is unknown (the sweep's base scenario was not found)"
    if not refreshes(s, mb.refresh):
        return f"no heartbeat packet goes the way that renews {mb.name} ({mb.refresh})"
    longest = longest_interval(s)
    if longest is None:
        if simulated:
            return ""
        return (
            "nat-probe finds the idle timeout by letting probes fail: only a sweep that"
            f" simulates this middlebox (nat.idle_timeout = {seconds(mb.idle_timeout_s)})"
            " shows what its failed probes cost"
        )
    gap = longest * (1 + s.heartbeat.jitter) + NAT_ALLOWANCE_S
    if gap >= mb.idle_timeout_s:
        return (
            f"the longest gap between heartbeats ({seconds(gap)} with"
            f" {NAT_ALLOWANCE_S:g} s allowed for delay and a retransmission) reaches the"
            f" {seconds(mb.idle_timeout_s)} idle timeout"
        )
    return ""


def _judge(
    row, c: Constraints, scenario: Scenario | None, settings: dict, nat_simulated: bool = False
) -> Option:
    figures = {
        FALSE_DISCONNECTS: _estimate(row, FALSE_DISCONNECTS),
        "fp_per_conn_hour": _estimate(row, "fp_per_conn_hour"),
        "nat_breaks_per_conn_hour": _estimate(row, "nat_breaks_per_conn_hour"),
        c.detection_key: _estimate(row, c.detection_key),
        "detection_latency_mean_s": _estimate(row, "detection_latency_mean_s"),
        "overhead_bytes_per_conn_hour": _estimate(row, "overhead_bytes_per_conn_hour"),
        "overhead_msgs_per_conn_hour": _estimate(row, "overhead_msgs_per_conn_hour"),
        "wakeups_per_conn_hour": _estimate(row, "wakeups_per_conn_hour"),
    }
    reasons: dict[str, str] = {}
    if c.max_detection_s is not None:
        high = figures[c.detection_key].high
        if math.isnan(high):
            reasons["max_detection"] = (
                "no detections in the sweep to measure it (give the scenario peer.crash)"
            )
        elif high > c.max_detection_s:
            reasons["max_detection"] = (
                f"detection {c.detection} up to {seconds(high)} > {seconds(c.max_detection_s)}"
            )
    if c.max_false_disconnects is not None:
        high = figures[FALSE_DISCONNECTS].high
        if math.isnan(high):
            reasons["max_false_disconnects"] = "no false-positive figures in the sweep"
        elif high > c.max_false_disconnects.per_hour:
            reasons["max_false_disconnects"] = (
                f"false disconnects up to {c.max_false_disconnects.shown(high)} >"
                f" {c.max_false_disconnects.shown()}"
            )
    if c.middlebox is not None:
        simulated_s = getattr(scenario.nat.idle_timeout, "value", None) if scenario else None
        simulated = nat_simulated or (
            isinstance(simulated_s, int | float)
            and abs(simulated_s - c.middlebox.idle_timeout_s) < 1e-9
        )
        why = _middlebox_problem(scenario, c.middlebox, simulated)
        if why:
            reasons["middlebox"] = why
    cost = figures[c.cost_key].value
    kind = policy_kind(scenario, settings)
    if is_adaptive_kind(kind):  # no one interval and deadline: the policy moves them
        return Option(
            settings,
            figures,
            cost,
            tuple(k for k in CONSTRAINT_NAMES if k in reasons),
            reasons,
            str(row.get("worst_condition", "") or ""),
            None,
            None,
            kind,
        )
    return Option(
        settings,
        figures,
        cost,
        tuple(k for k in CONSTRAINT_NAMES if k in reasons),
        reasons,
        str(row.get("worst_condition", "") or ""),
        scenario.heartbeat.interval if scenario else _number(settings.get("heartbeat.interval")),
        deadline(scenario) if scenario else None,
        kind,
    )


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _margin_key(o: Option, c: Constraints):
    """Among tied costs: a fixed setting (every library has it), then the lower
    false-disconnect bound, then the lower detection bound."""
    fd = o.figures[FALSE_DISCONNECTS].high
    det = o.figures[c.detection_key].high
    return (
        o.adaptive,
        math.inf if math.isnan(fd) else fd,
        math.inf if math.isnan(det) else det,
        o.cost,
        o.label(),
    )


def _rank(feasible: list[Option], c: Constraints) -> list[Option]:
    """Cheapest first; costs within TIE of the cheapest are tied and go by margin."""
    if not feasible:
        return []
    cheapest = min(o.cost for o in feasible)
    tied = [o for o in feasible if o.cost <= cheapest * (1 + TIE)]
    rest = [o for o in feasible if o.cost > cheapest * (1 + TIE)]
    return sorted(tied, key=lambda o: _margin_key(o, c)) + sorted(
        rest, key=lambda o: (o.cost, *_margin_key(o, c))
    )


def _limit_text(name: str, o: Option, c: Constraints) -> str:
    """The bound ``o`` would need for ``name``."""
    if name == "max_detection":
        high = o.figures[c.detection_key].high
        return f"--max-detection {seconds(high)}" if not math.isnan(high) else ""
    if name == "max_false_disconnects":
        return f"--max-false-disconnects {c.max_false_disconnects.shown(o.figures[FALSE_DISCONNECTS].high)}"
    return "a different middlebox"


def _cost_text(o: Option, c: Constraints) -> str:
    return f"{amount(o.cost)} {OBJECTIVES[c.minimize][1]}"


def _binding(
    best: Option, options: list[Option], c: Constraints
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which bounds keep a cheaper setting out: those whose relaxing alone would admit one."""
    cheaper = sorted(
        (
            o
            for o in options
            if o.violations and not math.isnan(o.cost) and o.cost < best.cost * (1 - TIE)
        ),
        key=lambda o: -o.cost,  # nearest in cost first
    )
    if not cheaper:
        return (), (
            "none: this is the cheapest setting in the sweep (a sweep reaching longer"
            " intervals may find a cheaper one)",
        )
    alone = {}
    for o in cheaper:
        if len(o.violations) == 1 and o.violations[0] not in alone:
            alone[o.violations[0]] = o
    if alone:
        names = tuple(k for k in CONSTRAINT_NAMES if k in alone)
        parts = []
        for name in names:
            o = alone[name]
            saving = 1 - o.cost / best.cost if best.cost else 0.0
            relax = _limit_text(name, o, c) if name != "middlebox" else ""
            tail = f"; relaxing it to {relax} would admit it" if relax else ""
            parts.append(
                f"{name}: {o.label()} costs {saving:.0%} less but fails it"
                f" ({o.reasons[name]}){tail}"
            )
        return names, tuple(parts)
    nearest = cheaper[0]
    return nearest.violations, (
        f"{' and '.join(nearest.violations)} together: the nearest cheaper setting,"
        f" {nearest.label()}, fails each ({'; '.join(nearest.reasons.values())})",
    )


def _closest(options: list[Option], c: Constraints) -> tuple[Option | None, str]:
    """The setting needing the least relaxation (worst ratio of its bound to the limit)."""

    def need(o: Option) -> float:
        ratios = []
        for name in o.violations:
            if name == "max_detection":
                high = o.figures[c.detection_key].high
                ratios.append(high / c.max_detection_s if not math.isnan(high) else math.inf)
            elif name == "max_false_disconnects":
                high = o.figures[FALSE_DISCONNECTS].high
                limit = c.max_false_disconnects.per_hour
                if math.isnan(high):
                    ratios.append(math.inf)
                else:
                    ratios.append(high / limit if limit > 0 else math.inf)
            else:
                ratios.append(math.inf)
        return max(ratios, default=1.0)

    scored = [(need(o), o.cost, o.label(), o) for o in options if not math.isnan(o.cost)]
    scored = [s for s in scored if math.isfinite(s[0])]
    if not scored:
        return None, "no setting comes close: every one fails a bound that cannot be relaxed here"
    _, _, _, best = min(scored, key=lambda s: s[:3])
    relax = [_limit_text(n, best, c) for n in best.violations if n != "middlebox"]
    return best, (
        f"{best.label()} would qualify with {' and '.join(r for r in relax if r)};"
        f" it costs {_cost_text(best, c)}"
    )


def _filter_middlebox(data: sweepdata.SweepData, c: Constraints, notes: list[str]):
    """Keep the sweep's points simulated with the user's middlebox timeout, if it varied it."""
    summary, conditions = data.summary, data.conditions
    key = "nat.idle_timeout"
    if c.middlebox is None or key not in conditions:
        return summary
    values = pd.to_numeric(summary[key], errors="coerce")
    match = (values - c.middlebox.idle_timeout_s).abs() < 1e-9
    if match.any():
        notes.append(
            f"only the points simulated with nat.idle_timeout = "
            f"{seconds(c.middlebox.idle_timeout_s)} are used"
        )
        return summary[match]
    notes.append(
        f"the sweep did not simulate a {seconds(c.middlebox.idle_timeout_s)} NAT timeout:"
        " all its NAT timeouts are kept (the worst counts) and the middlebox is checked by rule"
    )
    return summary


def choose(
    sweep,
    max_detection=None,
    max_false_disconnects=None,
    nat_timeout=None,
    behind=None,
    minimize: str = "bytes",
    *,
    detection: str = "p95",
    alternatives: int = 3,
) -> Choice:
    """The cheapest setting of ``sweep`` meeting the bounds (see the module's docstring).

    ``sweep``: a sweep's CSV (or ``.summary.csv``) path, the DataFrame :func:`simlab.sweep`
    returns, or a :class:`simlab.sweeps.data.SweepData`. ``max_detection``: a duration
    (``"60s"``, seconds); ``max_false_disconnects``: a rate (``"1/conn-month"``, or a number
    per connection-hour); ``nat_timeout`` (a duration) or ``behind`` (a middlebox slug from
    ``data/middleboxes.csv``); ``minimize``: bytes, wakeups or messages.

    Raises ChooseError (a ScenarioError) listing every problem with the input.
    """
    c, data = _read_question(
        sweep, max_detection, max_false_disconnects, nat_timeout, behind, minimize, detection
    )
    notes = _first_notes(data)
    table, options, scenarios = _judge_all(data, c, notes)
    ranked = _rank([o for o in options if not o.violations and not math.isnan(o.cost)], c)
    policies = adaptive_vs_fixed(options, ranked, c)
    if policies is not None:
        notes[2] = (
            f"costs within {TIE:.0%} are a tie, which goes to a fixed setting over an adaptive"
            " policy (every library has it built in), then to the larger margin"
        )
        if not ranked:
            notes.append(policies["note"])
    if ranked:
        return _recommendation(
            ranked, options, scenarios, c, notes, data, table, policies, alternatives
        )
    return _no_recommendation(options, c, notes, data, table, policies)


def _read_question(
    sweep, max_detection, max_false_disconnects, nat_timeout, behind, minimize, detection
):
    """Stage 1: the question and the sweep, read and checked together (every problem at once)."""
    problems: list[Problem] = []
    try:
        c = constraints(
            max_detection, max_false_disconnects, nat_timeout, behind, minimize, detection
        )
    except ChooseError as exc:
        problems += exc.problems
    try:
        data = sweep if isinstance(sweep, sweepdata.SweepData) else sweepdata.read(sweep)
    except ScenarioError as exc:
        problems += [Problem(p.path or "SWEEP", p.message) for p in exc.problems]
    if not problems and not data.has_heartbeat:
        problems.append(
            Problem(
                "SWEEP",
                f"{data.source}: a reconnect-storm sweep (its base is a fleet file) has no"
                " heartbeat figures to choose a setting from; simlab report shows how each of"
                " its settings recovers (the after-the-disconnect section)",
            )
        )
    if not problems:
        problems += _cost_problems(data, c)
    if problems:
        raise ChooseError(problems, "simlab choose")
    return c, data


def _first_notes(data: sweepdata.SweepData) -> list[str]:
    """Stage 2: the notes every answer carries (how bounds are checked, what is worst-cased)."""
    notes = [
        "bounds are checked against the upper 95 % confidence bounds of the figures, not the"
        " point estimates",
        "false disconnects = false positives (declarations on live connections) + middlebox"
        " idle expiries, per connection",
        f"costs within {TIE:.0%} are a tie, which goes to the larger margin",
    ]
    moving = [k for k in data.conditions if data.summary[k].nunique(dropna=False) > 1]
    if moving:
        varied = (
            "name: " + ", ".join(map(str, dict.fromkeys(data.summary["name"])))
            if "name" in moving
            else ", ".join(moving)
        )
        notes.append(f"each figure is the worst over the conditions the sweep varies ({varied})")
    if data.base is None:
        notes.append(
            "the sweep's base scenario was not found: keys the sweep did not vary are"
            " taken at simlab's defaults for the library settings"
        )
    return notes


def _judge_all(data: sweepdata.SweepData, c: Constraints, notes: list[str]):
    """Stage 3: every setting's worst case over the conditions, judged against the bounds:
    (the table with cost, feasible and violations columns, the options, their scenarios)."""
    summary = _filter_middlebox(data, c, notes)
    nat_simulated = (
        c.middlebox is not None
        and "nat.idle_timeout" in data.conditions
        and bool(
            (
                (
                    pd.to_numeric(summary["nat.idle_timeout"], errors="coerce")
                    - c.middlebox.idle_timeout_s
                ).abs()
                < 1e-9
            ).all()
        )
    )
    table = sweepdata.worst_case(summary, data.settings, data.conditions)
    options, scenarios = [], []
    for _, row in table.iterrows():
        settings = {k: _plain(row[k]) for k in data.settings}
        scenario = _resolve(data.base, settings)
        scenarios.append(scenario)
        options.append(_judge(row, c, scenario, settings, nat_simulated))
    table = table.assign(
        cost=[o.cost for o in options],
        feasible=[not o.violations and not math.isnan(o.cost) for o in options],
        violations=["; ".join(o.violations) for o in options],
    )
    _exposure_note(summary, c, notes)
    return table, options, scenarios


def _recommendation(ranked, options, scenarios, c, notes, data, table, policies, alternatives):
    """Stage 4a: the cheapest feasible setting, what binds it, and its library settings."""
    best = ranked[0]
    binding, binding_notes = _binding(best, options, c)
    scenario = scenarios[options.index(best)]
    if best.adaptive:
        libraries = adaptive_recipe(scenario) if scenario is not None else ()
        notes.append(
            f"no library has heartbeat.policy.kind {best.policy} built in: the"
            " recommendation is an application-level recipe"
            + (
                f"; for a library setting alone, the best fixed one is {policies['best_fixed']}"
                if policies and policies.get("best_fixed")
                else ""
            )
        )
    else:
        libraries = translate(scenario) if scenario is not None else ()
    if scenario is not None and not libraries:
        notes.append(
            f"detector.kind {scenario.detector.kind} moves its deadline with what it"
            " observes: the libraries' fixed deadlines cannot express it"
        )
    return Choice(
        True,
        best,
        tuple(ranked[1 : 1 + alternatives]),
        binding,
        binding_notes,
        (),
        None,
        "",
        c,
        libraries,
        tuple(notes),
        data.source,
        table,
        policies,
    )


def _no_recommendation(options, c, notes, data, table, policies) -> Choice:
    """Stage 4b: no setting meets the bounds: which bound cannot be met, and the closest setting."""
    unmet = tuple(
        name
        for name in CONSTRAINT_NAMES
        if any(name in o.violations for o in options) and all(name in o.violations for o in options)
    )
    closest, closest_note = _closest(options, c)
    for name in unmet:
        best_seen = _best_seen(name, options, c)
        if best_seen:
            notes.append(f"{name} cannot be met: {best_seen}")
    if not unmet:
        failing = sorted({n for o in options for n in o.violations})
        unmet_note = (
            "each bound is met by some setting, but none meets "
            + " and ".join(failing)
            + " at once"
        )
        notes.append(unmet_note)
    return Choice(
        False,
        None,
        (),
        (),
        (),
        unmet,
        closest,
        closest_note,
        c,
        (),
        tuple(notes),
        data.source,
        table,
        policies,
    )


def adaptive_vs_fixed(options: list[Option], ranked: list[Option], c: Constraints) -> dict | None:
    """The best adaptive policy against the best fixed setting, on the user's bounds.

    None when the sweep has no adaptive setting. ``verdict``: ``adaptive`` (it costs more
    than TIE less than the best fixed setting), ``tie`` (within TIE: the fixed one is
    recommended, every library has it), ``fixed`` (the adaptive one costs more),
    ``adaptive-only`` / ``fixed-only`` (only one kind meets the bounds) or ``none``.
    ``saved_fraction``: the cost the adaptive policy saves, as a fraction of the fixed one's
    (:func:`simlab.lab.policies.overhead_saved`; negative: it costs more).
    """
    from simlab.lab.policies import overhead_saved

    if not any(o.adaptive for o in options):
        return None
    what = OBJECTIVES[c.minimize][1]
    fixed = next((o for o in ranked if not o.adaptive), None)
    adaptive = next((o for o in ranked if o.adaptive), None)
    out = {
        "best_fixed": fixed.label() if fixed else None,
        "best_adaptive": adaptive.label() if adaptive else None,
        "cost_key": c.cost_key,
        "fixed_cost": fixed.cost if fixed else None,
        "adaptive_cost": adaptive.cost if adaptive else None,
        "saved": None,
        "saved_fraction": None,
    }
    if fixed and adaptive:
        saved = overhead_saved({c.cost_key: adaptive.cost}, {c.cost_key: fixed.cost}, c.cost_key)
        share = saved["saved_fraction"]
        out.update(saved=saved["saved"], saved_fraction=share)
        costs = f"{amount(adaptive.cost)} against {amount(fixed.cost)} {what}"
        if share > TIE:
            out["verdict"] = "adaptive"
            out["note"] = (
                f"the adaptive policy {adaptive.label()} beats every fixed setting that meets"
                f" the bounds: it saves {share:.1%} of the {what} of the best fixed one,"
                f" {fixed.label()} ({costs})"
            )
        elif share >= -TIE:
            out["verdict"] = "tie"
            out["note"] = (
                f"the adaptive policy {adaptive.label()} costs within {TIE:.0%} of the best"
                f" fixed setting, {fixed.label()} ({share:+.1%} saved; {costs}): a tie, which"
                " goes to the fixed setting (every library has it built in)"
            )
        else:
            out["verdict"] = "fixed"
            out["note"] = (
                f"no adaptive policy beats the best fixed setting, {fixed.label()}: the best"
                f" adaptive one, {adaptive.label()}, costs {-share:.1%} more ({costs})"
            )
    elif adaptive:
        out["verdict"] = "adaptive-only"
        out["note"] = (
            f"no fixed setting in the sweep meets the bounds; the adaptive policy"
            f" {adaptive.label()} does"
        )
    elif fixed:
        out["verdict"] = "fixed-only"
        failing = sorted(
            (o for o in options if o.adaptive and not math.isnan(o.cost)), key=lambda o: o.cost
        )
        why = (
            f": the cheapest, {failing[0].label()}, fails"
            f" {'; '.join(failing[0].reasons.values()) or 'a bound'}"
            if failing
            else ""
        )
        out["note"] = (
            f"no adaptive policy in the sweep meets the bounds{why}; the best fixed setting is"
            f" {fixed.label()}"
        )
    else:
        out["verdict"] = "none"
        out["note"] = "neither a fixed setting nor an adaptive policy in the sweep meets the bounds"
    return out


def _best_seen(name: str, options: list[Option], c: Constraints) -> str:
    """What the sweep's best setting achieves on one bound, in words."""
    if name == "max_detection":
        highs = [o.figures[c.detection_key].high for o in options]
        highs = [h for h in highs if not math.isnan(h)]
        return f"the lowest upper bound in the sweep is {seconds(min(highs))}" if highs else ""
    if name == "max_false_disconnects":
        highs = [o.figures[FALSE_DISCONNECTS].high for o in options]
        highs = [h for h in highs if not math.isnan(h)]
        shown = c.max_false_disconnects.shown(min(highs)) if highs else ""
        return f"the lowest upper bound in the sweep is {shown}" if highs else ""
    reasons = {o.reasons.get(name, "") for o in options}
    return "; ".join(sorted(r for r in reasons if r))[:400]


def _exposure_note(summary: pd.DataFrame, c: Constraints, notes: list[str]) -> None:
    """Say so when the sweep is too short to show a false-disconnect rate below the bound."""
    if c.max_false_disconnects is None or "connected_hours_mean" not in summary:
        return
    exposure = (summary["connected_hours_mean"] * summary["replications"]).max()
    if not exposure > 0:
        return
    floor = poisson_interval(0, float(exposure))[1]
    if floor > c.max_false_disconnects.per_hour:
        notes.append(
            f"the sweep cannot show a rate as low as {c.max_false_disconnects.shown()}: with"
            f" {exposure:,.0f} connection-hours per point, even zero events only bounds it"
            f" below {c.max_false_disconnects.shown(floor)}; run more connections,"
            " a longer horizon or more replications"
        )
