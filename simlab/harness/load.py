"""The load test: thousands of concurrent heartbeat connections on loopback.

``simlab harness load --connections 5000 --interval 1s --duration 60s`` answers two
questions about heartbeats on real sockets: does a WebSocket server hold that many
connections pinged every interval without a single false positive, and at what
number of connections does the server itself become the bottleneck (pong latency
growing with the load, or its CPU saturating a core)?

Layout, and why:

- The **server** is its own process (``python -m simlab.harness.load --serve``): a
  `websockets` asyncio server on 127.0.0.1 with an ephemeral port it reports on
  stdout. Being separate, its CPU (user + system seconds from ``/proc/PID/stat``)
  and its RSS are its own, not mixed with the client's. It answers pings
  automatically, as any `websockets` server does; it exits when its stdin closes
  (the parent died), so it cannot outlive the test, and after a wall-clock bound.
- The **client** side (every connection, every ping) runs in the calling process's
  event loop. Each connection runs :class:`~.endpoint.Heartbeats`, the harness's
  driver of :mod:`simlab.detector`'s pure state machine with the loop's clock; a
  declaration is a false positive, since nothing here breaks a connection. The
  client measures its own CPU and its loop's lag, so a latency rise caused by the
  client rather than the server is reported as such.
- Connections open at a bounded rate (``--open-rate``, bounded concurrency) and each
  connection's first ping is placed uniformly at random within the first interval,
  so pings are spread over the interval instead of arriving in bursts.
- ``--steps`` runs increasing connection counts on the same server (connections are
  added between steps; a step is measured once every connection of it is pinging)
  and reports pong latency against the number of connections. The first step whose
  p99 exceeds :data:`LATENCY_GROWTH` times the smallest step's, or at which the
  server uses :data:`CPU_SATURATED` of a core or more, is where the server becomes
  the bottleneck.

Everything is bounded: at most :data:`MAX_CONNECTIONS` connections, a hard
wall-clock limit (``--max-wall``), 127.0.0.1 only, and the server process (and only
it, by its PID) is terminated, then killed after a grace period, on every exit path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
MAX_CONNECTIONS = 20_000
FD_MARGIN = 256  # descriptors beyond one per connection: the interpreter, pipes, the listener
DEFAULT_OPEN_RATE = 500.0  # connections opened per second
MAX_OPEN_RATE = 5_000.0
OPEN_CONCURRENCY = 100  # opening handshakes in flight at once
OPEN_TIMEOUT = 10.0  # seconds for one connection's TCP + WebSocket handshake
MIN_INTERVAL = 0.01  # below this the event loop's timer granularity dominates
MAX_DURATION = 3600.0
MAX_WALL = 7200.0
SERVER_START_TIMEOUT = 30.0  # the server's interpreter start-up and its port line
SERVER_STOP_GRACE = 5.0  # SIGTERM, then SIGKILL after this many seconds
LAG_PERIOD = 0.05  # the client loop's lag probe: one sleep of this length after another
LATENCY_GROWTH = 10.0  # p99 above this multiple of the smallest step's: bottleneck
CPU_SATURATED = 0.9  # cores: a single-threaded event loop is saturated near one core


class FdLimitError(RuntimeError):
    """The open-file hard limit is too low for the requested number of connections."""


# -- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """What one load test will do; every value checked and in seconds."""

    connections: int
    interval: float
    timeout: float
    duration: float
    steps: tuple[int, ...]  # ascending, the last is ``connections``
    step_duration: float  # measurement window of every step but the last
    open_rate: float
    max_wall: float
    seed: int = 0

    @property
    def settle(self) -> float:
        """Wait after the last opening of a step: the first-ping stagger (one interval)
        plus the first interval itself, so every connection is pinging when measured."""
        return 2 * self.interval

    @property
    def drain(self) -> float:
        """Wait after the last window so pongs of its last pings can still arrive."""
        return min(self.timeout, max(self.interval, 0.5))

    def windows(self) -> list[float]:
        return [self.step_duration] * (len(self.steps) - 1) + [self.duration]

    def planned_seconds(self) -> float:
        """Wall time the plan needs if opening keeps to the requested rate."""
        opening = self.connections / self.open_rate
        return opening + sum(self.windows()) + len(self.steps) * self.settle + self.drain


def make_plan(
    connections: int = 5000,
    interval: float | str = "1s",
    duration: float | str = "60s",
    timeout: float | str | None = None,
    steps: str | list[int] | None = None,
    step_duration: float | str | None = None,
    open_rate: float = DEFAULT_OPEN_RATE,
    max_wall: float | str | None = None,
    seed: int = 0,
) -> LoadPlan:
    """Check the load test's settings; raise ScenarioError listing every problem.

    Durations may carry units (``1s``, ``200ms``: :func:`simlab.units.parse_duration`).
    ``timeout`` defaults to three intervals, ``step_duration`` to the smaller of
    ``duration`` and 10 s, ``max_wall`` to 1.5 times the planned time plus a minute.
    """
    from ..units import format_duration, parse_duration
    from ..validate import Problem, ScenarioError

    problems: list[Problem] = []

    def duration_of(name: str, value, low: float, high: float) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            problems.append(Problem(name, str(exc)))
            return math.nan
        if not low <= seconds <= high:
            problems.append(
                Problem(
                    name,
                    f"{value!r} is not allowed: must be between {format_duration(low)} "
                    f"and {format_duration(high)}",
                )
            )
            return math.nan
        return seconds

    if isinstance(connections, bool) or not isinstance(connections, int):
        problems.append(Problem("--connections", f"{connections!r} is not a whole number"))
        connections = 0
    elif not 1 <= connections <= MAX_CONNECTIONS:
        problems.append(
            Problem(
                "--connections",
                f"{connections} is not allowed: must be between 1 and {MAX_CONNECTIONS:,}",
            )
        )
    iv = duration_of("--interval", interval, MIN_INTERVAL, 3600.0)
    dur = duration_of("--duration", duration, MIN_INTERVAL, MAX_DURATION)
    to = 3 * iv if timeout is None else duration_of("--timeout", timeout, MIN_INTERVAL, 3 * 3600.0)
    if not math.isnan(iv) and not math.isnan(to) and to <= iv:
        problems.append(
            Problem(
                "--timeout",
                f"{format_duration(to)} is not allowed: must be longer than the interval "
                f"({format_duration(iv)}), or every connection would be suspected between two pongs",
            )
        )
    if step_duration is None:
        sd = min(dur, 10.0) if not math.isnan(dur) else math.nan
    else:
        sd = duration_of("--step-duration", step_duration, MIN_INTERVAL, MAX_DURATION)
    if isinstance(open_rate, bool) or not (
        isinstance(open_rate, (int, float)) and 1 <= open_rate <= MAX_OPEN_RATE
    ):
        problems.append(
            Problem(
                "--open-rate",
                f"{open_rate!r} is not allowed: must be between 1 and {MAX_OPEN_RATE:g} per second",
            )
        )
        open_rate = DEFAULT_OPEN_RATE
    counts: list[int] = []
    if steps is not None:
        items = steps.split(",") if isinstance(steps, str) else list(steps)
        try:
            counts = [int(str(x).strip()) for x in items]
        except ValueError:
            problems.append(
                Problem("--steps", f"{steps!r}: expected comma-separated connection counts")
            )
            counts = []
        if counts and (
            any(c < 1 for c in counts)
            or any(b <= a for a, b in zip(counts, counts[1:], strict=False))
        ):
            problems.append(
                Problem("--steps", f"{steps!r}: counts must be positive and strictly increasing")
            )
            counts = []
        if counts and connections and counts[-1] > connections:
            problems.append(
                Problem(
                    "--steps",
                    f"the largest step ({counts[-1]}) exceeds --connections ({connections})",
                )
            )
    if not counts or counts[-1] != connections:
        counts.append(connections)
    if problems:
        raise ScenarioError(problems, "simlab harness load")
    plan = LoadPlan(connections, iv, to, dur, tuple(counts), sd, float(open_rate), 0.0, seed)
    planned = plan.planned_seconds()
    if max_wall is None:
        wall = min(1.5 * planned + 60.0, MAX_WALL)
    else:
        wall = duration_of("--max-wall", max_wall, 1.0, MAX_WALL)
        if not math.isnan(wall) and wall < planned:
            problems.append(
                Problem(
                    "--max-wall",
                    f"{format_duration(wall)} is shorter than the plan needs "
                    f"(about {format_duration(planned)})",
                )
            )
    if planned > MAX_WALL:
        problems.append(
            Problem(
                "",
                f"the plan needs about {format_duration(planned)}, over the {format_duration(MAX_WALL)} bound",
            )
        )
    if problems:
        raise ScenarioError(problems, "simlab harness load")
    return LoadPlan(connections, iv, to, dur, tuple(counts), sd, float(open_rate), wall, seed)


# -- resources --------------------------------------------------------------------------


def raise_nofile(connections: int) -> tuple[int, int]:
    """Raise this process's open-file soft limit (up to the hard limit) for ``connections``.

    Returns the soft limit before the call (so it can be restored) and after. The
    server process inherits the raised limit. Raises FdLimitError, with what to do,
    if the hard limit is too low.
    """
    need = connections + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        raise FdLimitError(
            f"{connections:,} connections need about {need:,} open files per process, "
            f"but the hard limit (RLIMIT_NOFILE) is {hard:,}: raise it (ulimit -Hn as root, "
            f"LimitNOFILE= in a systemd unit, nofile in /etc/security/limits.conf) "
            f"or ask for at most {max(hard - FD_MARGIN, 0):,} connections"
        )
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return soft, need
    return soft, soft


def ephemeral_ports() -> int | None:
    """How many local ports the kernel hands out to outgoing connections (Linux), or None."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return None
    return int(high) - int(low) + 1


