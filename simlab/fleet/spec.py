"""Fleet files (``kind: fleet``): a reconnect storm, read and checked like a scenario.

A fleet file describes N clients holding connections to a set of servers, the
event that knocks them off (a restart, a network blip, a rolling deploy), how
they reconnect (a policy from :mod:`simlab.rules.backoff`), what the servers can admit,
and the message stream a resumed session must catch up on::

    kind: fleet
    name: restart
    clients: 10000
    horizon: 10m             # simulated time from the trigger
    client:                  # the scenario format's heartbeat and detector sections
      heartbeat: {interval: 25s, initiator: server}
      detector: {kind: timeout, timeout: 45s, side: client}
      rtt: 50ms              # a duration or a distribution (drawn per client)
    policy: socketio         # a preset, or {name: PRESET, field: value, ...}
    server: {servers: 1, handshake_rate: 1000, backlog: 511, connect_timeout: 10s}
    trigger: {kind: restart, down: 30s, notice: close}
    messages: {rate: 0.2, process: periodic, bytes: 200}
    resume: {messages: null, time: 2m, commit_interval: 0s}

Every problem is reported at once, with its key path, the bad value and what is
allowed (and a "did you mean" for unknown keys), as for scenarios: the same
:class:`~simlab.scenario.reader.ScenarioError`, so the CLI exits with code 2.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from simlab.errors import Problem, ScenarioError
from simlab.rules import backoff
from simlab.scenario import reader as v
from simlab.scenario import schema as sc
from simlab.scenario.distributions import Constant, Distribution
from simlab.units import parse_duration

KIND = "fleet"
MAX_CLIENTS = 10_000_000

# a Socket.IO-like client: the server pings every 25 s, the client declares the
# connection dead when no ping came for pingInterval + pingTimeout (45 s)
CLIENT_DEFAULTS = {
    "heartbeat": {"style": "pingpong", "initiator": "server", "interval": 25.0},
    "detector": {"kind": "timeout", "timeout": 45.0, "side": "client"},
}
TRIGGER_KEYS = {
    "restart": ["kind", "notice", "down"],
    "blip": ["kind", "notice", "fraction", "duration"],
    "rolling": ["kind", "notice", "down", "interval"],
}
DEFAULT_NOTICE = {"restart": "close", "blip": "silent", "rolling": "close"}


@dataclass(frozen=True)
class Client:
    heartbeat: sc.Heartbeat = field(
        default_factory=lambda: sc.Heartbeat(initiator="server", interval=25.0)
    )
    detector: sc.Detector = field(default_factory=lambda: sc.Detector(timeout=45.0, side="client"))
    rtt: Distribution = Constant(0.05)  # round trip client <-> server, drawn per client

    def scenario(self, name: str = "client") -> sc.Scenario:
        """The client's connection as a scenario (for its detector)."""
        return sc.Scenario(name=name, heartbeat=self.heartbeat, detector=self.detector)


@dataclass(frozen=True)
class Server:
    servers: int = 1
    handshake_rate: float = 1000.0  # full (TLS + WebSocket) handshakes per second, per server
    workers: int = 1  # handshakes in progress at once per server (they share handshake_rate)
    backlog: int = 511  # waiting handshakes beyond which attempts are refused or dropped
    on_full: str = (
        "refuse"  # refuse (RST / 503 at once) | drop (SYN dropped: the attempt times out)
    )
    connect_timeout: float = 10.0  # a client abandons an attempt not completed by then
    while_down: str = "refuse"  # attempts to a server that is down: refuse (RST) | drop (time out)
    resume_cost: float = 0.1  # a TLS-resumed handshake costs this fraction of a full one
    resumable: float = 0.0  # share of clients whose TLS session the server can resume


