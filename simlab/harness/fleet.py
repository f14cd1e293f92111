"""A real small fleet on loopback: the fleet model's reconnect storm on real sockets, and its cross-check.

``simlab crosscheck FLEET.yaml`` (a ``kind: fleet`` file) runs the storm twice:

- **for real**: N ``websockets`` clients (at most :data:`MAX_REAL_CLIENTS`) hold
  connections to a real ``websockets`` server on 127.0.0.1, all in one event loop.
  The server implements the fleet file's admission model in ``process_request``:
  ``workers`` handshake slots, each busy ``workers / handshake_rate`` seconds per
  handshake (``resume_cost`` times that for a client whose TLS session it can
  resume, drawn from the model's own ``tls`` stream), served first come, first
  served; an attempt arriving when every slot is busy and ``backlog`` attempts
  already wait is answered ``503`` (``on_full: refuse``) or never answered
  (``drop``: the client's ``open_timeout`` fires). The trigger is a restart: the
  listening socket closes and every connection is aborted (no close frame, as a
  crash), the port stays closed for ``down`` (``while_down: refuse``: the kernel
  answers RST) or is held by a listener that accepts and never answers (``drop``),
  then a fresh server listens again. Clients notice the abort at once (the model's
  ``notice: close``) and reconnect with the fleet's policy object itself, through
  :class:`simlab.fleet.model._Delays` (the model's table of delays per disconnection,
  client and attempt, drawn from the same ``SeedSequence`` streams), driven by the
  event loop's clock: attempt ``k + 1`` is due a delay after attempt ``k`` failed.
- **in the model**: the same scaled fleet, many replications (seeds of their own),
  with the loopback round trip the real run measured (the file's ``client.rtt``
  is not emulated: as with the netns backend, the delay is the real one).

Every attempt's real outcome (accepted, refused with 503 / RST / a reset under a
restart, timed out) is logged; the log is fed to the model's own figure code
(:func:`simlab.fleet.model._result`, through :class:`AttemptLog`, which has the
attributes it reads), so both sides' figures are computed by one function.

Durations scale like the harness's scenarios (:func:`scale_fleet`): horizon,
heartbeat and detector, down time, connect timeout, every policy duration and
retention shrink by ``--time-scale``; handshake and message rates grow.

What the real fleet does not run (refused as bad input, exit 2): blips and rolling
deploys, silent notice (the detector path; a restart on loopback is always seen at
once), and more than one server (the model's load balancer picks a random server
that is up, which a real client cannot know).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus

from simlab.errors import Problem, ScenarioError
from simlab.fleet import model
from simlab.fleet.spec import Fleet
from simlab.harness.crosscheck import (
    ALPHA,
    Comparison,
    CrossCheck,
    compare_proportions,
    compare_rates,
    compare_samples,
)
from simlab.harness.heap import frozen_heap
from simlab.harness.scale import scale_scenario
from simlab.rules import backoff
from simlab.scenario import schema as sc
from simlab.scenario.distributions import Constant

MAX_REAL_CLIENTS = 300
HOST = "127.0.0.1"
METER_EVERY = 0.005  # the event-loop lateness meter's period (s)
DEFAULT_MODEL_RUNS = 40


# -- scaling and what the real fleet can run ---------------------------------------------


def _scale_policy(policy: backoff.Policy, factor: float) -> backoff.Policy:
    """The same policy class with every duration field (and Phoenix's steps) times ``factor``."""
    changes = {
        f.name: getattr(policy, f.name) * factor
        for f in dataclasses.fields(policy)
        if f.name in backoff.DURATION_FIELDS
    }
    if isinstance(policy, backoff.Schedule):
        changes["steps"] = tuple(s * factor for s in policy.steps)
    return dataclasses.replace(policy, **changes)


def scale_fleet(f: Fleet, factor: float) -> Fleet:
    """``f`` with every duration multiplied by ``factor`` (rates divided by it).

    The client's heartbeat and detector scale through the harness's
    :func:`~simlab.harness.scale.scale_scenario`; the round trip does not (the real
    one is measured and given to the model).
    """
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"time scale must be a positive number, got {factor!r}")
    r = dataclasses.replace
    still = sc.Direction(sc.Loss(), Constant(0.0))  # a placeholder path: only hb/detector are read
    client_scn = f.client.scenario(f.name)
    client_scn = r(client_scn, link=r(client_scn.link, up=still, down=still))
    client_scn = scale_scenario(client_scn, factor)
    client = r(f.client, heartbeat=client_scn.heartbeat, detector=client_scn.detector)
    t = f.trigger
    resume = f.resume and r(
        f.resume,
        time=None if f.resume.time is None else f.resume.time * factor,
        commit_interval=f.resume.commit_interval * factor,
    )
    return r(
        f,
        horizon=f.horizon * factor,
        bin=f.bin * factor,
        client=client,
        policy=_scale_policy(f.policy, factor),
        server=r(
            f.server,
            handshake_rate=f.server.handshake_rate / factor,
            connect_timeout=f.server.connect_timeout * factor,
        ),
        trigger=r(
            t, down=t.down * factor, duration=t.duration * factor, interval=t.interval * factor
        ),
        messages=r(f.messages, rate=f.messages.rate / factor),
        resume=resume,
    )


