"""One harness run: every connection slot of a (scaled) scenario over real sockets.

Each slot keeps one connection open at a time, as in the model: it connects,
the detecting side runs :class:`~.endpoint.Heartbeats` (or the library's own
keepalive), faults are injected on the slot's schedule (crashes per connection,
outages and stalls per slot, drawn from the same kind of SeedSequence streams as
the model's), and after a declaration the slot reconnects after the scenario's
delay (once any outage is over, the model's convention). Both ends run in this
process, so the moment of every injected fault is known exactly.

SIGINT and SIGTERM during a run cancel it like Ctrl-C would: the run's own
teardown closes every socket and removes the backend's namespaces, then
:class:`KeyboardInterrupt` is raised, with no asyncio tracebacks on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from simlab.engines.network import DownPeriods
from simlab.harness.accounting import account
from simlab.harness.endpoint import Heartbeats, WatchedClient, WatchedServer, transport_cause
from simlab.harness.heap import frozen_heap
from simlab.rng import stream
from simlab.rules.policy import make_policy, make_throttle
from simlab.scenario.distributions import Exponential, Sampler

POLICIES = ("detector", "websockets-native")


@dataclass(eq=False)
class Conn:
    """One harness connection and what the path did to it."""

    slot: int
    number: int
    started: float = math.nan  # connect() called (the NAT mapping's birth)
    opened: float = math.nan
    client: object = None
    server: object = None
    server_ready: asyncio.Future | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    crashed: bool = False
    hb: Heartbeats | None = None  # the detecting side's
    hbs: list = field(default_factory=list)  # every side's heartbeats on this connection
    nat_idle: float | None = None
    crossings: list = field(default_factory=list)  # proxy: exact NAT crossings
    activity: list = field(default_factory=list)  # netns: client-side sends and receives
    port: int = 0
    closed_at: float = math.nan


class HarnessRun:
    """Runs ``scenario`` (already scaled) on ``backend``; :meth:`main` returns raw events."""

    def __init__(self, scenario, backend, policy: str = "detector", progress=None):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.s = scenario
        self.backend = backend
        self.policy = policy
        self.progress = progress  # progress(now, total): the run's clock, in seconds
        self.events: list[tuple] = []
        self.conns: list[Conn] = []
        self.by_port: dict[int, Conn] = {}
        self.by_path: dict[str, Conn] = {}
        self.D = scenario.detector_side
        self.P = "client" if self.D == "server" else "server"
        s = scenario
        hb = s.heartbeat
        self.pingers = ("client", "server") if hb.initiator == "both" else (hb.initiator,)
        # one policy per slot and pinging side, living across reconnects (simlab.rules.policy)
        self.policies = [
            {side: make_policy(s, side) for side in self.pingers} for _ in range(s.connections)
        ]
        throttle = make_throttle(s) if self.D == "client" else None
        self.det_fires = throttle.fire_at if throttle is not None else None
        n, h = s.connections, s.horizon
        o, st = s.link.outages, s.peer.stall
        self.outages = [
            DownPeriods(o.mtbf, o.duration, h, stream(s.seed, i, "outages")) if o else None
            for i in range(n)
        ]
        self.stalls = [
            DownPeriods(st.mtbf, st.duration, h, stream(s.seed, i, "stalls")) if st else None
            for i in range(n)
        ]
        self.stalled = [False] * n
        # Slots start spread over one heartbeat interval, so slots whose schedules are
        # deterministic don't all act in the same instant and queue behind each other in
        # the one event loop. Each slot's times are reported from its own origin.
        self.origin = [s.heartbeat.interval * i / n for i in range(n)]
        self.lags: list[float] = []
        self.meter: list[float] = []  # loop round trips that skip the path (see _meter)
        self.current: list[Conn | None] = [None] * n

    # -- clock and records ----------------------------------------------------------

    def now(self) -> float:
        return self.loop.time() - self.offset

    def record(self, conn: Conn, event: str, detail=None, value=None, t: float | None = None):
        self.events.append(
            (conn.slot, conn.number, self.now() if t is None else t, event, detail, value)
        )

    def record_slot(self, slot: int, event: str) -> None:
        self.events.append((slot, 0, self.now(), event, None, None))

    def outage_end(self, slot: int, t: float) -> float | None:
        """End of the slot's outage covering run time ``t``, or None."""
        periods = self.outages[slot]
        if periods is None:
            return None
        end = periods.end_if_down(t - self.origin[slot])
        return None if end is None else end + self.origin[slot]

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    # -- the run --------------------------------------------------------------------

    async def main(self) -> list[tuple]:
        try:
            return await self._main()
        finally:
            await self.backend.stop()

    async def _main(self) -> list[tuple]:
        self.loop = asyncio.get_running_loop()
        self.rtt = None
        self.offset = self.loop.time()
        s = self.s
        native = self.policy == "websockets-native" and self.D == "server"
        await self.backend.start(self)
        server_sock = self.backend.server_socket()
        async with serve(
            self._handler,
            sock=server_sock,
            create_connection=WatchedServer,
            compression=None,
            ping_interval=s.heartbeat.interval if native else None,
            ping_timeout=s.ack_timeout if native else None,
            close_timeout=1,
        ):
            if hasattr(self.backend, "probe_rtt"):
                self.rtt = await self.backend.probe_rtt(self)
            self.offset = self.loop.time()  # time 0: every slot starts now
            meter = asyncio.create_task(self._meter())
            shown = asyncio.create_task(self._show_progress()) if self.progress else None
            try:
                await asyncio.gather(*(self._slot(i) for i in range(s.connections)))
                if self.progress:
                    with contextlib.suppress(Exception):
                        self.progress(self.total(), self.total())  # done: the line says 100%
            finally:
                meter.cancel()
                if shown is not None:
                    shown.cancel()
                for conn in self.conns:
                    self._teardown(conn)
        return self.events

    async def _slot(self, i: int) -> None:
        s = self.s
        tasks = []
        if self.stalls[i] is not None:
            tasks.append(asyncio.create_task(self._stall_driver(i)))
        if self.outages[i] is not None and hasattr(self.backend, "outage"):
            tasks.append(asyncio.create_task(self._outage_driver(i)))
        crash = (
            Sampler(Exponential(s.peer.crash.mtbf), stream(s.seed, i, "crash"), 16)
            if s.peer.crash
            else None
        )
        jitter = stream(s.seed, i, "jitter")
        number = 0
        origin = self.origin[i]
        await self.sleep_until(origin)
        try:
            while self.now() < origin + s.horizon:
                end = self.outage_end(i, self.now())
                if end is not None:
                    await self.sleep_until(end)
                    continue
                number += 1
                conn = Conn(i, number)
                self.conns.append(conn)
                if not await self._open(conn, jitter):
                    await asyncio.sleep(s.reconnect.delay)
                    continue
                if crash is not None:
                    self.loop.call_at(
                        self.offset + conn.opened + crash(),
                        lambda c=conn: self.loop.create_task(self._crash(c)),
                    )
                remaining = origin + s.horizon - self.now()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.ended.wait(), max(remaining, 0))
                if not conn.ended.is_set():
                    self._end(conn, "horizon")
                    break
                await self.sleep_until(conn.closed_at + s.reconnect.delay)
        finally:
            for task in tasks:
                task.cancel()

    async def _open(self, conn: Conn, jitter) -> bool:
        s, i = self.s, conn.slot
        path = f"/s{i}/c{conn.number}"
        conn.server_ready = self.loop.create_future()
        self.by_path[path] = conn
        sock, (host, port) = self.backend.client_socket(i)
        conn.port = sock.getsockname()[1]
        self.by_port[conn.port] = conn
        conn.started = self.now()
        native = self.policy == "websockets-native" and self.D == "client"
        try:
            await asyncio.wait_for(self.loop.sock_connect(sock, (host, port)), 5)
            ws = await connect(
                f"ws://{host}:{port}{path}",
                sock=sock,
                proxy=None,
                compression=None,
                create_connection=WatchedClient,
                ping_interval=s.heartbeat.interval if native else None,
                ping_timeout=s.ack_timeout if native else None,
                open_timeout=5,
                close_timeout=1,
            )
            await asyncio.wait_for(conn.server_ready, 5)
        except Exception as exc:  # refused, timed out, a handshake the server rejected
            sock.close()
            self.record(conn, "connect_failed", type(exc).__name__)
            return False
        conn.client = ws
        noted = self.now()
        handshake = ws.last_rx - self.offset if ws.last_rx is not None else noted
        self.lags.append(noted - handshake)  # bookkeeping lag behind the wire
        conn.opened = handshake  # the connection opened when its handshake ended on the wire
        self.current[i] = conn
        self.record(conn, "open", t=conn.opened)
        log = self.backend.nat_log(conn)
        if log is not None:  # netns: the kernel's NAT; when it expired is read off this log
            conn.nat_idle = self.backend.nat_timeout
            log.append(handshake)  # the server's 101 crossed the NAT (at the client's end) then
            ws.on_activity = lambda: log.append(self.now())
        d_ws = conn.server if self.D == "server" else conn.client
        p_ws = conn.client if self.D == "server" else conn.server
        d_ws.on_lost = lambda exc: self._lost(conn, exc)
        d_ws.on_fail = lambda code, reason: self._declare(conn, "detector")
        if self.stalled[i]:
            p_ws.transport.pause_reading()
        if self.policy == "detector":
            # the slot's own clock (from its origin), like the model's env.now: a policy's
            # timer grid (a throttled tab's) and the detector see the slot's times
            origin = self.origin[i]

            def slot_now():
                return self.now() - origin

            for side, ws_ in ((self.D, d_ws), (self.P, p_ws)):
                watch = side == self.D
                if not watch and side not in self.pingers:
                    continue
                hb = Heartbeats(
                    s,
                    ws_,
                    slot_now,
                    lambda event, detail=None, value=None, side=side: self.record(
                        conn, event, side if detail is None and event != "policy" else detail, value
                    ),
                    lambda by: self._declare(conn, by),
                    jitter,
                    start=conn.opened - origin,
                    pings=side in self.pingers,
                    watch=watch,
                    policy=self.policies[i].get(side),
                    det_fires=self.det_fires if watch else None,
                )
                conn.hbs.append(hb)
                if watch:
                    conn.hb = hb
                    d_ws.on_ping = hb.ping_received
            for hb in conn.hbs:
                hb.start()
        for ws_, is_d in ((d_ws, True), (p_ws, False)):
            self.loop.create_task(self._drain(conn, ws_, is_d))
        return True

    async def _handler(self, ws) -> None:
        if ws.request.path == "/probe":  # the backend's RTT probe
            await ws.wait_closed()
            return
        conn = self.by_path.get(ws.request.path)
        if conn is None or conn.server_ready.done():
            await ws.close()
            return
        conn.server = ws
        conn.server_ready.set_result(None)
        await ws.wait_closed()

    def total(self) -> float:
        """The run's length on its own clock: the last slot's origin plus the horizon."""
        return max(self.origin, default=0.0) + self.s.horizon

    async def _show_progress(self, every: float = 0.5) -> None:
        """Tell ``progress`` the run's clock every ``every`` s (never raises into the run)."""
        total = self.total()
        while True:
            with contextlib.suppress(Exception):
                self.progress(min(self.now(), total), total)
            await asyncio.sleep(every)

    async def _meter(self, every: float = 0.05) -> None:
        """Round trips to the server that skip the emulated path, all run long.

        What they take is the event loop's own processing time under the run's load
        (a read, a write, a wake-up on each side): part of the clock's resolution.
        """
        sock, (host, port) = self.backend.direct_socket()
        ws = None
        try:
            await asyncio.wait_for(self.loop.sock_connect(sock, (host, port)), 5)
            ws = await connect(
                f"ws://{host}:{port}/probe",
                sock=sock,
                proxy=None,
                compression=None,
                ping_interval=None,
            )
            while True:
                await asyncio.sleep(every)
                self.meter.append(await asyncio.wait_for(await ws.ping(), 5))
        except Exception:  # the run is ending or the meter's connection failed: it stops
            if ws is None:
                sock.close()
        finally:
            if ws is not None and ws.transport is not None:
                ws.transport.abort()

    async def _drain(self, conn: Conn, ws, is_d: bool) -> None:
        """Consume application messages (so flow control never blocks pongs)."""
        try:
            async for _ in ws:
                if is_d and conn.hb is not None:
                    conn.hb.message()
        except Exception:
            pass

    # -- what happens to a connection ----------------------------------------------------

    async def _crash(self, conn: Conn) -> None:
        if conn.ended.is_set():
            return
        await self.backend.crash(conn)  # the break is real once the path drops everything
        if not conn.ended.is_set():
            self.record(conn, "break", "crash")

    def _lost(self, conn: Conn, exc) -> None:
        """The detecting side's socket failed (an RST, or TCP gave up)."""
        if conn.ended.is_set():
            return
        cause = transport_cause(exc)
        if cause == "tcp_timeout":
            self.record(conn, "break", "tcp_timeout")
        self._declare(conn, cause)

    def _declare(self, conn: Conn, by: str) -> None:
        if conn.ended.is_set():
            return
        self.record(conn, "declare", by)
        for hb in conn.hbs:  # every policy learns how the connection ended, as the model's do
            hb.ended(hb.now(), by)
        self._end(conn, None)

    def _end(self, conn: Conn, why: str | None) -> None:
        end = self.origin[conn.slot] + self.s.horizon
        t = self.now() if why is None else min(self.now(), end)
        self.record(conn, "close", why, t=t)
        conn.closed_at = t
        conn.ended.set()
        self._teardown(conn)

    def _teardown(self, conn: Conn) -> None:
        for hb in conn.hbs:
            hb.stop()
        for ws in (conn.client, conn.server):
            if ws is not None and ws.transport is not None:
                ws.on_lost = ws.on_fail = ws.on_ping = None
                ws.transport.abort()
        self.backend.end(conn)

    async def _stall_driver(self, i: int) -> None:
        periods, origin = self.stalls[i], self.origin[i]
        for start, end in zip(periods.starts, periods.ends, strict=False):
            await self.sleep_until(origin + start)
            self.stalled[i] = True
            self._peer_reading(i, False)
            await self.sleep_until(origin + end)
            self.stalled[i] = False
            self._peer_reading(i, True)

    def _peer_reading(self, i: int, on: bool) -> None:
        conn = self.current[i]
        if conn is None or conn.ended.is_set():
            return
        ws = conn.client if self.D == "server" else conn.server
        if ws is not None and ws.transport is not None and not ws.transport.is_closing():
            (ws.transport.resume_reading if on else ws.transport.pause_reading)()

    async def _outage_driver(self, i: int) -> None:
        periods, origin = self.outages[i], self.origin[i]
        for start, end in zip(periods.starts, periods.ends, strict=False):
            await self.sleep_until(origin + start)
            await self.backend.outage(i, True)
            self.record_slot(i, "outage_start")
            await self.sleep_until(origin + end)
            await self.backend.outage(i, False)
            self.record_slot(i, "outage_end")


