"""The chooser against hand-built sweeps: a known optimum, upper bounds not point estimates,
ties, the binding constraint, worst conditions, middleboxes, infeasible bounds, rate parsing,
and the command's exit codes (0 an answer, 1 none, 2 bad input)."""

from __future__ import annotations

import json
import math

import pytest

import simlab
from simlab.cli.main import main
from simlab.engines.analytic.theory import poisson_interval
from simlab.lab.choice_text import format_choice
from simlab.lab.choose import Choice, choose
from simlab.lab.question import ChooseError, parse_rate

from ..sweeps.test_data import CORRUPTIONS, damaged, good_sweep
from ..sweeps_by_hand import frame, point, write
from ..sweeps_by_hand import meta as meta_for

PER_DAY = 1 / 24


def optimum_points():
    """B (20 s / 50 s) is the answer to: detection <= 60 s, false disconnects <= 1/conn-day.

    A is dearer; C and D are cheaper but fail one bound each (C false disconnects, D
    detection); E is cheaper and its point estimate meets the rate bound, its upper bound
    does not.
    """
    return [
        point(10, 30, fp=0),  # A
        point(20, 50, fp=2),  # B
        point(30, 50, fp=60),  # C: 0.06 per hour
        point(30, 90, fp=0, p95=89),  # D
        point(25, 45, fp=40),  # E: 0.04 per hour < 1/24, upper bound above it
    ]


def test_known_optimum_and_its_alternatives(tmp_path):
    path = write(tmp_path, *optimum_points())
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    assert isinstance(c, Choice) and c.feasible
    assert c.recommendation.settings == {"heartbeat.interval": 20.0, "detector.timeout": 50.0}
    assert [o.settings["heartbeat.interval"] for o in c.alternatives] == [10.0]
    fd = c.recommendation.figures["false_disconnects_per_conn_hour"]
    low, high = poisson_interval(4, 2000.0)
    assert fd.value == pytest.approx(4 / 2000) and (fd.low, fd.high) == pytest.approx((low, high))
    assert c.recommendation.deadline_s == 50.0 and c.recommendation.interval_s == 20.0


def test_bounds_use_the_upper_confidence_bound(tmp_path):
    path = write(tmp_path, *optimum_points())
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    e = c.table[(c.table["heartbeat.interval"] == 25.0)].iloc[0]
    assert e["false_disconnects_per_conn_hour_mean"] < PER_DAY  # the estimate would pass
    assert e["false_disconnects_per_conn_hour_ci_high"] > PER_DAY  # its upper bound does not
    assert not e["feasible"] and e["violations"] == "max_false_disconnects"
    assert any("upper 95 % confidence bounds" in n for n in c.notes)
    assert "upper 95% confidence bounds" in c.to_dict()["bounds_use"]


def test_binding_constraints_name_the_cheaper_settings_they_exclude(tmp_path):
    path = write(tmp_path, *optimum_points())
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    assert c.binding == ("max_detection", "max_false_disconnects")
    text = " ".join(c.binding_notes)
    assert "--max-detection 89 s" in text  # relaxing it to D's bound would admit D
    assert "heartbeat.interval = 25 s" in text  # E: the nearest cheaper one it excludes


def test_no_binding_constraint_when_the_cheapest_setting_qualifies(tmp_path):
    path = write(tmp_path, point(10, 30), point(20, 50))
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    assert c.recommendation.settings["heartbeat.interval"] == 20.0
    assert c.binding == () and "cheapest setting in the sweep" in c.binding_notes[0]


def test_a_tie_in_cost_goes_to_the_larger_margin(tmp_path):
    b = point(20, 50, fp=2)
    f = point(20, 40, fp=1, cost=20880 * 1.005)  # 0.5 % dearer: a tie, fewer false disconnects
    c = choose(write(tmp_path, b, f), max_detection="60s", max_false_disconnects="1/conn-day")
    assert c.recommendation.settings["detector.timeout"] == 40.0
    # equal cost and false disconnects: the faster detection wins
    g = point(20, 45, fp=2, p95=44)
    c = choose(write(tmp_path / "g", b, g), max_detection="60s", max_false_disconnects="1/conn-day")
    assert c.recommendation.settings["detector.timeout"] == 45.0
    assert c.alternatives[0].settings["detector.timeout"] == 50.0


