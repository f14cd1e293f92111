"""Reading a sweep's results: settings and conditions, pooled false disconnects, worst cases."""

from __future__ import annotations

import pytest

from simlab.engines.analytic.theory import poisson_interval
from simlab.sweeps import data as sweepdata

from ..sweeps_by_hand import frame, meta, point, write


def test_settings_conditions_and_pooled_false_disconnects(tmp_path):
    path = write(
        tmp_path,
        point(20, 50, fp=3, nat=1, name="home-wifi"),
        point(20, 50, fp=7, nat=0, name="lte"),
    )
    data = sweepdata.read(path)
    assert data.settings == ("heartbeat.interval", "detector.timeout")
    assert data.conditions == ("name",)
    assert data.replications == 2
    wifi = data.summary[data.summary["name"] == "home-wifi"].iloc[0]
    low, high = poisson_interval(8, 2000.0)  # (3 + 1) x 2 replications over 2 x 1000 h
    assert wifi["false_disconnects_per_conn_hour_mean"] == pytest.approx(8 / 2000)
    assert (
        wifi["false_disconnects_per_conn_hour_ci_low"],
        wifi["false_disconnects_per_conn_hour_ci_high"],
    ) == pytest.approx((low, high))
    assert wifi["nat_breaks_per_conn_hour_mean"] == pytest.approx(2 / 2000)
    worst = data.worst_case()
    assert len(worst) == 1 and worst.iloc[0]["worst_condition"] == "lte"
    assert worst.iloc[0]["false_disconnects_per_conn_hour_mean"] == pytest.approx(14 / 2000)


def test_meta_and_inline_base_are_found(tmp_path):
    path = write(tmp_path, point(20, 50), meta=meta())
    data = sweepdata.read(path)
    assert data.meta["name"] == "by-hand"
    assert data.base["peer"] == {"crash": {"mtbf": "12h"}}
    assert data.base_source == "inline in the sweep file"


def test_base_file_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "base.yaml").write_text("name: from-file\nheartbeat: {interval: 20s}\n")
    m = meta() | {
        "sweep": str(tmp_path / "sweeps" / "s.yaml"),
        "sweep_text": "base: ../base.yaml\n",
    }
    data = sweepdata.read(write(tmp_path / "out", point(20, 50), meta=m))
    assert data.base["name"] == "from-file"


def test_a_dataframe_from_simlab_sweep(tmp_path):
    rows = frame(point(10, 30), point(20, 50))
    data = sweepdata.read(rows)
    assert len(data.summary) == 2 and data.source == "sweep"


def test_a_real_sweep_summary_reads_back(tmp_path):
    import simlab

    spec = {
        "base": {
            "horizon": "10m",
            "connections": 2,
            "link": {"transport": "datagram", "loss": 0.05},
        },
        "zip": [{"heartbeat.interval": ["5s", "10s"], "detector.timeout": ["12s", "25s"]}],
        "replications": 2,
        "engine": "fast",
    }
    rows = simlab.sweep(spec, tmp_path / "s.csv", workers=1, progress=False)
    data = sweepdata.read(tmp_path / "s.csv")
    assert len(data.summary) == 2 and data.replications == 2
    assert data.meta is not None and data.base is not None
    assert (data.summary["false_disconnects_per_conn_hour_mean"] >= 0).all()
    assert len(sweepdata.read(rows).summary) == 2


def test_not_a_sweep(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(sweepdata.SweepDataError, match="not a sweep's output"):
        sweepdata.read(tmp_path / "x.csv")
    with pytest.raises(sweepdata.SweepDataError, match="no such file"):
        sweepdata.read(tmp_path / "nothing.csv")
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(sweepdata.SweepDataError):
        sweepdata.read(tmp_path / "bad.csv")