def refusals(f: Fleet, clients: int) -> list[Problem]:
    """Why the real fleet cannot run ``f`` with ``clients`` real clients (validation problems)."""
    out = []
    if f.trigger.kind != "restart":
        out.append(
            Problem(
                "trigger.kind",
                f"got {f.trigger.kind!r}; the real fleet runs restart triggers (blips and rolling "
                "deploys are model-only)",
            )
        )
    if f.trigger.notice != "close":
        out.append(
            Problem(
                "trigger.notice",
                "got 'silent'; a restart on loopback is seen at once: the real fleet needs notice: close",
            )
        )
    if f.server.servers != 1:
        out.append(
            Problem(
                "server.servers",
                f"got {f.server.servers}; the real fleet runs one server (the model's load balancer "
                "picks a server that is up, which a real client cannot know)",
            )
        )
    if not 1 <= clients <= MAX_REAL_CLIENTS:
        out.append(Problem("--connections", f"got {clients}; 1 to {MAX_REAL_CLIENTS} real clients"))
    return out


# -- the real server's admission -----------------------------------------------------------


class _Down(Exception):
    """The server went down under a waiting or running handshake."""


class Admission:
    """``workers`` handshake slots served first come, first served, with logical service times.

    A handshake's slot is busy from its start to ``start + service``; the next waiting
    handshake starts at that *logical* time (its release is a ``call_at`` callback), so
    the event loop's lateness never accumulates into the server's throughput. An
    arrival finding every slot busy and ``backlog`` handshakes waiting is full.
    """

    def __init__(self, loop, offset: float, workers: int, backlog: int, busy: tuple[array, array]):
        self.loop, self.offset = loop, offset  # loop time of the trigger
        self.workers, self.backlog = workers, backlog
        self.busy = 0
        self.queue: deque[asyncio.Future] = deque()
        self.pending: set[asyncio.Future] = set()  # handshakes in service (and drops)
        self.timers: dict[asyncio.Future, asyncio.TimerHandle] = {}
        self.busy_start, self.busy_end = busy  # every handshake's service, shared across restarts
        self.peak = 0

    def now(self) -> float:
        return self.loop.time() - self.offset

    def full(self) -> bool:
        return self.busy >= self.workers and len(self.queue) >= self.backlog

    async def serve(self, service: float, arrive: float) -> None:
        """Wait for a slot, then hold it for ``service`` seconds; raise :class:`_Down` on shutdown."""
        if self.busy < self.workers and not self.queue:
            self.busy += 1
            start = arrive
        else:
            fut = self.loop.create_future()
            self.queue.append(fut)
            self.peak = max(self.peak, len(self.queue))
            start = await fut  # the logical time a slot freed for it
        finish = start + service
        k = len(self.busy_start)
        self.busy_start.append(start)
        self.busy_end.append(finish)
        done = self.loop.create_future()
        self.pending.add(done)
        self.timers[done] = self.loop.call_at(self.offset + finish, self._release, done, finish)
        try:
            await done
        except _Down:
            self.busy_end[k] = min(finish, max(start, self.now()))  # the work it did not do
            raise

    def _release(self, done: asyncio.Future, finish: float) -> None:
        self.pending.discard(done)
        self.timers.pop(done, None)
        if not done.done():
            done.set_result(None)
        while self.queue:
            nxt = self.queue.popleft()
            if not nxt.done():
                nxt.set_result(finish)  # the slot passes on at the logical time
                return
        self.busy -= 1

    async def hold(self, until: float) -> None:
        """A dropped attempt: never answered; ends at ``until`` or on shutdown."""
        fut = self.loop.create_future()
        self.pending.add(fut)
        self.timers[fut] = self.loop.call_at(
            self.offset + until, lambda: fut.done() or fut.set_result(None)
        )
        try:
            await fut
        finally:
            self.pending.discard(fut)
            self.timers.pop(fut, None)

    def shutdown(self) -> None:
        """The server is gone: every waiting and running handshake fails."""
        for fut in list(self.queue) + list(self.pending):
            handle = self.timers.pop(fut, None)
            if handle is not None:
                handle.cancel()
            if not fut.done():
                fut.set_exception(_Down())
        self.queue.clear()
        self.pending.clear()
        self.busy = 0


