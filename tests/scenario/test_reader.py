"""Tests for simlab.scenario.reader: the scenario file format, its defaults, overrides and errors.

The reference is section 2 ("The scenario file") of the project issue: every key of
its example YAML must exist and work, and bad input gets one clear message per
problem (key path, bad value, what is allowed), all at once, exit code 2, no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simlab.cli.main import main
from simlab.errors import ScenarioError
from simlab.scenario import schema as sc
from simlab.scenario.distributions import Constant, Exponential, Lognormal, Pareto, Uniform
from simlab.scenario.reader import from_dict, load, parse_sets, read_yaml, set_dotted
from simlab.scenario.schema import flatten, to_dict

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.yaml"

# The example of section 2 of the issue, verbatim.
ISSUE_YAML = """\
name: ws-behind-carrier-nat
horizon: 6h                 # simulated time per connection
connections: 100            # independent connections, each with its own random streams
seed: 7
heartbeat:
  style: pingpong           # pingpong (request/response, like WebSocket ping/pong) | oneway (periodic heartbeats)
  initiator: server         # who sends pings (pingpong) or heartbeats (oneway): server | client | both
  interval: 30s
  jitter: 0.0               # each interval drawn uniformly in interval*(1 +- jitter)
  frame_bytes: 6            # heartbeat frame size, excluding TCP/IP headers
detector:
  kind: timeout             # timeout | missed | phi | nfd | adaptive
  timeout: 60s              # timeout: declare when nothing counted as liveness was heard for this long (read deadline)
  # missed:   {k: 2, ack_timeout: 20s}              declare when k consecutive pings got no pong within ack_timeout
  # phi:      {threshold: 8, window: 1000, min_std: 100ms, acceptable_pause: 0s}   (phi accrual, Akka-style)
  # nfd:      {delta: 20s}                          Chen-Toueg-Aguilera NFD-S freshness points tau_i = sigma_i + delta
  # adaptive: {alpha: 1s, window: 100}              NFD-E: expected arrival from the last `window` arrivals, plus alpha
  liveness: heartbeats      # heartbeats | any   (does application traffic also count as a sign of life)
  side: auto                # which side runs the detector: auto (pingpong: the side that pings; oneway: the side that receives) | client | server
  on_declare: reconnect     # reconnect (tear down and open a new connection) | monitor (keep watching: failure-detector QoS semantics)
link:
  transport: tcp            # tcp (loss becomes retransmission delay, in-order delivery) | datagram (loss is loss)
  loss: {model: bernoulli, p: 0.01}        # or {model: gilbert, p_gb: .., p_bg: .., loss_good: .., loss_bad: ..}
  delay: {dist: constant, value: 40ms}     # constant(value) | uniform(low, high) | exponential(mean) | lognormal(median, sigma) | pareto(scale, shape)
  # uplink: {...} / downlink: {...}        optional per-direction overrides of loss and delay
  outages: {mtbf: 12h, duration: {dist: exponential, mean: 30s}}   # optional link-down periods, both directions
  tcp: {min_rto: 200ms, max_rto: 120s, max_retries: 15}          # Linux-like defaults
nat:
  idle_timeout: 5m          # a duration, a distribution (drawn once per connection), or null for no NAT on the path
  refresh: outbound         # outbound (only client->server packets refresh the mapping) | both
  on_expiry: drop           # drop (silent blackhole) | reset (next packet gets an RST)
peer:
  crash: {mtbf: 24h}        # silent crash of the monitored peer: it never sends again, no FIN
  stall: {mtbf: 2h, duration: {dist: lognormal, median: 2s, sigma: 1}}   # GC pause / blocked event loop / throttled timers: stops responding, then catches up
app:
  rate: 0                   # application messages per second in each direction (Poisson)
  bytes: 200
reconnect: {delay: 1s}      # time from a declaration to the new connection being up
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str):
    return load(write(tmp_path, text))


# --- the demo and the issue's example ----------------------------------------------------


def test_demo_loads_without_warnings():
    s, warnings = load(DEMO)
    assert isinstance(s, sc.Scenario)
    assert s.name == "ws-behind-carrier-nat"
    assert warnings == []


def test_issue_example_loads_with_documented_values(tmp_path):
    s, warnings = load_text(tmp_path, ISSUE_YAML)
    assert warnings == []
    assert s.name == "ws-behind-carrier-nat"
    assert s.horizon == 6 * 3600
    assert s.connections == 100
    assert s.seed == 7
    assert s.heartbeat == sc.Heartbeat(
        style="pingpong", initiator="server", interval=30.0, jitter=0.0, frame_bytes=6
    )
    d = s.detector
    assert (d.kind, d.timeout, d.liveness, d.side, d.on_declare) == (
        "timeout",
        60.0,
        "heartbeats",
        "auto",
        "reconnect",
    )
    assert s.detector_side == "server"
    link = s.link
    assert link.transport == "tcp"
    for direction in (link.up, link.down):
        assert direction.loss == sc.Loss(model="bernoulli", p=0.01)
        assert direction.delay == Constant(0.04)
    assert link.outages == sc.Outages(mtbf=12 * 3600.0, duration=Exponential(30.0))
    assert (link.tcp.min_rto, link.tcp.max_rto, link.tcp.max_retries) == (0.2, 120.0, 15)
    assert s.nat == sc.Nat(idle_timeout=Constant(300.0), refresh="outbound", on_expiry="drop")
    assert s.peer.crash == sc.Crash(mtbf=86400.0)
    assert s.peer.stall == sc.Stall(mtbf=7200.0, duration=Lognormal(median=2.0, sigma=1.0))
    assert s.app == sc.App(rate=0.0, bytes=200)
    assert s.reconnect == sc.Reconnect(delay=1.0)


def test_issue_example_matches_demo(tmp_path):
    assert load_text(tmp_path, ISSUE_YAML)[0] == load(DEMO)[0]


