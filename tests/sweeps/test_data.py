"""Reading a sweep's results: settings and conditions, pooled false disconnects, worst cases."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
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
    with pytest.raises(sweepdata.SweepDataError, match="(?i)no such file"):
        sweepdata.read(tmp_path / "nothing.csv")
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(sweepdata.SweepDataError):
        sweepdata.read(tmp_path / "bad.csv")


# -- outputs read back are untrusted: every damage is bad input naming file, column and problem --

VARIED = {"heartbeat.interval": [20, 40], "detector.timeout": [50, 60]}


def varied_meta() -> dict:
    """A .meta.json whose sweep file varies both settings (so both columns are required)."""
    import yaml

    from ..sweeps_by_hand import BASE

    text = yaml.safe_dump({"base": BASE, "grid": VARIED, "replications": 2, "seed": 1})
    return meta(sweep_text=text)


def good_sweep(folder) -> Path:
    """A by-hand sweep (two settings, both meeting a 60 s bound) with its .meta.json."""
    return write(folder, point(20, 50, fp=1), point(40, 60, fp=1), meta=varied_meta())


def _edit_cell(column: str, value: str):
    def edit(path: Path) -> Path:
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows.loc[0, column] = value
        rows.to_csv(path, index=False)
        return path

    return edit


def _drop(column: str, summary: bool = False):
    def edit(path: Path) -> Path:
        if summary:  # the summary, read instead of the rows
            path = _summary_of(path)
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows.drop(columns=[column]).to_csv(path, index=False)
        return path

    return edit


def _summary_of(path: Path) -> Path:
    out = path.with_name(path.stem + ".summary.csv")
    sweepdata.summarize(pd.read_csv(path)).to_csv(out, index=False)
    return out


def _write(name: str, data: bytes):
    def edit(path: Path) -> Path:
        target = path.with_name(path.stem + name) if name.startswith(".") else path
        target.write_bytes(data)
        return path

    return edit


def _summary_cell(column: str, value: str):
    def edit(path: Path) -> Path:
        return _edit_cell(column, value)(_summary_of(path))

    return edit


# name -> (damage: the good sweep's CSV path -> the path to read, fragments the error must hold)
CORRUPTIONS = {
    "meta-a-list": (_write(".meta.json", b"[1, 2]"), ["sweep.meta.json", "a JSON object"]),
    "meta-not-utf8": (_write(".meta.json", b'\xff{"seed": 1}'), ["sweep.meta.json", "JSON"]),
    "meta-seed-text": (
        _write(".meta.json", b'{"seed": "one"}'),
        ["sweep.meta.json", "key seed", "'one'"],
    ),
    "text-in-a-number": (
        _edit_cell("false_positives", "many"),
        ["sweep.csv", "column false_positives", "'many'", "not a number"],
    ),
    "1e400-in-a-count": (
        _edit_cell("false_positives", "1e400"),
        ["sweep.csv", "column false_positives", "inf", "whole number"],
    ),
    "negative-count": (
        _edit_cell("breaks_nat", "-3"),
        ["sweep.csv", "column breaks_nat", "whole number >= 0"],
    ),
    "inf-figure": (
        _edit_cell("detection_latency_p95_s", "inf"),
        ["sweep.csv", "column detection_latency_p95_s", "finite"],
    ),
    "missing-varied-key": (
        _drop("heartbeat.interval"),
        ["sweep.csv", "column heartbeat.interval is missing"],
    ),
    "summary-missing-varied-key": (
        _drop("heartbeat.interval", summary=True),
        ["sweep.summary.csv", "column heartbeat.interval is missing"],
    ),
    "summary-1e400-replications": (
        _summary_cell("replications", "1e400"),
        ["sweep.summary.csv", "column replications", "whole number"],
    ),
    "summary-text-in-a-number": (
        _summary_cell("connected_hours_mean", "lots"),
        ["sweep.summary.csv", "column connected_hours_mean", "not a number"],
    ),
    "empty-csv": (_write("", b""), ["sweep.csv", "not a readable CSV"]),
    "header-only": (
        lambda path: _write("", path.read_bytes().splitlines(keepends=True)[0])(path),
        ["sweep.csv", "no rows"],
    ),
}


def damaged(folder: Path, case: str) -> tuple[Path, list[str]]:
    """The good sweep in ``folder`` damaged as ``case`` says: the path to read, the fragments."""
    damage, fragments = CORRUPTIONS[case]
    return damage(good_sweep(folder)), fragments


def test_the_undamaged_sweep_reads(tmp_path):
    data = sweepdata.read(good_sweep(tmp_path))
    assert data.settings == ("heartbeat.interval", "detector.timeout") and len(data.summary) == 2


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_damaged_output_is_bad_input_naming_what(tmp_path, case):
    path, fragments = damaged(tmp_path, case)
    with pytest.raises(sweepdata.SweepDataError) as caught:
        sweepdata.read(path)
    text = str(caught.value)
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_a_dataframe_and_a_meta_given_are_checked_too():
    rows = frame(point(20, 50), point(40, 60))
    rows.loc[0, "connected_hours"] = float("inf")
    with pytest.raises(sweepdata.SweepDataError, match="connected_hours"):
        sweepdata.read(rows)
    with pytest.raises(sweepdata.SweepDataError, match="a JSON object"):
        sweepdata.read(frame(point(20, 50)), meta=[1])


def test_points_that_lost_their_varied_column_are_told_apart_without_a_meta(tmp_path):
    """No .meta.json to name the varied keys: two point ids with the same settings give it away."""
    path = write(tmp_path, point(20, 50), point(40, 50))
    rows = pd.read_csv(path)
    rows["point_id"] = ["a", "a", "b", "b"]
    rows.drop(columns=["heartbeat.interval"]).to_csv(path, index=False)
    with pytest.raises(sweepdata.SweepDataError, match="a varied key's column is missing"):
        sweepdata.read(path)


def test_huge_but_finite_figures_give_no_overflow():
    """Counts of 1e300 pass the check; their pooled sums overflow to NaN figures, not a crash."""
    rows = frame(point(20, 50), point(40, 60))
    rows["false_positives"] = 1e308
    data = sweepdata.read(rows)
    assert data.summary["false_disconnects_per_conn_hour_mean"].isna().all()


def test_a_sweep_csv_that_is_a_directory_a_device_or_too_big_is_refused(tmp_path, monkeypatch):
    """Read through simlab.io.read_text (issue 17): a regular file within OUTPUT_LIMIT."""
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(sweepdata.SweepDataError, match="a directory, not a regular file"):
        sweepdata.read(tmp_path / "dir.csv")
    with pytest.raises(sweepdata.SweepDataError, match="a character device"):
        sweepdata.read("/dev/zero")
    path = write(tmp_path, point(20, 50, fp=3, nat=1))
    monkeypatch.setattr(sweepdata, "OUTPUT_LIMIT", 100)
    with pytest.raises(sweepdata.SweepDataError) as info:
        sweepdata.read(path)
    assert "is too big (a sweep CSV must be a regular file of at most 100 bytes)" in str(info.value)
