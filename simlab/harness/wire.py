"""Observation from the wire: the harness's event records read off captured packets.

To check a stack simlab did not write (gorilla, Node ws, a browser) nothing may be
instrumented, so this module watches the NAT namespace instead: ``tcpdump -i any
-Q in`` records every TCP segment as it *enters* the NAT (from either side, before
nftables may drop it), and ``conntrack -E`` prints the NAT's own mapping events.
From those it rebuilds the records :mod:`.run` writes (open, ping, pong, declare,
close) and the NAT refresh log :mod:`.accounting` reads expiry off, so today's
accounting and statistical tests apply unchanged.

Why these tools: tcpdump (Debian ``tcpdump``) is the standard capture, writes plain
pcap and filters in the kernel; ``dpkt`` (PyPI) parses pcap, Linux cooked headers,
IP and TCP in small pure Python, 15-40 times faster than scapy, which builds a
rich object per layer we would not use (6,800 segments to tuples: 0.07 s against
1.3-2.6 s, measured once here). TCP reassembly (by sequence number, so a
retransmitted segment is counted once) and the RFC 6455 frame headers over the
reassembled stream are ours: they are small, and no well-kept Python library
follows a WebSocket stream across segments.

What the wire cannot say, and how it is reported rather than guessed: TLS
(``wss://``) or a connection that never upgrades to WebSocket yields only TCP
facts (open, FIN/RST, NAT mapping), with a note (:attr:`WireConn.note`). Why an
endpoint ended a connection is not on the wire either: a FIN or a close frame is
reported as a ``detector`` declaration, an endpoint's RST as ``reset``; an RST the
NAT itself sends (``on_expiry: reset``) does not enter the NAT, so it is not seen,
and TCP giving up (``tcp_timeout``) sends nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from simlab.harness import netns

MOD32 = 1 << 32
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child only calls it
OP_NAMES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}
PING, PONG, CLOSE = 0x9, 0xA, 0x8
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def unavailable_reason() -> str | None:
    """Why wire observation cannot run here (after the netns backend's own reasons), or None."""
    reason = netns.unavailable_reason()
    if reason:
        return reason
    for tool, package in (("tcpdump", "tcpdump"), ("conntrack", "conntrack")):
        if shutil.which(tool) is None:
            return f"wire observation needs `{tool}` (Debian package {package})"
    try:
        import dpkt  # noqa: F401
    except ImportError:
        return "wire observation needs the Python package dpkt (pip install dpkt)"
    return None


# -- TCP: one direction's byte stream, by sequence number ---------------------------------


class Reassembler:
    """One direction of a TCP connection: segments in, the byte stream out, in order, once.

    Offsets count from the SYN's sequence number (modulo 2**32). A segment wholly
    before what was delivered is a retransmission and is dropped (counted); one that
    overlaps is trimmed; one beyond a gap waits until the gap is filled, and its
    bytes are then delivered at the time of the segment that filled it (when a
    receiver could have read them).
    """

    def __init__(self, isn: int):
        self.base = (isn + 1) % MOD32  # the SYN takes one sequence number
        self.delivered = 0
        self.pending: dict[int, bytes] = {}
        self.retransmitted = 0  # segments whose every byte was already delivered

    def feed(self, seq: int, data: bytes, t: float) -> list[tuple[bytes, float]]:
        if not data:
            return []
        offset = (seq - self.base) % MOD32
        if offset >= MOD32 // 2:  # before the stream's start: a stale segment
            self.retransmitted += 1
            return []
        if offset + len(data) <= self.delivered:
            self.retransmitted += 1
            return []
        if offset > self.delivered:
            if len(data) > len(self.pending.get(offset, b"")):
                self.pending[offset] = data
            return []
        out = [(data[self.delivered - offset :], t)]
        self.delivered = offset + len(data)
        while self.pending:  # what waited behind the gap
            ready = [o for o in self.pending if o <= self.delivered]
            if not ready:
                break
            for o in sorted(ready):
                chunk = self.pending.pop(o)
                if o + len(chunk) > self.delivered:
                    out.append((chunk[self.delivered - o :], t))
                    self.delivered = o + len(chunk)
        return out


# -- WebSocket: RFC 6455 frame headers over the stream ------------------------------------


@dataclass
class Frame:
    """One WebSocket frame's header, and when it entered the NAT.

    ``t``: a control frame's last byte (it is acted on whole); a data frame's header.
    """

    t: float
    opcode: int
    fin: bool
    masked: bool
    length: int
    payload: bytes = b""  # control frames only (at most 125 bytes), unmasked
    code: int | None = None  # a close frame's status code, if it has one

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.opcode, f"reserved-{self.opcode:#x}")


