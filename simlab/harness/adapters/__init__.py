"""Adapters: small programs that run real WebSocket stacks with their own keepalive.

The lab compares the model with "the library as people deploy it": gorilla/websocket
(Go, the chat example's keepalive), Node ``ws`` (the README's heartbeat), Socket.IO
(Engine.IO's ping/pong), a headless Chromium page (an application-level heartbeat:
a page cannot send protocol pings) and python ``websockets`` (the harness's own
endpoint). Each is started as an argument list with placeholders: a server's
command ends in ``{host} {port}``, a client's in ``{url}`` (:func:`fill`).

Every adapter writes JSON lines on stderr: ``{"t": CLOCK_MONOTONIC seconds, "lib",
"role", "event", ...}`` with events ``listening`` (servers, with the bound
``addr``), ``open``, ``ping_sent``, ``ping_received``, ``pong_received`` (the app
heartbeat's ``app_ping_sent``/``app_pong_received`` for the browser) and ``close``
with its ``cause`` (``timeout`` when the keepalive gave up) and ``code``.

:func:`prepare` builds what an adapter needs once into a cache directory keyed by
the sources' hash (the Go binary; ``npm ci`` from the pinned package-lock.json);
a missing toolchain raises :class:`AdapterError` naming the package to install.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from simlab.errors import Problem, ScenarioError

HERE = Path(__file__).resolve().parent
GORILLA_SRC = Path("/usr/share/gocode/src/github.com/gorilla/websocket")
GO_PACKAGES = "golang-go golang-github-gorilla-websocket-dev"
NODE_FILES = ("package.json", "package-lock.json", "events.js", "ws_server.js", "ws_client.js",
              "sio_server.js", "sio_client.js")  # fmt: skip


class AdapterError(ScenarioError):
    """An adapter that cannot be prepared or configured: what is missing and how to get it."""

    def __init__(self, name: str, problems: list[Problem]):
        super().__init__(problems, f"adapter {name}")
        self.name = name


def cache_dir() -> Path:
    """Where prepared adapters live: $SIMLAB_ADAPTER_CACHE, else ~/.cache/simlab/adapters."""
    env = os.environ.get("SIMLAB_ADAPTER_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "simlab" / "adapters"


def _digest(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _missing(name: str, what: str, package: str) -> AdapterError:
    return AdapterError(name, [Problem("toolchain", f"{what} not found: install {package}")])


def _run(name: str, cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        hint = " (npm ci needs the npm registry once; later runs reuse the cache)"
        text = f"{' '.join(cmd[:2])} failed: " + " | ".join(tail)
        raise AdapterError(name, [Problem("prepare", text + (hint if "npm" in cmd[0] else ""))])


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished build into place; a concurrent preparer that won keeps its copy."""
    try:
        os.replace(tmp, final) if tmp.is_file() else tmp.rename(final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


_prepared: dict[tuple[str, Path], Path] = {}


def prepare_go(cache: Path | None = None) -> Path:
    """The gorilla server binary, built once (GOPATH mode, offline) per source and Go version."""
    cache = cache or cache_dir()
    if ("go", cache) in _prepared:
        return _prepared["go", cache]
    go = shutil.which("go")
    if go is None:
        raise _missing("gorilla", "the Go toolchain ('go')", f"Debian's {GO_PACKAGES}")
    if not (GORILLA_SRC / "conn.go").exists():
        raise _missing(
            "gorilla", f"gorilla/websocket's source ({GORILLA_SRC})",
            "Debian's golang-github-gorilla-websocket-dev",
        )  # fmt: skip
    src = HERE / "gorilla" / "server.go"
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True).stdout
    library = [p for p in GORILLA_SRC.glob("*.go") if not p.name.endswith("_test.go")]
    key = _digest([src, *library], version.strip())
    binary = cache / f"gorilla-server-{key}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".gorilla-{os.getpid()}"
        env = {
            **os.environ,
            "GO111MODULE": "off",  # GOPATH mode: the Debian package's source, no module download
            "GOPATH": "/usr/share/gocode",
            "GOCACHE": str(cache / "go-build"),
            "GOFLAGS": "",
            "GOPROXY": "off",
        }
        if shutil.which(os.environ.get("CC", "gcc")) is None:
            # no C compiler: pure Go (the cold build then recompiles the standard library)
            env["CGO_ENABLED"] = "0"
        _run("gorilla", [go, "build", "-o", str(tmp), str(src)], env=env)
        _publish(tmp, binary)
    _prepared["go", cache] = binary
    return binary


