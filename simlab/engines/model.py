"""The SimPy discrete-event model: heartbeats over a lossy path, through a NAT, to a peer that may fail.

One connection *slot* is simulated over the horizon in its own SimPy environment
(small event queues are faster than one big one, and slots are independent). A
slot holds a chain of connections: when the detector side declares the peer dead
(or its socket reports an error) the connection is torn down and a new one opens
``reconnect.delay`` later.

The path: client --[access link: outages, loss]-- NAT -- [wide area: loss, delay] -- server.
Simplifications, each chosen so the model stays explainable:

- The NAT sits at the client end: an outbound packet crosses it when sent, an
  inbound one when it arrives. Lost packets are lost before the NAT and do not
  refresh it. Over TCP the client acknowledges every inbound segment at once,
  and that ACK is outbound traffic (it refreshes an ``outbound`` mapping).
- TCP: each message is one segment with its own retransmission ladder (RTO from
  an RFC 6298 estimator, doubling up to max_rto, giving up after max_retries);
  delivery is in order per direction (a late segment holds back later ones);
  ACKs are never lost (cumulative ACKs make a lost pure ACK nearly harmless).
- Ground truth: a connection is *broken* from the first instant it can never
  deliver again: the peer's crash, the NAT mapping's expiry, the sending of a
  segment TCP will give up on (its transmissions' fates are drawn when it is
  sent; nothing behind it can be delivered, in order).
  A declaration on a broken connection is a detection; on a live one, a mistake.
- In monitor mode a mistaken suspicion keeps the connection (it ends when a
  heartbeat restores trust); a suspicion of a broken connection ends it, and the
  next connection opens ``reconnect.delay`` later, as in reconnect mode.
- The detector runs on one side (``detector_side``); the other side is the
  *peer*, the one that can crash or stall. Detectors are :mod:`simlab.rules.detector`'s
  pure state machines, fed with ``env.now``; their deadline is checked lazily
  (one timer at a time, re-armed when it fires early).
- Each side that sends heartbeats asks its :mod:`simlab.rules.policy` (one per slot: it
  learns across reconnects) for the interval, whether to skip a beat, when its
  timer really fires (throttling) and the detector's timeout. A policy that can
  adapt is told of every send, pong, app message, end and opening; the fixed one
  is not, and its schedule is the plain ``interval`` (with jitter), as it always was.
  A policy's interval or timeout reaches the detector whichever side runs it (as
  MQTT's CONNECT tells the server the client's keep-alive). A throttled client
  (a hidden browser tab) has its heartbeat timer and, if it runs the detector,
  its detector's timer fire late; an input that moves the deadline before that
  timer fires cancels the declaration, as a reset ``setTimeout`` would.

Speed (a round is about four SimPy events: the heartbeat timer, the ping's and the
pong's deliveries, the detector timer): the hot events are light :class:`Fire`
objects pushed straight onto SimPy's heap (a message is its own delivery event, a
timer event is re-armed in place); loss, delay and jitter come from blocks of draws
handed out by list iterators (:class:`Draws`: the same values, in the same order, as
the samplers); the model's own common cases (sending, delivery, the NAT crossing, the
detector's timer) are written out in ``_send``, ``_deliver``, ``_receive``, ``_beat`` and
``_timer``, each next to the method it stands for. Timing rules shared with other code
stay calls: the detector (:mod:`simlab.rules.detector`, which the harness drives too),
the RTO estimator and the down periods (:mod:`simlab.engines.network`). Every figure,
record and trace row is the same as the plain version's, bit for bit
(tests/engines/test_model.py pins a few).
"""

from __future__ import annotations

import math
from heapq import heappush

import simpy
from simpy.core import NORMAL

from simlab import rng as rngs
from simlab.engines.calls import Call, Fire
from simlab.engines.network import (
    TCP_HEADER,
    UDP_HEADER,
    DownPeriods,
    LossProcess,
    RtoEstimator,
    backoff,
)
from simlab.rules.detector import Detector, TimeoutDetector, make_detector
from simlab.rules.policy import make_policy, make_throttle
from simlab.scenario.distributions import Exponential, Sampler
from simlab.scenario.schema import Scenario

INF = math.inf
CLIENT, SERVER = "client", "server"
PING, PONG, BEAT, APP = "ping", "pong", "heartbeat", "app"
RADIO_TAIL = 10.0  # s of silence after which a mobile radio has gone idle


class Msg(Fire):
    """A message; also the SimPy event of its delivery (``callbacks``: the model's ``_deliver``)."""

    __slots__ = (
        "kind",
        "src",
        "seq",
        "stamp",
        "sent",
        "size",
        "attempts",
        "blocked",
        "at",
        "rto",
        "crossed",
        "conn",
    )

    def __init__(self, kind, src, seq, stamp, sent, size):
        self.kind = kind
        self.src = src
        self.seq = seq
        self.stamp = stamp
        self.sent = sent
        self.size = size
        self.attempts = 1
        self.blocked = False  # dropped at the NAT on its way (known only when it crosses)
        self.at = sent  # TCP: when the transmission that gets through leaves
        self.rto = 0.0  # TCP: the sender's RTO when the segment was first sent
        self.crossed = False  # inbound: already through the NAT (held back, delivered later)


class _Beat(Fire):
    """The event of a heartbeat timer: ``side``'s timer of ``conn``, armed for ``at``."""

    __slots__ = ("conn", "side", "at")


