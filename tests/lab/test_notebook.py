"""The notebooks' package code: the connection timeline, the studies of simlab.lab.notebook, their
figures (simlab.lab.notebook_plots) and the notebook helpers (simlab.lab.explore)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import simlab
from simlab.engines import registry as engines
from simlab.engines import timeline
from simlab.engines.analytic import theory
from simlab.engines.model import SlotModel
from simlab.engines.network import backoff, give_up_after
from simlab.harness import crosscheck
from simlab.lab import explore
from simlab.lab import notebook as lab
from simlab.lab import notebook_plots as labplots

DEMO = "examples/demo.yaml"


def labelled(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel(), "every axis is labelled"
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    assert buf.tell() > 1000


# -- the timeline of one connection ------------------------------------------------------


@pytest.fixture(scope="module")
def lossy():
    """The demo with 5 % loss: retransmissions, crashes, stalls, outages."""
    s = simlab.load_scenario(DEMO, {"connections": 12, "horizon": "2h", "link.loss.p": 0.05})
    return s, simlab.simulate(s, trace=True)


@pytest.fixture(scope="module")
def nat():
    """Pings every 30 s +- 30 % through a 35 s NAT: some gaps let it expire."""
    s = simlab.load_scenario(
        DEMO,
        {
            "connections": 3,
            "horizon": "30m",
            "nat.idle_timeout": "35s",
            "heartbeat.jitter": 0.3,
            "link.outages": None,
            "peer.stall": None,
            "link.loss.p": 0,
        },
    )
    return s, simlab.simulate(s, trace=True)


def test_rounds_put_each_ping_and_its_pong_together(lossy):
    s, r = lossy
    table = timeline.rounds(r, 0, 1)
    assert list(table.columns) == timeline.ROUND_COLUMNS
    assert (table.pinger == "server").all() and (table.kind == "ping").all()
    assert table.seq.is_unique and (np.diff(table.sent) > 0).all()
    ok = table.dropna(subset=["received"])
    assert ((ok.answered >= ok.sent) & (ok.received >= ok.answered)).all()
    assert np.allclose(ok.rtt_s, ok.received - ok.sent)
    clean = ok[~ok.retransmitted]
    assert len(clean) > 100
    # no loss, no stall in the way: the constant 40 ms each way
    assert (np.isclose(clean.rtt_s, 0.08) | (clean.rtt_s > 0.08)).all()
    assert np.isclose(clean.rtt_s, 0.08).mean() > 0.9
    trace = r.trace[(r.trace.slot == 0) & (r.trace.connection == 1)]
    assert table.lost.sum() + table.answer_lost.sum() == (trace.event == "lost").sum()


def test_single_losses_arrive_on_the_ladders_first_rung(lossy):
    """A round whose one segment was lost once comes back after rtt + RTO (0.08 + 0.28 s)."""
    s, r = lossy
    steps = lab.ladder(s)
    rows = pd.concat(
        timeline.rounds(r, slot, conn)
        for slot, conn in r.records[["slot", "connection"]]
        .drop_duplicates()
        .itertuples(index=False)
    )
    once = rows[(rows.lost + rows.answer_lost == 1) & rows.received.notna()]
    assert len(once) > 20
    share = np.isclose(once.rtt_s, steps.round_trip_s[1]).mean()
    assert share > 0.8, once.rtt_s.describe()
    twice = rows[(rows.lost == 2) & (rows.answer_lost == 0) & rows.received.notna()]
    if len(twice):
        assert np.isclose(twice.rtt_s, steps.round_trip_s[2]).mean() > 0.5


def test_life_is_the_connections_records(lossy):
    _, r = lossy
    slot, conn = timeline.pick(r)
    events = timeline.life(r, slot, conn)
    assert events.event.iloc[0] == "open" and events.event.iloc[-1] == "close"
    assert {"break", "detection"} <= set(events.event)  # pick prefers a detected break
    expected = r.records[(r.records.slot == slot) & (r.records.connection == conn)]
    assert len(events) == len(expected)


def test_pick_prefers_a_detected_break_then_a_false_positive():
    s = simlab.load_scenario(
        {"horizon": "1h", "connections": 2, "heartbeat": {"interval": "10s"}}, {}
    )
    r = simlab.simulate(s, trace=True)
    assert timeline.pick(r) == (0, 1)  # nothing happened: the first connection
    s = simlab.load_scenario(
        {
            "horizon": "2h",
            "connections": 4,
            "heartbeat": {"interval": "10s"},
            "detector": {"timeout": "15s"},
            "peer": {"stall": {"mtbf": "20m", "duration": "30s"}},
        }
    )
    r = simlab.simulate(s, trace=True)
    slot, conn = timeline.pick(r)
    assert (timeline.life(r, slot, conn).event == "false_positive").any()


def test_down_periods_are_the_ones_the_run_had():
    """Over datagrams without loss, every lost message was sent during an outage."""
    s = simlab.load_scenario(
        {
            "horizon": "6h",
            "connections": 2,
            "heartbeat": {"interval": "10s"},
            "detector": {"timeout": "25s"},
            "link": {
                "transport": "datagram",
                "outages": {"mtbf": "20m", "duration": {"dist": "exponential", "mean": "20s"}},
            },
        }
    )
    r = simlab.simulate(s, trace=True)
    for slot in range(2):
        periods = timeline.down_periods(s, slot)
        assert len(periods) > 5 and set(periods.kind) == {"outage"}
        model = SlotModel(s, slot)
        assert periods.start.tolist() == model.outages.starts
        lost = r.trace[(r.trace.slot == slot) & (r.trace.event == "lost")].time
        assert len(lost)
        inside = [((periods.start <= t) & (t < periods.end)).any() for t in lost]
        assert all(inside)


def test_the_nat_timeline_shows_the_drop_the_break_and_the_silence(nat):
    s, r = nat
    slot, conn = timeline.pick(r)
    events = timeline.life(r, slot, conn)
    assert events[events.event == "break"].detail.iloc[0] == "nat"
    table = timeline.rounds(r, slot, conn)
    assert table.nat_dropped.any()
    dropped = table[table.nat_dropped].sent.iloc[0]
    broke = events[events.event == "break"].time.iloc[0]
    assert dropped >= broke
    # the last pong came more than the idle timeout before the drop: that gap let it lapse
    before = table[table.sent < dropped]
    assert dropped - before.received.max() > 35 - 0.1
    fig = timeline.timeline(r, slot, conn, scenario=s)
    labelled(fig)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("break: nat") for t in texts)
    assert any("declared dead" in t for t in texts)
    assert any(t.startswith("silence since the last pong") for t in texts)


def test_timeline_figures_render_for_a_crash_and_a_oneway_stream(lossy):
    s, r = lossy
    labelled(timeline.timeline(r, *timeline.pick(r), scenario=s))
    one = simlab.load_scenario(
        DEMO,
        {"connections": 2, "horizon": "1h", "heartbeat.style": "oneway", "link.outages": None},
    )
    r1 = simlab.simulate(one, trace=True)
    fig = timeline.timeline(r1, *timeline.pick(r1))
    labelled(fig)
    assert fig.axes[1].get_ylabel() == "one-way delay (s)"
    with pytest.raises(ValueError, match="no connection"):
        timeline.timeline(r1, 0, 999)
    with pytest.raises(ValueError, match="trace=True"):
        timeline.rounds(simlab.simulate(one), 0, 1)


# -- a few runs as one table --------------------------------------------------------------


def test_run_points_match_the_engine_and_add_the_derived_rates():
    base = {"horizon": "6h", "connections": 10, "link": {"delay": "30ms"}}
    points = {
        "30 s behind 60 s": {
            "heartbeat.interval": 30,
            "detector.timeout": 65,
            "nat.idle_timeout": 60,
        },
        "90 s behind 60 s": {
            "heartbeat.interval": 90,
            "detector.timeout": 185,
            "nat.idle_timeout": 60,
        },
    }
    frame = lab.run_points(base, points, engine="fast")
    assert frame.label.tolist() == list(points)
    assert (frame.engine == "fast").all()
    direct = engines.run(simlab.load_scenario(base, points["90 s behind 60 s"]), "fast")
    row = frame.iloc[1]
    assert row["breaks_nat_mean"] == direct["breaks_nat"]
    assert row["heartbeat.interval"] == 90
    hours = direct["connected_hours"]
    assert row["nat_breaks_per_conn_hour_mean"] == pytest.approx(direct["breaks_nat"] / hours)
    low, high = theory.poisson_interval(direct["breaks_nat"], hours)
    assert row["nat_breaks_per_conn_hour_ci_low"] == pytest.approx(low)
    assert row["nat_breaks_per_conn_hour_ci_high"] == pytest.approx(high)
    assert row["fp_per_conn_hour_ci_high"] == pytest.approx(direct["fp_per_conn_hour_ci_high"])
    se = direct["detection_latency_mean_s_se"]
    assert row["detection_latency_mean_s_ci_high"] - row["detection_latency_mean_s_mean"] == (
        pytest.approx(1.959963984540054 * se)
    )
    assert frame.iloc[0]["breaks_nat_mean"] == 0
    shown = lab.per(frame, "nat_breaks_per_conn_hour", "day")
    assert shown.iloc[1, 0] == pytest.approx(24 * direct["breaks_nat"] / hours)
    listed = lab.run_points(base, [{"label": "a", **points["30 s behind 60 s"]}])
    assert listed.label.tolist() == ["a"]


def test_refresh_direction_only_matters_for_inbound_datagrams():
    base = {"horizon": "2h", "connections": 4, "link": {"delay": "30ms"}}
    frame = lab.run_points(base, lab.refresh_cases(300, 30), engine="fast").set_index("label")
    breaks = frame["breaks_nat_mean"]
    broken = breaks[breaks > 0].index.tolist()
    assert broken == ["datagram, server heartbeats (one-way), refresh outbound"]


# -- middleboxes ----------------------------------------------------------------------------


def test_survival_table_against_the_renewal_formula():
    boxes = pd.DataFrame(
        {
            "name": ["lb", "nat", "cap"],
            "protocol": ["tcp", "udp", "tcp"],
            "idle_timeout_s": [60.0, 120.0, 30.0],
            "timeout_kind": ["idle", "idle", "lifetime"],
        }
    )
    table = lab.survival_table([30, 59, 60, 90], boxes)
    assert table.index.tolist() == ["lb", "nat"]  # a lifetime cap is no idle timeout
    assert table.loc["lb", 59.0] == 0 and table.loc["lb", 30.0] == 0
    assert table.loc["lb", 60.0] == pytest.approx(24 * 3600 / 60)  # expires at every gap
    assert table.loc["lb", 90.0] == pytest.approx(24 * 3600 / 60)
    assert table.loc["nat", 90.0] == 0
    assert table.loc["lb", "longest safe interval (s)"] == 59
    jittered = lab.survival_table([50], boxes, jitter=0.25)
    assert jittered.loc["lb", 50.0] > 0  # 50 s +- 25 % reaches 62.5 s
    assert jittered.loc["lb", "longest safe interval (s)"] == pytest.approx(59 / 1.25)
    everything = lab.survival_table([25, 60])  # data/middleboxes.csv
    assert everything.loc["aws-alb", 60.0] > 0 and everything.loc["aws-alb", 25.0] == 0
    assert "gcp-external-lb" not in everything.index


def test_expiry_curves_grow_with_jitter_below_the_timeout():
    curves = lab.expiry_curves(60, [40, 50, 55], [0, 0.1, 0.3])
    per = curves.pivot(index="interval_s", columns="jitter", values="expiries_per_conn_day")
    assert (per[0.0] == 0).all()
    assert per.loc[55, 0.1] > 0 and per.loc[50, 0.1] == 0
    assert per.loc[50, 0.3] > 0 and per.loc[40, 0.3] == 0
    assert lab.longest_safe_interval(60, 0.3) == pytest.approx(59 / 1.3)


# -- the retransmission ladder --------------------------------------------------------------


def test_ladder_doubles_from_rtt_plus_the_floor_up_to_max_rto():
    s = simlab.load_scenario(DEMO)
    steps = lab.ladder(s)
    assert len(steps) == s.link.tcp.max_retries + 2
    rto = 0.08 + 0.2
    assert steps.round_trip_s[0] == pytest.approx(0.08)
    for k in range(1, 6):
        assert steps.wait_s[k] == pytest.approx(rto * 2 ** (k - 1))
        assert steps.round_trip_s[k] == pytest.approx(0.08 + rto * (2**k - 1))
    assert steps.wait_s.max() == s.link.tcp.max_rto
    assert steps.extra_delay_s.iloc[-1] == pytest.approx(give_up_after(rto, s.link.tcp))
    assert steps.wait_s[3] == backoff(rto, 2, s.link.tcp)
    k, slack = lab.losses_to_miss(s)
    assert slack == 30 and k == 7  # 6 losses: 17.7 s late; 7: 35.6 s
    assert lab.losses_to_miss(s, rtt=0.5)[0] == 6
    assert len(lab.ladder(s, rungs=3)) == 4


# -- detectors at one latency ------------------------------------------------------------------

STEADY = {
    "name": "steady",
    "horizon": "12h",
    "connections": 4,
    "seed": 3,
    "heartbeat": {"style": "pingpong", "initiator": "client", "interval": "5s"},
    "detector": {"on_declare": "monitor"},
    "link": {"transport": "datagram", "delay": "50ms"},
    "peer": {"crash": {"mtbf": "1h"}},
}


@pytest.mark.parametrize("kind", lab.DETECTORS)
def test_calibrate_hits_the_predicted_latency(kind):
    overrides, row = lab.calibrate(STEADY, kind, 12.0)
    assert row is None
    assert overrides["detector.kind"] == kind
    assert lab.predicted_latency(STEADY, overrides) == pytest.approx(12.0, abs=0.01)
    assert lab.knob_text(overrides)


def test_knob_maps_one_number_onto_k_and_the_pong_deadline():
    assert lab.knob("missed", 12.0, 5.0, 0.1) == {
        "detector.kind": "missed",
        "detector.missed.k": 3,
        "detector.missed.ack_timeout": 2.0,
    }
    assert lab.knob("missed", 10.0, 5.0, 0.1)["detector.missed.k"] == 2
    assert lab.knob("missed", 10.0, 5.0, 0.1)["detector.missed.ack_timeout"] == 5.0
    assert lab.knob("missed", 10.01, 5.0, 0.1)["detector.missed.ack_timeout"] == 0.15
    assert lab.knob("timeout", 7.5, 5.0) == {"detector.kind": "timeout", "detector.timeout": 7.5}
    with pytest.raises(ValueError, match="kind must be one of"):
        lab.knob("psychic", 1.0, 5.0)


def test_calibrate_refuses_a_latency_out_of_reach():
    with pytest.raises(ValueError, match="out of reach"):
        lab.calibrate(STEADY, "timeout", 1.0)  # a read deadline must exceed the 5 s interval


def test_measured_calibration_matches_the_simulated_latency():
    """Phi learns the path's variance: on a jittery path it declares later than on a steady
    one, and the measured calibration moves its knob until the simulation agrees."""
    noisy = {
        **STEADY,
        "link": {
            "transport": "datagram",
            "delay": {"dist": "lognormal", "median": "80ms", "sigma": 1.0},
            "loss": 0.02,
        },
    }
    steady, _ = lab.calibrate(noisy, "phi", 15.0)
    measured, row = lab.calibrate(noisy, "phi", 15.0, measured=True)
    latency = row["detection_latency_mean_s_mean"].iloc[0]
    assert latency == pytest.approx(15.0, rel=0.05)
    assert measured[lab.KNOBS["phi"]] < steady[lab.KNOBS["phi"]]


def test_compare_detectors_one_row_each_at_the_same_latency():
    frame = lab.compare_detectors(STEADY, 12.0, ["timeout", "nfd", "missed"], iterations=3)
    assert frame.detector.tolist() == ["timeout", "nfd", "missed"]
    assert frame.predicted_latency_s.tolist() == pytest.approx([12.0] * 3, abs=0.5)
    assert frame["detection_latency_mean_s_mean"].tolist() == pytest.approx([12.0] * 3, rel=0.05)
    # a steady, loss-free path: no detector ever suspects a live server
    assert (frame["fp_per_conn_hour_mean"] == 0).all()
    labelled(labplots.detector_comparison(frame, target=12.0))


# -- the notebooks' helpers ---------------------------------------------------------------------


def test_headline_shows_rates_per_day_with_their_intervals():
    s = simlab.load_scenario(DEMO, {"connections": 5, "horizon": "1h"})
    summary = simlab.simulate(s).summary
    table = explore.headline(summary)
    fp = table.loc["false positives (live peer declared dead)"]
    assert fp.value == pytest.approx(round(summary["fp_per_conn_hour"] * 24, 4))
    assert fp.unit == "per connection-day"
    assert table.loc["time connected"].value == pytest.approx(round(summary["connected_hours"], 4))
    fast = engines.run(simlab.load_scenario(DEMO, {"connections": 20}), "fast")
    table = explore.headline(fast, "hour")
    assert "radio wake-ups" not in table.index  # the fast engine has none over TCP
    assert "heartbeat bytes (with headers)" in table.index
    assert "to" in table.loc["fraction of live time trusted", "95 % interval"]


def test_what_if_runs_or_says_why_not():
    table = explore.what_if(DEMO, {"connections": 5})
    assert isinstance(table, pd.DataFrame) and table.attrs["engine"] == "fast"
    problem = explore.what_if(DEMO, {"heartbeat.interval": 60, "detector.timeout": 30})
    assert isinstance(problem, str) and "detector.timeout" in problem
    # not the fast engine's
    refused = explore.what_if(DEMO, {"heartbeat.initiator": "both"}, engine="fast")
    assert isinstance(refused, str) and "initiator" in refused


def test_interact_without_widgets_calls_once_with_the_defaults(monkeypatch):
    calls = []

    def fn(a, b):
        calls.append((a, b))
        return a * b

    controls = {"a": ("a (s)", [1, 2, 3], 2), "b": ("b (count)", [10, 20], 20)}
    monkeypatch.setenv("SIMLAB_STATIC", "1")
    assert not explore.widgets_available()
    assert explore.interact(fn, controls) == 40
    assert calls == [(2, 20)]
    with pytest.raises(ValueError, match="default"):
        explore.interact(fn, {"a": ("a", [1, 2], 5), "b": ("b", [1], 1)})


def test_interact_with_widgets_builds_sliders_that_rerun(monkeypatch):
    ipywidgets = pytest.importorskip("ipywidgets")
    monkeypatch.delenv("SIMLAB_STATIC", raising=False)
    assert explore.widgets_available()
    calls = []

    def fn(a, b):
        calls.append((a, b))
        return a * b

    w = explore.interact(fn, {"a": ("a (s)", [1, 2, 3], 2), "b": ("b (count)", [10, 20], 20)})
    assert isinstance(w, ipywidgets.interactive)
    assert w.auto_display  # what fn returns is shown under the sliders
    assert w.result == 40 and calls == [(2, 20)]
    sliders = [c for c in w.children if isinstance(c, ipywidgets.SelectionSlider)]
    assert [s.description for s in sliders] == ["a (s)", "b (count)"]
    sliders[0].value = 3
    assert w.result == 60


# -- figures ------------------------------------------------------------------------------------


def test_the_study_figures_are_labelled_and_render():
    labelled(labplots.survival_grid(lab.survival_table([10, 30, 60, 120])))
    labelled(
        labplots.expiry_curves(lab.expiry_curves(60, range(30, 80, 5), [0, 0.2]), 60, "aws-alb")
    )
    frame = pd.DataFrame(
        {
            "label": ["a", "b", "none"],
            "fp_per_conn_hour_mean": [0.5, 0.01, 0.0],
            "fp_per_conn_hour_ci_low": [0.4, 0.001, 0.0],
            "fp_per_conn_hour_ci_high": [0.6, 0.05, 0.02],
        }
    )
    fig = labplots.rate_bars(frame)
    labelled(fig)
    assert "per connection-day" in fig.axes[0].get_xlabel()
    s = simlab.load_scenario(DEMO)
    labelled(labplots.rtt_histogram([0.08] * 50 + [0.36] * 5, lab.ladder(s), slack=30))


def test_crosscheck_figure_from_a_check():
    model = simlab.simulate(simlab.load_scenario(DEMO, {"connections": 4, "horizon": "1h"}))
    other = simlab.simulate(
        simlab.load_scenario(DEMO, {"connections": 4, "horizon": "1h", "seed": 99})
    )
    check = crosscheck.compare(model, other, loss=False, name="demo vs demo")
    fig = labplots.crosscheck_figure(check)
    labelled(fig)
    assert len(fig.axes) == len([r for r in check.rows() if r["model"] is not None])
    title = fig._suptitle.get_text()
    expected = {"AGREE": "agree", "DISAGREE": "DISAGREE", "NO EVIDENCE": "no evidence"}
    assert title.endswith(expected[check.verdict])


def test_panel_item_loads_with_overrides():
    s, policy = crosscheck.panel_item("crash-detection", {"horizon": "300s"})
    assert s.horizon == 300 and policy == "detector"
    with pytest.raises(ValueError, match="no panel item"):
        crosscheck.panel_item("nope")
    assert math.isclose(s.heartbeat.interval, 10)


def test_nat_what_if_reads_the_theory():
    table = lab.nat_what_if(50, 60, jitter=0.3)
    assert table.loc["heartbeats keep it open", "value"] == "no"
    assert table.loc["longest gap between heartbeats", "value"] == pytest.approx(65)
    expected = theory.nat_survival(50, 60, 0.0, 0.3).expiries_per_hour * 24
    assert table.loc["idle expiries", "value"] == pytest.approx(expected, abs=1e-3)
    assert table.loc["idle expiries", "unit"] == "per connection-day"
    assert lab.nat_what_if(30, 60).loc["heartbeats keep it open", "value"] == "yes"


def test_outside_event_loop_lets_asyncio_run_inside_a_running_loop():
    import asyncio
    import threading

    async def answer():
        return threading.current_thread().name

    def harness_like():
        return asyncio.run(answer())

    here = threading.current_thread().name
    assert crosscheck.outside_event_loop(harness_like) == here  # no loop running: called in place

    async def notebook_cell():
        return crosscheck.outside_event_loop(harness_like)

    assert asyncio.run(notebook_cell()).startswith("simlab-harness")