class FrameReader:
    """Frames out of one direction's reassembled bytes; data payloads are skipped, not kept."""

    def __init__(self):
        self.buf = bytearray()
        self.skip = 0  # payload bytes of the current data frame still to pass
        self.errors: list[str] = []

    def feed(self, data: bytes, t: float) -> list[Frame]:
        frames: list[Frame] = []
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
        self.buf += data
        while not self.skip:
            frame, used = self._header(t)
            if frame is None:
                break
            frames.append(frame)
            del self.buf[:used]
        return frames

    def _header(self, t: float) -> tuple[Frame | None, int]:
        buf = self.buf
        if len(buf) < 2:
            return None, 0
        b0, b1 = buf[0], buf[1]
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None, 0
            (n,) = struct.unpack_from("!H", buf, 2)
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None, 0
            (n,) = struct.unpack_from("!Q", buf, 2)
            pos = 10
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None, 0
            key = bytes(buf[pos : pos + 4])
            pos += 4
        if opcode < 0x8:  # a data frame: note it once the header is in, skip its payload
            take = min(n, len(buf) - pos)
            self.skip = n - take
            return Frame(t, opcode, fin, masked, n), pos + take
        if n > 125 or not fin:
            self.errors.append(
                f"a {OP_NAMES.get(opcode, hex(opcode))} frame of {n} bytes (fin={fin})"
            )
        if len(buf) < pos + n:
            return None, 0
        payload = bytes(buf[pos : pos + n])
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frame = Frame(t, opcode, fin, masked, n, payload)
        if opcode == CLOSE and n >= 2:
            (frame.code,) = struct.unpack_from("!H", payload)
        return frame, pos + n


def _is_tls_hello(data: bytes) -> bool:
    return len(data) >= 3 and data[0] == 0x16 and data[1] == 0x03 and data[2] <= 0x04


# -- one TCP connection as the NAT saw it --------------------------------------------------