class _Timer(Fire):
    """The event of a detector timer of ``conn``, armed for ``at``."""

    __slots__ = ("conn", "at")


class Draws:
    """A random stream's values in the blocks its sampler would draw, handed out by ``next(it)``.

    ``value = next(d.it, None)``, and ``d.refill()`` when that is None: a list iterator
    costs no Python call per value. ``fill`` draws one block exactly as
    :class:`~simlab.scenario.distributions.Sampler` (or ``Uniforms``) would, at the same
    moment (when a value is wanted and the block is used up), so the values are the same.
    """

    __slots__ = ("it", "_fill")

    def __init__(self, fill):
        self._fill = fill
        self.it = iter(())

    def refill(self):
        self.it = it = iter(self._fill())
        return next(it)

    def __call__(self):
        value = next(self.it, None)
        return self.refill() if value is None else value


class Connection:
    """One connection's state: transport, NAT mapping, detector, ground truth."""

    def __init__(self, number: int, start: float):
        self.number = number
        self.start = start
        self.closed = False
        self.broken_at = INF
        self.cause = None
        self.crash_at = INF
        self.peer_closed = False
        self.idle = None  # NAT idle timeout for this connection (None: no NAT)
        self.last_refresh = start
        self.nat_expired = False
        self.det = None
        self.timer_at = INF
        self.suspected = False
        self.suspect_since = INF
        self.seq = {CLIENT: 0, SERVER: 0}
        self.rto = {}
        self.last_delivery = {CLIENT: start, SERVER: start}  # per sender: in-order delivery
        self.giveup_at = {CLIENT: INF, SERVER: INF}  # when each side's socket failed (or will)
        self.unacked: list = []  # TCP segments no ACK will come for, with retransmissions to count
        self.cut: set[str] = (
            set()
        )  # senders whose byte stream stopped at a segment that never arrived
        # each pinger's heartbeat timer: armed for beat_at, the gap from beat_from (the last
        # heartbeat or the opening) being the policy's interval beat_i times the jitter beat_f
        self.beat_at: dict[str, float] = {}
        self.beat_from: dict[str, float] = {}
        self.beat_i: dict[str, float] = {}
        self.beat_f: dict[str, float] = {}


class Stats:
    """Counters of one slot; :mod:`simlab.engines.metrics` adds them up."""

    def __init__(self):
        self.connected_s = 0.0
        self.alive_s = 0.0  # watched while not broken (incl. the down time a false positive caused)
        self.suspect_alive_s = 0.0  # of which the monitor wrongly considered the peer down
        self.connections = 0
        self.false_positives = 0
        self.mistake_durations: list[float] = []
        self.breaks = {"crash": 0, "nat": 0, "tcp_timeout": 0}
        self.latencies: list[float] = []
        self.detections_by = {"detector": 0, "reset": 0, "tcp_timeout": 0}
        self.undetected = 0
        self.heartbeats = 0
        self.rounds = 0  # heartbeat timer firings that sent a ping or heartbeat
        self.app_msgs = 0
        self.blackholed = 0
        self.bytes = 0
        self.retransmissions = 0
        self.wakeups = 0
        # adaptive policies only (simlab.engines.policy_metrics)
        self.gaps_s = 0.0  # sum of the gaps between a side's heartbeats (from the opening)
        self.gaps = 0
        self.policy_breaks = 0  # NAT expiries with the next heartbeat due after the idle timeout
        self.settles: list[tuple[float, float, float, float]] = []  # (t, interval, estimate, idle)


def _sampler_draws(dist, rng, block: int = 256) -> Draws:
    """The values ``Sampler(dist, rng, block)`` would give, in the same blocks."""
    return Draws(lambda: dist.sample(rng, block).tolist())


def _loss_draws(loss, rng) -> Draws | None:
    """Per packet: lost or not, as ``LossProcess(loss, rng).lost()`` would say (None: never lost).

    Bernoulli: the uniforms of ``Uniforms(rng)``'s blocks compared with p in one go (the same
    float comparisons); p = 0 draws nothing, as ``lost`` does not. Gilbert-Elliott: the chain
    steps with each packet, so each value is one ``lost()`` call.
    """
    if loss.model == "gilbert":
        process = LossProcess(loss, rng)
        return Draws(lambda: [process.lost()])
    p = loss.p
    if not p > 0:
        return None
    return Draws(lambda: (rng.random(512) < p).tolist())


