"""The Linux backend: client, NAT and server in network namespaces, a real netfilter NAT.

Three namespaces joined by two veth pairs::

    client 198.18.0.2/16 (+ one address per slot) --- 198.18.0.1 [nat] 198.19.0.1 --- 198.19.0.2 server

The nat namespace forwards and masquerades; its conntrack established-TCP
timeout is the scenario's NAT idle timeout (whole seconds) and
``nf_conntrack_tcp_loose=0``, so a packet of an expired flow is not silently
adopted as a new one (real NATs that pick a new port behave so). nftables there
drops such packets (``drop``) or answers them with an RST (``reset``), loses
packets at random per direction (``numgen random``), blackholes a crashed
connection (a set of client address . port) and a slot in an outage (a set of
client addresses). No netem: this kernel has none, so delay is the real one,
measured and given to the model.

Sockets are made inside the namespaces by this one process (``setns`` around
``socket()``: a socket stays in the namespace it was created in), so both ends
still run in one event loop. Every command is an argument list. Names carry
the creating PID, so parallel runs don't collide and ``cleanup`` can tell
leftovers of dead runs from live ones. A lab that outlives its command (``simlab
net up``, :mod:`simlab.harness.net`) is named ``simlab-net-NAME-ROLE`` instead and
is claimed by its state file ``NET_STATE_DIR/NAME.json``: without one it is a leftover.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import secrets
import shutil
import socket
import subprocess
from contextlib import contextmanager, suppress

PREFIX = "simlab-"
NET_PREFIX = PREFIX + "net-"  # labs that outlive their command: simlab-net-NAME-ROLE
NET_STATE_DIR = "/run/simlab/net"  # their state files, NAME.json
ROLES = ("client", "nat", "server")
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
CLIENT_GW, CLIENT_IP = "198.18.0.1", "198.18.0.2"
NAT_OUT, SERVER_IP = "198.19.0.1", "198.19.0.2"
SERVER_PORT = 8080
TABLE = "simlab"


class NetnsUnavailable(RuntimeError):
    """The netns backend cannot run here; the message says why and what to do."""


def unavailable_reason() -> str | None:
    """Why the netns backend cannot run on this machine, or None if it can."""
    if not hasattr(os, "geteuid") or os.uname().sysname != "Linux":
        return "the netns backend needs Linux network namespaces"
    if os.geteuid() != 0:
        return (
            "the netns backend needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN); use --backend proxy"
        )
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"the netns backend needs `{tool}` (Debian package {package})"
    return None


def _run(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetnsUnavailable(f"`{' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def inside(namespace: str):
    """Run the block with this thread in ``namespace`` (sockets made here stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(os.path.join(NETNS_DIR, namespace), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def slot_address(i: int) -> str:
    """The client address slot ``i`` connects from (198.18.1.1 onwards)."""
    return f"198.18.{1 + i // 250}.{1 + i % 250}"


def _ruleset(tag: str, loss_up: float, loss_down: float, on_expiry: str) -> str:
    """nftables rules for the nat namespace (numbers only: nothing from the user verbatim)."""
    a, b = f"sl{tag}a", f"sl{tag}b"
    invalid = "reject with tcp reset" if on_expiry == "reset" else "drop"
    up, down = round(loss_up * 1_000_000), round(loss_down * 1_000_000)
    return f"""
table ip {TABLE} {{
  set crashed {{ type ipv4_addr . inet_service; }}
  set down {{ type ipv4_addr; }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip saddr . tcp sport @crashed drop
    ip daddr . tcp dport @crashed drop
    ip saddr @down drop
    ip daddr @down drop
    iifname "{a}" numgen random mod 1000000 < {up} drop
    iifname "{b}" numgen random mod 1000000 < {down} drop
    iifname "{a}" ct state invalid {invalid}
    ct state invalid drop
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "{b}" ct state invalid {invalid}
    iifname "{b}" tcp flags syn drop
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    oifname "{b}" masquerade
  }}
}}
"""


class Lab:
    """The three namespaces and the NAT between them; :meth:`close` removes every trace."""

    def __init__(
        self,
        slots: int,
        nat_timeout: int | None,
        loss_up: float,
        loss_down: float,
        on_expiry: str,
        *,
        name: str | None = None,
    ):
        """Build it; ``name`` gives the namespaces a lasting name (:func:`net_namespaces`)
        instead of one carrying this process's PID."""
        reason = unavailable_reason()
        if reason:
            raise NetnsUnavailable(reason)
        if slots > 250 * 200:
            raise ValueError("at most 50,000 slots")
        if name is None:
            self.tag = f"{os.getpid() % 100000:05d}{secrets.token_hex(1)}"[:7]
            self.ns = {role: f"{PREFIX}{os.getpid()}-{self.tag}-{role}" for role in ROLES}
        else:
            self.tag = secrets.token_hex(4)[:7]
            self.ns = net_namespaces(name)
        self.slots = slots
        self.nat_timeout = nat_timeout
        self.created: list[str] = []
        try:
            self._build(loss_up, loss_down, on_expiry)
        except BaseException:
            self.close()
            raise

    def _build(self, loss_up, loss_down, on_expiry) -> None:
        c, n, s = self.ns["client"], self.ns["nat"], self.ns["server"]
        for name in (c, n, s):
            _run("ip", "netns", "add", name)
            self.created.append(name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        t = self.tag
        _run(
            "ip",
            "link",
            "add",
            f"sl{t}c",
            "netns",
            c,
            "type",
            "veth",
            "peer",
            "name",
            f"sl{t}a",
            "netns",
            n,
        )
        _run(
            "ip",
            "link",
            "add",
            f"sl{t}s",
            "netns",
            s,
            "type",
            "veth",
            "peer",
            "name",
            f"sl{t}b",
            "netns",
            n,
        )
        _run("ip", "-n", c, "addr", "add", f"{CLIENT_IP}/16", "dev", f"sl{t}c")
        batch = "".join(f"addr add {slot_address(i)}/16 dev sl{t}c\n" for i in range(self.slots))
        if batch:
            _run("ip", "-n", c, "-batch", "-", stdin=batch)
        _run("ip", "-n", n, "addr", "add", f"{CLIENT_GW}/16", "dev", f"sl{t}a")
        _run("ip", "-n", n, "addr", "add", f"{NAT_OUT}/24", "dev", f"sl{t}b")
        _run("ip", "-n", s, "addr", "add", f"{SERVER_IP}/24", "dev", f"sl{t}s")
        for name, dev in ((c, f"sl{t}c"), (n, f"sl{t}a"), (n, f"sl{t}b"), (s, f"sl{t}s")):
            _run("ip", "-n", name, "link", "set", dev, "up")
        _run("ip", "-n", c, "route", "add", "default", "via", CLIENT_GW)
        _run("ip", "-n", s, "route", "add", "default", "via", NAT_OUT)
        _run("ip", "netns", "exec", n, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        _run(
            "ip",
            "netns",
            "exec",
            n,
            "nft",
            "-f",
            "-",
            stdin=_ruleset(t, loss_up, loss_down, on_expiry),
        )
        # conntrack's sysctls exist once the NAT rule has loaded it; both are per namespace
        _run(
            "ip", "netns", "exec", n, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_loose=0"
        )
        if self.nat_timeout is not None:
            _run(
                "ip", "netns", "exec", n, "sysctl", "-q", "-w",
                f"net.netfilter.nf_conntrack_tcp_timeout_established={int(self.nat_timeout)}",
            )  # fmt: skip

    @classmethod
    def attach(cls, ns: dict[str, str], tag: str, nat_timeout: int | None) -> Lab:
        """The Lab object of namespaces built earlier (by another process): nothing is run."""
        lab = cls.__new__(cls)
        lab.ns, lab.tag, lab.nat_timeout, lab.slots = dict(ns), tag, nat_timeout, 0
        lab.created = [ns[role] for role in ROLES]
        return lab

    def veth(self, side: str) -> str:
        """The nat namespace's end of the client's (``client``) or server's (``server``) veth."""
        return f"sl{self.tag}{'a' if side == 'client' else 'b'}"

    def run(self, role: str, *args: str, stdin: str | None = None) -> str:
        """A command inside one namespace (an argument list); its stdout."""
        return _run("ip", "netns", "exec", self.ns[role], *args, stdin=stdin)

    async def nft(self, *args: str) -> None:
        """One nft command in the nat namespace, without blocking the event loop."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns["nat"], "nft", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise NetnsUnavailable(f"nft {' '.join(args)} failed: {err.decode().strip()}")

    def close(self) -> None:
        """Delete the namespaces (their veths, addresses and nftables tables go with them)."""
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.created = []


def net_namespaces(name: str) -> dict[str, str]:
    """role -> namespace of the lasting lab ``name``."""
    return {role: f"{NET_PREFIX}{name}-{role}" for role in ROLES}


def net_state_path(name: str) -> str:
    return os.path.join(NET_STATE_DIR, f"{name}.json")


def net_claimed(name: str) -> bool:
    """Whether the lasting lab ``name`` is claimed: its state file says it is up, or that a
    live process is building it. A missing or unreadable file claims nothing."""
    try:
        with open(net_state_path(name)) as f:
            state = json.load(f)
        if state.get("status") == "up":
            return True
        return os.path.exists(f"/proc/{int(state['pid'])}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def leftovers(all_runs: bool = False) -> list[str]:
    """Namespaces left by harness runs whose process is gone (or every one, with ``all_runs``);
    a lasting lab's (``simlab net``) when no state file claims it."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not name.startswith(PREFIX):
            continue
        if name.startswith(NET_PREFIX):
            if all_runs or not net_claimed(name[len(NET_PREFIX) :].rsplit("-", 1)[0]):
                out.append(name)
            continue
        try:
            pid = int(name[len(PREFIX) :].split("-")[0])
        except ValueError:
            continue
        if all_runs or not os.path.exists(f"/proc/{pid}"):
            out.append(name)
    return sorted(out)


def cleanup(all_runs: bool = False) -> list[str]:
    """Remove what :func:`leftovers` finds; returns the names removed."""
    removed = []
    for name in leftovers(all_runs):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        removed.append(name)
        if name.startswith(NET_PREFIX):  # its state file, if any, describes a lab now gone
            lab = name[len(NET_PREFIX) :].rsplit("-", 1)[0]
            with suppress(OSError):
                os.unlink(net_state_path(lab))
    return removed


class NetnsBackend:
    """The harness's path through a real kernel NAT with nftables impairments."""

    name = "netns"

    def __init__(self):
        self.lab: Lab | None = None
        self.rtt: float | None = None

    @staticmethod
    def refusals(s) -> list[str]:
        out = []
        reason = unavailable_reason()
        if reason:
            out.append(reason)
        for name, d in (("uplink", s.link.up), ("downlink", s.link.down)):
            if d.loss.model != "bernoulli":
                out.append(
                    f"link.{name}.loss.model: the netns backend loses packets independently (bernoulli), not {d.loss.model}"
                )
        idle = s.nat.idle_timeout
        if idle is not None and type(idle).__name__ != "Constant":
            out.append("nat.idle_timeout: the kernel's NAT has one timeout; use a constant")
        return out

    @staticmethod
    def nat_seconds(s) -> int | None:
        """The conntrack timeout for a scaled scenario: whole seconds, at least 1."""
        idle = s.nat.idle_timeout
        return None if idle is None else max(1, round(idle.value))

    async def start(self, run) -> None:
        s = run.s
        self.run = run
        self.nat_timeout = self.nat_seconds(s)
        self.lab = await asyncio.to_thread(
            Lab,
            s.connections,
            self.nat_timeout,
            s.link.up.loss.p,
            s.link.down.loss.p,
            s.nat.on_expiry,
        )

    def server_socket(self) -> socket.socket:
        with inside(self.lab.ns["server"]):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((SERVER_IP, SERVER_PORT))
        return sock

    def client_socket(self, slot: int) -> tuple[socket.socket, tuple[str, int]]:
        with inside(self.lab.ns["client"]):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((slot_address(slot) if slot >= 0 else CLIENT_IP, 0))
        sock.setblocking(False)
        return sock, (SERVER_IP, SERVER_PORT)

    def direct_socket(self) -> tuple[socket.socket, tuple[str, int]]:
        """From the client namespace's own address, which no impairment rule matches."""
        return self.client_socket(-1)

    async def crash(self, conn) -> None:
        await self.lab.nft(
            "add",
            "element",
            "ip",
            TABLE,
            "crashed",
            "{",
            f"{slot_address(conn.slot)} . {conn.port}",
            "}",
        )

    async def outage(self, slot: int, down: bool) -> None:
        verb = "add" if down else "delete"
        await self.lab.nft(verb, "element", "ip", TABLE, "down", "{", slot_address(slot), "}")

    def end(self, conn) -> None:
        pass

    async def probe_rtt(self, run, pings: int = 20) -> float:
        """Median WebSocket ping round trip through the NAT, before the run (from 198.18.0.2)."""
        from websockets.asyncio.client import connect

        sock, (host, port) = self.client_socket(-1)
        await asyncio.wait_for(run.loop.sock_connect(sock, (host, port)), 5)
        ws = await connect(
            f"ws://{host}:{port}/probe", sock=sock, proxy=None, compression=None, ping_interval=None
        )
        rtts = []
        try:
            for _ in range(pings):
                rtts.append(await asyncio.wait_for(await ws.ping(), 2))
        finally:
            ws.transport.abort()
        rtts.sort()
        return rtts[len(rtts) // 2]

    def nat_log(self, conn) -> list[float] | None:
        return conn.activity if self.nat_timeout is not None else None

    async def stop(self) -> None:
        if self.lab is not None:
            await asyncio.to_thread(self.lab.close)
            self.lab = None
