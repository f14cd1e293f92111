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

from simlab.scenario.schema import Scenario

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


# -- adaptive policies: no library has them built in ----------------------------------------------

ADAPTIVE_KINDS = ("network-state", "nat-probe", "traffic-aware")
LIBRARIES = "python websockets, gorilla/websocket, Socket.IO, SignalR, the browser"


def is_adaptive_kind(kind: str) -> bool:
    """Whether ``heartbeat.policy.kind`` moves or skips heartbeats (``throttled-client`` is a
    fixed interval on a throttled client: what users live with, not a policy to pick)."""
    return kind in ADAPTIVE_KINDS


def policy_parameters(s: Scenario) -> dict:
    """The parameters of ``s``'s heartbeat policy an application needs to run it (seconds)."""
    hb, p = s.heartbeat, s.heartbeat.policy
    slack = s.detector.timeout - hb.interval
    out: dict = {"kind": p.kind}
    if p.kind == "network-state":
        normal_i = p.normal.interval if p.normal.interval is not None else hb.interval
        normal_t = p.normal.timeout if p.normal.timeout is not None else s.detector.timeout
        out |= {
            "window_pings": p.window,
            "hold_pings": p.hold,
            "late_s": p.late,
            "normal.interval_s": normal_i,
            "normal.timeout_s": normal_t,
            "weak.interval_s": p.weak.interval,
            "weak.timeout_s": p.weak.timeout,
            "weak.enter_loss": p.weak.loss,
            "weak.exit_loss": p.weak.exit_loss,
            "high_latency.interval_s": p.high_latency.interval,
            "high_latency.timeout_s": p.high_latency.timeout,
            "high_latency.enter_rtt_s": p.high_latency.rtt,
            "high_latency.exit_rtt_s": p.high_latency.exit_rtt,
        }
    elif p.kind == "nat-probe":
        out |= {
            "floor_s": p.floor if p.floor is not None else hb.interval,
            "ceiling_s": p.ceiling,
            "growth": p.growth,
            "step_s": p.step,
            "precision_s": p.precision,
            "margin": p.margin,
            "reprobe_s": p.reprobe,
            "timeout_slack_s": slack,
        }
    elif p.kind == "traffic-aware":
        out |= {"interval_s": hb.interval, "timeout_s": deadline(s)}
    return out


def _recipe(s: Scenario) -> tuple[str, str]:
    """(the recipe in a few steps, what it does) for ``s``'s adaptive policy."""
    p = policy_parameters(s)
    kind = p["kind"]
    if kind == "network-state":
        return (
            f"keep the last {p['window_pings']} pings' round trips; a pong more than"
            f" {_num(p['late_s'])} s after the window's median, or none before the next ping,"
            f" is a loss. loss >= {p['weak.enter_loss']:g} -> weak: ping every"
            f" {_num(p['weak.interval_s'])} s, give up after {_num(p['weak.timeout_s'])} s (leave"
            f" at loss <= {p['weak.exit_loss']:g}); else median RTT >="
            f" {_num(p['high_latency.enter_rtt_s'])} s -> high latency: every"
            f" {_num(p['high_latency.interval_s'])} s, give up after"
            f" {_num(p['high_latency.timeout_s'])} s (leave at <="
            f" {_num(p['high_latency.exit_rtt_s'])} s); else normal: every"
            f" {_num(p['normal.interval_s'])} s, give up after {_num(p['normal.timeout_s'])} s."
            f" Hold each state at least {p['hold_pings']} pings.",
            "The interval and the give-up deadline follow the path's measured loss and round"
            " trip, with hysteresis so a path at a threshold does not flap.",
        )
    if kind == "nat-probe":
        reprobe = "never" if p["reprobe_s"] is None else f"every {_num(p['reprobe_s'])} s"
        return (
            f"start pinging every {_num(p['floor_s'])} s; after each ping that survives, grow"
            f" the interval to x{p['growth']:g} + {_num(p['step_s'])} s (at most"
            f" {_num(p['ceiling_s'])} s); when a connection breaks on a longer gap, bisect"
            f" between the longest gap that survived and the shortest that failed until they"
            f" are {_num(p['precision_s'])} s apart, then settle {p['margin']:.0%} below the"
            f" longest that survived (never below {_num(p['floor_s'])} s) and try once above it"
            f" {reprobe}. Give up after interval + {_num(p['timeout_slack_s'])} s of silence."
            " Remember what was learned across reconnects (per network).",
            "Finds the path's NAT/middlebox idle timeout by letting probes fail, then pings"
            " just often enough to keep it; every failed probe is a broken connection and a"
            " reconnect.",
        )
    return (
        f"when the ping timer fires (every {_num(p['interval_s'])} s), skip the ping if"
        " application messages within the last interval already proved the client alive to"
        " the detecting side and refreshed the NAT (client-to-server traffic, or either"
        " direction over TCP); re-arm the timer for when the oldest of them is one interval old."
        f" Give up after {_num(p['timeout_s'] or 0)} s without any message.",
        "Busy connections send no heartbeats at all (MQTT's keep-alive): only idle ones pay.",
    )


def adaptive_recipe(s: Scenario) -> tuple[LibrarySetting, ...]:
    """The application-level recipe of ``s``'s adaptive policy, for libraries that lack it."""
    kind = s.heartbeat.policy.kind
    steps, what = _recipe(s)
    caveat = (
        f"No library has the {kind} policy built in ({LIBRARIES}): the application runs it."
        " Turn the library's own keepalive off (python websockets: ping_interval=None;"
        " gorilla: no ping ticker; Socket.IO and SignalR cannot turn theirs off: set their"
        " interval and timeout above the policy's longest, so they never fire first) and send"
        " the pings as application messages."
    )
    if kind == "traffic-aware":
        caveat += (
            " Nearest built-in behaviour: SignalR's keepalive is only sent after"
            " KeepAliveInterval without any other message (on the server, and in the JS"
            " client), and MQTT's keep-alive counts any packet."
        )
    return (
        LibrarySetting(
            f"application level ({kind})",
            policy_parameters(s),
            steps,
            what,
            caveat,
        ),
    )
