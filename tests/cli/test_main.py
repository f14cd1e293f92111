"""Tests for the ``simlab`` command: run, check, --set, --seed, --json, --out, exit codes.

Every run is tiny (a few connections, at most an hour of simulated time).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import simlab
from simlab.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "examples" / "demo.yaml")
TINY = ["--connections", "3", "--set", "horizon=1h"]

# The results table of section 5 of the issue.
RESULT_KEYS = [
    "connected_hours",
    "false_positives",
    "fp_per_conn_hour",
    "fp_per_conn_hour_ci_low",
    "fp_per_conn_hour_ci_high",
    "breaks",
    "breaks_crash",
    "breaks_nat",
    "breaks_tcp_timeout",
    "detections",
    "undetected_breaks",
    "detection_latency_mean_s",
    "detection_latency_p50_s",
    "detection_latency_p95_s",
    "detection_latency_p99_s",
    "detection_latency_max_s",
    "mistakes",
    "mistake_rate_per_s",
    "mistake_duration_mean_s",
    "query_accuracy",
    "heartbeats_sent",
    "overhead_msgs_per_conn_hour",
    "overhead_bytes_per_conn_hour",
    "wakeups_per_conn_hour",
    "app_msgs_blackholed",
    "engine",
    "seed",
    "wall_s",
]

SECTION_TITLES = [
    "exposure",
    "false positives",
    "breaks (ground truth)",
    "detection",
    "accuracy (Chen et al.)",
    "cost",
    "provenance",
]


def run_json(capsys, *args: str) -> dict:
    assert main(["run", DEMO, *TINY, "--json", *args]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one line: one JSON object"
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def test_run_json_has_every_result_key(capsys):
    data = run_json(capsys)
    missing = [k for k in RESULT_KEYS if k not in data]
    assert missing == []
    assert data["engine"] == "simpy"
    assert data["seed"] == 7  # the demo's seed
    assert data["connections"] == 3
    assert data["connected_hours"] == pytest.approx(3.0, rel=0.01)  # 3 connections x 1 h
    assert data["wall_s"] >= 0
    assert data["heartbeats_sent"] > 0
    low, rate, high = (
        data["fp_per_conn_hour_ci_low"],
        data["fp_per_conn_hour"],
        data["fp_per_conn_hour_ci_high"],
    )
    assert 0 <= low <= rate <= high
    for key in RESULT_KEYS:
        value = data[key]
        assert value is None or isinstance(value, (int, float, str)), key


def test_run_json_is_reproducible_except_wall_time(capsys):
    first = run_json(capsys)
    second = run_json(capsys)
    first.pop("wall_s")
    second.pop("wall_s")
    assert first == second


def test_seed_option_changes_the_seed(capsys):
    data = run_json(capsys, "--seed", "123")
    assert data["seed"] == 123


def test_run_table_has_section_titles(capsys):
    assert main(["run", DEMO, *TINY]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = out.splitlines()
    assert lines[0] == "scenario: ws-behind-carrier-nat"
    for title in SECTION_TITLES:
        assert title in lines
    for key in ("fp_per_conn_hour", "detection_latency_p95_s", "overhead_bytes_per_conn_hour"):
        assert any(line.split()[:1] == [key] for line in lines), key
    # no JSON in table mode
    assert not out.lstrip().startswith("{")


def test_out_writes_json_with_parameters_and_records(tmp_path, capsys):
    out_file = tmp_path / "results" / "run.json"
    assert (
        main(["run", DEMO, *TINY, "--set", "heartbeat.interval=20s", "--out", str(out_file)]) == 0
    )
    capsys.readouterr()
    data = json.loads(out_file.read_text())
    for key in RESULT_KEYS:
        assert key in data
    params = data["parameters"]
    assert isinstance(params, dict)
    assert params["heartbeat.interval"] == 20.0  # overrides are recorded, in seconds
    assert params["horizon"] == 3600.0
    assert params["connections"] == 3
    assert params["detector.kind"] == "timeout"
    assert not any(isinstance(v, dict) for v in params.values())  # flat, dotted keys
    # records beside it: the .json suffix is replaced by .records.csv
    records = out_file.with_suffix(".records.csv")
    assert records.exists()
    with records.open() as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"slot", "connection", "time", "event", "detail", "value"}
    assert {row["slot"] for row in rows} == {"0", "1", "2"}
    assert not list(out_file.parent.glob(".run.json.*")), "no temporary files left behind"


def test_out_without_suffix(tmp_path, capsys):
    out_file = tmp_path / "summary"
    assert main(["run", DEMO, *TINY, "--json", "--out", str(out_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out_file.read_text())
    assert written.pop("parameters")
    written.pop("wall_s")
    printed.pop("wall_s")
    assert written == printed
    assert (tmp_path / "summary.records.csv").exists()


def test_check_prints_resolved_dotted_keys(capsys):
    assert main(["check", DEMO, "--set", "heartbeat.interval=15s"]) == 0
    out, err = capsys.readouterr()
    resolved = dict(line.split(" = ", 1) for line in out.splitlines())
    assert resolved["heartbeat.interval"] == "15.0"
    assert resolved["horizon"] == "21600.0"
    assert resolved["nat.idle_timeout.dist"] == "constant"
    assert resolved["nat.idle_timeout.value"] == "300.0"
    assert resolved["link.uplink.loss.p"] == "0.01"
    assert resolved["peer.stall.duration.dist"] == "lognormal"
    assert "ok:" in err and "detector side: server" in err


def test_set_unknown_key_exits_2_with_suggestion(capsys):
    assert main(["run", DEMO, *TINY, "--set", "heartbeat.intervall=10s"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "heartbeat.intervall" in err
    assert "did you mean 'interval'?" in err
    assert "Traceback" not in err


def test_set_unknown_section_exits_2_with_suggestion(capsys):
    assert main(["check", DEMO, "--set", "hearbeat.interval=10s"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'heartbeat'?" in err


def test_set_without_equals_exits_2(capsys):
    assert main(["run", DEMO, *TINY, "--set", "heartbeat.interval"]) == 2
    err = capsys.readouterr().err
    assert "expected dotted.key=value" in err
    assert "Traceback" not in err


def test_set_bad_value_exits_2(capsys):
    assert main(["run", DEMO, *TINY, "--set", "link.loss.p=1.5"]) == 2
    err = capsys.readouterr().err
    assert "link.loss.p" in err and "1.5" in err and ">= 0 and < 1" in err


def test_connections_zero_exits_2(capsys):
    assert main(["run", DEMO, "--connections", "0"]) == 2
    err = capsys.readouterr().err
    assert "connections" in err and "integer >= 1" in err


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["run", DEMO, "--seed", "abc"])
    assert info.value.code == 2


def test_console_script_bad_file(tmp_path):
    script = ROOT / ".venv" / "bin" / "simlab"
    if not script.exists():
        script = Path(sys.executable).with_name("simlab")
    bad = tmp_path / "bad.yaml"
    bad.write_text("heartbeat: {interval: 30x}\ndetector: {kind_: nfd}\n")
    proc = subprocess.run(
        [str(script), "run", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "heartbeat.interval" in proc.stderr
    assert "did you mean 'kind'?" in proc.stderr
    assert proc.stdout == ""


def test_python_m_simlab_version():
    proc = subprocess.run(
        [sys.executable, "-m", "simlab", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"simlab {simlab.__version__}"


def test_a_fleet_file_given_to_run_points_to_storm(capsys):
    from simlab.cli.main import main

    assert main(["run", "examples/fleet-restart.yaml"]) == 2
    err = capsys.readouterr().err
    assert "simlab storm examples/fleet-restart.yaml" in err and "Traceback" not in err


# -- files the OS refuses: one line and exit 2, or exit 1 with the rows kept ---------------------

TINY_SWEEP = {
    "base": {"name": "tiny", "horizon": "5m", "connections": 1, "link": {"loss": 0.01}},
    "grid": {"heartbeat.interval": ["5s", "10s", "20s"]},
    "replications": 1,
    "engine": "fast",
}


def _through_a_file(tmp_path: Path, name: str) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / name


def test_run_out_through_a_file_exits_2_in_one_message(tmp_path, capsys):
    out = _through_a_file(tmp_path, "x.json")
    code = main(["run", DEMO, "--engine", "auto", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "x.json" in err and "not a directory" in err


def test_sweep_out_through_a_file_exits_2(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(TINY_SWEEP))
    out = _through_a_file(tmp_path, "x.csv")
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "x.csv" in err and "not a directory" in err and "Traceback" not in err


def test_a_full_disk_mid_sweep_keeps_the_rows_and_names_resume(tmp_path, capsys, monkeypatch):
    import errno
    import os

    from simlab.errors import OutputError
    from simlab.io import RowAppender, read_rows

    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(TINY_SWEEP))
    reference = tmp_path / "reference.csv"
    assert main(["sweep", str(path), "--out", str(reference), "--quiet", "--workers", "1"]) == 0
    real, calls = RowAppender.append, []

    def fill_up(self, values):
        calls.append(values)
        if len(calls) > 1:
            raise OutputError(self.path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        real(self, values)

    monkeypatch.setattr(RowAppender, "append", fill_up)
    out = tmp_path / "s.csv"
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "--resume" in err and "Traceback" not in err
    assert len(read_rows(out)[1]) == 1
    monkeypatch.undo()
    code = main(["sweep", str(path), "--out", str(out), "--quiet", "--workers", "1", "--resume"])
    assert code == 0

    def rows(p):
        header, body = read_rows(p)
        return [r[: header.index("wall_s")] for r in body]

    assert rows(out) == rows(reference)


def test_any_other_os_error_is_one_line_and_exit_2(capsys, monkeypatch):
    import errno
    import os

    cli = sys.modules["simlab.cli.main"]  # simlab.cli.main the name is the function

    def refuse(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/some/file")

    monkeypatch.setattr(cli, "cmd_presets", refuse)
    assert main(["presets"]) == 2
    assert capsys.readouterr().err == "error: /some/file: No space left on device\n"


# -- the work budget ------------------------------------------------------------------------

CENTURY = ["--set", "horizon=36500d"]  # 100 connections for a century: days of wall time


def test_run_over_the_budget_exits_2_saying_how_long_and_how_to_shrink(capsys):
    assert main(["run", DEMO, *CENTURY]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.count("error:") == 1 and "--budget:" in err
    assert "a run takes about 2d on engine simpy" in err and "over the 1h budget" in err
    assert "100 connections x 3.65e+04d / 30s" in err
    assert "fewer connections" in err and "shorter horizon" in err and "faster engine" in err
    assert "--force" in err and "--budget DURATION" in err


def test_budget_and_force_decide_what_runs(capsys):
    assert main(["run", DEMO, *TINY, "--json", "--budget", "1ms"]) == 2
    assert "over the 0.001s budget" in capsys.readouterr().err
    assert main(["run", DEMO, *TINY, "--json", "--budget", "1ms", "--force"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["engine"] == "simpy"
    assert "estimate:" not in err  # a run of a few seconds or less is not announced
    assert main(["run", DEMO, *TINY, "--budget", "soon"]) == 2
    assert "--budget" in capsys.readouterr().err
    assert main(["run", DEMO, *TINY, "--budget", "0s"]) == 2
    assert "must be a finite duration above 0" in capsys.readouterr().err


def test_a_long_run_within_the_budget_is_announced(capsys, monkeypatch):
    monkeypatch.setattr(simlab.engines.registry, "NOTICE_S", 0.0)  # every run is long here
    assert main(["run", DEMO, *TINY, "--json"]) == 0
    out, err = capsys.readouterr()
    assert "estimate: a run takes about" in err and json.loads(out)["engine"] == "simpy"


def test_check_prints_the_estimate_and_refuses_what_run_would(capsys):
    assert main(["check", DEMO]) == 0
    err = capsys.readouterr().err
    assert "estimate: a run takes about 1.2s on engine simpy" in err and "ok:" in err
    assert main(["check", DEMO, *CENTURY]) == 2
    err = capsys.readouterr().err
    assert "over the 1h budget" in err and "ok:" not in err
    assert main(["check", DEMO, *CENTURY, "--force"]) == 0
    assert "about 2d on engine simpy" in capsys.readouterr().err
    chen = str(ROOT / "examples" / "chen-nfd.yaml")
    assert main(["check", chen, *CENTURY, "--engine", "auto"]) == 0  # analytic: constant time
    assert "on engine analytic" in capsys.readouterr().err
