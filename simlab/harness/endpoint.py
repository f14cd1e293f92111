"""Heartbeats and the detector on a live `websockets` connection.

:class:`Heartbeats` is the harness's twin of the model's heartbeat timer: it sends
pings with the library's ``ping()`` on the scenario's schedule and feeds
:mod:`simlab.detector`'s pure state machine with the event loop's clock (times
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

from ..detector import make_detector
from ..distributions import Uniforms


class _Watched:
    """Mixin: remember how the transport ended and tell the harness."""

    on_lost = None  # set by the harness: callable(exc)
    on_fail = None  # set by the harness: callable(code, reason) when the library fails it
    on_activity = None  # set by the harness: callable() on every read or write of the socket

    last_rx = None  # loop time of the last bytes read (the handshake's end, right after connect)

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
    """Pings on the scenario's schedule over ``ws``, answered pongs into the pure detector.

    ``now()`` is the run's clock (seconds since the run started); ``record(event,
    detail, value)`` notes an event; ``declare(by)`` is called once the detector's
    deadline has passed.
    """

    def __init__(self, scenario, ws, now, record, declare, jitter_rng, start: float | None = None):
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
        self.det = make_detector(scenario, self.opened)
        self.seq = 0
        self.stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._offset = self.loop.time() - now()  # run time -> loop time
        self.lateness: list[float] = []  # how late the event loop woke us: the clock's resolution

    def start(self) -> None:
        self._schedule_beat(self.opened)
        self._check()

    def stop(self) -> None:
        self.stopped = True
        for handle in (self._timer, self._beat):
            if handle is not None:
                handle.cancel()

    def _interval(self) -> float:
        hb = self.s.heartbeat
        if hb.jitter == 0:
            return hb.interval
        return hb.interval * (1 + hb.jitter * (2 * self.jitter() - 1))

    def _schedule_beat(self, after: float) -> None:
        at = after + self._interval()
        self._beat = self.loop.call_at(self._offset + at, self._send, at)

    def _send(self, due: float) -> None:
        if self.stopped:
            return
        t = self.now()
        self.seq += 1
        seq = self.seq
        self.det.sent(t, seq)
        self.record("ping", None, seq)
        self.loop.create_task(self._ping(seq, t, due))
        self._schedule_beat(due)  # drift-free, like the model's timer
        self._check()

    async def _ping(self, seq: int, sent_at: float, due: float) -> None:
        try:
            waiter = await self.ws.ping(struct.pack("!I", seq))
        except Exception:  # the connection closed under us: on_lost reports it
            return
        self.lateness.append(max(0.0, self.now() - due))  # timer + task: when it hit the socket
        waiter.add_done_callback(lambda f: self._pong(f, seq, sent_at))

    def _pong(self, fut: asyncio.Future, seq: int, sent_at: float) -> None:
        if self.stopped or fut.cancelled() or fut.exception() is not None:
            return
        t = self.now()
        self.det.heartbeat(t, seq, sent_at)
        self.record("pong", seq, t - sent_at)
        self._check()

    def message(self) -> None:
        """An application message arrived."""
        if not self.stopped:
            self.det.message(self.now())
            self._check()

    def _check(self) -> None:
        if self.stopped:
            return
        deadline = self.det.deadline()
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
