"""Fuzzing every input a user hands in: each case ends in a result or a clean exit 2, in bounds.

Hypothesis writes scenario, sweep, fleet and question inputs (structured mappings built from
the schema's own key names, and raw YAML text with the classic traps: deep nesting, alias
bombs, huge numbers, devices) and corrupts a real sweep's outputs. Each case runs the CLI in
a child forked from a server process that has simlab imported already, with an address-space
limit and a wall-clock limit, so a case that would hang or eat memory fails the test instead
of the machine. A case passes when the command exits 0, 1 or 2 within its bounds and prints
no traceback.

Examples are derandomized (fixed, reproducible in CI) and bounded in count; the whole file
takes about a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simlab.scenario import schema

ROOT = Path(__file__).resolve().parents[1]
WALL_S = 30.0  # one case, including a run the budget let through
MEMORY = 2 << 30  # address space of one case, bytes
FUZZ = settings(
    max_examples=int(os.environ.get("SIMLAB_FUZZ_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# The fork server: reads one JSON case per line ({"argv": [...], "cwd": ...}), forks a child
# that limits itself and runs simlab's CLI in-process, and answers with the child's fate.
SERVER = textwrap.dedent(
    f"""
    import io, json, os, resource, signal, sys, time, traceback
    import simlab.cli.main as cli
    from simlab.scenario import reader, presets  # noqa: F401 - imported before forking
    for line in sys.stdin:
        case = json.loads(line)
        out_r, out_w = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            try:
                os.chdir(case["cwd"])
                resource.setrlimit(resource.RLIMIT_AS, ({MEMORY}, {MEMORY}))
                err = io.StringIO()
                sys.stdout, sys.stderr = io.StringIO(), err
                try:
                    code = cli.main(case["argv"])
                except SystemExit as exc:  # argparse
                    code = exc.code if isinstance(exc.code, int) else 2
                except BaseException:
                    code, err = 70, io.StringIO(traceback.format_exc())
                os.write(out_w, json.dumps({{"code": code, "err": err.getvalue()[-4000:]}}).encode())
            finally:
                os._exit(0)
        os.close(out_w)
        deadline = started + {WALL_S}
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = None
                break
            time.sleep(0.005)
        with os.fdopen(out_r, "rb") as f:
            data = f.read()
        answer = json.loads(data) if data else {{"code": None, "err": ""}}
        answer["timed_out"] = status is None
        answer["wall_s"] = time.monotonic() - started
        print(json.dumps(answer), flush=True)
    """
)


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    yield proc
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_case(server, argv: list[str], cwd: Path) -> dict:
    server.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd)}) + "\n")
    server.stdin.flush()
    return json.loads(server.stdout.readline())


def assert_clean(answer: dict, argv: list[str], text: str = "") -> None:
    shown = text if len(text) < 400 else text[:400] + "..."
    where = f"simlab {' '.join(argv)} on:\n{shown}"
    assert not answer["timed_out"], f"no answer within {WALL_S} s: {where}"
    assert answer["code"] in (0, 1, 2), f"exit {answer['code']}: {answer['err']}\n{where}"
    assert "Traceback" not in answer["err"], f"{answer['err']}\n{where}"


# -- strategies ---------------------------------------------------------------------------------

# the schema's own section and field names, so generated mappings reach deep into the reader
FIELDS = sorted(
    {
        f
        for cls in vars(schema).values()
        if isinstance(cls, type)
        for f in getattr(cls, "__dataclass_fields__", {})
    }
)
SECTIONS = ["heartbeat", "detector", "link", "nat", "peer", "app", "reconnect", "policy", "tcp"]
KEYS = st.sampled_from(SECTIONS + FIELDS) | st.text(min_size=1, max_size=12)
DURATIONS = st.sampled_from(
    ["10s", "0s", "-5s", "1e12d", "100y", "2h", "500ms", "1e-9s", "nan", "inf", "30", "ten seconds"]
)
NUMBERS = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 2**63, 1e30, 0.5, 0.999, -1])
)
SCALARS = NUMBERS | DURATIONS | st.booleans() | st.none() | st.text(max_size=20)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
SCENARIOS = st.dictionaries(KEYS, VALUES, max_size=6) | st.fixed_dictionaries(
    {"connections": st.integers(1, 3), "horizon": st.sampled_from(["1m", "5m"])},
    optional={s: st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3) for s in SECTIONS},
)
# raw text: YAML that PyYAML parses into something nasty, or cannot parse at all
TRAP_LIST = [
    "[" * 5000,
    "{a: " * 3000,
    "a: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "app: {bytes: *f}\n",
    "a: &a [*a]\n",
    "horizon: !!python/object:os.system echo\n",
    "heartbeat: {interval: 1" + "0" * 5000 + "}\n",
    "connections: 1\nhorizon: 1e12d\n",
    "heartbeat: {frame_bytes: 1e30}\n",
    "link: {delay: 9223372036854775807s}\n",
    "",
    "# nothing\n",
    "\x00\xff",
    "link: {loss: {p: .nan}}\n",
    "connections: no\n",
]


def yaml_text(mapping) -> str:
    try:
        return yaml.safe_dump(mapping, allow_unicode=True)
    except yaml.YAMLError:  # a key PyYAML cannot write: use its repr, still a file to read
        return repr(mapping)


# -- scenario files -------------------------------------------------------------------------------


def check_scenario(server, where: Path, doc: str) -> None:
    path = where / "s.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogateescape")
    for argv in (["check", str(path)], ["run", str(path), "--budget", "5s", "--engine", "auto"]):
        assert_clean(run_case(server, argv, where), argv, doc)


@pytest.mark.parametrize("doc", TRAP_LIST, ids=range(len(TRAP_LIST)))
def test_scenario_traps(server, tmp_path, doc):
    """Every classic trap, every time (the generated cases below may not draw them)."""
    check_scenario(server, tmp_path, doc)


@pytest.mark.parametrize("doc", TRAP_LIST, ids=range(len(TRAP_LIST)))
def test_sweep_traps(server, tmp_path, doc):
    path = tmp_path / "sweep.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogateescape")
    argv = ["sweep", str(path), "--out", str(tmp_path / "out.csv"), "--budget", "5s"]
    assert_clean(run_case(server, argv, tmp_path), argv, doc)


@FUZZ
@given(doc=SCENARIOS.map(yaml_text))
def test_scenario_files(server, tmp_path_factory, doc):
    check_scenario(server, tmp_path_factory.mktemp("scenario"), doc)


# -- sweep and fleet files ------------------------------------------------------------------------

GRID_KEYS = st.sampled_from(
    ["heartbeat.interval", "detector.timeout", "connections", "link.loss.p", "nope.key", "horizon"]
)
SWEEPS = st.fixed_dictionaries(
    {"base": st.just({"connections": 1, "horizon": "2m"}) | SCENARIOS},
    optional={
        "grid": st.dictionaries(GRID_KEYS, st.lists(SCALARS, max_size=4) | SCALARS, max_size=3),
        "replications": st.sampled_from([1, 2, 0, -1, 10**9, "two", 1.5]),
        "sample": st.dictionaries(
            st.sampled_from(["method", "count", "ranges"]), VALUES, max_size=3
        ),
        "engine": st.sampled_from(["fast", "simpy", "auto", "rare", "warp"]),
        "seed": NUMBERS,
        "rare": VALUES,
    },
)


@FUZZ
@given(doc=SWEEPS.map(yaml_text))
def test_sweep_files(server, tmp_path_factory, doc):
    where = tmp_path_factory.mktemp("sweep")
    path = where / "sweep.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogateescape")
    argv = ["sweep", str(path), "--out", str(where / "out.csv"), "--workers", "1", "--budget", "5s"]
    assert_clean(run_case(server, argv, where), argv, doc)


FLEETS = st.fixed_dictionaries(
    {"kind": st.just("fleet")},
    optional={
        "clients": st.sampled_from([1, 100, 0, -5, 10**12, "many"]),
        "horizon": DURATIONS,
        "servers": VALUES,
        "trigger": VALUES,
        "reconnect": VALUES,
        "admission": VALUES,
        "resume": VALUES,
        "seed": NUMBERS,
    },
)


@FUZZ
@given(doc=FLEETS.map(yaml_text))
def test_fleet_files(server, tmp_path_factory, doc):
    where = tmp_path_factory.mktemp("fleet")
    path = where / "fleet.yaml"
    path.write_text(doc)
    argv = ["storm", str(path)]
    assert_clean(run_case(server, argv, where), argv, doc)


# -- the chooser's question and a sweep's outputs ---------------------------------------------------


@pytest.fixture(scope="module")
def made_sweep(tmp_path_factory):
    """A real small sweep's CSV, summary and meta (fast engine, 4 points)."""
    where = tmp_path_factory.mktemp("made")
    sweep = where / "sweep.yaml"
    sweep.write_text(
        "base: {connections: 2, horizon: 10m, link: {loss: {p: 0.05}}}\n"
        "grid: {heartbeat.interval: [10s, 20s], detector.timeout: [30s, 45s]}\n"
        "engine: fast\n"
    )
    from simlab.cli.main import main

    assert main(["sweep", str(sweep), "--out", str(where / "s.csv"), "--workers", "1"]) == 0
    return {p.name: p.read_bytes() for p in where.iterdir() if p.name.startswith("s.")}


