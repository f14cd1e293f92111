"""``simlab ask``: from a question to an answer in one step: the settings to try, the sweep,
the chooser's answer and the report.

``ask(behind="aws-alb", networks=["home-wifi", "lte"], max_detection="60s",
max_false_disconnects="2/conn-day")`` picks the settings itself, in two rounds:

1. a coarse grid (:func:`coarse_settings`): ping intervals up to the longest one the
   middlebox allows (its idle timeout minus the chooser's ``NAT_ALLOWANCE_S``, over
   ``1 + jitter``) and below the detection bound, each with deadlines spread up to that
   bound (a deadline past it cannot detect a vanished peer in time);
2. a finer grid (:func:`refine_settings`) between the best feasible interval of round 1 and
   its cheaper, infeasible neighbour, where the answer's boundary lies.

Both rounds are one sweep file (``sweep.yaml``: the default question's base scenario with
the user's networks as conditions, rerunnable with ``simlab sweep``); round 2 adds points
to round 1's CSV (a point's seeds depend only on its values, so the CSV is what ``simlab
sweep sweep.yaml`` writes). The answer is :func:`simlab.lab.choose.choose`'s, and the
report :mod:`simlab.lab.report`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from simlab.engines.metrics import absent_from
from simlab.errors import Problem, ScenarioError
from simlab.io import write_atomic
from simlab.lab.choose import Choice, choose
from simlab.lab.question import (
    NAT_ALLOWANCE_S,
    OBJECTIVES,
    ChooseError,
    Constraints,
    constraints,
    seconds,
)
from simlab.lab.report import report
from simlab.scenario import fielddata, presets
from simlab.scenario.reader import Reader, load
from simlab.units import format_duration

COARSE_FRACTIONS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 5 / 6)  # of the longest interval allowed
DEADLINE_FRACTIONS = (1 / 3, 2 / 3, 1)  # of the way from the interval to the detection bound
REFINE_POINTS = 4  # intervals between the best feasible one and its infeasible neighbour
SWEEP_FILE, CSV_FILE, REPORT_FILE = "sweep.yaml", "sweep.csv", "report.html"
DEFAULTS = {"connections": 12, "horizon": "24h", "replications": 4, "seed": 1}
# the library names people write, and the label simlab.scenario.libraries.translate uses
SPOKEN = {
    "websockets": "python websockets",
    "socketio": "Socket.IO",
    "signalr": "ASP.NET Core SignalR",
    "gorilla": "gorilla/websocket",
}


# -- picking the settings (pure) --------------------------------------------------------------


def resolution(top: float) -> float:
    """The step settings are rounded to: a power of ten near 1/20 of ``top`` (1 s for 59 s)."""
    return 10.0 ** math.floor(math.log10(top / 20))


def _round(value: float, step: float) -> float:
    return round(round(value / step) * step, 9)


def interval_limit(c: Constraints, jitter: float = 0.0, k: int = 1) -> float | None:
    """The longest interval (exclusive) that can meet the bounds: the middlebox's idle timeout
    minus the chooser's allowance, over 1 + jitter; and below the detection bound over k (the
    deadline, k x interval + a grace, cannot exceed it). None: no bound on it."""
    limits = []
    if c.middlebox is not None and not c.middlebox.lifetime:
        limits.append((c.middlebox.idle_timeout_s - NAT_ALLOWANCE_S) / (1 + jitter))
    if c.max_detection_s is not None:
        limits.append(c.max_detection_s / k)
    return min(limits) if limits else None


def longest_interval(limit: float, step: float) -> float:
    """The largest multiple of ``step`` strictly below ``limit``."""
    top = math.ceil(limit / step - 1e-9) - 1
    return round(top * step, 9)


def deadlines(interval: float, bound: float, step: float, k: int = 1) -> list[float]:
    """Deadlines from just past ``k x interval`` up to the detection bound (DEADLINE_FRACTIONS
    of the way), rounded to ``step``; each above ``k x interval``."""
    low = k * interval
    unit = 5 * step if bound - low >= 15 * step else step  # round numbers where there is room
    out = sorted({_round(low + f * (bound - low), unit) for f in DEADLINE_FRACTIONS})
    return [t for t in out if t > low + step / 2 and t <= bound + 1e-9]


def coarse_settings(top: float, bound: float, step: float, k: int = 1) -> list[tuple]:
    """Round 1: (interval, deadline) pairs: COARSE_FRACTIONS of ``top`` rounded to 5 steps,
    and ``top`` itself, each with :func:`deadlines` up to ``bound``."""
    intervals = {_round(f * top, 5 * step) for f in COARSE_FRACTIONS} | {top}
    intervals = sorted(i for i in intervals if 0 < i <= top)
    return [(i, t) for i in intervals for t in deadlines(i, bound, step, k)]


def refine_settings(
    tried: Sequence[tuple], best: float | None, bound: float, step: float, k: int = 1
) -> list[tuple]:
    """Round 2: intervals strictly between ``best`` (the longest interval that met the bounds)
    and the next longer interval tried (it did not), REFINE_POINTS of them on ``step``, each
    with :func:`deadlines`. Empty when nothing met the bounds or ``best`` is the longest tried."""
    if best is None:
        return []
    longer = sorted({i for i, _ in tried if i > best + 1e-9})
    if not longer:
        return []
    gap = longer[0] - best
    inner = {
        _round(best + gap * n / (REFINE_POINTS + 1), step) for n in range(1, REFINE_POINTS + 1)
    }
    inner = sorted(i for i in inner if best + 1e-9 < i < longer[0] - 1e-9)
    seen = {(float(i), float(t)) for i, t in tried}
    return [(i, t) for i in inner for t in deadlines(i, bound, step, k) if (i, t) not in seen]


# -- the question -------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """What ``simlab ask`` was asked, checked."""

    constraints: Constraints
    networks: tuple[str, ...]
    library: str | None  # a preset of data/keepalive_defaults.csv
    connections: int
    horizon: float
    replications: int
    seed: int
    base: dict = field(hash=False)  # the sweep's base scenario (the conditions apart)
    detector: str = "timeout"  # timeout | missed
    k: int = 1  # missed: pings unanswered before the deadline
    jitter: float = 0.0


def library_preset(name: str) -> str:
    """``socketio`` -> ``socketio-default``: a preset's name, its ``-default`` or its only
    ``NAME-...`` row; otherwise the name (the loader then says what is allowed)."""
    names = list(presets.heartbeat_presets())
    if name in names:
        return name
    if f"{name}-default" in names:
        return f"{name}-default"
    starts = [n for n in names if n.startswith(f"{name}-")]
    return starts[0] if len(starts) == 1 else name


def _base(connections: int, horizon: float) -> dict:
    """The default question's base scenario (examples/sweeps/default-question.yaml)."""
    return {
        "horizon": format_duration(horizon),
        "connections": connections,
        "heartbeat": {"style": "pingpong", "initiator": "server", "jitter": 0},
        "detector": {"kind": "timeout", "liveness": "heartbeats", "on_declare": "reconnect"},
        "link": {"transport": "tcp"},
        "peer": {"crash": {"mtbf": "12h"}},
        "reconnect": {"delay": "1s"},
    }