def _by_slot(conns: list[Conn]) -> dict[int, list[Conn]]:
    out: dict[int, list[Conn]] = {}
    for conn in conns:
        out.setdefault(conn.slot, []).append(conn)
    return out


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[int(0.99 * (len(values) - 1))]


@dataclass
class HarnessResult:
    """What the harness measured: the figures, the records and what was run."""

    summary: dict
    records: object  # DataFrame in the model's record schema (plus ping/pong rows)
    info: dict


def _own_namespaces() -> set[str]:
    """This process's harness namespaces (their names carry its PID: simlab.harness.netns)."""
    from simlab.harness.netns import NETNS_DIR, PREFIX

    prefix = f"{PREFIX}{os.getpid()}-"
    try:
        return {n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)}
    except OSError:
        return set()


def _remove_namespaces(names) -> None:
    for name in sorted(names):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def run_interruptibly(make_coro):
    """``asyncio.run(make_coro())``, with SIGINT and SIGTERM cancelling it like Ctrl-C.

    A signal cancels the main task (so its ``finally`` blocks, the backend's teardown,
    run), later signals are ignored until that is done, the leftover tasks' cancellation
    noise is kept quiet, and :class:`KeyboardInterrupt` is raised once the loop is closed.
    Namespaces this process created while the run was being set up (a lab still being
    built in a thread when the signal came, which its backend never got to own) are
    removed. Outside the main thread signals cannot be caught: a plain run.
    """
    interrupted: list[int] = []
    before = _own_namespaces()

    async def main():
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        default = loop.get_exception_handler()

        def on_error(loop, context):
            if interrupted:  # cancelled tasks and closed sockets of a stopped run: expected
                return
            if default is not None:
                default(loop, context)
            else:
                loop.default_exception_handler(context)

        def stop(signum):
            if not interrupted:
                interrupted.append(signum)
                task.cancel()

        loop.set_exception_handler(on_error)
        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous = signal.getsignal(sig)
                try:
                    loop.add_signal_handler(sig, stop, sig)
                except (ValueError, RuntimeError, NotImplementedError):
                    continue
                installed.append((sig, previous))
        try:
            return await make_coro()
        except asyncio.CancelledError:
            if not interrupted:
                raise
            return None
        finally:
            for sig, previous in installed:
                loop.remove_signal_handler(sig)
                if previous is not None:
                    signal.signal(sig, previous)  # the caller's handler, not SIG_DFL

    try:
        result = asyncio.run(main())
    finally:
        if interrupted:
            _remove_namespaces(_own_namespaces() - before)
    if interrupted:
        raise KeyboardInterrupt
    return result