def test_the_answer_does_not_depend_on_row_order(tmp_path):
    points = optimum_points()
    one = choose(write(tmp_path / "a", *points), max_detection=60, max_false_disconnects=PER_DAY)
    two = choose(
        write(tmp_path / "b", *points[::-1]), max_detection=60, max_false_disconnects=PER_DAY
    )
    assert one.recommendation.settings == two.recommendation.settings
    assert one.binding == two.binding


def test_each_setting_is_judged_by_its_worst_condition(tmp_path):
    path = write(
        tmp_path,
        point(20, 50, fp=0, name="home-wifi"),
        point(20, 50, fp=100, name="lte"),  # fails there
        point(10, 30, fp=0, name="home-wifi"),
        point(10, 30, fp=2, name="lte"),
    )
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    assert c.recommendation.settings == {"heartbeat.interval": 10.0, "detector.timeout": 30.0}
    assert c.recommendation.worst_condition == "lte"
    assert any("name: home-wifi, lte" in n for n in c.notes)


def test_middlebox_timeout_excludes_intervals_that_let_it_expire(tmp_path):
    path = write(tmp_path, point(30, 50), point(55, 58, p95=57))
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day", nat_timeout="55s")
    assert c.recommendation.settings["heartbeat.interval"] == 30.0
    assert c.binding == ("middlebox",)
    assert "55 s idle timeout" in c.binding_notes[0]
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day", behind="aws-alb")
    assert c.recommendation.settings["heartbeat.interval"] == 55.0  # 55 s + 1 s < 60 s


def test_a_lifetime_cap_cannot_be_met_by_any_heartbeat(tmp_path):
    path = write(tmp_path, point(10, 30), point(20, 50))
    c = choose(
        path, max_detection="60s", max_false_disconnects="1/conn-day", behind="gcp-external-lb"
    )
    assert not c.feasible and c.unmet == ("middlebox",)
    assert c.closest is None
    assert any("no heartbeat setting helps" in n for n in c.notes)


def test_infeasible_bound_says_which_and_what_the_closest_setting_costs(tmp_path):
    path = write(tmp_path, *optimum_points())
    c = choose(path, max_detection="10s", max_false_disconnects="1/conn-day")
    assert not c.feasible and c.recommendation is None and c.libraries == ()
    assert c.unmet == ("max_detection",)
    assert c.closest.settings == {"heartbeat.interval": 10.0, "detector.timeout": 30.0}
    assert "--max-detection 29 s" in c.closest_note and "41,760" in c.closest_note
    assert any("lowest upper bound in the sweep is 29 s" in n for n in c.notes)
    text = format_choice(c)
    assert "no setting in the sweep meets the bounds" in text and "closest:" in text


def test_bounds_that_conflict_are_each_met_by_some_setting(tmp_path):
    path = write(tmp_path, point(10, 30, fp=50), point(20, 90, fp=0, p95=89))
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    assert not c.feasible and c.unmet == ()
    assert any("none meets max_detection and max_false_disconnects at once" in n for n in c.notes)


def test_a_sweep_too_short_for_the_bound_says_so(tmp_path):
    path = write(tmp_path, point(10, 30, fp=0, hours=100))
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-year")
    assert not c.feasible
    assert any("cannot show a rate as low as 1/conn-year" in n for n in c.notes)


def test_summary_csv_and_dataframe_give_the_same_answer(tmp_path):
    path = write(tmp_path, *optimum_points())
    from simlab.sweeps import data as sweepdata

    sweepdata.read(path).summary.to_csv(tmp_path / "other.summary.csv", index=False)
    bounds = {"max_detection": "60s", "max_false_disconnects": "1/conn-day"}
    a = choose(path, **bounds)
    b = choose(tmp_path / "other.summary.csv", **bounds)
    c = choose(frame(*optimum_points()), **bounds)
    assert a.recommendation.settings == b.recommendation.settings == c.recommendation.settings


def test_minimize_wakeups_and_the_library_settings(tmp_path):
    path = write(tmp_path, *optimum_points())
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day", minimize="wakeups")
    assert c.constraints.cost_key == "wakeups_per_conn_hour"
    assert c.recommendation.cost == pytest.approx(3600 / 20)
    libs = {lib.library: lib.options for lib in c.libraries}
    assert libs["python websockets"] == {"ping_interval": 20.0, "ping_timeout": 30.0}
    assert libs["gorilla/websocket (Go)"] == {"pingPeriod": 20.0, "pongWait": 50.0}
    assert libs["Socket.IO (server options)"] == {"pingInterval": 20000, "pingTimeout": 30000}