@dataclass(frozen=True)
class Trigger:
    kind: str = "restart"  # restart | blip | rolling
    notice: str = "close"  # close (clients told at once) | silent (their detector notices)
    down: float = 30.0  # restart, rolling: how long each server is down
    fraction: float = 1.0  # blip: share of the connections dropped
    duration: float = 5.0  # blip: how long the affected clients' network is down
    interval: float = 60.0  # rolling: from one server going down to the next


@dataclass(frozen=True)
class Messages:
    rate: float = 0.0  # messages per second published to each client
    process: str = "periodic"  # periodic (random phase per client) | poisson
    bytes: int = 200


@dataclass(frozen=True)
class Resume:
    messages: int | None = None  # the replay buffer keeps at most this many messages per client
    time: float | None = 120.0  # ... and none older than this
    commit_interval: float = (
        0.0  # a client acknowledges its last_seq_id this often (0: every message)
    )


@dataclass(frozen=True)
class Fleet:
    name: str = "fleet"
    seed: int = 0
    clients: int = 1000
    horizon: float = 600.0
    bin: float = 1.0  # timeline resolution
    client: Client = field(default_factory=Client)
    policy: backoff.Policy = field(default_factory=lambda: backoff.PRESETS["exponential"])
    server: Server = field(default_factory=Server)
    trigger: Trigger = field(default_factory=Trigger)
    messages: Messages = field(default_factory=Messages)
    resume: Resume | None = field(default_factory=Resume)  # None: no replay buffer

    def server_outages(self) -> list[tuple[int, float, float]]:
        """(server, down at, up at) for every server the trigger takes down, in time order."""
        t = self.trigger
        if t.kind == "restart":
            return [(s, 0.0, t.down) for s in range(self.server.servers)]
        if t.kind == "rolling":
            return [
                (s, s * t.interval, s * t.interval + t.down) for s in range(self.server.servers)
            ]
        return []


TOP_KEYS = [f.name for f in dataclasses.fields(Fleet)] + ["kind"]


def is_fleet(raw: object) -> bool:
    """Whether a raw mapping is a fleet file (``kind: fleet``) rather than a scenario."""
    return isinstance(raw, dict) and raw.get("kind") == KIND


def to_dict(fleet: Fleet) -> dict:
    """Plain nested dict (seconds for durations) that loads back to an equal Fleet."""
    t = fleet.trigger
    return {
        "kind": KIND,
        "name": fleet.name,
        "seed": fleet.seed,
        "clients": fleet.clients,
        "horizon": fleet.horizon,
        "bin": fleet.bin,
        "client": {
            "heartbeat": sc.to_dict(fleet.client.heartbeat),
            "detector": sc.to_dict(fleet.client.detector),
            "rtt": sc.dist_to_dict(fleet.client.rtt),
        },
        "policy": fleet.policy.params(),
        "server": dataclasses.asdict(fleet.server),
        "trigger": {k: getattr(t, k) for k in TRIGGER_KEYS[t.kind]},
        "messages": dataclasses.asdict(fleet.messages),
        "resume": None if fleet.resume is None else dataclasses.asdict(fleet.resume),
    }


def _merge(defaults: dict, raw: object) -> object:
    """``raw`` over ``defaults``, section by section (a non-mapping ``raw`` is left to the checks)."""
    if not isinstance(raw, dict):
        return copy.deepcopy(defaults) if raw is None else raw
    out = copy.deepcopy(defaults)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _client(r: v.Reader, raw) -> Client:
    raw = _merge(CLIENT_DEFAULTS, raw)
    raw = r.mapping(raw, "client", ["heartbeat", "detector", "rtt"])
    sub = v.Reader()  # the scenario readers name their paths from the scenario's top level
    heartbeat = v._heartbeat(sub, raw.get("heartbeat"))
    detector = v._detector(sub, raw.get("detector"))
    rtt = r.distribution(raw, "rtt", "client", Client.rtt, positive=False)
    client = Client(heartbeat, detector, rtt)
    if not sub.errors:
        v._detector_checks(sub, client.scenario())
    for p in sub.errors:
        r.error(f"client.{p.path}", p.message)
    for p in sub.warnings:
        r.warn(f"client.{p.path}", p.message)
    return client


