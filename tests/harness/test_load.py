"""Tests for ``simlab harness load``: a small real run, Ctrl-C, bad input, the bottleneck rule.

The real runs are small (200 connections for a few seconds, 100 for the interrupt
test) so the whole file stays well under 30 s; they need Linux (/proc for the
server's CPU and memory, and to check that no process is left behind).
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simlab.cli.main import main
from simlab.harness import load

LINUX = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="needs Linux /proc (CPU, RSS, leftover checks)"
)
ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (terminated and reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@LINUX
def test_small_run_holds_every_connection_and_cleans_up(capsys):
    fds_before = fds()
    soft_before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    code = main(
        [
            "harness",
            "load",
            "--connections",
            "200",
            "--interval",
            "200ms",
            "--duration",
            "2s",
            "--steps",
            "100",
            "--step-duration",
            "1s",
            "--client-processes",
            "2",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    r = json.loads(out)
    assert code == 0, err
    assert r["ok"]
    assert r["connections_opened"] == 200
    assert r["false_positives"] == 0
    assert r["lost_connections"] == 0 and r["connect_failures"] == 0
    assert r["connections_without_pong"] == 0
    assert r["connections_silent_in_last_window"] == 0
    assert [s["connections"] for s in r["steps"]] == [100, 200]
    for s in r["steps"]:
        assert s["pongs"] > 0 and s["unanswered"] == 0
        assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
        # Every connection pings once per interval: the window saw about that many pings.
        assert s["pings_per_s"] == pytest.approx(s["pings_due_per_s"], rel=0.25)
        assert s["server_cpu"] is not None and s["server_cpu"] >= 0
        assert s["server_rss_mb"] > 0 and s["client_rss_mb"] > 0
        assert s["client_cpu"] >= 0 and s["loop_lag_p99_ms"] is not None
    assert r["server_peak_rss_mb"] >= r["server_idle_rss_mb"] > 0
    assert r["bottleneck"]["server_cpu_max"] >= 0
    # The server and both clients were terminated and reaped; our sockets are closed,
    # and the open-file limit is as it was.
    assert len(r["client_pids"]) == 2
    for pid in [r["server_pid"], *r["client_pids"]]:
        assert gone(pid), pid
    assert fds() <= fds_before + 2
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft_before


@LINUX
def test_ctrl_c_stops_every_child_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "simlab", "harness", "load", "--connections", "100"]
        + ["--interval", "200ms", "--duration", "30s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    pids: list[int] = []
    err = b""
    deadline = time.monotonic() + 20
    try:
        while b"client pids" not in err and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                err += chunk
        text = err.decode()
        pids = [int(m) for m in re.findall(r"server pid (\d+)", text)]
        pids += [int(p) for p in re.search(r"client pids ([\d ]+)", text).group(1).split()]
        time.sleep(0.5)  # connections opening
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (err + rest).decode()
    assert "interrupted" in rest.decode()
    assert len(pids) == 2
    for pid in pids:
        assert gone(pid), pid


@pytest.mark.parametrize(
    "args",
    [
        ["--connections", "0"],
        ["--connections", "20001"],
        ["--interval", "fast"],
        ["--interval", "1s", "--timeout", "500ms"],
        ["--steps", "100,50"],
        ["--steps", "10,x"],
        ["--connections", "200", "--steps", "300"],
        ["--client-processes", "0"],
        ["--open-rate", "0"],
        ["--duration", "2h"],
        ["--max-wall", "1s"],
    ],
)
def test_bad_input_exits_2_without_starting_anything(capsys, args):
    assert main(["harness", "load", *args]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: simlab harness load") and out == ""
    assert "load-test server pid" not in err


def test_open_file_hard_limit_too_low_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(load.resource, "getrlimit", lambda which: (1024, 1024))
    assert main(["harness", "load", "--connections", "5000"]) == 2
    _, err = capsys.readouterr()
    assert "hard limit (RLIMIT_NOFILE) is 1,024" in err
    assert "at most 768 connections" in err
    assert "load-test server pid" not in err


def test_plan_defaults_and_shares():
    plan = load.make_plan(connections=5000, interval="1s", duration="60s", steps="500,2000")
    assert plan.timeout == 3.0 and plan.step_duration == 10.0
    assert plan.steps == (500, 2000, 5000)
    assert plan.windows() == [10.0, 10.0, 60.0]
    assert plan.client_processes == load.auto_client_processes(5000, 1.0)
    assert plan.max_wall >= plan.planned_seconds()
    for n in plan.steps:
        assert sum(plan.share(n, i) for i in range(plan.client_processes)) == n


def step(n, p99, server_cpu=0.1, client_cpu=0.3, lag=1.0, rate=1.0, wait=0.0, busy=0.5):
    """A measured step at ``n`` connections pinged once a second, on a 2-core machine."""
    return {
        "connections": n,
        "p99_ms": p99,
        "server_cpu": server_cpu,
        "client_cpu_max": client_cpu,
        "loop_lag_p99_ms": lag,
        "pings_per_s": rate * n,
        "pings_due_per_s": n,
        "server_runq_wait": wait,
        "client_runq_wait_max": 0.0,
        "machine_busy_cores": busy,
        "other_cpu": max(busy - server_cpu - client_cpu, 0.0),
    }


def test_bottleneck_server_when_latency_grows_and_the_client_keeps_up():
    b = load.bottleneck(
        [step(500, 1.0), step(1000, 1.5), step(2000, 12.0, server_cpu=0.5)], 1.0, cpus=2
    )
    assert b["step"] == 2000 and b["limited_by"] == ["server"] and b["server_step"] == 2000
    assert "12.0x" in b["reason"]


def test_bottleneck_server_cpu_saturated():
    b = load.bottleneck([step(500, 1.0), step(4000, 3.0, server_cpu=0.95)], 1.0, cpus=2)
    assert b["step"] == 4000 and b["limited_by"] == ["server"]


def test_bottleneck_client_when_its_loop_lags_or_falls_behind():
    b = load.bottleneck([step(500, 1.0), step(5000, 800.0, lag=600.0, rate=0.8)], 1.0, cpus=2)
    assert b["step"] == 5000 and b["limited_by"] == ["client"] and b["server_step"] is None
    assert len(b["client_signs"]) == 2


def test_bottleneck_machine_when_the_server_waits_for_a_cpu():
    # Latency grew, the server used a third of a core, but waited for a CPU 200 ms
    # per second on cores kept busy by other processes: not the server's limit.
    slow = step(5000, 500.0, server_cpu=0.3, client_cpu=0.6, wait=0.2, busy=1.95)
    b = load.bottleneck([step(500, 1.0), slow], 1.0, cpus=2)
    assert b["limited_by"] == ["machine"] and b["server_step"] is None
    assert any("200 ms per second" in x for x in b["machine_signs"])
    assert any("1.05 cores of it other processes" in x for x in b["machine_signs"])


def test_bottleneck_none_extrapolates_server_cpu():
    b = load.bottleneck([step(500, 1.0, server_cpu=0.05), step(1000, 2.0, server_cpu=0.1)], 1.0)
    assert b["step"] is None and b["server_step"] is None
    assert b["server_cpu_per_ping_us"] == pytest.approx(100.0)
    assert b["server_saturates_at_estimate"] == 9000