def test_a_cost_the_sweeps_engine_did_not_count_is_bad_input(tmp_path, capsys):
    # the fast engine over TCP counts messages, not bytes (nor wake-ups, see the next test):
    # here a sweep without the bytes column
    rows = [
        {k: v for k, v in row.items() if k != "overhead_bytes_per_conn_hour"}
        for rows in optimum_points()
        for row in rows
    ]
    path = write(tmp_path, rows, meta=meta_for(engine="fast"))
    with pytest.raises(ChooseError) as info:
        choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    (problem,) = info.value.problems
    assert problem.path == "--minimize"
    assert "'bytes': none of the sweep's settings" in problem.message
    assert "(engine fast)" in problem.message
    assert "use --minimize wakeups or messages" in problem.message
    args = ["choose", str(path), "--max-detection", "60s", "--max-false-disconnects", "1/conn-day"]
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day", minimize="messages")
    assert c.recommendation.settings["heartbeat.interval"] == 20.0


def test_minimize_wakeups_on_a_fast_engine_sweep(tmp_path):
    """The fast engine counts the client's radio wake-ups over datagrams (not over TCP)."""
    from simlab.sweeps.sweep import parse_sweep, run_sweep

    def sweep(transport: str):
        raw = {
            "base": {
                "name": "fast-wakeups",
                "horizon": "2h",
                "connections": 8,
                "heartbeat": {"style": "pingpong", "initiator": "server"},
                "detector": {"kind": "timeout", "timeout": "30s"},
                "link": {"transport": transport, "loss": 0.05, "delay": "50ms"},
                "peer": {"crash": {"mtbf": "20m"}},
            },
            "grid": {"heartbeat.interval": ["8s", "12s", "20s"]},
            "replications": 2,
            "engine": "fast",
            "seed": 4,
        }
        out = tmp_path / f"{transport}.csv"
        outcome = run_sweep(parse_sweep(raw), out, workers=1, progress=False)
        assert not outcome.failed
        return out

    datagram = sweep("datagram")
    c = choose(
        datagram,
        max_detection="2m",
        max_false_disconnects="1/conn-hour",
        minimize="wakeups",
    )
    assert c.feasible and c.constraints.cost_key == "wakeups_per_conn_hour"
    # 8 s rounds keep the radio awake between them (a lost ping aside): the fewest wake-ups
    assert c.recommendation.settings["heartbeat.interval"] == 8.0
    assert 0 < c.recommendation.cost < 3600 / 12
    bounds = ["--max-detection", "2m", "--max-false-disconnects", "1/conn-hour"]
    assert main(["choose", str(datagram), *bounds, "--minimize", "wakeups"]) == 0
    with pytest.raises(ChooseError) as info:
        choose(
            sweep("tcp"),
            max_detection="2m",
            max_false_disconnects="1/conn-hour",
            minimize="wakeups",
        )
    (problem,) = info.value.problems
    assert (
        "(engine fast)" in problem.message and "use --minimize bytes or messages" in problem.message
    )


def test_package_exports_the_function():
    assert simlab.choose is choose
    assert "choose" in simlab.__all__


@pytest.mark.parametrize(
    ("text", "per_hour", "unit"),
    [
        ("1/conn-month", 1 / 720, "month"),
        ("0.1/conn-day", 0.1 / 24, "day"),
        ("2/conn-hour", 2.0, "hour"),
        ("3 per conn-week", 3 / 168, "week"),
        ("1/connection-months", 1 / 720, "month"),
        ("1e-2/conn-h", 0.01, "hour"),
        ("0.5/conn-year", 0.5 / 8760, "year"),
        (0.25, 0.25, "hour"),
    ],
)
def test_parse_rate(text, per_hour, unit):
    rate = parse_rate(text)
    assert rate.per_hour == pytest.approx(per_hour) and rate.unit == unit


@pytest.mark.parametrize("text", ["1/fortnight", "abc", "-1/conn-day", "", "1/conn-", None, True])
def test_parse_rate_rejects_with_what_is_allowed(text):
    with pytest.raises(ValueError, match="N/conn-month"):
        parse_rate(text)


def test_parse_rate_rejects_a_negative_number():
    with pytest.raises(ValueError, match=">= 0"):
        parse_rate(-1.0)