# Every key of the issue's example, and the commented alternatives: set on an empty
# scenario, the loaded object changes exactly as documented.
KEY_EFFECTS = [
    ("name", "probe", lambda s: s.name, "probe"),
    ("horizon", "2h", lambda s: s.horizon, 7200.0),
    ("connections", 3, lambda s: s.connections, 3),
    ("seed", 11, lambda s: s.seed, 11),
    ("heartbeat.style", "oneway", lambda s: s.heartbeat.style, "oneway"),
    ("heartbeat.initiator", "client", lambda s: s.heartbeat.initiator, "client"),
    ("heartbeat.interval", "10s", lambda s: s.heartbeat.interval, 10.0),
    ("heartbeat.jitter", 0.1, lambda s: s.heartbeat.jitter, 0.1),
    ("heartbeat.frame_bytes", 10, lambda s: s.heartbeat.frame_bytes, 10),
    ("detector.kind", "phi", lambda s: s.detector.kind, "phi"),
    ("detector.timeout", "90s", lambda s: s.detector.timeout, 90.0),
    (
        "detector.missed",
        {"k": 3, "ack_timeout": "20s"},
        lambda s: s.detector.missed,
        sc.Missed(k=3, ack_timeout=20.0),
    ),
    (
        "detector.phi",
        {"threshold": 9, "window": 500, "min_std": "100ms", "acceptable_pause": "1s"},
        lambda s: s.detector.phi,
        sc.Phi(threshold=9.0, window=500, min_std=0.1, acceptable_pause=1.0),
    ),
    ("detector.phi.first_estimate", "25s", lambda s: s.detector.phi.first_estimate, 25.0),
    ("detector.nfd", {"delta": "20s"}, lambda s: s.detector.nfd, sc.Nfd(delta=20.0)),
    (
        "detector.adaptive",
        {"alpha": "1s", "window": 50},
        lambda s: s.detector.adaptive,
        sc.Adaptive(alpha=1.0, window=50),
    ),
    ("detector.liveness", "any", lambda s: s.detector.liveness, "any"),
    ("detector.side", "client", lambda s: s.detector.side, "client"),
    ("detector.on_declare", "monitor", lambda s: s.detector.on_declare, "monitor"),
    ("link.transport", "datagram", lambda s: s.link.transport, "datagram"),
    (
        "link.loss",
        {"model": "bernoulli", "p": 0.02},
        lambda s: (s.link.up.loss, s.link.down.loss),
        (sc.Loss(p=0.02), sc.Loss(p=0.02)),
    ),
    ("link.loss", 0.03, lambda s: (s.link.up.loss, s.link.down.loss), (sc.Loss(p=0.03),) * 2),
    (
        "link.loss",
        {"model": "gilbert", "p_gb": 0.01, "p_bg": 0.5, "loss_good": 0.001, "loss_bad": 0.9},
        lambda s: s.link.down.loss,
        sc.Loss(model="gilbert", p_gb=0.01, p_bg=0.5, loss_good=0.001, loss_bad=0.9),
    ),
    (
        "link.delay",
        {"dist": "constant", "value": "40ms"},
        lambda s: (s.link.up.delay, s.link.down.delay),
        (Constant(0.04), Constant(0.04)),
    ),
    ("link.delay", "25ms", lambda s: s.link.up.delay, Constant(0.025)),
    (
        "link.delay",
        {"dist": "uniform", "low": "10ms", "high": "50ms"},
        lambda s: s.link.up.delay,
        Uniform(0.01, 0.05),
    ),
    (
        "link.delay",
        {"dist": "exponential", "mean": "20ms"},
        lambda s: s.link.up.delay,
        Exponential(0.02),
    ),
    (
        "link.delay",
        {"dist": "lognormal", "median": "30ms", "sigma": 0.5},
        lambda s: s.link.up.delay,
        Lognormal(0.03, 0.5),
    ),
    (
        "link.delay",
        {"dist": "pareto", "scale": "10ms", "shape": 1.5},
        lambda s: s.link.up.delay,
        Pareto(0.01, 1.5),
    ),
    (
        "link.outages",
        {"mtbf": "12h", "duration": {"dist": "exponential", "mean": "30s"}},
        lambda s: s.link.outages,
        sc.Outages(43200.0, Exponential(30.0)),
    ),
    (
        "link.tcp",
        {"min_rto": "300ms", "max_rto": "60s", "max_retries": 8, "initial_rto": "2s"},
        lambda s: s.link.tcp,
        sc.Tcp(min_rto=0.3, max_rto=60.0, max_retries=8, initial_rto=2.0),
    ),
    ("nat.idle_timeout", "5m", lambda s: s.nat.idle_timeout, Constant(300.0)),
    ("nat.idle_timeout", 120, lambda s: s.nat.idle_timeout, Constant(120.0)),
    (
        "nat.idle_timeout",
        {"dist": "uniform", "low": "2m", "high": "10m"},
        lambda s: s.nat.idle_timeout,
        Uniform(120.0, 600.0),
    ),
    ("nat.idle_timeout", None, lambda s: s.nat.idle_timeout, None),
    ("nat.refresh", "both", lambda s: s.nat.refresh, "both"),
    ("nat.on_expiry", "reset", lambda s: s.nat.on_expiry, "reset"),
    ("peer.crash", {"mtbf": "24h"}, lambda s: s.peer.crash, sc.Crash(86400.0)),
    (
        "peer.stall",
        {"mtbf": "2h", "duration": {"dist": "lognormal", "median": "2s", "sigma": 1}},
        lambda s: s.peer.stall,
        sc.Stall(7200.0, Lognormal(2.0, 1.0)),
    ),
    ("app.rate", 0.5, lambda s: s.app.rate, 0.5),
    ("app.bytes", 100, lambda s: s.app.bytes, 100),
    ("reconnect.delay", "2s", lambda s: s.reconnect.delay, 2.0),
    ("reconnect", {"delay": 0}, lambda s: s.reconnect.delay, 0.0),
]


@pytest.mark.parametrize(
    ("key", "value", "get", "expected"),
    KEY_EFFECTS,
    ids=[f"{k}={v!r}"[:60] for k, v, _, _ in KEY_EFFECTS],
)
def test_every_key_has_its_documented_effect(key, value, get, expected):
    # start from a scenario where the key is not at the tested value (a NAT for null)
    base = {"nat": {"idle_timeout": "1h"}} if key == "nat.idle_timeout" else {}
    s, _ = load(base, {key: value})
    assert get(s) == expected
    # the value differs from the base's, so the key really did something
    before, _ = load(base)
    assert get(before) != expected


# --- per-direction overrides -------------------------------------------------------------


def test_uplink_override_changes_only_uplink_and_inherits_the_rest(tmp_path):
    s, _ = load_text(
        tmp_path,
        """
link:
  loss: {model: bernoulli, p: 0.01}
  delay: {dist: constant, value: 40ms}
  uplink: {delay: {dist: exponential, mean: 100ms}}
""",
    )
    assert s.link.up.delay == Exponential(0.1)
    assert s.link.up.loss == sc.Loss(p=0.01)  # inherited
    assert s.link.down == sc.Direction(loss=sc.Loss(p=0.01), delay=Constant(0.04))


def test_downlink_loss_override_inherits_model_and_delay(tmp_path):
    s, _ = load_text(
        tmp_path,
        """
link:
  loss: {model: gilbert, p_gb: 0.01, p_bg: 0.5, loss_good: 0.0, loss_bad: 0.8}
  delay: 30ms
  downlink: {loss: {loss_bad: 0.3}}
""",
    )
    base = sc.Loss(model="gilbert", p_gb=0.01, p_bg=0.5, loss_good=0.0, loss_bad=0.8)
    assert s.link.up == sc.Direction(loss=base, delay=Constant(0.03))
    assert s.link.down.loss == sc.Loss(
        model="gilbert", p_gb=0.01, p_bg=0.5, loss_good=0.0, loss_bad=0.3
    )
    assert s.link.down.delay == Constant(0.03)


