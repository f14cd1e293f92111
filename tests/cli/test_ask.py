"""``simlab ask``: exit codes (0 an answer, 1 nothing meets the bounds, 2 bad input) and
--library speaking the library's settings. Every run is small (--connections, --horizon)."""

from __future__ import annotations

from simlab.cli.main import main

SMALL = ["--replications", "2", "--quiet", "--workers", "2"]


def test_bad_input_exits_2_listing_every_problem(tmp_path, capsys):
    code = main(
        [
            "ask",
            "--network",
            "moon",
            "--behind",
            "nowhere",
            "--max-false-disconnects",
            "lots",
            "--minimize",
            "joules",
            "--connections",
            "0",
            "--out-dir",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for option in (
        "--network",
        "--behind",
        "--max-false-disconnects",
        "--minimize",
        "--connections",
        "--max-detection",
    ):
        assert option in err, option
    assert not (tmp_path / "o").exists()  # nothing runs, nothing is written


def test_an_infeasible_question_exits_1_saying_which_bound(tmp_path, capsys):
    code = main(
        [
            "ask",
            "--network",
            "lte",
            "--nat-timeout",
            "60s",
            "--max-detection",
            "1s",
            "--max-false-disconnects",
            "2/conn-day",
            "--connections",
            "2",
            "--horizon",
            "1h",
            "--out-dir",
            str(tmp_path),
            *SMALL,
        ]
    )
    out = capsys.readouterr()
    assert code == 1
    assert "cannot be met: max_false_disconnects" in out.out
    assert "closest" in out.out or "no setting comes close" in out.out
    assert (tmp_path / "report.html").is_file()


def test_library_speaks_its_settings(tmp_path, capsys):
    code = main(
        [
            "ask",
            "--network",
            "datacenter",
            "--nat-timeout",
            "30s",
            "--max-detection",
            "30s",
            "--max-false-disconnects",
            "2/conn-day",
            "--library",
            "socketio",
            "--connections",
            "4",
            "--horizon",
            "24h",
            "--out-dir",
            str(tmp_path),
            *SMALL,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "in Socket.IO" in out and "pingInterval=28000" in out
    text = (tmp_path / "sweep.yaml").read_text()
    assert "detector.missed.ack_timeout" in text and "kind: missed" in text
