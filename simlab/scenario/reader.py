"""Read a scenario from YAML or a dict, checking everything, reporting all problems at once.

Each problem names the key path, the bad value (a short prefix of a long one, by
:func:`simlab.errors.shown`) and what is allowed; an unknown key gets a "did you
mean" suggestion. Files are read within limits (:func:`read_yaml`: a regular file
of at most 1 MiB, YAML nested at most 64 deep, aliases standing for at most
100,000 values, not empty). Impossible combinations are errors; doubtful
ones are warnings, returned beside the scenario so the CLI can print them.
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import fields
from pathlib import Path

import yaml

from simlab.errors import SHOWN, Problem, ScenarioError, shown
from simlab.io import read_text
from simlab.scenario import schema as sc
from simlab.scenario.distributions import (
    DIMENSIONLESS,
    FAMILIES,
    Constant,
    describe,
    dist_name,
    dist_params,
)
from simlab.units import ALLOWED as DURATION_ALLOWED
from simlab.units import format_duration, parse_duration

_MISSING = object()

# The longest duration accepted anywhere: far beyond anything a connection lives through,
# it keeps out values (2**63 s, a median of 1e12 days) that turn every figure into noise.
MAX_DURATION = 100 * 365.25 * 86400.0
MAX_DURATION_TEXT = "100 years (36525d)"
# A lognormal's sigma: measured delays have 0.1 to 2; at 20 the mean is already e^200 times
# the median, and past 37.7 it overflows a float.
MAX_SIGMA = 20
# Plausibility: past these a value is allowed but almost surely a slip (warnings).
# a heartbeat frame: a few bytes (a WebSocket control frame holds at most 125)
PLAUSIBLE_FRAME_BYTES = 64 * 1024
PLAUSIBLE_DELAY = 3600.0  # a one-way link delay (mean or median): seconds at worst, not hours
PLAUSIBLE_HORIZON = 365.25 * 86400.0  # simulated time per connection
PLAUSIBLE_LOSS = 0.5  # a link's mean loss probability
MAX_BYTES = 1 << 30  # a frame or message size: above 1 GiB, bytes per hour mean nothing


def _parse_duration(value: object) -> float:
    """:func:`parse_duration`, its message quoting at most a short prefix of a bad value."""
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= SHOWN):
        return parse_duration(value)  # its message quotes the value whole: short here
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass  # quoted below by a prefix; a structure is never passed on (repr would expand it)
    raise ValueError(f"expected a duration ({DURATION_ALLOWED}), got {shown(value)}")


class Reader:
    """The one reader of user input: walks a raw mapping, converting values, collecting problems.

    The contract, for scenario files, fleet files, sweep files and command-line options:

    - Nothing raises. Every problem is collected as a :class:`~simlab.errors.Problem` in
      ``errors`` (or ``warnings``, from :meth:`warn`) with its dotted key path (``path.key``;
      the key alone at the top level, ``path=""``), so a caller reports them all at once by
      raising ``ScenarioError(reader.errors, source)``.
    - :meth:`mapping` checks a section: a mapping (or None, read as empty) whose keys are
      all allowed; an unknown key gets a "did you mean" for a close allowed key.
    - The typed getters ``getter(raw, key, path, default, ...)`` return ``default`` when
      ``key`` is not in ``raw``, else the converted, checked value; on a problem they record
      it (``'<value>' is not allowed: must be <rule>``, or the converter's own message) and
      return ``default``: :meth:`duration` (units, :func:`simlab.units.parse_duration`,
      positive or >= 0, or between two bounds; never above ``MAX_DURATION``, 100 years), :meth:`number` (finite, in a range),
      :meth:`probability` (a number in [0, 1], either end open), :meth:`integer`,
      :meth:`choice` (one of the options), :meth:`boolean` and :meth:`distribution`;
      :meth:`value` takes any converter and check.
    - A command line's options are read the same way: ``raw`` maps the option names
      (``--interval``) to their values and ``path`` is ``""``.
    """

    def __init__(self):
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(path, message))

    def mapping(self, raw: object, path: str, allowed: list[str]) -> dict:
        """A section: must be a mapping whose keys are all known."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(path, f"expected a mapping with keys {allowed}, got {shown(raw)}")
            return {}
        for key in raw:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                self.error(where, f"unknown key{suggestion} (allowed: {', '.join(allowed)})")
        return raw

    def value(self, raw: dict, key: str, path: str, convert, default, check=None, allowed=""):
        """Convert ``raw[key]`` (or use the default), then check it; on a problem keep the default."""
        where = f"{path}.{key}" if path else key
        if key not in raw:
            return default
        value = raw[key]
        try:
            value = convert(value)
        except (TypeError, ValueError, OverflowError) as exc:
            self.error(where, str(exc))
            return default
        if check is not None and not check(value):
            self.error(where, f"{shown(raw[key])} is not allowed: must be {allowed}")
            return default
        return value

    def duration(
        self, raw, key, path, default, *, positive=True, nullable=False, low=None, high=None
    ):
        """A duration in seconds; with ``low`` and ``high``, between the two (inclusive)."""

        def convert(v):
            if v is None and nullable:
                return None
            return _parse_duration(v)

        def check(v):
            if v is not None and low is not None:
                return low <= v <= high
            return v is None or (v > 0 if positive else v >= 0)

        rule = "a positive duration" if positive else "a duration >= 0"
        if low is not None:
            rule = f"between {format_duration(low)} and {format_duration(high)}"
        value = self.value(
            raw, key, path, convert, default, check, rule + (" or null" if nullable else "")
        )
        # past the cap every figure is noise (a default never is past it)
        if value is not default and isinstance(value, float) and value > MAX_DURATION:
            self._too_long(f"{path}.{key}" if path else key, raw[key], value)
            return default
        return value

    def _too_long(self, where: str, raw: object, seconds: float) -> None:
        self.error(
            where,
            f"{shown(raw)} ({format_duration(seconds)}) is not allowed: must be at most "
            f"{MAX_DURATION_TEXT}",
        )

    def number(
        self, raw, key, path, default, low=None, high=None, *, low_open=False, high_open=False
    ):
        def convert(v):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"expected a number, got {shown(v)}")
            if not math.isfinite(v):
                raise ValueError(f"expected a finite number, got {shown(v)}")
            return float(v)

        def check(v):
            ok_low = low is None or (v > low if low_open else v >= low)
            ok_high = high is None or (v < high if high_open else v <= high)
            return ok_low and ok_high

        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        return self.value(
            raw, key, path, convert, default, check, " and ".join(x for x in (lo, hi) if x)
        )

    def probability(self, raw, key, path, default, *, low_open=False, high_open=False):
        """A number from 0 to 1 (``low_open``/``high_open``: without that end)."""
        return self.number(raw, key, path, default, 0, 1, low_open=low_open, high_open=high_open)

    def integer(self, raw, key, path, default, low=0, high=None):
        def convert(v):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"expected a whole number, got {shown(v)}")
            return v

        def check(v):
            return v >= low and (high is None or v <= high)

        rule = f"an integer >= {low}" + ("" if high is None else f" and <= {high}")
        return self.value(raw, key, path, convert, default, check, rule)

    def choice(self, raw, key, path, default, options):
        def check(v):
            return v in options

        return self.value(
            raw, key, path, lambda v: v, default, check, f"one of {', '.join(options)}"
        )

    def boolean(self, raw, key, path, default):
        def convert(v):
            if not isinstance(v, bool):
                raise ValueError(f"expected true or false, got {shown(v)}")
            return v

        return self.value(raw, key, path, convert, default)

    def distribution(self, raw, key, path, default, *, nullable=False, positive=True):
        """A distribution mapping ``{dist: name, ...}``, or a plain duration (a constant).

        ``positive``: every value must be above zero (timeouts, durations); delays may be 0.
        A mapping without ``dist`` changes some parameters of ``default``.
        """
        where = f"{path}.{key}" if path else key
        if key not in raw:
            return default
        value = raw[key]
        if value is None and nullable:
            return None
        if not isinstance(value, dict):
            try:
                seconds = _parse_duration(value)
            except ValueError:
                wanted = f"a duration ({DURATION_ALLOWED}) or a mapping {{dist: ...}}"
                self.error(where, f"expected {wanted}, got {shown(value)}")
                return default
            if seconds < 0 or (positive and seconds == 0):
                rule = "a positive duration" if positive else "a duration >= 0"
                self.error(where, f"{shown(value)} is not allowed: must be {rule}")
                return default
            if seconds > MAX_DURATION:
                self._too_long(where, value, seconds)
                return default
            return Constant(seconds)
        name = value.get("dist", _MISSING)
        inherited = {}
        if default is not None and name in (_MISSING, dist_name(default)):
            # a mapping of the same family (or without dist) changes some parameters of the default
            inherited = dist_params(default)
            strangers = [k for k in value if k != "dist" and k not in inherited]
            if name is _MISSING and strangers:
                self.error(
                    f"{where}.dist",
                    f"missing: must be one of {', '.join(FAMILIES)} (without it the mapping changes "
                    f"{describe(default)}, which has no {', '.join(map(str, strangers))})",
                )
                return default
            name = dist_name(default)
        if not isinstance(name, str) or name not in FAMILIES:
            said = "missing" if name is _MISSING else shown(name)
            self.error(f"{where}.dist", f"{said}: must be one of {', '.join(FAMILIES)}")
            return default
        cls, params = FAMILIES[name]
        self.mapping(value, where, ["dist", *params])
        merged = inherited | value
        args, ok = [], True
        for param in params:
            if param not in merged:
                article = "an" if name[0] in "aeiou" else "a"
                needs = ", ".join(params)
                self.error(
                    f"{where}.{param}", f"missing: {article} {name} distribution needs {needs}"
                )
                ok = False
                continue
            if param in DIMENSIONLESS:
                high = MAX_SIGMA if param == "sigma" else None
                v = self.number(merged, param, where, None, 0, high, low_open=(param == "shape"))
            else:
                must_be_positive = positive or param in ("mean", "median", "scale")
                v = self.duration(merged, param, where, None, positive=must_be_positive)
            ok = ok and v is not None
            args.append(v)
        if not ok:
            return default
        if name == "uniform" and args[0] > args[1]:
            self.error(where, f"uniform low ({args[0]:g}s) is above high ({args[1]:g}s)")
            return default
        return cls(*args)