def test_direction_loss_as_bare_number(tmp_path):
    s, _ = load_text(tmp_path, "link: {loss: 0.01, uplink: {loss: 0.2}}\n")
    assert s.link.up.loss == sc.Loss(p=0.2)
    assert s.link.down.loss == sc.Loss(p=0.01)


def test_loss_mean_of_gilbert():
    loss = sc.Loss(model="gilbert", p_gb=0.1, p_bg=0.4, loss_good=0.0, loss_bad=1.0)
    assert loss.mean == pytest.approx(0.2)
    assert sc.Loss(p=0.03).mean == 0.03


# --- defaults ----------------------------------------------------------------------------


def test_empty_mapping_file_loads_with_defaults(tmp_path):
    """``{}`` says "all defaults" on purpose; an empty file is an error (issue 17, below)."""
    s, warnings = load_text(tmp_path, "{}\n")
    assert warnings == []
    d = sc.Scenario()
    assert (s.name, s.horizon, s.connections, s.seed) == (d.name, d.horizon, d.connections, d.seed)
    assert s.heartbeat == sc.Heartbeat()
    assert s.detector == sc.Detector()
    assert s.nat == sc.Nat() and s.nat.idle_timeout is None
    assert s.peer == sc.Peer() and s.peer.crash is None and s.peer.stall is None
    assert s.app == sc.App()
    assert s.reconnect == sc.Reconnect()
    assert s.link.transport == "tcp"
    assert s.link.outages is None
    assert s.link.tcp == sc.Tcp()
    assert s.link.up == s.link.down == sc.Direction(loss=sc.Loss(), delay=Constant(0.02))


def test_empty_mapping_loads():
    s, warnings = load({})
    assert warnings == []
    assert s.heartbeat.interval == 30.0 and s.detector.timeout == 60.0


def test_null_sections_mean_defaults(tmp_path):
    s, _ = load_text(tmp_path, "heartbeat:\ndetector:\nlink:\nnat:\npeer:\napp:\nreconnect:\n")
    assert s.heartbeat == sc.Heartbeat() and s.detector == sc.Detector()
    assert s.nat.idle_timeout is None


def test_scenario_is_frozen():
    s, _ = load(DEMO)
    with pytest.raises(AttributeError):
        s.horizon = 1.0  # type: ignore[misc]


# --- resolved properties -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "initiator", "side"),
    [
        ("pingpong", "client", "client"),
        ("pingpong", "server", "server"),
        ("pingpong", "both", "server"),
        ("oneway", "client", "server"),
        ("oneway", "server", "client"),
        ("oneway", "both", "server"),
    ],
)
def test_detector_side_auto(style, initiator, side):
    s, _ = load({"heartbeat": {"style": style, "initiator": initiator}})
    assert s.detector.side == "auto"
    assert s.detector_side == side


@pytest.mark.parametrize("side", ["client", "server"])
def test_detector_side_explicit(side):
    s, _ = load({"heartbeat": {"initiator": "both"}, "detector": {"side": side}})
    assert s.detector_side == side


def test_ack_timeout_defaults_to_interval_and_can_be_set():
    s, _ = load({"heartbeat": {"interval": "20s"}, "detector": {"kind": "missed"}})
    assert s.detector.missed.ack_timeout is None
    assert s.ack_timeout == 20.0
    s, _ = load({"detector": {"kind": "missed", "missed": {"ack_timeout": "5s"}}})
    assert s.ack_timeout == 5.0


def test_nfd_delta_and_adaptive_alpha_default_to_timeout_minus_interval():
    s, _ = load({"heartbeat": {"interval": "10s"}, "detector": {"timeout": "25s"}})
    assert s.detector.nfd.delta is None and s.detector.adaptive.alpha is None
    assert s.nfd_delta == 15.0
    assert s.adaptive_alpha == 15.0
    s, _ = load({"detector": {"nfd": {"delta": "3s"}, "adaptive": {"alpha": "500ms"}}})
    assert s.nfd_delta == 3.0
    assert s.adaptive_alpha == 0.5


# --- round trip: to_dict then from_dict ------------------------------------------------

EVERY_OPTION = {
    "name": "everything",
    "horizon": "3h",
    "connections": 7,
    "seed": 3,
    "heartbeat": {
        "style": "pingpong",
        "initiator": "both",
        "interval": "20s",
        "jitter": 0.1,
        "frame_bytes": 12,
    },
    "detector": {
        "kind": "missed",
        "timeout": "50s",
        "missed": {"k": 3, "ack_timeout": "30s", "overlap": True},
        "phi": {
            "threshold": 10,
            "window": 200,
            "min_std": "50ms",
            "acceptable_pause": "2s",
            "first_estimate": "15s",
        },
        "nfd": {"delta": "12s"},
        "adaptive": {"alpha": "2s", "window": 40},
        "liveness": "any",
        "side": "server",
        "on_declare": "monitor",
    },
    "link": {
        "transport": "datagram",
        "loss": {
            "model": "gilbert",
            "p_gb": 0.02,
            "p_bg": 0.4,
            "loss_good": 0.001,
            "loss_bad": 0.7,
        },
        "delay": {"dist": "lognormal", "median": "30ms", "sigma": 0.4},
        "uplink": {"loss": 0.05, "delay": {"dist": "uniform", "low": "10ms", "high": "90ms"}},
        "downlink": {"delay": {"dist": "pareto", "scale": "20ms", "shape": 2.5}},
        "outages": {"mtbf": "6h", "duration": {"dist": "exponential", "mean": "45s"}},
        "tcp": {"min_rto": "250ms", "max_rto": "60s", "max_retries": 9, "initial_rto": "2s"},
    },
    "nat": {
        "idle_timeout": {"dist": "uniform", "low": "2m", "high": "10m"},
        "refresh": "both",
        "on_expiry": "reset",
    },
    "peer": {
        "crash": {"mtbf": "12h"},
        "stall": {"mtbf": "1h", "duration": {"dist": "constant", "value": "3s"}},
    },
    "app": {"rate": 0.2, "bytes": 500},
    "reconnect": {"delay": "3s"},
}


def test_every_option_scenario_loads_as_written():
    s, warnings = load(EVERY_OPTION)
    assert warnings == []
    assert s.detector.missed == sc.Missed(k=3, ack_timeout=30.0, overlap=True)
    assert s.detector.phi == sc.Phi(10.0, 200, 0.05, 2.0, 15.0)
    assert s.link.up.loss == sc.Loss(p=0.05)
    assert s.link.up.delay == Uniform(0.01, 0.09)
    assert s.link.down.loss.model == "gilbert"
    assert s.link.down.delay == Pareto(0.02, 2.5)
    assert s.nat.idle_timeout == Uniform(120.0, 600.0)
    assert s.peer.stall == sc.Stall(3600.0, Constant(3.0))


