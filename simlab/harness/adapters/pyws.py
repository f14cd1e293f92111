"""The python `websockets` adapter: the harness's endpoint with the library's own keepalive.

``python -m simlab.harness.adapters.pyws server [--ping-interval S] [--ping-timeout S] HOST PORT``
``python -m simlab.harness.adapters.pyws client [--ping-interval S] [--ping-timeout S] URL``

websockets pings every ``ping_interval`` (less the last pong's latency) and fails
the connection (1011) when no pong came within ``ping_timeout``; it answers the
peer's pings by itself. The connections are :mod:`simlab.harness.endpoint`'s
watched ones, so the moment the library gives up is the one the harness notes.
``--ping-interval 0`` turns this side's pings off (it still answers). Events go to
stderr as JSON lines stamped with ``time.monotonic()`` (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import Opcode

from simlab.harness.endpoint import WatchedClient, WatchedServer, transport_cause

# websockets' own defaults, the settings "as people deploy it"
DEFAULT_INTERVAL = 20.0
DEFAULT_TIMEOUT = 20.0


def _event(role: str, name: str, **fields) -> None:
    rec = {"t": time.monotonic(), "lib": "websockets", "role": role, "event": name, **fields}
    sys.stderr.write(json.dumps(rec) + "\n")
    sys.stderr.flush()


def _logged(base: type, role: str) -> type:
    """``base`` (a watched connection) that also notes its keepalive's pings and pongs."""

    class Logged(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.closed_as: tuple[str, int] | None = None
            self.on_fail = self._failed
            self.on_lost = self._lost

        async def ping(self, data=None):
            waiter = await super().ping(data)
            _event(role, "ping_sent")
            return waiter

        def process_event(self, event):
            if getattr(event, "opcode", None) is Opcode.PONG:  # the handshake is a Request
                _event(role, "pong_received")
            super().process_event(event)

        def opened(self) -> None:
            # endpoint's ping hook reads frames only: set once the handshake is over
            self.on_ping = lambda _data: _event(role, "ping_received")

        def _failed(self, code, reason):
            # the keepalive gives up with 1011 "keepalive ping timeout": that is the detection
            if self.closed_as is None:
                cause = "timeout" if "keepalive" in str(reason) else "error"
                self.closed_as = (cause, int(code))
                _event(role, "close", cause=cause, code=int(code), reason=str(reason))

        def _lost(self, exc):
            if self.closed_as is None:
                rcvd = self.protocol.close_rcvd
                if rcvd is not None:
                    self.closed_as = ("peer_close", int(rcvd.code))
                else:
                    self.closed_as = (transport_cause(exc), 1006)
                _event(role, "close", cause=self.closed_as[0], code=self.closed_as[1])

    return Logged


def _keepalive(args) -> dict:
    interval = args.ping_interval if args.ping_interval > 0 else None
    return {"ping_interval": interval, "ping_timeout": args.ping_timeout or None}


async def _server(args) -> None:
    cls = _logged(WatchedServer, "server")

    async def handler(ws):
        ws.opened()
        host, port = ws.remote_address[:2]
        _event("server", "open", peer=f"{host}:{port}")
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:  # discard messages; the keepalive runs beside this loop
                pass

    async with serve(
        handler, args.host, args.port, create_connection=cls, **_keepalive(args)
    ) as srv:
        host, port = list(srv.sockets)[0].getsockname()[:2]
        _event("server", "listening", addr=f"{host}:{port}", **_keepalive(args))
        await asyncio.Future()


async def _client(args) -> int:
    cls = _logged(WatchedClient, "client")
    async with connect(args.url, create_connection=cls, **_keepalive(args)) as ws:
        ws.opened()
        _event("client", "open", url=args.url, **_keepalive(args))
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
    await ws.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simlab.harness.adapters.pyws")
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("server", "client"):
        p = sub.add_parser(role)
        p.add_argument("--ping-interval", type=float, default=DEFAULT_INTERVAL)
        p.add_argument("--ping-timeout", type=float, default=DEFAULT_TIMEOUT)
        if role == "server":
            p.add_argument("host")
            p.add_argument("port", type=int)
        else:
            p.add_argument("url")
    args = parser.parse_args(argv)
    if args.ping_interval < 0 or args.ping_timeout < 0:
        parser.error(
            f"--ping-interval {args.ping_interval}, --ping-timeout {args.ping_timeout}: "
            "both must be >= 0 (0 turns it off)"
        )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if args.role == "server":
            asyncio.run(_server(args))
            return 0
        return asyncio.run(_client(args))
    except (OSError, WebSocketException) as exc:
        print(f"pyws {args.role}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, OSError) else 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
