"""``simlab crosscheck --server-cmd ... --client-cmd ...``: the user's own programs, observed
from the wire, against the model.

One real run (gorilla/websocket's server, Node ws clients, silent client crashes) is
compared twice: with the model of its settings (it must agree on detection latency) and
with a model whose detector timeout is twice the programs' (it must disagree). Bad input
exits 2. The netns tests skip with the reason without root, nftables, tcpdump or conntrack
and fail instead under SIMLAB_REQUIRE_NETNS=1; a missing Go or Node toolchain skips, and
fails under SIMLAB_REQUIRE_ADAPTERS=1, as in test_run.py and test_adapters.py.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys

import pytest

from simlab.cli.main import main
from simlab.harness import adapters, netns, wire
from simlab.harness import crosscheck as cc
from simlab.harness.adapters import AdapterError
from simlab.harness.external import parse_command
from simlab.scenario.reader import load

INTERVAL, TIMEOUT = 0.4, 1.0  # the programs' own settings: the scenario states the same
SCENARIO = {
    "name": "own-programs",
    "horizon": "15s",
    "seed": 5,
    "connections": 6,
    "reconnect": {"delay": "0.2s"},
    "link": {"delay": {"dist": "constant", "value": "0s"}},
    "heartbeat": {"interval": f"{INTERVAL}s", "initiator": "server"},
    "detector": {"kind": "timeout", "timeout": f"{TIMEOUT}s", "side": "server"},
    "peer": {"crash": {"mtbf": "2s"}},
}


def needs_wire():
    reason = wire.unavailable_reason()
    if reason:
        if os.environ.get("SIMLAB_REQUIRE_NETNS") == "1":
            pytest.fail(f"SIMLAB_REQUIRE_NETNS=1 but {reason}")
        pytest.skip(reason)


def needs(name: str) -> None:
    try:
        adapters.prepare(name)
    except AdapterError as exc:
        if os.environ.get("SIMLAB_REQUIRE_ADAPTERS") == "1":
            pytest.fail(f"SIMLAB_REQUIRE_ADAPTERS=1 but {exc}")
        pytest.skip(str(exc))


def leftovers() -> tuple[list[str], list[int]]:
    """This process's namespaces and live child processes (there should be none after a run)."""
    prefix = f"{netns.PREFIX}{os.getpid()}-"
    try:
        spaces = [n for n in os.listdir(netns.NETNS_DIR) if n.startswith(prefix)]
    except FileNotFoundError:
        spaces = []
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            children.append(int(pid))
    return spaces, children


@pytest.fixture(scope="module")
def real_run():
    """One run of gorilla's server and ws clients with silent client crashes, kept for two models."""
    needs_wire()
    needs("gorilla")
    needs("ws")
    scenario, _ = load(SCENARIO)
    keep: dict = {}
    check = cc.run_external_crosscheck(
        scenario,
        adapters.command("gorilla", "server", INTERVAL, TIMEOUT),
        adapters.command("ws", "client", INTERVAL, TIMEOUT),
        keep=keep,
    )
    return check, keep


def by_metric(check) -> dict:
    return {c.metric: c for c in check.comparisons}


def test_the_model_of_the_programs_settings_agrees_on_detection_latency(real_run):
    check, keep = real_run
    latency = by_metric(check)["detection latency (s)"]
    assert latency.n_harness >= 15, check.summary()  # about 25 silent crashes detected
    assert latency.verdict(check.threshold) == "agree", cc.format_check(check)
    assert check.verdict == "AGREE", cc.format_check(check)
    assert check.ran["model_settings"]["detector.timeout"] == TIMEOUT  # said in the output
    assert leftovers() == ([], [])