# -- the log the model's figure code reads -----------------------------------------------


@dataclass
class _ServerLog:
    busy_start: array
    busy_end: array
    peak: int


@dataclass
class AttemptLog:
    """The real run's attempts and disconnections, with the attributes :func:`simlab.fleet.model._result` reads.

    Times are seconds from the trigger; ``current`` is each client's latest attempt.
    """

    fleet: Fleet
    n: int
    horizon: float
    resumable: np.ndarray
    servers: list
    server: list
    current: list
    a_time: array = field(default_factory=lambda: array("d"))
    a_done: array = field(default_factory=lambda: array("d"))
    a_client: array = field(default_factory=lambda: array("l"))
    a_server: array = field(default_factory=lambda: array("l"))
    a_try: array = field(default_factory=lambda: array("l"))
    a_out: array = field(default_factory=lambda: array("b"))
    g_client: array = field(default_factory=lambda: array("l"))
    g_start: array = field(default_factory=lambda: array("d"))
    g_end: array = field(default_factory=lambda: array("d"))
    g_prev: array = field(default_factory=lambda: array("d"))
    g_gave_up: array = field(default_factory=lambda: array("b"))
    g_notice: array = field(default_factory=lambda: array("d"))


# -- the real run --------------------------------------------------------------------------


class _Tracked(ServerConnection):
    """A server connection the run can abort at the restart, handshake or not.

    Each run subclasses it with its own ``registry`` (a set of live connections).
    """

    registry: set = set()

    def connection_made(self, transport):
        super().connection_made(transport)
        self.registry.add(self)

    def connection_lost(self, exc):
        self.registry.discard(self)
        super().connection_lost(exc)


@dataclass
class RealResult:
    """A real fleet run: the model's figures computed from the real log, and what was measured."""

    storm: model.StormResult
    info: dict


