"""The user's own WebSocket stacks in the lab, observed from the wire (``--server-cmd``/``--client-cmd``).

:mod:`.run` drives simlab's own endpoints; here nothing is ours but the network. The
user's server runs in the lab's server namespace and each connection slot runs one
client process at a time in the client namespace (each process one connection, as a
slot of the model keeps one). Every command is an argument list (``shlex.split`` of the
option, placeholders filled by :func:`simlab.harness.adapters.fill`), never a shell.

Slots are told apart on the wire by their client address, as in :mod:`.run`: slot
``i``'s client connects to port ``SLOT_PORT + i``, and an nftables table in the client
namespace sends it to the server's port from the slot's own address (a mark set by
destination port picks the source), so :func:`.wire.lab_slot` maps it back.

What is injected, and what the lab does by itself:

- the peer's crash (the client): a silent crash, its packets dropped at the NAT (the
  lab's ``crashed`` set, by address and port as the wire saw them), an exponential time
  after the connection opened on the wire; the process lives on, sending nothing;
- outages: the slot's address in the lab's ``down`` set on the model's schedule;
  no new connection starts in one (the model's convention);
- the NAT's idle expiry and random loss: the lab's conntrack timeout and nftables.

A slot's connection ends when either side's FIN, RST or close frame enters the NAT,
or when the client process exits; its process is then ended (by PID) and the next
starts after the scenario's reconnect delay. The records come from the capture
(:func:`.wire.observe`) and are accounted like the model's (:mod:`.accounting`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from simlab.errors import Problem, ScenarioError
from simlab.harness import netns, wire
from simlab.harness.accounting import account
from simlab.harness.adapters import fill

SLOT_PORT = 20000  # slot i's client connects to SLOT_PORT + i (the client namespace maps it)
READY_S = 20.0  # how long a server may take to listen (Node, a cold Go binary)
TICK_S = 0.02  # the supervisor's poll (the wire is re-read every few ticks)
STARTUP_FAIL_S = 1.0  # a client that exits this soon without a connection: a bad command
PLACEHOLDERS = {"--server-cmd": ("{host}", "{port}"), "--client-cmd": ("{url}",)}


class ExternalError(ScenarioError):
    """The user's commands cannot run as asked (bad command, exits at once, not WebSocket)."""

    def __init__(self, problems: list[Problem], where: str = "simlab crosscheck"):
        super().__init__(problems, where)


def parse_command(text: str | None, option: str) -> list[str]:
    """``text`` split like a shell would (no shell runs it); its placeholders must be there."""
    if not text or not text.strip():
        raise ExternalError([Problem(option, "an empty command")])
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ExternalError([Problem(option, f"{text!r} does not split: {exc}")]) from None
    missing = [p for p in PLACEHOLDERS[option] if not any(p in a for a in argv)]
    if missing:
        need = " and ".join(PLACEHOLDERS[option])
        raise ExternalError(
            [Problem(option, f"{text!r} has no {', '.join(missing)}: the command needs {need}")]
        )
    return argv


def refusals(s) -> list[Problem]:
    """What of the scenario the user's programs cannot be checked on (key, value, allowed)."""

    def problem(key, value, allowed):
        return Problem(key, f"got {value!r}; checking your own programs needs {allowed}")

    out = []
    if s.link.transport != "tcp":
        out.append(problem("link.transport", s.link.transport, "tcp (WebSockets)"))
    if s.detector_side != "server":
        out.append(
            problem("detector.side", s.detector_side, "server: the server pings and detects")
        )
    if s.heartbeat.initiator not in ("server", "both"):
        out.append(problem("heartbeat.initiator", s.heartbeat.initiator, "server (or both)"))
    if s.peer.stall is not None:
        out.append(
            problem("peer.stall", "set", "no stalls (a process cannot be stalled from outside)")
        )
    if s.app.rate > 0:
        out.append(problem("app.rate", s.app.rate, "0 (the programs send what they send)"))
    if s.nat.idle_timeout is not None and s.nat.on_expiry != "drop":
        out.append(
            problem(
                "nat.on_expiry",
                s.nat.on_expiry,
                "drop (the NAT's own RST never enters it, so the wire cannot see the end)",
            )
        )
    if s.detector.on_declare != "reconnect":
        out.append(problem("detector.on_declare", s.detector.on_declare, "reconnect"))
    if s.heartbeat.policy.kind != "fixed":
        out.append(problem("heartbeat.policy.kind", s.heartbeat.policy.kind, "fixed"))
    out += [Problem("lab", msg) for msg in netns.NetnsBackend.refusals(s)]
    return out