def read_question(
    *,
    networks: Sequence[str] = (),
    max_detection=None,
    max_false_disconnects=None,
    behind=None,
    nat_timeout=None,
    minimize: str = "bytes",
    detection: str = "p95",
    library: str | None = None,
    connections=DEFAULTS["connections"],
    horizon=DEFAULTS["horizon"],
    replications=DEFAULTS["replications"],
    seed=DEFAULTS["seed"],
) -> Question:
    """Check the question; raise ChooseError listing every problem (options as on the CLI)."""
    problems: list[Problem] = []
    c = None
    try:
        c = constraints(
            max_detection, max_false_disconnects, nat_timeout, behind, minimize, detection
        )
    except ChooseError as exc:
        problems += exc.problems
    if max_detection is None:
        problems.append(
            Problem(
                "--max-detection",
                "missing: simlab ask tries deadlines up to it; give one, e.g. --max-detection 60s",
            )
        )
    if not networks:
        problems.append(
            Problem(
                "--network", "missing: give at least one, e.g. --network home-wifi --network lte"
            )
        )
    for name in networks:
        try:
            row = fielddata.network(str(name), "--network")
        except ScenarioError as exc:
            problems += exc.problems
            continue
        if not row["delay"]:
            problems.append(
                Problem(
                    "--network",
                    f"{name!r} sets only a middlebox: give it with --behind"
                    f" {row['middlebox'] or name}, and a link (home-wifi, lte, ...) with --network",
                )
            )
    if len(set(networks)) != len(networks):
        problems.append(Problem("--network", "each network once"))
    r = Reader()
    given = {"--connections": connections, "--horizon": horizon}
    given |= {"--replications": replications, "--seed": seed}
    connections = r.integer(given, "--connections", "", 1, low=1)
    horizon_s = r.duration(given, "--horizon", "", 3600.0)
    replications = r.integer(given, "--replications", "", 1, low=1)
    seed = r.integer(given, "--seed", "", 1, low=0)
    problems += r.errors
    base = _base(connections, horizon_s)
    kind, k, jitter = "timeout", 1, 0.0
    if library is not None:
        preset = library_preset(str(library))
        try:
            base = presets.apply(base, preset, spelling="cli")
            scenario, _ = load(base)
        except ScenarioError as exc:
            problems += [Problem("--library", p.message) for p in exc.problems]
        else:
            kind, jitter = scenario.detector.kind, scenario.heartbeat.jitter
            k = scenario.detector.missed.k
            if kind not in ("timeout", "missed"):
                problems.append(
                    Problem(
                        "--library",
                        f"{library!r}: its detector ({kind}) moves its deadline with what it"
                        " observes; simlab ask tries fixed deadlines (timeout or missed pings)",
                    )
                )
            if kind == "missed":
                base["detector"]["missed"]["overlap"] = True  # a grace longer than the interval
    if problems:
        raise ChooseError(problems, "simlab ask")
    return Question(
        c,
        tuple(networks),
        library_preset(str(library)) if library else None,
        connections,
        horizon_s,
        replications,
        seed,
        base,
        kind,
        k,
        jitter,
    )