def proc_usage(pid: int) -> tuple[float, int] | None:
    """CPU seconds (user + system) and resident bytes of process ``pid``, from /proc.

    None where /proc is not available (not Linux) or the process is gone.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name, which may contain spaces:
    # state is field 3, utime 14, stime 15, rss 24 (proc(5)).
    fields = text[text.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def proc_peak_rss(pid: int) -> int | None:
    """Peak resident bytes (VmHWM) of process ``pid``, or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def self_cpu() -> float:
    """This process's CPU seconds (user + system), every thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def open_fds() -> int | None:
    """How many descriptors this process has open (Linux), or None."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


# -- the server process ------------------------------------------------------------------


async def _serve(max_wall: float) -> None:
    """Serve on 127.0.0.1 (ephemeral port) until stdin closes or ``max_wall`` passes."""
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        await ws.wait_closed()  # pings are answered by the library as frames are read

    loop = asyncio.get_running_loop()
    server = await serve(
        handler,
        HOST,
        0,
        compression=None,
        ping_interval=None,
        close_timeout=1,
        backlog=4096,
    )
    port = server.sockets[0].getsockname()[1]
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(json.dumps({"port": port, "pid": os.getpid(), "nofile": soft}), flush=True)
    # Parent gone (its end of our stdin closed) -> stop; the kernel closes every socket.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.read(), max_wall)