def run_harness(scenario, backend, policy: str = "detector", progress=None) -> HarnessResult:
    """Run the scaled ``scenario`` on ``backend`` and account for it like the model.

    ``progress(now, total)`` hears the run's clock about twice a second. SIGINT and
    SIGTERM end the run cleanly and raise KeyboardInterrupt (:func:`run_interruptibly`).
    """
    started = time.perf_counter()
    run = HarnessRun(scenario, backend, policy, progress)
    with frozen_heap():
        raw = run_interruptibly(run.main)
    o = run.origin  # each slot's times from its own origin, as in the model
    events = [(e[0], e[1], e[2] - o[e[0]], *e[3:]) for e in raw]
    nat = {}
    for conn in run.conns:
        if conn.nat_idle is not None:
            log = conn.crossings if backend.nat_log(conn) is None else conn.activity
            shift = o[conn.slot]
            nat[(conn.slot, conn.number)] = (
                conn.started - shift,
                conn.nat_idle,
                [x - shift for x in log],
            )
    summary, records = account(scenario, events, nat, run.policies)
    summary["engine"] = f"harness-{backend.name}"
    summary["policy"] = policy
    summary["wall_s"] = time.perf_counter() - started
    # The harness's clock resolution, measured during the run: how late its pings
    # reached the socket, how far its bookkeeping ran behind the wire at opening, and
    # an event-loop round trip that skips the path (99th percentiles, added up).
    late = [x for c in run.conns for hb in c.hbs for x in hb.lateness]
    resolution = max(0.001, _p99(late) + _p99(run.lags) + _p99(run.meter))
    # How much later than the model's instant a reconnection opens (the real handshake).
    reopen = []
    for slot_conns in _by_slot(run.conns).values():
        for before, after in zip(slot_conns, slot_conns[1:], strict=False):
            if not math.isnan(before.closed_at) and not math.isnan(after.opened):
                reopen.append(max(0.0, after.opened - before.closed_at - scenario.reconnect.delay))
    info = {
        "backend": backend.name,
        "policy": policy,
        "rtt_s": run.rtt,
        "resolution_s": resolution,
        "reconnect_lag_s": _p99(reopen),
        "loop_rtt_s": _p99(run.meter),
        "timer_lateness_s": _p99(late),
    }
    if getattr(backend, "nat_timeout", None) is not None:
        info["kernel_nat_timeout_s"] = backend.nat_timeout
    return HarnessResult(summary, records, info)