@dataclass(eq=False)
class WireConn:
    """One TCP connection, both directions, joined by the client's initial sequence number."""

    client: tuple[str, int]
    server: tuple[str, int]
    syn: float  # the client's first SYN
    isn: int
    up: Reassembler = None  # client -> server
    down: Reassembler | None = None  # server -> client, from the SYN-ACK on
    kind: str = "no-data"  # websocket | tls | http | other | no-data | refused
    note: str = ""
    opened: float | None = None  # the server's 101 entered the NAT
    frames: list = field(default_factory=list)  # (side, Frame), in arrival order per side
    ends: list = field(default_factory=list)  # (t, side, "fin" | "rst" | "close")
    packets: list = field(default_factory=list)  # every segment's time: the NAT's refresh log
    slot: int | None = None
    number: int = 0
    nat_client: tuple[str, int] | None = None  # the client's address as the server sees it
    truncated: int = 0  # segments the capture cut short
    _head: dict = field(default_factory=lambda: {"client": b"", "server": b""})
    _readers: dict = field(
        default_factory=lambda: {"client": FrameReader(), "server": FrameReader()}
    )

    @property
    def retransmitted(self) -> int:
        return self.up.retransmitted + (self.down.retransmitted if self.down else 0)

    def bytes_in(self, side: str, data: bytes, t: float) -> None:
        """Reassembled bytes from ``side``: the HTTP upgrade first, then frames."""
        if self.kind in ("tls", "http", "other", "refused"):
            return
        first = side == "client" and self.kind == "no-data" and not self._head["client"]
        if first and _is_tls_hello(data):
            self._set(
                "tls",
                "TLS (a ClientHello): only TCP open/close and the NAT mapping can be"
                " observed, not WebSocket pings, pongs or close codes; observe the stack"
                " over ws://",
            )
            return
        reader = self._readers[side]
        if self.kind != "websocket" or (side == "server" and self.opened is None):
            head = self._head[side] + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head[side] = head[:65536]
                if len(head) > 65536 or (head and not _looks_http(head, side)):
                    self._not_websocket(side, head)
                return
            self._head[side] = head[: end + 4]
            if not self._upgrade(side, head[: end + 4], t):
                return
            data = head[end + 4 :]
        for frame in reader.feed(data, t):
            self.frames.append((side, frame))

    def _upgrade(self, side: str, head: bytes, t: float) -> bool:
        text = head.decode("latin-1")
        first = text.split("\r\n", 1)[0]
        if side == "client":
            upgrade = re.search(r"(?im)^upgrade:\s*websocket\s*$", text)
            if not re.match(r"[A-Z]+ \S+ HTTP/1\.[01]$", first):
                self._not_websocket(side, head)
                return False
            if not upgrade:
                self._set(
                    "http",
                    f"plain HTTP ({first!r}), not a WebSocket upgrade: only TCP open/close"
                    " and the NAT mapping can be observed",
                )
                return False
            self.kind = "websocket"
            return True
        status = re.match(r"HTTP/1\.[01] (\d{3})", first)
        if status is None:
            self._not_websocket(side, head)
            return False
        if status.group(1) != "101":
            self._set(
                "refused",
                f"the server answered the upgrade with {first!r}: no WebSocket connection",
            )
            return False
        self.opened = t
        return True

    def _not_websocket(self, side: str, head: bytes) -> None:
        self._set(
            "other",
            f"the {side} sent {bytes(head[:16])!r}...: not HTTP, so not WebSocket: only TCP"
            " open/close and the NAT mapping can be observed",
        )

    def _set(self, kind: str, note: str) -> None:
        self.kind = kind
        self.note = (
            f"{self.client[0]}:{self.client[1]} -> {self.server[0]}:{self.server[1]}: {note}"
        )

    def protocol_errors(self) -> list[str]:
        """RFC 6455 rules broken: client frames unmasked, server ones masked, bad control frames."""
        out = [e for side in ("client", "server") for e in self._readers[side].errors]
        for side, f in self.frames:
            if f.masked != (side == "client"):
                out.append(f"a {f.name} frame from the {side} {'' if f.masked else 'un'}masked")
        return out

    def closes(self) -> list[tuple[float, str, str, int | None]]:
        """Every end each side put on the wire: (time, side, close|fin|rst, close code)."""
        codes = {(f.t, side): f.code for side, f in self.frames if f.opcode == CLOSE}
        return [(t, side, how, codes.get((t, side))) for t, side, how in sorted(self.ends)]

    def ended_at(self) -> tuple[float, str, str] | None:
        """The connection's first end on the wire: (time, side, how), or None."""
        ends = sorted(self.ends)
        return ends[0] if ends else None

    def events(self, horizon_end: float) -> list[tuple]:
        """This connection's records as :mod:`.run` writes them (run times, no slot shift).

        Pings count from 1 per side and connection, as the endpoints number theirs; a
        pong answers the oldest outstanding ping of the other side with its payload
        (RFC 6455 5.5.3); frames after the connection's first end are not counted. An
        end at or after ``horizon_end`` is the horizon's close, an earlier one a
        declaration (``reset`` for an endpoint's RST, else ``detector``) and the close.
        """
        slot, n = self.slot, self.number
        if self.opened is None:
            why = self.kind if self.kind in ("refused", "tls", "http", "other") else "no_upgrade"
            return [(slot, n, self.syn, "connect_failed", why, None)]
        out = [(slot, n, self.opened, "open", None, None)]
        seq = {"client": 0, "server": 0}
        waiting = {"client": [], "server": []}  # each side's unanswered pings
        end = self.ended_at()
        # frames up to the end on the wire (the endpoints log theirs until teardown, which
        # may run a little past the horizon); a connection never ended: up to the horizon
        stop = end[0] if end else horizon_end
        for side, f in sorted(self.frames, key=lambda sf: sf[1].t):
            if f.t > stop:
                break
            if f.opcode == PING:
                seq[side] += 1
                waiting[side].append((f.payload, seq[side], f.t))
                out.append((slot, n, f.t, "ping", side, seq[side]))
            elif f.opcode == PONG:
                other = "server" if side == "client" else "client"
                for i, (payload, s, sent) in enumerate(waiting[other]):
                    if payload == f.payload:
                        del waiting[other][i]
                        out.append((slot, n, f.t, "pong", s, f.t - sent))
                        break
        if end is None or end[0] >= horizon_end:
            out.append((slot, n, horizon_end, "close", "horizon", None))
        else:
            t, _, how = end
            out.append((slot, n, t, "declare", "reset" if how == "rst" else "detector", None))
            out.append((slot, n, t, "close", None, None))
        return out