def slot_rules(slots: int) -> str:
    """The client namespace's table: port SLOT_PORT + i -> the server, from slot i's address."""
    marks = ", ".join(f"{SLOT_PORT + i} : {i + 1}" for i in range(slots))
    sources = ", ".join(f"{i + 1} : {netns.slot_address(i)}" for i in range(slots))
    return f"""
table ip simlab_slots {{
  chain output {{
    type nat hook output priority -100; policy accept;
    ip daddr {netns.SERVER_IP} meta mark set tcp dport map {{ {marks} }}
    meta l4proto tcp meta mark 1-{slots} dnat to {netns.SERVER_IP}:{netns.SERVER_PORT}
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip daddr {netns.SERVER_IP} meta mark 1-{slots} snat to meta mark map {{ {sources} }}
  }}
}}
"""


class PcapTail:
    """The capture's segments as tcpdump writes them (``-U``: whole packets), read on."""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0
        self.segments: list[wire.Segment] = []
        self.decode = None
        self.nano = False

    def read(self) -> bool:
        """Append the packets written since the last call; whether there were any."""
        import dpkt

        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return False
        pos, new = 0, False
        if self.offset == 0:
            if len(data) < 24:
                return False
            magic, link = struct.unpack_from("<I", data)[0], struct.unpack_from("<I", data, 20)[0]
            self.nano = magic == 0xA1B23C4D
            self.decode = wire.DECODERS.get(link)
            pos = 24
        while len(data) - pos >= 16:
            sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
            if len(data) - pos - 16 < incl:
                break
            seg = wire.decode_segment(
                sec + usec / (1e9 if self.nano else 1e6),
                data[pos + 16 : pos + 16 + incl],
                self.decode,
                dpkt,
            )
            if seg is not None:
                self.segments.append(seg)
                new = True
            pos += 16 + incl
        self.offset += pos
        return new


@dataclass(eq=False)
class Slot:
    index: int
    origin: float
    proc: subprocess.Popen | None = None
    started: float = math.nan  # wall clock of the process's start
    conn: wire.WireConn | None = None
    crash_at: float | None = None  # run time
    crashed: bool = False
    idle_until: float = 0.0
    starts: int = 0
    quick_exits: int = 0
    done: bool = False
    crash_draws: object = None
    outages: object = None
    outage_on: bool = False
    err: str = ""  # the current process's stderr file
    breaks: list = field(default_factory=list)  # (client isn, run time)