class RealFleet:
    """Runs a scaled, restart-triggered fleet on 127.0.0.1; :meth:`main` fills :attr:`log`."""

    def __init__(self, fleet: Fleet):
        f = self.fleet = fleet
        n = self.n = fleet.clients
        self.delays = model._Delays(f.policy, n, f.seed)  # the model's own delay tables
        self.max_attempts = f.policy.max_attempts or math.inf
        resumable = model.stream(f.seed, "tls").random(n) < f.server.resumable
        unit = f.server.workers / f.server.handshake_rate
        self.service = np.where(resumable, unit * f.server.resume_cost, unit).tolist()
        self.timeout = f.server.connect_timeout
        self.notes: dict[int, int] = {}  # attempt index -> what the server did with it
        self.conns: set = set()  # server side, every connection (for the restart's abort)
        self.clients: list = [None] * n  # client side, each client's open connection
        self.lateness: list[float] = []  # attempts that started late (s)
        self.meter: list[float] = []  # the loop's timer lateness (s)
        self.notice: list[float] = []  # when each client noticed the abort (s from the trigger)
        self.notice_client: list[int] = []
        self.log = AttemptLog(
            f,
            n,
            f.horizon,
            resumable,
            [],
            [0] * n,
            [-1] * n,
        )
        self.port = 0
        self.servers: list = []  # every websockets server of the run (one per up period)
        self.server = None
        self.hold_server = None
        self.held: set = set()
        self.busy = (array("d"), array("d"))
        self.backlog_peak = 0
        self.tracked = type("Tracked", (_Tracked,), {"registry": self.conns})
        self.rtt = math.nan

    def now(self) -> float:
        return self.loop.time() - self.offset

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    # -- the server --------------------------------------------------------------------

    async def _handler(self, ws) -> None:
        await ws.wait_closed()

    async def _process_request(self, connection, request):
        path = request.path.strip("/").split("/")
        if path[0] != "a" or not self.admitting:
            return None  # the initial connections and the RTT probe: no admission
        idx, i = int(path[1]), int(path[2])
        arrive = self.now()
        adm = self.admission
        try:
            if adm.full():
                if self.fleet.server.on_full == "refuse":
                    self.notes[idx] = model.REFUSED_FULL
                    return connection.respond(503, "backlog full\n")
                self.notes[idx] = model.DROPPED_FULL
                await adm.hold(arrive + self.timeout + 1.0)
                connection.transport.abort()
                return connection.respond(503, "dropped\n")
            self.notes[idx] = model.QUEUE_TIMEOUT  # admitted; CONNECTED if the client gets it
            await adm.serve(self.service[i], arrive)
        except _Down:
            connection.transport.abort()
            return connection.respond(503, "server went down\n")
        return None

    async def _start_server(self) -> None:
        srv = self.fleet.server
        self.admission = Admission(self.loop, self.offset, srv.workers, srv.backlog, self.busy)
        self.server = await serve(
            self._handler,
            HOST,
            self.port,
            process_request=self._process_request,
            create_connection=self.tracked,
            compression=None,
            ping_interval=None,
            close_timeout=0.5,
            reuse_address=True,
        )
        self.servers.append(self.server)
        self.port = self.server.sockets[0].getsockname()[1]

    def _shutdown(self) -> None:
        """The trigger at t = 0: stop listening (new attempts meet an RST), abort everything."""
        self.server.server.close()
        for conn in list(self.conns):
            conn.transport.abort()
        self.backlog_peak = max(self.backlog_peak, self.admission.peak)
        self.admission.shutdown()

    async def _reopen(self) -> None:
        """While down: nothing listens (or, ``while_down: drop``, nothing answers); then a new server."""
        if self.fleet.server.while_down == "drop":
            self.hold_server = await asyncio.start_server(
                self._hold, HOST, self.port, reuse_address=True
            )
        await self.sleep_until(self.fleet.trigger.down)
        if self.hold_server is not None:
            self.hold_server.close()
            for writer in list(self.held):
                writer.transport.abort()
            self.hold_server = None
        self.admitting = True
        await self._start_server()

    async def _hold(self, reader, writer) -> None:
        """While down with ``while_down: drop``: accept and never answer."""
        self.held.add(writer)
        with contextlib.suppress(Exception):
            await reader.read()
        self.held.discard(writer)

    # -- the clients -------------------------------------------------------------------

    async def _attempt(self, i: int, idx: int, started: float):
        """One connection attempt: (outcome code, when the client learnt it, the connection)."""
        uri = f"ws://{HOST}:{self.port}/a/{idx}/{i}"
        try:
            ws = await connect(
                uri,
                open_timeout=self.timeout,
                compression=None,
                ping_interval=None,
                close_timeout=0.5,
                proxy=None,
            )
        except InvalidStatus:  # 503: the backlog was full, or the server went down under it
            full = self.notes.get(idx) == model.REFUSED_FULL
            return (model.REFUSED_FULL if full else model.RESET), None
        except ConnectionRefusedError:  # nothing listening: the server is down
            return model.REFUSED_DOWN, None
        except TimeoutError:
            note = self.notes.get(idx)
            if note is not None:  # DROPPED_FULL, or admitted and not served in time
                return note, None
            # no word from the server: held by the down listener, or not yet read
            return (model.DROPPED_DOWN if started < self.down_until else model.QUEUE_TIMEOUT), None
        except Exception:  # the connection died under the handshake: the restart reset it
            return model.RESET, None
        return model.CONNECTED, ws

    async def _client(self, i: int) -> None:
        log = self.log
        ws = self.clients[i]
        await ws.wait_closed()
        noticed = self.now()
        self.notice.append(noticed)
        self.notice_client.append(i)
        gap = len(log.g_client)
        log.g_client.append(i)
        log.g_start.append(0.0)
        log.g_end.append(math.inf)
        log.g_prev.append(-math.inf)
        log.g_gave_up.append(0)
        log.g_notice.append(noticed)
        failed_at, tries = noticed, 0
        while True:
            due = failed_at + self.delays.get(0, i, tries + 1)
            if due >= self.fleet.horizon:
                return
            await self.sleep_until(due)
            started = self.now()
            self.lateness.append(started - due)
            idx = len(log.a_time)
            log.current[i] = idx
            log.a_time.append(started)
            log.a_client.append(i)
            log.a_server.append(0)
            log.a_try.append(tries + 1)
            log.a_out.append(model.QUEUE_TIMEOUT)
            log.a_done.append(math.inf)
            code, ws = await self._attempt(i, idx, started)
            done = self.now()
            log.a_out[idx] = code
            log.a_done[idx] = done
            if code == model.CONNECTED:
                self.clients[i] = ws
                log.g_end[gap] = done
                return
            tries += 1
            if tries >= self.max_attempts:
                log.g_gave_up[gap] = 1
                return
            failed_at = done

    async def _meter(self) -> None:
        """The event loop's timer lateness during the run: the clock's resolution."""
        while True:
            due = self.loop.time() + METER_EVERY
            await asyncio.sleep(METER_EVERY)
            self.meter.append(self.loop.time() - due)

    async def _probe_rtt(self) -> float:
        """Median WebSocket ping round trip on loopback (the model's client.rtt)."""
        ws = self.clients[0]
        rtts = []
        for _ in range(20):
            rtts.append(await asyncio.wait_for(await ws.ping(), 5))
        return float(np.median(rtts))

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.offset = self.loop.time()
        self.admitting = False
        self.down_until = self.fleet.trigger.down
        tasks: list[asyncio.Task] = []
        try:
            await self._start_server()
            sem = asyncio.Semaphore(50)

            async def first(i):
                async with sem:
                    self.clients[i] = await connect(
                        f"ws://{HOST}:{self.port}/init/{i}",
                        open_timeout=10,
                        compression=None,
                        ping_interval=None,
                        close_timeout=0.5,
                        proxy=None,
                    )

            await asyncio.gather(*(first(i) for i in range(self.n)))
            self.rtt = await self._probe_rtt()
            tasks.append(asyncio.create_task(self._meter()))
            await asyncio.sleep(0.05)  # the meter's first readings before the storm
            self.offset = self.loop.time()  # t = 0: the trigger
            self.admission.offset = self.offset
            self._shutdown()
            clients = [asyncio.create_task(self._client(i)) for i in range(self.n)]
            tasks += clients
            restart = asyncio.create_task(self._reopen())
            tasks.append(restart)
            # every client ends connected, gave up or with no attempt due before the horizon;
            # an attempt started before the horizon is bounded by the connect timeout
            await asyncio.wait_for(
                asyncio.gather(*clients, restart),
                self.fleet.horizon + self.timeout + 5.0,
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for ws in self.clients:
                if ws is not None and ws.transport is not None:
                    ws.transport.abort()
            if self.hold_server is not None:
                self.hold_server.close()
                for writer in list(self.held):
                    writer.transport.abort()
            for server in self.servers:
                server.close(close_connections=False)
            for conn in list(self.conns):
                conn.transport.abort()
            for server in self.servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)
            await asyncio.sleep(0)


