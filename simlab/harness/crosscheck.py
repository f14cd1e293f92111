"""Model versus real sockets: run both on the same scaled scenario and test whether they agree.

The harness runs the scenario over real TCP (:mod:`simlab.harness`); the model
runs the same scaled scenario with many more connections, the real kernel's TCP
constants and the RTT the harness measured. Each metric is compared with a
test that fits it:

- counts over exposure (false positives, breaks, detections per connection-hour):
  the exact conditional test for two Poisson rates (given the total count, the
  harness's share is binomial with p = its share of the exposure);
- latencies (detection latency, retransmitted pongs' round trips): whether the
  harness's 10/50/90% quantiles sit within the clock's resolution of the model's
  (binomial tests on order counts; a KS test would reject any measured clock
  against a model whose latency is a single value);
- proportions (pongs delayed by a retransmission): Fisher's exact test.

The verdict uses a Bonferroni correction over the comparisons of one check, so
a scenario of eight metrics at ``alpha`` = 0.01 is wrong by chance at most 1% of
the time. No events on either side is no evidence, not agreement: such a metric is
reported as "no evidence", and a check in which nothing could be tested does not
agree; the verdict's summary says what was tested and what was not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from simlab.engines.analytic.theory import poisson_interval
from simlab.engines.runner import simulate
from simlab.scenario.schema import to_dict

ALPHA = 0.01
MIN_SAMPLES = 8  # fewer latencies than this on either side: shown, not tested
RETRANSMITTED = 0.15  # a pong this late (s) waited for a retransmission (min RTO 200 ms)


@dataclass(frozen=True)
class Comparison:
    metric: str
    test: str
    model: float | None
    model_low: float | None
    model_high: float | None
    harness: float | None
    harness_low: float | None
    harness_high: float | None
    p_value: float | None  # None: not tested (too few samples, or no events), shown only
    n_model: int
    n_harness: int
    no_evidence: bool = False  # no events on either side: nothing to compare

    def agrees(self, alpha: float) -> bool | None:
        return None if self.p_value is None else self.p_value >= alpha

    def verdict(self, alpha: float) -> str:
        """'agree', 'DISAGREE', 'no evidence' (no events on either side) or 'shown' (too few)."""
        if self.no_evidence:
            return "no evidence"
        verdict = self.agrees(alpha)
        return "shown" if verdict is None else ("agree" if verdict else "DISAGREE")


def compare_rates(metric: str, x_model: int, e_model: float, x_harness: int, e_harness: float):
    """Two Poisson rates (counts over exposures), exact conditional binomial test.

    No event on either side is no evidence (not a p-value of 1): zero breaks against
    zero breaks says nothing about whether the two would break alike."""
    total = x_model + x_harness
    if total == 0:
        p = None
    else:
        share = e_harness / (e_model + e_harness)
        p = float(stats.binomtest(x_harness, total, share).pvalue)
    ml, mh = poisson_interval(x_model, e_model) if e_model > 0 else (math.nan, math.nan)
    hl, hh = poisson_interval(x_harness, e_harness) if e_harness > 0 else (math.nan, math.nan)
    return Comparison(
        metric,
        "poisson rates (exact)",
        x_model / e_model if e_model > 0 else math.nan,
        ml,
        mh,
        x_harness / e_harness if e_harness > 0 else math.nan,
        hl,
        hh,
        p,
        x_model,
        x_harness,
        total == 0,
    )


def _median_interval(a: np.ndarray) -> tuple[float, float]:
    """Distribution-free 95% interval of the median from order statistics."""
    n = len(a)
    if n < 6:
        return float(a.min()), float(a.max())
    s = np.sort(a)
    lo = int(stats.binom.ppf(0.025, n, 0.5))
    hi = int(stats.binom.isf(0.025, n, 0.5))
    return float(s[max(lo - 1, 0)]), float(s[min(hi, n - 1)])


QUANTILES = (0.1, 0.5, 0.9)


def quantile_test(model: np.ndarray, harness: np.ndarray, resolution: float) -> float:
    """p-value of "the harness's 10/50/90% quantiles are within ``resolution`` of the model's".

    For each quantile q with model value m: under the null, at most a fraction q
    of harness values lies below m - resolution (one-sided binomial test on that
    count) and at least q at or below m + resolution (the other side). Bonferroni
    over the six one-sided tests. A KS test alone would reject a model whose
    latency is a point mass (a timeout detector's) for any measurement with a
    clock: the resolution is the event loop's own measured timer lateness.
    """
    n = len(harness)
    ps = []
    for q in QUANTILES:
        m = float(np.quantile(model, q))
        below = int((harness < m - resolution).sum())
        at_most = int((harness <= m + resolution).sum())
        ps.append(float(stats.binom.sf(below - 1, n, q)))  # P(Bin >= below)
        ps.append(float(stats.binom.cdf(at_most, n, q)))  # P(Bin <= at_most)
    return min(1.0, len(ps) * min(ps))


def compare_samples(metric: str, model: list[float], harness: list[float], resolution: float = 0.0):
    """Two samples of a latency: quantiles within the clock's resolution; medians with intervals."""
    a, b = np.asarray(model, float), np.asarray(harness, float)
    p = None if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES else quantile_test(a, b, resolution)
    ma = (float(np.median(a)),) + _median_interval(a) if len(a) else (None, None, None)
    mb = (float(np.median(b)),) + _median_interval(b) if len(b) else (None, None, None)
    test = f"quantiles 10/50/90% within {resolution * 1000:.1f} ms"
    return Comparison(metric, test, *ma, *mb, p, len(a), len(b), not len(a) and not len(b))


def compare_proportions(metric: str, k_model: int, n_model: int, k_harness: int, n_harness: int):
    """Two binomial proportions, Fisher's exact test; Clopper-Pearson intervals."""

    def cp(k, n):
        if n == 0:
            return math.nan, math.nan
        ci = stats.binomtest(k, n).proportion_ci(0.95)
        return ci.low, ci.high

    table = [[k_model, n_model - k_model], [k_harness, n_harness - k_harness]]
    none = k_model + k_harness == 0  # no event on either side: no evidence
    p = float(stats.fisher_exact(table).pvalue) if n_model and n_harness and not none else None
    return Comparison(
        metric,
        "proportions (Fisher exact)",
        k_model / n_model if n_model else math.nan,
        *cp(k_model, n_model),
        k_harness / n_harness if n_harness else math.nan,
        *cp(k_harness, n_harness),
        p,
        n_model,
        n_harness,
        none,
    )


@dataclass
class CrossCheck:
    """The comparisons of one scenario, what ran on each side, and the verdict."""

    name: str
    comparisons: list[Comparison]
    alpha: float
    model_summary: dict
    harness_summary: dict
    ran: dict = field(default_factory=dict)

    @property
    def tested(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.p_value is not None]

    @property
    def threshold(self) -> float:
        return self.alpha / max(1, len(self.tested))

    @property
    def no_evidence(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.no_evidence]

    @property
    def agree(self) -> bool:
        """Every tested metric agrees, and at least one was tested (no evidence is not agreement)."""
        return bool(self.tested) and all(c.agrees(self.threshold) for c in self.tested)

    @property
    def verdict(self) -> str:
        """AGREE, DISAGREE, or NO EVIDENCE (nothing could be tested)."""
        if not self.tested:
            return "NO EVIDENCE"
        return "AGREE" if self.agree else "DISAGREE"

    def summary(self) -> str:
        """What was tested and what was not, in one line: "agree on 3 metrics; no evidence
        on breaks (nat) (0 events on both sides)"."""

        def names(cs):
            return ", ".join(c.metric.removesuffix(" /conn-h") for c in cs)

        def metrics(n):
            return f"{n} metric{'s' if n != 1 else ''}"

        bad = [c for c in self.tested if not c.agrees(self.threshold)]
        good = len(self.tested) - len(bad)
        parts = []
        if bad:
            parts.append(f"DISAGREE on {names(bad)}")
        if good:
            parts.append(f"agree on {metrics(good)}")
        if not self.tested:
            parts.append("nothing tested")
        if self.no_evidence:
            parts.append(f"no evidence on {names(self.no_evidence)} (0 events on both sides)")
        shown = [c for c in self.comparisons if c.p_value is None and not c.no_evidence]
        if shown:
            parts.append(f"not tested: {names(shown)} (fewer than {MIN_SAMPLES} samples a side)")
        return "; ".join(parts)

    def rows(self) -> list[dict]:
        out = []
        for c in self.comparisons:
            row = {"check": self.name, **dataclasses.asdict(c)}
            row["verdict"] = c.verdict(self.threshold)
            out.append(row)
        return out

    def to_json(self) -> dict:
        """The check for ``--json``: verdict, its summary, what ran, every comparison."""
        return {
            "check": self.name,
            "agree": self.agree,
            "verdict": self.verdict,
            "summary": self.summary(),
            "no_evidence": [c.metric for c in self.no_evidence],
            "ran": self.ran,
            "comparisons": self.rows(),
        }


def _latencies(records, event="detection") -> list[float]:
    return records.loc[records.event == event, "value"].astype(float).tolist()


def _first_policy(records, what: str, column: str = "time") -> list[float]:
    """Each slot's first policy decision ``what`` (its time, or its value)."""
    rows = records[(records.event == "policy") & (records.detail == what)]
    return rows.groupby("slot")[column].first().astype(float).tolist()


def _pong_rtts_model(trace) -> list[float]:
    rows = trace[(trace.event == "receive") & (trace.kind == "pong")]
    return rows["value"].astype(float).tolist()


def compare(
    model,
    harness,
    *,
    loss: bool,
    alpha: float = ALPHA,
    name: str = "check",
    resolution: float = 0.0,
    expect: tuple[str, ...] = (),
) -> CrossCheck:
    """Comparisons between a model :class:`~simlab.engines.runner.Result` and a harness result.

    ``expect``: break causes the scenario can produce ("nat", "crash"): compared (and
    reported as no evidence) even when neither side saw one, so a NAT that never broke
    anything is said, not silently left out."""
    ms, hs = model.summary, harness.summary
    em, eh = ms["connected_hours"], hs["connected_hours"]
    out = [
        compare_rates(
            "false positives /conn-h", ms["false_positives"], em, hs["false_positives"], eh
        )
    ]
    for cause in ("crash", "nat", "tcp_timeout"):
        key = f"breaks_{cause}"
        if ms[key] or hs[key] or cause in expect:
            out.append(compare_rates(f"breaks ({cause}) /conn-h", ms[key], em, hs[key], eh))
    for by in ("detector", "reset", "tcp_timeout"):
        key = f"detections_by_{by}"
        if ms[key] or hs[key]:
            out.append(compare_rates(f"detections by {by} /conn-h", ms[key], em, hs[key], eh))
    ml, hl = _latencies(model.records), _latencies(harness.records)
    if ml or hl:
        out.append(compare_samples("detection latency (s)", ml, hl, resolution))
    mt, ht = _first_policy(model.records, "settled"), _first_policy(harness.records, "settled")
    if mt or ht:  # nat-probe: when each slot settled, and on what estimate of the NAT timeout
        # A time that accumulates many steps accumulates their processing latency: each
        # reconnection takes a real handshake (the model's is instant) and each probe's
        # interval counts from a pong that crossed the event loop, each declaration from a
        # timer that fired late: at most one loop round trip and one timer lateness per
        # step (99th percentiles, measured in the run).
        rec, info = harness.records, harness.info
        settled = (
            rec[(rec.event == "policy") & (rec.detail == "settled")].groupby("slot").time.min()
        )
        opens, pings = rec[rec.event == "open"], rec[rec.event == "ping"]
        reconnects = max(
            (int((opens[opens.slot == s].time < t).sum()) - 1 for s, t in settled.items()),
            default=0,
        )
        steps = max(
            (int((pings[pings.slot == s].time < t).sum()) for s, t in settled.items()), default=0
        )
        per_step = info.get("loop_rtt_s", 0.0) + info.get("timer_lateness_s", 0.0)
        tolerance = (
            resolution
            + reconnects * info.get("reconnect_lag_s", 0.0)
            + (steps + reconnects) * per_step
        )
        out.append(compare_samples("nat-probe convergence time (s)", mt, ht, tolerance))
        me = _first_policy(model.records, "nat_estimate", "value")
        he = _first_policy(harness.records, "nat_estimate", "value")
        out.append(compare_samples("nat-probe estimate (s)", me, he, resolution))
    if loss and model.trace is not None:
        mr = np.asarray(_pong_rtts_model(model.trace))
        hr = np.asarray(_latencies(harness.records, "pong"))
        out.append(
            compare_proportions(
                f"pongs later than {RETRANSMITTED * 1000:.0f} ms",
                int((mr > RETRANSMITTED).sum()),
                len(mr),
                int((hr > RETRANSMITTED).sum()),
                len(hr),
            )
        )
        out.append(
            compare_samples(
                "retransmitted pong RTT (s)",
                mr[mr > RETRANSMITTED].tolist(),
                hr[hr > RETRANSMITTED].tolist(),
                resolution,
            )
        )
    return CrossCheck(name, out, alpha, ms, hs)


def model_side(
    scaled,
    *,
    connections: int,
    seed_offset: int = 1_000_003,
    trace: bool = False,
    progress: bool = False,
):
    """The model's run of a scaled scenario: more connections, a seed of its own."""
    s = dataclasses.replace(scaled, connections=connections, seed=scaled.seed + seed_offset)
    return s, simulate(s, trace=trace, progress=progress)


def describe_sides(harness_scn, model_scn, extra: dict) -> dict:
    """Exactly what ran on each side, for the output."""
    return {"harness": to_dict(harness_scn), "model": to_dict(model_scn), **extra}


# -- one cross-check, end to end ------------------------------------------------------


def harness_refusals(s, backend: str, policy: str) -> list:
    """Why the harness cannot run ``s`` (as validation problems: key, value, what is allowed)."""
    from simlab.errors import Problem as _Problem
    from simlab.harness.netns import NetnsBackend
    from simlab.harness.proxy import ProxyBackend

    def Problem(key, allowed, value):  # noqa: N802 - reads like the dataclass it builds
        return _Problem(key, f"got {value!r}; the harness needs {allowed}")

    out = []
    if s.link.transport != "tcp":
        out.append(Problem("link.transport", "WebSockets run over TCP", s.link.transport))
    if s.heartbeat.style != "pingpong":
        out.append(
            Problem(
                "heartbeat.style", "the harness sends WebSocket pings: pingpong", s.heartbeat.style
            )
        )
    if policy == "websockets-native" and s.heartbeat.initiator != s.detector_side:
        out.append(
            Problem(
                "heartbeat.initiator",
                f"the library's keepalive pings from the detecting side: {s.detector_side}",
                s.heartbeat.initiator,
            )
        )
    if s.app.rate > 0:
        out.append(
            Problem("app.rate", "no application traffic (the harness sends none yet)", s.app.rate)
        )
    peer = "client" if s.detector_side == "server" else "server"
    if s.peer.stall is not None and s.heartbeat.initiator in (peer, "both"):
        out.append(
            Problem(
                "peer.stall",
                "no stalls when the peer pings (its timers would have to stall too)",
                "set",
            )
        )
    if s.detector.on_declare != "reconnect":
        out.append(
            Problem(
                "detector.on_declare",
                "the harness closes and reconnects: reconnect",
                s.detector.on_declare,
            )
        )
    policy_kind = s.heartbeat.policy.kind
    if policy_kind == "traffic-aware":
        out.append(
            Problem(
                "heartbeat.policy.kind",
                "fixed, network-state, nat-probe or throttled-client (no application traffic yet)",
                policy_kind,
            )
        )
    if policy == "websockets-native" and (s.detector.kind != "missed" or s.detector.missed.k != 1):
        out.append(
            Problem(
                "detector",
                "websockets' keepalive is a missed detector with k 1 and ack_timeout = ping_timeout "
                "(set detector.kind: missed, detector.missed.k: 1, detector.missed.ack_timeout)",
                f"kind {s.detector.kind}",
            )
        )
    cls = NetnsBackend if backend == "netns" else ProxyBackend
    out += [Problem("--backend", msg, backend) for msg in cls.refusals(s)]
    return out


def _with_delay(s, one_way: float):
    from simlab.scenario.distributions import Constant

    r = dataclasses.replace
    link = s.link
    link = r(
        link, up=r(link.up, delay=Constant(one_way)), down=r(link.down, delay=Constant(one_way))
    )
    return r(s, link=link)


# Set-up before a run's clock starts (measured on 2 cores: namespaces, veths, nftables and
# the RTT probe; the proxy's listener), plus the slot addresses; teardown is in it too.
SETUP_S = {"netns": 1.5, "proxy": 0.5}
SETUP_PER_CONNECTION_S = 0.003


def expected_wall(harness_scn, model_scn, backend: str) -> tuple[float, str]:
    """Wall seconds a cross-check should take, and the sentence that says it before the run.

    The real run lasts its scaled horizon (plus one heartbeat interval: the slots start
    spread over one), on top of the set-up; the model's run is estimated from its
    engine's calibrated speed.
    """
    from simlab.engines.registry import estimate, format_wall

    run_s = harness_scn.horizon + harness_scn.heartbeat.interval
    setup = SETUP_S.get(backend, 1.0) + SETUP_PER_CONNECTION_S * harness_scn.connections
    model = estimate(model_scn, "simpy")
    total = run_s + setup + model
    return total, (
        f"expected wall time: about {format_wall(total)} (real sockets for the scaled horizon, "
        f"{format_wall(run_s)}; set-up about {format_wall(setup)}; the model about "
        f"{format_wall(model)})"
    )


def choose_scale(scenario, backend: str, time_scale: float | None) -> float:
    """``time_scale`` if it keeps every ordering that decides the answer, the automatic
    scale if it is None (:mod:`simlab.harness.scale`); a ScenarioError otherwise."""
    from simlab.errors import Problem, ScenarioError
    from simlab.harness.scale import auto_scale, scale_problems

    if time_scale is None:
        x = auto_scale(scenario, backend)
        if x is None:
            raise ScenarioError(
                [
                    Problem(
                        "--time-scale",
                        "no time scale keeps the orderings of the heartbeat interval, the "
                        "detector's timeout and the NAT timeout with the kernel's TCP constants",
                    )
                ],
                scenario.name,
            )
        return x
    problems = scale_problems(scenario, time_scale, backend)
    if problems:
        raise ScenarioError([Problem("--time-scale", m) for m in problems], scenario.name)
    return time_scale


def _expected_breaks(scaled) -> tuple[str, ...]:
    """The break causes the scenario can produce: their rows are shown even with no events
    (as "no evidence"), never silently dropped."""
    return tuple(
        cause
        for cause, present in (
            ("nat", scaled.nat.idle_timeout is not None),
            ("crash", scaled.peer.crash is not None),
        )
        if present
    )


def _whole_second_nat(scaled, notes: list[str]):
    """``scaled`` with its NAT idle timeout as the kernel's conntrack keeps it (whole
    seconds), on both sides of the comparison; a note in ``notes`` when it was rounded."""
    from simlab.harness.netns import NetnsBackend
    from simlab.scenario.distributions import Constant

    if scaled.nat.idle_timeout is None:
        return scaled
    seconds = NetnsBackend.nat_seconds(scaled)
    if seconds != scaled.nat.idle_timeout.value:
        notes.append(
            f"NAT idle timeout {scaled.nat.idle_timeout.value:g} s (scaled) rounded to the "
            f"kernel's whole seconds: {seconds} s on both sides"
        )
    r = dataclasses.replace
    return r(scaled, nat=r(scaled.nat, idle_timeout=Constant(float(seconds))))


def run_crosscheck(
    scenario,
    *,
    backend: str = "proxy",
    time_scale: float | None = None,
    connections: int | None = None,
    model_connections: int | None = None,
    policy: str = "detector",
    alpha: float = ALPHA,
    model_bug=None,
    announce=None,
    progress=None,
) -> CrossCheck:
    """Run ``scenario`` scaled by ``time_scale`` on the harness and on the model; compare.

    ``time_scale`` None: the automatic scale, which keeps every ordering that decides
    the answer; a given one that breaks one is refused (ScenarioError). ``connections``
    None: the scenario's own. ``announce(text)`` hears the expected wall time before
    the run; ``progress(now, total)`` the real run's clock as it goes (seconds).
    ``model_bug`` (tests only) transforms the model's scenario before it runs, to
    prove the comparison notices when the model is wrong.
    """
    from simlab.errors import ScenarioError
    from simlab.harness.netns import NetnsBackend
    from simlab.harness.proxy import ProxyBackend
    from simlab.harness.run import run_harness
    from simlab.harness.scale import scale_scenario

    problems = harness_refusals(scenario, backend, policy)
    if problems:
        raise ScenarioError(problems, scenario.name)
    chosen = "given" if time_scale is not None else "automatic"
    time_scale = choose_scale(scenario, backend, time_scale)
    scaled = scale_scenario(scenario, time_scale)
    notes = []
    if chosen == "automatic":
        notes.append(
            f"time scale {time_scale:.6g}, chosen to keep the orderings of the heartbeat "
            "interval, the detector's timeout and the NAT timeout with the kernel's "
            "whole-second conntrack and unscaled TCP constants"
        )
    if backend == "netns":
        scaled = _whole_second_nat(scaled, notes)
    if connections is None:
        connections = scenario.connections
    harness_scn = dataclasses.replace(scaled, connections=connections)
    loss = scaled.link.up.loss.mean > 0 or scaled.link.down.loss.mean > 0
    n_model = model_connections or max(200, 20 * connections)
    if announce is not None:
        planned = dataclasses.replace(scaled, connections=n_model)
        announce(expected_wall(harness_scn, planned, backend)[1])
    impl = NetnsBackend() if backend == "netns" else ProxyBackend()
    harness = run_harness(harness_scn, impl, policy, progress=progress)
    model_scn = scaled
    if backend == "netns":
        rtt = harness.info["rtt_s"]
        model_scn = _with_delay(model_scn, rtt / 2)
        notes.append(
            f"model delay: half the measured RTT, {rtt * 1e6:.0f} us each way (no netem here)"
        )
    if model_bug is not None:
        model_scn = model_bug(model_scn)
    model_scn, model = model_side(
        model_scn, connections=n_model, trace=loss, progress=progress is not None
    )
    expect = _expected_breaks(scaled)
    check = compare(
        model,
        harness,
        loss=loss,
        alpha=alpha,
        name=scenario.name,
        resolution=harness.info["resolution_s"],
        expect=expect,
    )
    check.ran = describe_sides(
        harness_scn,
        model_scn,
        {
            "backend": backend,
            "policy": policy,
            "time_scale": time_scale,
            "time_scale_chosen": chosen,
            "kernel_tcp": "min RTO 200 ms, max RTO 120 s, 15 retries (not scaled)",
            "resolution_s": harness.info["resolution_s"],
            "rtt_s": harness.info.get("rtt_s"),
            "harness_wall_s": harness.summary["wall_s"],
            "model_wall_s": model.summary["wall_s"],
            "notes": notes,
        },
    )
    return check


# -- the user's own programs (--server-cmd / --client-cmd) ------------------------------

# The settings the model takes from the scenario that must describe what the programs do:
# each must be stated (in the file, a --preset or --set), not left to simlab's defaults.
STATED = ("heartbeat.interval", "heartbeat.initiator", "detector.kind", "detector.side")


def model_settings(s) -> dict:
    """The heartbeat and detector settings the model runs (scaled), for the output."""
    det = s.detector
    out = {
        "heartbeat.interval": s.heartbeat.interval,
        "heartbeat.initiator": s.heartbeat.initiator,
        "heartbeat.jitter": s.heartbeat.jitter,
        "detector.kind": det.kind,
        "detector.side": s.detector_side,
        "detector.liveness": det.liveness,
    }
    if det.kind == "timeout":
        out["detector.timeout"] = det.timeout
    elif det.kind == "missed":
        out["detector.missed.k"] = det.missed.k
        out["detector.missed.ack_timeout"] = s.ack_timeout
    out["reconnect.delay"] = s.reconnect.delay
    return out


def external_scale(scenario, time_scale: float | None) -> float:
    """The scale of a check of the user's programs: 1 unless given (the programs' own
    settings are the user's; they must match the scaled scenario), kept orderings only."""
    from simlab.errors import Problem, ScenarioError
    from simlab.harness.scale import scale_problems

    x = 1.0 if time_scale is None else time_scale
    problems = scale_problems(scenario, x, "netns")
    if problems:
        raise ScenarioError([Problem("--time-scale", m) for m in problems], scenario.name)
    return x


def external_model(harness, scaled, *, connections: int, model_bug=None, progress=False):
    """The model's side of a check of the user's programs: the scaled scenario with the RTT
    the wire measured, ``connections`` replications (``model_bug``: tests only)."""
    model_scn = _with_delay(scaled, harness.info["rtt_s"] / 2)
    if model_bug is not None:
        model_scn = model_bug(model_scn)
    loss = scaled.link.up.loss.mean > 0 or scaled.link.down.loss.mean > 0
    return model_side(model_scn, connections=connections, trace=loss, progress=progress)


def compare_external(harness, scaled, model_scn, model, *, name: str, alpha: float = ALPHA,
                     extra: dict | None = None) -> CrossCheck:  # fmt: skip
    """Today's comparisons between the model and the user's programs as the wire saw them."""
    loss = scaled.link.up.loss.mean > 0 or scaled.link.down.loss.mean > 0
    expect = _expected_breaks(scaled)
    check = compare(
        model, harness, loss=loss, alpha=alpha, name=name,
        resolution=harness.info["resolution_s"], expect=expect,
    )  # fmt: skip
    check.ran = describe_sides(
        dataclasses.replace(
            scaled, connections=harness.summary.get("connections", scaled.connections)
        ),
        model_scn,
        {
            "backend": "netns (your programs, observed from the wire)",
            "policy": "external",
            "model_settings": model_settings(model_scn),
            "resolution_s": harness.info["resolution_s"],
            "rtt_s": harness.info.get("rtt_s"),
            "harness_wall_s": harness.summary["wall_s"],
            "model_wall_s": model.summary["wall_s"],
            **(extra or {}),
        },
    )
    return check


def run_external_crosscheck(
    scenario,
    server_cmd: list[str],
    client_cmd: list[str],
    *,
    time_scale: float | None = None,
    connections: int | None = None,
    model_connections: int | None = None,
    alpha: float = ALPHA,
    model_bug=None,
    announce=None,
    progress=None,
    keep: dict | None = None,
) -> CrossCheck:
    """The user's server and clients (argument lists with ``{host} {port}`` / ``{url}``) in
    the netns lab on the scaled ``scenario``, observed from the wire, against the model.

    ``time_scale`` None is 1: the programs run with their own settings, which must be the
    scaled scenario's. ``keep`` (a dict) receives the harness result and scaled scenario,
    so a test can compare the same real run with another model.
    """
    from simlab.errors import ScenarioError
    from simlab.harness.external import refusals, run_external
    from simlab.harness.scale import scale_scenario

    problems = refusals(scenario)
    if problems:
        raise ScenarioError(problems, scenario.name)
    time_scale = external_scale(scenario, time_scale)
    scaled = scale_scenario(scenario, time_scale)
    notes = []
    scaled = _whole_second_nat(scaled, notes)
    if connections is None:
        connections = scenario.connections
    harness_scn = dataclasses.replace(scaled, connections=connections)
    n_model = model_connections or max(200, 20 * connections)
    settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in model_settings(scaled).items())  # fmt: skip
    if announce is not None:
        planned = dataclasses.replace(scaled, connections=n_model)
        announce(expected_wall(harness_scn, planned, "netns")[1])
        announce(f"the model's settings (your programs must match them): {settings}")
    harness = run_external(harness_scn, server_cmd, client_cmd, progress=progress)
    notes += [f"wire: {n}" for n in harness.info.get("notes", [])]
    model_scn, model = external_model(
        harness, scaled, connections=n_model, model_bug=model_bug, progress=progress is not None
    )
    notes.append(
        f"model delay: half the RTT measured on the wire, {harness.info['rtt_s'] * 1e6:.0f} us each way"
    )
    notes.append(f"model settings: {settings}")
    if keep is not None:
        keep.update(harness=harness, scaled=scaled, n_model=n_model)
    return compare_external(
        harness, harness_scn, model_scn, model, name=scenario.name, alpha=alpha,
        extra={
            "time_scale": time_scale,
            "server_cmd": server_cmd,
            "client_cmd": client_cmd,
            "kernel_tcp": "min RTO 200 ms, max RTO 120 s, 15 retries (not scaled)",
            "notes": notes,
        },
    )  # fmt: skip


