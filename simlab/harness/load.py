"""The load test: thousands of concurrent heartbeat connections on loopback.

``simlab harness load --connections 5000 --interval 1s --duration 60s`` answers two
questions about heartbeats on real sockets: does a WebSocket server hold that many
connections pinged every interval without a single false positive, and at what
number of connections does the server itself become the bottleneck (pong latency
growing with the load, or its CPU saturating a core)?

Layout, and why:

- The **server** is its own process (``python -I .../harness/load.py --serve``): a
  `websockets` asyncio server on 127.0.0.1 with an ephemeral port it reports on
  stdout. Being separate, its CPU (user + system seconds, ``/proc/PID/stat``) and
  its RSS are its own; run as a script in isolated mode it imports only the
  standard library and `websockets`, so its memory is a WebSocket server's and not
  simlab's scientific stack. It answers pings automatically, as any `websockets`
  server does.
- The **client** side, every connection and every ping, runs in one or more client
  processes (``--client``), each with its own event loop. Measured on a 2-core
  machine, the client spends about four times the server's CPU per ping (about
  100 us against 25 us: a ping is a timer, a task, the detector and a pong future
  on this side, a frame read and a frame written on that side), so a single client
  loop falls behind long before the server does, and the latency it then reports is
  its own. ``--client-processes`` (by default one per
  :data:`CLIENT_PINGS_PER_PROCESS` pings per second, at most the number of cores)
  spreads the connections; the calling process only coordinates, and reads every
  process's CPU and memory from ``/proc``.
- Each connection runs :class:`~.endpoint.Heartbeats`, the harness's driver of
  :mod:`simlab.rules.detector`'s pure state machine with the loop's clock (a read-deadline
  detector here). Nothing breaks a connection, so every declaration is a false
  positive. Pong latency is what the detector saw: from the ping's send (its timer
  firing) to the moment its pong was handled, the client's delays in handling it
  included, which is why each client process also measures its loop's lag.
- Connections open at a bounded rate (``--open-rate``, a bounded number of
  handshakes in flight) and each connection's detector, hence its pings, starts at
  a uniform random offset within the first interval, so pings are spread over the
  interval instead of arriving in bursts.
- ``--steps`` measures increasing connection counts on the same server (connections
  are added between steps; a step is measured once every connection of it is
  pinging) and reports pong latency against the number of connections. The first
  step whose p99 exceeds :data:`LATENCY_GROWTH` times the smallest step's, or at
  which the server uses :data:`CPU_SATURATED` of a core or more, is where the load
  test's throughput stops; :func:`bottleneck` says whether the server or the
  client was the limit there.

Everything is bounded: at most :data:`MAX_CONNECTIONS` connections, a hard
wall-clock limit (``--max-wall``) on every wait, 127.0.0.1 only; the child
processes (and only they, by their PIDs) are terminated, then killed after a grace
period, on every exit path, and each exits by itself when its stdin closes (the
calling process died) or its own wall-clock bound passes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
MAX_CONNECTIONS = 20_000
FD_MARGIN = 256  # descriptors beyond one per connection: the interpreter, pipes, the listener
DEFAULT_OPEN_RATE = 500.0  # connections opened per second, all client processes together
MAX_OPEN_RATE = 5_000.0
OPEN_CONCURRENCY = 100  # opening handshakes in flight at once, per client process
OPEN_TIMEOUT = 10.0  # seconds for one connection's TCP + WebSocket handshake
MIN_INTERVAL = 0.01  # below this the event loop's timer granularity dominates
MAX_DURATION = 3600.0
MAX_WALL = 7200.0
CHILD_START_TIMEOUT = 30.0  # a child's interpreter start-up and its first line
CHILD_STOP_GRACE = 5.0  # SIGTERM, then SIGKILL after this many seconds
CHILD_WALL_SLACK = 30.0  # a child's own wall-clock bound: the run's plus this
LAG_PERIOD = 0.05  # the client loop's lag probe: one sleep of this length after another
CLIENT_PINGS_PER_PROCESS = 2500  # about a quarter of a core of client work (measured)
MAX_CLIENT_PROCESSES = 32
LATENCY_GROWTH = 10.0  # p99 above this multiple of the smallest step's: throughput has peaked
CPU_SATURATED = 0.9  # cores: a single-threaded event loop is saturated near one core
RATE_SHORTFALL = 0.95  # pings per second below this share of the due rate: the client fell behind
LAG_SHARE = 0.5  # client loop lag p99 at least this share of the latency p99: the client's latency
RUNQ_WAIT_SHARE = (
    0.05  # a process runnable but waiting for a CPU this share of the time: contention
)


class FdLimitError(RuntimeError):
    """The machine cannot hold the requested connections (open files, local ports)."""


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
    client_processes: int
    max_wall: float
    seed: int = 0

    @property
    def settle(self) -> float:
        """Wait after a step's last opening: the first-ping offset (up to one interval)
        plus the first interval, so every connection is pinging when measured."""
        return 2 * self.interval

    @property
    def drain(self) -> float:
        """Wait after the last window so the pongs of its last pings can still arrive."""
        return min(self.timeout, max(self.interval, 0.5))

    def windows(self) -> list[float]:
        return [self.step_duration] * (len(self.steps) - 1) + [self.duration]

    def planned_seconds(self) -> float:
        """Wall time the plan needs if opening keeps to the requested rate."""
        opening = self.connections / self.open_rate
        return opening + sum(self.windows()) + len(self.steps) * self.settle + self.drain

    def share(self, n: int, process: int) -> int:
        """How many of the first ``n`` connections client process ``process`` holds."""
        k = self.client_processes
        return n // k + (1 if process < n % k else 0)


def auto_client_processes(connections: int, interval: float) -> int:
    """One client process per CLIENT_PINGS_PER_PROCESS pings per second, at most the cores."""
    need = math.ceil(connections / interval / CLIENT_PINGS_PER_PROCESS)
    return max(1, min(need, os.cpu_count() or 1, connections))


def make_plan(
    connections: int = 5000,
    interval: float | str = "1s",
    duration: float | str = "60s",
    timeout: float | str | None = None,
    steps: str | list[int] | None = None,
    step_duration: float | str | None = None,
    open_rate: float = DEFAULT_OPEN_RATE,
    client_processes: int | None = None,
    max_wall: float | str | None = None,
    seed: int = 0,
) -> LoadPlan:
    """Check the load test's settings; raise ScenarioError listing every problem.

    Durations may carry units (``1s``, ``200ms``: :func:`simlab.units.parse_duration`).
    ``timeout`` defaults to three intervals, ``step_duration`` to the smaller of
    ``duration`` and 10 s, ``client_processes`` to :func:`auto_client_processes`,
    ``max_wall`` to 1.5 times the planned time plus a minute.
    """
    from simlab.errors import Problem, ScenarioError
    from simlab.scenario.reader import Reader
    from simlab.units import format_duration

    reader = Reader()  # the options, read as a mapping of option name -> value
    problems: list[Problem] = reader.errors

    def duration_of(name: str, value, low: float, high: float) -> float:
        return reader.duration({name: value}, name, "", math.nan, low=low, high=high)

    def number_in(name: str, value, high: float, unit: str, default):
        """``value`` if it is a number from 1 to ``high`` (ints only when ``default`` is one)."""
        kinds = int if isinstance(default, int) else (int, float)

        def check(v) -> bool:
            return not isinstance(v, bool) and isinstance(v, kinds) and 1 <= v <= high

        rule = f"between 1 and {high:g}{unit}"
        return reader.value({name: value}, name, "", lambda v: v, default, check, rule)

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
        connections = 0
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
    open_rate = number_in(
        "--open-rate", open_rate, MAX_OPEN_RATE, " per second", float(DEFAULT_OPEN_RATE)
    )
    n = len(problems)
    if client_processes is None:
        procs = auto_client_processes(connections, iv) if connections and not math.isnan(iv) else 1
    else:
        procs = number_in("--client-processes", client_processes, MAX_CLIENT_PROCESSES, "", 1)
        if len(problems) == n and connections and procs > connections:
            problems.append(
                Problem(
                    "--client-processes",
                    f"{procs} processes for {connections} connections: at most one per connection",
                )
            )
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
    plan = LoadPlan(connections, iv, to, dur, tuple(counts), sd, float(open_rate), procs, 0.0, seed)
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
                f"the plan needs about {format_duration(planned)}, "
                f"over the {format_duration(MAX_WALL)} bound",
            )
        )
    if problems:
        raise ScenarioError(problems, "simlab harness load")
    return LoadPlan(
        connections, iv, to, dur, tuple(counts), sd, float(open_rate), procs, wall, seed
    )


# -- resources --------------------------------------------------------------------------


def raise_nofile(connections: int) -> tuple[int, int]:
    """Raise this process's open-file soft limit (up to the hard limit) for ``connections``.

    Returns the soft limit before the call (so it can be restored) and after. The
    child processes inherit the raised limit. Raises FdLimitError, with what to do,
    if the hard limit is too low.
    """
    need = connections + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        raise FdLimitError(
            f"{connections:,} connections need about {need:,} open files in the server process, "
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


def proc_wait(pid: int) -> float | None:
    """Seconds the main thread of ``pid`` spent runnable but waiting for a CPU, or None.

    The second field of /proc/PID/schedstat (run-queue wait, nanoseconds). On a
    machine with a core to spare it stays near zero; when it grows, the process's
    latency is the scheduler's, not its own.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu() -> tuple[float, float] | None:
    """Busy and total CPU seconds of the whole machine, every core (/proc/stat), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def _pack(values: array) -> str:
    return base64.b64encode(values.tobytes()).decode()


def _unpack(text: str, typecode: str = "d") -> array:
    a = array(typecode)
    a.frombytes(base64.b64decode(text))
    return a


# -- child processes --------------------------------------------------------------------


class Child:
    """A child process of the load test that talks in JSON lines on its stdin and stdout.

    :meth:`spawn` launches this module with ``args``: a client as ``python -m
    simlab.harness.load``, the server (``lean=True``) as ``python -I .../load.py``,
    which imports nothing but the standard library and `websockets`, so its memory
    is a WebSocket server's, not simlab's (numpy, pandas, scipy: about 140 MB).
    :meth:`receive` reads its next line, never past a deadline; :meth:`send` writes
    one; :meth:`stop` ends this process, and only it, by its PID: SIGTERM, then
    SIGKILL after CHILD_STOP_GRACE, then reaps it. Its stderr goes to a temporary
    file whose tail is quoted if it fails.
    """

    def __init__(self, role: str, args: list[str], lean: bool = False):
        self.role = role
        self.args = args
        self.lean = lean
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.exit_code: int | None = None
        self._stderr = None
        self._buffer = b""

    def spawn(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # run *this* simlab's code
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the child; closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).resolve()), *self.args]
            if self.lean
            else [sys.executable, "-m", "simlab.harness.load", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches only us; we stop the child
        )
        self.pid = self.proc.pid

    def receive(self, deadline: float) -> dict:
        """The child's next JSON line; TimeoutError past ``deadline`` (time.monotonic)."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the load test's {self.role} process did not answer in time")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise RuntimeError(
                    f"the load test's {self.role} process exited unexpectedly" + self._stderr_tail()
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace").strip()
            if text:
                return ": " + text[-2000:]
        return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def usage(self) -> tuple[float, int] | None:
        """(CPU seconds, RSS bytes) of the child now, or None."""
        return proc_usage(self.pid) if self.alive() else None

    def peak_rss(self) -> int | None:
        return proc_peak_rss(self.pid) if self.alive() else None

    def stop(self) -> None:
        """Terminate the child (SIGTERM), kill it after a grace period, reap it. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    proc.wait(CHILD_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(CHILD_STOP_GRACE)
        finally:
            self.exit_code = proc.poll()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None


async def _stdin_lines() -> asyncio.StreamReader:
    """This process's stdin as an asyncio stream (lines of at most 1 MiB)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- the server process ------------------------------------------------------------------


