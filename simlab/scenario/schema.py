"""The scenario: one experiment, as typed frozen objects.

A scenario file (YAML) is read by :mod:`simlab.scenario.reader` into these classes.
Every time is in seconds; every field has the default a user would expect.
Sweeps and ``--set`` vary dotted keys (``heartbeat.interval``) of the same
objects: :func:`to_dict` gives the plain form those keys address.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from simlab.scenario.distributions import (
    DIMENSIONLESS,
    FAMILIES,
    Distribution,
    dist_name,
    dist_params,
)

# Field metadata of a duration: seconds in the object, read with parse_duration (a
# Distribution field: a plain duration is a constant; its mapping's parameters are
# seconds but the dimensionless ones).
SECONDS = {"unit": "s"}


def seconds(default=dataclasses.MISSING):
    """A duration field (seconds) with this default (none: required)."""
    return field(default=default, metadata=SECONDS)


@dataclass(frozen=True)
class Throttle:
    """A hidden browser tab's timer throttling (Chrome's): see :class:`simlab.rules.policy.TimerThrottle`."""

    hidden_at: float = seconds(0.0)  # the page is hidden from this time on
    align: float = seconds(1.0)  # hidden: timers fire on multiples of this (0: not throttled)
    intensive_after: float = seconds(300.0)  # hidden this long: intensive throttling
    intensive_align: float = seconds(60.0)  # then timers fire on multiples of this


@dataclass(frozen=True)
class NormalState:
    interval: float | None = seconds(None)  # None: heartbeat.interval
    timeout: float | None = seconds(None)  # None: detector.timeout


@dataclass(frozen=True)
class WeakState:
    interval: float = seconds(15.0)
    timeout: float = seconds(45.0)
    loss: float = 0.1  # enter at this loss fraction over the window
    exit_loss: float = 0.02  # leave at or below this one


@dataclass(frozen=True)
class HighLatencyState:
    interval: float = seconds(45.0)
    timeout: float = seconds(90.0)
    rtt: float = seconds(1.0)  # enter at this median round-trip time over the window
    exit_rtt: float = seconds(0.6)  # leave at or below this one


@dataclass(frozen=True)
class Policy:
    """How the interval is chosen (:mod:`simlab.rules.policy`); the keys of other kinds are unused."""

    kind: str = "fixed"  # fixed | network-state | nat-probe | traffic-aware | throttled-client
    throttle: Throttle | None = None  # any kind: the client's timers are throttled
    # network-state
    window: int = 20  # pings over which loss and RTT are measured
    hold: int = 10  # pings a state is held at least
    # a pong this much later than the window's median RTT counts as a loss
    late: float = seconds(0.15)
    normal: NormalState = field(default_factory=NormalState)
    weak: WeakState = field(default_factory=WeakState)
    high_latency: HighLatencyState = field(default_factory=HighLatencyState)
    # nat-probe
    floor: float | None = seconds(None)  # None: heartbeat.interval
    ceiling: float = seconds(1800.0)
    growth: float = 2.0  # next interval = largest surviving one * growth + step
    step: float = seconds(0.0)
    precision: float = seconds(10.0)  # stop bisecting when the timeout is known within this
    margin: float = 0.1  # settle this fraction below the largest surviving interval
    reprobe: float | None = seconds(21600.0)  # settled this long: probe once above (None: never)


# The keys of heartbeat.policy that belong to each kind (besides kind and throttle).
POLICY_KEYS = {
    "fixed": (),
    "network-state": ("window", "hold", "late", "normal", "weak", "high_latency"),
    "nat-probe": ("floor", "ceiling", "growth", "step", "precision", "margin", "reprobe"),
    "traffic-aware": (),
    "throttled-client": (),
}


@dataclass(frozen=True)
class Heartbeat:
    style: str = "pingpong"  # pingpong | oneway
    initiator: str = "server"  # client | server | both
    interval: float = seconds(30.0)
    jitter: float = 0.0  # each interval drawn uniformly in interval * (1 +- jitter)
    frame_bytes: int = 6  # a WebSocket ping with no payload, masked: 2 + 4 bytes
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class Missed:
    k: int = 2
    ack_timeout: float | None = seconds(None)  # None: the heartbeat interval
    overlap: bool = False  # allow ack_timeout > interval (ping windows overlap)


@dataclass(frozen=True)
class Phi:
    threshold: float = 8.0
    window: int = 1000
    min_std: float = seconds(0.1)
    acceptable_pause: float = seconds(0.0)
    first_estimate: float | None = seconds(None)  # None: the heartbeat interval


@dataclass(frozen=True)
class Nfd:
    delta: float | None = seconds(None)  # None: detector.timeout - heartbeat.interval


@dataclass(frozen=True)
class Adaptive:
    alpha: float | None = seconds(None)  # None: detector.timeout - heartbeat.interval
    window: int = 100


@dataclass(frozen=True)
class Detector:
    kind: str = "timeout"  # timeout | missed | phi | nfd | adaptive
    timeout: float = seconds(60.0)
    missed: Missed = field(default_factory=Missed)
    phi: Phi = field(default_factory=Phi)
    nfd: Nfd = field(default_factory=Nfd)
    adaptive: Adaptive = field(default_factory=Adaptive)
    liveness: str = "heartbeats"  # heartbeats | any
    side: str = "auto"  # auto | client | server
    on_declare: str = "reconnect"  # reconnect | monitor


@dataclass(frozen=True)
class Loss:
    model: str = "bernoulli"  # bernoulli | gilbert
    p: float = 0.0
    p_gb: float = 0.0  # Gilbert-Elliott: good -> bad per packet
    p_bg: float = 1.0  # bad -> good per packet
    loss_good: float = 0.0
    loss_bad: float = 1.0

    @property
    def mean(self) -> float:
        """Long-run loss probability per packet."""
        if self.model == "bernoulli":
            return self.p
        total = self.p_gb + self.p_bg
        bad = self.p_gb / total if total > 0 else 0.0
        return (1 - bad) * self.loss_good + bad * self.loss_bad


@dataclass(frozen=True)
class Direction:
    loss: Loss
    delay: Distribution = seconds()


@dataclass(frozen=True)
class Outages:
    mtbf: float = seconds()
    duration: Distribution = seconds()


@dataclass(frozen=True)
class Tcp:
    min_rto: float = seconds(0.2)  # Linux TCP_RTO_MIN
    max_rto: float = seconds(120.0)  # Linux TCP_RTO_MAX
    max_retries: int = 15  # Linux net.ipv4.tcp_retries2
    initial_rto: float = seconds(1.0)  # RFC 6298 (2.1)


@dataclass(frozen=True)
class Link:
    transport: str = "tcp"  # tcp | datagram
    up: Direction | None = None  # client -> server, after per-direction overrides
    down: Direction | None = None  # server -> client
    outages: Outages | None = None
    tcp: Tcp = field(default_factory=Tcp)


@dataclass(frozen=True)
class Nat:
    idle_timeout: Distribution | None = seconds(None)  # None: no NAT on the path
    refresh: str = "outbound"  # outbound | both
    on_expiry: str = "drop"  # drop | reset


@dataclass(frozen=True)
class Crash:
    mtbf: float = seconds()


@dataclass(frozen=True)
class Stall:
    mtbf: float = seconds()
    duration: Distribution = seconds()


@dataclass(frozen=True)
class Peer:
    crash: Crash | None = None
    stall: Stall | None = None


@dataclass(frozen=True)
class App:
    rate: float = 0.0  # messages per second in each direction
    bytes: int = 200
    direction: str = "both"  # both | up (client -> server only) | down (server -> client only)


@dataclass(frozen=True)
class Reconnect:
    delay: float = seconds(1.0)


@dataclass(frozen=True)
class Scenario:
    name: str = "scenario"
    horizon: float = seconds(3600.0)
    connections: int = 100
    seed: int = 0
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    detector: Detector = field(default_factory=Detector)
    link: Link = field(default_factory=Link)
    nat: Nat = field(default_factory=Nat)
    peer: Peer = field(default_factory=Peer)
    app: App = field(default_factory=App)
    reconnect: Reconnect = field(default_factory=Reconnect)

    @property
    def detector_side(self) -> str:
        """The side that runs the detector (``auto`` resolved)."""
        side = self.detector.side
        if side != "auto":
            return side
        initiator = self.heartbeat.initiator
        if self.heartbeat.style == "pingpong":
            return "server" if initiator == "both" else initiator
        return {"client": "server", "server": "client", "both": "server"}[initiator]

    @property
    def ack_timeout(self) -> float:
        value = self.detector.missed.ack_timeout
        return self.heartbeat.interval if value is None else value

    @property
    def nfd_delta(self) -> float:
        value = self.detector.nfd.delta
        return self.detector.timeout - self.heartbeat.interval if value is None else value

    @property
    def adaptive_alpha(self) -> float:
        value = self.detector.adaptive.alpha
        return self.detector.timeout - self.heartbeat.interval if value is None else value


def _duration_keys() -> frozenset[str]:
    classes = [v for v in globals().values() if dataclasses.is_dataclass(v) and isinstance(v, type)]
    names = {f.name for c in classes for f in dataclasses.fields(c) if f.metadata == SECONDS}
    params = {p for _, family in FAMILIES.values() for p in family} - DIMENSIONLESS
    return frozenset(names | params)


# The last part of a dotted scenario key whose value is a duration in seconds: the fields
# marked seconds() above and the distributions' duration parameters (what the reader parses
# with parse_duration). For showing values with a unit.
DURATION_KEYS = _duration_keys()


def dist_to_dict(dist: Distribution) -> dict:
    return {"dist": dist_name(dist)} | dist_params(dist)


def to_dict(obj) -> object:
    """Plain nested dict (seconds for durations) that loads back to an equal object."""
    if dataclasses.is_dataclass(obj) and type(obj).__module__.endswith("distributions"):
        return dist_to_dict(obj)
    if isinstance(obj, Loss):  # only the keys of its model: the others would be rejected
        keys = ["p"] if obj.model == "bernoulli" else ["p_gb", "p_bg", "loss_good", "loss_bad"]
        return {"model": obj.model} | {k: getattr(obj, k) for k in keys}
    if isinstance(obj, Policy):  # only the keys of its kind: the others would be rejected
        keys = ["kind", "throttle", *POLICY_KEYS[obj.kind]]
        return {k: to_dict(getattr(obj, k)) for k in keys}
    if isinstance(obj, Link):
        out = {
            "transport": obj.transport,
            "uplink": to_dict(obj.up),
            "downlink": to_dict(obj.down),
            "outages": to_dict(obj.outages),
            "tcp": to_dict(obj.tcp),
        }
        return out
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}: the dotted keys sweeps and records use."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
