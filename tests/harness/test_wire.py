"""The wire observer: WebSocket frames off reassembled TCP, and its records against the endpoints'.

The unit tests build pcaps with dpkt (no network). The namespaces test needs root,
nftables, tcpdump, conntrack and dpkt; it skips with the reason elsewhere and fails
instead when SIMLAB_REQUIRE_NETNS=1, like tests/harness/test_run.py.
"""

from __future__ import annotations

import io
import math
import os
import struct

import pytest

try:
    import dpkt
except ImportError:
    if os.environ.get("SIMLAB_REQUIRE_NETNS") == "1":  # CI: missing dpkt fails, not skips
        raise
    pytest.skip("the wire observer needs dpkt (pip install dpkt)", allow_module_level=True)

from simlab.harness import wire  # noqa: E402

CLIENT, SERVER, NAT = ("198.18.1.3", 40000), ("198.19.0.2", 8080), ("198.19.0.1", 51000)
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
ACCEPT = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def frame(opcode: int, payload: bytes = b"", mask: bytes | None = None, fin: bool = True) -> bytes:
    """One RFC 6455 frame, built by hand (masked when ``mask`` is given)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def close(code: int, mask: bytes | None = None) -> bytes:
    return frame(0x8, struct.pack("!H", code) + b"bye", mask)


KEY = b"\x01\x02\x03\x04"


# -- frames ----------------------------------------------------------------------------


def test_frames_split_across_segments_and_several_in_one():
    stream = frame(0x9, b"abc", KEY) + frame(0x1, b"hello", KEY) + close(1001, KEY)
    r = wire.FrameReader()
    out = []
    for i, cut in enumerate([1, 3, 9, len(stream)]):  # pieces of 1, 2, 6, ... bytes
        start = [0, 1, 3, 9][i]
        out += r.feed(stream[start:cut], float(i))
    assert [(f.name, f.t) for f in out] == [("ping", 2.0), ("text", 3.0), ("close", 3.0)]
    assert out[0].payload == b"abc" and out[0].masked  # unmasked with the client's key
    assert out[2].code == 1001 and out[2].payload[2:] == b"bye"
    assert r.errors == []


@pytest.mark.parametrize("n", [125, 126, 300, 65535, 65536, 70000])
def test_extended_lengths_skip_the_data_and_find_the_next_frame(n):
    stream = frame(0x2, bytes(n)) + frame(0xA, b"p")
    r = wire.FrameReader()
    out = []
    for i in range(0, len(stream), 1000):  # 1000-byte segments: headers and payloads cut anywhere
        out += r.feed(stream[i : i + 1000], float(i))
    assert [(f.name, f.length, f.masked) for f in out] == [
        ("binary", n, False),
        ("pong", 1, False),
    ]
    assert len(r.buf) == 0 and r.skip == 0  # a data payload is passed over, not kept


def test_a_bad_control_frame_is_reported():
    r = wire.FrameReader()
    r.feed(frame(0x9, bytes(200)), 0.0)  # a ping longer than 125 bytes breaks RFC 6455 5.5
    assert r.errors and "ping" in r.errors[0]


# -- TCP --------------------------------------------------------------------------------


def test_reassembly_drops_retransmissions_trims_overlaps_and_waits_for_gaps():
    r = wire.Reassembler(isn=2**32 - 3)  # the stream's sequence numbers wrap around 2**32
    base = (2**32 - 3 + 1) % 2**32
    seq = lambda off: (base + off) % 2**32  # noqa: E731
    assert r.feed(seq(0), b"abcd", 1.0) == [(b"abcd", 1.0)]
    assert r.feed(seq(0), b"abcd", 2.0) == []  # a retransmission
    assert r.retransmitted == 1
    assert r.feed(seq(2), b"cdef", 3.0) == [(b"ef", 3.0)]  # overlapping: only the new bytes
    assert r.feed(seq(9), b"jk", 4.0) == []  # beyond a gap: held
    assert r.feed(seq(6), b"ghi", 5.0) == [(b"ghi", 5.0), (b"jk", 5.0)]
    assert r.delivered == 11


# -- a whole conversation in a pcap ------------------------------------------------------


def packet(src, dst, seq, ack, flags, data=b""):
    tcp = dpkt.tcp.TCP(
        sport=src[1], dport=dst[1], seq=seq % 2**32, ack=ack % 2**32, flags=flags, data=data
    )
    ip = dpkt.ip.IP(
        src=bytes(map(int, src[0].split("."))), dst=bytes(map(int, dst[0].split("."))), p=6
    )
    ip.data = tcp
    ip.len += len(tcp)
    return dpkt.sll2.SLL2(ethtype=0x0800, data=ip)


class Conversation:
    """Both halves of one connection as the NAT's ingress sees them: the client's flow
    before the NAT, the server's after it (other address, other port)."""

    def __init__(self, client=CLIENT, isn_c=1000, isn_s=2**32 - 100):
        self.client = client
        self.c, self.s = isn_c + 1, isn_s + 1
        self.pkts = [
            (0.0, packet(client, SERVER, isn_c, 0, wire.SYN)),
            (0.001, packet(SERVER, NAT, isn_s, self.c, wire.SYN | wire.ACK)),
            (0.002, packet(client, SERVER, self.c, self.s, wire.ACK)),
        ]

    def send(self, t, side, data, flags=wire.ACK, at=None):
        """``at``: a sequence offset other than the next one (a retransmission)."""
        if side == "client":
            seq = self.c if at is None else at
            self.pkts.append((t, packet(self.client, SERVER, seq, self.s, flags, data)))
            if at is None:
                self.c += len(data)
            return seq
        seq = self.s if at is None else at
        self.pkts.append((t, packet(SERVER, NAT, seq, self.c, flags, data)))
        if at is None:
            self.s += len(data)
        return seq