def _looks_http(head: bytes, side: str) -> bool:
    if side == "server":
        return b"HTTP/1."[: len(head)] == head[:7]
    method = head.split(b" ", 1)[0]
    return len(method) <= 10 and method.isalpha() and method.isupper()


# -- from packets to connections ------------------------------------------------------------


@dataclass
class Segment:
    t: float
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    ack: int
    flags: int
    data: bytes
    missing: int = 0  # payload bytes the capture cut off (its snaplen)


# link types -> dpkt decoder names: Ethernet, Linux cooked v1 and v2 (`tcpdump -i any`)
DECODERS = {1: "ethernet.Ethernet", 113: "sll.SLL", 276: "sll2.SLL2"}


def decode_segment(ts: float, buf: bytes, decode, dpkt) -> Segment | None:
    """One captured packet as a TCP :class:`Segment` (None: not IPv4 TCP, or unreadable).

    ``decode``: a :data:`DECODERS` value for the capture's link type (None: raw IP)."""
    try:
        if decode is None:
            ip = dpkt.ip.IP(buf)
        else:
            module, name = decode.split(".")
            ip = getattr(getattr(dpkt, module), name)(buf).data
    except (dpkt.UnpackError, ValueError):
        return None
    if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
        return None
    tcp = ip.data
    src = (socket.inet_ntoa(ip.src), tcp.sport)
    dst = (socket.inet_ntoa(ip.dst), tcp.dport)
    missing = ip.len - ip.hl * 4 - tcp.off * 4 - len(tcp.data)
    return Segment(float(ts), src, dst, tcp.seq, tcp.ack, tcp.flags, bytes(tcp.data), missing)


def read_pcap(fileobj) -> list[Segment]:
    """The TCP segments in a pcap (Ethernet, Linux cooked v1/v2 or raw IP), by capture time."""
    import dpkt

    reader = dpkt.pcap.Reader(fileobj)
    decode = DECODERS.get(reader.datalink())
    out = []
    for ts, buf in reader:
        seg = decode_segment(ts, buf, decode, dpkt)
        if seg is not None:
            out.append(seg)
    out.sort(key=lambda s: s.t)  # `-i any` interleaves interfaces; stable otherwise
    return out