# -- every shipped adapter pair with a server that pings (``--libraries``) ---------------

# (library, server adapter, client adapter, the settings the model runs: a simlab preset,
# or the library's documented defaults where simlab has none)
LIBRARIES = [
    ("gorilla/websocket + ws client", "gorilla", "ws", {"preset": "gorilla-example"}),
    (
        "ws + ws",
        "ws",
        "ws",
        {  # the ws README's heartbeat: 30 s; terminate at the next tick without a pong
            "keys": {
                "heartbeat.style": "pingpong",
                "heartbeat.initiator": "server",
                "heartbeat.interval": 30.0,
                "detector.kind": "missed",
                "detector.missed": {"k": 1, "ack_timeout": 30.0},
                "detector.side": "server",
            }
        },
    ),
    ("socket.io + socket.io-client", "socketio", "socketio", {"preset": "socketio-default"}),
    ("websockets + websockets", "websockets", "websockets", {"preset": "websockets-default"}),
]
# (case, the scaled heartbeat interval it runs at (s), its keys in units of that interval)
LIBRARY_CASES = [
    ("interval below the NAT", 0.5, {"nat": {"idle_timeout": 4.0, "on_expiry": "drop"}}),
    ("interval above the NAT", 3.0, {"nat": {"idle_timeout": 1 / 3, "on_expiry": "drop"}}),
    ("silent client crash", 0.5, {"peer": {"crash": {"mtbf": 6.0}}}),
    # 2.5 s: a retransmitted ping (the kernel's unscaled 200 ms minimum RTO) must still fit
    # between gorilla's pingPeriod and pongWait (54 s and 60 s: 0.28 s apart at this scale)
    ("5% loss", 2.5, {"link": {"loss": {"model": "bernoulli", "p": 0.05}}}),
]
LIBRARY_WALL_S = 20.0  # each case's scaled horizon


