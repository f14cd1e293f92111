"""``simlab validate``: the engines agree on the built-in panel, and a wrong engine is caught.

The full panel runs once (about 15 s); the other checks use ``--quick`` or the
analytic engine alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from simlab.checks import panel
from simlab.cli.main import main
from simlab.engines import registry as engines
from simlab.engines.analytic import chain as analytic
from simlab.errors import EngineRefusal

# analytic covers these fully; where the NAT mapping expires it gives the NAT's figures only
COVERED = [
    n
    for n, s in panel.panel_scenarios().items()
    if not analytic.unsupported(s) and "analytic_omitted" not in analytic.run(s)
]
NAT_LIFE = "nat-client-pings-refresh-both-app-monitor"
WRONG = "pingpong-missed-reconnect-bernoulli"  # many false positives: a 1.5x error is obvious
# link outages, the peer's stalls, app traffic over TCP: compared between fast and simpy
# (analytic refuses them)
FAST_ONLY = [n for n in panel.PANEL if n.startswith(("outages-", "stall-", "app-"))]


def _main(argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def _rows(text: str) -> dict[tuple[str, str], str]:
    """(scenario, metric) -> the table line (the scenario is printed once per block)."""
    rows, current = {}, None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[0] in panel.PANEL:
            current, metric = parts[0], parts[1]
        elif parts[0] in panel.METRICS:
            metric = parts[0]
        else:
            continue
        rows[(current, metric)] = line
    return rows


@pytest.fixture(scope="module")
def full_run():
    return _main(["validate"])


def test_the_panel_spans_what_the_issue_asks_and_the_analytic_engine_covers_most():
    scenarios = panel.panel_scenarios()
    assert 6 <= len(scenarios) <= 13
    kinds = {s.detector.kind for s in scenarios.values()}
    assert {"timeout", "missed", "nfd"} <= kinds
    assert {s.link.transport for s in scenarios.values()} == {"datagram", "tcp"}
    assert {s.link.down.loss.model for s in scenarios.values()} == {"bernoulli", "gilbert"}
    assert {s.detector.on_declare for s in scenarios.values()} == {"monitor", "reconnect"}
    assert any(s.peer.crash and s.detector.on_declare == "monitor" for s in scenarios.values())
    assert any(s.nat.idle_timeout is not None for s in scenarios.values())
    # link outages over datagrams and over TCP through a NAT, the peer's stalls
    outages = [s for s in scenarios.values() if s.link.outages is not None]
    assert {s.link.transport for s in outages} == {"datagram", "tcp"}
    assert any(s.nat.idle_timeout is not None and s.link.transport == "tcp" for s in outages)
    assert any(s.peer.stall is not None for s in scenarios.values())
    assert len(COVERED) >= 5
    # every scenario has a fixed seed of its own
    assert len({m["seed"] for m in panel.PANEL.values()}) == len(panel.PANEL)


def test_every_engine_agrees_on_the_whole_panel(full_run):
    code, text = full_run
    assert code == 0, text
    rows = _rows(text)
    assert set(rows) == {(s, m) for s in panel.PANEL for m in panel.METRICS}
    assert not any(" NO " in line for line in rows.values())
    for name in COVERED:  # each covered scenario is compared on its four accuracy metrics
        for metric in panel.METRICS[:4]:
            assert rows[(name, metric)].rstrip().split()[-3] == "yes", rows[(name, metric)]
    # the mapping's lifetime with refresh both, application traffic and a timeout distribution
    line = rows[(NAT_LIFE, "nat_mean_time_to_expiry_s")]
    assert line.rstrip().split()[-3] == "yes", line
    # ... and fast, which covers application traffic, agrees with simpy on it
    assert f"fast refuses {NAT_LIFE}" not in text
    for metric in ("fp_per_conn_hour", "query_accuracy", "detection_latency_mean_s"):
        line = rows[(NAT_LIFE, metric)]
        assert line.rstrip().split()[-3] == "yes" and "-" not in line.split(), line  # fast: a value
    # outages and stalls: fast and simpy compared (analytic refuses them)
    for name in FAST_ONLY:
        for metric in ("fp_per_conn_hour", "query_accuracy", "mistake_duration_mean_s"):
            line = rows[(name, metric)]
            assert line.rstrip().split()[-3] == "yes" and "-" in line.split(), line
        assert f"analytic refuses {name}" in text and f"fast refuses {name}" not in text
    assert "0 disagree" in text


def test_an_engine_that_does_not_cover_a_scenario_shows_a_dash(full_run, monkeypatch):
    _, text = full_run
    tcp = _rows(text)[("tcp-timeout-reconnect-bernoulli", "fp_per_conn_hour")]
    assert "-" in tcp.split()  # analytic's cell; fast covers tcp and is compared with simpy
    assert "analytic refuses tcp-timeout-reconnect-bernoulli: link.transport: tcp" in text

    # a refusal is "does not cover", never a failure
    real = analytic.run

    def refuse_one(s):
        if s.name == COVERED[0]:
            raise EngineRefusal("analytic", ["a feature this test removed"])
        return real(s)

    monkeypatch.setattr(analytic, "run", refuse_one)
    code, text = _main(["validate", "--engines", "analytic"])
    assert code == 0
    assert _rows(text)[(COVERED[0], "query_accuracy")].split()[-2:] == ["-", "n/a"]
    assert f"analytic refuses {COVERED[0]}: a feature this test removed" in text


def test_a_wrong_engine_is_caught_and_exits_1(monkeypatch):
    real = analytic.run

    def wrong(s):
        out = real(s)
        if s.name == WRONG:
            out["fp_per_conn_hour"] *= 1.5
        return out

    monkeypatch.setattr(analytic, "run", wrong)
    code, text = _main(["validate", "--quick"])
    assert code == 1
    rows = _rows(text)
    assert " NO " in rows[(WRONG, "fp_per_conn_hour")] + " "
    bad = [key for key, line in rows.items() if " NO " in line + " "]
    assert bad == [(WRONG, "fp_per_conn_hour")]
    assert "1 disagree" in text


def test_json_rows(monkeypatch):
    code, text = _main(["validate", "--quick", "--json"])
    assert code == 0
    out = json.loads(text)
    assert out["ok"] is True and out["quick"] is True
    assert out["engines"] == ["simpy", "analytic", "fast"]
    rows = {(r["scenario"], r["metric"]): r for r in out["rows"]}
    assert set(rows) == {(s, m) for s in panel.PANEL for m in panel.METRICS}
    row = rows[(WRONG, "fp_per_conn_hour")]
    assert row["agree"] is True
    simpy, exact = row["engines"]["simpy"], row["engines"]["analytic"]
    assert simpy["status"] == "ok" and simpy["low"] < simpy["value"] < simpy["high"]
    assert exact == {
        "status": "ok",
        "value": exact["value"],
        "se": 0.0,
        "low": None,
        "high": None,
        "exact": True,
        "interval": "exact",
    }
    (pair,) = [c for c in row["comparisons"] if c["engines"] == ["simpy", "analytic"]]
    assert pair["diff"] <= pair["tolerance"]
    tcp = rows[("tcp-timeout-reconnect-bernoulli", "fp_per_conn_hour")]
    assert tcp["engines"]["analytic"] == {"status": "refused"}
    assert tcp["agree"] is True  # simpy and fast
    assert out["scenarios"]["tcp-timeout-reconnect-bernoulli"]["analytic"]["status"] == "refused"


@pytest.mark.parametrize("arg", ["auto", "simpy,nope", "", "simpy,simpy"])
def test_bad_engines_exit_2(arg, capsys):
    assert main(["validate", "--engines", arg]) == 2
    assert "--engines" in capsys.readouterr().err


def test_a_new_engine_is_tried_and_its_reported_interval_used(monkeypatch):
    """Another engine in engines.ENGINES joins the panel by itself."""
    real_run = engines.run

    def run(s, engine="simpy", **options):
        if engine != "stub":
            return real_run(s, engine, **options)
        if s.name != COVERED[0]:
            raise EngineRefusal("stub", ["everything but one scenario"])
        out = dict(real_run(s, "analytic"))
        out["fp_per_conn_hour"] *= 1.01  # a 1 % error inside its reported interval: agrees
        out["fp_per_conn_hour_ci_low"] = out["fp_per_conn_hour"] * 0.9
        out["fp_per_conn_hour_ci_high"] = out["fp_per_conn_hour"] * 1.1
        out["query_accuracy_se"] = 1e-12  # far too sure of a value it has right
        out["mistake_rate_per_s"] *= 1.5  # and no interval for a wrong one: flagged
        return out

    monkeypatch.setattr(engines, "ENGINES", (*engines.ENGINES[:-1], "stub", "auto"))
    monkeypatch.setattr(engines, "run", run)
    assert panel.available_engines() == ["simpy", "analytic", "fast", "stub"]
    small = {n: panel.PANEL[n] for n in (COVERED[0], "tcp-timeout-reconnect-bernoulli")}
    report = panel.run_panel(quick=True, panel=small)
    assert report.engines == ["simpy", "analytic", "fast", "stub"] and not report.ok
    rows = {(r.scenario, r.metric): r for r in report.rows}
    fp = rows[(COVERED[0], "fp_per_conn_hour")]
    assert fp.cells["stub"].source == "reported" and fp.agree is True
    assert len(fp.comparisons) == 6  # every pair of four
    assert rows[(COVERED[0], "query_accuracy")].agree is True
    assert rows[(COVERED[0], "mistake_rate_per_s")].agree is False
    text = panel.format_table(report)
    assert "stub refuses tcp-timeout-reconnect-bernoulli" in text
    assert "(no interval)" in text


def test_compare():
    exact = panel.Estimate(2.0, 0.0, True)
    assert panel.compare("a", exact, "b", panel.Estimate(2.0 * (1 + 5e-10), 0.0, True)).agree
    assert not panel.compare("a", exact, "b", panel.Estimate(2.0 * (1 + 1e-8), 0.0, True)).agree
    noisy = panel.Estimate(2.35, 0.1, False)  # 3.5 SE away: agrees; 4.5 SE: does not
    assert panel.compare("a", exact, "b", noisy).agree
    assert not panel.compare("a", exact, "b", panel.Estimate(2.45, 0.1, False)).agree
    # the standard errors combine: sqrt(0.1^2 + 0.1^2) * 4 = 0.566
    assert panel.compare(
        "a", panel.Estimate(2.0, 0.1, False), "b", panel.Estimate(2.5, 0.1, False)
    ).agree
    unknown = panel.Estimate(2.0, math.nan, False)
    assert panel.compare("a", exact, "b", unknown).agree is None


def test_an_engine_that_fails_fails_the_panel(monkeypatch):
    real = analytic.run

    def broken(s):
        if s.name == COVERED[1]:
            raise RuntimeError("boom")
        return real(s)

    monkeypatch.setattr(analytic, "run", broken)
    code, text = _main(["validate", "--engines", "analytic"])
    assert code == 1
    assert _rows(text)[(COVERED[1], "fp_per_conn_hour")].split()[-2:] == ["error", "n/a"]
    assert f"analytic FAILED on {COVERED[1]}: RuntimeError: boom" in text