def test_a_model_with_twice_the_timeout_disagrees_on_the_same_real_run(real_run):
    _, keep = real_run

    def doubled(s):
        return dataclasses.replace(
            s, detector=dataclasses.replace(s.detector, timeout=2 * s.detector.timeout)
        )

    harness, scaled = keep["harness"], keep["scaled"]
    model_scn, model = cc.external_model(
        harness, scaled, connections=keep["n_model"], model_bug=doubled
    )
    check = cc.compare_external(harness, scaled, model_scn, model, name="doubled")
    latency = by_metric(check)["detection latency (s)"]
    assert latency.verdict(check.threshold) == "DISAGREE", cc.format_check(check)
    assert check.verdict == "DISAGREE"


# -- bad input: exit 2, one clear line ---------------------------------------------------------


def write_scenario(tmp_path, **changes) -> str:
    import yaml

    data = {**SCENARIO, "horizon": "3s", "connections": 1, **changes}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("server", "client", "key"),
    [
        ("srv {host}", "cli {url}", "{port}"),  # a placeholder missing
        ("srv {host} {port}", "cli", "{url}"),
        ("srv 'unclosed {host} {port}", "cli {url}", "does not split"),
    ],
)
def test_a_command_without_its_placeholders_is_refused(tmp_path, capsys, server, client, key):
    path = write_scenario(tmp_path)
    code = main(["crosscheck", path, "--server-cmd", server, "--client-cmd", client, "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err, err


def test_settings_left_to_simlabs_defaults_are_refused(tmp_path, capsys):
    path = write_scenario(tmp_path, detector={"kind": "timeout", "side": "server"})
    code = main(["crosscheck", path, "--server-cmd", "s {host} {port}", "--client-cmd", "c {url}"])
    assert code == 2
    assert "detector.timeout" in capsys.readouterr().err


def test_only_one_command_or_the_proxy_backend_is_refused(tmp_path, capsys):
    path = write_scenario(tmp_path)
    assert main(["crosscheck", path, "--server-cmd", "s {host} {port}"]) == 2
    assert "give both" in capsys.readouterr().err
    args = ["--server-cmd", "s {host} {port}", "--client-cmd", "c {url}", "--backend", "proxy"]
    assert main(["crosscheck", path, *args]) == 2
    assert "netns" in capsys.readouterr().err


def test_parse_command_keeps_arguments_whole():
    assert parse_command("srv --name 'a b' {host}:{port}", "--server-cmd") == [
        "srv", "--name", "a b", "{host}:{port}"
    ]  # fmt: skip


PY = shlex.quote(sys.executable)


def test_a_server_that_exits_at_once_is_bad_input_and_nothing_is_left(tmp_path, capsys):
    needs_wire()
    path = write_scenario(tmp_path)
    server = f"{PY} -c 'import sys; sys.exit(3)' {{host}} {{port}}"
    code = main(["crosscheck", path, "--server-cmd", server, "--client-cmd", "c {url}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "exited at once (exit code 3)" in err and "Traceback" not in err, err
    assert leftovers() == ([], [])


def test_a_server_that_does_not_speak_websocket_is_bad_input(tmp_path, capsys):
    needs_wire()
    needs("ws")
    path = write_scenario(tmp_path)
    server = f"{PY} -m http.server --bind {{host}} {{port}}"
    client = shlex.join(adapters.command("ws", "client", INTERVAL, TIMEOUT))
    code = main(["crosscheck", path, "--server-cmd", server, "--client-cmd", client, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no WebSocket connection" in err and "Traceback" not in err, err
    assert leftovers() == ([], [])


def test_a_library_case_runs_the_librarys_settings_scaled_to_its_interval():
    scenario, x = cc.library_case({"preset": "gorilla-example"}, 3.0, cc.LIBRARY_CASES[1][2])
    assert scenario.heartbeat.interval * x == pytest.approx(3.0)
    assert scenario.detector.timeout * x == pytest.approx(3.0 * 60 / 54)  # pongWait / pingPeriod
    assert scenario.nat.idle_timeout.value * x == pytest.approx(1.0)  # whole kernel seconds
    assert scenario.horizon * x == pytest.approx(cc.LIBRARY_WALL_S)
    assert cc.external_scale(scenario, x) == x  # the orderings are kept at that scale