def pcap(*conversations) -> io.BytesIO:
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, snaplen=65535, linktype=276)  # Linux cooked v2, as `-i any`
    for t, p in sorted((x for c in conversations for x in c.pkts), key=lambda x: x[0]):
        w.writepkt(bytes(p), ts=100.0 + t)
    buf.seek(0)
    return buf


def ws_conversation():
    c = Conversation()
    c.send(0.010, "client", UPGRADE)
    c.send(0.012, "server", ACCEPT[:20])  # the 101 in two segments: open at the second
    c.send(0.013, "server", ACCEPT[20:] + frame(0x9, b"s1"))  # and the server's first ping
    c.send(0.014, "client", frame(0xA, b"s1", KEY))
    ping = frame(0x9, b"c1", KEY)
    at = c.send(1.000, "client", ping[:3])  # the client's ping split in two
    c.send(1.001, "client", ping[3:])
    c.send(1.200, "client", ping[:3], at=at)  # a retransmission of its first part
    c.send(1.300, "server", frame(0xA, b"c1") + frame(0x1, b"data"))  # pong and data in one
    c.send(2.000, "client", frame(0x9, b"c2", KEY))
    c.send(2.000, "client", frame(0x9, b"c2", KEY), at=c.c - 8)  # the whole ping again
    c.send(2.010, "server", frame(0xA, b"c2"))
    c.send(3.000, "server", close(1011))  # the server gives up (keepalive ping timeout)
    c.send(3.001, "client", close(1011, KEY))
    c.send(3.002, "server", b"", wire.FIN | wire.ACK)
    return c


def test_a_conversation_through_the_nat_gives_the_harness_records():
    segs = wire.read_pcap(pcap(ws_conversation()))
    (conn,) = wire.number_by_slot(wire.connections(segs))
    assert (conn.slot, conn.number, conn.kind, conn.note) == (2, 1, "websocket", "")
    assert conn.retransmitted == 2
    assert conn.protocol_errors() == []
    closes = [(round(t - 100.0, 6), side, how, code) for t, side, how, code in conn.closes()]
    assert closes == [
        (3.0, "server", "close", 1011),
        (3.001, "client", "close", 1011),
        (3.002, "server", "fin", None),
    ]
    ev = [
        tuple(round(x, 6) if isinstance(x, float) else x for x in (e[2] - 100.0, *e[3:]))
        for e in conn.events(horizon_end=110.0)
    ]
    assert ev == (
        [
            (0.013, "open", None, None),
            (0.013, "ping", "server", 1),
            (0.014, "pong", 1, 0.001),
            (1.001, "ping", "client", 1),  # once, when its last byte arrived
            (1.300, "pong", 1, 0.299),
            (2.000, "ping", "client", 2),
            (2.010, "pong", 2, 0.010),
            (3.000, "declare", "detector", None),  # the first close frame
            (3.000, "close", None, None),
        ]
    )


def test_observe_shifts_to_slot_times_and_ends_at_the_horizon():
    segs = wire.read_pcap(pcap(ws_conversation()))
    obs = wire.observe(segs, [], shift=99.0, origins=[0, 0, 0.5], horizon=3.0, nat_timeout=2)
    ev = [(e[0], e[1], round(e[2], 6), e[3], e[4]) for e in obs.events]
    assert ev[0] == (2, 1, 0.513, "open", None)  # capture 100.013 - 99 - slot origin 0.5
    assert ev[-1] == (2, 1, 3.0, "close", "horizon")  # the close frame came after the horizon
    assert "declare" not in [e[3] for e in ev]
    start, idle, log = obs.nat[(2, 1)]
    assert (round(start, 6), idle, len(log)) == (0.5, 2, len(segs))