def test_bad_input_lists_every_problem_at_once(tmp_path):
    with pytest.raises(ChooseError) as info:
        choose(
            tmp_path / "missing.csv",
            max_detection="soon",
            max_false_disconnects="1/fortnight",
            nat_timeout="55s",
            behind="aws-alb",
            minimize="joules",
        )
    paths = [p.path for p in info.value.problems]
    assert paths == [
        "--max-detection",
        "--max-false-disconnects",
        "--behind",
        "--minimize",
        "sweep",
    ]


def test_a_csv_that_is_not_a_sweep_is_bad_input(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ChooseError, match="not a sweep's output"):
        choose(tmp_path / "x.csv", max_detection="60s")


# -- the command --------------------------------------------------------------------------------


CHOOSE = ["choose", "--max-detection", "60s", "--max-false-disconnects", "1/conn-day"]


def test_cli_prints_the_answer_and_exits_0(tmp_path, capsys):
    path = write(tmp_path, *optimum_points())
    code = main([CHOOSE[0], str(path), *CHOOSE[1:]])
    out = capsys.readouterr().out
    assert code == 0
    assert "recommended: heartbeat.interval = 20 s, detector.timeout = 50 s" in out
    assert "ping_interval=20, ping_timeout=30" in out
    assert "pongWait=50" in out and "pingTimeout=30000" in out
    assert "KeepAliveInterval=20, ClientTimeoutInterval=50" in out
    # the binding constraints and the notes moved behind --verbose (issue 18: the default
    # fits one screen); the default still says how the bounds are judged
    assert "by upper 95 % bounds" in out and "--verbose" in out