def test_to_dict_is_plain_seconds():
    s, _ = load(DEMO)
    d = to_dict(s)
    assert d["horizon"] == 21600.0
    assert d["heartbeat"]["interval"] == 30.0
    assert d["nat"]["idle_timeout"] == {"dist": "constant", "value": 300.0}
    assert d["link"]["outages"]["duration"] == {"dist": "exponential", "mean": 30.0}
    assert d["peer"]["stall"]["duration"] == {"dist": "lognormal", "median": 2.0, "sigma": 1.0}
    flat = flatten(d)
    assert flat["heartbeat.interval"] == 30.0
    assert flat["link.uplink.delay.value"] == 0.04


@pytest.mark.parametrize("source", [DEMO, EVERY_OPTION], ids=["demo", "every-option"])
def test_to_dict_from_dict_round_trip(source):
    s, _ = load(source)
    again, _ = from_dict(to_dict(s))
    assert again == s


def test_every_resolved_key_can_be_set_to_its_own_value():
    s, _ = load(DEMO)
    failures = {}
    for key, value in flatten(to_dict(s)).items():
        try:
            again, _ = load(DEMO, {key: value})
        except ScenarioError as exc:
            failures[key] = str(exc)
            continue
        if again != s:
            failures[key] = "changed the scenario"
    assert failures == {}


# --- overrides ---------------------------------------------------------------------------


def test_load_with_overrides():
    s, _ = load(DEMO, {"heartbeat.interval": "10s", "link.loss.p": 0.05})
    assert s.heartbeat.interval == 10.0
    assert s.link.up.loss.p == 0.05 and s.link.down.loss.p == 0.05
    assert s.link.up.delay == Constant(0.04)  # the rest of the file is untouched
    assert s.detector.timeout == 60.0


def test_overrides_create_missing_sections_and_do_not_mutate_the_source():
    raw = {"heartbeat": {"interval": "30s"}}
    s, _ = load(raw, {"peer.crash.mtbf": "1h", "heartbeat.interval": 15})
    assert s.peer.crash == sc.Crash(3600.0)
    assert s.heartbeat.interval == 15.0
    assert raw == {"heartbeat": {"interval": "30s"}}


def test_override_with_an_error_is_reported_under_its_key():
    with pytest.raises(ScenarioError) as info:
        load(DEMO, {"heartbeat.interval": "10 parsecs"})
    assert [p.path for p in info.value.problems] == ["heartbeat.interval"]
    assert "'10 parsecs'" in str(info.value)


def test_parse_sets_reads_values_as_yaml():
    got = parse_sets(
        [
            "heartbeat.interval=10s",
            "link.loss.p=0.05",
            "connections=3",
            "detector.missed.overlap=true",
            "nat.idle_timeout=null",
            "link.delay={dist: exponential, mean: 20ms}",
            " seed =4",
            "name=a=b",
        ]
    )
    assert got == {
        "heartbeat.interval": "10s",
        "link.loss.p": 0.05,
        "connections": 3,
        "detector.missed.overlap": True,
        "nat.idle_timeout": None,
        "link.delay": {"dist": "exponential", "mean": "20ms"},
        "seed": 4,
        "name": "a=b",
    }


def test_parse_sets_missing_equals_is_an_error_and_all_are_reported():
    with pytest.raises(ScenarioError) as info:
        parse_sets(["heartbeat.interval", "=5", "ok=1", "link.delay=[1"])
    paths = [p.path for p in info.value.problems]
    assert paths == ["heartbeat.interval", "=5", "link.delay"]
    text = str(info.value)
    assert "expected dotted.key=value" in text
    assert "not valid YAML" in text


def test_set_dotted_creates_sections():
    raw: dict = {}
    set_dotted(raw, "a.b.c", 1)
    set_dotted(raw, "a.d", 2)
    assert raw == {"a": {"b": {"c": 1}, "d": 2}}


def test_set_dotted_into_a_non_mapping_names_the_key():
    raw = {"heartbeat": {"style": "pingpong"}}
    with pytest.raises(ScenarioError) as info:
        set_dotted(raw, "heartbeat.style.kind", "x")
    (problem,) = info.value.problems
    assert problem.path == "heartbeat.style.kind"
    assert "heartbeat.style" in problem.message and "pingpong" in problem.message
    assert "not a mapping" in problem.message


def test_set_dotted_expands_shorthand_scalars():
    raw = {"link": {"loss": 0.01, "delay": "40ms"}, "nat": {"idle_timeout": "5m"}}
    set_dotted(raw, "link.loss.p", 0.05)
    set_dotted(raw, "link.delay.value", "80ms")
    set_dotted(raw, "nat.idle_timeout.value", "10m")
    assert raw["link"]["loss"] == {"model": "bernoulli", "p": 0.05}
    assert raw["link"]["delay"] == {"dist": "constant", "value": "80ms"}
    s, _ = load(DEMO, {"nat.idle_timeout.value": "10m"})
    assert s.nat.idle_timeout == Constant(600.0)


def test_partial_distribution_mapping_changes_the_inherited_one():
    s, _ = load(
        {
            "link": {
                "delay": {"dist": "lognormal", "median": "20ms", "sigma": 1},
                "uplink": {"delay": {"sigma": 2}},
            }
        }
    )
    assert s.link.up.delay == Lognormal(0.02, 2.0)
    assert s.link.down.delay == Lognormal(0.02, 1.0)


# --- broken files: table-driven ----------------------------------------------------------