def serve_main(argv: list[str]) -> int:
    """``python -m simlab.harness.load --serve [--max-wall S]``: the server process."""
    p = argparse.ArgumentParser(prog="simlab.harness.load")
    p.add_argument("--serve", action="store_true", required=True)
    p.add_argument("--max-wall", type=float, default=MAX_WALL)
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    asyncio.run(_serve(min(args.max_wall, MAX_WALL)))
    return 0


class ServerProcess:
    """The load test's server, a child process; :meth:`stop` ends it, and only it, by PID."""

    def __init__(self, max_wall: float):
        self.max_wall = max_wall
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.port: int | None = None
        self.exit_code: int | None = None
        self._stderr = None

    def start(self) -> int:
        """Start the server and return its port; raise RuntimeError if it does not come up."""
        import simlab

        root = str(Path(simlab.__file__).resolve().parents[1])  # run *this* simlab's code
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the server; closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simlab.harness.load",
                "--serve",
                "--max-wall",
                repr(self.max_wall + 30.0),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop the server
        )
        self.pid = self.proc.pid
        ready, _, _ = select.select([self.proc.stdout], [], [], SERVER_START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        try:
            info = json.loads(line)
            self.port = int(info["port"])
        except (ValueError, KeyError, TypeError):
            raise RuntimeError(
                "the load-test server did not report its port"
                + (f" within {SERVER_START_TIMEOUT:g} s" if not ready else "")
                + self._stderr_tail()
            ) from None
        return self.port

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace").strip()
            if text:
                return ": " + text[-2000:]
        return ""

    def usage(self) -> tuple[float, int] | None:
        """(CPU seconds, RSS bytes) of the server now, or None."""
        return proc_usage(self.pid) if self.alive() else None

    def peak_rss(self) -> int | None:
        return proc_peak_rss(self.pid) if self.alive() else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the server (SIGTERM), kill it after a grace period, reap it. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    proc.wait(SERVER_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(SERVER_STOP_GRACE)
        finally:
            self.exit_code = proc.poll()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None


# -- the client side ---------------------------------------------------------------------


class _Conn:
    __slots__ = ("index", "ws", "hb", "pongs", "last_pong", "closed")

    def __init__(self, index: int, ws):
        self.index, self.ws = index, ws
        self.hb = None
        self.pongs = 0
        self.last_pong = -math.inf
        self.closed = False


@dataclass
class _Window:
    connections: int
    start: float
    end: float
    open_seconds: float  # how long opening this step's new connections took
    server_cpu: float | None = None  # cores (CPU seconds per wall second)
    server_rss: int | None = None
    client_cpu: float = 0.0
    client_rss: int | None = None


@dataclass
class _Measured:
    """What the client saw; turned into the report by :func:`summarize`."""

    plan: LoadPlan
    windows: list[_Window] = field(default_factory=list)
    ping_times: array = field(default_factory=lambda: array("d"))
    pong_sent: array = field(default_factory=lambda: array("d"))
    pong_rtt: array = field(default_factory=lambda: array("d"))
    lag_times: array = field(default_factory=lambda: array("d"))
    lags: array = field(default_factory=lambda: array("d"))
    false_positives: list = field(default_factory=list)  # (connection, time)
    lost: list = field(default_factory=list)  # (connection, time, cause)
    connect_failures: Counter = field(default_factory=Counter)
    conns: list = field(default_factory=list)
    server_idle_rss: int | None = None


class LoadClient:
    """Opens the plan's connections to the server and runs a detector on each."""

    def __init__(self, plan: LoadPlan, server: ServerProcess):
        import numpy as np

        from ..scenario import Detector, Heartbeat, Scenario

        self.plan = plan
        self.server = server
        self.m = _Measured(plan)
        self.rng = random.Random(plan.seed)
        self.jitter_rng = np.random.default_rng(plan.seed)  # Heartbeats' jitter: zero here
        # The scenario Heartbeats and make_detector read: client pings, a read-deadline
        # detector on the client; monitor mode (a declaration keeps the connection).
        self.scenario = Scenario(
            name="load",
            horizon=plan.planned_seconds(),
            connections=plan.connections,
            heartbeat=Heartbeat(style="pingpong", initiator="client", interval=plan.interval),
            detector=Detector(
                kind="timeout", timeout=plan.timeout, side="client", on_declare="monitor"
            ),
        )
        self.stopping = False
        self.attempts = 0
        self._opening: set[asyncio.Task] = set()

    def now(self) -> float:
        return self.loop.time() - self.t0

    async def run(self) -> _Measured:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        usage = self.server.usage()
        self.m.server_idle_rss = usage[1] if usage else None
        probe = asyncio.create_task(self._lag_probe())
        try:
            for n, window in zip(self.plan.steps, self.plan.windows(), strict=True):
                opened_at = self.now()
                await self._open_to(n)
                open_seconds = self.now() - opened_at
                await asyncio.sleep(self.plan.settle)
                w = _Window(n, self.now(), math.nan, open_seconds)
                s0, c0 = self.server.usage(), self_cpu()
                await asyncio.sleep(window)
                w.end = self.now()
                s1, c1 = self.server.usage(), self_cpu()
                wall = w.end - w.start
                if s0 is not None and s1 is not None:
                    w.server_cpu = (s1[0] - s0[0]) / wall
                    w.server_rss = s1[1]
                w.client_cpu = (c1 - c0) / wall
                mine = proc_usage(os.getpid())
                w.client_rss = mine[1] if mine else None
                self.m.windows.append(w)
            await asyncio.sleep(self.plan.drain)
        finally:
            probe.cancel()
            await self._close_all()
        return self.m

    async def _lag_probe(self) -> None:
        """How late the loop wakes up: the client's own share of any latency."""
        loop = self.loop
        while True:
            t = loop.time()
            await asyncio.sleep(LAG_PERIOD)
            self.m.lag_times.append(t - self.t0)
            self.m.lags.append(max(loop.time() - t - LAG_PERIOD, 0.0))

    async def _open_to(self, n: int) -> None:
        """Open connections until ``n`` were attempted: at the plan's rate, bounded in flight."""
        sem = asyncio.Semaphore(OPEN_CONCURRENCY)
        begin = self.loop.time()
        tasks = []
        for j, i in enumerate(range(self.attempts, n)):
            delay = begin + j / self.plan.open_rate - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            task = asyncio.create_task(self._open_one(i))
            self._opening.add(task)
            task.add_done_callback(lambda t: (sem.release(), self._opening.discard(t)))
            tasks.append(task)
            self.attempts = i + 1
        await asyncio.gather(*tasks)

    async def _open_one(self, i: int) -> None:
        from websockets.asyncio.client import connect

        from .endpoint import WatchedClient

        try:
            ws = await connect(
                f"ws://{HOST}:{self.server.port}/",
                compression=None,
                proxy=None,
                ping_interval=None,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=1,
                create_connection=WatchedClient,
            )
        except Exception as exc:  # counted and reported; the run is then not ok
            self.m.connect_failures[type(exc).__name__] += 1
            return
        conn = _Conn(i, ws)
        self.m.conns.append(conn)
        ws.on_lost = lambda exc: self._lost(conn, exc)
        if self.stopping:
            ws.transport.abort()
            return
        # The first ping goes one interval after the detector starts; starting it at a
        # uniform offset within the interval spreads the pings over the interval.
        self.loop.call_later(self.rng.uniform(0, self.plan.interval), self._start, conn)

    def _start(self, conn: _Conn) -> None:
        from .endpoint import Heartbeats

        if self.stopping or conn.closed:
            return
        m = self.m

        def record(event, detail=None, value=None):
            if event == "ping":
                m.ping_times.append(self.now())
            elif event == "pong":
                t = self.now()
                m.pong_sent.append(t - value)
                m.pong_rtt.append(value)
                conn.pongs += 1
                conn.last_pong = t

        def declare(by):
            m.false_positives.append((conn.index, self.now()))

        conn.hb = Heartbeats(self.scenario, conn.ws, self.now, record, declare, self.jitter_rng)
        conn.hb.start()

    def _lost(self, conn: _Conn, exc) -> None:
        from .endpoint import transport_cause

        if conn.closed:
            return
        conn.closed = True
        if conn.hb is not None:
            conn.hb.stop()
        if not self.stopping:
            self.m.lost.append((conn.index, self.now(), transport_cause(exc)))

    async def _close_all(self) -> None:
        """Stop every detector, cancel openings in flight, abort every socket."""
        self.stopping = True
        for task in list(self._opening):
            task.cancel()
        if self._opening:
            await asyncio.gather(*self._opening, return_exceptions=True)
        for conn in self.m.conns:
            if conn.hb is not None:
                conn.hb.stop()
            conn.closed = True
            if conn.ws.transport is not None:
                conn.ws.transport.abort()
        await asyncio.sleep(0.1)  # let the transports' connection_lost run and close the sockets


# -- figures -------------------------------------------------------------------------------


def _quantiles(values) -> dict:
    import numpy as np

    if len(values) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    a = np.frombuffer(values, dtype=float) if isinstance(values, array) else np.asarray(values)
    p50, p95, p99 = np.quantile(a, [0.5, 0.95, 0.99])
    return {
        "p50_ms": 1e3 * float(p50),
        "p95_ms": 1e3 * float(p95),
        "p99_ms": 1e3 * float(p99),
        "max_ms": 1e3 * float(a.max()),
    }


def summarize(m: _Measured, server: ServerProcess, wall: float, nofile: tuple[int, int]) -> dict:
    """The report: per step latency, CPU, memory; the bottleneck; the failures; ok."""
    import numpy as np

    plan = m.plan
    pings = np.frombuffer(m.ping_times, dtype=float)
    sent = np.frombuffer(m.pong_sent, dtype=float)
    rtt = np.frombuffer(m.pong_rtt, dtype=float)
    lag_t = np.frombuffer(m.lag_times, dtype=float)
    lags = np.frombuffer(m.lags, dtype=float)
    fp_times = np.array([t for _, t in m.false_positives], dtype=float)
    steps = []
    for w in m.windows:
        in_w = (sent >= w.start) & (sent < w.end)
        n_pings = int(((pings >= w.start) & (pings < w.end)).sum())
        n_pongs = int(in_w.sum())
        lag_w = lags[(lag_t >= w.start) & (lag_t < w.end)]
        step = {
            "connections": w.connections,
            "window_s": w.end - w.start,
            "open_s": w.open_seconds,
            "pings": n_pings,
            "pings_per_s": n_pings / (w.end - w.start),
            "pongs": n_pongs,
            "unanswered": max(n_pings - n_pongs, 0),
            **_quantiles(rtt[in_w]),
            "server_cpu": w.server_cpu,
            "server_rss_mb": None if w.server_rss is None else w.server_rss / 2**20,
            "client_cpu": w.client_cpu,
            "client_rss_mb": None if w.client_rss is None else w.client_rss / 2**20,
            "loop_lag_p99_ms": 1e3 * float(np.quantile(lag_w, 0.99)) if len(lag_w) else None,
            "loop_lag_max_ms": 1e3 * float(lag_w.max()) if len(lag_w) else None,
            "false_positives": int(((fp_times >= w.start) & (fp_times < w.end)).sum()),
        }
        steps.append(step)
    last = m.windows[-1] if m.windows else None
    without_pong = sum(1 for c in m.conns if c.pongs == 0)
    stale = sum(1 for c in m.conns if last is not None and c.last_pong < last.start)
    peak = server.peak_rss()
    idle = m.server_idle_rss
    final_rss = steps[-1]["server_rss_mb"] if steps else None
    per_conn_kb = None
    if final_rss is not None and idle is not None and plan.connections:
        per_conn_kb = (final_rss * 2**20 - idle) / plan.connections / 1024
    reached = len(m.conns) - len(m.lost)
    report = {
        "host": HOST,
        "connections": plan.connections,
        "interval_s": plan.interval,
        "timeout_s": plan.timeout,
        "detector": "timeout",
        "duration_s": plan.duration,
        "step_duration_s": plan.step_duration,
        "open_rate_per_s": plan.open_rate,
        "steps": steps,
        "bottleneck": bottleneck(steps),
        "connections_open": reached,
        "false_positives": len(m.false_positives),
        "lost_connections": len(m.lost),
        "lost_causes": dict(Counter(cause for _, _, cause in m.lost)),
        "connect_failures": sum(m.connect_failures.values()),
        "connect_failure_kinds": dict(m.connect_failures),
        "connections_without_pong": without_pong,
        "connections_silent_in_last_window": stale,
        "server_pid": server.pid,
        "server_idle_rss_mb": None if idle is None else idle / 2**20,
        "server_peak_rss_mb": None if peak is None else peak / 2**20,
        "server_rss_per_connection_kb": per_conn_kb,
        "nofile_soft_before": nofile[0],
        "nofile_soft": nofile[1],
        "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "wall_s": wall,
    }
    report["ok"] = bool(
        steps
        and report["false_positives"] == 0
        and report["lost_connections"] == 0
        and report["connect_failures"] == 0
        and without_pong == 0
        and stale == 0
        and reached == plan.connections
    )
    return report


def bottleneck(steps: list[dict]) -> dict:
    """The first step at which the server is the bottleneck, and why; or that none was.

    A step is the bottleneck when its p99 pong latency exceeds LATENCY_GROWTH times
    the smallest step's, or the server uses CPU_SATURATED of a core or more (one
    event loop, one thread: a core is all it can use). If the client was itself near
    a full core at that step, the latency rise may be the client's: that is said too.
    Where nothing tripped, the server's CPU per ping gives a linear estimate of the
    count at which it would saturate, labelled as an extrapolation.
    """
    measured = [s for s in steps if s["p99_ms"] is not None]
    if not measured:
        return {"step": None, "reason": "no pongs measured"}
    base = measured[0]["p99_ms"]
    for s in measured:
        why = []
        if s is not measured[0] and s["p99_ms"] > LATENCY_GROWTH * base:
            why.append(f"p99 {s['p99_ms'] / base:.1f}x the smallest step's")
        if s["server_cpu"] is not None and s["server_cpu"] >= CPU_SATURATED:
            why.append(f"server CPU {s['server_cpu']:.2f} cores")
        if why:
            client_bound = s["client_cpu"] >= CPU_SATURATED
            return {
                "step": s["connections"],
                "reason": "; ".join(why),
                "client_saturated": client_bound,
                "limited_by": "client and server" if client_bound else "server",
            }
    top = measured[-1]
    estimate = None
    if top["server_cpu"] and top["pings_per_s"]:
        cpu_per_ping = top["server_cpu"] / top["pings_per_s"]
        estimate = int(CPU_SATURATED / cpu_per_ping * top["connections"] / top["pings_per_s"])
    return {
        "step": None,
        "reason": f"not reached up to {top['connections']:,} connections",
        "server_cpu_max": max((s["server_cpu"] or 0.0) for s in measured),
        "server_saturates_at_estimate": estimate,
    }


def format_report(r: dict) -> str:
    """The report as a human-readable table."""
    from ..units import format_duration

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    lines = [
        f"load test on {r['host']}: {r['connections']:,} connections, ping every "
        f"{format_duration(r['interval_s'])}, timeout detector at {format_duration(r['timeout_s'])}, "
        f"held {format_duration(r['duration_s'])}",
        "",
        f"{'conns':>6} {'pings/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'srv cpu':>7} {'srv MB':>7} {'cli cpu':>7} {'lag p99':>7} {'unans':>5} {'fp':>3}",
    ]
    for s in r["steps"]:
        lines.append(
            f"{s['connections']:>6} {s['pings_per_s']:>8.0f} {num(s['p50_ms'], '7.2f')} "
            f"{num(s['p95_ms'], '7.2f')} {num(s['p99_ms'], '7.2f')} {num(s['max_ms'], '7.1f')} "
            f"{num(s['server_cpu'], '7.2f')} {num(s['server_rss_mb'], '7.0f')} "
            f"{s['client_cpu']:>7.2f} {num(s['loop_lag_p99_ms'], '7.1f')} "
            f"{s['unanswered']:>5} {s['false_positives']:>3}"
        )
    b = r["bottleneck"]
    lines.append("")
    if b.get("step") is not None:
        lines.append(
            f"server bottleneck at {b['step']:,} connections: {b['reason']}"
            + ("  (the client was near a full core too)" if b.get("client_saturated") else "")
        )
    else:
        est = b.get("server_saturates_at_estimate")
        lines.append(
            f"server bottleneck: {b['reason']}"
            + (f"; CPU per ping extrapolates to saturation near {est:,} connections" if est else "")
        )
    lines.append(
        f"false positives {r['false_positives']}, lost connections {r['lost_connections']}, "
        f"connect failures {r['connect_failures']}, connections without a pong "
        f"{r['connections_without_pong']}, silent in the last window "
        f"{r['connections_silent_in_last_window']}"
    )
    lines.append(
        f"server pid {r['server_pid']}: idle RSS {num(r['server_idle_rss_mb'], '.0f')} MB, "
        f"peak {num(r['server_peak_rss_mb'], '.0f')} MB, "
        f"{num(r['server_rss_per_connection_kb'], '.1f')} KB per connection"
    )
    lines.append(
        f"open files: soft limit {r['nofile_soft_before']:,} -> {r['nofile_soft']:,} "
        f"(hard {r['nofile_hard']:,}); wall {r['wall_s']:.1f} s; " + ("ok" if r["ok"] else "NOT OK")
    )
    return "\n".join(lines)


# -- running it ---------------------------------------------------------------------------


def run_load(plan: LoadPlan) -> dict:
    """Run ``plan``: start the server, hold the connections, stop everything; the report.

    Raises FdLimitError when the open-file hard limit is too low, TimeoutError when
    the wall-clock limit is hit. The server process is stopped on every path.
    """
    ports = ephemeral_ports()
    if ports is not None and plan.connections > ports - FD_MARGIN:
        raise FdLimitError(
            f"{plan.connections:,} connections to one server port need as many local ports, "
            f"but the kernel's ephemeral range (net.ipv4.ip_local_port_range) has {ports:,}"
        )
    started = time.monotonic()
    before, after = raise_nofile(plan.connections)
    server = ServerProcess(plan.max_wall)
    try:
        server.start()
        print(
            f"load-test server pid {server.pid} on {HOST}:{server.port}",
            file=sys.stderr,
            flush=True,
        )
        client = LoadClient(plan, server)

        async def bounded():
            return await asyncio.wait_for(client.run(), plan.max_wall)

        try:
            measured = asyncio.run(bounded())
        except TimeoutError:
            raise TimeoutError(
                f"the load test hit its wall-clock limit of {plan.max_wall:.0f} s"
            ) from None
        return summarize(measured, server, time.monotonic() - started, (before, after))
    finally:
        server.stop()
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (before, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
            )


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``load`` in the ``harness`` subcommand group ``sub``."""
    p = sub.add_parser(
        "load",
        help="hold thousands of heartbeat connections on loopback; latency, CPU, memory, bottleneck",
        description=(
            "Open --connections WebSocket connections on 127.0.0.1 to a server in its own "
            "process, ping each every --interval with a timeout detector, and report pong "
            "latency, false positives, the server's CPU and memory, and (with --steps) the "
            "connection count at which the server becomes the bottleneck. Exit 0 if every "
            "connection held with no false positive, 1 if not, 2 on bad input or an "
            "open-file limit too low."
        ),
    )
    p.add_argument(
        "--connections", type=int, default=5000, help="connections to hold (default 5000)"
    )
    p.add_argument(
        "--interval", default="1s", metavar="DURATION", help="ping interval (default 1s)"
    )
    p.add_argument(
        "--duration", default="60s", metavar="DURATION", help="how long to hold them (default 60s)"
    )
    p.add_argument(
        "--timeout", metavar="DURATION", help="detector timeout (default three intervals)"
    )
    p.add_argument(
        "--steps",
        metavar="N,N,...",
        help="increasing connection counts measured on the way up, e.g. 500,1000,2000,5000",
    )
    p.add_argument(
        "--step-duration",
        metavar="DURATION",
        help="measurement window of each step below --connections (default min(duration, 10s))",
    )
    p.add_argument(
        "--open-rate",
        type=float,
        default=DEFAULT_OPEN_RATE,
        metavar="PER_S",
        help=f"connections opened per second (default {DEFAULT_OPEN_RATE:g})",
    )
    p.add_argument(
        "--max-wall",
        metavar="DURATION",
        help="hard wall-clock limit (default 1.5 times the planned time plus a minute)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the first-ping offsets")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(handler=main)
    return p


def main(args) -> int:
    """``simlab harness load``: 0 ok, 1 false positives or failed connections, 2 bad input."""
    from ..validate import ScenarioError

    try:
        plan = make_plan(
            connections=args.connections,
            interval=args.interval,
            duration=args.duration,
            timeout=args.timeout,
            steps=args.steps,
            step_duration=args.step_duration,
            open_rate=args.open_rate,
            max_wall=args.max_wall,
            seed=args.seed,
        )
        report = run_load(plan)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FdLimitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TimeoutError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