def library_case(settings: dict, interval: float, keys: dict, *, connections: int = 6):
    """(scenario, time scale) of one case: the library's settings, ``keys`` in intervals."""
    from simlab.scenario.presets import layered, load_layered

    base = dict(layered(settings.get("preset"))) | settings.get("keys", {})
    native = float(base["heartbeat.interval"])
    x = interval / native

    def unscale(v):
        if isinstance(v, dict):
            return {k: unscale(w) for k, w in v.items()}
        return v * native if isinstance(v, float) and not isinstance(v, bool) else v

    case = {k: (unscale(v) if k != "link" else v) for k, v in keys.items()}
    if "nat" in case:  # whole scaled seconds on the kernel's conntrack
        case["nat"]["idle_timeout"] = max(1, round(keys["nat"]["idle_timeout"] * interval)) / x
    raw = {
        "name": "library",
        "horizon": LIBRARY_WALL_S / x,
        "connections": connections,
        "seed": 17,
        "reconnect": {"delay": 0.2 / x},
        "link": {"delay": {"dist": "constant", "value": 0.0}, **case.pop("link", {})},
        **case,
    }
    scenario, _ = load_layered(raw, overrides=base)
    return scenario, x


def run_libraries(*, connections: int = 6, only=None, progress=None) -> list[tuple]:
    """Each library pair through :data:`LIBRARY_CASES`: (library, case, CrossCheck or why not)."""
    from simlab.errors import ScenarioError
    from simlab.harness import adapters

    out = []
    for name, server, client, settings in LIBRARIES:
        if only and server not in only:
            continue
        for case, interval, keys in LIBRARY_CASES:
            scenario, x = library_case(settings, interval, copy_keys(keys), connections=connections)
            scaled_interval = scenario.heartbeat.interval * x
            timeout = (scenario.ack_timeout if scenario.detector.kind == "missed"
                       else scenario.detector.timeout) * x  # fmt: skip
            try:
                # each client as the library ships it: a websockets client pings too, as
                # the preset's initiator (both) says
                argv_s = adapters.command(server, "server", scaled_interval, timeout)
                argv_c = adapters.command(client, "client", scaled_interval, timeout)
                check = run_external_crosscheck(scenario, argv_s, argv_c, time_scale=x)
            except ScenarioError as exc:
                out.append((name, case, f"not run: {exc}"))
                continue
            check.name = f"{name}: {case}"
            if progress:
                progress(format_check(check))
            out.append((name, case, check))
    return out


