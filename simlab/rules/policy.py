"""Heartbeat policies as pure state machines: when to send the next heartbeat, and which timeout to use.

Like :mod:`simlab.rules.detector`: no clock, no I/O, no randomness. Whoever drives a
policy (the SimPy model with ``env.now``, the real-socket harness with the event
loop's clock) tells it what happened and when, and asks it what to do. One policy
object lives as long as the client does, across its connections: what it learned
about the path (a NAT's idle timeout, the network's state) survives a reconnect.

Inputs, all with explicit times (seconds on the driver's clock):

- ``opened(t)``: a connection is up (its handshake crossed the path: it refreshed
  the NAT and proved the peer alive);
- ``sent(t, seq)``: this side sent heartbeat ``seq`` (a ping, or a one-way heartbeat);
- ``answered(t, seq)``: the pong to our ping ``seq`` arrived (the round-trip time is
  ``t`` minus the ping's ``sent`` time);
- ``app(t, direction)``: an application message was ``"sent"`` by this side or
  ``"received"`` from the other;
- ``ended(t, cause)``: the connection ended as this side saw it (``"detector"``,
  ``"reset"``, ``"tcp_timeout"``): the policy never learns the ground truth.

Outputs:

- ``interval()``: the nominal gap from the last heartbeat (or the opening) to the
  next. The driver adds its own jitter. It may change after any input; the driver
  then re-arms its timer at last heartbeat + new interval (at once if that is past);
- ``timeout()``: the detector timeout to use now, or None for the detector's own;
- ``due(t)``: the heartbeat timer fired at ``t``: returns ``t`` to send now, or a
  later time at which to fire again (the heartbeat is skipped);
- ``timer_at(t)``: when a timer set for ``t`` really fires on this side: ``t``,
  unless the side's timers are throttled (a hidden browser tab);
- ``events()``: what the policy decided since the last call, as ``(what, value)``
  pairs (a state change, a probe's outcome), for records and logs.

The driving loop, in the model's words (the harness does the same with its clock):
on ``opened`` arm the timer at ``timer_at(t + interval() * jitter)``; when it fires
at ``t``, ``d = due(t)``: if ``d > t`` re-arm at ``timer_at(d)``, else send, call
``sent`` and arm at ``timer_at(t + interval() * jitter)``; after every input give the
detector ``timeout()`` and re-arm if ``interval()`` changed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

INF = math.inf
KINDS = ("fixed", "network-state", "nat-probe", "traffic-aware", "throttled-client")
SENT, RECEIVED = "sent", "received"


@dataclass(frozen=True)
class TimerThrottle:
    """A browser's timer throttling for a hidden page: timers fire only on a grid.

    Hidden from ``hidden_at`` on, a timer due at ``t`` fires at the next multiple of
    ``align`` (Chrome: 1 s); from ``hidden_at + intensive_after`` on (Chrome's intensive
    throttling: 5 minutes), at the next multiple of ``intensive_align`` (Chrome: one
    minute). ``align`` 0 leaves the first phase unthrottled. Which phase applies is
    decided by the time the timer is due.
    """

    hidden_at: float = 0.0
    align: float = 1.0
    intensive_after: float = 300.0
    intensive_align: float = 60.0

    def period(self, t: float) -> float:
        """The alignment grid in force for a timer due at ``t`` (0: none)."""
        if t < self.hidden_at:
            return 0.0
        if t >= self.hidden_at + self.intensive_after:
            return self.intensive_align
        return self.align

    def fire_at(self, t: float) -> float:
        step = self.period(t)
        if step <= 0:
            return t
        at = math.ceil(t / step) * step
        return at if at >= t else at + step  # guard the float division


class Policy:
    """The fixed policy, and the base of the others: a constant interval, the detector's timeout.

    ``adaptive`` says whether ``interval()`` or ``timeout()`` can change on an input
    (the driver then re-arms and updates its detector); ``throttle`` (a
    :class:`TimerThrottle`) delays this side's timers.
    """

    kind = "fixed"
    adaptive = False

    def __init__(self, interval: float, throttle: TimerThrottle | None = None):
        self.nominal = interval
        self.throttle = throttle
        self._events: list[tuple[str, float]] = []

    # -- inputs ------------------------------------------------------------------------
    def opened(self, t: float) -> None:
        """A connection is up at ``t``."""

    def sent(self, t: float, seq: int) -> None:
        """This side sent heartbeat ``seq`` at ``t``."""

    def answered(self, t: float, seq: int) -> None:
        """The pong to our ping ``seq`` arrived at ``t``."""

    def app(self, t: float, direction: str) -> None:
        """An application message was ``sent`` or ``received`` at ``t``."""

    def ended(self, t: float, cause: str) -> None:
        """The connection ended at ``t`` (as this side saw it)."""

    # -- outputs -----------------------------------------------------------------------
    def interval(self) -> float:
        return self.nominal

    def timeout(self) -> float | None:
        return None

    def due(self, t: float) -> float:
        return t

    def timer_at(self, t: float) -> float:
        return t if self.throttle is None else self.throttle.fire_at(t)

    def events(self) -> list[tuple[str, float]]:
        out, self._events = self._events, []
        return out

    def _event(self, what: str, value: float) -> None:
        self._events.append((what, value))


class FixedPolicy(Policy):
    """Today's behaviour: heartbeat every ``interval``, the detector keeps its own timeout."""