def test_tls_and_plain_http_are_reported_not_silently_dropped():
    tls = Conversation(client=("198.18.1.1", 40001))
    tls.send(0.01, "client", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40))
    http = Conversation(client=("198.18.1.2", 40002), isn_c=5000)
    http.send(0.01, "client", b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    other = Conversation(client=("198.18.1.4", 40004), isn_c=9000)
    other.send(0.01, "client", b"\x00\x00\x00\x0bhello world")
    obs = wire.observe(
        wire.read_pcap(pcap(tls, http, other)),
        [],
        shift=100.0,
        origins=[0.0] * 4,
        horizon=10.0,
        nat_timeout=None,
    )
    kinds = {c.slot: c.kind for c in obs.conns}
    assert kinds == {0: "tls", 1: "http", 3: "other"}
    assert len(obs.notes) == 3
    assert "TLS" in obs.notes[0] and "not WebSocket pings" in obs.notes[0]
    assert "not a WebSocket upgrade" in obs.notes[1] and "not HTTP" in obs.notes[2]
    assert {e[3] for e in obs.events} == {"connect_failed"}


def test_a_capture_cut_short_by_its_snaplen_says_so():
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, snaplen=80, linktype=276)
    for t, p in ws_conversation().pkts:
        w.writepkt(bytes(p)[:80], ts=100.0 + t)  # the upgrade request loses its end
    buf.seek(0)
    obs = wire.observe(
        wire.read_pcap(buf), [], shift=99.0, origins=[0.0] * 3, horizon=5.0, nat_timeout=None
    )
    assert [e[3] for e in obs.events] == ["connect_failed"]  # no open, no pings: not guessed
    assert len(obs.notes) == 1 and "cut short by the capture's snaplen" in obs.notes[0]


CONNTRACK = """\
[1796688742.559763]\t    [NEW] tcp      6 120 SYN_SENT src=198.18.1.1 dst=198.19.0.2 sport=53025 dport=8080 [UNREPLIED] src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=53025
[1796688742.559880]\t [UPDATE] tcp      6 3 ESTABLISHED src=198.18.1.1 dst=198.19.0.2 sport=53025 dport=8080 src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=53025 [ASSURED]
[1796688745.600000]\t[DESTROY] tcp      6 src=198.18.1.1 dst=198.19.0.2 sport=53025 dport=8080 src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=53025 [ASSURED]
[1796688750.000000]\t    [NEW] tcp      6 120 SYN_SENT src=198.18.1.1 dst=198.19.0.2 sport=53025 dport=8080 [UNREPLIED] src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=53025
[1796688750.100000]\t [UPDATE] tcp      6 3 ESTABLISHED src=198.18.1.1 dst=198.19.0.2 sport=53025 dport=8080 src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=53025 [ASSURED]
[1796688751.000000]\t [UPDATE] tcp      6 120 FIN_WAIT src=198.18.1.1 dst=198.19.0.2 sport=53025 dport=8080 src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=53025 [ASSURED]
[1796688761.000000]\t[DESTROY] tcp      6 src=198.18.1.1 dst=198.19.0.2 sport=53025 dport=8080 src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=53025 [ASSURED]
"""


def test_conntrack_events_tell_an_expiry_from_a_close():
    maps = wire.read_conntrack(CONNTRACK.splitlines())
    first, second = maps[("198.18.1.1", 53025)]  # the same port, reused: two mappings
    assert first.expired and first.destroyed == pytest.approx(1796688745.6)
    assert not second.expired and second.state == "FIN_WAIT"
    assert second.new == pytest.approx(1796688750.0)


# -- through real namespaces --------------------------------------------------------------

# 600 s at 1/100: pings every 0.9 s +- 50 % from the client, the server gives up after
# 1.2 s, the NAT forgets after 1 s: false positives, NAT expiries with their detections,
# conntrack destroys, horizon closes, in ~7 s of wall time.
REAL = {
    "horizon": "600s",
    "connections": 4,
    "seed": 2,
    "heartbeat": {"interval": "90s", "initiator": "client", "jitter": 0.5},
    "detector": {"kind": "timeout", "timeout": "120s"},
    "nat": {"idle_timeout": "100s", "on_expiry": "drop"},
    # no loss: a lost segment makes the two views differ by design (a ping queued in the
    # sender's kernel behind a retransmission is written but not yet on the wire; a
    # retransmission refreshes the NAT, which the endpoints' activity log does not see)
    "link": {"delay": {"dist": "constant", "value": "0s"}, "loss": {"model": "bernoulli", "p": 0}},
}


def needs_wire():
    reason = wire.unavailable_reason()
    if reason:
        if os.environ.get("SIMLAB_REQUIRE_NETNS") == "1":
            pytest.fail(f"SIMLAB_REQUIRE_NETNS=1 but {reason}")
        pytest.skip(reason)


def by_key(rows, event: str, key=("slot", "connection")) -> dict:
    sub = rows[rows.event == event]
    return {tuple(r[k] for k in key): r for _, r in sub.iterrows()}