OPTIONS = [
    "--max-detection",
    "--max-false-disconnects",
    "--nat-timeout",
    "--behind",
    "--minimize",
    "--detection-metric",
]


@FUZZ
@given(
    question=st.dictionaries(
        st.sampled_from(OPTIONS),
        DURATIONS
        | st.sampled_from(
            [
                "1/conn-day",
                "2/conn-fortnight",
                "aws-alb",
                "bytes",
                "p95",
                "-1/conn-day",
                "1e400/conn-hour",
            ]
        )
        | st.text(min_size=1, max_size=15).filter(lambda s: not s.startswith("-")),
        min_size=1,
        max_size=4,
    )
)
def test_questions(server, tmp_path_factory, made_sweep, question):
    where = tmp_path_factory.mktemp("question")
    for name, data in made_sweep.items():
        (where / name).write_bytes(data)
    argv = ["choose", str(where / "s.csv")]
    for option, value in question.items():
        argv += [option, value]
    assert_clean(run_case(server, argv, where), argv)


def corrupt(data: bytes, how: str, at: float, text: str) -> bytes:
    """One kind of damage at a relative position: a byte, a cell, a line, the end."""
    i = int(at * len(data))
    if how == "byte":
        return data[:i] + text.encode()[:1] + data[i + 1 :]
    if how == "insert":
        return data[:i] + text.encode() + data[i:]
    if how == "cut":
        return data[:i]
    lines = data.split(b"\n")
    j = int(at * len(lines)) % max(len(lines), 1)
    if how == "line":
        return b"\n".join(lines[:j] + lines[j + 1 :])
    cells = lines[j].split(b",")  # how == "cell"
    k = int(at * 997) % max(len(cells), 1)
    cells[k] = text.encode()
    lines[j] = b",".join(cells)
    return b"\n".join(lines)