def _p99(values: list[float]) -> float:
    return float(np.quantile(values, 0.99)) if values else 0.0


def _resolution(run: RealFleet, storm: model.StormResult) -> float:
    """The real clock's resolution for a reconnection time, measured during the run.

    A client's chain of attempts runs behind an ideal clock by what the one event
    loop adds and the model has no term for: noticing the abort (the model: half a
    round trip; here every client's close is processed in turn), each attempt's
    start lateness, and each failed attempt's own processing beyond its modelled
    duration (a round trip for a refusal or a reset, the connect timeout for a
    timeout: the 503 or the RST costs CPU time in a loop shared by everyone). The
    resolution is the 99th percentile over clients of that sum, plus the loop's
    timer lateness (99th percentile) for the final, successful attempt.
    """
    a = storm.attempts
    rtt = run.rtt if math.isfinite(run.rtt) else 0.0
    timed_out = a.outcome.isin([model.OUTCOMES[k] for k in model.TIMED_OUT]).to_numpy()
    failed = (a.outcome != "connected").to_numpy()
    expected = np.where(timed_out, run.timeout, rtt)
    excess = np.where(failed, np.maximum(0.0, (a.done - a.t).to_numpy(float) - expected), 0.0)
    late = np.zeros(len(a))
    late[: len(run.lateness)] = run.lateness  # attempt k's start lateness (same order as the log)
    per_client = np.bincount(a.client.to_numpy(), weights=excess + late, minlength=run.n)
    notice = np.zeros(run.n)
    notice[np.asarray(run.notice_client, dtype=int)] = run.notice
    return max(0.001, _p99((per_client + notice).tolist()) + _p99(run.meter))