def copy_keys(keys: dict) -> dict:
    import copy

    return copy.deepcopy(keys)


def format_libraries(results) -> str:
    """Model vs real per library and case: one line each, the tested metrics' verdicts."""
    lines = [f"{'library':32} {'case':24} {'verdict':12} summary"]
    for name, case, check in results:
        if isinstance(check, str):
            lines.append(f"{name:32} {case:24} {'-':12} {check}")
        else:
            lines.append(f"{name:32} {case:24} {check.verdict:12} {check.summary()}")
    return "\n".join(lines)


def format_check(check: CrossCheck) -> str:
    """The side-by-side table: metric, model, harness, test, p, verdict."""

    def cell(v, lo, hi):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{v:.4g} [{lo:.4g}, {hi:.4g}]"

    lines = [
        f"cross-check {check.name}: {check.ran.get('backend')} backend, policy {check.ran.get('policy')}, "
        f"time scale {check.ran.get('time_scale')}, clock resolution {check.ran.get('resolution_s', 0) * 1000:.1f} ms",
    ]
    lines += [f"  note: {n}" for n in check.ran.get("notes", [])]
    head = f"  {'metric':32} {'model (95% CI)':34} {'harness (95% CI)':34} {'p':>9}  verdict"
    lines.append(head)
    for row in check.rows():
        p = "-" if row["p_value"] is None else f"{row['p_value']:.3g}"
        lines.append(
            f"  {row['metric']:32} {cell(row['model'], row['model_low'], row['model_high']):34} "
            f"{cell(row['harness'], row['harness_low'], row['harness_high']):34} {p:>9}  {row['verdict']}"
        )
    lines.append(
        f"  verdict: {check.verdict}: {check.summary()} (each test at alpha {check.alpha:g} / "
        f"{len(check.tested)} = {check.threshold:.3g})"
    )
    return "\n".join(lines)