async def _serve(max_wall: float) -> None:
    """Serve on 127.0.0.1 (ephemeral port) until stdin closes or ``max_wall`` passes."""
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        await ws.wait_closed()  # pings are answered by the library as frames are read

    server = await serve(
        handler,
        HOST,
        0,
        compression=None,
        ping_interval=None,
        close_timeout=1,
        backlog=4096,
    )
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    _say({"port": server.sockets[0].getsockname()[1], "pid": os.getpid(), "nofile": soft})
    reader = await _stdin_lines()
    with contextlib.suppress(TimeoutError):  # EOF: the parent is gone; the kernel closes sockets
        await asyncio.wait_for(reader.read(), max_wall)


# -- the client processes -----------------------------------------------------------------


class _Conn:
    __slots__ = ("index", "ws", "hb", "pongs", "last_pong", "closed")

    def __init__(self, index: int, ws):
        self.index, self.ws = index, ws
        self.hb = None
        self.pongs = 0
        self.last_pong = -math.inf
        self.closed = False


class LoadClient:
    """One client process's connections to the server, a detector on each.

    Times are the event loop's clock (``time.monotonic``), the same in every process
    of the machine, so the coordinator can cut the records into its windows.
    """

    def __init__(self, port: int, interval: float, timeout: float, open_rate: float, seed: int):
        import numpy as np

        from simlab.scenario.schema import Detector, Heartbeat, Scenario

        self.port, self.interval, self.open_rate = port, interval, open_rate
        self.rng = random.Random(seed)
        self.jitter_rng = np.random.default_rng(seed)  # Heartbeats' jitter: zero here
        # What Heartbeats and make_detector read: client pings and a read-deadline
        # detector on the client; monitor mode (a declaration keeps the connection).
        self.scenario = Scenario(
            name="load",
            heartbeat=Heartbeat(style="pingpong", initiator="client", interval=interval),
            detector=Detector(kind="timeout", timeout=timeout, side="client", on_declare="monitor"),
        )
        self.loop = asyncio.get_running_loop()
        self.conns: list[_Conn] = []
        self.attempts = 0
        self.stopping = False
        self._opening: set[asyncio.Task] = set()
        self.ping_times, self.pong_sent, self.pong_rtt = array("d"), array("d"), array("d")
        self.lag_times, self.lags = array("d"), array("d")
        self.false_positives: list[tuple[int, float]] = []
        self.lost: list[tuple[int, float, str]] = []
        self.failures: Counter = Counter()
        self._probe = self.loop.create_task(self._lag_probe())

    def now(self) -> float:
        return self.loop.time()

    async def _lag_probe(self) -> None:
        """How late the loop wakes up: the client's own share of any latency."""
        loop = self.loop
        while True:
            t = loop.time()
            await asyncio.sleep(LAG_PERIOD)
            self.lag_times.append(t)
            self.lags.append(max(loop.time() - t - LAG_PERIOD, 0.0))

    async def open_to(self, n: int) -> None:
        """Open connections until ``n`` were attempted: at the process's rate, bounded in flight."""
        sem = asyncio.Semaphore(OPEN_CONCURRENCY)
        begin = self.loop.time()
        tasks = []
        for j, i in enumerate(range(self.attempts, n)):
            delay = begin + j / self.open_rate - self.loop.time()
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

        from simlab.harness.endpoint import WatchedClient

        try:
            ws = await connect(
                f"ws://{HOST}:{self.port}/",
                compression=None,
                proxy=None,
                ping_interval=None,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=1,
                create_connection=WatchedClient,
            )
        except Exception as exc:  # counted and reported; the run is then not ok
            self.failures[type(exc).__name__] += 1
            return
        conn = _Conn(i, ws)
        self.conns.append(conn)
        ws.on_lost = lambda exc: self._lost(conn, exc)
        if self.stopping:
            ws.transport.abort()
            return
        # The first ping goes one interval after the detector starts; starting it at a
        # uniform offset within the interval spreads the pings over the interval.
        self.loop.call_later(self.rng.uniform(0, self.interval), self._start, conn)

    def _start(self, conn: _Conn) -> None:
        from simlab.harness.endpoint import Heartbeats

        if self.stopping or conn.closed:
            return

        def record(event, detail=None, value=None):
            if event == "ping":
                self.ping_times.append(self.now())
            elif event == "pong":
                t = self.now()
                self.pong_sent.append(t - value)
                self.pong_rtt.append(value)
                conn.pongs += 1
                conn.last_pong = t

        def declare(by):
            self.false_positives.append((conn.index, self.now()))

        conn.hb = Heartbeats(self.scenario, conn.ws, self.now, record, declare, self.jitter_rng)
        conn.hb.start()

    def _lost(self, conn: _Conn, exc) -> None:
        from simlab.harness.endpoint import transport_cause

        if conn.closed:
            return
        conn.closed = True
        if conn.hb is not None:
            conn.hb.stop()
        if not self.stopping:
            self.lost.append((conn.index, self.now(), transport_cause(exc)))

    async def close_all(self) -> None:
        """Stop every detector, cancel openings in flight, abort every socket. Idempotent."""
        self.stopping = True
        self._probe.cancel()
        for task in list(self._opening):
            task.cancel()
        if self._opening:
            await asyncio.gather(*self._opening, return_exceptions=True)
        for conn in self.conns:
            if conn.hb is not None:
                conn.hb.stop()
            conn.closed = True
            if conn.ws.transport is not None:
                conn.ws.transport.abort()
        await asyncio.sleep(0.1)  # let the transports' connection_lost run and close the sockets

    def dump(self) -> dict:
        """Everything measured, for the coordinator (float arrays base64-packed)."""
        return {
            "opened": len(self.conns),
            "pings": _pack(self.ping_times),
            "pong_sent": _pack(self.pong_sent),
            "pong_rtt": _pack(self.pong_rtt),
            "lag_times": _pack(self.lag_times),
            "lags": _pack(self.lags),
            "conn_pongs": [c.pongs for c in self.conns],
            "conn_last_pong": _pack(array("d", (c.last_pong for c in self.conns))),
            "false_positives": self.false_positives,
            "lost": self.lost,
            "failures": dict(self.failures),
        }


