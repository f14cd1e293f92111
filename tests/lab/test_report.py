"""The report: one self-contained file (every figure a data: URI, nothing fetched), the sections
a team needs, the cross-check status, the command's exit codes, and a real headless Chromium
that must show every figure without a console error (a screenshot is kept in
out/test-artifacts/). Without chromium the browser tests skip, saying why, unless
SIMLAB_REQUIRE_BROWSER=1 (CI), where a missing browser fails them."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from simlab.cli.main import main
from simlab.lab import report as rep

from ..sweeps.test_data import CORRUPTIONS, damaged, good_sweep
from ..sweeps_by_hand import meta, point, write

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "out" / "test-artifacts"
QUESTION = {"max_detection": "60s", "max_false_disconnects": "1/conn-day", "behind": "aws-alb"}


def points():
    out = []
    for name, extra in (("home-wifi", 0), ("lte", 3)):
        for interval, timeout in ((10, 30), (20, 50), (30, 60), (55, 65), (60, 80)):
            out.append(
                point(
                    interval,
                    timeout,
                    fp=extra + interval // 20,
                    name=name,
                    **{"link.outages.mtbf": 7200.0 if name == "lte" else 86400.0},
                )
            )
    return out


@pytest.fixture(scope="module")
def sweep_csv(tmp_path_factory):
    return write(tmp_path_factory.mktemp("sweep"), *points(), meta=meta())


@pytest.fixture(scope="module")
def built(sweep_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r.html"
    path, choice, why = rep.report(sweep_csv, out, **QUESTION)
    return path, choice


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <style> blocks."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    return tags


def test_one_self_contained_file(built):
    path, _ = built
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]  # nothing beside it, no temp file
    assert_self_contained(path.read_text(), images=5)


def assert_self_contained(text: str, images: int) -> None:
    """One file: no scripts, links or fetched resources; every figure an embedded PNG."""
    tags = parse(text)
    for tag, attrs in tags.tags:
        for name in ("src", "href", "srcset", "action", "poster", "data"):
            value = attrs.get(name) or ""
            assert not value.lower().startswith(("http:", "https:", "//")), (tag, name, value)
    assert not [t for t, _ in tags.tags if t in ("script", "link", "iframe", "object", "embed")]
    css = "".join(tags.styles)
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    found = [a for t, a in tags.tags if t == "img"]
    assert len(found) >= images
    for img in found:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert img.get("alt")
    assert "http://" not in text and "https://" not in text


def test_sections_and_content(built):
    path, choice = built
    text = path.read_text()
    assert choice.feasible
    for anchor in ("question", "answer", "scenario", "tradeoff", "middlebox", "sensitivity"):
        assert f"id={anchor}" in text
    assert "upper 95 % confidence bounds" in text
    assert "Recommended: heartbeat.interval" in text
    assert "ping_interval" in text and "pongWait" in text and "ClientTimeoutInterval" in text
    assert "aws-alb" in text and "home-wifi" in text
    assert "Not run." in text  # no cross-check given
    for cite in (
        "Chen, S. Toueg, M. K. Aguilera",
        "Hayashibara",
        "RFC 6298",
        "RFC 5382",
        "RFC 4787",
    ):
        assert cite in text
    assert (
        '<meta name="viewport"' in text and "@media print" in text and "@media (max-width" in text
    )
    assert "The base scenario" in text and "peer.crash.mtbf" in text  # from the meta's sweep


def test_the_answer_comes_first_and_the_appendix_last(built):
    """Issue 18: the answer, its bounds, the trade-off and the libraries lead; the scenario,
    the resolved keys and the sweep file are an appendix at the end."""
    text = built[0].read_text()
    order = [
        'class="answer"',
        "id=tradeoff",  # beside the answer on a desktop, under it on a phone
        "The bounds it meets",
        "In your library",
        "id=question",
        "Runner-up alternatives",
        "id=middlebox",
        "id=methods",
        "id=scenario",
        "The base scenario",
    ]
    at = [text.index(marker) for marker in order]
    assert at == sorted(at), order
    assert "<source media=" in text  # every figure has a narrow redraw for phones


def test_the_appendix_keeps_only_the_keys_that_matter(built):
    text = built[0].read_text()
    appendix = text[text.index("id=scenario") :]
    assert "detector.timeout" in appendix and "detector.phi." not in appendix  # timeout only
    assert "detector.missed." not in appendix and "left out" in appendix


def test_the_appendix_says_which_engine_ran_the_points(sweep_csv):
    from simlab.sweeps import data as sweepdata

    data = sweepdata.read(sweep_csv)
    assert rep.engine_line(data).endswith("(which engine ran each point was not recorded)")
    summary = data.summary.assign(
        engine=["fast"] * (len(data.summary) - 1) + ["fast (3), simpy (1)"]
    )
    data = sweepdata.SweepData(summary, data.settings, data.conditions, meta={"engine": "auto"})
    assert rep.engine_line(data) == (
        "auto: fast for 9 points, several (replications differ) for 1, analytic for 0, simpy for 0"
    )
    assert "engine" not in data.keys


def test_columns_empty_in_every_row_are_left_out():
    table = rep._table(["a", "b", "c"], [["1", "", "x"], ["2", "-", "y"]])
    assert "<th>b</th>" not in table and "<th>c</th>" in table and 'data-label="c"' in table


def test_crosscheck_csv_and_json(sweep_csv, tmp_path):
    rows = (
        "check,metric,test,model,model_low,model_high,harness,harness_low,harness_high,"
        "p_value,n_model,n_harness,verdict\n"
        "nat-expiry,fp_per_conn_hour,poisson,0.1,0.05,0.2,0.12,0.04,0.3,0.8,10,3,agree\n"
        "nat-expiry,detection_latency,ks,30,29,31,45,40,50,0.0001,100,20,DISAGREE\n"
    )
    (tmp_path / "cc.csv").write_text(rows)
    text, _ = rep.build(sweep_csv, crosscheck=tmp_path / "cc.csv", **QUESTION)
    assert "nat-expiry" in text and "DISAGREE" in text and "Not run." not in text
    doc = [
        {
            "check": "k",
            "agree": True,
            "ran": {},
            "comparisons": [{"metric": "m", "verdict": "agree"}],
        }
    ]
    (tmp_path / "cc.json").write_text(json.dumps(doc))
    text, _ = rep.build(sweep_csv, crosscheck=tmp_path / "cc.json", **QUESTION)
    assert '<span class="ok">agree</span>' in text


def test_a_crosscheck_with_no_events_is_no_evidence_not_agreement(sweep_csv, tmp_path):
    """Zero NAT breaks on both sides tested nothing: the check is headed "no evidence" and
    the report names what was not tested; one tested metric that agrees makes it "agree"."""
    head = "check,metric,test,model,harness,p_value,n_model,n_harness,verdict\n"
    empty = "nat,nat_breaks_per_conn_hour,poisson,0,0,,0,0,no evidence\n"
    (tmp_path / "none.csv").write_text(head + empty)
    text, _ = rep.build(sweep_csv, crosscheck=tmp_path / "none.csv", **QUESTION)
    assert '<span class="warn">no evidence</span>' in text
    assert '<span class="ok">agree</span>' not in text
    assert "No evidence (no events on either side) on: nat_breaks_per_conn_hour" in text
    tested = "nat,fp_per_conn_hour,poisson,0.1,0.12,0.8,10,3,agree\n"
    (tmp_path / "some.csv").write_text(head + empty + tested)
    text, _ = rep.build(sweep_csv, crosscheck=tmp_path / "some.csv", **QUESTION)
    assert '<span class="ok">agree</span>' in text and "No evidence" in text


def test_without_bounds_the_figures_come_without_an_answer(sweep_csv):
    text, choice = rep.build(sweep_csv)
    assert choice is None
    assert "No recommendation: no bounds were given." in text
    assert text.count("<img") >= 4


def test_an_infeasible_question_is_still_a_report(sweep_csv, tmp_path, capsys):
    out = tmp_path / "r.html"
    code = main(
        [
            "report",
            str(sweep_csv),
            "--out",
            str(out),
            "--max-detection",
            "5s",
            "--max-false-disconnects",
            "1/conn-day",
        ]
    )
    assert code == 0 and "closest" in capsys.readouterr().out
    assert "No setting in the sweep meets the bounds." in out.read_text()


def test_cli_bad_input_exits_2(sweep_csv, tmp_path, capsys):
    (tmp_path / "cc.txt").write_text("not,a,crosscheck\n1,2,3\n")
    out = tmp_path / "r.html"
    code = main(
        [
            "report",
            str(sweep_csv),
            "--out",
            str(out),
            "--max-detection",
            "soon",
            "--crosscheck",
            str(tmp_path / "cc.txt"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "2 problem(s)" in err and "Traceback" not in err
    assert "--crosscheck" in err and "--max-detection" in err
    assert not out.exists()


def test_pdf_without_a_renderer_says_so(sweep_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rep, "find_browser", lambda: None)
    out = tmp_path / "r.html"
    code = main(["report", str(sweep_csv), "--out", str(out), "--pdf", "--max-detection", "60s"])
    assert code == 1 and out.is_file() and not out.with_suffix(".pdf").exists()
    assert "no PDF renderer: install chromium" in capsys.readouterr().err


# -- a real browser --------------------------------------------------------------------------------


def chromium_or_skip() -> str:
    browser = rep.find_browser()
    if browser is None:
        reason = "chromium is not installed (Debian: apt-get install chromium); the report was not rendered"
        if os.environ.get("SIMLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SIMLAB_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return browser


class DevTools:
    """A minimal Chrome DevTools Protocol client over the browser's WebSocket endpoint."""

    def __init__(self, browser: str, profile: str):
        cmd = rep.browser_command(browser, profile) + ["--remote-debugging-port=0", "about:blank"]
        self.proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in self.proc.stderr], daemon=True
        ).start()
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if "DevTools listening on " in line:
                url = line.split("DevTools listening on ", 1)[1].strip()
        assert url, "chromium did not open its DevTools endpoint"
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(url, max_size=None, open_timeout=10))
        self.next_id = 0
        self.events: list[dict] = []
        self.session = None

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv(timeout=timeout)))
        raise TimeoutError(method)

    def close(self):
        """Ask the browser to quit (its helpers go with it), then make sure it has."""
        try:
            self.session = None
            self.next_id += 1
            self.ws.send(json.dumps({"id": self.next_id, "method": "Browser.close"}))
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.stack.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def errors_in(events: list[dict]) -> list[dict]:
    """Uncaught exceptions, console errors and the browser's own error log entries."""

    def bad(e: dict) -> bool:
        method, p = e.get("method"), e.get("params", {})
        return (
            method == "Runtime.exceptionThrown"
            or (method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"))
            or (method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error")
        )

    return [e for e in events if bad(e)]


@pytest.mark.parametrize(("which", "figures"), [("built", 5), ("fleet_built", 1)])
def test_headless_chromium_shows_every_figure_without_errors(which, figures, request):
    browser = chromium_or_skip()
    path, _ = request.getfixturevalue(which)
    prefix = "report" if which == "built" else "storm-report"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # a helper process may still be writing the profile as the browser exits
    with tempfile.TemporaryDirectory(prefix="simlab-cdp-", ignore_cleanup_errors=True) as profile:
        dt = DevTools(browser, profile)
        try:
            target = dt.call("Target.createTarget", url="about:blank")["targetId"]
            dt.session = dt.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log", "Network"):
                dt.call(f"{domain}.enable")
            # a desktop's and a phone's first screen (CSS pixels)
            for width, height, mobile, name in (
                (1280, 800, False, prefix),
                (390, 844, True, f"{prefix}-phone"),
            ):
                dt.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=mobile,
                )
                dt.call("Page.navigate", url=path.as_uri())
                dt.wait_for("Page.loadEventFired")
                script = (
                    "const box = e => { if (!e) return null; const r = e.getBoundingClientRect();"
                    " return [r.top + window.scrollY, r.bottom + window.scrollY]; };"
                    "JSON.stringify({images: Array.from(document.images).map(i => ["
                    "i.complete, i.naturalWidth, i.getBoundingClientRect().width]),"
                    " scroll: document.documentElement.scrollWidth, inner: window.innerWidth,"
                    " height: window.innerHeight, answer: box(document.querySelector('.answer')),"
                    " tradeoff: box(document.querySelector('#tradeoff img')),"
                    " scenario: box(document.querySelector('#scenario'))})"
                )
                result = dt.call("Runtime.evaluate", expression=script, returnByValue=True)
                page = json.loads(result["result"]["value"])
                assert page["scroll"] <= width, f"{name}: the page scrolls sideways"
                if which == "built":  # the first screen holds the answer and the trade-off
                    assert page["answer"][1] <= page["height"], (name, page["answer"])
                    assert page["tradeoff"][1] <= page["height"], (name, page["tradeoff"])
                    assert page["scenario"][0] > 3 * page["height"], "the appendix comes last"
                assert len(page["images"]) >= figures
                for complete, natural, shown in page["images"]:
                    assert complete and natural > 0 and shown > 0, "every figure is displayed"
                    assert shown <= width  # scaled to fit the screen
                assert page["scroll"] <= page["inner"] + 1, f"{name}: no sideways scrolling"
                shot = dt.call("Page.captureScreenshot", format="png")
                (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
            requests = [
                e["params"]["request"]["url"]
                for e in dt.events
                if e.get("method") == "Network.requestWillBeSent"
            ]
            assert all(u.startswith(("file:", "data:")) for u in requests), requests
            assert errors_in(dt.events) == []
        finally:
            dt.close()
    assert (ARTIFACTS / f"{prefix}.png").stat().st_size > 10_000


def test_pdf_with_chromium(sweep_csv, tmp_path):
    chromium_or_skip()
    path, _, why = rep.report(sweep_csv, tmp_path / "r.html", pdf=True, **QUESTION)
    assert why is None
    assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.pdf"]


# -- after the disconnect: a sweep whose base is a fleet file --------------------------------------


@pytest.fixture(scope="module")
def fleet_sweep(tmp_path_factory):
    """A small real fleet sweep: two reconnect policies against two backlogs, 2 replications."""
    import yaml

    from simlab.sweeps.sweep import sweep

    folder = tmp_path_factory.mktemp("fleet-sweep")
    base = yaml.safe_load((ROOT / "examples" / "fleet-restart.yaml").read_text())
    base |= {"clients": 200, "horizon": "90s"}
    spec = {
        "name": "tiny-storm",
        "base": base,
        "grid": {"policy": ["socketio", "full_jitter"], "server.backlog": [16, 511]},
        "replications": 2,
        "engine": "simpy",
        "seed": 3,
    }
    path = folder / "storm.csv"
    sweep(spec, path, workers=1, progress=False)
    return path


@pytest.fixture(scope="module")
def fleet_built(fleet_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("storm-report") / "storm.html"
    path, choice, why = rep.report(fleet_sweep, out)
    assert why is None
    return path, choice


def test_a_fleet_sweep_gets_an_after_the_disconnect_section(fleet_built):
    path, choice = fleet_built
    assert choice is None
    assert [p.name for p in path.parent.iterdir()] == ["storm.html"]
    text = path.read_text()
    assert_self_contained(text, images=1)
    assert "id=after-disconnect" in text and "After the disconnect" in text
    for column in (
        "50 % reconnected",
        "95 % reconnected",
        "99 % reconnected",
        "100 % reconnected",
        "peak attempts /s",
        "refused attempts",
        "gave up",
        "messages lost",
    ):
        assert f"<th>{column}</th>" in text
    for label in ("policy = socketio, server.backlog = 16", "policy = full_jitter"):
        assert label in text
    assert "Reconnect storms." in text  # the methods say how the storm is modelled
    # the heartbeat sections need heartbeat figures: none of them here
    for anchor in ("answer", "tradeoff", "middlebox", "sensitivity"):
        assert f"id={anchor}" not in text
    assert "The base scenario" in text and "server.handshake_rate" in text


def test_a_fleet_sweep_with_bounds_says_they_do_not_apply(fleet_sweep, tmp_path, capsys):
    out = tmp_path / "storm.html"
    summary = fleet_sweep.with_name("storm.summary.csv")
    code = main(["report", str(summary), "--out", str(out), "--max-detection", "60s"])
    assert code == 0
    text = out.read_text()
    assert "do not apply to a reconnect-storm sweep" in text and "id=after-disconnect" in text


def test_the_figures_follow_the_sweep(fleet_sweep):
    from simlab.sweeps import data as sweepdata

    data = sweepdata.read(fleet_sweep)
    assert data.has_fleet and not data.has_heartbeat
    by_policy = data.summary.groupby("policy")["peak_attempts_per_s_mean"].mean()
    # full jitter spreads the fleet's first retries, Socket.IO's backo2 does not: both are shown
    assert by_policy["socketio"] > 0 and by_policy["full_jitter"] > 0
    text = rep.after_disconnect_html(data)
    row = text.split("policy = socketio, server.backlog = 16")[1].split("</tr>")[0]
    t50 = data.summary.query("policy == 'socketio' and `server.backlog` == 16")
    assert f"{t50['time_to_50pct_reconnected_s_mean'].iloc[0]:.3g} s" in row


def test_a_heartbeat_sweep_says_nothing_after_the_disconnect(built):
    path, _ = built
    text = path.read_text()
    assert "after-disconnect" not in text and "After the disconnect" not in text
    assert "Reconnect storms." not in text


def test_a_hand_built_storm_csv_with_unreached_quantiles(tmp_path):
    """A hand-made fleet summary: a quantile not reached by the horizon says so."""
    import pandas as pd

    rows = []
    for policy, t100 in (("exponential", float("nan")), ("full_jitter", 41.0)):
        row = {"point_id": policy, "policy": policy, "replications": 1, "errors": 0}
        figures = {
            "attempts_total": 900.0,
            "time_to_50pct_reconnected_s": 31.0,
            "time_to_95pct_reconnected_s": 35.0,
            "time_to_99pct_reconnected_s": 39.0,
            "time_to_100pct_reconnected_s": t100,
            "peak_attempts_per_s": 120.0,
            "attempts_refused": 600.0,
            "gave_up": 3.0 if policy == "exponential" else 0.0,
            "messages_lost": 17.0,
        }
        for key, value in figures.items():
            row |= {f"{key}_mean": value, f"{key}_ci_low": value, f"{key}_ci_high": value}
        rows.append(row)
    path = tmp_path / "hand.summary.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    text, choice = rep.build(path)
    assert choice is None
    assert_self_contained(text, images=1)
    row = text.split("policy = exponential")[1].split("</tr>")[0]
    assert "not reached" in row and ">3<" in row and ">17<" in row
    assert "not reached" not in text.split("policy = full_jitter")[1].split("</tr>")[0]


def test_the_report_recommends_an_adaptive_policy_and_says_by_how_much(tmp_path):
    from ..sweeps_by_hand import policy_point

    path = write(
        tmp_path,
        policy_point("fixed", 20, 45, cost=1000),
        policy_point("fixed", 30, 65, cost=800),
        policy_point("nat-probe", 30, 65, cost=600),
        meta=meta(),
    )
    text, choice = rep.build(path, max_detection="120s", max_false_disconnects="1/conn-day")
    assert choice.recommendation.policy == "nat-probe"
    assert "Adaptive policies against fixed settings" in text
    assert "saves 25.0% of the heartbeat bytes per connection-hour" in text
    assert "In your application (no library has it built in)" in text
    assert "No library has the nat-probe policy built in" in text
    assert_self_contained(text, images=4)


# -- damaged sweep outputs: bad input naming file, column and problem, and no report --------------


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_report_on_a_damaged_sweep_exits_2_and_writes_nothing(tmp_path, capsys, case):
    path, fragments = damaged(tmp_path / "sweep", case)
    out = tmp_path / "report.html"
    code = main(["report", str(path), "--out", str(out), "--max-detection", "60s"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists() and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_report_to_a_path_through_a_file_exits_2(tmp_path, capsys):
    path = good_sweep(tmp_path / "sweep")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["report", str(path), "--out", str(blocker / "report.html")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "report.html" in err and "a-file: a part of the path is a file" in err


def test_report_png_takes_the_first_screen(sweep_csv, tmp_path):
    """python -m simlab.lab.report_png's screenshot: a PNG of the window's size, atomically."""
    import struct

    from simlab.lab.report_png import PHONE, report_png

    chromium_or_skip()
    out = tmp_path / "shot.png"
    assert report_png(sweep_csv, out, PHONE, **QUESTION) is None
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == PHONE  # IHDR: width, height
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.png"]


def test_a_figure_redrawn_for_a_phone_keeps_its_text_and_legend_inside():
    """The middlebox figure's legend had three columns and its labels ran off a phone's
    screen: redrawn narrow, every text and legend of the figure fits in its width."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from simlab.lab import plots
    from simlab.scenario import fielddata

    frame = pd.DataFrame({"heartbeat.interval": [15.0, 30.0, 45.0, 58.0]})
    fig = plots.nat_survival(
        frame,
        simulated=False,
        middleboxes=fielddata.middleboxes(),
        behind=("aws-alb", 60.0),
        highlight=45.0,
    )
    rep._for_phone(fig, rep.PHONE_SIZE)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    width = fig.bbox.width
    (legend,) = fig.legends
    assert legend._ncols in (1, 2)
    boxes = [legend.get_window_extent(renderer), fig._suptitle.get_window_extent(renderer)]
    for ax in fig.axes:
        boxes += [ax.yaxis.label.get_window_extent(renderer)]
        boxes += [t.get_window_extent(renderer) for t in (ax.title, ax._left_title) if t.get_text()]
    for box in boxes:
        assert box.x0 >= -1 and box.x1 <= width + 1, (box, width)