# -- the built-in panel ------------------------------------------------------------------

_BASE = {
    "horizon": "600s",
    "seed": 11,
    "reconnect": {"delay": "2s"},
    "link": {"delay": {"dist": "constant", "value": "0s"}},
}


def _item(name, policy="detector", needs_loss=False, **sections):
    return {
        "name": name,
        "policy": policy,
        "needs_netns": needs_loss,
        "scenario": {**_BASE, "name": name, **sections},
    }


# Unscaled settings; the panel runs each at the automatic scale from PANEL_SCALE up
# (600 s -> 24-30 s of wall time each): the smallest that keeps its orderings.
PANEL = [
    _item(
        "nat-below-interval",
        heartbeat={"interval": "20s"},
        detector={"kind": "timeout", "timeout": "50s"},
        nat={"idle_timeout": "60s", "on_expiry": "drop"},
    ),
    _item(
        "nat-above-interval-drop",
        heartbeat={"interval": "90s"},
        detector={"kind": "timeout", "timeout": "120s"},
        nat={"idle_timeout": "60s", "on_expiry": "drop"},
    ),
    _item(
        "nat-above-interval-reset",
        heartbeat={"interval": "90s"},
        detector={"kind": "timeout", "timeout": "120s"},
        nat={"idle_timeout": "60s", "on_expiry": "reset"},
    ),
    _item(
        "crash-detection",
        heartbeat={"interval": "10s"},
        detector={"kind": "timeout", "timeout": "25s"},
        peer={"crash": {"mtbf": "120s"}},
    ),
    _item(
        "loss-over-tcp",
        needs_loss=True,
        heartbeat={"interval": "5s"},
        detector={"kind": "timeout", "timeout": "30s"},
        link={
            "delay": {"dist": "constant", "value": "0s"},
            "loss": {"model": "bernoulli", "p": 0.05},
        },
    ),
    _item(
        "outage-shorter-than-timeout",
        heartbeat={"interval": "5s"},
        detector={"kind": "timeout", "timeout": "20s"},
        link={
            "delay": {"dist": "constant", "value": "0s"},
            "outages": {"mtbf": "60s", "duration": {"dist": "constant", "value": "4s"}},
        },
    ),
    _item(
        "outage-longer-than-timeout",
        heartbeat={"interval": "5s"},
        detector={"kind": "timeout", "timeout": "20s"},
        link={
            "delay": {"dist": "constant", "value": "0s"},
            "outages": {"mtbf": "60s", "duration": {"dist": "constant", "value": "40s"}},
        },
    ),
    _item(
        "stalled-peer",
        heartbeat={"interval": "5s"},
        detector={"kind": "timeout", "timeout": "15s"},
        peer={
            "stall": {
                "mtbf": "40s",
                "duration": {"dist": "lognormal", "median": "8s", "sigma": 0.7},
            }
        },
    ),
    _item(
        "websockets-native",
        policy="websockets-native",
        heartbeat={"interval": "20s"},
        detector={"kind": "missed", "missed": {"k": 1, "ack_timeout": "20s"}},
        peer={"crash": {"mtbf": "120s"}},
    ),
]
# Adaptive policies (issue 8): nat-probe finds the NAT's timeout, a hidden tab's
# throttled timers cause the ping-timeout disconnects users report.
PANEL += [
    _item(
        "nat-probe-finds-the-nat",
        horizon="1800s",
        heartbeat={
            "interval": "30s",
            "initiator": "server",
            "policy": {"kind": "nat-probe", "growth": 2, "precision": "10s", "margin": 0.1},
        },
        detector={"kind": "timeout", "timeout": "60s"},
        nat={"idle_timeout": "100s", "on_expiry": "drop"},
    ),
    _item(
        "hidden-tab-throttled-client",
        heartbeat={
            "interval": "25s",
            "initiator": "client",
            "policy": {
                "kind": "throttled-client",
                "throttle": {
                    "hidden_at": "60s",
                    "intensive_after": "120s",
                    "intensive_align": "60s",
                },
            },
        },
        detector={"kind": "timeout", "timeout": "45s", "side": "server"},
    ),
]
PANEL_SCALE = 0.04