# -- the sweep file -------------------------------------------------------------------------


def _leaves(value, prefix: str) -> dict:
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            out |= _leaves(sub, f"{prefix}.{key}")
        return out
    return {prefix: value}


def network_link(name: str) -> dict:
    """A network's link by part (``link.downlink.delay``, ``link.uplink.delay``, ``link.loss``,
    ``link.outages``): per-direction delays, its loss as a Gilbert-Elliott chain (a Bernoulli
    loss p never leaves its good state, so every network varies the same keys), its outages
    (None: none)."""
    keys = presets.layered(None, [name])
    delay = keys["link.delay"]
    loss = keys["link.loss"]
    if loss.get("model", "bernoulli") == "bernoulli":
        p = loss.get("p", 0.0)
        loss = {"model": "gilbert", "p_gb": 0, "p_bg": 1, "loss_good": p, "loss_bad": p}
    return {
        "link.downlink.delay": (keys.get("link.downlink") or {}).get("delay", delay),
        "link.uplink.delay": (keys.get("link.uplink") or {}).get("delay", delay),
        "link.loss": loss,
        "link.outages": keys.get("link.outages") or None,
    }


def _yaml_value(key: str, value):
    """Durations with units, as a person writes them (``15ms``, ``2h``)."""
    if isinstance(value, dict):
        return {k: _yaml_value(f"{key}.{k}", v) for k, v in value.items()}
    last = key.rsplit(".", 1)[-1]
    if isinstance(value, float) and last in {"median", "mtbf", "mean", "low", "high", "scale"}:
        return format_duration(value) if value > 0 else 0
    return value


def conditions(networks: Sequence[str]) -> tuple[dict, dict]:
    """(dotted keys every network shares, for the base; a zip group of what differs, with
    ``name``). A part whose keys differ between networks (outages on one, none on another)
    is given whole."""
    links = {n: network_link(n) for n in networks}
    rows: dict[str, dict] = {n: {} for n in networks}
    for part in links[networks[0]]:
        values = [links[n][part] for n in networks]
        leaves = [_leaves(v, part) if isinstance(v, dict) else None for v in values]
        if all(x is not None and x.keys() == leaves[0].keys() for x in leaves):
            for n, x in zip(networks, leaves, strict=True):
                rows[n] |= x
        else:
            for n, v in zip(networks, values, strict=True):
                rows[n][part] = v
    shared, varied = {}, ({"name": list(networks)} if len(networks) > 1 else {})
    for key in rows[networks[0]]:
        values = [rows[n][key] for n in networks]
        if all(v == values[0] for v in values):
            shared[key] = _yaml_value(key, values[0])
        else:
            varied[key] = [_yaml_value(key, v) for v in values]
    return shared, varied