def connections(segments: list[Segment]) -> list[WireConn]:
    """Follow every connection whose SYN was captured, on either side of a NAT.

    The two directions are joined by the client's initial sequence number (the
    SYN-ACK acknowledges it), which a NAT rewriting addresses and ports keeps, so the
    client's flow before the NAT and the server's after it make one connection.
    """
    conns: list[WireConn] = []
    by_flow: dict[tuple, tuple[WireConn, str]] = {}
    by_isn: dict[int, WireConn] = {}
    for s in segments:
        syn, ack = s.flags & SYN, s.flags & ACK
        if syn and not ack:
            known = by_flow.get((s.src, s.dst))
            if known is not None and known[0].isn == s.seq:  # a retransmitted SYN
                known[0].packets.append(s.t)
                continue
            conn = WireConn(s.src, s.dst, s.t, s.seq, Reassembler(s.seq))
            conn.packets.append(s.t)
            conns.append(conn)
            by_flow[(s.src, s.dst)] = (conn, "client")
            by_isn[(s.seq + 1) % MOD32] = conn
            continue
        if syn and ack:
            conn = by_isn.get(s.ack)
            if conn is None:
                continue
            conn.packets.append(s.t)
            if conn.down is None:
                conn.down = Reassembler(s.seq)
                conn.nat_client = s.dst
                by_flow[(s.src, s.dst)] = (conn, "server")
            continue
        known = by_flow.get((s.src, s.dst))
        if known is None:
            continue
        conn, side = known
        conn.packets.append(s.t)
        if s.missing > 0:  # the stream has a hole from here on: frames stop, and we say why
            conn.truncated += 1
        stream = conn.up if side == "client" else conn.down
        for data, t in stream.feed(s.seq, s.data, s.t):
            conn.bytes_in(side, data, t)
        if s.flags & (FIN | RST):
            conn.ends.append((s.t, side, "rst" if s.flags & RST else "fin"))
    for conn in conns:  # a close frame ends the connection for the accounting, too
        conn.ends += [(f.t, side, "close") for side, f in conn.frames if f.opcode == CLOSE]
    return conns


def lab_slot(address: str) -> int | None:
    """The harness slot a client address belongs to (the inverse of netns.slot_address)."""
    parts = address.split(".")
    if len(parts) != 4 or parts[:2] != ["198", "18"]:
        return None
    c, d = int(parts[2]), int(parts[3])
    if c < 1 or not 1 <= d <= 250:
        return None
    return (c - 1) * 250 + d - 1


def number_by_slot(conns: list[WireConn], slot_of=lab_slot) -> list[WireConn]:
    """Give each connection its slot and number (1, 2, ... by SYN time); the others are dropped."""
    counts: dict[int, int] = {}
    out = []
    for conn in sorted(conns, key=lambda c: c.syn):
        slot = slot_of(conn.client[0])
        if slot is None:
            continue
        counts[slot] = counts.get(slot, 0) + 1
        conn.slot, conn.number = slot, counts[slot]
        out.append(conn)
    return out


# -- the NAT's own events -------------------------------------------------------------------

# "[time] [EVENT] tcp 6 [timeout] [STATE] src=client dst=server sport=port ..." (the
# original direction first: the client's address and port, before the NAT)
_CT = re.compile(
    r"^\[(\d+\.\d+)\]\s+\[(\w+)\]\s+tcp\s+\d+\s+(?:\d+\s+)?(?:([A-Z_]+)\s+)?"
    r"src=(\S+) dst=\S+ sport=(\d+)"
)


@dataclass
class Mapping:
    """One conntrack entry as its events told it (wall-clock seconds)."""

    new: float | None = None
    destroyed: float | None = None
    state: str | None = None  # the last state an event reported
    expired: bool = False  # destroyed while still ESTABLISHED: the idle timeout, not a close


def read_conntrack(lines) -> dict[tuple[str, int], list[Mapping]]:
    """``conntrack -E -o timestamp`` output -> mappings by the client's (address, port)."""
    out: dict[tuple[str, int], list[Mapping]] = {}
    for line in lines:
        m = _CT.match(line.strip())
        if m is None:
            continue
        t, what, state, src, sport = float(m[1]), m[2], m[3], m[4], int(m[5])
        maps = out.setdefault((src, sport), [])
        if what == "NEW" or not maps or maps[-1].destroyed is not None:
            maps.append(Mapping(new=t if what == "NEW" else None))
        cur = maps[-1]
        if what == "DESTROY":
            cur.destroyed = t
            cur.expired = cur.state == "ESTABLISHED"
        elif state:
            cur.state = state
    return out


# -- the whole observation --------------------------------------------------------------------