def panel_scale(scenario, backend: str) -> float:
    """The scale a panel item runs at: the automatic one from :data:`PANEL_SCALE` up."""
    from simlab.harness.scale import auto_scale

    return auto_scale(scenario, backend, prefer=PANEL_SCALE)


def run_panel(backend: str, *, connections: int = 10, only: list[str] | None = None, progress=None):
    """The built-in panel on ``backend``: (name, CrossCheck or the reason it was skipped)."""
    from simlab.scenario.reader import load

    out = []
    for item in PANEL:
        if only and item["name"] not in only:
            continue
        if item["needs_netns"] and backend != "netns":
            out.append((item["name"], "skipped: packet loss needs the netns backend"))
            continue
        scenario, _ = load(item["scenario"])
        check = run_crosscheck(
            scenario,
            backend=backend,
            time_scale=panel_scale(scenario, backend),
            connections=connections,
            policy=item["policy"],
        )
        if progress:
            progress(format_check(check))
        out.append((item["name"], check))
    return out


# -- for notebooks ----------------------------------------------------------------------


def panel_item(name: str, overrides: Mapping | None = None):
    """(scenario, harness policy) of the cross-check panel's item ``name``
    (:data:`PANEL`), with dotted ``overrides`` (a shorter horizon)."""
    from simlab.scenario.reader import load

    names = [i["name"] for i in PANEL]
    if name not in names:
        raise ValueError(f"no panel item {name!r}: one of {', '.join(names)}")
    item = PANEL[names.index(name)]
    return load(item["scenario"], dict(overrides or {}))[0], item["policy"]


def outside_event_loop(fn, /, *args, **kwargs):
    """``fn(*args, **kwargs)``, in a thread of its own when this thread runs an asyncio loop.

    The real-socket harness drives its sockets with ``asyncio.run``, which refuses to start
    inside a running loop, and a Jupyter kernel runs one: a notebook calls
    ``crosscheck.outside_event_loop(crosscheck.run_crosscheck, scenario, ...)``.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simlab-harness") as pool:
        return pool.submit(fn, *args, **kwargs).result()