def test_the_default_answer_fits_one_screen_and_starts_with_the_recommendation(tmp_path, capsys):
    """Issue 18: the demo's last screen was 50 lines ending in library code, the
    recommendation scrolled away. Now the answer comes first and everything fits 24 lines;
    the library code and the long notes are one --verbose away."""
    path = write(tmp_path, *optimum_points())
    assert main([CHOOSE[0], str(path), *CHOOSE[1:]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 24, "\n".join(lines)
    assert lines[0] == "recommended: heartbeat.interval = 20 s, detector.timeout = 50 s"
    assert lines[1] == "  (ping every 20 s; give up after 50 s without a pong)"
    # the bounds it meets come next, then its figures, the alternatives, the libraries
    at = {
        key: next(i for i, line in enumerate(lines) if line.startswith(key))
        for key in (
            "it is the cheapest",
            "its figures",
            "alternatives",
            "library settings",
            "more:",
        )
    }
    assert list(at.values()) == sorted(at.values()) and at["it is the cheapest"] == 2
    assert lines[3] == "  - a vanished peer is detected within 60 s (detection latency, p95)"
    assert any(
        line.startswith("  1. heartbeat.interval = 10 s, detector.timeout = 30 s: +")
        for line in lines
    )
    # no library code, no semantics, no notes by default
    text = "\n".join(lines)
    assert "websockets.serve(" not in text and "notes:" not in text
    assert "binding constraint" not in text


def test_verbose_prints_the_full_answer_answer_first(tmp_path, capsys):
    """--verbose keeps everything the text used to hold (each figure's interval, the binding
    constraints, each library's code and semantics, the notes, the sweep), answer first."""
    path = write(tmp_path, *optimum_points())
    assert main([CHOOSE[0], str(path), *CHOOSE[1:]]) == 0
    short = capsys.readouterr().out
    assert main([CHOOSE[0], str(path), *CHOOSE[1:], "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recommended: heartbeat.interval = 20 s, detector.timeout = 50 s\n")
    assert len(out.splitlines()) > len(short.splitlines())
    assert "binding constraint" in out and "upper 95 % confidence bounds" in out
    assert "websockets.serve(" in out and "caveat:" in out and "notes:" in out
    assert "middlebox expiries" in out and f"sweep: {path}" in out
    c = choose(path, max_detection="60s", max_false_disconnects="1/conn-day")
    assert out == format_choice(c, verbose=True) + "\n" and short == str(c) + "\n"
    for lib in c.libraries:
        assert lib.snippet in out and lib.semantics in out and lib.snippet not in short
    for note in (*c.notes, *c.binding_notes):
        assert note in out


def test_json_is_the_same_with_or_without_verbose(tmp_path, capsys):
    path = write(tmp_path, *optimum_points())
    assert main([CHOOSE[0], str(path), *CHOOSE[1:], "--json"]) == 0
    plain = capsys.readouterr().out
    assert main([CHOOSE[0], str(path), *CHOOSE[1:], "--json", "--verbose"]) == 0
    assert capsys.readouterr().out == plain


def test_cli_json(tmp_path, capsys):
    path = write(tmp_path, *optimum_points())
    args = ["choose", str(path), "--max-detection", "60", "--max-false-disconnects", "1/conn-day"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["feasible"] is True
    assert doc["recommendation"]["settings"] == {
        "heartbeat.interval": 20.0,
        "detector.timeout": 50.0,
    }
    fd = doc["recommendation"]["figures"]["false_disconnects_per_conn_hour"]
    assert fd["high"] > fd["value"] > fd["low"] > 0
    assert doc["constraints"]["max_false_disconnects_per_conn_hour"] == pytest.approx(PER_DAY)
    assert {lib["library"] for lib in doc["libraries"]} >= {
        "python websockets",
        "ASP.NET Core SignalR",
    }
    assert not any(isinstance(v, float) and math.isnan(v) for v in fd.values())


def test_cli_infeasible_exits_1(tmp_path, capsys):
    path = write(tmp_path, *optimum_points())
    code = main(
        ["choose", str(path), "--max-detection", "5s", "--max-false-disconnects", "1/conn-day"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "cannot be met: max_detection" in captured.out
    assert "exit 1" in captured.err


def test_cli_bad_input_exits_2_without_a_traceback(tmp_path, capsys):
    path = write(tmp_path, *optimum_points())
    code = main(
        [
            "choose",
            str(path),
            "--max-detection=-3s",
            "--max-false-disconnects",
            "lots",
            "--behind",
            "aws-albb",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "3 problem(s)" in err and "Traceback" not in err
    assert "--max-false-disconnects: expected a count per connection-time" in err
    assert "did you mean 'aws-alb'?" in err


def test_cli_needs_a_bound(tmp_path, capsys):
    path = write(tmp_path, *optimum_points())
    assert main(["choose", str(path), "--minimize", "joules"]) == 2
    err = capsys.readouterr().err
    assert "--max-detection: missing" in err and "--minimize: 'joules'" in err


# -- adaptive policies against fixed settings ------------------------------------------------------

BOUNDS = {"max_detection": "120s", "max_false_disconnects": "1/conn-day"}


def policy_sweep(tmp_path, adaptive_cost: float, *, adaptive_fp: int = 0, base: dict | None = None):
    """Fixed 20 s (1000 B/h) and 30 s (800 B/h) meet the bounds, fixed 60 s (700 B/h) has too
    many false disconnects; nat-probe costs ``adaptive_cost``, network-state 950."""
    from ..sweeps_by_hand import meta, policy_point

    return write(
        tmp_path,
        policy_point("fixed", 20, 45, cost=1000),
        policy_point("fixed", 30, 65, cost=800),
        policy_point("fixed", 60, 125, cost=700, fp=60),
        policy_point("nat-probe", 30, 65, cost=adaptive_cost, fp=adaptive_fp),
        policy_point("network-state", 30, 65, cost=950),
        meta=meta(base),
    )


def test_an_adaptive_policy_that_beats_every_fixed_setting_is_recommended(tmp_path):
    c = choose(policy_sweep(tmp_path, 600), **BOUNDS)
    best = c.recommendation
    assert best.policy == "nat-probe" and best.adaptive
    assert best.interval_s is None and best.deadline_s is None  # the policy moves them
    p = c.policies
    assert p["verdict"] == "adaptive"
    assert (
        p["best_fixed"]
        == "heartbeat.interval = 30 s, detector.timeout = 65 s, heartbeat.policy.kind = fixed"
    )
    assert p["saved"] == pytest.approx(200) and p["saved_fraction"] == pytest.approx(0.25)
    text = format_choice(c)
    assert "saves 25.0% of the heartbeat bytes per connection-hour" in text
    assert "no library has it built in" in text and "application-level recipe:" in text
    # the libraries cannot express it: one application-level recipe with the parameters
    (lib,) = c.libraries
    assert lib.library == "application level (nat-probe)"
    assert lib.options["floor_s"] == 30.0 and lib.options["growth"] == 2.0
    assert lib.options["timeout_slack_s"] == 35.0
    assert "No library has the nat-probe policy built in" in lib.caveat
    assert "ping_interval=None" in lib.caveat
    doc = json.loads(json.dumps(c.to_dict(), default=str))
    assert doc["policies"]["verdict"] == "adaptive" and doc["recommendation"]["adaptive"]


def test_an_adaptive_policy_that_costs_more_is_not_recommended(tmp_path):
    c = choose(policy_sweep(tmp_path, 900), **BOUNDS)
    assert c.recommendation.policy == "fixed" and c.recommendation.interval_s == 30.0
    assert c.policies["verdict"] == "fixed"
    assert c.policies["saved_fraction"] == pytest.approx(-0.125)
    assert "no adaptive policy beats the best fixed setting" in format_choice(c)
    assert "costs 12.5% more" in c.policies["note"]
    assert "python websockets" in {lib.library for lib in c.libraries}


def test_a_tie_between_adaptive_and_fixed_goes_to_the_fixed_setting(tmp_path):
    c = choose(policy_sweep(tmp_path, 796), **BOUNDS)  # 0.5 % cheaper: within the 1 % tie
    assert c.recommendation.policy == "fixed"
    assert c.policies["verdict"] == "tie"
    assert c.policies["saved_fraction"] == pytest.approx(0.005)
    assert "a tie, which goes to the fixed setting" in c.policies["note"]
    assert c.alternatives[0].policy == "nat-probe"  # the tied one comes next
    # just beyond the tie it wins
    c = choose(policy_sweep(tmp_path, 790), **BOUNDS)
    assert c.recommendation.policy == "nat-probe" and c.policies["verdict"] == "adaptive"


def test_an_adaptive_policy_that_fails_a_bound_says_why(tmp_path):
    c = choose(policy_sweep(tmp_path, 500, adaptive_fp=60), **BOUNDS)
    assert c.recommendation.policy == "fixed"
    # network-state meets the bounds but costs more; nat-probe is cheaper but fails
    assert c.policies["verdict"] == "fixed"
    assert c.policies["best_adaptive"].endswith("network-state")


def test_only_an_adaptive_policy_meets_the_bounds(tmp_path):
    from ..sweeps_by_hand import policy_point

    path = write(
        tmp_path,
        policy_point("fixed", 60, 125, cost=700, fp=60),
        policy_point("nat-probe", 30, 65, cost=900),
    )
    c = choose(path, **BOUNDS)
    assert c.recommendation.policy == "nat-probe"
    assert c.policies["verdict"] == "adaptive-only" and c.policies["saved_fraction"] is None


def test_a_sweep_without_adaptive_policies_says_nothing_about_them(tmp_path):
    c = choose(write(tmp_path, *optimum_points()), max_detection="60s")
    assert c.policies is None and c.to_dict()["policies"] is None
    assert "adaptive" not in format_choice(c).replace(str(tmp_path), "")


def test_nat_probe_behind_a_middlebox_needs_the_middlebox_simulated(tmp_path):
    from ..sweeps_by_hand import BASE

    c = choose(policy_sweep(tmp_path / "a", 600), **BOUNDS, nat_timeout="55s")
    nat_probe = c.table[c.table["heartbeat.policy.kind"] == "nat-probe"].iloc[0]
    assert "middlebox" in nat_probe.violations and c.recommendation.policy == "fixed"
    assert c.policies["verdict"] == "fixed"  # network-state's longest interval (45 s) passes
    simulated = {**BASE, "nat": {"idle_timeout": "55s"}}
    c = choose(policy_sweep(tmp_path / "b", 600, base=simulated), **BOUNDS, nat_timeout="55s")
    assert c.recommendation.policy == "nat-probe"  # judged by its simulated expiries


def test_network_state_is_judged_by_its_longest_interval_behind_a_middlebox(tmp_path):
    c = choose(policy_sweep(tmp_path, 600), **BOUNDS, nat_timeout="40s")
    row = c.table[c.table["heartbeat.policy.kind"] == "network-state"].iloc[0]
    assert "middlebox" in row.violations  # its high-latency state pings every 45 s
    assert c.recommendation.settings["heartbeat.interval"] == 30.0  # fixed 30 s: 31 s < 40 s


# -- damaged sweep outputs: bad input naming file, column and problem, never an answer ------------


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_cli_on_a_damaged_sweep_exits_2_without_an_answer(tmp_path, capsys, case):
    path, fragments = damaged(tmp_path, case)
    code = main(["choose", str(path), "--max-detection", "60s"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_the_undamaged_sweep_gets_an_answer(tmp_path, capsys):
    assert main(["choose", str(good_sweep(tmp_path)), "--max-detection", "60s"]) == 0
    assert "heartbeat" in capsys.readouterr().out
