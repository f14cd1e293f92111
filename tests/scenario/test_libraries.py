"""Library translations keep the ping interval and the longest silence before giving up."""

from __future__ import annotations

import pytest

import simlab
from simlab.scenario.libraries import deadline, translate


def settings(**overrides):
    s = simlab.load_scenario({"heartbeat": {"interval": "25s"}}, overrides)
    return {lib.library: lib for lib in translate(s)}, s


def test_timeout_detector_in_every_library():
    libs, s = settings(**{"detector.timeout": "55s"})
    assert deadline(s) == 55.0
    assert libs["python websockets"].options == {"ping_interval": 25.0, "ping_timeout": 30.0}
    assert libs["gorilla/websocket (Go)"].options == {"pingPeriod": 25.0, "pongWait": 55.0}
    assert libs["Socket.IO (server options)"].options == {
        "pingInterval": 25000,
        "pingTimeout": 30000,
    }
    assert libs["ASP.NET Core SignalR"].options == {
        "KeepAliveInterval": 25.0,
        "ClientTimeoutInterval": 55.0,
    }
    assert libs["browser (app-level heartbeat)"].options == {
        "interval_ms": 25000,
        "timeout_ms": 55000,
    }
    assert "ping_interval=25, ping_timeout=30" in libs["python websockets"].snippet
    assert "25 * time.Second" in libs["gorilla/websocket (Go)"].snippet
    assert "counts from the ping" in libs["python websockets"].semantics
    assert "pingInterval + pingTimeout = 55 s" in libs["Socket.IO (server options)"].semantics
    assert "read deadline" in libs["gorilla/websocket (Go)"].semantics
    assert libs["ASP.NET Core SignalR"].caveat == ""  # 55 s >= 2 x 25 s


def test_signalr_guidance_and_fractional_seconds():
    libs, _ = settings(**{"heartbeat.interval": "27.5s", "detector.timeout": "40s"})
    assert "below the 2 x keepalive guidance (55 s)" in libs["ASP.NET Core SignalR"].caveat
    assert "27500 * time.Millisecond" in libs["gorilla/websocket (Go)"].snippet
    assert libs["python websockets"].options["ping_timeout"] == pytest.approx(12.5)


def test_missed_pings_become_one_deadline_with_a_caveat():
    libs, s = settings(**{"detector.kind": "missed", "detector.missed.k": 2})
    assert deadline(s) == 3 * 25.0  # 2 intervals, then the ack timeout (= the interval)
    assert libs["python websockets"].options["ping_timeout"] == 50.0
    assert "2 unanswered pings" in libs["python websockets"].caveat


def test_client_pings_in_the_browser_and_hidden_tabs():
    libs, _ = settings(**{"heartbeat.initiator": "client", "detector.timeout": "55s"})
    browser = libs["browser (app-level heartbeat)"]
    assert "setInterval" in browser.snippet and "Hidden tabs" in browser.caveat
    assert "85 s" in browser.caveat  # a deadline above 60 s + the interval
    assert "always pings from the server" in libs["Socket.IO (server options)"].caveat


def test_adaptive_detectors_have_no_fixed_deadline():
    s = simlab.load_scenario({"detector": {"kind": "phi"}})
    assert deadline(s) is None and translate(s) == ()