# (id, YAML text or None for a missing file, the problem's key path, substrings of the message)
BROKEN = [
    (
        "interval-wrong-type",
        "heartbeat: {interval: [30]}\n",
        "heartbeat.interval",
        ["[30]", "expected a duration", "a number with a unit: us, ms, s"],
    ),
    (
        "interval-bool",
        "heartbeat: {interval: true}\n",
        "heartbeat.interval",
        ["True", "expected a duration", "ms, s, sec, m, min, h, d"],
    ),
    (
        "connections-string",
        "connections: '10'\n",
        "connections",
        ["'10'", "expected a whole number"],
    ),
    ("connections-float", "connections: 2.5\n", "connections", ["2.5", "whole number"]),
    ("connections-zero", "connections: 0\n", "connections", ["0 is not allowed", "integer >= 1"]),
    ("seed-negative", "seed: -1\n", "seed", ["-1 is not allowed", "integer >= 0"]),
    ("name-empty", "name: ''\n", "name", ["''", "non-empty string"]),
    ("app-rate-bool", "app: {rate: true}\n", "app.rate", ["True", "expected a number"]),
    ("app-rate-negative", "app: {rate: -1}\n", "app.rate", ["-1 is not allowed", ">= 0"]),
    (
        "section-not-mapping",
        "heartbeat: fast\n",
        "heartbeat",
        ["'fast'", "expected a mapping", "interval"],
    ),
    (
        "interval-negative",
        "heartbeat: {interval: -5s}\n",
        "heartbeat.interval",
        ["'-5s'", "positive duration"],
    ),
    ("horizon-zero", "horizon: 0\n", "horizon", ["0 is not allowed", "positive duration"]),
    (
        "nat-idle-negative",
        "nat: {idle_timeout: -5m}\n",
        "nat.idle_timeout",
        ["'-5m'", "positive duration"],
    ),
    (
        "delay-scalar-negative",
        "link: {delay: -1s}\n",
        "link.delay",
        ["'-1s'", "a duration >= 0"],
    ),
    (
        "bad-unit",
        "detector: {timeout: 60x}\n",
        "detector.timeout",
        ["'60x'", "us, ms, s, sec, m, min, h, d"],
    ),
    (
        "bad-unit-nested",
        "link: {tcp: {min_rto: 200 msec}}\n",
        "link.tcp.min_rto",
        ["'200 msec'", "us, ms, s"],
    ),
    (
        "bad-unit-compound",
        "horizon: 1h30m\n",
        "horizon",
        ["'1h30m'", "a number of seconds or a number with a unit"],
    ),
    (
        "unknown-top-key",
        "hearbeat: {interval: 10s}\n",
        "hearbeat",
        ["unknown key", "did you mean 'heartbeat'", "allowed: name, horizon"],
    ),
    (
        "unknown-detector-key",
        "detector: {kind_: nfd}\n",
        "detector.kind_",
        ["unknown key", "did you mean 'kind'", "allowed: kind, timeout"],
    ),
    (
        "unknown-link-key",
        "link: {los: 0.1}\n",
        "link.los",
        ["unknown key", "did you mean 'loss'", "allowed: transport, loss, delay"],
    ),
    (
        "unknown-uplink-key",
        "link: {uplink: {dealy: 10ms}}\n",
        "link.uplink.dealy",
        ["unknown key", "did you mean 'delay'", "allowed: loss, delay"],
    ),
    (
        "unknown-dist-param",
        "link: {delay: {dist: constant, value: 1s, mean: 2s}}\n",
        "link.delay.mean",
        ["unknown key", "allowed: dist, value"],
    ),
    (
        "choice-detector-kind",
        "detector: {kind: phi_accrual}\n",
        "detector.kind",
        ["'phi_accrual'", "one of timeout, missed, phi, nfd, adaptive"],
    ),
    (
        "choice-transport",
        "link: {transport: udp}\n",
        "link.transport",
        ["'udp'", "one of tcp, datagram"],
    ),
    (
        "unknown-dist",
        "link: {delay: {dist: normal, mean: 40ms}}\n",
        "link.delay.dist",
        ["'normal'", "one of constant, uniform, exponential, lognormal, pareto"],
    ),
    (
        "missing-dist",
        "link: {delay: {mean: 40ms}}\n",
        "link.delay.dist",
        ["missing", "one of constant, uniform, exponential, lognormal, pareto", "has no mean"],
    ),
    (
        "missing-dist-param",
        "peer: {stall: {mtbf: 2h, duration: {dist: lognormal, median: 2s}}}\n",
        "peer.stall.duration.sigma",
        ["missing", "lognormal", "median, sigma"],
    ),
    (
        "missing-dist-param-exponential",
        "link: {outages: {mtbf: 1h, duration: {dist: exponential}}}\n",
        "link.outages.duration.mean",
        ["missing", "needs mean"],
    ),
    (
        "dist-param-bad-value",
        "link: {delay: {dist: pareto, scale: 10ms, shape: 0}}\n",
        "link.delay.shape",
        ["0 is not allowed", "> 0"],
    ),
    (
        "uniform-low-above-high",
        "link: {delay: {dist: uniform, low: 2s, high: 1s}}\n",
        "link.delay",
        ["uniform", "low (2s) is above high (1s)"],
    ),
    (
        "stall-missing-duration",
        "peer: {stall: {mtbf: 2h}}\n",
        "peer.stall.duration",
        ["missing", "mtbf and duration"],
    ),
    (
        "outages-missing-mtbf",
        "link: {outages: {duration: 30s}}\n",
        "link.outages.mtbf",
        ["missing", "mtbf and duration"],
    ),
    (
        "loss-p-above-one",
        "link: {loss: {model: bernoulli, p: 1.5}}\n",
        "link.loss.p",
        ["1.5 is not allowed", ">= 0 and < 1"],
    ),
    (
        "loss-bare-negative",
        "link: {loss: -0.1}\n",
        "link.loss.p",
        ["-0.1 is not allowed", ">= 0 and < 1"],
    ),
    (
        "gilbert-probability",
        "link: {loss: {model: gilbert, p_gb: 2, p_bg: 0.5}}\n",
        "link.loss.p_gb",
        ["2 is not allowed", ">= 0 and <= 1"],
    ),
    (
        "jitter-one",
        "heartbeat: {jitter: 1.0}\n",
        "heartbeat.jitter",
        ["1.0 is not allowed", ">= 0 and < 1"],
    ),
    (
        "gilbert-keys-on-bernoulli",
        "link: {loss: {model: bernoulli, p: 0.01, p_gb: 0.1}}\n",
        "link.loss",
        ["p_gb", "model: gilbert, not bernoulli"],
    ),
    (
        "p-on-gilbert",
        "link: {loss: {model: gilbert, p: 0.1}}\n",
        "link.loss.p",
        ["model: bernoulli", "p_gb, p_bg, loss_good, loss_bad"],
    ),
    (
        "gilbert-never-moves",
        "link: {loss: {model: gilbert, p_gb: 0, p_bg: 0}}\n",
        "link.loss",
        ["never moves", "p_bg > 0"],
    ),
    (
        "missed-with-oneway",
        "heartbeat: {style: oneway}\ndetector: {kind: missed}\n",
        "detector.kind",
        ["missed", "oneway", "needs heartbeat.style: pingpong"],
    ),
    (
        "missed-on-side-that-does-not-ping",
        "heartbeat: {initiator: server}\ndetector: {kind: missed, side: client}\n",
        "detector.side",
        ["'client' sends none", "heartbeat.initiator: server"],
    ),
    (
        "ack-timeout-longer-than-interval",
        "heartbeat: {interval: 30s}\ndetector: {kind: missed, missed: {ack_timeout: 45s}}\n",
        "detector.missed.ack_timeout",
        ["45s", "longer than heartbeat.interval (30s)", "detector.missed.overlap: true"],
    ),
    (
        "timeout-equal-to-interval",
        "heartbeat: {interval: 30s}\ndetector: {timeout: 30s}\n",
        "detector.timeout",
        ["30s", "not longer than heartbeat.interval (30s)"],
    ),
    (
        "timeout-shorter-than-interval",
        "heartbeat: {interval: 30s}\ndetector: {timeout: 10s}\n",
        "detector.timeout",
        ["10s", "not longer than heartbeat.interval (30s)"],
    ),
    (
        "oneway-detector-on-sender",
        "heartbeat: {style: oneway, initiator: client}\ndetector: {side: client}\n",
        "detector.side",
        ["'client' sends the oneway heartbeats", "use the other side or auto"],
    ),
    (
        "nfd-default-margin-zero",
        "heartbeat: {interval: 60s}\ndetector: {kind: nfd, timeout: 60s}\n",
        "detector.timeout",
        ["nfd margin is 0s", "must be positive", "detector.timeout - heartbeat.interval"],
    ),
    (
        "nfd-delta-zero",
        "detector: {kind: nfd, nfd: {delta: 0}}\n",
        "detector.nfd.delta",
        ["0 is not allowed", "positive duration or null"],
    ),
    (
        "adaptive-default-margin-negative",
        "heartbeat: {interval: 90s}\ndetector: {kind: adaptive, timeout: 60s}\n",
        "detector.timeout",
        ["adaptive margin is -30s", "must be positive"],
    ),
    (
        "adaptive-alpha-negative",
        "detector: {kind: adaptive, adaptive: {alpha: -1s}}\n",
        "detector.adaptive.alpha",
        ["'-1s' is not allowed", "positive duration or null"],
    ),
    (
        "tcp-max-rto-below-min",
        "link: {tcp: {min_rto: 2s, max_rto: 1s}}\n",
        "link.tcp.max_rto",
        ["1s is below min_rto (2s)"],
    ),
    ("top-level-list", "- a\n- b\n", "", ["expected a mapping at the top level", "list"]),
    ("top-level-scalar", "just words\n", "", ["expected a mapping at the top level", "str"]),
    (
        "invalid-yaml",
        "heartbeat: {interval: 30s\ndetector: {}\n",
        "",
        ["not valid YAML", "line"],
    ),
    ("missing-file", None, "", ["cannot read", "No such file"]),
]