@dataclass
class Observation:
    """The wire's view of a run: connections, records, the NAT log, and what could not be seen."""

    conns: list[WireConn]
    events: list[tuple]  # (slot, connection, time, event, detail, value), from slot origins
    nat: dict  # (slot, connection) -> (start, idle, refresh times), as accounting.account takes
    destroyed: dict  # (slot, connection) -> when conntrack destroyed its mapping while established
    notes: list[str]  # what could not be observed, and RFC 6455 rules broken

    @property
    def retransmitted(self) -> int:
        return sum(c.retransmitted for c in self.conns)


def observe(
    segments: list[Segment],
    conntrack_lines,
    *,
    shift: float,
    origins: list[float],
    horizon: float,
    nat_timeout: float | None,
    slot_of=lab_slot,
    extra_ends: dict | None = None,
) -> Observation:
    """Records from captured segments and conntrack lines, on the harness's clock.

    ``shift`` is capture time minus run time; slot ``i``'s records are then given
    from its origin ``origins[i]``, as :func:`.run.run_harness` gives them. ``slot_of``
    maps a client address to its slot (None: not counted, as the harness's RTT probe).
    ``extra_ends`` (client ISN -> (capture time, side, how)) adds ends the wire cannot
    show: an endpoint that closed while its FIN waits behind unacknowledged data.
    """
    conns = number_by_slot(connections(segments), slot_of)
    for c in conns:
        if extra_ends and c.isn in extra_ends:
            c.ends.append(extra_ends[c.isn])
    mappings = read_conntrack(conntrack_lines)
    events: list[tuple] = []
    nat, destroyed, notes = {}, {}, []
    for c in conns:
        o = shift + origins[c.slot]  # capture time -> slot time
        for e in c.events(horizon_end=o + horizon):
            events.append((e[0], e[1], e[2] - o, *e[3:]))
        if c.note:
            notes.append(c.note)
        if c.truncated:
            notes.append(
                f"{c.client[0]}:{c.client[1]}: {c.truncated} segments cut short by the"
                " capture's snaplen: nothing after the first cut is seen"
            )
        notes.extend(f"{c.client[0]}:{c.client[1]}: {e}" for e in c.protocol_errors()[:3])
        if nat_timeout is not None and c.opened is not None:
            nat[(c.slot, c.number)] = (c.syn - o, nat_timeout, [t - o for t in c.packets])
        for m in mappings.get(c.client, []):  # the entry this SYN made (ports are reused)
            if m.expired and m.new is not None and abs(m.new - c.syn) < 1.0:
                destroyed[(c.slot, c.number)] = m.destroyed - o
    return Observation(conns, events, nat, destroyed, notes)


# -- capturing in the lab's NAT namespace -----------------------------------------------------