class SlotModel:
    """Simulates connection slot ``slot`` of ``scenario`` over its horizon."""

    def __init__(self, scenario: Scenario, slot: int, trace: bool = False):
        s = self.s = scenario
        self.slot = slot
        self.env = simpy.Environment()
        self.horizon = s.horizon
        self.stats = Stats()
        self.records: list[tuple] = []
        self.trace: list[tuple] | None = [] if trace else None
        self.D = s.detector_side
        self.P = SERVER if self.D == CLIENT else CLIENT
        self.tcp = s.link.transport == "tcp"
        self.monitor = s.detector.on_declare == "monitor"
        hb = s.heartbeat
        initiators = (CLIENT, SERVER) if hb.initiator == "both" else (hb.initiator,)
        self.pingers = initiators
        self.d_pings = self.D in initiators
        self.beat_kind = PING if hb.style == "pingpong" else BEAT
        g = lambda name: rngs.stream(s.seed, slot, name)  # noqa: E731
        # per sender: loss (None: never lost, no draw) and delay, drawn as LossProcess and
        # Sampler would draw them (the same blocks, the same values)
        self.loss = {
            CLIENT: _loss_draws(s.link.up.loss, g("loss.up")),
            SERVER: _loss_draws(s.link.down.loss, g("loss.down")),
        }
        self.delay = {
            CLIENT: _sampler_draws(s.link.up.delay, g("delay.up")),
            SERVER: _sampler_draws(s.link.down.delay, g("delay.down")),
        }
        # per sender: (loss, its delays, the delays the other way, for the RTT sample)
        self.paths = {
            CLIENT: (self.loss[CLIENT], self.delay[CLIENT], self.delay[SERVER]),
            SERVER: (self.loss[SERVER], self.delay[SERVER], self.delay[CLIENT]),
        }
        jitter_rng = g("jitter")
        self.jitter = Draws(lambda: jitter_rng.random(512).tolist())  # Uniforms' blocks
        self.crash = (
            Sampler(Exponential(s.peer.crash.mtbf), g("crash"), 16) if s.peer.crash else None
        )
        self.nat_idle = Sampler(s.nat.idle_timeout, g("nat"), 16) if s.nat.idle_timeout else None
        o, st = s.link.outages, s.peer.stall
        self.outages = DownPeriods(o.mtbf, o.duration, self.horizon, g("outages")) if o else None
        self.stalls = DownPeriods(st.mtbf, st.duration, self.horizon, g("stalls")) if st else None
        self.app_gap = None
        self.app_sides = {"both": (CLIENT, SERVER), "up": (CLIENT,), "down": (SERVER,)}[
            s.app.direction
        ]
        if s.app.rate > 0:
            self.app_gap = {
                CLIENT: Sampler(Exponential(1 / s.app.rate), g("app.up")),
                SERVER: Sampler(Exponential(1 / s.app.rate), g("app.down")),
            }
        self.header = TCP_HEADER if self.tcp else UDP_HEADER
        self.policies = {side: make_policy(s, side) for side in initiators}
        policy = hb.policy
        self.adaptive = policy.kind != "fixed" or policy.throttle is not None
        follows = [p for p in self.policies.values() if p.adaptive]
        self.follow = follows[0] if follows else None  # the policy whose timeout the detector takes
        self.follow_ack = s.detector.kind == "missed" and s.detector.missed.ack_timeout is None
        throttle = make_throttle(s) if self.D == CLIENT else None
        # a throttled client's detector timer fires late too; until it fires, nothing is declared
        self.det_fires = throttle.fire_at if throttle is not None else None
        self.radio_last = -INF
        self.conn: Connection | None = None
        self.count = 0
        # the hot path's constants and callbacks, looked up once
        self.tracing = trace
        self.frame = hb.frame_bytes
        self.jitter_amount = hb.jitter
        # a fixed policy's interval never changes: read once
        self.nominal = (
            {} if self.adaptive else {side: p.interval() for side, p in self.policies.items()}
        )
        self.max_retries = s.link.tcp.max_retries
        self.nat_both = s.nat.refresh == "both"
        self.queue, self.eid = self.env._queue, self.env._eid
        self.on_deliver = (self._deliver,)
        self.on_beat = (self._beat,)
        self.on_timer = (self._timer,)
        # only the missed detector counts its pings (the others' ``sent`` does nothing)
        kind = type(make_detector(s, 0.0))
        self.det_sent = kind.sent is not Detector.sent

    # -- scheduling helpers -------------------------------------------------------

    def _at(self, t: float, fn, *args) -> None:
        """Call ``fn(*args)`` at simulated time ``t`` (if before the horizon)."""
        if t < self.horizon:
            now = self.env._now
            heappush(
                self.queue,
                (now + (t - now if t > now else 0.0), NORMAL, next(self.eid), Call(fn, args)),
            )

    def _push(self, t: float, event: Fire) -> None:
        """Schedule a light event at ``t`` (if before the horizon): ``_at`` without the Call.

        The heap entry is the one ``env.schedule(event, NORMAL, t - now)`` makes (the same
        time arithmetic, the next event id), so the order of events is unchanged.
        """
        if t < self.horizon:
            now = self.env._now
            heappush(
                self.queue, (now + (t - now if t > now else 0.0), NORMAL, next(self.eid), event)
            )

    def _record(self, conn, event, detail=None, value=None) -> None:
        self.records.append((self.slot, conn.number, self.env._now, event, detail, value))

    def _trace(self, conn, event, msg, value=None) -> None:
        if self.trace is not None:
            self.trace.append(
                (
                    self.slot,
                    conn.number,
                    self.env._now,
                    event,
                    msg.kind,
                    msg.src,
                    msg.seq,
                    msg.attempts,
                    value,
                )
            )

    def _radio(self, t: float) -> None:
        if t - self.radio_last > RADIO_TAIL:
            self.stats.wakeups += 1
        self.radio_last = t

    # -- connection life ------------------------------------------------------------

    def run(self) -> SlotModel:
        self._open()
        self.env.run(until=self.horizon)
        if self.conn is not None and not self.conn.closed:
            conn = self.conn
            self._nat_check(conn, self.horizon)
            if conn.broken_at <= self.horizon:
                self.stats.undetected += 1
            self._close(conn, self.horizon, end=True)
        return self

    def _open(self) -> None:
        now = self.env._now
        self.count += 1
        conn = self.conn = Connection(self.count, now)
        self.stats.connections += 1
        if self.tcp:
            conn.rto = {
                CLIENT: RtoEstimator(self.s.link.tcp),
                SERVER: RtoEstimator(self.s.link.tcp),
            }
        if self.nat_idle is not None:
            conn.idle = self.nat_idle()
            self._arm_nat(conn)
        if self.crash is not None:
            conn.crash_at = now + self.crash()
            self._at(conn.crash_at, self._on_crash, conn)
        conn.det = make_detector(self.s, now)
        self._radio(now)
        self._record(conn, "open")
        for side in self.pingers:
            if self.adaptive:
                self.policies[side].opened(now)
            self._schedule_beat(conn, side, now)
        if self.follow is not None:
            self._follow(conn)
        if self.app_gap is not None:
            for side in self.app_sides:
                self._at(now + self.app_gap[side](), self._app, conn, side)
        self._check(conn)

    def _close(self, conn: Connection, now: float, end: bool = False) -> None:
        conn.closed = True
        st = self.stats
        for msg, times in conn.unacked:  # retransmissions that happened before the close
            stop = min(now, conn.crash_at) if msg.src == self.P else now
            n = sum(1 for t in times if t < stop)
            st.retransmissions += n
            st.bytes += (msg.kind != APP) * n * (msg.size + TCP_HEADER)
        st.connected_s += now - conn.start
        alive_until = min(now, conn.broken_at)
        st.alive_s += alive_until - conn.start
        if conn.suspected:  # a suspicion cut short by a break or the horizon: censored
            st.suspect_alive_s += max(0.0, alive_until - conn.suspect_since)
        self._record(conn, "close", "horizon" if end else None)

    def _reconnect(self, now: float, by: str) -> float:
        """Open the next connection after the reconnect delay, or when the link comes back.

        A handshake cannot complete during an outage: the attempt succeeds when the
        outage ends (retry schedules are the fleet model's subject, not this one's).
        The policies learn that the connection ended, and how the detector side saw it.
        """
        if self.adaptive:
            conn = self.conn
            for side, policy in self.policies.items():
                policy.ended(now, by)
                self._policy_events(conn, side)
        at = now + self.s.reconnect.delay
        end = self.outages.end_if_down(at) if self.outages is not None else None
        at = at if end is None else end
        self._at(at, self._open)
        return at

    def _on_crash(self, conn: Connection) -> None:
        if not conn.closed:
            self._break(conn, "crash")

    def _break(self, conn: Connection, cause: str) -> None:
        """Ground truth: from now on this connection can never deliver again."""
        if conn.broken_at <= self.env._now:
            return
        conn.broken_at = self.env._now
        conn.cause = cause
        self.stats.breaks[cause] += 1
        if cause == "nat" and self.adaptive:
            gap = min(conn.beat_at[side] - conn.beat_from[side] for side in self.pingers)
            if gap >= conn.idle:  # the heartbeat schedule itself let the mapping lapse
                self.stats.policy_breaks += 1
        self._record(conn, "break", cause)
        if conn.suspected:  # monitor mode: already suspecting, and now rightly so
            self._detected(conn, "detector")

    def _detected(self, conn: Connection, by: str) -> None:
        now = self.env._now
        latency = now - conn.broken_at
        self.stats.latencies.append(latency)
        self.stats.detections_by[by] += 1
        self._record(conn, "detection", by, latency)
        self._close(conn, now)
        self._reconnect(now, by)

    def _declare(self, conn: Connection, by: str) -> None:
        """The detector side gives up on the peer (its detector fired or its socket failed)."""
        now = self.env._now
        self._nat_check(conn, now)
        if conn.closed:  # the NAT expiry just found completed a monitor-mode detection
            return
        if conn.broken_at <= now:
            self._detected(conn, by)
            return
        st = self.stats
        st.false_positives += 1
        self._record(conn, "false_positive", by)
        if self.monitor:
            conn.suspected, conn.suspect_since = True, now
            return
        self._close(conn, now)
        up_at = self._reconnect(now, by)
        down = min(up_at, self.horizon) - now  # the mistake lasts until the new connection is up
        st.alive_s += down
        st.suspect_alive_s += down
        if up_at <= self.horizon:
            st.mistake_durations.append(up_at - now)

    # -- the detector -----------------------------------------------------------------

    def _check(self, conn: Connection) -> None:
        """After any input to the detector, or when its timer fires: act on its deadline."""
        if conn.closed:
            return
        now, deadline = self.env._now, conn.det.deadline()
        if conn.suspected:
            if deadline > now:  # T-transition: the mistake ends
                conn.suspected = False
                duration = now - conn.suspect_since
                self.stats.mistake_durations.append(duration)
                self.stats.suspect_alive_s += duration
                self._record(conn, "trust", None, duration)
                self._arm(conn, deadline)
        elif self.det_fires is None:  # the common case, _arm written out
            if deadline <= now:
                self._declare(conn, "detector")
            elif deadline < conn.timer_at and deadline < self.horizon:
                self._set_timer(conn, deadline)
        elif self.det_fires(deadline) <= now:
            self._declare(conn, "detector")
        else:
            self._arm(conn, deadline)

    def _arm(self, conn: Connection, deadline: float) -> None:
        if self.det_fires is not None:
            deadline = self.det_fires(deadline)
        if deadline < conn.timer_at and deadline < self.horizon:
            self._set_timer(conn, deadline)

    def _set_timer(self, conn: Connection, deadline: float) -> None:
        """Arm the detector timer for ``deadline`` (before the horizon); a later one is void."""
        conn.timer_at = deadline
        ev = _Timer()
        ev.callbacks, ev.conn, ev.at = self.on_timer, conn, deadline
        self._push(deadline, ev)

    def _timer(self, ev: _Timer) -> None:
        conn = ev.conn
        if conn.timer_at == ev.at:
            conn.timer_at = INF
            if conn.closed or conn.suspected or self.det_fires is not None:
                self._check(conn)
                return
            # _check's common case, written out: most firings find the deadline moved on
            det = conn.det
            now = self.env._now
            deadline = det.deadline()
            if deadline <= now:
                self._declare(conn, "detector")
            elif deadline < self.horizon:  # timer_at is inf: re-arm, with this very event
                conn.timer_at = deadline
                ev.callbacks, ev.at = self.on_timer, deadline  # step() has set callbacks to None
                heappush(self.queue, (now + (deadline - now), NORMAL, next(self.eid), ev))

    # -- the NAT ------------------------------------------------------------------------

    def _arm_nat(self, conn: Connection) -> None:
        self._at(conn.last_refresh + conn.idle, self._nat_timer, conn)

    def _nat_timer(self, conn: Connection) -> None:
        if conn.closed or conn.nat_expired:
            return
        self._nat_check(conn, self.env._now)
        if not conn.nat_expired:
            self._arm_nat(conn)

    def _nat_check(self, conn: Connection, t: float) -> None:
        if conn.idle is not None and not conn.nat_expired and t >= conn.last_refresh + conn.idle:
            conn.nat_expired = True
            if not conn.closed:
                self._break(conn, "nat")

    def _nat_cross(self, conn: Connection, msg: Msg, outbound: bool) -> bool:
        """A packet crosses the NAT now. False if the mapping is gone (and reset the sender if so)."""
        if conn.idle is None:
            return True
        now = self.env._now
        self._nat_check(conn, now)
        if conn.nat_expired:
            self._trace(conn, "nat_drop", msg)
            if self.s.nat.on_expiry == "reset":
                # an RST back to the sender: immediate for the client (the NAT is at its end)
                back = 0.0 if outbound else self.delay[CLIENT]()
                self._at(now + back, self._transport_error, conn, msg.src, "reset")
            elif self.tcp:
                self._give_up_later(conn, msg, msg.attempts)
            return False
        if outbound or self.s.nat.refresh == "both":
            conn.last_refresh = now
        return True

    # -- the heartbeat timer and its policy ---------------------------------------------

    def _schedule_beat(self, conn: Connection, side: str, since: float) -> None:
        """Arm ``side``'s timer one policy interval (with jitter) after ``since``."""
        jitter = self.jitter_amount
        factor = 1.0 if jitter == 0 else 1 + jitter * (2 * self.jitter() - 1)
        if self.adaptive:
            policy = self.policies[side]
            interval = policy.interval()
            conn.beat_from[side], conn.beat_i[side], conn.beat_f[side] = since, interval, factor
            at = policy.timer_at(since + interval * factor)
        else:  # the fixed schedule: nothing to re-arm, no throttle
            at = since + self.nominal[side] * factor
        conn.beat_at[side] = at
        ev = _Beat()
        ev.callbacks, ev.conn, ev.side, ev.at = self.on_beat, conn, side, at
        self._push(at, ev)

    def _arm_beat(self, conn: Connection, side: str, at: float) -> None:
        """The timer fires at ``at``; an earlier arming of it is void."""
        conn.beat_at[side] = at
        ev = _Beat()
        ev.callbacks, ev.conn, ev.side, ev.at = self.on_beat, conn, side, at
        self._push(at, ev)

    def _policy_input(self, conn: Connection, side: str, rearm: bool = True) -> None:
        """After an input to ``side``'s policy: log, re-arm on a new interval, update the detector."""
        policy = self.policies[side]
        self._policy_events(conn, side)
        if conn.closed or not policy.adaptive:
            return
        interval = policy.interval()
        if rearm and interval != conn.beat_i[side]:
            conn.beat_i[side] = interval
            now = self.env._now
            at = conn.beat_from[side] + interval * conn.beat_f[side]
            self._arm_beat(conn, side, policy.timer_at(at if at > now else now))
        if policy is self.follow:
            self._follow(conn)

    def _policy_events(self, conn: Connection, side: str) -> None:
        estimate = math.nan
        for what, value in self.policies[side].events():
            self._record(conn, "policy", what, value)
            if what == "nat_estimate":
                estimate = value
            elif what == "settled":
                idle = conn.idle if conn.idle is not None else math.nan
                self.stats.settles.append((self.env._now, value, estimate, idle))

    def _follow(self, conn: Connection) -> None:
        """The detector takes the policy's timeout (and, for missed, its interval as the ack window)."""
        det, policy = conn.det, self.follow
        timeout = policy.timeout()
        if timeout is not None and isinstance(det, TimeoutDetector) and det.timeout != timeout:
            det.timeout = timeout
            self._check(conn)
        if self.follow_ack:
            det.ack_timeout = policy.interval()

    def _beat(self, ev: _Beat) -> None:
        """Heartbeat timer of ``side`` fired: send a ping (or oneway heartbeat), schedule the next."""
        conn, side = ev.conn, ev.side
        if conn.closed or conn.beat_at[side] != ev.at:
            return
        now = self.env._now
        if side == self.P:
            if now >= conn.crash_at or conn.peer_closed:
                return
            end = self.stalls.end_if_down(now) if self.stalls is not None else None
            if end is not None:  # a blocked event loop runs the overdue timer when it unblocks
                self._arm_beat(conn, side, end)
                return
        if self.adaptive:
            policy = self.policies[side]
            due = policy.due(now)
            if due > now:  # application traffic already did this heartbeat's work
                self._record(conn, "skip", side, due)
                self._arm_beat(conn, side, policy.timer_at(due))
                return
            self.stats.gaps_s += now - conn.beat_from[side]
            self.stats.gaps += 1
            self._record(conn, "interval", side, now - conn.beat_from[side])
        seq = conn.seq[side] = conn.seq[side] + 1
        self.stats.rounds += 1
        if self.adaptive:
            self.policies[side].sent(now, seq)
            self._policy_input(conn, side, rearm=False)  # the next beat is armed below
            if conn.closed:  # a shorter timeout ended the connection
                return
        if side == self.D and self.beat_kind == PING:
            det = conn.det
            if self.det_sent:
                det.sent(now, seq)
            self._send(conn, Msg(PING, side, seq, now, now, self.frame))
            if conn.closed or conn.suspected or self.det_fires is not None:
                self._check(conn)
            else:  # _check's common case, written out
                deadline = det.deadline()
                if deadline <= now:
                    self._declare(conn, "detector")
                elif deadline < conn.timer_at and deadline < self.horizon:
                    self._set_timer(conn, deadline)
        else:
            self._send(conn, Msg(self.beat_kind, side, seq, now, now, self.frame))
        if self.adaptive or self.jitter_amount != 0:
            self._schedule_beat(conn, side, now)
            return
        # _schedule_beat's fixed schedule without jitter, written out: at = now + interval * 1.0
        at = now + self.nominal[side] * 1.0
        conn.beat_at[side] = at
        if at < self.horizon:  # this very event, again (step() has set its callbacks to None)
            ev.callbacks, ev.at = self.on_beat, at
            heappush(
                self.queue, (now + (at - now if at > now else 0.0), NORMAL, next(self.eid), ev)
            )

    # -- sending and delivery -------------------------------------------------------------

    def _app(self, conn: Connection, side: str) -> None:
        if conn.closed:
            return
        now = self.env._now
        self._at(now + self.app_gap[side](), self._app, conn, side)
        if side == self.P:
            if now >= conn.crash_at or conn.peer_closed:
                return
            end = self.stalls.end_if_down(now) if self.stalls is not None else None
            if end is not None:  # written during the stall, sent when the peer catches up
                self._at(end, self._app_send, conn, side)
                return
        self._app_send(conn, side)

    def _app_send(self, conn: Connection, side: str) -> None:
        if conn.closed or (side == self.P and (self.env._now >= conn.crash_at or conn.peer_closed)):
            return
        now = self.env._now
        self.stats.app_msgs += 1
        if self.adaptive and side in self.policies:
            self.policies[side].app(now, "sent")
            self._policy_input(conn, side)
        self._send(conn, Msg(APP, side, 0, now, now, self.s.app.bytes))

    def _send(self, conn: Connection, msg: Msg) -> None:
        # the hot path: _radio, _nat_cross's common case and _at are written out here
        now = self.env._now
        st = self.stats
        src = msg.src
        loss, draws, back_draws = self.paths[src]
        wire = msg.kind != APP  # bytes count heartbeat traffic only: the cost of the settings
        if wire:
            st.heartbeats += 1
        elif conn.broken_at <= now:
            st.blackholed += 1
        if src == CLIENT:
            if now - self.radio_last > RADIO_TAIL:
                st.wakeups += 1
            self.radio_last = now
        if self.tracing:
            self._trace(conn, "send", msg)
        outages = self.outages
        if not self.tcp:
            st.bytes += wire * (msg.size + UDP_HEADER)
            if outages is not None and outages.end_if_down(now) is not None:
                self._trace(conn, "lost", msg)
                return
            if loss is not None:
                lost = next(loss.it, None)
                if lost is None:
                    lost = loss.refill()
                if lost:
                    self._trace(conn, "lost", msg)
                    return
            if src == CLIENT and not self._nat_cross(conn, msg, True):
                return
            delay = next(draws.it, None)
            if delay is None:
                delay = draws.refill()
            msg.callbacks, msg.conn = self.on_deliver, conn
            self._push(now + delay, msg)
            return
        rto = conn.rto[src]
        msg.rto = rto.rto
        # the first transmission's fate: lost in an outage (no loss draw then) or to loss
        if outages is not None and outages.end_if_down(now) is not None:
            lost = True
        elif loss is None:
            lost = False
        else:
            lost = next(loss.it, None)
            if lost is None:
                lost = loss.refill()
        if lost:
            self._retransmit(conn, msg, rto, wire)
            return
        # sent once (attempts 1, at: now, Msg's defaults): no retransmission to count
        if wire:
            st.bytes += msg.size + TCP_HEADER
            if msg.kind != PING:  # a pure ACK comes back (a ping's ACK rides on its pong)
                st.bytes += TCP_HEADER
        delay = next(draws.it, None)
        if delay is None:
            delay = draws.refill()
        # Karn's rule: RTT samples only from segments sent once, as this one
        back = next(back_draws.it, None)
        if back is None:
            back = back_draws.refill()
        rto.sample(delay + back)
        arrive = now + delay
        last = conn.last_delivery
        if last[src] > arrive:  # max(t + delay, last delivery): in order
            arrive = last[src]
        last[src] = arrive
        if src == CLIENT:
            if conn.idle is not None:  # _nat_cross(conn, msg, True), written out
                if not conn.nat_expired and now >= conn.last_refresh + conn.idle:
                    self._nat_check(conn, now)
                if conn.nat_expired:
                    self._nat_cross(conn, msg, True)  # the drop (the check is done)
                    return
                conn.last_refresh = now
        elif arrive > now + delay:  # held back in order: it reaches (and crosses) the NAT earlier
            self._at(now + delay, self._cross_inbound, conn, msg)
        # scheduled now, so deliveries due at the same instant keep their sending order
        msg.callbacks, msg.conn = self.on_deliver, conn
        if arrive < self.horizon:  # _push(arrive, msg)
            heappush(
                self.queue,
                (now + (arrive - now if arrive > now else 0.0), NORMAL, next(self.eid), msg),
            )

    def _retransmit(self, conn: Connection, msg: Msg, rto: RtoEstimator, wire: bool) -> None:
        """The rest of ``_send`` over TCP once the first transmission is lost: the ladder."""
        now = self.env._now
        st = self.stats
        src = msg.src
        outages, loss = self.outages, self.loss[src]
        t, attempt = now, 0
        # every transmission's fate is drawn now; the ladder's times follow from the RTO
        while True:
            self._trace(conn, "lost", msg, attempt)
            if attempt == self.max_retries:  # doomed: nothing sent from now on is delivered
                st.bytes += wire * (msg.size + TCP_HEADER)
                conn.last_delivery[src] = INF
                self._break(conn, "tcp_timeout")
                self._give_up_later(conn, msg, 1)
                return
            t += rto.backoff(attempt)
            attempt += 1
            if outages is not None and outages.end_if_down(t) is not None:
                continue  # lost: no loss draw, as in ``down or loss.lost()``
            if loss is None or not loss():
                break
        st.retransmissions += attempt
        st.bytes += wire * (attempt + 1) * (msg.size + TCP_HEADER)
        msg.attempts, msg.at = attempt + 1, t
        if msg.kind in (PONG, BEAT):
            st.bytes += TCP_HEADER  # a pure ACK comes back (a ping's ACK rides on its pong)
        delay = self.delay[src]()
        arrive = max(t + delay, conn.last_delivery[src])
        conn.last_delivery[src] = arrive
        if src == CLIENT:  # a retransmission crosses the NAT when it is sent, in the future
            msg.blocked = True
            self._at(t, self._cross_later, conn, msg)
        elif arrive > t + delay:  # held back in order: it reaches (and crosses) the NAT earlier
            self._at(t + delay, self._cross_inbound, conn, msg)
        # scheduled now, so deliveries due at the same instant keep their sending order
        msg.callbacks, msg.conn = self.on_deliver, conn
        self._push(arrive, msg)

    def _cross_inbound(self, conn: Connection, msg: Msg) -> None:
        """An inbound segment reaches the NAT and the client before its turn to be delivered."""
        if conn.closed or not self._sender_alive(conn, msg):
            return
        msg.crossed = True
        if self._nat_cross(conn, msg, False):
            self._client_ack(conn)
        else:
            msg.blocked = True

    def _cross_later(self, conn: Connection, msg: Msg) -> None:
        if not conn.closed and self._nat_cross(conn, msg, True):
            msg.blocked = False

    def _ladder(self, msg: Msg) -> list[float]:
        """Send times of a segment's transmissions: the first, then after each backoff."""
        tcp, times, t = self.s.link.tcp, [msg.sent], msg.sent
        for i in range(tcp.max_retries + 1):
            t += backoff(msg.rto, i, tcp)
            times.append(t)
        return times  # the last entry is when the sender gives up

    def _give_up_later(self, conn: Connection, msg: Msg, first_extra: int) -> None:
        """No ACK will ever come: the sender retransmits until it gives up after the full ladder.

        Transmissions from ``first_extra`` on (those not yet counted) are counted when the
        connection closes, as far as they happened by then.
        """
        times = self._ladder(msg)
        conn.unacked.append((msg, times[first_extra:-1]))
        at = times[-1]
        if at < conn.giveup_at[msg.src]:
            conn.giveup_at[msg.src] = at
            self._at(at, self._transport_error, conn, msg.src, "tcp_timeout")

    def _sender_alive(self, conn: Connection, msg: Msg) -> bool:
        """Did the transmission that gets through leave a live sender with a working socket?"""
        if msg.src == self.P and msg.at >= conn.crash_at:
            return False  # a dead host sends nothing, retransmissions included
        return msg.at < conn.giveup_at[msg.src]

    def _client_ack(self, conn: Connection) -> None:
        """The client's kernel acknowledges an inbound segment (unless the client is dead)."""
        now = self.env._now
        if self.P == CLIENT and now >= conn.crash_at:
            return
        if self.tcp and conn.idle is not None:
            conn.last_refresh = now  # the ACK goes out through the NAT
        self._radio(now)

    def _transport_error(self, conn: Connection, side: str, cause: str) -> None:
        """``side``'s socket fails: TCP gave up, or an RST arrived."""
        if conn.closed:
            return
        if cause == "tcp_timeout":
            self._break(conn, "tcp_timeout")
            if conn.closed:  # the break completed a monitor-mode detection
                return
        if side == self.D:
            self._declare(conn, cause)
        else:
            conn.peer_closed = True
            conn.giveup_at[side] = min(conn.giveup_at[side], self.env._now)

    def _deliver(self, msg: Msg) -> None:
        """A message reaches the other side's host (its kernel, not yet its application)."""
        # the hot path: _sender_alive, _nat_cross, _client_ack and the stall check written out
        conn = msg.conn
        src = msg.src
        if conn.closed or msg.blocked or src in conn.cut:
            return
        tcp = self.tcp
        if tcp and (  # not _sender_alive
            (src == self.P and msg.at >= conn.crash_at) or not msg.at < conn.giveup_at[src]
        ):
            conn.cut.add(src)  # in order: nothing behind a segment that never arrives gets through
            return
        now = self.env._now
        dst = SERVER if src == CLIENT else CLIENT
        if dst == CLIENT and not msg.crossed:
            if conn.idle is not None:  # _nat_cross(conn, msg, False)
                if not conn.nat_expired and now >= conn.last_refresh + conn.idle:
                    self._nat_check(conn, now)
                if conn.nat_expired:
                    self._nat_cross(conn, msg, False)  # the drop (the check is done)
                    return
                if self.nat_both:
                    conn.last_refresh = now
            # _client_ack: the client's kernel acknowledges the segment (unless it is dead)
            if not (self.P == CLIENT and now >= conn.crash_at):
                if tcp and conn.idle is not None:
                    conn.last_refresh = now  # the ACK goes out through the NAT
                if now - self.radio_last > RADIO_TAIL:
                    self.stats.wakeups += 1
                self.radio_last = now
        if dst == self.P:
            if now >= conn.crash_at:
                if tcp:
                    self._give_up_later(conn, msg, msg.attempts)
                return
            if conn.peer_closed:  # the peer's kernel answers a closed socket with an RST
                if tcp:
                    self._at(now + self.delay[dst](), self._transport_error, conn, self.D, "reset")
                return
            stalls = self.stalls
            end = stalls.end_if_down(now) if stalls is not None else None
            if end is not None:  # the application catches up when the stall ends
                self._at(end, self._receive, conn, msg)
                return
        self._receive(conn, msg, now)

    def _receive(self, conn: Connection, msg: Msg, now: float | None = None) -> None:
        """A message reaches the receiving application."""
        if conn.closed:
            return
        if now is None:  # called at the end of a stall
            now = self.env._now
        kind = msg.kind
        if msg.src == self.D:  # arrives at the peer
            if kind == PING and now < conn.crash_at and not conn.peer_closed:
                self._send(conn, Msg(PONG, self.P, msg.seq, msg.stamp, now, self.frame))
            elif self.adaptive and kind in (PONG, APP):
                self._policy_receive(conn, msg)
            return
        det = conn.det
        if self.tracing:
            self._trace(conn, "receive", msg, now - msg.stamp)
        if kind in (PONG, BEAT):
            det.heartbeat(now, msg.seq, msg.stamp)
        elif kind == PING:
            if self.d_pings:
                det.message(now, heartbeat=True)
            else:
                det.heartbeat(now, msg.seq, msg.stamp)
            self._send(conn, Msg(PONG, self.D, msg.seq, msg.stamp, now, self.frame))
        else:
            det.message(now)
        if conn.suspected or self.det_fires is not None or conn.closed:
            self._check(conn)
        else:  # _check's common case, written out
            deadline = det.deadline()
            if deadline <= now:
                self._declare(conn, "detector")
            elif deadline < conn.timer_at and deadline < self.horizon:
                self._set_timer(conn, deadline)
        if self.adaptive and kind in (PONG, APP):  # after the detector took the message
            self._policy_receive(conn, msg)

    def _policy_receive(self, conn: Connection, msg: Msg) -> None:
        """A pong or an app message reached a side that sends heartbeats: its policy learns of it."""
        dst = SERVER if msg.src == CLIENT else CLIENT
        policy = self.policies.get(dst)
        if policy is None or conn.closed:
            return
        if msg.kind == PONG:
            policy.answered(self.env._now, msg.seq)
        else:
            policy.app(self.env._now, "received")
        self._policy_input(conn, dst)


SLOT_COLUMNS = [
    "slot",
    "connections",
    "connected_s",
    "alive_s",
    "suspect_alive_s",
    "false_positives",
    "breaks_crash",
    "breaks_nat",
    "breaks_tcp_timeout",
    "detections",
    "undetected_breaks",
    "heartbeats_sent",
    "wakeups",
]


def slot_row(m: SlotModel) -> tuple:
    """One connection slot's counters, for per-connection statistics across slots."""
    st = m.stats
    return (
        m.slot,
        st.connections,
        st.connected_s,
        st.alive_s,
        st.suspect_alive_s,
        st.false_positives,
        st.breaks["crash"],
        st.breaks["nat"],
        st.breaks["tcp_timeout"],
        len(st.latencies),
        st.undetected,
        st.heartbeats,
        st.wakeups,
    )