@pytest.mark.parametrize(
    ("text", "path", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN]
)
def test_broken_scenario_file(tmp_path, capsys, text, path, expected):
    file = tmp_path / "broken.yaml"
    if text is not None:
        file.write_text(text)

    # (a) the loader names the key path, the bad value or reason, and what is allowed
    with pytest.raises(ScenarioError) as info:
        load(file)
    err = info.value
    assert path in [p.path for p in err.problems]
    message = str(err)
    assert str(file) in message
    if path:
        assert f"{path}:" in message
    for part in expected:
        assert part in message

    # (b) the CLI exits 2 and prints the same problem on stderr, no traceback
    assert main(["run", str(file)]) == 2
    out, stderr = capsys.readouterr()
    assert "Traceback" not in out + stderr
    assert out == ""
    assert stderr.startswith("error: ")
    if path:
        assert f"{path}:" in stderr
    for part in expected:
        assert part in stderr


def test_broken_cases_are_many_and_distinct():
    assert len(BROKEN) >= 25
    assert len({c[0] for c in BROKEN}) == len(BROKEN)


def test_ack_timeout_longer_than_interval_is_accepted_with_overlap(tmp_path):
    s, warnings = load_text(
        tmp_path,
        "heartbeat: {interval: 30s}\n"
        "detector: {kind: missed, missed: {ack_timeout: 45s, overlap: true}}\n",
    )
    assert s.ack_timeout == 45.0 and s.detector.missed.overlap is True
    assert warnings == []


def test_oneway_detector_on_the_receiving_side_is_accepted():
    s, _ = load(
        {"heartbeat": {"style": "oneway", "initiator": "client"}, "detector": {"side": "server"}}
    )
    assert s.detector_side == "server"


def test_several_problems_are_reported_at_once(tmp_path, capsys):
    text = """
hearbeat: {interval: 10s}
connections: 0
detector: {kind: foo, timeout: 60x}
link:
  delay: {dist: normal, mean: 40ms}
  loss: {model: bernoulli, p: 2}
nat: {refresh: inbound}
"""
    file = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load(file)
    paths = [p.path for p in info.value.problems]
    expected = [
        "hearbeat",
        "connections",
        "detector.kind",
        "detector.timeout",
        "link.delay.dist",
        "link.loss.p",
        "nat.refresh",
    ]
    assert sorted(paths) == sorted(expected)
    assert f"{len(expected)} problem(s)" in str(info.value)

    assert main(["run", str(file)]) == 2
    _, stderr = capsys.readouterr()
    assert f"{len(expected)} problem(s)" in stderr
    for path in expected:
        assert f"  - {path}:" in stderr
    assert "Traceback" not in stderr


def test_field_and_combination_problems_are_reported_together():
    with pytest.raises(ScenarioError) as info:
        load({"connections": 0, "detector": {"timeout": "10s"}})
    paths = {p.path for p in info.value.problems}
    assert paths == {"connections", "detector.timeout"}


# --- bugs that escape as tracebacks or are silently accepted -------------------------


@pytest.mark.parametrize("value", ["[a]", "{a: 1}"])
def test_unhashable_distribution_name_is_a_problem(tmp_path, capsys, value):
    file = write(tmp_path, f"link: {{delay: {{dist: {value}}}}}\n")
    assert main(["run", str(file)]) == 2
    _, stderr = capsys.readouterr()
    assert "link.delay.dist" in stderr


@pytest.mark.parametrize(
    "text",
    ["horizon: " + "9" * 400 + "\n", "heartbeat: {jitter: " + "9" * 400 + "}\n"],
    ids=["duration", "number"],
)
def test_huge_integer_is_a_problem(tmp_path, capsys, text):
    file = write(tmp_path, text)
    assert main(["run", str(file)]) == 2
    _, stderr = capsys.readouterr()
    assert "Traceback" not in stderr


def test_non_utf8_file_is_a_problem(tmp_path, capsys):
    file = tmp_path / "binary.yaml"
    file.write_bytes(b"\xff\xfe\x00name: x\n")
    assert main(["run", str(file)]) == 2
    _, stderr = capsys.readouterr()
    assert "binary.yaml" in stderr