class ExternalRun:
    """One run of the user's server and clients on the (scaled) scenario; :meth:`run`."""

    def __init__(self, scenario, server_argv: list[str], client_argv: list[str], progress=None):
        self.s = scenario
        self.server_argv = server_argv
        self.client_argv = client_argv
        self.progress = progress
        self.procs: list[subprocess.Popen] = []
        self.events: list[tuple] = []
        self.lab = None
        self.capture = None
        self.server = None
        self.server_err = None
        self.extra_ends: dict[int, tuple] = {}  # client ISN -> the server's close (see _step)
        self.sockets: dict = {}
        self.polls: list[float] = []  # run times of the server-socket polls

    # -- processes, every one ended by its PID -------------------------------------------------

    def _spawn(self, role: str, argv: list[str], stderr) -> subprocess.Popen:
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.lab.ns[role], *argv],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                preexec_fn=wire._die_with_parent, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise ExternalError([Problem(f"--{role}-cmd", f"cannot start: {exc}")]) from None
        self.procs.append(proc)
        return proc

    @staticmethod
    def _end(proc: subprocess.Popen) -> None:
        """End a process we started, and the children it started (its own process group,
        whose id is its PID: ``npm start`` leaves a node behind otherwise), while it lives."""
        if proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def _server_listening(self) -> bool:
        """The server's namespace has a socket listening on the server port (no traffic sent)."""
        port = f"{netns.SERVER_PORT:04X}"
        try:
            with open(f"/proc/{self.server.pid}/net/tcp") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            return False
        return any(r.split()[1].endswith(":" + port) and r.split()[3] == "0A" for r in rows)

    def _server_sockets(self) -> dict[tuple[str, int], str]:
        """The server namespace's TCP sockets: (remote address hex, port) -> state (hex).

        Read from ``/proc/PID/net/tcp{,6}`` of the server process (its namespace's table);
        an IPv6 socket's v4-mapped address is keyed by its last 8 hex digits."""
        out = {}
        for name in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{self.server.pid}/net/{name}") as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                addr, port = cols[2].split(":")
                out[(addr[-8:], int(port, 16))] = cols[3]
        return out

    def _tail(self, path: str, n: int = 6) -> str:
        try:
            with open(path, errors="replace") as f:
                lines = [x.strip() for x in f.read().splitlines() if x.strip()]
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    # -- the run ---------------------------------------------------------------------------------

    def run(self):
        from simlab.engines.network import DownPeriods
        from simlab.rng import stream
        from simlab.scenario.distributions import Exponential, Sampler

        s = self.s
        n = s.connections
        workdir = self.workdir = tempfile.mkdtemp(prefix="simlab-external-")
        self.server_err = os.path.join(workdir, "server.err")
        started = time.perf_counter()
        nat_s = netns.NetnsBackend.nat_seconds(s)
        slots: list[Slot] = []
        t0 = time.monotonic()
        finished, obs = False, None
        try:
            self.lab = netns.Lab(n, nat_s, s.link.up.loss.p, s.link.down.loss.p, s.nat.on_expiry)
            self.lab.run("client", "nft", "-f", "-", stdin=slot_rules(n))
            self.capture = wire.Capture(self.lab.ns["nat"], workdir)
            self.capture.start()
            self._start_server()
            tail = PcapTail(self.capture.pcap)
            t0 = self.t0 = time.monotonic()
            slots = []
            for i in range(n):
                slot = Slot(i, s.heartbeat.interval * i / n)
                slot.idle_until = slot.origin
                if s.peer.crash:
                    slot.crash_draws = Sampler(
                        Exponential(s.peer.crash.mtbf), stream(s.seed, i, "crash"), 16
                    )
                o = s.link.outages
                if o:
                    slot.outages = DownPeriods(
                        o.mtbf, o.duration, s.horizon, stream(s.seed, i, "outages")
                    )
                slots.append(slot)
            self._supervise(slots, tail, t0)
            finished = True
        finally:
            try:
                for proc in reversed(self.procs):
                    self._end(proc)
                if self.capture is not None:
                    self.capture.stop()
                if finished:
                    obs = self._observe(slots, t0)
            finally:
                if self.lab is not None:
                    self.lab.close()
                if self.capture is not None:
                    self.capture.remove()
                shutil.rmtree(workdir, ignore_errors=True)
        return self._result(obs, slots, started, nat_s)

    def _start_server(self) -> None:
        argv = fill(self.server_argv, host=netns.SERVER_IP, port=netns.SERVER_PORT)
        with open(self.server_err, "w") as err:
            self.server = self._spawn("server", argv, err)
        deadline = time.monotonic() + READY_S
        while not self._server_listening():
            if self.server.poll() is not None:
                raise ExternalError(
                    [
                        Problem(
                            "--server-cmd",
                            f"{shlex.join(argv)} exited at once (exit code "
                            f"{self.server.returncode}) without listening on "
                            f"{netns.SERVER_IP}:{netns.SERVER_PORT}: {self._tail(self.server_err)}",
                        )
                    ]
                )
            if time.monotonic() > deadline:
                raise ExternalError(
                    [
                        Problem(
                            "--server-cmd",
                            f"{shlex.join(argv)} did not listen on {{host}} {{port}} "
                            f"({netns.SERVER_IP}:{netns.SERVER_PORT}) within {READY_S:g} s",
                        )
                    ]
                )
            time.sleep(0.05)

    def _nft(self, verb: str, table_set: str, element: str) -> None:
        self.lab.run("nat", "nft", verb, "element", "ip", netns.TABLE, table_set, "{", element, "}")

    def _supervise(self, slots: list[Slot], tail: PcapTail, t0: float) -> None:
        s = self.s
        wall0 = self.capture.wall_minus_mono + t0  # capture (wall) time of run time 0
        ticks = 0
        while True:
            now = time.monotonic() - t0
            if tail.read() or ticks % 5 == 0:
                conns = wire.number_by_slot(wire.connections(tail.segments))
            ticks += 1
            self.sockets = self._server_sockets()
            self.polls.append(now)
            latest: dict[int, wire.WireConn] = {}
            for c in conns:
                latest[c.slot] = c
            total = max(x.origin for x in slots) + s.horizon
            if self.progress is not None and ticks % 25 == 0:
                with contextlib.suppress(Exception):
                    self.progress(min(now, total), total)
            if self.server.poll() is not None:
                raise ExternalError(
                    [
                        Problem(
                            "--server-cmd",
                            f"the server exited during the run (exit code "
                            f"{self.server.returncode}): {self._tail(self.server_err)}",
                        )
                    ]
                )
            if all(x.done for x in slots):
                if self.progress is not None:
                    with contextlib.suppress(Exception):
                        self.progress(total, total)
                return
            for slot in slots:
                if not slot.done:
                    self._step(slot, latest.get(slot.index), now, wall0)
            time.sleep(TICK_S)

    def _outage(self, slot: Slot, now: float) -> float | None:
        """The end (run time) of the slot's outage at ``now``, toggling the lab's rule."""
        if slot.outages is None:
            return None
        end = slot.outages.end_if_down(now - slot.origin)
        down = end is not None
        if down != slot.outage_on:
            self._nft("add" if down else "delete", "down", netns.slot_address(slot.index))
            self.events.append(
                (slot.index, 0, now, "outage_start" if down else "outage_end", None, None)
            )
            slot.outage_on = down
        return None if end is None else end + slot.origin

    def _step(self, slot: Slot, conn: wire.WireConn | None, now: float, wall0: float) -> None:
        s = self.s
        i = slot.index
        end_of_run = slot.origin + s.horizon
        outage_end = self._outage(slot, now)
        if now >= end_of_run:
            if slot.proc is not None:
                self._end(slot.proc)
            if slot.outage_on:
                self._nft("delete", "down", netns.slot_address(i))
            slot.done = True
            return
        if slot.proc is None:
            if now >= slot.idle_until and outage_end is None:
                url = f"ws://{netns.SERVER_IP}:{SLOT_PORT + i}/"
                # stderr to a file: a pipe nobody reads would block a chatty client
                slot.err = os.path.join(self.workdir, f"client-{i}.err")
                with open(slot.err, "w") as err:
                    slot.proc = self._spawn("client", fill(self.client_argv, url=url), err)
                slot.started = wall0 + now
                slot.conn, slot.crash_at, slot.crashed = None, None, False
                slot.starts += 1
            return
        if conn is not None and conn.syn >= slot.started - 0.01:
            slot.conn = conn
        conn = slot.conn
        exited = slot.proc.poll() is not None
        quick = now - (slot.started - wall0) < STARTUP_FAIL_S
        if exited and quick and (conn is None or conn.opened is None):
            slot.quick_exits += 1
            if slot.quick_exits >= 3:
                raise ExternalError(
                    [
                        Problem(
                            "--client-cmd",
                            f"{shlex.join(self.client_argv)} exited at once (exit code "
                            f"{slot.proc.returncode}) three times without a WebSocket "
                            f"connection: {self._tail(slot.err, 4)}",
                        )
                    ]
                )
        if conn is not None and conn.kind in ("tls", "http", "other", "refused"):
            raise ExternalError(
                [Problem("--client-cmd" if conn.kind != "refused" else "--server-cmd", conn.note)]
            )
        ended = exited or (conn is not None and bool(conn.ends))
        if not ended and conn is not None and conn.opened is not None and conn.nat_client:
            # The server closed its socket: its FIN may wait behind data a silent peer
            # never acknowledges (cwnd 1 after a timeout), so the wire need not show it.
            key = (_hex_ip(conn.nat_client[0]), conn.nat_client[1])
            # ESTABLISHED, or CLOSE_WAIT / LAST_ACK: the client closed first (on the wire)
            if self.sockets.get(key) not in ("01", "08", "09") and len(self.polls) > 1:
                prev = self.polls[-2]
                self.extra_ends[conn.isn] = (wall0 + (prev + now) / 2, "server", "fin")
                ended = True
        if not ended and conn is not None and conn.opened is not None:
            if slot.crash_draws is not None and slot.crash_at is None:
                slot.crash_at = conn.opened - wall0 + slot.crash_draws()
            if slot.crash_at is not None and not slot.crashed and now >= slot.crash_at:
                self._nft("add", "crashed", f"{conn.client[0]} . {conn.client[1]}")
                slot.crashed = True  # broken once the rule is in: as run.py records a crash
                slot.breaks.append((conn.isn, time.monotonic() - self.t0))
            return
        if not ended:
            return
        self._end(slot.proc)
        if slot.crashed and conn is not None:
            self._nft("delete", "crashed", f"{conn.client[0]} . {conn.client[1]}")
        last = max([t for t, _, _ in conn.ends], default=wall0 + now) if conn else wall0 + now
        slot.proc = None
        slot.idle_until = max(now, last - wall0) + s.reconnect.delay

    def _observe(self, slots, t0):
        cap = self.capture
        origins = [x.origin for x in slots]
        return wire.observe(
            cap.segments(),
            cap.conntrack_lines(),
            shift=cap.wall_minus_mono + t0,
            origins=origins,
            horizon=self.s.horizon,
            nat_timeout=netns.NetnsBackend.nat_seconds(self.s),
            extra_ends=self.extra_ends,
        ), origins

    def _result(self, observed, slots, started, nat_s):
        from simlab.harness.run import HarnessResult, _p99

        if observed is None:
            raise ExternalError([Problem("capture", "the wire capture could not be read")])
        obs, origins = observed
        s = self.s
        by_isn = {c.isn: c for c in obs.conns}
        events = list(obs.events)
        for slot in slots:
            for isn, t in slot.breaks:
                c = by_isn.get(isn)
                if c is not None:
                    events.append((c.slot, c.number, t - origins[c.slot], "break", "crash", None))
        events += [(e[0], e[1], e[2] - origins[e[0]], *e[3:]) for e in self.events]
        opened = [c for c in obs.conns if c.opened is not None]
        if not opened:
            notes = "; ".join(obs.notes[:3]) or "no WebSocket upgrade was seen on the wire"
            raise ExternalError(
                [Problem("--client-cmd", f"no WebSocket connection opened: {notes}")]
            )
        summary, records = account(s, events, obs.nat)
        summary["engine"] = "harness-external"
        summary["policy"] = "external"
        summary["wall_s"] = time.perf_counter() - started
        # The clock's resolution: how far the server's pings strayed from its interval
        # (its timers, as the wire saw them) plus the path's round trip.
        late = []
        for c in opened:
            # steady state only: consecutive server pings with the first one's pong between
            # them (a library may reschedule around a missing pong; that is not lateness)
            pongs = [f.t for side, f in c.frames if side == "client" and f.opcode == wire.PONG]
            pings = [f.t for side, f in c.frames if side == "server" and f.opcode == wire.PING]
            for a, b in zip(pings, pings[1:], strict=False):
                if any(a < t < b for t in pongs):
                    late.append(abs(b - a - s.heartbeat.interval))
        pong = records[records.event == "pong"]["value"].astype(float)
        rtts = sorted(pong.tolist())
        rtt = rtts[len(rtts) // 2] if rtts else 0.0
        # a close seen only in the server's socket table is known to half a poll gap
        gaps = [b - a for a, b in zip(self.polls, self.polls[1:], strict=False)]
        resolution = max(0.001, _p99(late) + 2 * rtt + (_p99(gaps) / 2 if self.extra_ends else 0))
        info = {
            "backend": "netns",
            "policy": "external",
            "rtt_s": rtt,
            "resolution_s": resolution,
            "timer_lateness_s": _p99(late),
            "loop_rtt_s": 0.0,
            "reconnect_lag_s": 0.0,
            "kernel_nat_timeout_s": nat_s,
            "notes": list(dict.fromkeys(obs.notes))[:10],
            "client_starts": sum(x.starts for x in slots),
        }
        return HarnessResult(summary, records, info)


def _hex_ip(address: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it (the 32-bit word in host order, hex)."""
    import socket

    return f"{struct.unpack('=I', socket.inet_aton(address))[0]:08X}"


def run_external(scenario, server_argv, client_argv, progress=None):
    """Run the scaled ``scenario`` with the user's programs; a :class:`.run.HarnessResult`.

    SIGINT/SIGTERM (as KeyboardInterrupt) end it like any error: every process by its
    PID, the capture, and the namespaces."""
    reason = wire.unavailable_reason()
    if reason:
        raise ExternalError(
            [Problem("--server-cmd", f"the user's programs run in the netns lab: {reason}")]
        )
    return ExternalRun(scenario, server_argv, client_argv, progress).run()