def prepare_node(cache: Path | None = None) -> Path:
    """A directory with the Node adapters and their node_modules (``npm ci``, pinned versions)."""
    cache = cache or cache_dir()
    if ("node", cache) in _prepared:
        return _prepared["node", cache]
    if shutil.which("node") is None:
        raise _missing("node", "Node.js ('node')", "Debian's nodejs")
    npm = shutil.which("npm")
    if npm is None:
        raise _missing("node", "npm", "Debian's npm")
    files = [HERE / "node" / f for f in NODE_FILES]
    final = cache / f"node-{_digest(files)}"
    if not (final / "node_modules").exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".node-", dir=cache))
        try:
            for f in files:
                shutil.copy2(f, tmp / f.name)
            _run(
                "node",
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                cwd=tmp,
            )
            _publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _prepared["node", cache] = final
    return final


def prepare_chromium(cache: Path | None = None) -> Path:
    from simlab.harness.adapters.browser import find_chromium

    path = find_chromium()
    if path is None:
        raise _missing("chromium", "a Chromium browser ('chromium')", "Debian's chromium")
    return Path(path)


def prepare_python(cache: Path | None = None) -> Path:
    return Path(sys.executable)


def _node() -> str:
    return shutil.which("node") or "node"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.6g}"


def _go_duration(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}us"


@dataclass(frozen=True)
class Peer:
    """What the library's other end does by default: the both-ends question."""

    answers_pings: bool  # it pongs (protocol pings, or Engine.IO's ping packets)
    sends_pings: bool  # it runs a keepalive of its own
    deadline: str | None  # when it gives up on a silent peer, in the library's terms


@dataclass(frozen=True)
class Adapter:
    """One real stack: its roles, its settings under its own names, and how it detects.

    ``settings(interval, timeout)`` maps the lab's heartbeat interval and timeout
    (seconds) to the library's option names; ``window(interval, timeout)`` is when
    this side declares a peer that froze at time 0 (ignoring scheduling delays);
    ``other_side`` says what the library does at the other end by default, and
    ``peer`` the same as data (:class:`Peer`), for runs that model both ends.
    """

    name: str
    lib: str
    roles: tuple[str, ...]
    needs: str  # the packages to install
    prepare: Callable[[Path | None], Path]
    settings: Callable[[float, float], dict]
    argv: Callable[[Path, str, dict], list[str]]  # (prepared path, role, settings) -> argv
    window: Callable[[float, float], tuple[float, float]]
    detects: str
    other_side: str
    peer: Peer
    notes: tuple[str, ...] = field(default_factory=tuple)


def _gorilla_settings(interval: float, timeout: float) -> dict:
    return {"pingPeriod": interval, "pongWait": timeout, "writeWait": 10.0}


def _gorilla_argv(path: Path, role: str, s: dict) -> list[str]:
    return [
        str(path), "-ping-period", _go_duration(s["pingPeriod"]),
        "-pong-wait", _go_duration(s["pongWait"]), "-write-wait", _go_duration(s["writeWait"]),
        "{host}", "{port}",
    ]  # fmt: skip


def _ws_argv(path: Path, role: str, s: dict) -> list[str]:
    if role == "server":
        argv = [_node(), str(path / "ws_server.js"), "--interval-ms", _ms(s["interval"])]
        return [*argv, *(["--app-pong"] if s.get("app_pong") else []), "{host}", "{port}"]
    deadline = s.get("deadline")
    extra = ["--deadline-ms", _ms(deadline)] if deadline else []
    return [_node(), str(path / "ws_client.js"), *extra, "{url}"]