async def _client(args) -> None:
    """A client process: ``open`` and ``stop`` commands on stdin, answers on stdout."""
    client = LoadClient(args.port, args.interval, args.timeout, args.open_rate, args.seed)
    _say({"pid": os.getpid()})
    reader = await _stdin_lines()
    end = client.loop.time() + args.max_wall
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), max(end - client.loop.time(), 0))
            if not line:
                return  # the parent is gone
            command = json.loads(line)
            if command["cmd"] == "open":
                await client.open_to(command["n"])
                _say({"opened": len(client.conns), "failures": dict(client.failures)})
            elif command["cmd"] == "stop":
                await client.close_all()
                _say(client.dump())
                return
    finally:
        await client.close_all()


def child_main(argv: list[str]) -> int:
    """``python -m simlab.harness.load --serve | --client ...``: the load test's children."""
    p = argparse.ArgumentParser(prog="python -m simlab.harness.load")
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--serve", action="store_true")
    role.add_argument("--client", action="store_true")
    p.add_argument("--max-wall", type=float, default=MAX_WALL)
    p.add_argument("--port", type=int)
    p.add_argument("--interval", type=float)
    p.add_argument("--timeout", type=float)
    p.add_argument("--open-rate", type=float)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.max_wall = min(args.max_wall, MAX_WALL + CHILD_WALL_SLACK)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when we stop
    if args.serve:
        asyncio.run(_serve(args.max_wall))
    else:
        if None in (args.port, args.interval, args.timeout, args.open_rate):
            p.error("--client needs --port, --interval, --timeout and --open-rate")
        with contextlib.suppress(TimeoutError):
            asyncio.run(_client(args))
    return 0