def _policy(r: v.Reader, raw) -> backoff.Policy:
    default = backoff.PRESETS["exponential"]
    if raw is None:
        return default
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        r.error("policy", f"expected a preset name or a mapping {{name: PRESET, ...}}, got {raw!r}")
        return default
    name = raw.get("name")
    names = list(backoff.PRESETS)
    if name not in backoff.PRESETS:
        hint = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        shown = "missing" if name is None else repr(name)
        r.error("policy.name", f"{shown}: must be one of {', '.join(names)}{tip}")
        return default
    base = backoff.PRESETS[name]
    keys = backoff.field_names(base)
    r.mapping(raw, "policy", ["name", *keys])
    changes, bad = {}, object()  # a reader returns ``bad`` (its default) on a problem
    for key in [k for k in keys if k in raw]:
        if key in backoff.DURATION_FIELDS:
            value = r.duration(raw, key, "policy", bad)
        elif key == "max_attempts":
            rule = "an integer >= 1 or null (never give up)"
            value = r.value(raw, key, "policy", _optional_int, bad, _at_least(1), rule)
        elif key == "factor":
            value = r.number(raw, key, "policy", bad, 1.0)
        elif key == "jitter":
            value = r.choice(raw, key, "policy", bad, list(backoff.JITTERS))
        elif key == "randomization":
            value = r.number(raw, key, "policy", bad, 0.0, 1.0)
        elif key == "immediate_first":
            value = r.boolean(raw, key, "policy", bad)
        else:  # steps
            value = _steps(r, raw[key], bad)
        if value is not bad:
            changes[key] = value
    policy = dataclasses.replace(base, **changes)
    if isinstance(policy, backoff.Exponential) and policy.cap < policy.base:
        r.error("policy.cap", f"{policy.cap:g}s is below base ({policy.base:g}s)")
    if isinstance(policy, backoff.WebsocketsIterator) and policy.factor <= 1:
        r.error("policy.factor", f"{policy.factor:g}: the websockets ladder needs a factor > 1")
    return policy