def _keys(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def _heartbeat(r: Reader, raw) -> sc.Heartbeat:
    d, p = sc.Heartbeat(), "heartbeat"
    raw = r.mapping(raw, p, _keys(sc.Heartbeat))
    return sc.Heartbeat(
        style=r.choice(raw, "style", p, d.style, ["pingpong", "oneway"]),
        initiator=r.choice(raw, "initiator", p, d.initiator, ["server", "client", "both"]),
        interval=r.duration(raw, "interval", p, d.interval),
        jitter=r.number(raw, "jitter", p, d.jitter, 0, 1, high_open=True),
        frame_bytes=r.integer(raw, "frame_bytes", p, d.frame_bytes, high=MAX_BYTES),
        policy=_policy(r, raw.get("policy")),
    )


POLICY_KINDS = list(sc.POLICY_KEYS)


def _policy(r: Reader, raw) -> sc.Policy:
    """``heartbeat.policy``: a kind, its own keys, and an optional throttle (``policy: nat-probe`` is short for ``{kind: nat-probe}``)."""
    d, p = sc.Policy(), "heartbeat.policy"
    if isinstance(raw, str):
        raw = {"kind": raw}
    own = [k for keys in sc.POLICY_KEYS.values() for k in keys]
    raw = r.mapping(raw, p, ["kind", "throttle", *own])
    kind = r.choice(raw, "kind", p, d.kind, POLICY_KINDS)
    if "kind" not in raw or kind == raw.get("kind"):  # a bad kind is reported once, not per key
        for key in raw:
            if key in own and key not in sc.POLICY_KEYS[kind]:
                owner = next(k for k, keys in sc.POLICY_KEYS.items() if key in keys)
                r.error(f"{p}.{key}", f"belongs to kind: {owner}, not {kind}")
    throttle = None
    if raw.get("throttle") is not None:
        t, tp, td = raw["throttle"], f"{p}.throttle", sc.Throttle()
        t = r.mapping(t, tp, _keys(sc.Throttle))
        throttle = sc.Throttle(
            hidden_at=r.duration(t, "hidden_at", tp, td.hidden_at, positive=False),
            align=r.duration(t, "align", tp, td.align, positive=False),
            intensive_after=r.duration(
                t, "intensive_after", tp, td.intensive_after, positive=False
            ),
            intensive_align=r.duration(t, "intensive_align", tp, td.intensive_align),
        )
    elif kind == "throttled-client":
        throttle = sc.Throttle()  # Chrome's: 1 s alignment when hidden, one minute after 5 minutes
    nm = r.mapping(raw.get("normal"), f"{p}.normal", _keys(sc.NormalState))
    wk = r.mapping(raw.get("weak"), f"{p}.weak", _keys(sc.WeakState))
    hl = r.mapping(raw.get("high_latency"), f"{p}.high_latency", _keys(sc.HighLatencyState))
    dw, dh = sc.WeakState(), sc.HighLatencyState()
    pw, ph = f"{p}.weak", f"{p}.high_latency"
    weak = sc.WeakState(
        interval=r.duration(wk, "interval", pw, dw.interval),
        timeout=r.duration(wk, "timeout", pw, dw.timeout),
        loss=r.number(wk, "loss", pw, dw.loss, 0, 1, low_open=True),
        exit_loss=r.number(wk, "exit_loss", pw, dw.exit_loss, 0, 1),
    )
    high = sc.HighLatencyState(
        interval=r.duration(hl, "interval", ph, dh.interval),
        timeout=r.duration(hl, "timeout", ph, dh.timeout),
        rtt=r.duration(hl, "rtt", ph, dh.rtt),
        exit_rtt=r.duration(hl, "exit_rtt", ph, dh.exit_rtt, positive=False),
    )
    if weak.exit_loss > weak.loss:
        r.error(
            f"{pw}.exit_loss",
            f"{weak.exit_loss:g} is above loss ({weak.loss:g}): the state would flap; exit at or below where it enters",
        )
    if high.exit_rtt > high.rtt:
        r.error(
            f"{ph}.exit_rtt",
            f"{high.exit_rtt:g}s is above rtt ({high.rtt:g}s): the state would flap; exit at or below where it enters",
        )
    policy = sc.Policy(
        kind=kind,
        throttle=throttle,
        window=r.integer(raw, "window", p, d.window, low=2),
        hold=r.integer(raw, "hold", p, d.hold, low=1),
        late=r.duration(raw, "late", p, d.late, positive=False),
        normal=sc.NormalState(
            interval=r.duration(nm, "interval", f"{p}.normal", None, nullable=True),
            timeout=r.duration(nm, "timeout", f"{p}.normal", None, nullable=True),
        ),
        weak=weak,
        high_latency=high,
        floor=r.duration(raw, "floor", p, d.floor, nullable=True),
        ceiling=r.duration(raw, "ceiling", p, d.ceiling),
        growth=r.number(raw, "growth", p, d.growth, 1),
        step=r.duration(raw, "step", p, d.step, positive=False),
        precision=r.duration(raw, "precision", p, d.precision),
        margin=r.number(raw, "margin", p, d.margin, 0, 1, high_open=True),
        reprobe=r.duration(raw, "reprobe", p, d.reprobe, nullable=True),
    )
    if policy.growth == 1 and policy.step == 0:
        r.error(f"{p}.growth", "growth 1 and step 0 never grow the interval: raise growth or step")
    if policy.floor is not None and policy.floor > policy.ceiling:
        r.error(f"{p}.floor", f"{policy.floor:g}s is above the ceiling ({policy.ceiling:g}s)")
    return policy


def _detector(r: Reader, raw) -> sc.Detector:
    d, p = sc.Detector(), "detector"
    raw = r.mapping(raw, p, _keys(sc.Detector))
    m = r.mapping(raw.get("missed"), f"{p}.missed", _keys(sc.Missed))
    ph = r.mapping(raw.get("phi"), f"{p}.phi", _keys(sc.Phi))
    nf = r.mapping(raw.get("nfd"), f"{p}.nfd", _keys(sc.Nfd))
    ad = r.mapping(raw.get("adaptive"), f"{p}.adaptive", _keys(sc.Adaptive))
    return sc.Detector(
        kind=r.choice(raw, "kind", p, d.kind, ["timeout", "missed", "phi", "nfd", "adaptive"]),
        timeout=r.duration(raw, "timeout", p, d.timeout),
        missed=sc.Missed(
            k=r.integer(m, "k", f"{p}.missed", 2, low=1),
            ack_timeout=r.duration(m, "ack_timeout", f"{p}.missed", None, nullable=True),
            overlap=r.boolean(m, "overlap", f"{p}.missed", False),
        ),
        phi=sc.Phi(
            threshold=r.number(ph, "threshold", f"{p}.phi", 8.0, 0, 300, low_open=True),
            window=r.integer(ph, "window", f"{p}.phi", 1000, low=2),
            min_std=r.duration(ph, "min_std", f"{p}.phi", 0.1),
            acceptable_pause=r.duration(ph, "acceptable_pause", f"{p}.phi", 0.0, positive=False),
            first_estimate=r.duration(ph, "first_estimate", f"{p}.phi", None, nullable=True),
        ),
        nfd=sc.Nfd(delta=r.duration(nf, "delta", f"{p}.nfd", None, nullable=True)),
        adaptive=sc.Adaptive(
            alpha=r.duration(ad, "alpha", f"{p}.adaptive", None, nullable=True),
            window=r.integer(ad, "window", f"{p}.adaptive", 100, low=1),
        ),
        liveness=r.choice(raw, "liveness", p, d.liveness, ["heartbeats", "any"]),
        side=r.choice(raw, "side", p, d.side, ["auto", "client", "server"]),
        on_declare=r.choice(raw, "on_declare", p, d.on_declare, ["reconnect", "monitor"]),
    )


def _loss(r: Reader, raw, path, default: sc.Loss) -> sc.Loss:
    if raw is None:
        return default
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return sc.Loss(p=r.number({"p": raw}, "p", path, 0.0, 0, 1, high_open=True))
    raw = r.mapping(raw, path, _keys(sc.Loss))
    model = r.choice(raw, "model", path, default.model, ["bernoulli", "gilbert"])
    prob = dict(low=0, high=1)
    loss = sc.Loss(
        model=model,
        p=r.number(raw, "p", path, default.p, 0, 1, high_open=True),
        p_gb=r.number(raw, "p_gb", path, default.p_gb, **prob),
        p_bg=r.number(raw, "p_bg", path, default.p_bg, **prob),
        loss_good=r.number(raw, "loss_good", path, default.loss_good, **prob),
        loss_bad=r.number(raw, "loss_bad", path, default.loss_bad, **prob),
    )
    if model == "bernoulli":
        extra = [k for k in ("p_gb", "p_bg", "loss_good", "loss_bad") if k in raw]
        if extra:
            verb = "belongs" if len(extra) == 1 else "belong"
            r.error(path, f"{', '.join(extra)} {verb} to model: gilbert, not bernoulli")
    elif "p" in raw:
        r.error(
            f"{path}.p",
            "p belongs to model: bernoulli; a gilbert model takes p_gb, p_bg, loss_good, loss_bad",
        )
    elif model == "gilbert" and loss.p_gb + loss.p_bg == 0:
        r.error(path, "p_gb and p_bg are both 0: the chain never moves; give p_bg > 0")
    return loss


def _direction(r: Reader, raw, path, base: sc.Direction) -> sc.Direction:
    raw = r.mapping(raw, path, ["loss", "delay"])
    return sc.Direction(
        loss=_loss(r, raw.get("loss"), f"{path}.loss", base.loss),
        delay=r.distribution(raw, "delay", path, base.delay, positive=False),
    )


def _link(r: Reader, raw) -> sc.Link:
    p = "link"
    raw = r.mapping(raw, p, ["transport", "loss", "delay", "uplink", "downlink", "outages", "tcp"])
    base = sc.Direction(
        loss=_loss(r, raw.get("loss"), f"{p}.loss", sc.Loss()),
        delay=r.distribution(raw, "delay", p, Constant(0.02), positive=False),
    )
    outages = None
    if raw.get("outages") is not None:
        o = r.mapping(raw["outages"], f"{p}.outages", ["mtbf", "duration"])
        mtbf = r.duration(o, "mtbf", f"{p}.outages", None)
        duration = r.distribution(o, "duration", f"{p}.outages", None)
        for key, _v in (("mtbf", mtbf), ("duration", duration)):
            if key not in o:
                r.error(f"{p}.outages.{key}", "missing: outages need mtbf and duration")
        if mtbf is not None and duration is not None:
            outages = sc.Outages(mtbf, duration)
    t = r.mapping(raw.get("tcp"), f"{p}.tcp", _keys(sc.Tcp))
    td = sc.Tcp()
    tcp = sc.Tcp(
        min_rto=r.duration(t, "min_rto", f"{p}.tcp", td.min_rto),
        max_rto=r.duration(t, "max_rto", f"{p}.tcp", td.max_rto),
        max_retries=r.integer(t, "max_retries", f"{p}.tcp", td.max_retries),
        initial_rto=r.duration(t, "initial_rto", f"{p}.tcp", td.initial_rto),
    )
    if tcp.max_rto < tcp.min_rto:
        r.error(f"{p}.tcp.max_rto", f"{tcp.max_rto:g}s is below min_rto ({tcp.min_rto:g}s)")
    return sc.Link(
        transport=r.choice(raw, "transport", p, "tcp", ["tcp", "datagram"]),
        up=_direction(r, raw.get("uplink"), f"{p}.uplink", base),
        down=_direction(r, raw.get("downlink"), f"{p}.downlink", base),
        outages=outages,
        tcp=tcp,
    )


def _nat(r: Reader, raw) -> sc.Nat:
    p, d = "nat", sc.Nat()
    raw = r.mapping(raw, p, _keys(sc.Nat))
    return sc.Nat(
        idle_timeout=r.distribution(raw, "idle_timeout", p, None, nullable=True),
        refresh=r.choice(raw, "refresh", p, d.refresh, ["outbound", "both"]),
        on_expiry=r.choice(raw, "on_expiry", p, d.on_expiry, ["drop", "reset"]),
    )


def _peer(r: Reader, raw) -> sc.Peer:
    p = "peer"
    raw = r.mapping(raw, p, _keys(sc.Peer))
    crash = stall = None
    if raw.get("crash") is not None:
        c = r.mapping(raw["crash"], f"{p}.crash", ["mtbf"])
        if isinstance(raw["crash"], dict) and "mtbf" not in c:
            r.error(
                f"{p}.crash.mtbf", "missing: a crash section needs mtbf (or crash: null for none)"
            )
        mtbf = r.duration(c, "mtbf", f"{p}.crash", None, nullable=True)
        crash = sc.Crash(mtbf) if mtbf is not None else None
    if raw.get("stall") is not None:
        s = r.mapping(raw["stall"], f"{p}.stall", ["mtbf", "duration"])
        mtbf = r.duration(s, "mtbf", f"{p}.stall", None)
        duration = r.distribution(s, "duration", f"{p}.stall", None)
        for key in ("mtbf", "duration"):
            if key not in s:
                r.error(f"{p}.stall.{key}", "missing: stalls need mtbf and duration")
        if mtbf is not None and duration is not None:
            stall = sc.Stall(mtbf, duration)
    return sc.Peer(crash=crash, stall=stall)


def _cross_checks(r: Reader, s: sc.Scenario) -> None:
    """Combinations that cannot work (errors) or probably do not mean what was meant (warnings).

    Sections that already have a problem are left out: their values are defaults
    standing in for what the user wrote, and would give misleading messages.
    """
    bad = {p.path.split(".")[0] for p in r.errors}
    if not bad & {"heartbeat", "detector"}:
        _detector_checks(r, s)
    if not bad & {"heartbeat", "nat", "app"}:
        _nat_checks(r, s)
    if not bad & {"heartbeat", "detector", "nat", "app", "link"}:
        _policy_checks(r, s)
    if not bad & {"heartbeat", "horizon"} and s.heartbeat.interval > s.horizon:
        r.warn(
            "heartbeat.interval",
            f"{s.heartbeat.interval:g}s is longer than the horizon ({s.horizon:g}s): no heartbeat will be sent",
        )
    _plausibility(r, s, bad)


def _plausibility(r: Reader, s: sc.Scenario, bad: set[str]) -> None:
    """Values allowed but far outside anything physical or observed: a slip, most likely."""
    if "heartbeat" not in bad and s.heartbeat.frame_bytes > PLAUSIBLE_FRAME_BYTES:
        r.warn(
            "heartbeat.frame_bytes",
            f"{s.heartbeat.frame_bytes} bytes is implausible for a heartbeat frame (above 64 KiB; "
            "a ping is a few bytes): check the value",
        )
    if "horizon" not in bad and s.horizon > PLAUSIBLE_HORIZON:
        r.warn(
            "horizon",
            f"{format_duration(s.horizon)} of simulated time per connection is over a year: "
            "check the value (rates are per connection-hour; a day or a week is plenty)",
        )
    if "link" in bad:
        return
    up, down = s.link.up, s.link.down
    for key in ("delay", "loss"):  # one warning for a value both directions share
        same = getattr(up, key) == getattr(down, key)
        for where, direction in (
            [("link", up)] if same else [("link.uplink", up), ("link.downlink", down)]
        ):
            _plausible_direction(r, where, direction, key)


def _plausible_direction(r: Reader, where: str, direction: sc.Direction, key: str) -> None:
    if key == "delay":
        delay = direction.delay
        try:
            mean = delay.mean
        except OverflowError:
            mean = math.inf
        typical = [("median", getattr(delay, "median", None)), ("mean", mean)]
        said = next(
            ((what, v) for what, v in typical if v is not None and v > PLAUSIBLE_DELAY), None
        )
        if said is not None:
            what, v = said
            r.warn(
                f"{where}.delay",
                f"{describe(delay)} has a {what} of {format_duration(v)}, over an hour: "
                "one-way delays are milliseconds to seconds; check the value and its unit",
            )
    elif direction.loss.mean > PLAUSIBLE_LOSS:
        r.warn(
            f"{where}.loss",
            f"a mean loss of {direction.loss.mean:.3g} is over 50 %: heartbeats hardly get "
            "through; check the value",
        )


def _detector_checks(r: Reader, s: sc.Scenario) -> None:
    hb, det = s.heartbeat, s.detector
    side = s.detector_side
    senders = {"client", "server"} if hb.initiator == "both" else {hb.initiator}
    if hb.style == "oneway" and side in senders and hb.initiator != "both":
        r.error(
            "detector.side",
            f"{side!r} sends the oneway heartbeats (heartbeat.initiator: {hb.initiator}) and receives none: use the other side or auto",
        )
    if det.kind == "missed":
        if hb.style == "oneway":
            r.error(
                "detector.kind",
                "missed counts unanswered pings: it needs heartbeat.style: pingpong, not oneway",
            )
        elif side not in senders:
            r.error(
                "detector.side",
                f"missed counts unanswered pings, but {side!r} sends none (heartbeat.initiator: {hb.initiator})",
            )
        if s.ack_timeout > hb.interval and not det.missed.overlap:
            r.error(
                "detector.missed.ack_timeout",
                f"{s.ack_timeout:g}s is longer than heartbeat.interval ({hb.interval:g}s): ping windows would overlap; shorten it or set detector.missed.overlap: true",
            )
    if det.kind == "timeout" and det.timeout <= hb.interval:
        r.error(
            "detector.timeout",
            f"{det.timeout:g}s is not longer than heartbeat.interval ({hb.interval:g}s): the detector would fire between every two heartbeats",
        )
    for kind, value, key in (
        ("nfd", s.nfd_delta, "detector.nfd.delta"),
        ("adaptive", s.adaptive_alpha, "detector.adaptive.alpha"),
    ):
        if det.kind == kind and value <= 0:
            where = (
                key
                if getattr(getattr(det, kind), "delta" if kind == "nfd" else "alpha") is not None
                else "detector.timeout"
            )
            r.error(
                where,
                f"the {kind} margin is {value:g}s; it must be positive (by default it is detector.timeout - heartbeat.interval)",
            )
    if det.kind == "nfd" and hb.jitter > 0:
        r.warn(
            "detector.kind",
            "nfd (NFD-S) assumes heartbeats sent exactly every interval; with jitter its freshness points are off by up to jitter * interval",
        )


def _nat_checks(r: Reader, s: sc.Scenario) -> None:
    interval, idle = s.heartbeat.interval, s.nat.idle_timeout
    if idle is not None and interval >= idle.mean and s.app.rate == 0:
        r.warn(
            "nat.idle_timeout",
            f"heartbeat.interval ({interval:g}s) is not below the NAT idle timeout (mean {idle.mean:g}s) and there is no application traffic: expect NAT breaks",
        )


def _policy_checks(r: Reader, s: sc.Scenario) -> None:
    """Policies that cannot work with the rest of the scenario, or would do nothing."""
    hb, det, pol, p = s.heartbeat, s.detector, s.heartbeat.policy, "heartbeat.policy"
    kind = pol.kind
    if kind in ("network-state", "nat-probe", "traffic-aware"):
        if hb.initiator == "both":
            r.error(
                f"{p}.kind",
                f"{kind} runs on the side that sends heartbeats: set heartbeat.initiator to client or server, not both",
            )
        if det.kind in ("nfd", "adaptive"):
            r.error(
                f"{p}.kind",
                f"{kind} changes or skips heartbeats, but detector.kind {det.kind} assumes one every heartbeat.interval: use timeout, missed or phi",
            )
    if kind in ("network-state", "nat-probe") and hb.style == "oneway":
        r.error(
            f"{p}.kind",
            f"{kind} learns from pongs (round trips, surviving heartbeats): it needs heartbeat.style: pingpong",
        )
    if kind == "network-state":
        normal = (pol.normal.interval or hb.interval, pol.normal.timeout or det.timeout)
        for name, (interval, timeout) in (
            ("normal", normal),
            ("weak", (pol.weak.interval, pol.weak.timeout)),
            ("high_latency", (pol.high_latency.interval, pol.high_latency.timeout)),
        ):
            if det.kind == "timeout" and timeout <= interval:
                r.error(
                    f"{p}.{name}.timeout",
                    f"{timeout:g}s is not longer than the state's interval ({interval:g}s): the detector would fire between every two heartbeats",
                )
            if det.kind == "missed" and s.ack_timeout > interval and not det.missed.overlap:
                r.error(
                    "detector.missed.ack_timeout",
                    f"{s.ack_timeout:g}s is longer than the {name} state's interval ({interval:g}s): ping windows would overlap; leave it unset (it follows the interval) or set detector.missed.overlap: true",
                )
    if kind == "nat-probe" and s.nat.idle_timeout is None:
        r.warn(
            f"{p}.kind",
            f"nat-probe with no NAT on the path (nat.idle_timeout: null) grows the interval to the ceiling ({pol.ceiling:g}s)",
        )
    if kind == "traffic-aware":
        from simlab.rules.policy import make_policy

        senders = ["client", "server"] if hb.initiator == "both" else [hb.initiator]
        jobs = make_policy(s, senders[0]).requirements
        if not jobs["liveness"]:
            r.warn(
                f"{p}.kind",
                "traffic-aware will skip no heartbeat: the detector does not count application messages as signs of life (set detector.liveness: any)",
            )
        elif s.app.rate == 0:
            r.warn(
                f"{p}.kind", "traffic-aware with no application traffic (app.rate: 0) skips nothing"
            )
    if pol.throttle is not None and hb.initiator == "server" and s.detector_side == "server":
        r.warn(
            f"{p}.throttle",
            "the throttle slows the client's timers, but the client neither sends heartbeats (heartbeat.initiator: server) nor runs the detector",
        )


TOP_KEYS = [f.name for f in fields(sc.Scenario)]


def from_dict(raw: object, source: str = "scenario") -> tuple[sc.Scenario, list[Problem]]:
    """Build a Scenario from a plain mapping; raise ScenarioError listing every problem."""
    r = Reader()
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping at the top level, got {type(raw).__name__}")], source
        )
    r.mapping(raw, "", TOP_KEYS)
    d = sc.Scenario()
    name = raw.get("name", d.name)
    if not isinstance(name, str) or not name:
        r.error("name", f"expected a non-empty string, got {shown(name)}")
        name = d.name
    app = r.mapping(raw.get("app"), "app", _keys(sc.App))
    rec = r.mapping(raw.get("reconnect"), "reconnect", _keys(sc.Reconnect))
    s = sc.Scenario(
        name=name,
        horizon=r.duration(raw, "horizon", "", d.horizon),
        connections=r.integer(raw, "connections", "", d.connections, low=1),
        seed=r.integer(raw, "seed", "", d.seed),
        heartbeat=_heartbeat(r, raw.get("heartbeat")),
        detector=_detector(r, raw.get("detector")),
        link=_link(r, raw.get("link")),
        nat=_nat(r, raw.get("nat")),
        peer=_peer(r, raw.get("peer")),
        app=sc.App(
            rate=r.number(app, "rate", "app", 0.0, 0),
            bytes=r.integer(app, "bytes", "app", 200, high=MAX_BYTES),
            direction=r.choice(app, "direction", "app", "both", ["both", "up", "down"]),
        ),
        reconnect=sc.Reconnect(delay=r.duration(rec, "delay", "reconnect", 1.0, positive=False)),
    )
    _cross_checks(r, s)
    if r.errors:
        raise ScenarioError(r.errors, source)
    return s, r.warnings


