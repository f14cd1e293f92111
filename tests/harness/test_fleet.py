"""Tests for simlab.harness.fleet: a real small fleet on loopback against the fleet model.

A 100-client fleet (admission 5 handshakes/s, backlog 20, a 10 s restart, time
scale 0.05: about 2-5 s of wall time per real run) agrees with 40 model
replications under full jitter and under Socket.IO's backo2; the no-jitter
exponential policy makes synchronized waves at the backoff times on real
sockets too; a model whose admission rate is doubled disagrees with the same
real run (the check has teeth); bad input exits 2; no socket, task or thread is
left behind, also when a run is interrupted.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import copy
import dataclasses
import os
import socket
import threading

import numpy as np
import pytest
import yaml

from simlab.cli.main import main
from simlab.fleet.model import simulate_fleet
from simlab.fleet.spec import load
from simlab.harness.crosscheck import format_check
from simlab.harness.fleet import (
    Admission,
    RealFleet,
    run_fleet_crosscheck,
    run_real_fleet,
    scale_fleet,
)
from simlab.scenario.distributions import Constant

SCALE = 0.05
N = 100
SMALL = {
    "kind": "fleet",
    "name": "small-restart",
    "clients": N,
    "horizon": "2m",
    "seed": 5,
    "client": {"rtt": "1ms"},
    "policy": "full_jitter",
    # a handshake queued behind a full backlog waits 20 / (5/s) = 4 s; the model counts the
    # real server's work on a wave of attempts as free, so the connect timeout leaves room
    # for it: 10 s is 0.3 s of wall time at scale 0.05. With 5 s (50 ms of wall time) a
    # run whose event loop stalled ~0.1 s (a full garbage-collector pass over the test
    # session's heap, before the harness froze it: simlab.harness.heap) timed out 2-8 of
    # 500 attempts, where the model has none.
    "server": {"handshake_rate": 5, "backlog": 20, "connect_timeout": "10s"},
    "trigger": {"kind": "restart", "down": "10s"},
}


def small(**changes):
    raw = copy.deepcopy(SMALL)
    raw.update(changes)
    return load(raw)[0]


def scaled_small(**changes):
    return dataclasses.replace(scale_fleet(small(**changes), SCALE), clients=N)


def _sockets() -> int:
    """Open sockets of this process."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd closed while listing
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.fixture(scope="module")
def jitter_run():
    """One real full-jitter run, shared by the agreement and the teeth tests."""
    return run_real_fleet(scaled_small())


def test_scaling_shrinks_durations_and_speeds_up_rates():
    f = small(policy="socketio")
    s = scale_fleet(f, 0.1)
    assert s.horizon == pytest.approx(12.0)
    assert s.trigger.down == pytest.approx(1.0)
    assert s.server.connect_timeout == pytest.approx(1.0)
    assert s.server.handshake_rate == pytest.approx(50.0)
    assert s.client.heartbeat.interval == pytest.approx(2.5)
    assert s.client.detector.timeout == pytest.approx(4.5)
    assert (s.policy.min_delay, s.policy.max_delay) == pytest.approx((0.1, 0.5))
    assert s.policy.randomization == f.policy.randomization  # not a duration
    phoenix = scale_fleet(small(policy="phoenix"), 0.5).policy
    assert phoenix.steps[0] == pytest.approx(0.005) and phoenix.then == pytest.approx(2.5)


def test_admission_serves_first_come_first_served_at_the_rate_and_refuses_beyond_the_backlog():
    """10 simultaneous arrivals, 1 worker, 10 ms each, backlog 5: 6 served 10 ms apart, 4 full."""

    async def scenario():
        loop = asyncio.get_running_loop()
        busy = (array.array("d"), array.array("d"))
        adm = Admission(loop, loop.time(), 1, 5, busy)
        done, full = [], 0

        async def arrive(k):
            nonlocal full
            if adm.full():
                full += 1
                return
            await adm.serve(0.01, 0.0)
            done.append((k, adm.now()))

        await asyncio.gather(*(arrive(k) for k in range(10)))
        return done, full, list(busy[0]), adm.peak

    done, full, starts, peak = asyncio.run(scenario())
    assert full == 4 and peak == 5
    assert [k for k, _ in done] == list(range(6))  # first come, first served
    assert starts == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04, 0.05])  # logical: no drift
    finished = np.array([t for _, t in done])
    assert np.all(finished >= np.arange(1, 7) * 0.01 - 1e-9)


def test_full_jitter_fleet_agrees_with_the_model(jitter_run):
    check = run_fleet_crosscheck(small(), time_scale=SCALE, connections=N, real=jitter_run)
    print(format_check(check))
    assert check.agree
    metrics = {c.metric for c in check.tested}
    assert {"attempts /client", "attempts refused /client", "reconnection time (s)"} <= metrics
    assert jitter_run.storm.summary["reconnected"] == N


