"""The portable backend: an asyncio TCP relay on 127.0.0.1 between client and server.

It plays the path: a NAT at the client end whose mapping expires after the
connection's idle timeout (then blackholes, or answers the sender with an RST),
one-way delay (order-preserving, like one TCP stream), link outages and a peer
crash. It relays byte chunks, not packets, so it cannot lose packets: scenarios
with loss are refused and pointed at the netns backend. During an outage a chunk
is held and delivered at the first retransmission of Linux's ladder (RTO 200 ms,
doubling) that falls after the outage: the relay emulates TCP recovery with the
model's own formula, so outages on this backend check the detector and the
accounting, not the kernel; the netns backend checks the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from simlab.engines.network import backoff
from simlab.harness.scale import KERNEL_TCP
from simlab.rng import stream
from simlab.rules.nat import NatMapping
from simlab.scenario.distributions import Sampler

UP, DOWN = "up", "down"  # client -> server, server -> client


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close a leg with an RST (SO_LINGER 0), as a NAT answering an unknown flow does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Relay:
    """One proxied connection: two legs and the path state between them."""

    def __init__(self, proxy, conn, client_w, server_w):
        self.proxy, self.conn = proxy, conn
        self.w = {UP: server_w, DOWN: client_w}  # where each direction's bytes go
        self.release = {UP: 0.0, DOWN: 0.0}  # in-order delivery per direction
        self.dead = False
        idle = proxy.nat_idle[conn.slot]
        self.nat = NatMapping(proxy.now(), idle()) if idle is not None else None
        if self.nat is not None:
            conn.nat_idle = self.nat.idle

    def forward(self, direction: str, data: bytes) -> None:
        p, conn = self.proxy, self.conn
        t = p.now()
        if self.dead or conn.crashed and direction == p.from_peer:
            return
        if direction == UP and not self._cross(UP, t):
            return
        at = t + p.delay[conn.slot][direction]()
        end = p.run.outage_end(conn.slot, t)
        if end is not None:  # held until the retransmission ladder reaches past the outage
            k, at = 0, t
            while at < end:
                at += backoff(KERNEL_TCP.min_rto, k, KERNEL_TCP)
                k += 1
        at = max(at, self.release[direction])
        self.release[direction] = at
        p.loop.call_at(p.offset + at, self._deliver, direction, data)

    def _deliver(self, direction: str, data: bytes) -> None:
        p, conn = self.proxy, self.conn
        if self.dead or conn.crashed and direction != p.from_peer:
            return
        if direction == DOWN and not self._cross(DOWN, p.now()):
            return
        w = self.w[direction]
        if not w.is_closing():
            w.write(data)

    def _cross(self, direction: str, t: float) -> bool:
        """The chunk crosses the NAT at ``t`` (the NAT sits at the client end)."""
        if self.nat is None:
            return True
        if self.nat.cross(t):
            self.conn.crossings.append(t)
            return True
        if self.proxy.s.nat.on_expiry == "reset":
            # an RST back to the sender: at once for the client, one link delay for the server
            if direction == UP:
                _rst(self.w[DOWN])
            else:
                back = self.proxy.delay[self.conn.slot][UP]()
                self.proxy.loop.call_later(back, _rst, self.w[UP])
        return False

    def close(self) -> None:
        self.dead = True
        for w in self.w.values():
            w.transport.abort()


class ProxyBackend:
    """Relays each connection of a harness run through its emulated path."""

    name = "proxy"
    client_host = "127.0.0.1"

    def __init__(self):
        self.relays: list[_Relay] = []
        self._server = None

    @staticmethod
    def refusals(s) -> list[str]:
        out = []
        for name, d in (("uplink", s.link.up), ("downlink", s.link.down)):
            if d.loss.mean > 0:
                out.append(
                    f"link.{name}.loss: the proxy relays bytes, not packets, so it cannot lose "
                    "packets; use --backend netns (Linux, root) for real packet loss"
                )
        return out

    async def start(self, run) -> None:
        self.run, self.s = run, run.s
        self.loop, self.now = run.loop, run.now
        self.offset = run.offset
        self.from_peer = UP if run.s.detector_side == "server" else DOWN
        s = self.s
        n = s.connections
        self.delay = [
            {
                UP: Sampler(s.link.up.delay, stream(s.seed, i, "delay.up")),
                DOWN: Sampler(s.link.down.delay, stream(s.seed, i, "delay.down")),
            }
            for i in range(n)
        ]
        self.nat_idle = [
            Sampler(s.nat.idle_timeout, stream(s.seed, i, "nat"), 16)
            if s.nat.idle_timeout is not None
            else None
            for i in range(n)
        ]
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def server_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.server_port = sock.getsockname()[1]
        return sock

    @staticmethod
    def _loopback_socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    def direct_socket(self) -> tuple[socket.socket, tuple[str, int]]:
        """A socket straight to the server, not through the relay (for the loop's meter)."""
        return self._loopback_socket(), ("127.0.0.1", self.server_port)

    def client_socket(self, slot: int) -> tuple[socket.socket, tuple[str, int]]:
        return self._loopback_socket(), ("127.0.0.1", self.port)

    async def _accept(self, reader, writer) -> None:
        port = writer.get_extra_info("peername")[1]
        conn = self.run.by_port.get(port)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.server_port)
        except OSError:
            writer.transport.abort()
            return
        if conn is None:  # not one of ours
            writer.transport.abort()
            up_w.transport.abort()
            return
        relay = _Relay(self, conn, writer, up_w)
        conn.relay = relay
        self.relays.append(relay)
        await asyncio.gather(self._pump(relay, reader, UP), self._pump(relay, up_r, DOWN))

    async def _pump(self, relay: _Relay, reader: asyncio.StreamReader, direction: str) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                relay.forward(direction, data)
        except OSError:  # ConnectionError included
            pass

    async def crash(self, conn) -> None:
        conn.crashed = True  # the relay drops everything to and from the peer from now on

    def end(self, conn) -> None:
        relay = getattr(conn, "relay", None)
        if relay is not None:
            relay.close()

    def nat_log(self, conn) -> list[float] | None:
        return None  # the relay enforces expiry itself and logs exact crossings

    async def stop(self) -> None:
        for relay in self.relays:
            relay.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