# -- the coordinator ----------------------------------------------------------------------


@dataclass
class _Window:
    connections: int
    start: float  # time.monotonic
    end: float
    open_seconds: float  # how long opening this step's new connections took
    server_cpu: float | None = None  # cores (CPU seconds per wall second)
    server_rss: int | None = None
    server_wait: float | None = None  # run-queue wait, seconds per second
    client_cpu: list | None = None  # cores, per client process
    client_rss: int | None = None  # all client processes together
    client_wait: list | None = None  # run-queue wait per client process, seconds per second
    machine_busy: float | None = None  # cores busy on the whole machine (every process)


def _snapshot(server: Child, clients: list[Child]) -> dict:
    return {
        "t": time.monotonic(),
        "server": server.usage(),
        "server_wait": proc_wait(server.pid),
        "clients": [c.usage() for c in clients],
        "client_wait": [proc_wait(c.pid) for c in clients],
        "machine": machine_cpu(),
    }


def _measure(w: _Window, a: dict, b: dict) -> None:
    """Fill ``w``'s CPU, memory and contention figures from snapshots ``a`` and ``b``."""
    wall = b["t"] - a["t"]
    if a["server"] is not None and b["server"] is not None:
        w.server_cpu, w.server_rss = (b["server"][0] - a["server"][0]) / wall, b["server"][1]
    if a["server_wait"] is not None and b["server_wait"] is not None:
        w.server_wait = (b["server_wait"] - a["server_wait"]) / wall
    if None not in a["clients"] and None not in b["clients"]:
        w.client_cpu = [
            (y[0] - x[0]) / wall for x, y in zip(a["clients"], b["clients"], strict=True)
        ]
        w.client_rss = sum(y[1] for y in b["clients"])
    if None not in a["client_wait"] and None not in b["client_wait"]:
        w.client_wait = [
            (y - x) / wall for x, y in zip(a["client_wait"], b["client_wait"], strict=True)
        ]
    if a["machine"] is not None and b["machine"] is not None:
        w.machine_busy = (b["machine"][0] - a["machine"][0]) / wall


