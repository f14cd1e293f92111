"""The metric registry: one entry per key, and every older list derived from it."""

from __future__ import annotations

import dataclasses

import pytest

from simlab.cli.main import SECTIONS as RUN_TABLE
from simlab.engines import fast, rare
from simlab.engines import metrics as m
from simlab.engines import policy_metrics as pm
from simlab.engines import registry as engines
from simlab.fleet import model as fleet
from simlab.fleet.storm import SECTIONS as STORM_TABLE

from .test_model import scenario

RUN = (*m.METRICS, *m.RUN_EXTRAS)
FLEET = (*fleet.FLEET_METRICS, *fleet.FLEET_EXTRAS)


def test_metric_is_frozen_and_checks_its_kind():
    metric = m.by_key("fp_per_conn_hour")
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.unit = "x"
    with pytest.raises(ValueError):
        m.Metric("x", None, "count", kind="counts")
    with pytest.raises(ValueError):
        m.Metric("x", None, "count", kind="rate")


@pytest.mark.parametrize("registry", [RUN, FLEET], ids=["run", "fleet"])
def test_every_key_is_registered_once(registry):
    keys = [x.key for x in registry]
    assert len(keys) == len(set(keys))
    assert all(x.unit for x in registry)


def test_by_key():
    assert all(m.by_key(x.key) is x for x in RUN)
    with pytest.raises(KeyError):
        m.by_key("no_such_metric")


def test_the_old_names_are_the_registry():
    assert tuple(x.key for x in m.METRICS) == m.METRIC_KEYS
    assert {x.key for x in m.METRICS if x.kind == "count"} == m.COUNT_KEYS
    assert {"fp_per_conn_hour_ci_low", "fp_per_conn_hour_ci_high"} == m.PER_RUN_ONLY
    assert m.RATE_KEYS == {"fp_per_conn_hour": ("false_positives", "connected_hours")}
    for count, exposure in m.RATE_KEYS.values():
        assert count in m.COUNT_KEYS and exposure in m.METRIC_KEYS
    assert tuple(x.key for x in fleet.FLEET_METRICS) == fleet.FLEET_METRIC_KEYS


def test_the_adaptive_metrics_are_policy_metrics_keys():
    adaptive = [x for x in m.METRICS if x.section == "adaptive heartbeats"]
    assert tuple(x.key for x in adaptive) == pm.ADAPTIVE_KEYS
    assert m.METRIC_KEYS[-len(pm.ADAPTIVE_KEYS) :] == pm.ADAPTIVE_KEYS
    assert {x.key for x in adaptive if x.kind == "count"} == pm.ADAPTIVE_COUNT_KEYS


@pytest.mark.parametrize(
    "table, registry, headings",
    [
        (RUN_TABLE, RUN, m.RUN_SECTIONS),
        (STORM_TABLE, FLEET, fleet.FLEET_SECTIONS),
    ],
    ids=["simlab run", "simlab storm"],
)
def test_every_key_is_in_at_most_one_section(table, registry, headings):
    assert [h for h, _ in table] == list(headings)
    shown = [k for _, keys in table for k in keys]
    assert len(shown) == len(set(shown))
    assert set(shown) == {x.key for x in registry if x.section is not None}
    sections = {x.key: x.section for x in registry}
    assert all(sections[k] == heading for heading, keys in table for k in keys)


def test_every_run_metric_is_in_the_run_table():
    shown = {k for _, keys in RUN_TABLE for k in keys}
    assert set(m.METRIC_KEYS) <= shown


def test_the_cost_section_keeps_its_order():
    cost = dict(RUN_TABLE)["cost"]
    assert cost == [
        "heartbeats_sent",
        "overhead_msgs_per_conn_hour",
        "overhead_bytes_per_conn_hour",
        "wakeups_per_conn_hour",
        "tcp_retransmissions",
        "app_msgs_sent",
        "app_msgs_blackholed",
    ]


def test_the_fast_engines_absent_keys_come_from_the_registry():
    assert fast.NOT_PRODUCED == ()
    assert fast.NOT_PRODUCED_TCP == ("wakeups_per_conn_hour",)
    assert m.absent_from("fast") == fast.NOT_PRODUCED
    assert m.absent_from("simpy") == ()


def _registered(key: str) -> bool:
    return key in m._BY_KEY


@pytest.mark.parametrize("transport", ["datagram", "tcp"])
@pytest.mark.parametrize("engine", ["simpy", "fast", "auto"])
def test_every_key_a_small_run_reports_is_registered(engine, transport):
    s = scenario(
        horizon="600s",
        connections=3,
        link={"transport": transport, "loss": 0.05},
        peer={"crash": {"mtbf": "300s"}},
    )
    out = engines.run(s, engine)
    assert [k for k in out if not _registered(k)] == []
    absent = set(m.absent_from(out["engine"]))
    if transport == "tcp":
        absent |= set(m.absent_from(f"{out['engine']}:tcp"))
    assert not absent & set(out)


def test_every_key_an_analytic_run_reports_is_registered():
    s = scenario(horizon="600s", connections=3, nat={"idle_timeout": "30s"}, link={"loss": 0.01})
    out = engines.run(s, "analytic")
    assert [k for k in out if not _registered(k)] == []


def test_every_key_an_adaptive_run_reports_is_registered():
    s = scenario(horizon="600s", connections=2, heartbeat={"policy": {"kind": "network-state"}})
    out = engines.run(s, "simpy")
    assert {"state_time_normal", "policy_breaks"} <= set(out)
    assert [k for k in out if not _registered(k)] == []


def test_every_key_a_rare_event_estimate_reports_is_registered():
    assert all(_registered(k) for k in rare.METRIC_KEYS)
