"""The time-scale rule: which scales keep the question a scenario asks (hand-worked cases).

Linux's TCP give-up time with a 200 ms minimum RTO, a 120 s maximum and 15 retries is
0.2 * (2^10 - 1) + 6 * 120 = 924.6 s; the margin on kernel constants is 10%.
"""

from __future__ import annotations

import dataclasses

import pytest

from simlab.harness import crosscheck as cc
from simlab.harness import scale
from simlab.harness.netns import NetnsBackend
from simlab.scenario.distributions import Constant
from simlab.scenario.reader import load

GIVE_UP = 0.2 * (2**10 - 1) + 6 * 120.0


def scenario(**sections):
    return load({"horizon": "24h", "connections": 4, **sections})[0]


def the_issue():
    """The user's file: a 3 s interval against a 2 s NAT."""
    return scenario(
        heartbeat={"interval": "3s"},
        detector={"kind": "timeout", "timeout": "10s"},
        nat={"idle_timeout": "2s", "on_expiry": "drop"},
    )


def test_the_issue_is_refused_at_0_05_and_kept_at_0_5():
    s = the_issue()
    # 2 s * 0.05 = 0.1 s, which conntrack rounds to 1 s: longer than the 0.15 s interval
    problems = scale.scale_problems(s, 0.05, "netns")
    assert problems, "the scale that turned 2 s < 3 s into 1 s > 0.15 s must be refused"
    first = problems[0]
    assert "rounds to 1 s" in first and "heartbeat interval" in first
    assert "--time-scale 0.5 " in first  # the scale that keeps it: 2 s -> 1 s exactly
    # the next whole second up from 0.1 s is 1 s: k / 2 with k = 1
    assert scale.auto_scale(s, "netns") == pytest.approx(0.5)
    assert scale.scale_problems(s, 0.5, "netns") == []
    assert scale.scale_problems(s, 1.0, "netns") == []


def test_the_proxy_emulates_the_nat_exactly_so_no_whole_seconds():
    s = the_issue()
    assert scale.scale_problems(s, 0.05, "proxy") == []
    assert scale.auto_scale(s, "proxy") == pytest.approx(scale.DEFAULT_SCALE)


def test_a_nat_rounded_onto_the_detector_timeout_is_a_broken_ordering():
    # the panel's nat-below-interval at 0.04: NAT 60 s -> 2.4 s -> 2 s, timeout 50 s -> 2 s
    s = scenario(
        heartbeat={"interval": "20s"},
        detector={"kind": "timeout", "timeout": "50s"},
        nat={"idle_timeout": "60s", "on_expiry": "drop"},
    )
    problems = scale.scale_problems(s, 0.04, "netns")
    assert len(problems) == 1 and "as long as the detector timeout" in problems[0]
    # whole seconds from 0.04 up: ceil(0.04 * 60) = 3 s, scale 3 / 60
    assert scale.auto_scale(s, "netns", prefer=0.04) == pytest.approx(0.05)
    assert "--time-scale 0.05 " in problems[0]


def test_the_minimum_rto_bounds_the_scale_where_packets_are_lost():
    lossy = scenario(
        heartbeat={"interval": "5s"},
        detector={"kind": "timeout", "timeout": "30s"},
        link={"loss": {"model": "bernoulli", "p": 0.05}},
    )
    # 5 s must stay 10% above 200 ms: x >= 0.22 / 5 = 0.044
    assert scale.auto_scale(lossy, "netns", prefer=0.01) == pytest.approx(0.044)
    problems = scale.scale_problems(lossy, 0.04, "netns")
    assert len(problems) == 1
    assert "minimum RTO" in problems[0] and "at least 0.044" in problems[0]
    assert scale.scale_problems(lossy, 0.044, "netns") == []
    lossless = scenario(
        heartbeat={"interval": "5s"}, detector={"kind": "timeout", "timeout": "30s"}
    )
    # no packet is ever retransmitted: the RTO decides nothing
    assert scale.auto_scale(lossless, "proxy", prefer=0.01) == pytest.approx(0.01)
    assert scale.scale_problems(lossless, 0.01, "proxy") == []


def test_a_detector_slower_than_tcp_gives_up_keeps_tcp_first():
    s = scenario(heartbeat={"interval": "60s"}, detector={"kind": "timeout", "timeout": "30m"})
    need = GIVE_UP * 1.1 / 1800  # 1800 s must stay 10% above 924.6 s: x >= 0.56503
    assert need == pytest.approx(0.56503, abs=1e-5)
    # and so must the deadline's 1740 s margin past the next ping: x >= 0.58452, the binding one
    margin_need = GIVE_UP * 1.1 / 1740
    assert margin_need == pytest.approx(0.58452, abs=1e-5)
    assert scale.auto_scale(s, "proxy") == pytest.approx(0.585)  # 3 digits, rounded up
    problems = scale.scale_problems(s, 0.05, "proxy")
    assert len(problems) == 2 and all("give-up time" in p for p in problems)
    assert "--time-scale 0.585 " in problems[0]
    assert scale.scale_problems(s, 0.584, "proxy")  # just under the bound
    assert scale.scale_problems(s, 0.585, "proxy") == []