def _sleep(seconds: float, deadline: float) -> None:
    if time.monotonic() + seconds > deadline:
        raise TimeoutError("the load test would pass its wall-clock limit")
    time.sleep(seconds)


def run_load(plan: LoadPlan) -> dict:
    """Run ``plan``: start the server and the clients, hold the connections, stop everything.

    Returns the report (:func:`summarize`). Raises FdLimitError when the machine
    cannot hold the connections, TimeoutError when the wall-clock limit is hit,
    RuntimeError when a child process fails. Every child is stopped on every path.
    """
    ports = ephemeral_ports()
    if ports is not None and plan.connections > ports - FD_MARGIN:
        raise FdLimitError(
            f"{plan.connections:,} connections to one server port need as many local ports, "
            f"but the kernel's ephemeral range (net.ipv4.ip_local_port_range) has {ports:,}"
        )
    started = time.monotonic()
    deadline = started + plan.max_wall
    child_wall = repr(plan.max_wall + CHILD_WALL_SLACK)
    before, after = raise_nofile(plan.connections)
    server = Child("server", ["--serve", "--max-wall", child_wall], lean=True)
    clients: list[Child] = []
    try:
        server.spawn()
        info = server.receive(min(deadline, time.monotonic() + CHILD_START_TIMEOUT))
        port = int(info["port"])
        print(f"load-test server pid {server.pid} on {HOST}:{port}", file=sys.stderr, flush=True)
        rate = plan.open_rate / plan.client_processes
        for i in range(plan.client_processes):
            child = Child(
                f"client {i}",
                [
                    "--client",
                    "--port",
                    str(port),
                    "--interval",
                    repr(plan.interval),
                    "--timeout",
                    repr(plan.timeout),
                    "--open-rate",
                    repr(rate),
                    "--seed",
                    str(plan.seed * 1000 + i),
                    "--max-wall",
                    child_wall,
                ],
            )
            clients.append(child)
            child.spawn()
        for child in clients:
            child.receive(min(deadline, time.monotonic() + CHILD_START_TIMEOUT))
        pids = " ".join(str(c.pid) for c in clients)
        print(f"load-test client pids {pids}", file=sys.stderr, flush=True)
        idle = server.usage()
        windows = []
        for n, length in zip(plan.steps, plan.windows(), strict=True):
            t_open = time.monotonic()
            for i, child in enumerate(clients):
                child.send({"cmd": "open", "n": plan.share(n, i)})
            for child in clients:
                child.receive(deadline)
            open_seconds = time.monotonic() - t_open
            _sleep(plan.settle, deadline)
            a = _snapshot(server, clients)
            _sleep(length, deadline)
            b = _snapshot(server, clients)
            w = _Window(n, a["t"], b["t"], open_seconds)
            _measure(w, a, b)
            windows.append(w)
        _sleep(plan.drain, deadline)
        peak = server.peak_rss()
        for child in clients:
            child.send({"cmd": "stop"})
        dumps = [child.receive(deadline) for child in clients]
        return summarize(
            plan,
            windows,
            dumps,
            {
                "server_pid": server.pid,
                "client_pids": [c.pid for c in clients],
                "server_idle_rss": idle[1] if idle else None,
                "server_peak_rss": peak,
                "nofile": (before, after),
                "wall": time.monotonic() - started,
            },
        )
    finally:
        for child in clients:
            child.stop()
        server.stop()
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (before, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
            )