def test_the_crosscheck_has_teeth_a_model_admitting_twice_as_fast_disagrees(jitter_run):
    def doubled(f):
        return dataclasses.replace(
            f, server=dataclasses.replace(f.server, handshake_rate=2 * f.server.handshake_rate)
        )

    check = run_fleet_crosscheck(
        small(), time_scale=SCALE, connections=N, real=jitter_run, model_bug=doubled
    )
    print(format_check(check))
    assert not check.agree
    bad = [c.metric for c in check.tested if not c.agrees(check.threshold)]
    assert "reconnection time (s)" in bad


def test_socketio_fleet_agrees_with_the_model():
    # backo2 sends 90 % of the fleet back at the same instant: at scale 0.1 the wave's
    # real cost stays well inside the connect timeout's room (see SMALL)
    check = run_fleet_crosscheck(small(policy="socketio"), time_scale=2 * SCALE, connections=N)
    print(format_check(check))
    assert check.agree


def test_no_jitter_exponential_makes_synchronized_waves_at_the_backoff_times():
    """While the server is down every client retries at the same instants: 1, 3, 7 s (scaled)."""
    fleet = scaled_small(policy="exponential")
    real = run_real_fleet(fleet)
    resolution = real.info["resolution_s"]
    rtt = Constant(real.info["rtt_s"])
    model = simulate_fleet(
        dataclasses.replace(fleet, client=dataclasses.replace(fleet.client, rtt=rtt))
    )
    ra, ma = real.storm.attempts, model.attempts
    down = fleet.trigger.down
    waves = sorted(k for k in ma.attempt.unique() if ma[ma.attempt == k].t.max() < down)
    assert waves == [1, 2, 3]  # 0.05, 0.15, 0.35 s < 0.5 s down
    expected = np.cumsum([SCALE * 2**j for j in range(3)])
    for k, at in zip(waves, expected, strict=True):
        m, r = ma[ma.attempt == k].t.to_numpy(), ra[ra.attempt == k].t.to_numpy()
        assert np.ptp(m) < 1e-9 and m[0] == pytest.approx(at, abs=1e-3)  # the model: one instant
        assert len(r) == N  # every real client, refused by the closed port
        assert (ra[ra.attempt == k].outcome == "refused_down").all()
        # the real wave: every attempt within the measured resolution of the backoff time,
        # and far narrower than the gap to the next wave
        assert np.all(np.abs(r - at) <= resolution), (k, r.min(), r.max(), resolution)
        assert np.ptp(r) < 0.25 * SCALE * 2**k  # the next delay: the gap to the next wave
    # the first wave after the restart hits the server at once: one admitted per backlog slot
    # (plus those the server finished while the wave arrived), the rest refused
    k4 = ra[ra.attempt == 4]
    assert len(k4) == N and (k4.outcome == "refused_full").sum() >= N - 30


def test_nothing_is_left_behind_after_a_run_and_after_an_interrupted_one():
    before_sockets, before_threads = _sockets(), threading.active_count()

    async def full_run():
        run = RealFleet(scaled_small(policy="socketio"))
        await run.main()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return run.port, others

    port, others = asyncio.run(full_run())
    assert others == []
    assert _sockets() == before_sockets and threading.active_count() == before_threads
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass

    async def interrupted():
        run = RealFleet(scaled_small(policy="socketio"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(run.main(), 0.8)  # cut off mid-storm
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return run, others

    run, others = asyncio.run(interrupted())
    assert others == []
    assert len(run.log.a_time) > 0  # the storm had begun
    assert _sockets() == before_sockets and threading.active_count() == before_threads


@pytest.mark.parametrize(
    "change, args, message",
    [
        ({}, ["--connections", "5000"], "--connections"),
        ({}, ["--time-scale", "0"], "--time-scale"),
        ({"trigger": {"kind": "blip", "fraction": 0.5}}, [], "trigger.kind"),
        ({"trigger": {"kind": "restart", "notice": "silent"}}, [], "trigger.notice"),
        ({"server": {"servers": 2}}, [], "server.servers"),
        ({"server": {"handshake_rate": -1}}, [], "server.handshake_rate"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, change, args, message):
    raw = copy.deepcopy(SMALL)
    for key, value in change.items():
        raw[key] = {**raw.get(key, {}), **value} if key == "server" else value
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["crosscheck", str(path), *args]) == 2
    assert message in capsys.readouterr().err


def test_the_command_runs_a_fleet_file(tmp_path, capsys):
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "policy": "equal_jitter"}))
    out = tmp_path / "rows.csv"
    code = main(["crosscheck", str(path), "--connections", "50", "--out", str(out)])
    text = capsys.readouterr().out
    assert "real fleet on 127.0.0.1" in text and "attempts /client" in text
    assert code in (0, 1) and out.exists()
    assert code == 0, text