def _sio_argv(path: Path, role: str, s: dict) -> list[str]:
    if role == "server":
        return [
            _node(), str(path / "sio_server.js"), "--pingInterval", _ms(s["pingInterval"]),
            "--pingTimeout", _ms(s["pingTimeout"]), "{host}", "{port}",
        ]  # fmt: skip
    return [_node(), str(path / "sio_client.js"), "{url}"]


def _chromium_argv(path: Path, role: str, s: dict) -> list[str]:
    argv = [sys.executable, "-m", "simlab.harness.adapters.browser"]
    argv += ["--interval-ms", f"{s['interval_ms']:.6g}", "--timeout-ms", f"{s['timeout_ms']:.6g}"]
    return [*argv, *(["--hidden"] if s.get("hidden") else []), "{url}"]


def _pyws_argv(path: Path, role: str, s: dict) -> list[str]:
    interval = s["ping_interval"] if s["ping_interval"] is not None else 0
    argv = [str(path), "-m", "simlab.harness.adapters.pyws", role, "--ping-interval"]
    argv += [f"{interval:.6g}", "--ping-timeout", f"{s['ping_timeout']:.6g}"]
    return [*argv, *(["{host}", "{port}"] if role == "server" else ["{url}"])]


ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        Adapter(
            name="gorilla",
            lib="gorilla/websocket (Go; Debian's golang-github-gorilla-websocket-dev)",
            roles=("server",),
            needs=f"Debian: {GO_PACKAGES}",
            prepare=prepare_go,
            settings=_gorilla_settings,
            argv=_gorilla_argv,
            # the read deadline is the last pong + pongWait; the last pong came at most one
            # pingPeriod before the freeze
            window=lambda i, t: (t - i, t),
            detects="read deadline of pongWait, pushed forward by each pong; a ping every "
            "pingPeriod (< pongWait)",
            other_side="a gorilla client answers pings (default ping handler) and sends none; "
            "the chat example's keepalive is server-side only",
            peer=Peer(answers_pings=True, sends_pings=False, deadline=None),
        ),
        Adapter(
            name="ws",
            lib="ws 8.x (Node; npm)",
            roles=("server", "client"),
            needs="Debian: nodejs npm; npm registry for ws",
            prepare=prepare_node,
            settings=lambda i, t: {"interval": i},
            argv=_ws_argv,
            # terminated at the tick after a ping that got no pong: one to two intervals
            window=lambda i, t: (0.0, 2 * i),
            detects="the README's heartbeat: every interval, terminate clients that did not "
            "pong since the last ping, then ping the others (no separate timeout)",
            other_side="a ws client answers pings by itself (autoPong) and has no deadline "
            "unless the app adds the README's client check (--deadline-ms)",
            peer=Peer(answers_pings=True, sends_pings=False, deadline=None),
            notes=("the timeout is the interval: a dead peer is noticed 1-2 intervals late",),
        ),
        Adapter(
            name="socketio",
            lib="socket.io / socket.io-client 4.8.x (Node; npm)",
            roles=("server", "client"),
            needs="Debian: nodejs npm; npm registry for socket.io, socket.io-client",
            prepare=prepare_node,
            settings=lambda i, t: {"pingInterval": i, "pingTimeout": t},
            argv=_sio_argv,
            window=lambda i, t: (t, i + t),
            detects="server: a ping every pingInterval, closed when its pong is pingTimeout "
            "late; client: closed when no ping for pingInterval + pingTimeout",
            other_side="the client answers pings with pongs and closes after pingInterval + "
            "pingTimeout without a ping (values from the server's handshake)",
            peer=Peer(answers_pings=True, sends_pings=False, deadline="pingInterval + pingTimeout"),
            notes=("websocket transport only; Engine.IO pings are messages, not protocol pings",),
        ),
        Adapter(
            name="chromium",
            lib="Chromium (Debian's chromium), headless=new, app-level heartbeat",
            roles=("client",),
            needs="Debian: chromium; the server side is the ws adapter with --app-pong",
            prepare=prepare_chromium,
            settings=lambda i, t: {"interval_ms": i * 1000, "timeout_ms": t * 1000},
            argv=_chromium_argv,
            # the deadline starts at the first unanswered app ping: within one interval
            window=lambda i, t: (t, i + t),
            detects="an app ping every interval_ms; closed when no app pong within timeout_ms "
            "of the oldest unanswered ping",
            other_side="a browser answers protocol pings (invisible to the page) and cannot "
            "send them: the server needs an app-level pong (ws adapter --app-pong)",
            peer=Peer(answers_pings=True, sends_pings=False, deadline=None),
            notes=(
                "hidden=True puts the page in a background tab: Chrome then runs its timers at "
                "most once a second (seen headless too); intensive throttling (once a minute "
                "after 5 hidden minutes) is not exercised by the tests",
            ),
        ),
        Adapter(
            name="websockets",
            lib="python websockets (the harness's endpoint)",
            roles=("server", "client"),
            needs="the websockets Python package (a simlab dependency)",
            prepare=prepare_python,
            settings=lambda i, t: {"ping_interval": i, "ping_timeout": t},
            argv=_pyws_argv,
            window=lambda i, t: (t, i + t),
            detects="a ping every ping_interval (less the last latency); failed with 1011 when "
            "its pong is ping_timeout late",
            other_side="the other end answers pings and, by default, pings too "
            "(ping_interval=20, ping_timeout=20 on client and server alike)",
            peer=Peer(answers_pings=True, sends_pings=True, deadline="ping_timeout after a ping"),
        ),
    )
}