# -- figures -------------------------------------------------------------------------------


def _quantiles(a) -> dict:
    import numpy as np

    if len(a) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p50, p95, p99 = np.quantile(a, [0.5, 0.95, 0.99])
    return {
        "p50_ms": 1e3 * float(p50),
        "p95_ms": 1e3 * float(p95),
        "p99_ms": 1e3 * float(p99),
        "max_ms": 1e3 * float(a.max()),
    }


def summarize(plan: LoadPlan, windows: list[_Window], dumps: list[dict], info: dict) -> dict:
    """The report: per step latency, CPU, memory; the bottleneck; the failures; ok."""
    import numpy as np

    def joined(key: str) -> np.ndarray:
        return np.concatenate([np.frombuffer(_unpack(d[key]), dtype=float) for d in dumps])

    pings, sent, rtt = joined("pings"), joined("pong_sent"), joined("pong_rtt")
    lag_t, lags, last_pong = joined("lag_times"), joined("lags"), joined("conn_last_pong")
    conn_pongs = np.array([p for d in dumps for p in d["conn_pongs"]], dtype=np.int64)
    fps = [tuple(x) for d in dumps for x in d["false_positives"]]
    lost = [tuple(x) for d in dumps for x in d["lost"]]
    failures = Counter()
    for d in dumps:
        failures.update(d["failures"])
    fp_times = np.array([t for _, t in fps], dtype=float)
    steps = []
    for w in windows:
        in_w = (sent >= w.start) & (sent < w.end)
        span = w.end - w.start
        n_pings = int(((pings >= w.start) & (pings < w.end)).sum())
        n_pongs = int(in_w.sum())
        lag_w = lags[(lag_t >= w.start) & (lag_t < w.end)]
        steps.append(
            {
                "connections": w.connections,
                "window_s": span,
                "open_s": w.open_seconds,
                "pings": n_pings,
                "pings_per_s": n_pings / span,
                "pings_due_per_s": w.connections / plan.interval,
                "pongs": n_pongs,
                "unanswered": max(n_pings - n_pongs, 0),
                **_quantiles(rtt[in_w]),
                "server_cpu": w.server_cpu,
                "server_rss_mb": None if w.server_rss is None else w.server_rss / 2**20,
                "client_cpu": None if w.client_cpu is None else sum(w.client_cpu),
                "client_cpu_max": None if w.client_cpu is None else max(w.client_cpu),
                "client_rss_mb": None if w.client_rss is None else w.client_rss / 2**20,
                "server_runq_wait": w.server_wait,
                "client_runq_wait_max": None if w.client_wait is None else max(w.client_wait),
                "machine_busy_cores": w.machine_busy,
                "other_cpu": None
                if None in (w.machine_busy, w.server_cpu, w.client_cpu)
                else max(w.machine_busy - w.server_cpu - sum(w.client_cpu), 0.0),
                "loop_lag_p99_ms": 1e3 * float(np.quantile(lag_w, 0.99)) if len(lag_w) else None,
                "loop_lag_max_ms": 1e3 * float(lag_w.max()) if len(lag_w) else None,
                "false_positives": int(((fp_times >= w.start) & (fp_times < w.end)).sum()),
            }
        )
    opened = int(sum(d["opened"] for d in dumps))
    last = windows[-1] if windows else None
    stale = int((last_pong < last.start).sum()) if last is not None else opened
    idle, peak = info["server_idle_rss"], info["server_peak_rss"]
    final_rss = steps[-1]["server_rss_mb"] if steps else None
    per_conn_kb = None
    if final_rss is not None and idle is not None:
        per_conn_kb = (final_rss * 2**20 - idle) / plan.connections / 1024
    report = {
        "host": HOST,
        "connections": plan.connections,
        "interval_s": plan.interval,
        "timeout_s": plan.timeout,
        "detector": "timeout",
        "duration_s": plan.duration,
        "step_duration_s": plan.step_duration,
        "open_rate_per_s": plan.open_rate,
        "client_processes": plan.client_processes,
        "cpus": os.cpu_count(),
        "steps": steps,
        "bottleneck": bottleneck(steps, plan.interval, os.cpu_count()),
        "connections_opened": opened,
        "false_positives": len(fps),
        "lost_connections": len(lost),
        "lost_causes": dict(Counter(cause for _, _, cause in lost)),
        "connect_failures": sum(failures.values()),
        "connect_failure_kinds": dict(failures),
        "connections_without_pong": int((conn_pongs == 0).sum()),
        "connections_silent_in_last_window": stale,
        "server_pid": info["server_pid"],
        "client_pids": info["client_pids"],
        "server_idle_rss_mb": None if idle is None else idle / 2**20,
        "server_peak_rss_mb": None if peak is None else peak / 2**20,
        "server_rss_per_connection_kb": per_conn_kb,
        "nofile_soft_before": info["nofile"][0],
        "nofile_soft": info["nofile"][1],
        "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "wall_s": info["wall"],
    }
    report["ok"] = bool(
        steps
        and opened == plan.connections
        and report["false_positives"] == 0
        and report["lost_connections"] == 0
        and report["connect_failures"] == 0
        and report["connections_without_pong"] == 0
        and stale == 0
    )
    return report