def test_directory_instead_of_file_is_a_problem(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == 2
    _, stderr = capsys.readouterr()
    assert "cannot read" in stderr and "Traceback" not in stderr


def test_empty_crash_section_is_a_problem():
    with pytest.raises(ScenarioError, match=r"peer\.crash\.mtbf"):
        load({"peer": {"crash": {}}})


def test_zero_constant_nat_idle_timeout_is_rejected():
    with pytest.raises(ScenarioError):
        load({"nat": {"idle_timeout": {"dist": "constant", "value": 0}}})


def test_scalar_zero_nat_idle_timeout_is_rejected():
    with pytest.raises(ScenarioError, match="positive duration"):
        load({"nat": {"idle_timeout": 0}})


# --- warnings ------------------------------------------------------------------------------

WARNINGS = [
    (
        "nfd-with-jitter",
        "heartbeat: {jitter: 0.2}\ndetector: {kind: nfd}\n",
        "detector.kind",
        "assumes heartbeats sent exactly every interval",
    ),
    (
        "interval-not-below-nat-idle",
        "heartbeat: {interval: 30s}\nnat: {idle_timeout: 20s}\n",
        "nat.idle_timeout",
        "expect NAT breaks",
    ),
    (
        "interval-longer-than-horizon",
        "horizon: 10s\nheartbeat: {interval: 30s}\n",
        "heartbeat.interval",
        "longer than the horizon (10s)",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "phrase"), [w[1:] for w in WARNINGS], ids=[w[0] for w in WARNINGS]
)
def test_warnings_are_returned_and_printed(tmp_path, capsys, text, path, phrase):
    file = write(tmp_path, "connections: 1\n" + text)
    s, warnings = load(file)
    assert [w.path for w in warnings] == [path]
    assert phrase in str(warnings[0])

    horizon = [] if "horizon" in text else ["--set", "horizon=2m"]
    assert main(["run", str(file), *horizon, "--json"]) == 0
    _, stderr = capsys.readouterr()
    assert f"warning: {path}: " in stderr
    assert phrase in stderr
    assert "Traceback" not in stderr


def test_no_nat_warning_with_app_traffic_or_short_interval():
    _, warnings = load({"nat": {"idle_timeout": "20s"}, "app": {"rate": 0.1}})
    assert warnings == []
    _, warnings = load({"nat": {"idle_timeout": "5m"}})
    assert warnings == []


def test_read_yaml_of_empty_file_is_an_error(tmp_path):
    with pytest.raises(ScenarioError, match="empty: give at least a name or one section"):
        read_yaml(write(tmp_path, ""))
    assert read_yaml(write(tmp_path, "{}\n")) == {}


# --- hardening (issue 17): no input crashes, hangs or misleads the reader -----------------


def _bomb(levels: int = 9, key: str = "app: {bytes: *x%d}") -> str:
    """A "billion laughs": each anchor is nine aliases of the one before (9**levels values)."""
    lines = ["x0: &x0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n" + (key % levels) + "\n"


@pytest.mark.parametrize(
    "text",
    ["", "\n  \n", "# only a comment\n", "# a\n\n# b\n"],
    ids=["empty", "blank", "comment", "comments"],
)
def test_empty_file_is_an_error_naming_the_file(tmp_path, capsys, text):
    file = write(tmp_path, text, "nothing.yaml")
    with pytest.raises(ScenarioError) as info:
        load(file)
    assert "nothing.yaml" in str(info.value)
    assert "empty: give at least a name or one section (see examples/demo.yaml)" in str(info.value)
    assert main(["run", str(file)]) == 2
    _, stderr = capsys.readouterr()
    assert "nothing.yaml" in stderr and "empty" in stderr and "Traceback" not in stderr


def test_an_empty_mapping_from_python_and_a_preset_without_a_file_still_mean_defaults(capsys):
    from simlab.scenario.presets import load_layered

    assert load({})[0].connections == sc.Scenario().connections
    s, _ = load_layered(None, preset="websockets-default")
    assert s.name == "websockets-default"
    assert main(["check", "--preset", "websockets-default"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "text",
    [
        "name: " + "[" * 1000 + "\n",
        "a: " + "{b: " * 1000 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(200)),
    ],
    ids=["flow-sequences", "flow-mappings", "block-mappings"],
)
def test_deep_nesting_is_a_problem_not_a_recursion_error(tmp_path, capsys, text):
    file = write(tmp_path, text)
    with pytest.raises(ScenarioError, match="nested deeper than 64 levels at line"):
        read_yaml(file)
    assert main(["check", str(file)]) == 2
    _, stderr = capsys.readouterr()
    assert "nested deeper than 64 levels" in stderr and "Traceback" not in stderr


def test_nesting_within_the_bound_reads(tmp_path):
    raw = read_yaml(write(tmp_path, "name: " + "[" * 60 + "]" * 60 + "\n"))
    depth, node = 0, raw["name"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0] if node else None
    assert depth == 60


def test_alias_bomb_is_refused_at_once_without_expanding_it(tmp_path, capsys):
    import time
    import tracemalloc

    file = write(tmp_path, _bomb())
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ScenarioError) as info:
            load(file)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 5_000_000  # bytes: the document is a few hundred
    message = str(info.value)
    assert "aliases expand to more than 100,000 values" in message and "line" in message
    assert len(message) < 400
    started = time.perf_counter()
    assert main(["check", str(file)]) == 2
    assert time.perf_counter() - started < 1.0
    _, stderr = capsys.readouterr()
    assert "alias bomb" in stderr and "Traceback" not in stderr


def test_alias_bomb_in_a_sweep_grid_is_refused(tmp_path, capsys):
    import time

    sweep = write(
        tmp_path, _bomb(key="base: {horizon: 10m}\ngrid: {heartbeat.interval: *x%d}"), "sweep.yaml"
    )
    started = time.perf_counter()
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out.csv"), "--quiet"]) == 2
    assert time.perf_counter() - started < 1.0
    _, stderr = capsys.readouterr()
    assert "alias bomb" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_small_aliased_value_under_a_number_key_is_quoted_short(tmp_path):
    """Below the alias bound (7381 values): refused, and the message quotes a prefix only."""
    with pytest.raises(ScenarioError) as info:
        load(write(tmp_path, _bomb(levels=3)))
    (problem,) = [p for p in info.value.problems if p.path == "app.bytes"]  # x0..x3: unknown
    assert "expected a whole number" in problem.message and "(9 items)" in problem.message
    assert len(problem.message) < 160


def test_anchors_aliases_and_merge_keys_still_work(tmp_path):
    s, _ = load_text(
        tmp_path,
        "link:\n"
        "  uplink: {delay: &d {dist: lognormal, median: 20ms, sigma: 0.5}}\n"
        "  downlink: {delay: *d}\n"
        "detector: &det {kind: timeout, timeout: 50s}\n"
        "heartbeat: {interval: 20s}\n",
    )
    assert s.link.up.delay == s.link.down.delay == Lognormal(0.02, 0.5)
    raw = read_yaml(write(tmp_path, "a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3}\n"))
    assert raw["b"] == {"x": 1, "y": 3}


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ScenarioError, match="inside its own anchor"):
        read_yaml(write(tmp_path, "app: &a {bytes: *a}\n"))


def test_a_number_too_long_for_python_is_a_problem(tmp_path, capsys):
    file = write(tmp_path, "horizon: " + "9" * 5000 + "\n")
    assert main(["check", str(file)]) == 2
    _, stderr = capsys.readouterr()
    assert "a number of 5000 characters is too long at line 1" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("item", "phrase"),
    [
        ("name=" + "[" * 1000, "nested deeper than 64"),
        ("name=&a [*a]", "own anchor"),
        ("name={" + ", ".join(_bomb().splitlines()[:-1]) + "}", "alias bomb"),
    ],
    ids=["deep", "recursive", "bomb"],
)
def test_set_values_have_the_same_limits(item, phrase):
    with pytest.raises(ScenarioError, match=phrase):
        parse_sets([item])


