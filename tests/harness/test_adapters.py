"""The real-stack adapters on loopback: pings flow at the interval and each library's own
keepalive declares a frozen peer when that library's settings say it should.

A missing toolchain skips with the reason, and fails instead when
SIMLAB_REQUIRE_ADAPTERS=1 (CI sets it), so CI cannot pass by skipping. Every
process a test starts is ended by its PID in a ``finally``, frozen ones resumed first.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import statistics
import subprocess
import threading
import time
import tomllib
from pathlib import Path

import pytest

from simlab.harness import adapters
from simlab.harness.adapters import AdapterError

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
INTERVAL, TIMEOUT = 0.3, 0.6  # seconds: short, so the file stays within seconds
# A timer in Go, Node or asyncio fires within a few ms of its time on an idle machine; the
# rest is the OS scheduling the adapters, pytest and whatever else runs on CI's 2 cores.
# 0.25 s is below every interval here, so a keepalive one interval off still fails.
SLACK = 0.25
GAP_TOL = 0.05  # a ping gap's error: timer lateness and the pong's round trip on loopback


def needs(name: str) -> None:
    try:
        adapters.prepare(name)
    except AdapterError as exc:
        if os.environ.get("SIMLAB_REQUIRE_ADAPTERS") == "1":
            pytest.fail(f"SIMLAB_REQUIRE_ADAPTERS=1 but {exc}")
        pytest.skip(str(exc))


class Proc:
    """An adapter process and its JSON-lines events, read from stderr by a thread."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.events: list[dict] = []
        self.text: list[str] = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.frozen = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.p.stderr:
            line = raw.decode(errors="replace").strip()
            with self.cond:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.text.append(line)
                self.cond.notify_all()

    def of(self, name: str) -> list[dict]:
        with self.cond:
            return [e for e in self.events if e["event"] == name]

    def wait(self, name: str, count: int = 1, within: float = 10.0) -> list[dict]:
        end = time.monotonic() + within
        with self.cond:
            while len(found := [e for e in self.events if e["event"] == name]) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.argv[:3]}: no {count} {name!r} within {within} s; "
                        f"events {self.events[-6:]}, output {self.text[-6:]}"
                    )
                self.cond.wait(left)
            return found

    def freeze(self) -> float:
        os.kill(self.p.pid, signal.SIGSTOP)
        self.frozen = True
        return time.monotonic()

    def end(self) -> None:
        if self.p.poll() is None:
            if self.frozen:
                os.kill(self.p.pid, signal.SIGCONT)
            self.p.terminate()
            try:  # longer than the browser driver's own wait for its chromium (3 s)
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stderr.close()


@pytest.fixture
def procs():
    """Start adapters with ``procs(argv)``; every one is ended, by its PID, on every exit path."""
    started: list[Proc] = []

    def start(argv: list[str]) -> Proc:
        started.append(Proc(argv))
        return started[-1]

    try:
        yield start
    finally:
        for p in reversed(started):
            p.end()


def serve(procs, name: str, interval=INTERVAL, timeout=TIMEOUT, **extra) -> tuple[Proc, str]:
    """A server adapter on an ephemeral loopback port, and the ws:// URL it listens on."""
    server = procs(adapters.fill(adapters.command(name, "server", interval, timeout, **extra),
                                 host=HOST, port=0))  # fmt: skip
    addr = server.wait("listening", within=20)[0]["addr"]
    return server, f"ws://{addr}/"


def connect(procs, name: str, url: str, interval=INTERVAL, timeout=TIMEOUT, **extra) -> Proc:
    return procs(
        adapters.fill(adapters.command(name, "client", interval, timeout, **extra), url=url)
    )


def gaps(events: list[dict], key: str = "t") -> list[float]:
    ts = [e[key] for e in events]
    return [b - a for a, b in zip(ts, ts[1:], strict=False)]


def assert_interval(events: list[dict], interval: float, key: str = "t", scale: float = 1.0):
    g = [x / scale for x in gaps(events, key)]
    assert abs(statistics.median(g) - interval) <= GAP_TOL, g
    assert all(interval - GAP_TOL <= x <= interval + SLACK for x in g), g


