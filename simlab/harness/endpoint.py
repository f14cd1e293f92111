"""Heartbeats and the detector on a live `websockets` connection.

:class:`Heartbeats` is the harness's twin of the model's heartbeat timer: it sends
pings with the library's ``ping()`` on the scenario's schedule and feeds
:mod:`simlab.rules.detector`'s pure state machine with the event loop's clock (times
relative to the run's start, like the model's ``env.now``). It owns no timing
rule of its own: when to suspect is ``detector.deadline()``.

:class:`Native` instead lets the library keep the connection alive itself
(``ping_interval`` / ``ping_timeout``) and only notes when it gives up.
"""

from __future__ import annotations

import asyncio
import errno
import struct

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Opcode

from simlab.rules.detector import TimeoutDetector, make_detector
from simlab.scenario.distributions import Uniforms


class _Watched:
    """Mixin: remember how the transport ended and tell the harness."""

    on_lost = None  # set by the harness: callable(exc)
    on_fail = None  # set by the harness: callable(code, reason) when the library fails it
    on_activity = None  # set by the harness: callable() on every read or write of the socket

    last_rx = None  # loop time of the last bytes read (the handshake's end, right after connect)

    on_ping = None  # set by the harness: callable(payload) when a ping frame arrives

    def process_event(self, event):
        if self.on_ping is not None and event.opcode is Opcode.PING:
            self.on_ping(bytes(event.data))
        super().process_event(event)

    def data_received(self, data):
        self.last_rx = self.loop.time()
        if self.on_activity is not None:
            self.on_activity()
        super().data_received(data)

    def send_data(self):
        if self.on_activity is not None:
            self.on_activity()
        super().send_data()

    def connection_lost(self, exc):
        if self.on_lost is not None:
            self.on_lost(exc)
        super().connection_lost(exc)

    def _watch_fail(self):
        fail = self.protocol.fail

        def wrapped(code, reason=""):
            if self.on_fail is not None:
                self.on_fail(code, reason)
            return fail(code, reason)

        # The library's keepalive gives up through protocol.fail(1011, ...): noting the
        # call is the only way to learn *when* it gave up, not when the close completed.
        self.protocol.fail = wrapped


