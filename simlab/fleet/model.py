"""The fleet model: N clients, their servers and a reconnect storm, as a SimPy discrete-event model.

Every client starts connected (client i to server i mod S). The trigger knocks
connections off: a restart takes every server down for a while, a rolling deploy
takes them down one after another, a network blip silently drops a share of the
connections and cuts those clients off for a while. A client notices at once (a
close frame or an RST: half a round trip) or, for a silent break, when its own
failure detector declares the connection dead (:mod:`simlab.engines.analytic.detection`, from the
scenario format's heartbeat and detector settings); it then reconnects following
its policy (:mod:`simlab.rules.backoff`): attempt 1 after the policy's first delay,
each further attempt a delay after the previous one failed, until one succeeds
or it gives up.

Admission, per server: a handshake costs ``workers / handshake_rate`` seconds of
one of ``workers`` parallel handshake slots (``resume_cost`` times that for a
client whose TLS session the server can resume), served in arrival order. An
attempt arriving when ``backlog`` handshakes are already waiting is refused at
once (``on_full: refuse``, the client learns after a round trip) or dropped
(``drop``: the client times out). A client abandons an attempt not completed
within ``connect_timeout``; the server, which cannot know, still does the work
(counted as wasted). Attempts to a server that is down are refused (an RST) or
dropped (``while_down``); attempts made while the client's own network is down
time out. A server going down resets the handshakes it holds and disconnects its
clients; a load balancer sends each attempt to a random server that is up.

Design, measured (``python -m simlab.bench.fleet``, 100,000 clients): a first
version scheduled two SimPy events per attempt (the attempt, its outcome) and
spent about 24 us per attempt; deciding each outcome when the attempt is made
(the admission queue is first come, first served, so later arrivals cannot
change it; a server going down is the one exception, and resets it) and letting
clients due at the same instant share one event brought that to about 5-10 us.
Now attempts wait in a calendar (a heap of times, a group of clients per time)
that one SimPy process drains between the SimPy events of the servers and the
trigger: about 3-6 us per attempt; the whole model then takes 0.8-0.9 times as
long as one SimPy process per client doing nothing but sleeping through the same
delays. Random
numbers come from ``SeedSequence`` streams keyed by purpose (and, for the
policy, by the client's disconnection count), so a seed fixes every result.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from array import array
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy
from simpy.core import NORMAL

from simlab.engines.analytic.detection import silent_detection
from simlab.engines.calls import Call
from simlab.engines.metrics import Metric
from simlab.fleet import resume as replay
from simlab.fleet.spec import Fleet, to_dict
from simlab.scenario.distributions import Uniforms
from simlab.scenario.schema import flatten

FLEET_KEY = 0xF1EE7
STREAMS = ("detect", "policy", "balance", "tls", "blip", "messages", "rtt")
OUTCOMES = (
    "connected",
    "refused_full",  # backlog full, on_full: refuse
    "dropped_full",  # backlog full, on_full: drop (the client times out)
    "queue_timeout",  # queued, not served within connect_timeout (the server still does the work)
    "refused_down",  # server down, while_down: refuse
    "dropped_down",  # server down, while_down: drop
    "path_down",  # the client's network is down (blip)
    "reset",  # the server went down while the attempt waited or was served
)
(
    CONNECTED,
    REFUSED_FULL,
    DROPPED_FULL,
    QUEUE_TIMEOUT,
    REFUSED_DOWN,
    DROPPED_DOWN,
    PATH_DOWN,
    RESET,
) = range(8)
REFUSED = (REFUSED_FULL, REFUSED_DOWN, RESET)
TIMED_OUT = (DROPPED_FULL, QUEUE_TIMEOUT, DROPPED_DOWN, PATH_DOWN)
CHUNK = 16  # policy delays are drawn this many attempts at a time


# The headings of the ``simlab storm`` table, in order.
FLEET_SECTIONS = (
    "storm",
    "attempts",
    "recovery (seconds from the trigger)",
    "server",
    "messages (session resume)",
    "provenance",
)
_STORM, _ATTEMPTS, _RECOVERY, _SERVER, _MESSAGES, _PROVENANCE = FLEET_SECTIONS
# every numeric figure of a storm, in JSON order: the columns of a sweep over a fleet file
# (the registry's entries, simlab.engines.metrics.Metric: adding a figure is one entry here)
FLEET_METRICS = (
    Metric("clients", _STORM, "clients"),
    Metric("clients_affected", _STORM, "clients"),
    Metric("disconnections", _STORM, "disconnections"),
    Metric("notice_delay_mean_s", _RECOVERY, "s"),
    Metric("attempts_total", _ATTEMPTS, "attempts"),
    Metric("attempts_per_disconnection", _ATTEMPTS, "attempts"),
    Metric("peak_attempts_per_s", _ATTEMPTS, "1/s"),
    Metric("peak_attempts_at_s", _ATTEMPTS, "s"),
    Metric("attempts_connected", _ATTEMPTS, "attempts"),
    Metric("attempts_refused", _ATTEMPTS, "attempts"),
    Metric("attempts_timed_out", _ATTEMPTS, "attempts"),
    *(Metric(f"attempts_{name}", None, "attempts") for name in OUTCOMES[1:]),
    Metric("reconnected", _RECOVERY, "clients", row=1),
    Metric("gave_up", _RECOVERY, "clients", row=1),
    Metric("still_reconnecting", _RECOVERY, "clients", row=1),
    Metric("time_to_50pct_reconnected_s", _RECOVERY, "s"),
    Metric("time_to_95pct_reconnected_s", _RECOVERY, "s"),
    Metric("time_to_99pct_reconnected_s", _RECOVERY, "s"),
    Metric("time_to_100pct_reconnected_s", _RECOVERY, "s"),
    Metric("server_utilisation_peak", _SERVER, "fraction"),
    Metric("server_utilisation_mean", _SERVER, "fraction"),
    Metric("backlog_peak", _SERVER, "attempts"),
    Metric("handshakes", _SERVER, "handshakes"),
    Metric("handshakes_tls_resumed", _SERVER, "handshakes"),
    Metric("handshakes_wasted", _SERVER, "handshakes"),
    Metric("messages_published", _MESSAGES, "messages"),
    Metric("messages_delivered", _MESSAGES, "messages"),
    Metric("messages_replayed", _MESSAGES, "messages"),
    Metric("messages_lost", _MESSAGES, "messages"),
    Metric("messages_pending", _MESSAGES, "messages"),
    Metric("messages_duplicated", _MESSAGES, "messages"),
    Metric("buffer_peak_messages", _MESSAGES, "messages"),
    Metric("buffer_peak_bytes", _MESSAGES, "bytes"),
)
# the other keys of a storm's summary: not sweep columns
FLEET_EXTRAS = (
    Metric("scenario", None, "name"),
    Metric("policy", _STORM, "name", row=-1),
    Metric("trigger", _STORM, "name", row=-1),
    Metric("engine", _PROVENANCE, "name"),
    Metric("seed", _PROVENANCE, "seed"),
    Metric("wall_s", _PROVENANCE, "s"),
)
FLEET_METRIC_KEYS = tuple(m.key for m in FLEET_METRICS)


def stream(seed: int, name: str, *key: int) -> np.random.Generator:
    """The generator for one purpose of a fleet run (``key``: e.g. the disconnection count)."""
    seq = np.random.SeedSequence(seed, spawn_key=(FLEET_KEY, STREAMS.index(name), *key))
    return np.random.Generator(np.random.PCG64(seq))


class _Delays:
    """The policy's delays per (disconnection count, client, attempt), drawn in chunks on demand.

    A column the same for every client (no jitter) is kept as one number.
    """

    def __init__(self, policy, clients: int, seed: int):
        self.policy, self.clients, self.seed = policy, clients, seed
        self.tables: dict[int, list] = {}  # episode -> [(clients, CHUNK) table per chunk]
        self.same: dict[
            int, list
        ] = {}  # episode -> [per chunk: each column's common value or None]
        self.rngs: dict[int, np.random.Generator] = {}
        self.last: dict[int, np.ndarray] = {}

    def get(self, episode: int, client: int, attempt: int) -> float:
        chunk, col = divmod(attempt - 1, CHUNK)
        same = self.same.get(episode)
        if same is None or len(same) <= chunk:
            same = self._extend(episode, chunk)
        value = same[chunk][col]
        return value if value is not None else float(self.tables[episode][chunk][client, col])

    def _extend(self, episode: int, chunk: int) -> list:
        if episode not in self.same:
            self.same[episode], self.tables[episode] = [], []
            self.rngs[episode] = stream(self.seed, "policy", episode)
        same, tables = self.same[episode], self.tables[episode]
        while len(same) <= chunk:
            first = len(same) * CHUNK + 1
            table = self.policy.delays(
                self.clients, CHUNK, self.rngs[episode], first=first, prev=self.last.get(episode)
            )
            self.last[episode] = table[:, -1].copy()
            common = [float(c[0]) if np.all(c == c[0]) else None for c in table.T]
            same.append(common)
            tables.append(None if all(v is not None for v in common) else table)
        return same


class _Server:
    __slots__ = ("up", "free", "starts", "admitted", "busy_start", "busy_end", "peak")

    def __init__(self, workers: int):
        self.up = True
        self.free = [0.0] * workers  # a heap: when each handshake slot is next free
        self.starts: deque[float] = deque()  # start times of accepted handshakes not yet started
        self.admitted: dict[int, int] = {}  # client -> its attempt admitted here (-1: from before)
        self.busy_start, self.busy_end = array("d"), array("d")
        self.peak = 0  # most handshakes waiting at once


@dataclass
class StormResult:
    """What a fleet run produced.

    ``summary``: the figures (the JSON of ``simlab storm``); ``timeline``: one row per
    time bin (attempts, outcomes, connected clients, server utilisation: the share of
    every server's handshake capacity in use, buffer memory), each row carrying the
    run's parameters and seed; ``attempts``: one row
    per connection attempt (time, client, server, attempt number within its
    disconnection, outcome, when the client learnt it); ``clients``: one row per
    client (disconnections, attempts, final state, when it last connected).
    """

    summary: dict
    timeline: pd.DataFrame
    attempts: pd.DataFrame
    clients: pd.DataFrame

    def __getitem__(self, key):
        return self.summary[key]


class FleetModel:
    """One reconnect storm. ``run()`` returns a :class:`StormResult`.

    An attempt's outcome is decided when it is made (the admission queue is
    first come, first served, so later arrivals cannot change it); the only later
    change is a server going down under a waiting or running handshake, which
    resets it. Attempts wait in a calendar drained by one SimPy process
    (:meth:`_dispatch`); the servers' and the trigger's events are SimPy events.
    """

    def __init__(self, fleet: Fleet):
        self.fleet = f = fleet
        self.env = simpy.Environment()
        n, s = f.clients, f.server.servers
        self.n, self.horizon = n, f.horizon
        self.half = (f.client.rtt.sample(stream(f.seed, "rtt"), n) / 2).tolist()
        self.timeout = f.server.connect_timeout
        self.refuse_full = f.server.on_full == "refuse"
        self.refuse_down = f.server.while_down == "refuse"
        self.backlog = f.server.backlog
        self.max_attempts = f.policy.max_attempts or math.inf
        self.delays = _Delays(f.policy, n, f.seed)
        self.detect = silent_detection(f.client.scenario(f.name), f.client.rtt.mean)
        self.detect_rng = stream(f.seed, "detect")
        self.balance = Uniforms(stream(f.seed, "balance"))
        self.servers = [_Server(f.server.workers) for _ in range(s)]
        self.resumable = stream(f.seed, "tls").random(n) < f.server.resumable
        self.unit = unit = f.server.workers / f.server.handshake_rate
        self.service = np.where(self.resumable, unit * f.server.resume_cost, unit).tolist()
        # client state
        self.server = [i % s for i in range(n)]
        for i in range(n):
            self.servers[i % s].admitted[i] = -1
        self.episode = [-1] * n  # disconnections so far, minus one
        self.tries = [0] * n  # failed attempts in the current disconnection
        self.token = [0] * n  # bumped when a scheduled attempt is called off
        self.current = [-1] * n  # the client's latest attempt (index into the attempt records)
        self.opened = [-math.inf] * n  # when the current (or last) connection opened
        self.gap = [-1] * n  # the current disconnection (index into the gap records)
        self.path_until = [0.0] * n  # the client's network is down until then (blip)
        self.due: dict[float, list] = {}  # scheduled attempts: time -> [(client, token)]
        self.calendar: list[float] = []  # a heap of the times in ``due``
        # records: attempts, disconnections (gaps)
        self.a_time, self.a_done = array("d"), array("d")
        self.a_client, self.a_server, self.a_try = array("l"), array("l"), array("l")
        self.a_out = array("b")
        self.g_client, self.g_start, self.g_end = array("l"), array("d"), array("d")
        self.g_prev, self.g_gave_up, self.g_notice = array("d"), array("b"), array("d")

    # -- scheduling ---------------------------------------------------------------------

    def _at(self, t: float, fn, *args) -> None:
        if t < self.horizon:
            now = self.env.now
            self.env.schedule(Call(fn, args), NORMAL, t - now if t > now else 0.0)

    def _schedule(self, i: int, t: float) -> None:
        """Client ``i`` attempts at ``t``: joins the group due then, or starts one."""
        if t >= self.horizon:
            return
        group = self.due.get(t)
        if group is None:
            self.due[t] = [(i, self.token[i])]
            heapq.heappush(self.calendar, t)
        else:
            group.append((i, self.token[i]))

    def _dispatch(self):
        """The SimPy process that runs the clients' attempts between the servers' events.

        Attempts wait in a calendar (a heap of times, a group of clients per time);
        everything due before the next event of the SimPy model (a server going down or
        coming back, the blip) runs in time order, then the process sleeps until that
        event. At a tie the server's event comes first.
        """
        env, calendar, horizon = self.env, self.calendar, self.horizon
        while True:
            limit = min(env.peek(), horizon)
            while calendar and calendar[0] < limit:
                self._attempts(heapq.heappop(calendar))
            if limit >= horizon:
                return
            yield env.timeout(limit - env.now)

    # -- the trigger ----------------------------------------------------------------------

    def _start(self) -> None:
        f = self.fleet
        for s, down, up in f.server_outages():
            self._at(down, self._shutdown, s)
            self._at(up, self._startup, s)
        if f.trigger.kind == "blip":
            rng = stream(f.seed, "blip")
            count = round(f.trigger.fraction * self.n)
            hit = np.sort(rng.permutation(self.n)[:count]).tolist()
            for i in hit:
                self.path_until[i] = f.trigger.duration
            self._at(0.0, self._drop, hit)

    def _notice(self, clients: list[int]) -> list[float]:
        """How long each client takes to notice its connection is gone."""
        if self.fleet.trigger.notice == "close":
            return [self.half[i] for i in clients]
        return self.detect.sample(len(clients), self.detect_rng).tolist()

    def _drop(self, clients: list[int]) -> None:
        for i, notice in zip(clients, self._notice(clients), strict=True):
            self.servers[self.server[i]].admitted.pop(i, None)
            self._disconnect(i, notice)

    def _shutdown(self, s: int) -> None:
        srv, now = self.servers[s], self.env.now
        srv.up = False
        # the work it will not do: clip the handshakes in progress or queued (starts never
        # decrease, so every handshake still running started less than one service time ago)
        for k in range(len(srv.busy_end) - 1, -1, -1):
            if srv.busy_start[k] < now - self.unit:
                break
            if srv.busy_end[k] > now:
                srv.busy_end[k] = max(now, srv.busy_start[k])
        connected = []
        for i, idx in srv.admitted.items():
            if idx != self.current[i]:
                continue  # the client has moved on (its attempt here failed)
            if idx < 0 or (self.a_out[idx] == CONNECTED and self.a_done[idx] <= now):
                connected.append(i)
            elif self.a_done[idx] > now:  # waiting or in service: reset
                self._reset(i, idx, now + self.half[i])
        srv.admitted.clear()
        srv.starts.clear()
        for i, notice in zip(connected, self._notice(connected), strict=True):
            self._disconnect(i, notice)

    def _startup(self, s: int) -> None:
        srv = self.servers[s]
        srv.up = True
        srv.free = [self.env.now] * len(srv.free)

    # -- a client ---------------------------------------------------------------------------

    def _disconnect(self, i: int, notice: float) -> None:
        now = self.env.now
        self.episode[i] += 1
        self.tries[i] = 0
        self.gap[i] = len(self.g_client)
        self.g_client.append(i)
        self.g_start.append(now)
        self.g_end.append(math.inf)
        self.g_prev.append(self.opened[i])
        self.g_gave_up.append(0)
        self.g_notice.append(notice)
        self._schedule(i, now + notice + self.delays.get(self.episode[i], i, 1))

    def _reset(self, i: int, idx: int, when: float) -> None:
        """The server went down under attempt ``idx``: it fails at ``when`` instead."""
        if self.a_out[idx] == CONNECTED:  # undo the connection it would have made
            self.g_end[self.gap[i]] = math.inf
            self.opened[i] = self.g_prev[self.gap[i]]
        else:  # a timeout: call off the attempt that would have followed it
            self.tries[i] -= 1
            self.g_gave_up[self.gap[i]] = 0
            self.token[i] += 1
        self.a_out[idx] = RESET
        self.a_done[idx] = when
        self._fail(i, when)

    def _fail(self, i: int, when: float) -> None:
        """Attempt failed at ``when``: give up, or schedule the next one."""
        self.tries[i] += 1
        if self.tries[i] >= self.max_attempts:
            self.g_gave_up[self.gap[i]] = 1
            return
        self._schedule(i, when + self.delays.get(self.episode[i], i, self.tries[i] + 1))

    def _attempts(self, t: float) -> None:
        """The attempts due now: each one's outcome, in order of arrival."""
        servers, token, half = self.servers, self.token, self.half
        one = len(servers) == 1
        for i, tok in self.due.pop(t):
            if tok != token[i]:
                continue  # called off
            now = t
            idx = len(self.a_time)
            self.current[i] = idx
            s = 0 if one else self._pick()
            self.a_time.append(now)
            self.a_client.append(i)
            self.a_server.append(s)
            self.a_try.append(self.tries[i] + 1)
            srv = servers[s]
            if self.path_until[i] > now:
                code, done = PATH_DOWN, now + self.timeout
            elif not srv.up:
                if self.refuse_down:
                    code, done = REFUSED_DOWN, now + 2 * half[i]
                else:
                    code, done = DROPPED_DOWN, now + self.timeout
            else:
                arrive = now + half[i]
                starts = srv.starts
                while starts and starts[0] <= arrive:
                    starts.popleft()
                free = srv.free
                if free[0] > arrive and len(starts) >= self.backlog:
                    if self.refuse_full:
                        code, done = REFUSED_FULL, now + 2 * half[i]
                    else:
                        code, done = DROPPED_FULL, now + self.timeout
                else:
                    ready = heapq.heappop(free)
                    start = ready if ready > arrive else arrive
                    finish = start + self.service[i]
                    heapq.heappush(free, finish)
                    if start > arrive:
                        starts.append(start)
                        if len(starts) > srv.peak:
                            srv.peak = len(starts)
                    srv.busy_start.append(start)
                    srv.busy_end.append(finish)
                    srv.admitted[i] = idx
                    done = finish + half[i]
                    code = CONNECTED
                    if done > now + self.timeout:
                        code, done = QUEUE_TIMEOUT, now + self.timeout
            self.a_out.append(code)
            self.a_done.append(done)
            if code == CONNECTED:
                self.server[i] = s
                self.opened[i] = done
                self.g_end[self.gap[i]] = done
            else:
                self._fail(i, done)

    def _pick(self) -> int:
        """The load balancer: a random server that is up (any, if none is)."""
        servers = self.servers
        up = [s for s, srv in enumerate(servers) if srv.up] or list(range(len(servers)))
        return up[int(self.balance() * len(up))]

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> StormResult:
        started = time.perf_counter()
        self._start()
        self.env.process(self._dispatch())
        self.env.run(until=self.horizon)
        return _result(self, time.perf_counter() - started)