def assert_declared(closed: dict, frozen_at: float, window: tuple[float, float]) -> None:
    """Declared (cause timeout) within the library's window after the freeze, plus SLACK."""
    assert closed["cause"] == "timeout", closed
    lo, hi = window
    late = closed["t"] - frozen_at
    assert lo - SLACK <= late <= hi + SLACK, (late, window)


# (server, client, the event the server's deadline counts from, its delay after that event)
SERVER_CASES = [
    ("gorilla", "ws", "pong_received", (TIMEOUT, TIMEOUT)),  # read deadline: last pong + pongWait
    ("ws", "ws", "pong_received", (INTERVAL, 2 * INTERVAL)),  # the tick after a missed pong
    ("socketio", "socketio", "ping_sent", (TIMEOUT, TIMEOUT)),  # the pong is pingTimeout late
    ("websockets", "websockets", "ping_sent", (TIMEOUT, TIMEOUT)),  # ping_timeout after a ping
]


@pytest.mark.parametrize(("server_name", "client_name", "anchor", "delay"), SERVER_CASES)
def test_the_server_pings_at_its_interval_and_declares_a_frozen_client(
    procs, server_name, client_name, anchor, delay
):
    needs(server_name)
    needs(client_name)
    server, url = serve(procs, server_name)
    # a websockets client only answers here, so the server's pings are the only ones
    extra = {"ping_interval": None} if client_name == "websockets" else {}
    client = connect(procs, client_name, url, **extra)
    client.wait("open", within=20)
    pings = server.wait("ping_sent", 4)
    server.wait("pong_received", 3)
    assert_interval(pings, INTERVAL)

    frozen_at = client.freeze()
    closed = server.wait("close", within=INTERVAL + TIMEOUT + 5)[0]
    assert_declared(closed, frozen_at, adapters.get(server_name).window(INTERVAL, TIMEOUT))
    # the tight check, on the server's own clock: the deadline counts from its last anchor
    last = max(e["t"] for e in server.of(anchor) if e["t"] < closed["t"])
    assert delay[0] - 0.01 <= closed["t"] - last <= delay[1] + SLACK, (closed["t"] - last, delay)


def test_the_socketio_client_closes_when_the_server_is_frozen(procs):
    needs("socketio")
    server, url = serve(procs, "socketio")
    client = connect(procs, "socketio", url)
    client.wait("open", within=20)
    assert_interval(client.wait("ping_received", 3), INTERVAL)
    frozen_at = server.freeze()
    closed = client.wait("close", within=INTERVAL + TIMEOUT + 5)[0]
    # Socket.IO's own client deadline: pingInterval + pingTimeout after the last ping
    assert_declared(closed, frozen_at, adapters.get("socketio").window(INTERVAL, TIMEOUT))
    last = max(e["t"] for e in client.of("ping_received"))
    assert INTERVAL + TIMEOUT - 0.01 <= closed["t"] - last <= INTERVAL + TIMEOUT + SLACK


def test_the_ws_client_deadline_closes_when_the_server_is_frozen(procs):
    needs("ws")
    server, url = serve(procs, "ws")
    client = connect(procs, "ws", url, deadline=TIMEOUT)
    client.wait("ping_received", 2, within=20)
    frozen_at = server.freeze()
    closed = client.wait("close", within=TIMEOUT + 5)[0]
    assert closed["cause"] == "timeout", closed
    last = max(e["t"] for e in client.of("ping_received"))
    assert TIMEOUT - 0.01 <= closed["t"] - last <= TIMEOUT + SLACK
    assert closed["t"] - frozen_at <= TIMEOUT + SLACK