class WatchedClient(_Watched, ClientConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._watch_fail()


class WatchedServer(_Watched, ServerConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._watch_fail()


def transport_cause(exc: BaseException | None) -> str:
    """The model's name for how a socket failed: an RST, or TCP giving up."""
    if isinstance(exc, TimeoutError) or getattr(exc, "errno", None) == errno.ETIMEDOUT:
        return "tcp_timeout"
    return "reset"


class Heartbeats:
    """One side's heartbeats over ``ws``: pings on its policy's schedule, and/or the pure detector.

    ``pings``: this side sends pings (its policy, one per slot across reconnects,
    says when; :mod:`simlab.rules.policy`); ``watch``: this side runs the detector, fed
    with the pongs to its own pings, or with the peer's pings (:meth:`ping_received`)
    when only the peer pings. ``now()`` is the run's clock (seconds since the run
    started); ``record(event, detail, value)`` notes an event; ``declare(by)`` is
    called once the detector's deadline has passed. The driving loop is the model's
    (see :mod:`simlab.rules.policy`), with the event loop's clock.
    """

    def __init__(
        self,
        scenario,
        ws,
        now,
        record,
        declare,
        jitter_rng,
        start: float | None = None,
        *,
        pings: bool = True,
        watch: bool = True,
        policy=None,
        det_fires=None,
    ):
        self.s = scenario
        self.ws = ws
        self.now = now
        self.record = record
        self.declare = declare
        self.jitter = Uniforms(jitter_rng)
        self.loop = asyncio.get_running_loop()
        # ``start``: when the connection opened on the wire (the handshake's last bytes),
        # which the harness notes a little after the fact; the schedule counts from it
        self.opened = now() if start is None else start
        self.pings, self.watch = pings, watch
        self.det = make_detector(scenario, self.opened) if watch else None
        self.policy = (
            policy if policy is not None and (policy.adaptive or policy.throttle) else None
        )
        self.follow = self.policy is not None and pings and watch  # the detector takes its timeout
        self.det_fires = det_fires  # a throttled side's detector timer fires late too
        self.seq = 0
        self.stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._from = self._i = self._f = 0.0  # the armed beat: since, interval, jitter factor
        self._offset = self.loop.time() - now()  # run time -> loop time
        self.lateness: list[float] = []  # how late the event loop woke us: the clock's resolution

    def start(self) -> None:
        if self.pings:
            if self.policy is not None:
                self.policy.opened(self.opened)
                self._policy_input(rearm=False)
            self._schedule_from(self.opened)
        if self.watch:
            self._check()

    def stop(self) -> None:
        self.stopped = True
        for handle in (self._timer, self._beat):
            if handle is not None:
                handle.cancel()

    def ended(self, t: float, cause: str) -> None:
        """The connection ended as this side saw it: the policy learns it (never the truth)."""
        self.stop()
        if self.policy is not None:
            self.policy.ended(t, cause)
            self._policy_events()

    # -- the heartbeat timer ---------------------------------------------------------------

    def _factor(self) -> float:
        j = self.s.heartbeat.jitter
        return 1.0 if j == 0 else 1 + j * (2 * self.jitter() - 1)

    def _schedule_from(self, since: float) -> None:
        """Arm the next beat one interval (with jitter) after ``since``."""
        f = self._factor()
        if self.policy is None:
            self._arm_beat(since + self.s.heartbeat.interval * f)
            return
        self._from, self._i, self._f = since, self.policy.interval(), f
        self._arm_beat(self.policy.timer_at(since + self._i * f))

    def _arm_beat(self, at: float) -> None:
        if self._beat is not None:
            self._beat.cancel()
        self._beat = self.loop.call_at(self._offset + at, self._send, at)

    def _send(self, due: float) -> None:
        if self.stopped:
            return
        t = self.now()
        if self.policy is not None:
            later = self.policy.due(due)
            if later > due:  # application traffic already did this heartbeat's work
                self.record("skip", None, later)
                self._arm_beat(self.policy.timer_at(later))
                return
            self.record("interval", None, due - self._from)
        self.seq += 1
        seq = self.seq
        if self.watch:
            self.det.sent(t, seq)
        self.record("ping", None, seq)
        self.loop.create_task(self._ping(seq, t, due))
        if self.policy is not None:
            self.policy.sent(due, seq)
            self._policy_input(rearm=False)
            if self.stopped:
                return
        self._schedule_from(due)  # drift-free, like the model's timer
        if self.watch:
            self._check()

    async def _ping(self, seq: int, sent_at: float, due: float) -> None:
        try:  # the payload carries the send time, for a peer that watches our pings
            waiter = await self.ws.ping(struct.pack("!Id", seq, sent_at))
        except Exception:  # the connection closed under us: on_lost reports it
            return
        self.lateness.append(max(0.0, self.now() - due))  # timer + task: when it hit the socket
        waiter.add_done_callback(lambda f: self._pong(f, seq, sent_at))

    def _pong(self, fut: asyncio.Future, seq: int, sent_at: float) -> None:
        if self.stopped or fut.cancelled() or fut.exception() is not None:
            return
        t = self.now()
        self.record("pong", seq, t - sent_at)
        if self.watch:
            self.det.heartbeat(t, seq, sent_at)
        if self.policy is not None:
            self.policy.answered(t, seq)
            self._policy_input()
        if self.watch:
            self._check()

    # -- the policy ------------------------------------------------------------------------

    def _policy_events(self) -> None:
        for what, value in self.policy.events():
            self.record("policy", what, value)

    def _policy_input(self, rearm: bool = True) -> None:
        """After an input to the policy: log, re-arm on a new interval, update the detector."""
        self._policy_events()
        if not self.policy.adaptive or self.stopped:
            return
        interval = self.policy.interval()
        if rearm and interval != self._i:
            self._i = interval
            at = self._from + interval * self._f
            self._arm_beat(self.policy.timer_at(max(at, self.now())))
        if self.follow:
            timeout = self.policy.timeout()
            if (
                timeout is not None
                and isinstance(self.det, TimeoutDetector)
                and self.det.timeout != timeout
            ):
                self.det.timeout = timeout
                self._check()

    # -- the detector ----------------------------------------------------------------------

    def ping_received(self, data: bytes) -> None:
        """The peer's ping arrived: when only the peer pings, its pings are the heartbeats."""
        if self.stopped or not self.watch:
            return
        t = self.now()
        if self.pings:  # we ping too: theirs are other heartbeat traffic
            self.det.message(t, heartbeat=True)
        elif len(data) == 12:
            seq, sent_at = struct.unpack("!Id", data)
            self.det.heartbeat(t, seq, sent_at)
        self._check()

    def message(self) -> None:
        """An application message arrived."""
        if not self.stopped and self.watch:
            self.det.message(self.now())
            self._check()

    def _check(self) -> None:
        if self.stopped or not self.watch:
            return
        deadline = self.det.deadline()
        if self.det_fires is not None:
            deadline = self.det_fires(deadline)
        if deadline <= self.now():
            self.stop()
            self.declare("detector")
            return
        if self._timer is not None:
            self._timer.cancel()
        if deadline != float("inf"):
            self._timer = self.loop.call_at(self._offset + deadline, self._fire, deadline)

    def _fire(self, deadline: float) -> None:
        self.lateness.append(max(0.0, self.now() - deadline))
        self._check()
