"""Heartbeat settings in the words of the libraries people run: python websockets, gorilla/websocket,
Socket.IO, ASP.NET Core SignalR, and an app-level heartbeat in the browser.

Every translation keeps two numbers of the simulated setting: the ping interval I and the
*deadline* T, the longest silence (from the last pong or heartbeat heard) before the
connection is given up. Each library spells T differently:

- python websockets: ``ping_timeout`` counts from each ping, and the next ping is due
  ``ping_interval`` after the previous pong, so T = ping_interval + ping_timeout;
- gorilla/websocket: ``pongWait`` is a read deadline, pushed forward by each pong: T = pongWait;
- Socket.IO: the server waits ``pingTimeout`` for each pong; the client gives up when no ping
  came for ``pingInterval + pingTimeout``: T = pingInterval + pingTimeout;
- SignalR: ``ClientTimeoutInterval`` is a silence deadline, like gorilla's (any message counts);
  Microsoft's guidance is a timeout of about twice the keepalive interval;
- a browser app-level heartbeat: a timer re-armed by every message, ``setTimeout(close, T)``.

Sources: each library's code and documentation, collected in the project's field-data notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .scenario import Scenario

# Chrome's intensive throttling: chained timers of a page hidden for 5 minutes run at most
# once a minute (Chrome 88+).
HIDDEN_TAB_TIMER_PERIOD_S = 60.0


@dataclass(frozen=True)
class LibrarySetting:
    """One library's configuration for a setting: its option names and values (in the
    library's own units), a snippet, what the options mean there, and any caveat."""

    library: str
    options: dict = field(hash=False)
    snippet: str
    semantics: str
    caveat: str = ""

    def to_dict(self) -> dict:
        return {
            "library": self.library,
            "options": dict(self.options),
            "snippet": self.snippet,
            "semantics": self.semantics,
            "caveat": self.caveat,
        }


def deadline(s: Scenario) -> float | None:
    """The longest silence, from the last heartbeat heard, before the detector declares.

    ``timeout``: the read deadline; ``missed`` (k pings unanswered within ack_timeout):
    k x interval + ack_timeout; ``nfd``: interval + delta (the next freshness point).
    ``phi`` and ``adaptive`` move their deadline with what they observe: None.
    """
    d, interval = s.detector, s.heartbeat.interval
    if d.kind == "timeout":
        return d.timeout
    if d.kind == "missed":
        return d.missed.k * interval + s.ack_timeout
    if d.kind == "nfd":
        return interval + s.nfd_delta
    return None