def run_real_fleet(fleet: Fleet) -> RealResult:
    """Run the (scaled) fleet for real and compute the model's figures from its log."""
    started = time.perf_counter()
    run = RealFleet(fleet)
    with frozen_heap():
        asyncio.run(run.main())
    log = run.log
    peak = max(run.backlog_peak, run.admission.peak)
    log.servers = [_ServerLog(*run.busy, peak)]
    wall = time.perf_counter() - started
    storm = model._result(log, wall)
    storm.summary["engine"] = "real-loopback"
    resolution = _resolution(run, storm)
    info = {
        "rtt_s": run.rtt,
        "resolution_s": resolution,
        "loop_lateness_p99_s": _p99(run.meter),
        "attempt_lateness_p99_s": _p99(run.lateness),
        "notice_s": [min(run.notice), max(run.notice)] if run.notice else None,
        "wall_s": wall,
    }
    return RealResult(storm, info)


# -- the model's side and the comparison ------------------------------------------------


def model_runs(fleet: Fleet, runs: int, seed_offset: int = 1_000_003) -> list[model.StormResult]:
    """``runs`` replications of the fleet in the model, each with a seed of its own."""
    return [
        model.simulate_fleet(dataclasses.replace(fleet, seed=fleet.seed + seed_offset + k))
        for k in range(runs)
    ]


def final_reconnect_times(storm: model.StormResult) -> np.ndarray:
    """When each client the trigger knocked off reconnected for good (s from the trigger).

    Those still trying or given up at the horizon are left out (they are counted apart).
    """
    c = storm.clients
    done = c[(c.disconnections > 0) & (c.state == "connected")]
    return done["last_connected"].to_numpy(float)


def _dispersion(counts: list[int]) -> float:
    """Replication-to-replication variance over the mean (1 for Poisson; floored at 1)."""
    c = np.asarray(counts, float)
    if len(c) < 2 or c.mean() == 0:
        return 1.0
    return max(1.0, float(c.var(ddof=1) / c.mean()))


def compare_fleet(
    models: list[model.StormResult], real: RealResult, alpha: float = ALPHA, name: str = "fleet"
) -> CrossCheck:
    """The model's replications against the real run.

    Counts (attempts, refused, timed out) are per affected client: exposure =
    clients knocked off, R N on the model's side and N on the real one. Each client
    contributes its own attempts, so the count is a sum over clients and a rate per
    client compares runs of different sizes; the storm is the same size on both
    sides (same N, same scaled horizon), so per client is also per run-time.
    Attempts in a storm are not independent (a full backlog refuses many at once):
    the replications measure the count's variance, and when it exceeds the mean
    (over-dispersion) both counts are divided by that factor before the exact
    Poisson test (quasi-Poisson), so the test keeps its size. Reconnection times:
    the quantile test within the measured clock resolution. Clients that gave up:
    Fisher's exact test on the proportions.
    """
    rs = real.storm.summary
    r_aff = rs["clients_affected"]
    m_aff = sum(m.summary["clients_affected"] for m in models)
    out: list[Comparison] = []
    notes = []
    for key, label in (
        ("attempts_total", "attempts /client"),
        ("attempts_refused", "attempts refused /client"),
        ("attempts_timed_out", "attempts timed out /client"),
    ):
        per_run = [m.summary[key] for m in models]
        xm, xr = sum(per_run), rs[key]
        if xm == 0 and xr == 0:
            continue
        phi = _dispersion(per_run)
        if phi > 1:
            notes.append(f"{label}: model over-dispersion {phi:.2f}, counts divided by it")
        c = compare_rates(label, round(xm / phi), m_aff, round(xr / phi), r_aff)
        # show the undivided rates; the p-value is the quasi-Poisson one
        c = dataclasses.replace(c, model=xm / m_aff, harness=xr / r_aff, n_model=xm, n_harness=xr)
        out.append(c)
    gm = sum(m.summary["gave_up"] for m in models)
    if gm or rs["gave_up"]:
        out.append(compare_proportions("clients that gave up", gm, m_aff, rs["gave_up"], r_aff))
    mt = np.concatenate([final_reconnect_times(m) for m in models])
    rt = final_reconnect_times(real.storm)
    out.append(
        compare_samples(
            "reconnection time (s)", mt.tolist(), rt.tolist(), real.info["resolution_s"]
        )
    )
    for q in (50, 95, 99, 100):
        key = f"time_to_{q}pct_reconnected_s"
        vals = [m.summary[key] for m in models if m.summary[key] is not None]
        rv = rs[key]
        out.append(
            Comparison(
                f"time to {q}% reconnected (s)",
                "shown: model replications' mean [min, max]",
                float(np.mean(vals)) if vals else None,
                float(np.min(vals)) if vals else None,
                float(np.max(vals)) if vals else None,
                rv,
                rv,
                rv,
                None,
                len(vals),
                1,
            )
        )
    peaks = [_peak(m) for m in models]
    rp = _peak(real.storm)
    out.append(
        Comparison(
            "peak attempts per bin",
            "shown: model replications' mean [min, max]",
            float(np.mean(peaks)),
            float(np.min(peaks)),
            float(np.max(peaks)),
            rp,
            rp,
            rp,
            None,
            len(peaks),
            1,
        )
    )
    check = CrossCheck(name, out, alpha, models[0].summary, rs)
    check.ran = {"notes": notes}
    return check