def allowed(n: int, p: float = 0.01, alpha: float = 1e-3) -> int:
    """The fewest exceedances k with P(Binomial(n, p) > k) <= alpha."""
    k, cdf = 0, (1 - p) ** n
    while 1 - cdf > alpha:
        k += 1
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
    return k


def test_the_wire_agrees_with_the_endpoints_on_a_real_run():
    """simlab's endpoints through netns.Lab, captured in the NAT: the same records, times."""
    needs_wire()
    import pandas as pd

    from simlab.harness.accounting import RECORD_COLUMNS, account
    from simlab.harness.run import run_harness
    from simlab.harness.scale import scale_scenario
    from simlab.rules.nat import expiry_from_log
    from simlab.scenario.reader import load

    from .test_run import ours_left

    s = scale_scenario(load(REAL)[0], 0.01)
    backend = wire.ObservedNetnsBackend()
    try:
        ran = run_harness(s, backend)
        obs = backend.observation()
    finally:
        if backend.capture is not None:
            backend.capture.remove()
    assert ours_left() == []
    assert obs.notes == []  # nothing lost by the capture, every connection a WebSocket
    res = ran.info["resolution_s"]
    ep = ran.records
    summary, wire_records = account(s, obs.events, obs.nat)
    wr = pd.DataFrame(wire_records, columns=RECORD_COLUMNS)

    diffs = []  # (what, endpoints' value - wire's value), for every matched event
    closed = {k: r.time for k, r in by_key(ep, "close").items()}
    for event, key in (
        ("open", ("slot", "connection")),
        ("close", ("slot", "connection")),
        ("ping", ("slot", "connection", "detail", "value")),  # side and sequence number
        ("pong", ("slot", "connection", "detail")),  # the answered ping's number
    ):
        a, b = by_key(ep, event, key), by_key(wr, event, key)
        if event == "ping":
            # an endpoint notes a ping before its task writes it: one noted in the instant
            # the connection was torn down never reaches the socket (nor the wire)
            unsent = {k for k in a.keys() - b.keys() if closed[k[:2]] - a[k].time <= res}
            a = {k: v for k, v in a.items() if k not in unsent}
        assert a.keys() == b.keys(), (event, a.keys() - b.keys(), b.keys() - a.keys())
        assert len(a) > 4, event
        for k in a:
            diffs.append(((event, k), a[k].time - b[k].time))
            if event == "close":
                assert a[k].detail == b[k].detail, k  # declared (None) or the horizon's
            if event == "pong":
                diffs.append((("rtt", k), a[k].value - b[k].value))

    # The NAT: where the mapping expired, from the endpoints' activity and from the wire's
    # segments. A connection with a silence within the clock's resolution of the timeout
    # is a coin toss for both, and its break and declaration are left out.
    idle = backend.nat_timeout
    close_at = {k: r.time for k, r in by_key(wr, "close").items()}
    near = {
        k for k, (start, _, log) in obs.nat.items()
        if min(abs(b - a - idle) for a, b in zip([start, *log], log, strict=False)) <= res
    }  # fmt: skip
    for event in ("break", "detection", "false_positive"):
        a, b = by_key(ep, event), by_key(wr, event)
        assert a.keys() - near == b.keys() - near, event
        diffs += [((event, k), a[k].time - b[k].time) for k in a.keys() & b.keys()]

    # The same events at the same times. Matched by connection and sequence number, and
    # within a tenth of the heartbeat interval (so never a neighbouring event); within the
    # resolution, which is a sum of 99th percentiles, all but a few: more than
    # `allowed` of n beyond it has a chance below 1e-3 if each exceeds it 1 time in 100.
    assert all(abs(d) <= s.heartbeat.interval / 10 for _, d in diffs), diffs
    beyond = [(what, d) for what, d in diffs if abs(d) > res]
    assert len(beyond) <= allowed(len(diffs)), (res, beyond)

    expired = {
        k for k, (start, _, log) in obs.nat.items()
        if expiry_from_log(start, idle, log, close_at[k]) <= close_at[k]
    }  # fmt: skip
    assert expired, "the run should see NAT expiries"
    assert summary["heartbeats_sent"] == ran.summary["heartbeats_sent"] - len(unsent)

    # conntrack's own word: it destroyed a mapping still established exactly where the
    # wire says the mapping expired, no earlier than that, and by the connection's close
    # (whose FIN finds the expired entry), give or take the event's way to `conntrack -E`
    assert obs.destroyed.keys() - near == expired - near
    for k, destroyed in obs.destroyed.items():
        start, _, log = obs.nat[k]
        expiry = expiry_from_log(start, idle, log, close_at[k])
        assert expiry - res <= destroyed <= close_at[k] + 0.5, (k, expiry, destroyed)