def _num(seconds: float) -> str:
    """Seconds as a short literal: 25, 27.5, 0.25."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _go(seconds: float) -> str:
    if float(seconds).is_integer():
        return f"{int(seconds)} * time.Second"
    return f"{_ms(seconds)} * time.Millisecond"


def translate(s: Scenario) -> tuple[LibrarySetting, ...]:
    """The setting of ``s`` (interval, detector) for each library; empty if the detector
    has no fixed deadline (phi accrual, adaptive), which these libraries cannot express."""
    t = deadline(s)
    if t is None:
        return ()
    i = s.heartbeat.interval
    grace = t - i
    notes = []
    if s.detector.kind == "missed" and s.detector.missed.k > 1:
        notes.append(
            f"simlab's detector waits for {s.detector.missed.k} unanswered pings; these libraries"
            " close on one deadline, set here to the same longest silence"
            f" ({_num(t)} s). Over TCP a pong is late, not lost, so the two behave alike."
        )
    if s.detector.kind == "nfd":
        notes.append(
            "NFD-S's freshness points assume synchronized clocks; a silence deadline of"
            f" interval + delta ({_num(t)} s) is its nearest library form."
        )
    shared = " ".join(notes)
    client_pings = s.heartbeat.initiator == "client"

    def caveat(*extra: str) -> str:
        return " ".join(x for x in (shared, *extra) if x)

    out = [
        LibrarySetting(
            "python websockets",
            {"ping_interval": i, "ping_timeout": grace},
            f"websockets.serve(handler, host, port, ping_interval={_num(i)}, ping_timeout={_num(grace)})"
            f"  # or connect(uri, ...): the side that pings",
            "Sends a ping ping_interval after the previous pong; ping_timeout counts from the"
            " ping: no pong by then closes the connection with code 1011 (keepalive ping"
            f" timeout). Longest silence: ping_interval + ping_timeout = {_num(t)} s.",
            caveat(),
        ),
        LibrarySetting(
            "gorilla/websocket (Go)",
            {"pingPeriod": i, "pongWait": t},
            f"const pingPeriod = {_go(i)}; const pongWait = {_go(t)}"
            " // SetPongHandler: conn.SetReadDeadline(time.Now().Add(pongWait))",
            "pongWait is a read deadline that each pong pushes forward (the pong handler calls"
            " SetReadDeadline); a ticker writes a ping every pingPeriod, which must be below"
            " pongWait (the chat example uses 9/10 of it).",
            caveat(),
        ),
        LibrarySetting(
            "Socket.IO (server options)",
            {"pingInterval": _ms(i), "pingTimeout": _ms(grace)},
            f"new Server(httpServer, {{ pingInterval: {_ms(i)}, pingTimeout: {_ms(grace)} }})",
            "The server pings every pingInterval and closes if the pong is not back within"
            " pingTimeout; the client gives up when no ping came for pingInterval +"
            f" pingTimeout = {_num(t)} s. Milliseconds.",
            caveat(
                "Socket.IO always pings from the server: the simulated client-side pinging"
                " has no equivalent; the interval and deadline are kept."
                if client_pings
                else ""
            ),
        ),
        LibrarySetting(
            "ASP.NET Core SignalR",
            {"KeepAliveInterval": i, "ClientTimeoutInterval": t},
            f"options.KeepAliveInterval = TimeSpan.FromSeconds({_num(i)});"
            f" options.ClientTimeoutInterval = TimeSpan.FromSeconds({_num(t)});"
            f" // JS client: keepAliveIntervalInMilliseconds = {_ms(i)};"
            f" serverTimeoutInMilliseconds = {_ms(t)}",
            "KeepAliveInterval: the server sends a ping after this long without sending"
            " anything; ClientTimeoutInterval: it closes a client it has heard nothing from"
            " (messages or the client's keepalive pings) for this long. Any message resets"
            " both. Microsoft's guidance: a timeout of about 2 x the keepalive interval.",
            caveat(
                f"{_num(t)} s is below the 2 x keepalive guidance ({_num(2 * i)} s): one late"
                " keepalive is a disconnect; the sweep's figures are what back it."
                if t < 2 * i
                else ""
            ),
        ),
        _browser(i, t, client_pings, shared),
    ]
    return tuple(out)


def _browser(i: float, t: float, client_pings: bool, shared: str) -> LibrarySetting:
    """An app-level heartbeat in a web page: browsers answer protocol pings themselves but do
    not show them to scripts, so a page that wants to notice a dead server needs messages."""
    arm = (
        "let deadline; const arm = () => { clearTimeout(deadline);"
        f" deadline = setTimeout(() => ws.close(4000, 'heartbeat timeout'), {_ms(t)}); }};"
    )
    if client_pings:
        snippet = (
            f"{arm} ws.onopen = () => {{ arm(); setInterval(() => ws.send('ping'), {_ms(i)}); }};"
            " ws.onmessage = (e) => { arm(); /* 'pong' or data */ };"
        )
        semantics = (
            f"The page sends 'ping' every {_num(i)} s (setInterval) and closes the socket when"
            f" nothing came back for {_num(t)} s (a timer re-armed by every message)."
        )
    else:
        snippet = (
            f"{arm} ws.onopen = arm; ws.onmessage = (e) => {{ arm();"
            " if (e.data === 'ping') ws.send('pong'); };"
        )
        semantics = (
            f"The server sends an application 'ping' message every {_num(i)} s; the page"
            f" answers from onmessage and closes the socket when no message came for"
            f" {_num(t)} s (a timer re-armed by every message)."
        )
    extra = ""
    if client_pings and t < HIDDEN_TAB_TIMER_PERIOD_S + i:
        extra = (
            "Hidden tabs: Chrome runs the timers of a page hidden for 5 minutes at most once a"
            " minute, so a page that pings with setInterval goes up to 60 s between pings; the"
            f" server's deadline ({_num(t)} s) would close hidden tabs. Ping from the server,"
            f" or give the server a deadline above {_num(HIDDEN_TAB_TIMER_PERIOD_S + i)} s."
        )
    elif not client_pings:
        extra = (
            "Hidden tabs: Chrome may run the page's deadline timer up to a minute late while"
            " the tab is hidden (never early); message handlers still answer pings."
        )
    return LibrarySetting(
        "browser (app-level heartbeat)",
        {"interval_ms": _ms(i), "timeout_ms": _ms(t)},
        snippet,
        semantics,
        " ".join(x for x in (shared, extra) if x),
    )