class ThrottledClient(FixedPolicy):
    """A fixed interval on a client whose timers a hidden browser tab throttles.

    Socket.IO 2 and SignalR clients send their pings from a timer: once Chrome
    runs that timer only once a minute, a server that expects a ping within 45 s
    (or 30 s) closes connections whose client is perfectly alive.
    """

    kind = "throttled-client"

    def __init__(self, interval: float, throttle: TimerThrottle):
        super().__init__(interval, throttle)


@dataclass(frozen=True)
class StateSetting:
    """One network state's heartbeat interval and detector timeout."""

    interval: float
    timeout: float


class NetworkStatePolicy(Policy):
    """Classify the path from round-trip times and losses over a sliding window; each state
    has its own interval and timeout.

    A ping is *lost* if its pong has not come when the next ping goes out, or if the
    pong came more than ``late`` after the median round trip of the window as it was
    when it arrived (over TCP a loss is a retransmission, which delays the pong by at
    least Linux's 200 ms minimum RTO: ``late`` must stay below it to see them). Each
    pong is judged once, on arrival, so a path whose round trip drops does not make
    its older, slower pongs look late. Over the last ``window`` pings: loss fraction
    ``loss`` and median round-trip time ``rtt`` of the answered ones. The state is ``weak`` if the loss
    reaches ``weak_loss`` (it stays weak until the loss is down to ``weak_exit_loss``),
    else ``high_latency`` if the RTT reaches ``high_rtt`` (until it is down to
    ``high_exit_rtt``), else ``normal``; loss ranks first because it is what makes
    heartbeats miss. Two guards against flapping: the enter and exit thresholds
    differ (hysteresis), and a state is held for at least ``hold`` pings. No
    decision before the window is full.
    """

    kind = "network-state"
    adaptive = True
    STATES = ("normal", "weak", "high_latency")

    def __init__(
        self,
        settings: dict[str, StateSetting],
        *,
        window: int = 20,
        hold: int = 10,
        late: float = 0.15,
        weak_loss: float = 0.1,
        weak_exit_loss: float = 0.02,
        high_rtt: float = 1.0,
        high_exit_rtt: float = 0.6,
        throttle: TimerThrottle | None = None,
    ):
        super().__init__(settings["normal"].interval, throttle)
        self.settings = settings
        self.late, self.hold = late, hold
        self.weak_loss, self.weak_exit_loss = weak_loss, weak_exit_loss
        self.high_rtt, self.high_exit_rtt = high_rtt, high_exit_rtt
        self.samples: deque[float | None] = deque(maxlen=window)  # RTT, or None: unanswered
        self.lost: deque[bool] = deque(maxlen=window)  # unanswered, or late when it arrived
        self.pending: dict[int, float] = {}  # seq -> sent at
        self.state = "normal"
        self.rounds_in_state = 0
        self.history: list[tuple[float, str]] = []  # (time, state entered)

    def opened(self, t):
        if not self.history:
            self.history.append((t, self.state))

    def sent(self, t, seq):
        for _ in self.pending:  # no pong before the next ping: lost
            self._resolve(t, None)
        self.pending = {seq: t}

    def answered(self, t, seq):
        at = self.pending.pop(seq, None)
        if at is not None:  # a pong after its ping was counted lost says nothing more
            self._resolve(t, t - at)

    def ended(self, t, cause):
        self.pending.clear()  # pings of a dead connection say nothing about the path

    def _median(self) -> float:
        answered = sorted(r for r in self.samples if r is not None)
        n = len(answered)
        return (answered[(n - 1) // 2] + answered[n // 2]) / 2 if n else INF

    def measure(self) -> tuple[float, float]:
        """(loss fraction, median RTT of the answered pings) over the window."""
        if not self.samples:
            return 1.0, INF
        return sum(self.lost) / len(self.lost), self._median()

    def _resolve(self, t: float, rtt: float | None) -> None:
        self.lost.append(rtt is None or rtt > self._median() + self.late)
        self.samples.append(rtt)
        self.rounds_in_state += 1
        if len(self.samples) < self.samples.maxlen:
            return
        loss, median = self.measure()
        # hysteresis: a state is left at its exit threshold, entered at its (stricter) enter one
        weak = loss > self.weak_exit_loss if self.state == "weak" else loss >= self.weak_loss
        high = (
            median > self.high_exit_rtt if self.state == "high_latency" else median >= self.high_rtt
        )
        target = "weak" if weak else "high_latency" if high else "normal"
        if target != self.state and self.rounds_in_state >= self.hold:
            self.state = target
            self.rounds_in_state = 0
            self.history.append((t, target))
            self._event(f"state:{target}", self.settings[target].interval)

    def interval(self):
        return self.settings[self.state].interval

    def timeout(self):
        return self.settings[self.state].timeout


class NatProbePolicy(Policy):
    """Discover the path's idle timeout: grow the interval until a heartbeat fails, then bisect.

    Each heartbeat tests an *idle gap*: the time since the last thing that refreshed
    the path (the previous heartbeat, the opening, application traffic in a
    ``refresh_by`` direction, and, with ``pong_refreshes``, the previous pong: a client
    whose ACK of the pong goes out through the NAT). A pong proves the gap survived; a
    connection that ends with the heartbeat unanswered says it failed. The interval is
    counted so that the idle gap the next heartbeat tests is the target: when the pong
    refreshed the path, one round trip is added to the interval from the last send. The policy keeps the largest
    surviving gap ``lo`` and the smallest failing gap ``hi``, so the timeout N is in
    (lo, hi]:

    - no failure yet: the next interval is ``min(ceiling, lo * growth + step)`` (``floor`` first);
    - after a failure: the midpoint of (lo, hi), until ``hi - lo <= precision``;
    - then it settles at ``lo * (1 - margin)`` (never below ``floor``): the estimate
      ``lo`` is within ``precision`` below N. At the ceiling it settles there; if even
      the floor fails, at the floor.

    Every ``reprobe`` seconds settled it tries ``hi`` once: if that survives, the path's
    timeout has grown and the search resumes upward; if not, it cost one broken
    connection. A failure at a gap that had survived before is ``unexplained`` (a crash,
    an outage, or a shorter timeout): after two in a row the search restarts. The
    detector timeout is the interval plus ``slack``, so a longer interval is not
    mistaken for a dead peer. A *probe* is a heartbeat whose gap exceeds ``lo``:
    ``probes``, ``failed`` and ``probes_to_settle`` count the policy's cost.
    """

    kind = "nat-probe"
    adaptive = True
    STRIKES = 2

    def __init__(
        self,
        floor: float,
        ceiling: float,
        *,
        growth: float = 2.0,
        step: float = 0.0,
        precision: float = 10.0,
        margin: float = 0.1,
        reprobe: float | None = 21600.0,
        slack: float = 30.0,
        refresh_by: frozenset[str] = frozenset({SENT, RECEIVED}),
        pong_refreshes: bool = False,
        throttle: TimerThrottle | None = None,
    ):
        super().__init__(floor, throttle)
        self.pong_refreshes = pong_refreshes
        self.floor, self.ceiling = floor, ceiling
        self.growth, self.step = growth, step
        self.precision, self.margin = precision, margin
        self.reprobe, self.slack = reprobe, slack
        self.refresh_by = refresh_by
        self.lo, self.hi = 0.0, INF
        self.target = floor
        self.settled: float | None = None
        self.settled_since = INF
        self.settled_first_at: float | None = None
        self.reprobing = False
        self.probes = self.failed = self.strikes = 0
        self.probes_to_settle: int | None = None
        self.last = 0.0  # the path's last refresh that this side knows of
        self.last_sent = 0.0  # the last heartbeat (or the opening)
        self.anchor = 0.0  # the next idle gap counts from here: last_sent, or its pong
        self.inflight: dict[int, float] = {}  # seq -> the idle gap it tests

    def opened(self, t):
        self.last = self.last_sent = self.anchor = t
        self.inflight.clear()

    def sent(self, t, seq):
        self.inflight[seq] = t - self.last
        self.last = self.last_sent = self.anchor = t
        if (
            self.settled is not None
            and not self.reprobing
            and self.reprobe is not None
            and self.hi < INF
            and t - self.settled_since >= self.reprobe
        ):
            self.reprobing = True
            self._event("reprobe", self.hi)

    def app(self, t, direction):
        if direction in self.refresh_by:
            self.last = t

    def answered(self, t, seq):
        gap = self.inflight.pop(seq, None)
        for older in [s for s in self.inflight if s < seq]:
            del self.inflight[older]
        if self.pong_refreshes:
            self.last = max(self.last, t)
            if gap is not None and not self.inflight:  # the pong of the latest heartbeat
                self.anchor = t
        if gap is None:
            return
        self.strikes = 0
        if gap <= self.lo:
            return
        self.probes += 1
        self.lo = gap
        self._event("probe_survived", gap)
        if self.lo >= self.hi:  # the path's timeout grew: the old failure no longer holds
            self.hi = INF
        if self.reprobing:
            self.reprobing = False
            self.settled = None
            self._event("search_resumed", gap)
        self._retarget(t)

    def ended(self, t, cause):
        if not self.inflight:
            return
        gap = self.inflight[min(self.inflight)]  # the oldest unanswered heartbeat failed first
        self.inflight.clear()
        if gap > self.lo:
            self.probes += 1
            self.failed += 1
            self.hi = min(self.hi, gap)
            self._event("probe_failed", gap)
            if self.reprobing:
                self.reprobing = False
                self.settled_since = t
        else:
            self.strikes += 1
            self._event("unexplained_failure", gap)
            if self.strikes >= self.STRIKES:
                self.lo, self.hi, self.settled, self.strikes = 0.0, gap, None, 0
                self.reprobing = False
                self._event("search_restarted", gap)
        self._retarget(t)

    def _settle(self, t: float, interval: float) -> None:
        self.settled = interval
        self.settled_since = t
        if self.settled_first_at is None:
            self.settled_first_at = t
            self.probes_to_settle = self.probes
        self._event("nat_estimate", self.lo)
        self._event("settled", interval)

    def _retarget(self, t: float) -> None:
        if self.settled is not None:
            return
        lo, hi = self.lo, self.hi
        if hi <= self.floor:
            self._settle(t, self.floor)
        elif lo >= self.ceiling:
            self._settle(t, self.ceiling)
        elif hi - lo <= self.precision:
            self._settle(t, max(self.floor, lo * (1 - self.margin)))
        elif lo == 0:
            self.target = self.floor
        elif hi == INF:
            self.target = min(self.ceiling, lo * self.growth + self.step)
        else:
            self.target = (lo + hi) / 2

    def idle_target(self) -> float:
        """The idle gap the next heartbeat is to test (or keep, once settled)."""
        if self.settled is None:
            return self.target
        return self.hi if self.reprobing else self.settled

    def interval(self):
        return self.idle_target() + (self.anchor - self.last_sent)

    def timeout(self):
        return self.interval() + self.slack


class TrafficAwarePolicy(Policy):
    """Skip a heartbeat when application traffic already did its work within the interval.

    A heartbeat has jobs (``requirements``), each a set of the app-traffic directions
    (``"sent"``, ``"received"``, as this side sees them) that can do it instead:

    - ``liveness``: prove to the detecting side that the peer is alive. When this side
      detects, only messages it *receives* do (and only if its detector counts them:
      ``detector.liveness: any``); when the other side detects, messages this side *sends*.
    - ``nat``: refresh the NAT mapping. Outbound (client to server) packets always do;
      inbound ones only with ``nat.refresh: both``, or over TCP, where the client's
      ACK goes out.

    When the timer fires at ``t`` the heartbeat is skipped if every job was done by app
    traffic within the last ``interval``; the timer is then set for the moment the
    oldest of those messages is ``interval`` old (MQTT's keep-alive, which any packet
    resets). A job no traffic can do (an empty set) means no heartbeat is ever skipped.
    """

    kind = "traffic-aware"

    def __init__(
        self,
        interval: float,
        requirements: dict[str, frozenset[str]],
        throttle: TimerThrottle | None = None,
    ):
        super().__init__(interval, throttle)
        self.requirements = requirements
        self.last_app = dict.fromkeys(requirements, -INF)
        self.skipped = 0

    def opened(self, t):
        self.last_app = dict.fromkeys(self.requirements, -INF)

    def app(self, t, direction):
        for job, directions in self.requirements.items():
            if direction in directions:
                self.last_app[job] = t

    def due(self, t):
        covered = min(self.last_app.values(), default=-INF) + self.nominal
        if covered > t:
            self.skipped += 1
            return covered
        return t


def policy_problems(scenario) -> list[str]:
    """What the round-based engines (analytic, fast, rare) lack of ``scenario``'s policy: they
    assume one heartbeat every ``heartbeat.interval``, so they refuse anything else."""
    policy, out = scenario.heartbeat.policy, []
    if policy.kind != "fixed":
        out.append(f"heartbeat.policy.kind: {policy.kind} (adaptive heartbeats run on simpy)")
    if policy.throttle is not None and policy.kind != "throttled-client":
        out.append("heartbeat.policy.throttle (throttled client timers run on simpy)")
    return out


def traffic_requirements(scenario, side: str) -> dict[str, frozenset[str]]:
    """Which app-traffic directions can do each job of ``side``'s heartbeats (see TrafficAwarePolicy)."""
    s = scenario
    counts_app = s.detector.liveness == "any" and s.detector.kind in ("timeout", "missed", "phi")
    liveness = RECEIVED if side == s.detector_side else SENT
    out = {"liveness": frozenset({liveness}) if counts_app else frozenset()}
    if s.nat.idle_timeout is not None:
        inbound_refreshes = s.nat.refresh == "both" or s.link.transport == "tcp"
        outbound = SENT if side == "client" else RECEIVED
        inbound = RECEIVED if side == "client" else SENT
        out["nat"] = frozenset({outbound, inbound} if inbound_refreshes else {outbound})
    return out


def make_throttle(scenario) -> TimerThrottle | None:
    """The client's timer throttling ``scenario`` asks for (None: not throttled)."""
    t = scenario.heartbeat.policy.throttle
    if t is None:
        return None
    return TimerThrottle(t.hidden_at, t.align, t.intensive_after, t.intensive_align)


def make_policy(scenario, side: str) -> Policy:
    """The policy ``scenario`` asks for, for the heartbeats ``side`` sends.

    The throttle applies to the client's timers only (a server's are not throttled).
    """
    hb = scenario.heartbeat
    p = hb.policy
    throttle = make_throttle(scenario) if side == "client" else None
    if p.kind == "fixed":
        return FixedPolicy(hb.interval, throttle)
    if p.kind == "throttled-client":
        return ThrottledClient(hb.interval, throttle) if throttle else FixedPolicy(hb.interval)
    if p.kind == "traffic-aware":
        return TrafficAwarePolicy(hb.interval, traffic_requirements(scenario, side), throttle)
    if p.kind == "network-state":
        d = scenario.detector
        settings = {
            "normal": StateSetting(p.normal.interval or hb.interval, p.normal.timeout or d.timeout),
            "weak": StateSetting(p.weak.interval, p.weak.timeout),
            "high_latency": StateSetting(p.high_latency.interval, p.high_latency.timeout),
        }
        return NetworkStatePolicy(
            settings,
            window=p.window,
            hold=p.hold,
            late=p.late,
            weak_loss=p.weak.loss,
            weak_exit_loss=p.weak.exit_loss,
            high_rtt=p.high_latency.rtt,
            high_exit_rtt=p.high_latency.exit_rtt,
            throttle=throttle,
        )
    if p.kind == "nat-probe":
        nat = traffic_requirements(scenario, side).get("nat", frozenset({SENT, RECEIVED}))
        return NatProbePolicy(
            p.floor or hb.interval,
            p.ceiling,
            growth=p.growth,
            step=p.step,
            precision=p.precision,
            margin=p.margin,
            reprobe=p.reprobe,
            slack=scenario.detector.timeout - hb.interval,
            refresh_by=nat,
            pong_refreshes=side == "client" and RECEIVED in nat,
            throttle=throttle,
        )
    raise ValueError(f"unknown heartbeat policy kind {p.kind!r}")