def set_dotted(raw: dict, key: str, value: object) -> None:
    """``set_dotted(d, 'link.loss.p', 0.05)``: create sections as needed."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict) and (full := _expand_shorthand(part, nxt)) is not None:
            nxt = node[part] = full
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise ScenarioError(
                [Problem(key, f"cannot set: {where} is {shown(nxt)}, not a mapping")], "--set"
            )
        node = nxt
    node[parts[-1]] = value


def _expand_shorthand(key: str, value: object) -> dict | None:
    """The mapping a shorthand scalar stands for (``loss: 0.01``, ``delay: 40ms``), or None."""
    if key == "loss" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"model": "bernoulli", "p": value}
    if key == "policy" and isinstance(value, str):
        return {"kind": value}
    try:
        return {"dist": "constant", "value": parse_duration(value)}
    except ValueError:
        return None


# YAML with limits. PyYAML (already a dependency) composes a document into a tree of nodes
# before building Python objects; a subclass of its SafeLoader hooks that one step, so no
# other library (ruamel.yaml, strictyaml) is needed: the tags, the YAML 1.1 booleans and
# the floats it resolves stay exactly SafeLoader's, and what the reader refuses in them
# (a Python tag, `no`/`off` for a duration, .nan) is refused as before.
MAX_DEPTH = 64  # nesting: a scenario needs 5 levels; PyYAML's recursive composer fails near 1000
MAX_ALIAS_NODES = 100_000  # nodes reached through aliases: a "billion laughs" stops here


class YamlLimit(yaml.YAMLError):
    """A document past a limit: its message says which, where, and the bound."""


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that counts while composing: nesting depth, and the nodes each alias
    stands for (a node's size counts the nodes its aliases stand for), so a bomb of
    nested aliases is refused after a few thousand nodes, before anything is expanded.
    An alias of its own enclosing node (a recursive structure) is refused too."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliased = 0
        self._sizes: dict[yaml.Node, int] = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:  # an undefined alias: SafeLoader's own error
                if node not in self._sizes:
                    raise YamlLimit(
                        f"the alias *{event.anchor} is inside its own anchor (a recursive "
                        f"structure, endless when expanded){_at(event.start_mark)}"
                    )
                self._aliased += self._sizes[node]
                if self._aliased > MAX_ALIAS_NODES:
                    raise YamlLimit(
                        f"aliases expand to more than {MAX_ALIAS_NODES:,} values (at *"
                        f"{event.anchor}{_at(event.start_mark, ', ')}): an alias bomb? "
                        "Write the values out, or use fewer nested aliases"
                    )
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise YamlLimit(f"nested deeper than {MAX_DEPTH} levels{_at(mark)}")
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        self._sizes[node] = 1 + sum(self._sizes[c] for c in children)
        return node

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python refuses int() of over 4300 digits
            raise YamlLimit(
                f"a number of {len(node.value)} characters is too long{_at(node.start_mark)}"
            ) from None


_LimitedLoader.add_constructor("tag:yaml.org,2002:int", _LimitedLoader.construct_yaml_int)


def _at(mark, sep: str = " ") -> str:
    return "" if mark is None else f"{sep}at line {mark.line + 1}, column {mark.column + 1}"


def safe_yaml(text: str):
    """``yaml.safe_load(text)`` within the limits above (a :class:`YamlLimit` past them)."""
    try:
        return yaml.load(text, Loader=_LimitedLoader)  # a SafeLoader: no Python objects
    except RecursionError:  # cannot happen within MAX_DEPTH; a message rather than a traceback
        raise YamlLimit(f"nested too deeply (at most {MAX_DEPTH} levels)") from None


def parse_sets(items: list[str]) -> dict[str, object]:
    """``['heartbeat.interval=10s']`` -> ``{'heartbeat.interval': '10s'}`` (values read as YAML)."""
    out, problems = {}, []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(item, "expected dotted.key=value"))
            continue
        try:
            out[key.strip()] = safe_yaml(text)
        except YamlLimit as exc:
            problems.append(Problem(key, f"value {shown(text)}: {exc}"))
        except yaml.YAMLError as exc:
            problems.append(Problem(key, f"value {shown(text)} is not valid YAML: {exc}"))
    if problems:
        raise ScenarioError(problems, "--set")
    return out


EMPTY = "empty: give at least a name or one section (see examples/demo.yaml)"


def read_yaml(path: str | Path) -> dict:
    """A YAML file (scenario, fleet or sweep): bounded by :func:`simlab.io.read_text`
    and :func:`safe_yaml`; an empty one (nothing but blanks and comments) is an error."""
    path = Path(path)
    text = read_text(path, what="YAML file")
    try:
        raw = safe_yaml(text)
    except YamlLimit as exc:
        raise ScenarioError([Problem("", str(exc))], str(path)) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem("", f"not valid YAML: {exc}")], str(path)) from None
    if raw is None:
        raise ScenarioError([Problem("", f"{path} is {EMPTY}")], str(path))
    return raw


def load(
    source: str | Path | dict, overrides: dict[str, object] | None = None
) -> tuple[sc.Scenario, list[Problem]]:
    """Load a scenario file (or mapping), apply dotted overrides, validate. Returns (scenario, warnings)."""
    if isinstance(source, dict):
        raw, name = copy.deepcopy(source), "scenario"
    else:
        raw, name = read_yaml(source), str(source)
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping at the top level, got {type(raw).__name__}")], name
        )
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    if overrides:
        name += " with " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    return from_dict(raw, name)
