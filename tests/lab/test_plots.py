"""Every plot returns a matplotlib Figure with labelled axes (with units) and renders with Agg."""

from __future__ import annotations

import io

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simlab.lab import plots
from simlab.sweeps import data as sweepdata

from ..sweeps_by_hand import frame, point


@pytest.fixture(scope="module")
def data():
    points = []
    for name, extra in (("home-wifi", 0), ("lte", 5)):
        for interval, timeout in ((10, 30), (20, 50), (30, 60), (55, 65)):
            points.append(
                point(
                    interval,
                    timeout,
                    fp=extra + interval // 10,
                    nat=1 if interval > 50 else 0,
                    name=name,
                    **{"link.outages.mtbf": 7200.0 if name == "lte" else 86400.0},
                )
            )
    return sweepdata.read(frame(*points))


def labelled(fig: Figure) -> list:
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel(), "every axis is labelled"
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return axes


def test_tradeoff(data):
    table = data.worst_case()
    fig = plots.tradeoff(
        table,
        max_detection=60,
        max_rate=1 / 24,
        rate_unit="day",
        highlight={"heartbeat.interval": 20.0, "detector.timeout": 50.0},
    )
    (ax, *rest) = labelled(fig)
    assert ax.get_xlabel() == "detection latency, 95th percentile (s)"
    assert ax.get_ylabel() == "false disconnects per connection-day"
    assert ax.get_yscale() == "log"
    colorbar = [a for a in fig.axes if a is not ax]
    assert colorbar and "bytes per connection-hour" in colorbar[0].get_ylabel()
    assert any("chosen" in t.get_text() for t in ax.texts)


def test_tradeoff_draws_zero_events_at_their_upper_bound():
    table = sweepdata.read(frame(point(10, 30, fp=0), point(20, 50, fp=3))).summary
    ax = labelled(plots.tradeoff(table))[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "no events: the 95 % upper bound" in legend


def test_nat_survival(data):
    fig = plots.nat_survival(
        data.summary,
        middleboxes={"aws-alb": 60.0, "heroku-router": 55.0, "azure-lb": 240.0},
        behind=("aws-alb", 60.0),
        highlight=20.0,
    )
    ax = labelled(fig)[0]
    assert ax.get_xlabel() == "ping interval (s)"
    assert ax.get_ylabel() == "middlebox idle expiries per connection-day"
    texts = [t.get_text() for t in ax.texts]
    assert any("aws-alb 60 s" in t for t in texts) and any("heroku-router 55 s" in t for t in texts)
    assert "azure-lb 240 s" in ax.get_title(loc="left")  # beyond the plot: listed


def test_nat_survival_with_the_field_data(data):
    from simlab.scenario import fielddata

    labelled(plots.nat_survival(data.summary, middleboxes=fielddata.middleboxes(), simulated=False))


def test_sensitivity(data):
    factors = plots.sensitivity_factors(data.summary, data.conditions)
    assert factors == ["name"]  # the outages move with the network name
    fig = plots.sensitivity(
        data.summary, factors, data.settings, highlight=[{"heartbeat.interval": 20.0}]
    )
    ax = labelled(fig)[0]
    assert ax.get_xlabel() == "network (scenario name)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["home-wifi", "lte"]
    fig = plots.sensitivity(data.summary, ["link.outages.mtbf"], data.settings)
    assert labelled(fig)[0].get_xlabel() == "mean time between outages (s)"


def test_metric_vs_param(data):
    fig = plots.metric_vs_param(
        data.summary, "heartbeat.interval", "overhead_bytes_per_conn_hour", by="name"
    )
    # small multiples: one panel per network, one labelled line per other setting, and one
    # legend (under the panels) naming every line and mark (was: one unlabelled line each)
    axes = labelled(fig)
    assert [ax.get_title() for ax in axes] == ["home-wifi", "lte"]
    assert axes[0].get_xlabel() == "ping interval (s)"
    assert axes[0].get_ylabel() == "heartbeat bytes per connection-hour"
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    # the timeout moves with the interval here: no line of its own, the marks explained
    assert texts == ["dot: estimate; bar: 95 % interval"]
    fig = plots.metric_vs_param(data.summary, "detector.timeout", "detection_latency_p95_s")
    assert any(t.startswith("network ") or t in ("home-wifi", "lte") for t in _texts(fig))
    fig = plots.metric_vs_param(
        data.summary, "detector.timeout", "false_disconnects_per_conn_hour", rate_unit="week"
    )
    assert labelled(fig)[0].get_ylabel() == "false disconnects per connection-week"


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_metric_vs_param_explains_its_triangles_and_stacks_for_a_phone():
    rows = frame(point(10, 30, fp=0), point(20, 50, fp=3), point(30, 60, fp=40))
    fig = plots.metric_vs_param(
        rows, "heartbeat.interval", "fp_per_conn_hour", logy=True, columns=1, size=(4.2, 4)
    )
    labelled(fig)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "no events: 95 % upper bound" in texts


def test_tradeoff_narrow_puts_the_colour_bar_under_the_axes(data):
    fig = plots.tradeoff(data.worst_case(), narrow=True, rate_unit="day")
    ax, bar = fig.axes
    assert tuple(fig.get_size_inches()) == (4.2, 4.8)
    assert "bytes per connection-hour" in bar.get_xlabel() and fig.legends


def test_tidy_rows_work_too():
    rows = frame(point(10, 30, fp=1), point(20, 50, fp=2))
    ax = labelled(plots.metric_vs_param(rows, "heartbeat.interval", "detection_latency_p95_s"))[0]
    assert ax.get_ylabel() == "detection latency, 95th percentile (s)"


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("link.loss.p", "packet loss probability"),
        ("link.outages.duration.median", "median outage duration (s)"),
        ("nat.idle_timeout", "middlebox idle timeout (s)"),
        ("fp_per_conn_hour", "false positives per connection-hour"),
        ("link.uplink.delay.median", "link.uplink.delay.median (s)"),
        ("link.loss.p_gb", "link.loss.p_gb (probability)"),
    ],
)
def test_labels_carry_units(key, text):
    assert plots.label(key) == text