def client_limited(step: dict) -> list[str]:
    """Signs that the client, not the server, limited a step's latency (empty: none).

    A client process near a full core; pings sent below RATE_SHORTFALL of the due
    rate (the client's timers ran late); or the client loop's lag p99 at least
    LAG_SHARE of the latency p99 (the latency is mostly the client waking late).
    """
    signs = []
    if step["client_cpu_max"] is not None and step["client_cpu_max"] >= CPU_SATURATED:
        signs.append(f"a client process at {step['client_cpu_max']:.2f} cores")
    if step["pings_per_s"] < RATE_SHORTFALL * step["pings_due_per_s"]:
        signs.append(
            f"pings sent at {step['pings_per_s']:.0f}/s of {step['pings_due_per_s']:.0f}/s due"
        )
    lag, p99 = step["loop_lag_p99_ms"], step["p99_ms"]
    if lag is not None and p99 is not None and lag >= LAG_SHARE * p99:
        signs.append(f"client loop lag p99 {lag:.1f} ms of the {p99:.1f} ms latency p99")
    return signs


def contention(step: dict, cpus: int | None) -> list[str]:
    """Signs that the machine's CPUs, not the load test's own work, limited a step.

    The server or a client process runnable but waiting for a CPU at least
    RUNQ_WAIT_SHARE of the time, or the machine's cores at least CPU_SATURATED busy
    (whoever uses them: the figure says how much went to other processes).
    """
    signs = []
    for who, wait in (
        ("the server", step.get("server_runq_wait")),
        ("a client process", step.get("client_runq_wait_max")),
    ):
        if wait is not None and wait >= RUNQ_WAIT_SHARE:
            signs.append(f"{who} waited for a CPU {1e3 * wait:.0f} ms per second")
    busy, other = step.get("machine_busy_cores"), step.get("other_cpu")
    if busy is not None and cpus and busy >= CPU_SATURATED * cpus:
        signs.append(
            f"the machine's {cpus} cores {busy / cpus:.0%} busy"
            + (f", {other:.2f} cores of it other processes" if other is not None else "")
        )
    return signs


def bottleneck(steps: list[dict], interval: float, cpus: int | None = None) -> dict:
    """Where pong latency starts to grow with the load, what limited it, and the server's share.

    The first step whose p99 pong latency exceeds LATENCY_GROWTH times the smallest
    step's, or at which the server uses CPU_SATURATED of a core or more (one event
    loop, one thread: a core is all it can use), is where latency starts to grow.
    What limited it there (``limited_by``): the server if its CPU saturated; the
    machine if a process of the test waited for a CPU or the cores were busy
    (:func:`contention`); the client if it fell behind (:func:`client_limited`); the
    server, too, if latency grew with none of those signs. Only then is the step the
    server's bottleneck (``server_step``); otherwise the server's bottleneck lies
    beyond what this machine could measure. The server's CPU per ping at the largest
    step gives a linear estimate of the count at which it would saturate a core,
    labelled as an extrapolation.
    """
    measured = [s for s in steps if s["p99_ms"] is not None]
    if not measured:
        return {"step": None, "limited_by": [], "server_step": None, "reason": "no pongs"}
    top = measured[-1]
    estimate = cpu_per_ping = None
    if top["server_cpu"] and top["pings_per_s"]:
        cpu_per_ping = top["server_cpu"] / top["pings_per_s"]
        estimate = int(CPU_SATURATED / cpu_per_ping * interval)
    out = {
        "step": None,
        "limited_by": [],
        "server_step": None,
        "reason": f"latency did not grow {LATENCY_GROWTH:g}x up to {top['connections']:,} connections",
        "client_signs": [],
        "machine_signs": [],
        "server_cpu_max": max((s["server_cpu"] or 0.0) for s in measured),
        "server_cpu_per_ping_us": None if cpu_per_ping is None else 1e6 * cpu_per_ping,
        "server_saturates_at_estimate": estimate,
    }
    base = measured[0]["p99_ms"]
    for s in measured:
        why = []
        if s is not measured[0] and s["p99_ms"] > LATENCY_GROWTH * base:
            why.append(f"p99 {s['p99_ms'] / base:.1f}x the smallest step's")
        server_full = s["server_cpu"] is not None and s["server_cpu"] >= CPU_SATURATED
        if server_full:
            why.append(f"server CPU {s['server_cpu']:.2f} cores")
        if not why:
            continue
        client, machine = client_limited(s), contention(s, cpus)
        limited = [
            name
            for name, sign in (("server", server_full), ("machine", machine), ("client", client))
            if sign
        ]
        if not limited:
            limited = ["server"]
        out.update(
            step=s["connections"],
            limited_by=limited,
            reason="; ".join(why),
            client_signs=client,
            machine_signs=machine,
            server_step=s["connections"] if "server" in limited else None,
        )
        break
    return out