def test_yaml_pitfalls_are_still_refused(tmp_path):
    text = (
        "name: no\n"
        "heartbeat: {interval: off, jitter: .nan}\n"
        "detector: {timeout: .inf}\n"
        "app: {rate: !!float .NaN}\n"
        "link: {delay: !!python/name:os.system x}\n"
    )
    with pytest.raises(ScenarioError, match="could not determine a constructor for the tag"):
        load_text(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, text.replace("!!python/name:os.system x", "20ms"))
    by_path = {p.path: p.message for p in info.value.problems}
    assert by_path["name"] == "expected a non-empty string, got False"
    assert "got False" in by_path["heartbeat.interval"]
    assert by_path["heartbeat.jitter"] == "expected a finite number, got nan"
    assert "expected a finite duration" in by_path["detector.timeout"]
    assert by_path["app.rate"] == "expected a finite number, got nan"


@pytest.mark.parametrize(
    "text",
    ["horizon: '" + "9s" * 3000 + "'\n", "name: [" + ", ".join(["abc"] * 3000) + "]\n"],
    ids=["long-string", "long-list"],
)
def test_bad_values_are_quoted_by_a_short_prefix(tmp_path, text):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, text)
    (problem,) = info.value.problems
    assert len(problem.message) < 250
    assert "..." in problem.message
    assert "(6000 characters)" in problem.message or "(3000 items)" in problem.message


def test_shown_quotes_short_values_exactly_and_long_ones_by_a_prefix():
    from simlab.errors import shown

    assert shown("-1s") == "'-1s'" and shown(None) == "None" and shown([1, "a"]) == "[1, 'a']"
    assert shown("x" * 100) == repr("x" * 60) + "... (100 characters)"
    assert shown(10**500) == "a number of about 501 digits"
    nested = [1] * 9
    for _ in range(9):
        nested = [nested] * 9  # 9**10 values if expanded: shown must not expand them
    assert len(shown(nested)) < 100 and shown(nested).endswith("(9 items)")


# Values no physical network produces: past a hard cap an error giving the range,
# merely implausible ones a warning (the CLI prints both).
CAPPED = [
    (
        "delay-2^63s",
        "link: {delay: 9223372036854775808}\n",
        "link.delay",
        "at most 100 years (36525d)",
    ),
    (
        "median-1e12d",
        "link: {delay: {dist: lognormal, median: 1e12d, sigma: 1}}\n",
        "link.delay.median",
        "at most 100 years (36525d)",
    ),
    ("horizon-101y", "horizon: 36900d\n", "horizon", "at most 100 years (36525d)"),
    ("mtbf-huge", "peer: {crash: {mtbf: 1e300}}\n", "peer.crash.mtbf", "at most 100 years"),
    (
        "frame-1e30",
        "heartbeat: {frame_bytes: " + "1" + "0" * 30 + "}\n",
        "heartbeat.frame_bytes",
        "<= 1073741824",
    ),
    (
        "sigma-100",
        "link: {delay: {dist: lognormal, median: 1ms, sigma: 100}}\n",
        "link.delay.sigma",
        "<= 20",
    ),
    (
        "sigma-nat",
        "nat: {idle_timeout: {dist: lognormal, median: 1s, sigma: 100}}\n",
        "nat.idle_timeout.sigma",
        "<= 20",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "phrase"), [c[1:] for c in CAPPED], ids=[c[0] for c in CAPPED]
)
def test_values_past_the_hard_caps_are_errors(tmp_path, capsys, text, path, phrase):
    with pytest.raises(ScenarioError) as info:
        load_text(tmp_path, text)
    by_path = {p.path: p.message for p in info.value.problems}
    assert phrase in by_path[path]
    assert main(["check", str(write(tmp_path, text))]) == 2
    _, stderr = capsys.readouterr()
    assert path in stderr and "Traceback" not in stderr


def test_values_at_the_caps_are_accepted():
    s, _ = load({"horizon": "36525d", "heartbeat": {"frame_bytes": 2**30}})
    assert s.horizon == 36525 * 86400.0


IMPLAUSIBLE = [
    ("frame-100k", "heartbeat: {frame_bytes: 100000}\n", ["heartbeat.frame_bytes"], "above 64 KiB"),
    ("delay-2h", "link: {delay: 2h}\n", ["link.delay"], "over an hour"),
    (
        "median-2h",
        "link: {delay: {dist: lognormal, median: 2h, sigma: 1}}\n",
        ["link.delay"],
        "median of 2h",
    ),
    (
        "mean-only",
        "link: {delay: {dist: lognormal, median: 1s, sigma: 5}}\n",
        ["link.delay"],
        "has a mean of",
    ),
    ("uplink-only", "link: {uplink: {delay: 90m}}\n", ["link.uplink.delay"], "over an hour"),
    ("horizon-2y", "horizon: 730d\n", ["horizon"], "over a year"),
    ("loss-0.9", "link: {loss: 0.9}\n", ["link.loss"], "over 50 %"),
    (
        "gilbert-mostly-bad",
        "link: {loss: {model: gilbert, p_gb: 0.5, p_bg: 0.1, loss_good: 0, loss_bad: 1}}\n",
        ["link.loss"],
        "over 50 %",
    ),
]


@pytest.mark.parametrize(
    ("text", "paths", "phrase"), [c[1:] for c in IMPLAUSIBLE], ids=[c[0] for c in IMPLAUSIBLE]
)
def test_implausible_values_are_warnings(tmp_path, capsys, text, paths, phrase):
    s, warnings = load_text(tmp_path, text)
    assert [w.path for w in warnings] == paths
    assert phrase in warnings[0].message
    assert main(["check", str(write(tmp_path, text))]) == 0
    _, stderr = capsys.readouterr()
    assert f"warning: {paths[0]}: " in stderr


def test_plausible_extremes_are_not_warned():
    _, warnings = load(
        {
            "horizon": "365d",
            "heartbeat": {"frame_bytes": 65536},
            "link": {"loss": 0.5, "delay": "1h"},
            "nat": {"idle_timeout": "5d"},  # conntrack's established timeout: long, and real
        }
    )
    assert warnings == []


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/stdin"])
def test_a_device_is_refused_without_reading_it(capsys, device):
    import os
    import stat

    if not os.path.exists(device) or stat.S_ISREG(os.stat(device).st_mode):
        pytest.skip(f"{device} is a regular file here")
    with pytest.raises(ScenarioError, match="not a regular file"):
        read_yaml(device)
    assert main(["check", device]) == 2
    _, stderr = capsys.readouterr()
    assert f"cannot read {device}" in stderr and "at most 1 MiB" in stderr


def test_a_fifo_and_a_huge_file_are_refused(tmp_path, capsys):
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    assert main(["run", str(fifo)]) == 2
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(2 << 20)  # 2 MiB, sparse
    assert main(["check", str(big)]) == 2
    _, stderr = capsys.readouterr()
    assert "a FIFO (named pipe), not a regular file" in stderr
    assert "2 MiB is too big (a YAML file must be a regular file of at most 1 MiB)" in stderr
    assert "Traceback" not in stderr