def get(name: str, role: str | None = None) -> Adapter:
    """The adapter ``name``; with ``role``, one that plays it (else :class:`AdapterError`)."""
    a = ADAPTERS.get(name)
    if a is None:
        allowed = ", ".join(sorted(ADAPTERS))
        raise AdapterError(name, [Problem("adapter", f"unknown {name!r}; allowed: {allowed}")])
    if role is not None and role not in a.roles:
        problem = Problem("role", f"{name} has no {role!r}; it plays: {', '.join(a.roles)}")
        raise AdapterError(name, [problem])
    return a


def prepare(name: str, cache: Path | None = None) -> Path:
    """Build or install what ``name`` needs, once per source hash; the prepared path."""
    return get(name).prepare(cache)


def command(
    name: str,
    role: str,
    interval: float,
    timeout: float,
    *,
    cache: Path | None = None,
    **extra,
) -> list[str]:
    """The argument list that starts ``name`` as ``role``, with ``{host} {port}`` or ``{url}``.

    ``interval`` and ``timeout`` (seconds) become the library's own settings
    (:attr:`Adapter.settings`); ``extra`` adds adapter options: ``app_pong`` (ws
    server), ``deadline`` (ws client, seconds), ``hidden`` (chromium).
    """
    a = get(name, role)
    problems = [
        Problem(key, f"must be a number > 0 (seconds), got {value!r}")
        for key, value in (("interval", interval), ("timeout", timeout))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
    ]
    if not problems and name == "gorilla" and not interval < timeout:
        problems.append(
            Problem("interval", f"gorilla needs pingPeriod < pongWait; got {interval} >= {timeout}")
        )
    if problems:
        raise AdapterError(name, problems)
    settings = {**a.settings(interval, timeout), **extra}
    return a.argv(a.prepare(cache), role, settings)


def shell_form(argv: list[str]) -> str:
    """``argv`` as one string for ``--server-cmd``/``--client-cmd`` (split back with shlex)."""
    return shlex.join(argv)


def fill(argv: list[str], **values: object) -> list[str]:
    """``argv`` with ``{host}``, ``{port}``, ``{url}`` replaced in each argument (no shell)."""
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", str(value))
        out.append(arg)
    return out