class Capture:
    """tcpdump and conntrack -E in one namespace, for the length of a run.

    Both are started here, by argument lists, and ended here by their PIDs
    (``ip netns exec`` execs the tool, so the PID is the tool's).
    """

    def __init__(self, namespace: str, directory: str | None = None):
        self.ns = namespace
        self.dir = directory or tempfile.mkdtemp(prefix="simlab-wire-")
        self.pcap = os.path.join(self.dir, "nat.pcap")
        self.ct = os.path.join(self.dir, "conntrack.txt")
        self.procs: list[subprocess.Popen] = []
        self.wall_minus_mono = math.nan
        self.lost: list[str] = []  # what the capture itself failed to record

    def _spawn(self, args: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *args], preexec_fn=_die_with_parent, **kw
        )
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        # --immediate-mode: no block buffering in the kernel (a stopped tcpdump never
        # writes its last block); its ring then holds buffer / snaplen packets, so a
        # 64 KiB snaplen (a whole segment, even GRO-merged) and a 64 MiB buffer. -Z root:
        # Debian's tcpdump otherwise drops to user tcpdump, and a change of user clears the
        # parent-death signal that ends it with us (it only writes packets, parses none)
        td = self._spawn(
            ["tcpdump", "-i", "any", "-Q", "in", "-U", "-n", "--immediate-mode",
             "-s", "65535", "-B", "65536", "-Z", "root", "-w", self.pcap, "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        with open(self.ct, "w") as out, open(self.ct + ".err", "w") as err:
            self._spawn(["conntrack", "-E", "-p", "tcp", "-o", "timestamp"], stdout=out, stderr=err)
        deadline = time.monotonic() + 10
        seen = b""
        while b"listening on" not in seen:  # tcpdump says so once its socket is open
            left = deadline - time.monotonic()
            if left <= 0 or td.poll() is not None:
                self.stop()
                raise netns.NetnsUnavailable(
                    f"tcpdump did not start: {seen.decode(errors='replace').strip()}"
                )
            ready, _, _ = select.select([td.stderr], [], [], left)
            if ready:
                seen += os.read(td.stderr.fileno(), 4096)
        time.sleep(0.2)  # conntrack -E says nothing when ready; its netlink socket opens at once
        self.wall_minus_mono = _wall_minus_mono()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # tcpdump flushes its file on SIGINT
            else:  # it ended under us: whatever came after is not in the files
                self.lost.append(f"{proc.args[4]} ended early (exit code {proc.returncode})")
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:  # tcpdump's: its counters come last
                tail = proc.stderr.read().decode(errors="replace")
                proc.stderr.close()
                dropped = re.search(r"(\d+) packets? dropped by kernel", tail)
                if dropped and int(dropped[1]) > 0:
                    self.lost.append(f"tcpdump: {dropped[1]} packets dropped by the kernel")
        self.procs = []
        with open(self.ct + ".err") as f:
            if "ENOBUFS" in f.read():  # netlink overran: some mapping events are missing
                self.lost.append("conntrack -E: events lost (ENOBUFS)")

    def segments(self) -> list[Segment]:
        with open(self.pcap, "rb") as f:
            return read_pcap(f)

    def conntrack_lines(self) -> list[str]:
        with open(self.ct) as f:
            return f.readlines()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child: SIGTERM when this process dies, so a killed run leaves no capture running.

    (The signal follows the thread that started the child: :class:`ObservedNetnsBackend`
    starts it from the event loop's executor, whose threads live until the run ends.)
    """
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wall_minus_mono() -> float:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, from the tightest of a few bracketing reads."""
    best = (math.inf, 0.0)
    for _ in range(20):
        a = time.monotonic()
        w = time.time()
        b = time.monotonic()
        best = min(best, (b - a, w - (a + b) / 2))
    return best[1]


class ObservedNetnsBackend(netns.NetnsBackend):
    """The netns backend with a wire capture in the NAT namespace for the whole run.

    The endpoints still log their own records (the run needs them to drive
    itself); :meth:`observation` gives the wire's, to compare or to use instead.
    """

    name = "netns"

    def __init__(self, directory: str | None = None):
        super().__init__()
        self.directory = directory
        self.capture: Capture | None = None

    async def start(self, run) -> None:
        await super().start(run)
        self.capture = Capture(self.lab.ns["nat"], self.directory)
        await asyncio.to_thread(self.capture.start)

    async def stop(self) -> None:
        if self.capture is not None:
            await asyncio.to_thread(self.capture.stop)
        await super().stop()

    def observation(self) -> Observation:
        """The wire's records for the finished run, on the run's clock and slot origins."""
        run, cap = self.run, self.capture
        obs = observe(
            cap.segments(),
            cap.conntrack_lines(),
            shift=cap.wall_minus_mono + run.offset,  # loop.time() is CLOCK_MONOTONIC
            origins=run.origin,
            horizon=run.s.horizon,
            nat_timeout=self.nat_timeout,
        )
        obs.notes[:0] = cap.lost
        return obs


__all__ = [
    "Capture",
    "Frame",
    "FrameReader",
    "Mapping",
    "Observation",
    "ObservedNetnsBackend",
    "Reassembler",
    "Segment",
    "WireConn",
    "connections",
    "lab_slot",
    "observe",
    "read_conntrack",
    "read_pcap",
    "unavailable_reason",
]