def _set(mapping: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        mapping = mapping.setdefault(part, {})
    mapping[last] = value


def setting_keys(q: Question) -> tuple[str, str]:
    """The two keys a setting sets: the interval, and the deadline's key."""
    grace = "detector.missed.ack_timeout" if q.detector == "missed" else "detector.timeout"
    return "heartbeat.interval", grace


def sweep_mapping(q: Question, settings: Sequence[tuple]) -> dict:
    """The sweep file: the base scenario, the settings zipped, the networks zipped."""
    base = yaml.safe_load(yaml.safe_dump(q.base))  # a copy
    shared, varied = conditions(q.networks)
    # the base is whole on its own (the first network's values), as the chooser resolves
    # each setting on it; the zip then moves what differs between the networks
    for key, value in shared.items():
        _set(base, key, value)
    for key, values in varied.items():
        if key != "name":
            _set(base, key, values[0])
    if len(q.networks) == 1:
        base["name"] = q.networks[0]
    interval_key, deadline_key = setting_keys(q)
    pairs = sorted(settings)
    graces = [t - q.k * i if q.detector == "missed" else t for i, t in pairs]
    groups = [
        {
            interval_key: [format_duration(i) for i, _ in pairs],
            deadline_key: [format_duration(round(g, 9)) for g in graces],
        }
    ]
    if varied:
        groups.append(varied)
    return {
        "name": "ask-" + "-".join([*([q.library] if q.library else []), *q.networks]),
        "base": base,
        "zip": groups,
        "replications": q.replications,
        "engine": engine_for(q, base),
        "seed": q.seed,
    }


def engine_for(q: Question, base: dict) -> str:
    """``auto`` (the fastest engine that covers each point), unless an engine auto could pick
    leaves out the cost to minimize (the fast engine counts no bytes or wake-ups over TCP:
    simlab.engines.metrics): then the model, so every setting has the cost it is judged by."""
    cost = OBJECTIVES[q.constraints.minimize][0]
    transport = (base.get("link") or {}).get("transport", "tcp")
    absent = set(absent_from("fast")) | (
        set(absent_from("fast:tcp")) if transport == "tcp" else set()
    )
    return "simpy" if cost in absent else "auto"


def sweep_text(q: Question, settings: Sequence[tuple], rounds: str) -> str:
    c = q.constraints
    head = [
        "# written by simlab ask: rerun with `simlab sweep sweep.yaml --out out/NAME.csv`",
        "# the question: " + "; ".join(c.describe()),
        f"# the settings: {rounds}",
        "# the middlebox is checked by the chooser's rule (--behind/--nat-timeout), not"
        " simulated; the networks' own NATs are left out (their timeouts outlast every interval)",
    ]
    body = yaml.safe_dump(
        sweep_mapping(q, settings), sort_keys=False, width=100, default_flow_style=None
    )
    return "\n".join(head) + "\n" + body


# -- asking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What ``simlab ask`` found: the chooser's answer, the files, the rounds' settings."""

    choice: Choice
    question: Question
    sweep: Path
    csv: Path
    report: Path
    rounds: tuple[tuple[tuple, ...], ...]
    failed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _nat_floor(networks: Sequence[str]) -> float | None:
    """The shortest idle timeout of the networks' own NATs (None: none)."""
    floors = []
    for name in networks:
        value = presets.layered(None, [name]).get("nat.idle_timeout")
        if isinstance(value, dict):
            value = value.get("low", value.get("median"))
        if isinstance(value, int | float):
            floors.append(float(value))
    return min(floors) if floors else None


def plan(q: Question) -> tuple[float, float, float, list[str]]:
    """(the longest interval tried, the deadlines' bound, the step, notes)."""
    c = q.constraints
    notes = []
    limit = interval_limit(c, q.jitter, q.k)
    floor = _nat_floor(q.networks)
    if floor is not None and (limit is None or floor - NAT_ALLOWANCE_S < limit):
        limit = floor - NAT_ALLOWANCE_S
        notes.append(
            f"the networks' own NAT (idle timeout from {seconds(floor)}) caps the intervals"
            f" below {seconds(limit)}"
        )
    bound = c.max_detection_s
    step = resolution(min(limit, bound))
    return longest_interval(limit, step), bound, step, notes


def _run(q: Question, settings, rounds_text: str, out_dir: Path, *, resume, workers, progress):
    from simlab.sweeps.sweep import load_sweep, run_sweep

    path, csv = out_dir / SWEEP_FILE, out_dir / CSV_FILE
    text = sweep_text(q, settings, rounds_text)
    write_atomic(path, text)
    spec = load_sweep(path)
    return run_sweep(spec, csv, workers=workers, resume=resume, progress=progress, sweep_text=text)


def ask(
    *,
    out_dir: str | Path = "out/ask",
    workers: int | None = None,
    progress: bool = True,
    **question,
) -> Answer:
    """Ask the question (:func:`read_question`'s keywords), sweep, choose, report.

    Raises ChooseError listing every problem with the question, before any run."""
    q = read_question(**question)
    out_dir = Path(out_dir)
    taken = [out_dir / n for n in (SWEEP_FILE, CSV_FILE, REPORT_FILE) if (out_dir / n).exists()]
    if taken:
        raise ChooseError(
            [
                Problem(
                    "--out-dir",
                    f"{out_dir} already holds {', '.join(p.name for p in taken)}: remove them"
                    " or give another --out-dir",
                )
            ],
            "simlab ask",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    c = q.constraints
    top, bound, step, notes = plan(q)
    bounds = {
        "max_detection": question.get("max_detection"),
        "max_false_disconnects": question.get("max_false_disconnects"),
        "nat_timeout": question.get("nat_timeout"),
        "behind": question.get("behind"),
        "minimize": c.minimize,
    }
    if top <= 0:  # not even one step fits: the chooser says which bound cannot be met
        top = step
    first = coarse_settings(top, bound, step, q.k)
    if not first:
        first = [(top, round(top * q.k + step, 9))]
    rounds_text = (
        f"round 1: {len(first)} settings, intervals up to {seconds(top)}, deadlines up to"
        f" {seconds(bound)}"
    )
    outcome = _run(q, first, rounds_text, out_dir, resume=False, workers=workers, progress=progress)
    choice = choose(outcome.path, **bounds, detection=c.detection)
    best = choice.recommendation.interval_s if choice.feasible else None
    second = refine_settings(first, best, bound, step, q.k)
    rounds = [tuple(first)]
    if second:
        rounds.append(tuple(second))
        rounds_text += (
            f"; round 2: {len(second)} settings between {seconds(best)} (the longest interval"
            " that met the bounds) and the next longer one tried"
        )
        outcome = _run(
            q, first + second, rounds_text, out_dir, resume=True, workers=workers, progress=progress
        )
        choice = choose(outcome.path, **bounds, detection=c.detection)
    path, choice, _ = report(outcome.path, out_dir / REPORT_FILE, **bounds, detection=c.detection)
    return Answer(
        choice,
        q,
        out_dir / SWEEP_FILE,
        outcome.path,
        path,
        tuple(rounds),
        tuple(outcome.failed),
        tuple(notes),
    )


def library_setting(answer: Answer):
    """The recommendation in the words of ``--library``'s library, or None."""
    q, choice = answer.question, answer.choice
    if not q.library or not choice.feasible:
        return None
    spoken = SPOKEN.get(q.library.split("-")[0])
    if spoken is None:
        return None
    return next((lib for lib in choice.libraries if lib.library.startswith(spoken)), None)


def answer_text(answer: Answer) -> str:
    """The chooser's text, then the library's settings when ``--library`` names one."""
    lines = [str(answer.choice)]
    q, choice = answer.question, answer.choice
    if q.library and choice.feasible:
        lib = library_setting(answer)
        o = choice.recommendation
        if lib is not None:
            opts = ", ".join(
                f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in lib.options.items()
            )
            lines += ["", f"in {lib.library} ({q.library}): {opts}", f"  {lib.snippet}"]
        else:
            lines += [
                "",
                f"in {q.library}'s terms: ping every {seconds(o.interval_s)}, give up after"
                f" {seconds(o.deadline_s)} without a pong (simlab has no option names for it)",
            ]
    return "\n".join(lines)