def format_report(r: dict) -> str:
    """The report as a human-readable table."""
    from simlab.units import format_duration

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    def wait_ms(step):  # the longest run-queue wait of the test's processes, ms per second
        waits = [
            w for w in (step["server_runq_wait"], step["client_runq_wait_max"]) if w is not None
        ]
        return 1e3 * max(waits) if waits else None

    lines = [
        f"load test on {r['host']}: {r['connections']:,} connections, ping every "
        f"{format_duration(r['interval_s'])}, timeout detector at {format_duration(r['timeout_s'])}, "
        f"held {format_duration(r['duration_s'])}, {r['client_processes']} client process(es)",
        "",
        f"{'conns':>6} {'pings/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'srv cpu':>7} {'srv MB':>7} {'cli cpu':>7} {'lag p99':>7} {'wait':>5} {'busy':>5} "
        f"{'unans':>5} {'fp':>3}",
    ]
    for s in r["steps"]:
        lines.append(
            f"{s['connections']:>6} {s['pings_per_s']:>8.0f} {num(s['p50_ms'], '7.2f')} "
            f"{num(s['p95_ms'], '7.2f')} {num(s['p99_ms'], '7.2f')} {num(s['max_ms'], '7.1f')} "
            f"{num(s['server_cpu'], '7.2f')} {num(s['server_rss_mb'], '7.0f')} "
            f"{num(s['client_cpu'], '7.2f')} {num(s['loop_lag_p99_ms'], '7.1f')} "
            f"{num(wait_ms(s), '5.0f')} {num(s['machine_busy_cores'], '5.2f')} "
            f"{s['unanswered']:>5} {s['false_positives']:>3}"
        )
    lines.append(
        "(latency: ping sent to pong handled; cpu: cores; lag: client loop; wait: longest "
        "run-queue wait of the test's processes, ms per s; busy: the machine's busy cores)"
    )
    b = r["bottleneck"]
    lines.append("")
    est = b.get("server_saturates_at_estimate")
    extrapolation = (
        f"; the server's {b['server_cpu_per_ping_us']:.0f} us of CPU per ping extrapolates "
        f"to a saturated core near {est:,} connections at this interval"
        if est
        else ""
    )
    signs = "; ".join(b.get("machine_signs", []) + b.get("client_signs", []))
    if b["step"] is None:
        lines.append(f"bottleneck: none measured ({b['reason']}){extrapolation}")
    elif b["server_step"] is None:
        lines.append(
            f"latency grows from {b['step']:,} connections ({b['reason']}), limited by the "
            f"{' and the '.join(b['limited_by'])} ({signs}): the server was not the bottleneck "
            f"(its CPU at most {b['server_cpu_max']:.2f} cores){extrapolation}"
        )
    else:
        lines.append(
            f"server bottleneck at {b['step']:,} connections: {b['reason']}"
            + (f" (also: {signs})" if signs else "")
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


# -- the command ---------------------------------------------------------------------------


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``load`` in the ``harness`` subcommand group ``sub``."""
    p = sub.add_parser(
        "load",
        help="hold thousands of heartbeat connections on loopback; latency, CPU, memory, bottleneck",
        description=(
            "Open --connections WebSocket connections on 127.0.0.1 to a server in its own "
            "process, ping each every --interval with a timeout detector, and report pong "
            "latency, false positives, the server's CPU and memory, and (with --steps) the "
            "connection count at which latency grows and which side limits it. Exit 0 if "
            "every connection held with no false positive, 1 if not, 2 on bad input or when "
            "the machine cannot hold that many connections (open-file hard limit)."
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
        "--client-processes",
        type=int,
        metavar="K",
        help=f"client processes (default one per {CLIENT_PINGS_PER_PROCESS} pings/s, at most the cores)",
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
    from simlab.errors import ScenarioError

    try:
        plan = make_plan(
            connections=args.connections,
            interval=args.interval,
            duration=args.duration,
            timeout=args.timeout,
            steps=args.steps,
            step_duration=args.step_duration,
            open_rate=args.open_rate,
            client_processes=args.client_processes,
            max_wall=args.max_wall,
            seed=args.seed,
        )
        report = run_load(plan)
    except (ScenarioError, FdLimitError) as exc:
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
    sys.exit(child_main(sys.argv[1:]))
