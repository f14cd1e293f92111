"""The NAT mapping's lifetime: closed forms, the Poisson gap, and agreement with the SimPy model.

Against the model: monitor mode, so a connection ends only when its mapping expires
(and the detector notices); the lifetime is the NAT break's time after the opening.
Tolerance Z standard errors of the mean lifetime (tests/engines/test_model.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simlab
from simlab.checks import panel
from simlab.engines.analytic import chain as analytic
from simlab.engines.analytic import natlife
from simlab.engines.analytic.theory import nat_survival
from simlab.scenario.distributions import Constant

from ..test_model import Z, mean_and_se, scenario


def mean_life(s) -> tuple[float, float, float]:
    """The model's mean mapping lifetime, its standard error across slots, and the expiries.

    The renewal estimate (time lived / expiries), so mappings alive at the horizon count.
    """
    result = simlab.simulate(s)
    ids = result.slots["slot"].to_numpy()
    lived, expired = panel.nat_lifetimes(result.records, ids)
    mean, se = panel._ratio(lived, expired)
    return mean, se, expired.sum()


# -- closed forms -------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("c", [15.0, 20.0, 25.0, 35.0])
def test_one_refresh_per_round_is_the_geometric_closed_form(p, c):
    sch = natlife.Schedule(10.0, ((p, ()), (1 - p, (0.0,))))
    got = natlife.mapping_life(sch, Constant(c))
    want = nat_survival(10.0, c, p)
    assert got.survives == want.survives
    if not want.survives:
        assert got.mean_life == pytest.approx(want.mean_time_to_expiry, rel=1e-12)
        assert got.refresh_expiry_p == pytest.approx(want.p_gap_too_long, rel=1e-12)


def test_jittered_rounds_by_hand():
    # 10 s x U(0.8, 1.2), 10 % lost, 20 s timeout: the mapping expires after a refresh if the
    # next one is lost and two intervals (triangular on [16, 24] s) reach 20 s, or two are lost
    sch = natlife.Schedule(10.0, ((0.1, ()), (0.9, (0.0,))), 0.0, 0.2)
    got = natlife.mapping_life(sch, Constant(20.0))
    tail = 0.1 * 0.9 * 0.5 + 0.1**2
    assert got.refresh_expiry_p == pytest.approx(tail, rel=1e-12)
    # E[gap; no expiry] = 0.9 x 10 + 0.1 x 0.9 x E[S_2; S_2 < 20] (= 0.5 x (20 - 4/3))
    below = 0.9 * 10 + 0.1 * 0.9 * 0.5 * (20 - 4 / 3)
    assert got.mean_life == pytest.approx(below / tail + 20, rel=1e-12)
    # the numerical convolution this replaced in theory.nat_survival was off by 2e-4
    assert nat_survival(10, 20, 0.1, 0.2).p_gap_too_long == pytest.approx(tail, rel=1e-12)


def test_poisson_gap_against_its_global_formula_and_mean():
    a, c = 0.1, 20.0
    b = a * math.exp(-a * c)

    def g(t):  # the alternating sum: exact in exact arithmetic, fine where b t is small
        return sum((-b) ** k * (t - k * c) ** k / math.factorial(k) for k in range(int(t // c) + 1))

    gap = natlife.PoissonGap(a, c)
    for t in (5.0, 20.0, 25.0, 40.0, 60.0, 100.0, 150.0):
        want = g(t) - (math.exp(-a * c) * g(t - c) if t >= c else 0.0)
        assert gap.survival(t) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert gap.integral(5000.0) == pytest.approx(gap.mean(), rel=1e-12)
    # far out, where the alternating sum has lost every digit, the pieces still decay
    far = [natlife.PoissonGap(0.01, 100.0).survival(t) for t in (1e4, 2e4, 4e4)]
    assert 0 < far[2] < far[1] < far[0] < 1


def test_poisson_gap_against_a_direct_simulation():
    a, c, n = 0.1, 20.0, 400_000
    rng = np.random.default_rng(7)
    t, tau, alive = np.zeros(n), np.zeros(n), np.ones(n, bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        x = rng.exponential(1 / a, len(idx))
        done = x >= c
        tau[idx[done]] = t[idx[done]] + c
        t[idx[~done]] += x[~done]
        alive[idx[done]] = False
    gap = natlife.PoissonGap(a, c)
    for q in (25.0, 60.0, 100.0):
        share = (tau > q).mean()
        assert abs(share - gap.survival(q)) < Z * math.sqrt(share * (1 - share) / n)
    mean, se = mean_and_se(tau)
    assert abs(mean - gap.mean()) < Z * se


def test_uniform_timeouts_that_outlast_every_silence_are_a_share():
    # no loss: the first silence is T + the downlink delay (10.05 s), then 10 s
    s = analytic_case(
        nat={"idle_timeout": {"dist": "uniform", "low": "5s", "high": "15s"}}, loss=0.0
    )
    out = analytic.run(s)
    assert out["nat_survives"] is False
    assert out["nat_expiring_share"] == pytest.approx((10.05 - 5) / 10, rel=1e-12)
    # those expire in the first silence, at their own timeout: the mean of U(5, 10.05)
    assert out["nat_mean_time_to_expiry_s"] == pytest.approx((5 + 10.05) / 2, rel=1e-9)
    assert "nat_expiries_per_mapping_hour" not in out  # the others never expire


def analytic_case(loss=0.1, **sections):
    return scenario(
        horizon="20000s",
        connections=8,
        seed=17,
        heartbeat={"interval": "10s", **sections.pop("heartbeat", {})},
        detector=sections.pop("detector", {"timeout": "25s", "on_declare": "monitor"}),
        link=sections.pop("link", {"loss": loss}),
        **sections,
    )


# -- against the model --------------------------------------------------------------------------

CASES = {
    # the pong refreshes 4 s after its ping: one lost ping after it leaves 16 s, not 20 s
    "client-pings-refresh-both": dict(
        heartbeat={"initiator": "client"},
        link={"uplink": {"loss": 0.1, "delay": "2s"}, "downlink": {"loss": 0.25, "delay": "2s"}},
        nat={"idle_timeout": "17s", "refresh": "both"},
    ),
    "server-pings-app-traffic-up": dict(
        link={"loss": 0.2},
        nat={"idle_timeout": "15s"},
        app={"rate": 0.05, "direction": "up"},
    ),
    "server-heartbeats-refresh-both-app-traffic": dict(
        heartbeat={"style": "oneway"},
        link={"loss": 0.2},
        nat={"idle_timeout": "25s", "refresh": "both"},
        app={"rate": 0.02, "direction": "up"},
    ),
    "uniform-timeout": dict(
        link={"loss": 0.1},
        nat={"idle_timeout": {"dist": "uniform", "low": "10s", "high": "35s"}},
    ),
    "client-pings-jitter-refresh-both": dict(
        heartbeat={"initiator": "client", "jitter": 0.4},
        link={"uplink": {"loss": 0.1, "delay": "2s"}, "downlink": {"loss": 0.25, "delay": "2s"}},
        nat={"idle_timeout": "17s", "refresh": "both"},
    ),
    "server-heartbeats-jitter-uniform-timeout": dict(
        heartbeat={"style": "oneway", "jitter": 0.3},
        link={"loss": 0.15},
        nat={"idle_timeout": {"dist": "uniform", "low": "11s", "high": "30s"}, "refresh": "both"},
    ),
    "uniform-timeout-app-traffic-both-outbound-refresh": dict(
        link={"loss": 0.3},
        nat={"idle_timeout": {"dist": "uniform", "low": "12s", "high": "28s"}},
        app={"rate": 0.03},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mean_lifetime_agrees_with_the_model(name):
    s = analytic_case(**CASES[name])
    assert not natlife.problems(s)
    life = natlife.mapping_life(natlife.schedule(s), s.nat.idle_timeout)
    assert not life.survives
    mean, se, expiries = mean_life(s)
    assert expiries > 300
    assert abs(mean - life.mean_life) < Z * se


def test_the_pongs_refresh_matters_so_the_check_has_teeth():
    both = analytic_case(**CASES["client-pings-refresh-both"])
    outbound = analytic_case(
        **{**CASES["client-pings-refresh-both"], "nat": {"idle_timeout": "17s"}}
    )
    mean, se, _ = mean_life(both)
    wrong = analytic.run(outbound)["nat_mean_time_to_expiry_s"]
    assert abs(mean - wrong) > 3 * Z * se


def test_random_delays_do_not_matter_when_only_the_clients_sends_refresh():
    s = analytic_case(
        heartbeat={"style": "oneway", "initiator": "client"},
        detector={"kind": "nfd", "nfd": {"delta": "15s"}, "on_declare": "monitor"},
        nat={"idle_timeout": "25s"},
        link={"loss": 0.1, "delay": {"dist": "exponential", "mean": "50ms"}},
    )
    out = analytic.run(s)
    assert out["nat_mean_time_to_expiry_s"] == pytest.approx(
        nat_survival(10, 25, 0.1).mean_time_to_expiry, rel=1e-12
    )


def test_refuses_what_is_not_a_renewal_from_the_opening():
    cases = {
        "unbounded distribution": {"nat": {"idle_timeout": {"dist": "exponential", "mean": "30s"}}},
        "app.rate towards the client": {
            "nat": {"idle_timeout": "25s", "refresh": "both"},
            "app": {"rate": 0.1},
        },
        "random delays with a NAT": {
            "heartbeat": {"style": "oneway"},
            "detector": {"kind": "nfd", "nfd": {"delta": "15s"}},
            "nat": {"idle_timeout": "25s", "refresh": "both"},
            "link": {"loss": 0.1, "delay": {"dist": "exponential", "mean": "50ms"}},
        },
        "gilbert with a NAT": {
            "nat": {"idle_timeout": "25s"},
            "link": {"loss": {"model": "gilbert", "p_gb": 0.1, "p_bg": 0.5, "loss_bad": 0.5}},
        },
    }
    for phrase, sections in cases.items():
        problems = analytic.unsupported(analytic_case(**sections))
        assert any(phrase in p for p in problems), (phrase, problems)