def test_the_browser_app_heartbeat_runs_and_its_deadline_fires_on_a_frozen_server(procs):
    needs("chromium")
    needs("ws")
    server, url = serve(procs, "ws", app_pong=True)
    client = connect(procs, "chromium", url)
    client.wait("open", within=30)
    pings = client.wait("app_ping_sent", 4)
    client.wait("app_pong_received", 3)
    assert all(e["visibility"] == "visible" for e in pings)
    assert_interval(pings, INTERVAL, key="page_ms", scale=1000)
    frozen_at = server.freeze()
    closed = client.wait("close", within=INTERVAL + TIMEOUT + 5)[0]
    assert_declared(closed, frozen_at, adapters.get("chromium").window(INTERVAL, TIMEOUT))
    # the deadline counts from the first app ping that got no pong
    answered = max(int(e["data"].split()[1]) for e in client.of("app_pong_received"))
    first = next(e for e in client.of("app_ping_sent") if e["seq"] > answered)
    assert TIMEOUT - 0.01 <= (closed["page_ms"] - first["page_ms"]) / 1000 <= TIMEOUT + SLACK


# -- without processes --------------------------------------------------------------------


def test_commands_use_each_librarys_own_settings_and_placeholders():
    argv = adapters.command("socketio", "server", 25, 20)
    assert argv[argv.index("--pingInterval") + 1] == "25000"
    assert argv[argv.index("--pingTimeout") + 1] == "20000"
    assert argv[-2:] == ["{host}", "{port}"]
    assert adapters.command("websockets", "client", 20, 10)[-1] == "{url}"
    assert adapters.get("gorilla").settings(54, 60)["pongWait"] == 60
    filled = adapters.fill(["x", "-listen", "{host}:{port}", "{url}"], host=HOST, port=9, url="u")
    assert filled == ["x", "-listen", "127.0.0.1:9", "u"]


@pytest.mark.parametrize(
    ("name", "role", "interval", "timeout", "key"),
    [
        ("nope", "server", 1, 2, "adapter"),
        ("chromium", "server", 1, 2, "role"),
        ("ws", "server", 0, 2, "interval"),
        ("socketio", "client", 1, "2", "timeout"),
        ("gorilla", "server", 2, 1, "interval"),  # pingPeriod must be below pongWait
    ],
)
def test_bad_settings_name_the_key_and_what_is_allowed(name, role, interval, timeout, key):
    with pytest.raises(AdapterError) as info:
        adapters.command(name, role, interval, timeout)
    assert any(p.path == key for p in info.value.problems), info.value


def test_a_missing_toolchain_names_the_package_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(adapters.shutil, "which", lambda _name: None)
    for name, package in [("gorilla", "golang-go"), ("ws", "nodejs"), ("chromium", "chromium")]:
        with pytest.raises(AdapterError, match=package):
            adapters.prepare(name, tmp_path / "cache")


def test_the_wheel_carries_every_non_python_adapter_file():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = data["package-data"]["simlab.harness.adapters"]
    here = ROOT / "simlab" / "harness" / "adapters"
    shipped = {p for g in globs for p in here.glob(g)}
    needed = {
        p
        for p in here.rglob("*")
        if p.is_file() and p.suffix in {".go", ".js", ".json", ".html"}
        and "node_modules" not in p.parts
    }  # fmt: skip
    assert needed and needed <= shipped, sorted(map(str, needed - shipped))


def test_a_hidden_browser_tab_runs_its_heartbeat_at_most_once_a_second(procs):
    """Chrome's throttling of hidden pages' timers, reproduced headless (--headless=new)."""
    needs("chromium")
    needs("ws")
    server, url = serve(procs, "ws", app_pong=True)
    client = connect(procs, "chromium", url, 0.2, 5.0, hidden=True)
    pings = client.wait("app_ping_sent", 3, within=30)
    assert all(e["visibility"] == "hidden" for e in pings)
    # 0.2 s asked for; hidden pages' timers are aligned to whole seconds
    assert_interval(pings, 1.0, key="page_ms", scale=1000)


def test_a_shell_form_splits_back_into_the_same_argument_list():
    argv = adapters.command("websockets", "server", 0.5, 1.5)
    assert shlex.split(adapters.shell_form(argv)) == argv
    assert adapters.get("websockets").peer.sends_pings  # websockets pings from both ends
    assert not adapters.get("socketio").peer.sends_pings
