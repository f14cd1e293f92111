"""Tests for simlab.scenario.fielddata: the CSVs' schema and values, the checks on load, lookups by name.

The values asserted here are the sourced figures the rest of the lab leans on
(an AWS ALB closes after 60 s, python websockets pings every 20 s, ...); a
change to one of them should be a deliberate edit of both the CSV and this file.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simlab.errors import ScenarioError
from simlab.scenario import fielddata
from simlab.scenario.fielddata import (
    SCHEMAS,
    FieldDataError,
    parse_dist,
    parse_loss,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[2]
LOADERS = {
    "middleboxes": fielddata.middleboxes,
    "keepalive_defaults": fielddata.keepalive_defaults,
    "networks": fielddata.networks,
}


@pytest.mark.parametrize("table", sorted(LOADERS))
def test_every_table_loads_with_its_columns_sources_and_confidence(table):
    df = LOADERS[table]()
    assert isinstance(df, pd.DataFrame) and len(df) >= 8
    assert list(df.columns) == list(SCHEMAS[table].columns)
    assert df["name"].is_unique
    assert (df["source"].str.len() > 0).all(), "every row names its source"
    assert set(df["confidence"]) <= {"H", "M", "L"}
    for column in SCHEMAS[table].numbers:
        assert df[column].dtype == float


def test_data_lives_in_the_top_level_data_folder():
    assert fielddata.data_dir() == ROOT / "data"
    for schema in SCHEMAS.values():
        assert (ROOT / "data" / schema.file).is_file()


def test_pyproject_installs_every_csv_where_data_dir_looks():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    installed = config["tool"]["setuptools"]["data-files"]["share/simlab/data"]
    assert {f"data/{s.file}" for s in SCHEMAS.values()} <= set(installed)


def test_loaders_return_copies():
    df = fielddata.middleboxes()
    df.loc[:, "idle_timeout_s"] = 0.0
    assert fielddata.middlebox_timeout("aws-alb") == 60.0


@pytest.mark.parametrize(
    ("name", "seconds", "expiry", "refresh"),
    [
        ("aws-alb", 60, "close", "any-data"),
        ("aws-elb-classic", 60, "close", "any-data"),
        ("aws-nlb", 350, "reset", "both"),
        ("azure-lb", 240, "drop", "both"),
        ("nginx-default", 60, "close", "downstream"),
        ("heroku-router", 55, "close", "any-data"),
        ("cloudflare", 100, "unknown", "any-data"),
        ("gcp-external-lb", 30, "close", "none"),
        ("rfc5382-tcp-min", 7440, "unknown", "unknown"),
        ("rfc4787-udp", 120, "drop", "outbound"),
        ("linux-conntrack-established", 432000, "drop", "both"),
        ("openwrt-conntrack-established", 7440, "drop", "both"),
    ],
)
def test_middlebox_values(name, seconds, expiry, refresh):
    row = fielddata.middlebox(name)
    assert fielddata.middlebox_timeout(name) == seconds
    assert isinstance(fielddata.middlebox_timeout(name), float)
    assert (row["expiry"], row["refresh"]) == (expiry, refresh)


def test_middlebox_kinds_and_the_lifetime_cap():
    df = fielddata.middleboxes()
    assert set(df["kind"]) <= {"load-balancer", "proxy", "nat", "carrier-nat", "cdn", "spec"}
    assert set(df["protocol"]) == {"tcp", "udp"}
    lifetime = df[df["timeout_kind"] == "lifetime"]["name"].tolist()
    assert lifetime == ["gcp-external-lb"]  # heartbeats cannot extend it


def test_keepalive_default_values():
    df = fielddata.keepalive_defaults().set_index("name")
    pairs = {name: (df.at[name, "interval_s"], df.at[name, "timeout_s"]) for name in df.index}
    assert pairs["websockets-default"] == (20, 20)
    assert pairs["socketio-default"] == (25, 20)
    assert pairs["signalr-default"] == (15, 30)
    assert pairs["phoenix-default"] == (30, 30)
    assert pairs["grpc-default"] == (7200, 20)
    assert pairs["grpc-client-5min"] == (300, 20)
    # the relations the libraries define, not just the numbers
    assert pairs["gorilla-example"] == (0.9 * 60, 60)  # pingPeriod = pongWait * 9/10
    assert pairs["mqtt-60s"] == (60, 1.5 * 60)  # the broker waits 1.5 x Keep Alive
    assert pairs["linux-tcp-keepalive"] == (7200, 7200 + 9 * 75)  # time + probes x intvl
    assert pairs["slack-socket-mode"][0] == pytest.approx(5 / 3, abs=1e-4)  # timeout / 3
    assert pairs["actioncable-default"] == (3, 2 * 3)  # two missed server pings
    assert df.at["discord-gateway", "first_beat"] == "uniform(0,interval)"
    assert df.at["websockets-default", "initiator"] == "both"
    assert df.at["akka-cluster", "detector"] == "phi"


def test_network_rows_refer_to_known_middleboxes():
    nets, boxes = fielddata.networks(), fielddata.middleboxes()
    named = nets[nets["middlebox"] != ""]
    assert set(named["middlebox"]) <= set(boxes["name"])
    assert fielddata.network("behind-alb")["middlebox"] == "aws-alb"
    for name in ("datacenter", "home-wifi", "lte", "weak-mobile", "carrier-nat", "behind-alb"):
        assert fielddata.network(name)["description"]


def test_assumed_network_numbers_say_so():
    nets = fielddata.networks().set_index("name")
    for name in ("datacenter", "home-wifi", "lte", "weak-mobile"):
        assert nets.at[name, "confidence"] == "L"
        assert "assum" in (nets.at[name, "notes"] + nets.at[name, "source"]).lower()


def test_unknown_name_says_option_value_allowed_and_did_you_mean():
    with pytest.raises(ScenarioError) as info:
        fielddata.middlebox_timeout("aws-abl", option="--behind")
    (problem,) = info.value.problems
    assert problem.path == "--behind"
    assert "'aws-abl'" in problem.message
    assert "did you mean 'aws-alb'?" in problem.message
    assert "allowed: " in problem.message and "heroku-router" in problem.message
    with pytest.raises(ScenarioError, match="did you mean 'lte'"):
        fielddata.network("lte2")


def test_value_syntax():
    assert parse_dist("20ms") == {"dist": "constant", "value": 0.02}
    assert parse_dist("lognormal:60ms:0.6") == {"dist": "lognormal", "median": 0.06, "sigma": 0.6}
    assert parse_dist("uniform:2m:30m") == {"dist": "uniform", "low": 120.0, "high": 1800.0}
    assert parse_loss("0.01") == {"model": "bernoulli", "p": 0.01}
    assert parse_loss("gilbert:0.002:0.3:0.001:0.5") == {
        "model": "gilbert",
        "p_gb": 0.002,
        "p_bg": 0.3,
        "loss_good": 0.001,
        "loss_bad": 0.5,
    }
    assert parse_settings("a.b=8; c.d=100ms;") == {"a.b": 8, "c.d": "100ms"}
    for bad in ("gamma:1s", "lognormal:1s", "lognormal:fast:1"):
        with pytest.raises(ValueError):
            parse_dist(bad)
    for bad in ("1.5", "gilbert:0.1", "bursty:0.1:0.1:0.1:0.1"):
        with pytest.raises(ValueError):
            parse_loss(bad)
    with pytest.raises(ValueError):
        parse_settings("no-equals-sign")


# -- the checks on load: a copy of the real files, broken on purpose ----------------------


@pytest.fixture
def copy_dir(tmp_path):
    for schema in SCHEMAS.values():
        shutil.copy(ROOT / "data" / schema.file, tmp_path / schema.file)
    return tmp_path


def _edit(folder: Path, table: str, change) -> None:
    path = folder / SCHEMAS[table].file
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    changed = change(df)  # edits in place, or returns a new frame
    (df if changed is None else changed).to_csv(path, index=False)


def _problems(folder: Path, table: str) -> list[str]:
    with pytest.raises(FieldDataError) as info:
        fielddata.read(table, folder)
    assert str(folder) in str(info.value)  # the file is named
    return [str(p) for p in info.value.problems]


def test_a_copy_of_the_real_files_passes(copy_dir):
    for table in SCHEMAS:
        assert len(fielddata.read(table, copy_dir)) == len(LOADERS[table]())


def test_every_middlebox_problem_is_reported_at_once(copy_dir):
    def break_it(df):
        df.loc[0, "idle_timeout_s"] = "soon"
        df.loc[1, "confidence"] = "X"
        df.loc[2, "source"] = ""
        df.loc[3, "expiry"] = "explodes"
        df.loc[4, "idle_timeout_s"] = "-5"
        df.loc[5, "name"] = "Bad Name"
        df.loc[7, "name"] = df.loc[8, "name"]

    _edit(copy_dir, "middleboxes", break_it)
    problems = _problems(copy_dir, "middleboxes")
    expected = [
        "row 2 (rfc5382-tcp-min).idle_timeout_s: expected a number, got 'soon'",
        "row 3 (rfc4787-udp).confidence: 'X': must be one of H, M, L",
        "row 4 (linux-conntrack-established).source: empty",
        "row 5 (linux-conntrack-udp).expiry: 'explodes': must be one of drop, reset, close, unknown",
        "row 6 (linux-conntrack-udp-stream).idle_timeout_s: -5: must be > 0",
        "row 7 (Bad Name).name: 'Bad Name' is not a slug",
        "name: 'twilio-supersim-udp' appears more than once",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)


def test_a_missing_column_is_named(copy_dir):
    _edit(copy_dir, "keepalive_defaults", lambda df: df.drop(columns=["timeout_s"]))
    (problem,) = _problems(copy_dir, "keepalive_defaults")
    assert problem.startswith("columns: missing timeout_s (expected: name, library")


def test_keepalive_extra_settings_are_checked(copy_dir):
    def break_it(df):
        df.loc[0, "extra_settings"] = "detector.phi.threshold"

    _edit(copy_dir, "keepalive_defaults", break_it)
    (problem,) = _problems(copy_dir, "keepalive_defaults")
    assert "row 2 (websockets-default).extra_settings" in problem


def test_network_problems_unknown_middlebox_overclaimed_confidence_bad_values(copy_dir):
    def break_it(df):
        rows = df.set_index("name").index
        df.loc[rows.get_loc("behind-alb"), "middlebox"] = "aws-abl"
        df.loc[rows.get_loc("behind-nlb"), "confidence"] = "H"  # aws-nlb is M
        df.loc[rows.get_loc("lte"), "delay"] = "lognormal:60ms"
        df.loc[rows.get_loc("home-wifi"), "outage_duration"] = ""
        df.loc[rows.get_loc("carrier-nat"), "nat_refresh"] = ""

    _edit(copy_dir, "networks", break_it)
    problems = "\n".join(_problems(copy_dir, "networks"))
    assert (
        "(behind-alb).middlebox: 'aws-abl' is not a known name; did you mean 'aws-alb'?" in problems
    )
    assert "(behind-nlb).confidence: H is higher than its middlebox aws-nlb's (M)" in problems
    assert "(lte).delay: 'lognormal:60ms': lognormal takes 2 parameter(s)" in problems
    assert "(home-wifi).outage_duration: outages need both" in problems
    assert "(carrier-nat).nat_refresh" in problems


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(FieldDataError, match="cannot read"):
        fielddata.read("middleboxes", tmp_path)


def test_a_data_file_that_is_a_directory_or_too_big_is_refused(tmp_path):
    """Read through simlab.io.read_text: a regular file of at most 1 MiB (issue 17)."""
    (tmp_path / SCHEMAS["middleboxes"].file).mkdir()
    with pytest.raises(FieldDataError, match="a directory, not a regular file"):
        fielddata.read("middleboxes", tmp_path)
    big = tmp_path / "big"
    big.mkdir()
    with open(big / SCHEMAS["middleboxes"].file, "wb") as f:
        f.truncate(2 << 20)
    with pytest.raises(FieldDataError, match="2 MiB is too big"):
        fielddata.read("middleboxes", big)


def test_an_empty_data_file_is_a_clear_error(tmp_path):
    (tmp_path / SCHEMAS["middleboxes"].file).write_text("")
    with pytest.raises(FieldDataError, match="cannot read"):
        fielddata.read("middleboxes", tmp_path)


def test_extra_settings_are_read_with_the_yaml_limits():
    with pytest.raises(yaml.YAMLError, match="nested deeper than 64"):
        parse_settings("a.b=" + "[" * 1000)