def _optional_int(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number or null, got {value!r}")
    return value


def _at_least(low: int):
    return lambda x: x is None or x >= low


def _steps(r: v.Reader, raw, bad):
    if not isinstance(raw, list) or not raw:
        r.error("policy.steps", f"expected a non-empty list of durations, got {raw!r}")
        return bad
    out = []
    for i, item in enumerate(raw):
        try:
            value = parse_duration(item)
        except ValueError as exc:
            r.error(f"policy.steps[{i}]", str(exc))
            return bad
        if value < 0:
            r.error(f"policy.steps[{i}]", f"{item!r} is not allowed: must be a duration >= 0")
            return bad
        out.append(value)
    return tuple(out)


def _server(r: v.Reader, raw) -> Server:
    p, d = "server", Server()
    raw = r.mapping(raw, p, [f.name for f in dataclasses.fields(Server)])
    return Server(
        servers=r.integer(raw, "servers", p, d.servers, low=1),
        handshake_rate=r.number(raw, "handshake_rate", p, d.handshake_rate, 0, low_open=True),
        workers=r.integer(raw, "workers", p, d.workers, low=1),
        backlog=r.integer(raw, "backlog", p, d.backlog, low=0),
        on_full=r.choice(raw, "on_full", p, d.on_full, ["refuse", "drop"]),
        connect_timeout=r.duration(raw, "connect_timeout", p, d.connect_timeout),
        while_down=r.choice(raw, "while_down", p, d.while_down, ["refuse", "drop"]),
        resume_cost=r.number(raw, "resume_cost", p, d.resume_cost, 0, 1, low_open=True),
        resumable=r.number(raw, "resumable", p, d.resumable, 0, 1),
    )


def _trigger(r: v.Reader, raw) -> Trigger:
    p, d = "trigger", Trigger()
    if raw is None:
        return d
    if not isinstance(raw, dict):
        r.error(p, f"expected a mapping with kind: {' | '.join(TRIGGER_KEYS)}, got {raw!r}")
        return d
    kind = r.choice(raw, "kind", p, d.kind, list(TRIGGER_KEYS))
    allowed = TRIGGER_KEYS[kind]
    every = sorted({k for keys in TRIGGER_KEYS.values() for k in keys})
    for key in raw:
        owners = [k for k, keys in TRIGGER_KEYS.items() if key in keys]
        if key in allowed:
            continue
        if owners:
            r.error(f"{p}.{key}", f"belongs to kind: {' or '.join(owners)}, not {kind}")
            continue
        hint = difflib.get_close_matches(str(key), every, n=1, cutoff=0.6)
        tip = f"; did you mean '{hint[0]}'?" if hint else ""
        r.error(f"{p}.{key}", f"unknown key{tip} (allowed for kind {kind}: {', '.join(allowed)})")
    return Trigger(
        kind=kind,
        notice=r.choice(raw, "notice", p, DEFAULT_NOTICE[kind], ["close", "silent"]),
        down=r.duration(raw, "down", p, d.down),
        fraction=r.number(raw, "fraction", p, d.fraction, 0, 1, low_open=True),
        duration=r.duration(raw, "duration", p, d.duration, positive=False),
        interval=r.duration(raw, "interval", p, d.interval),
    )


def _messages(r: v.Reader, raw) -> Messages:
    p, d = "messages", Messages()
    raw = r.mapping(raw, p, [f.name for f in dataclasses.fields(Messages)])
    return Messages(
        rate=r.number(raw, "rate", p, d.rate, 0),
        process=r.choice(raw, "process", p, d.process, ["periodic", "poisson"]),
        bytes=r.integer(raw, "bytes", p, d.bytes, low=1),
    )


def _resume(r: v.Reader, raw, present: bool) -> Resume | None:
    p, d = "resume", Resume()
    if present and raw is None:
        return None
    raw = r.mapping(raw, p, [f.name for f in dataclasses.fields(Resume)])
    messages = d.messages
    if "messages" in raw:
        rule = "an integer >= 0 or null (no bound)"
        messages = r.value(raw, "messages", p, _optional_int, d.messages, _at_least(0), rule)
    resume = Resume(
        messages=messages,
        time=r.duration(raw, "time", p, d.time, nullable=True),
        commit_interval=r.duration(raw, "commit_interval", p, d.commit_interval, positive=False),
    )
    if resume.messages is None and resume.time is None:
        r.error(
            p,
            "messages and time are both null: the replay buffer would grow without bound; bound one (or resume: null for no buffer)",
        )
    return resume


def _cross_checks(r: v.Reader, f: Fleet) -> None:
    """Combinations that cannot work (errors) or probably do not mean what was meant (warnings)."""
    bad = {p.path.split(".")[0] for p in r.errors}
    if "client" not in bad:
        side = f.client.scenario().detector_side
        if side != "client":
            r.error(
                "client.detector.side",
                f"the detector runs on the {side} side: a client notices a silent break only with its own detector; set client.detector.side: client",
            )
        if f.client.rtt.mean >= f.client.heartbeat.interval:
            r.error(
                "client.rtt",
                f"mean {f.client.rtt.mean:g}s is not below the heartbeat interval ({f.client.heartbeat.interval:g}s)",
            )
    if not bad & {"client", "server"} and f.server.connect_timeout <= f.client.rtt.mean:
        r.error(
            "server.connect_timeout",
            f"{f.server.connect_timeout:g}s is not longer than client.rtt (mean {f.client.rtt.mean:g}s): few attempts could complete",
        )
    if not bad & {"trigger", "server"}:
        t = f.trigger
        if t.kind == "rolling" and f.server.servers < 2:
            r.error(
                "server.servers",
                f"{f.server.servers}: a rolling deploy needs at least 2 servers (with one, use trigger.kind: restart)",
            )
        if t.kind == "rolling" and t.interval < t.down:
            r.warn(
                "trigger.interval",
                f"{t.interval:g}s is shorter than down ({t.down:g}s): several servers are down at once",
            )
        outages = f.server_outages()
        end = max([up for _, _, up in outages], default=t.duration if t.kind == "blip" else 0.0)
        if "horizon" not in bad and end >= f.horizon:
            r.warn("horizon", f"{f.horizon:g}s ends before the trigger does ({end:g}s)")
        if f.server.handshake_rate * f.server.connect_timeout < f.server.workers:
            r.warn(
                "server.handshake_rate",
                f"one handshake takes {f.server.workers / f.server.handshake_rate:g}s, longer than server.connect_timeout: every attempt times out",
            )
    if not bad & {"horizon", "bin"} and f.bin > f.horizon:
        r.error("bin", f"{f.bin:g}s is longer than the horizon ({f.horizon:g}s)")
    volume = f.clients * f.messages.rate * f.horizon
    if not bad & {"messages", "clients", "horizon"} and volume > 5e8:
        r.warn(
            "messages.rate",
            f"{volume:.3g} messages over the horizon: the replay accounting will need a lot of memory",
        )


def from_dict(raw: object, source: str = "fleet") -> tuple[Fleet, list[Problem]]:
    """Build a Fleet from a plain mapping; raise ScenarioError listing every problem."""
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping at the top level, got {type(raw).__name__}")], source
        )
    r = v.Reader()
    r.mapping(raw, "", TOP_KEYS)
    if raw.get("kind") != KIND:
        r.error("kind", f"{raw.get('kind')!r}: a fleet file says kind: {KIND}")
    d = Fleet()
    name = raw.get("name", d.name)
    if not isinstance(name, str) or not name:
        r.error("name", f"expected a non-empty string, got {name!r}")
        name = d.name
    clients = r.integer(raw, "clients", "", d.clients, low=1)
    if clients > MAX_CLIENTS:
        r.error("clients", f"{clients} is not allowed: must be <= {MAX_CLIENTS:,}")
        clients = d.clients
    fleet = Fleet(
        name=name,
        seed=r.integer(raw, "seed", "", d.seed),
        clients=clients,
        horizon=r.duration(raw, "horizon", "", d.horizon),
        bin=r.duration(raw, "bin", "", d.bin),
        client=_client(r, raw.get("client")),
        policy=_policy(r, raw.get("policy")),
        server=_server(r, raw.get("server")),
        trigger=_trigger(r, raw.get("trigger")),
        messages=_messages(r, raw.get("messages")),
        resume=_resume(r, raw.get("resume"), "resume" in raw),
    )
    _cross_checks(r, fleet)
    if r.errors:
        raise ScenarioError(r.errors, source)
    return fleet, r.warnings


def load(
    source: str | Path | dict, overrides: dict[str, object] | None = None
) -> tuple[Fleet, list[Problem]]:
    """Load a fleet file (or mapping), apply dotted overrides, validate. Returns (fleet, warnings)."""
    if isinstance(source, dict):
        raw, name = copy.deepcopy(source), "fleet"
    else:
        raw, name = v.read_yaml(source), str(source)
    if not isinstance(raw, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping at the top level, got {type(raw).__name__}")], name
        )
    for key, value in (overrides or {}).items():
        if key.startswith("policy.") and isinstance(raw.get("policy"), str):
            raw["policy"] = {"name": raw["policy"]}  # a preset name, now with changed fields
        v.set_dotted(raw, key, value)
    if overrides:
        name += " with " + ", ".join(f"{k}={val}" for k, val in overrides.items())
    return from_dict(raw, name)