@FUZZ
@given(
    name=st.sampled_from(["s.csv", "s.summary.csv", "s.meta.json"]),
    how=st.sampled_from(["byte", "insert", "cut", "line", "cell"]),
    at=st.floats(0, 1),
    text=st.sampled_from(
        ["", "x", "1e400", "-3", "nan", "inf", '"', "\xff", "[]", "{}", "null", ",,,"]
    ),
    command=st.sampled_from(["choose", "report", "resume"]),
)
def test_corrupted_outputs(server, tmp_path_factory, made_sweep, name, how, at, text, command):
    where = tmp_path_factory.mktemp("corrupt")
    for file, data in made_sweep.items():
        (where / file).write_bytes(corrupt(data, how, at, text) if file == name else data)
    csv = str(where / "s.csv")
    if command == "resume":
        sweep = where / "sweep.yaml"
        sweep.write_text(
            "base: {connections: 2, horizon: 10m, link: {loss: {p: 0.05}}}\n"
            "grid: {heartbeat.interval: [10s, 20s], detector.timeout: [30s, 45s]}\n"
            "engine: fast\n"
        )
        argv = ["sweep", str(sweep), "--out", csv, "--resume", "--workers", "1"]
    else:
        argv = [command, csv, "--max-detection", "60s", "--max-false-disconnects", "1/conn-day"]
        if command == "report":
            argv += ["--out", str(where / "r.html")]
    assert_clean(run_case(server, argv, where), argv, f"{name}: {how} at {at:.3f} with {text!r}")