def test_the_missed_detector_is_judged_by_its_ack_timeout():
    s = scenario(
        heartbeat={"interval": "20s"},
        detector={"kind": "missed", "missed": {"k": 1, "ack_timeout": "4s"}},
        link={"loss": {"model": "bernoulli", "p": 0.01}},
    )
    # ack timeout 4 s must stay above 0.22 s: x >= 0.055 (the interval needs only 0.011)
    assert scale.auto_scale(s, "proxy", prefer=0.01) == pytest.approx(0.055)


def test_no_scale_keeps_everything_when_whole_seconds_and_the_rto_disagree():
    # the scenario's own TCP has a 5 s minimum RTO, so its 3 s interval is *below* the RTO:
    # the scaled interval must stay below 200 ms / 1.1 (x <= 0.0606), but conntrack's whole
    # seconds need the 2 s NAT at 1 s at least (x >= 0.5)
    s = scenario(
        heartbeat={"interval": "3s"},
        detector={"kind": "timeout", "timeout": "10s"},
        nat={"idle_timeout": "2s", "on_expiry": "drop"},
        link={"loss": {"model": "bernoulli", "p": 0.01}, "tcp": {"min_rto": "5s"}},
    )
    assert scale.auto_scale(s, "netns") is None
    assert "no time scale keeps" in scale.scale_problems(s, 0.05, "netns")[0]
    assert scale.auto_scale(s, "proxy") == pytest.approx(0.05)
    with pytest.raises(Exception, match="no time scale keeps"):
        cc.choose_scale(s, "netns", None)


def test_bad_scales_are_problems_not_crashes():
    assert "positive" in scale.scale_problems(the_issue(), 0.0, "netns")[0]
    assert "positive" in scale.scale_problems(the_issue(), float("nan"), "netns")[0]


@pytest.mark.parametrize("value", [0.1, 0.5, 1.49, 2.5, 3.6, 60.0])
def test_conntrack_seconds_is_what_the_netns_backend_sets(value):
    s = scenario(nat={"idle_timeout": "1s"})
    s = dataclasses.replace(s, nat=dataclasses.replace(s.nat, idle_timeout=Constant(value)))
    assert scale.conntrack_seconds(value) == NetnsBackend.nat_seconds(s)


@pytest.mark.parametrize("item", [i["name"] for i in cc.PANEL])
@pytest.mark.parametrize("backend", ["netns", "proxy"])
def test_the_automatic_scale_keeps_every_ordering_of_the_panel(item, backend):
    s = load(next(i for i in cc.PANEL if i["name"] == item)["scenario"])[0]
    x = scale.auto_scale(s, backend)
    assert x is not None and x >= scale.DEFAULT_SCALE
    assert scale.scale_problems(s, x, backend) == []
    if backend == "netns" and s.nat.idle_timeout is not None:
        whole = s.nat.idle_timeout.value * x
        assert whole == pytest.approx(round(whole))  # conntrack gets it exactly


def test_the_deadlines_margin_past_the_next_ping_keeps_its_side_of_the_minimum_rto():
    """gorilla's 54 s pingPeriod and 60 s pongWait at 1 % loss: a lost ping or pong has
    6 s to be retransmitted (200 ms RTO) before the deadline. At a scale of 0.0093 that
    margin is 56 ms, under the kernel's unscaled RTO: every loss would be a false
    disconnect, in the model and on the sockets alike, a different question. The margin
    needs 0.2 * 1.1 / 6 = 0.0367 at least; the interval alone would allow 0.0041."""
    s = scenario(
        heartbeat={"interval": "54s"},
        detector={"kind": "timeout", "timeout": "60s"},
        link={"transport": "tcp", "loss": 0.01},
    )
    problems = scale.scale_problems(s, 0.0093, "proxy")
    assert any("margin past the next ping" in p for p in problems), problems
    assert scale.auto_scale(s, "proxy", prefer=0.001) == pytest.approx(0.2 * 1.1 / 6, rel=1e-3)
    lossless = scenario(
        heartbeat={"interval": "54s"},
        detector={"kind": "timeout", "timeout": "60s"},
        link={"transport": "tcp", "loss": 0.0},
    )  # nothing is retransmitted: the RTO does not matter
    assert not any("margin" in p for p in scale.scale_problems(lossless, 0.0093, "proxy"))