def _peak(storm: model.StormResult) -> int:
    """Most attempts in one timeline bin (the fleet's ``bin``, scaled: one unscaled second by default)."""
    return int(storm.timeline["attempts"].max()) if len(storm.timeline) else 0


def run_fleet_crosscheck(
    fleet: Fleet,
    *,
    time_scale: float = 0.05,
    connections: int = 100,
    runs: int = DEFAULT_MODEL_RUNS,
    alpha: float = ALPHA,
    model_bug=None,
    real: RealResult | None = None,
) -> CrossCheck:
    """Scale ``fleet``, run it with ``connections`` real clients and ``runs`` model replications; compare.

    ``model_bug`` (tests only) transforms the model's fleet before it runs, to prove
    the comparison notices a wrong model; ``real`` reuses a real run already made
    (of this same scaled fleet).
    """
    problems = refusals(fleet, connections)
    if runs < 2:
        problems.append(
            Problem("--model-connections", f"at least 2 model replications, got {runs}")
        )
    if problems:
        raise ScenarioError(problems, fleet.name)
    scaled_fleet = dataclasses.replace(scale_fleet(fleet, time_scale), clients=connections)
    if real is None:
        real = run_real_fleet(scaled_fleet)
    model_fleet = dataclasses.replace(
        scaled_fleet,
        client=dataclasses.replace(scaled_fleet.client, rtt=Constant(real.info["rtt_s"])),
    )
    if model_bug is not None:
        model_fleet = model_bug(model_fleet)
    started = time.perf_counter()
    models = model_runs(model_fleet, runs)
    check = compare_fleet(models, real, alpha, fleet.name)
    check.ran = {
        "backend": "real fleet on 127.0.0.1",
        "policy": fleet.policy.name,
        "time_scale": time_scale,
        "resolution_s": real.info["resolution_s"],
        "rtt_s": real.info["rtt_s"],
        "real_clients": connections,
        "model_runs": runs,
        "harness_wall_s": real.info["wall_s"],
        "model_wall_s": time.perf_counter() - started,
        "notes": [
            f"model: {runs} replications of the same {connections}-client fleet, client.rtt = the "
            f"measured loopback round trip {real.info['rtt_s'] * 1e6:.0f} us (the file's is not emulated)",
            *check.ran["notes"],
        ],
    }
    return check


__all__ = [
    "MAX_REAL_CLIENTS",
    "Admission",
    "AttemptLog",
    "RealFleet",
    "RealResult",
    "compare_fleet",
    "final_reconnect_times",
    "model_runs",
    "refusals",
    "run_fleet_crosscheck",
    "run_real_fleet",
    "scale_fleet",
]