def simulate_fleet(fleet: Fleet) -> StormResult:
    """Run the fleet's reconnect storm through the model."""
    return FleetModel(fleet).run()


# -- figures ---------------------------------------------------------------------------------


def _bins(horizon: float, width: float) -> np.ndarray:
    return (
        np.arange(0.0, horizon + width * 1e-9, width)
        if width < horizon
        else np.array([0.0, horizon])
    )


def _count(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(times, bins=edges)[0] if len(edges) > 1 else np.zeros(0, int)


def _busy_integral(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Total busy time before each of ``at``: sum of |[s, e) intersected with (-inf, t)|."""
    s, e = np.sort(starts), np.sort(ends)
    cs, ce = np.concatenate([[0.0], np.cumsum(s)]), np.concatenate([[0.0], np.cumsum(e)])
    ks, ke = np.searchsorted(s, at), np.searchsorted(e, at)
    return (ks * at - cs[ks]) - (ke * at - ce[ke])


def _quantile_time(final: np.ndarray, q: float) -> float | None:
    """When a share ``q`` of the affected clients had connected for good (None: not by the horizon)."""
    if len(final) == 0:
        return 0.0
    k = max(1, math.ceil(q * len(final) - 1e-9))
    value = float(np.sort(final)[k - 1])
    return value if math.isfinite(value) else None


def _result(m: FleetModel, wall: float) -> StormResult:
    f = m.fleet
    n, horizon = m.n, m.horizon
    a_time = np.asarray(m.a_time, dtype=float)
    a_done = np.asarray(m.a_done, dtype=float)
    a_out = np.asarray(m.a_out, dtype=np.int8)
    a_client = np.asarray(m.a_client, dtype=np.int64)
    g_client = np.asarray(m.g_client, dtype=np.int64)
    g_start = np.asarray(m.g_start, dtype=float)
    g_end = np.asarray(m.g_end, dtype=float)
    g_end = np.where(g_end <= horizon, g_end, np.inf)  # resumed within the horizon, or not
    # a client that gave up did so when its last attempt failed (if that is within the horizon)
    current = np.asarray(m.current, dtype=np.int64)
    last_gap = np.full(n, -1, dtype=np.int64)
    last_gap[g_client] = np.arange(len(g_client))  # later gaps overwrite earlier ones
    quit_at = np.full(len(g_client), np.inf)
    flagged = np.flatnonzero(np.asarray(m.g_gave_up, dtype=bool))
    quit_at[flagged] = a_done[current[g_client[flagged]]]
    g_gave_up = quit_at <= horizon
    gaps = replay.Gaps(g_client, g_start, g_end, g_gave_up, np.asarray(m.g_prev, dtype=float))
    edges = _bins(horizon, f.bin)
    acct = replay.account(
        gaps, n, horizon, f.messages, f.resume, stream(f.seed, "messages"), edges[1:]
    )

    # each client at the horizon
    affected = last_gap >= 0
    lg = last_gap[affected]
    state = np.zeros(n, dtype=np.int8)  # 0 connected, 1 reconnecting, 2 gave up
    state[affected] = np.where(np.isfinite(g_end[lg]), 0, np.where(g_gave_up[lg], 2, 1))
    last_connected = np.full(n, np.nan)
    last_connected[affected] = g_end[lg]
    final = np.where(state[affected] == 0, g_end[lg], np.inf)

    # timeline
    width = np.diff(edges)
    left, right = edges[:-1], edges[1:]
    attempts = _count(a_time, edges)
    downs = np.searchsorted(np.sort(g_start), right, side="right")
    ups = np.searchsorted(np.sort(g_end[np.isfinite(g_end)]), right, side="right")
    connected = n - downs + ups
    gave_up = np.searchsorted(np.sort(quit_at[g_gave_up]), right, side="right")
    starts = np.concatenate([np.asarray(s.busy_start) for s in m.servers] + [np.zeros(0)])
    ends = np.concatenate([np.asarray(s.busy_end) for s in m.servers] + [np.zeros(0)])
    capacity = f.server.servers * f.server.workers
    # busy time per bin (clipped: differences of large sums carry rounding errors)
    busy = np.clip(np.diff(_busy_integral(starts, ends, edges)), 0.0, width * capacity)
    utilisation = busy / (width * capacity)
    buffer = acct.level
    params = {
        "fleet": f.name,
        "policy": f.policy.name,
        "trigger": f.trigger.kind,
        "seed": f.seed,
    } | {f"param.{k}": _plain(v) for k, v in flatten(to_dict(f)).items()}
    timeline = pd.DataFrame(
        {
            "t": left,
            "attempts": attempts,
            "attempts_per_s": attempts / width,
            "connected_attempts": _count(a_time[a_out == CONNECTED], edges),
            "refused": _count(a_time[np.isin(a_out, REFUSED)], edges),
            "timed_out": _count(a_time[np.isin(a_out, TIMED_OUT)], edges),
            "connected": connected,
            "disconnected": n - connected - gave_up,
            "gave_up": gave_up,
            "utilisation": utilisation,
            "buffer_messages": buffer,
            "buffer_bytes": buffer * f.messages.bytes,
        }
    )
    for key, value in params.items():
        timeline[key] = value

    clients = pd.DataFrame(
        {
            "client": np.arange(n),
            "disconnections": np.bincount(g_client, minlength=n),
            "attempts": np.bincount(a_client, minlength=n),
            "state": np.array(["connected", "reconnecting", "gave_up"])[state],
            "server": np.asarray(m.server),
            "last_connected": last_connected,
            "tls_resumable": m.resumable,
            "seed": f.seed,
        }
    )
    attempts_df = pd.DataFrame(
        {
            "t": a_time,
            "client": a_client,
            "server": np.asarray(m.a_server, dtype=np.int64),
            "attempt": np.asarray(m.a_try, dtype=np.int64),
            "outcome": pd.Categorical.from_codes(a_out, OUTCOMES),
            "done": a_done,
            "seed": f.seed,
        }
    )

    per_second = np.bincount(np.floor(a_time).astype(np.int64)) if len(a_time) else np.zeros(1)
    counts = np.bincount(a_out, minlength=len(OUTCOMES))
    connected_attempts = a_out == CONNECTED
    notice = np.asarray(m.g_notice, dtype=float)
    summary = {
        "scenario": f.name,
        "policy": f.policy.name,
        "trigger": f.trigger.kind,
        "clients": n,
        "clients_affected": int(affected.sum()),
        "disconnections": len(g_client),
        "notice_delay_mean_s": float(notice.mean()) if len(notice) else None,
        "attempts_total": len(a_time),
        "attempts_per_disconnection": len(a_time) / len(g_client) if len(g_client) else None,
        "peak_attempts_per_s": int(per_second.max()),
        "peak_attempts_at_s": float(np.argmax(per_second)) if len(a_time) else None,
        "attempts_connected": int(counts[CONNECTED]),
        "attempts_refused": int(counts[list(REFUSED)].sum()),
        "attempts_timed_out": int(counts[list(TIMED_OUT)].sum()),
        **{f"attempts_{name}": int(counts[k]) for k, name in enumerate(OUTCOMES) if k != CONNECTED},
        "reconnected": int((state[affected] == 0).sum()),
        "gave_up": int((state == 2).sum()),
        "still_reconnecting": int((state == 1).sum()),
        "time_to_50pct_reconnected_s": _quantile_time(final, 0.50),
        "time_to_95pct_reconnected_s": _quantile_time(final, 0.95),
        "time_to_99pct_reconnected_s": _quantile_time(final, 0.99),
        "time_to_100pct_reconnected_s": _quantile_time(final, 1.0),
        "server_utilisation_peak": float(utilisation.max()),
        "server_utilisation_mean": float(busy.sum() / (horizon * capacity)),
        "backlog_peak": max(s.peak for s in m.servers),
        "handshakes": int(counts[CONNECTED] + counts[QUEUE_TIMEOUT]),
        "handshakes_tls_resumed": int(m.resumable[a_client[connected_attempts]].sum()),
        "handshakes_wasted": int(counts[QUEUE_TIMEOUT]),
        "messages_published": acct.published,
        "messages_delivered": acct.delivered,
        "messages_replayed": acct.replayed,
        "messages_lost": acct.lost,
        "messages_pending": acct.pending,
        "messages_duplicated": acct.duplicates,
        "buffer_peak_messages": acct.peak,
        "buffer_peak_bytes": acct.peak * f.messages.bytes,
        "engine": "fleet",
        "seed": f.seed,
        "wall_s": wall,
    }
    return StormResult(summary, timeline, attempts_df, clients)


def _plain(value):
    return str(value) if isinstance(value, list | tuple) else value


def compare_policies(
    fleet: Fleet, policies: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same storm under each policy preset: (timelines stacked, one summary row per policy).

    ``policies``: preset names (default: every preset but ``custom``). Every run keeps
    the fleet's seed, so the clients notice the disconnection at the same moments.
    """
    from simlab.rules.backoff import PRESETS

    names = policies or [name for name in PRESETS if name != "custom"]
    timelines, rows = [], []
    for name in names:
        result = simulate_fleet(dataclasses.replace(fleet, policy=PRESETS[name]))
        timelines.append(result.timeline)
        rows.append(result.summary)
    return pd.concat(timelines, ignore_index=True), pd.DataFrame(rows)
