"""Small computations behind the notebooks: a handful of runs as one table, middlebox
survival, the TCP retransmission ladder, and detectors calibrated to one detection latency.

- :func:`run_points`: one scenario under several sets of dotted overrides, through one
  engine, as a table shaped like a sweep's summary (``<metric>_mean`` with 95 % intervals
  where they exist), which :mod:`simlab.lab.plots` and :mod:`simlab.lab.notebook_plots` draw;
- :func:`survival_table`, :func:`expiry_curves`, :func:`longest_safe_interval`: which
  heartbeat intervals keep which middleboxes of ``data/middleboxes.csv`` open
  (:func:`simlab.engines.analytic.theory.nat_survival`);
- :func:`ladder`: when a TCP segment that is lost k times in a row finally arrives, and
  how many losses it takes to miss a detector's deadline;
- :func:`calibrate` and :func:`compare_detectors`: each detector's knob set so that its
  mean detection latency after a silent crash is the same (from the detectors' own state
  machines, :func:`simlab.engines.analytic.detection.silent_detection`), then false positives and mistake
  durations side by side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from simlab.engines import registry as engines
from simlab.engines.analytic import theory
from simlab.engines.analytic.detection import silent_detection
from simlab.engines.network import backoff
from simlab.scenario import fielddata
from simlab.scenario.reader import load
from simlab.sweeps import data as sweepdata
from simlab.units import RATE_UNITS

Z95 = 1.959963984540054


# -- a few runs as one table ------------------------------------------------------------


def _points(points) -> list[tuple[str, dict]]:
    if isinstance(points, Mapping):
        return [(str(k), dict(v)) for k, v in points.items()]
    out = []
    for i, p in enumerate(points):
        p = dict(p)
        out.append((str(p.pop("label", i)), p))
    return out


def run_points(
    base: str | Path | dict,
    points: Mapping[str, Mapping] | Iterable[Mapping],
    *,
    engine: str = "fast",
) -> pd.DataFrame:
    """Run ``base`` once per point (a mapping of dotted overrides) through ``engine``.

    ``points``: a mapping label -> overrides, or a list of overrides (an optional
    ``label`` key names the row). One row per point: ``label``, the overridden keys (as
    given), ``engine`` (the one that ran), ``replications`` (1) and every figure as
    ``<key>_mean``; with 95 % intervals ``<key>_ci_low``/``<key>_ci_high`` for the
    false-positive rate (exact), the derived ``false_disconnects_per_conn_hour`` and
    ``nat_breaks_per_conn_hour`` (exact, from the counts) and, on the fast engine, every
    figure with a standard error (mean +- 1.96 SE).
    """
    rows = []
    for label, overrides in _points(points):
        scenario, _ = load(base, overrides)
        out = engines.run(scenario, engine)
        row = {"label": label, **overrides, "engine": out.get("engine", engine)}
        row["replications"] = 1
        for key, value in out.items():
            if key.endswith(("_ci_low", "_ci_high", "_se")) or key in ("engine", "scenario"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | type(None)):
                continue
            row[f"{key}_mean"] = math.nan if value is None else float(value)
            se = out.get(f"{key}_se")
            if se is not None and value is not None:
                row[f"{key}_ci_low"] = float(value) - Z95 * float(se)
                row[f"{key}_ci_high"] = float(value) + Z95 * float(se)
        for side in ("low", "high"):
            value = out.get(f"fp_per_conn_hour_ci_{side}")
            if value is not None:
                row[f"fp_per_conn_hour_ci_{side}"] = float(value)
        rows.append(row)
    return sweepdata.add_derived(pd.DataFrame(rows))


def per(frame: pd.DataFrame, key: str, unit: str = "day") -> pd.DataFrame:
    """A rate per connection-hour (``key``, its ``_mean`` and interval) as columns per
    connection-``unit``: ``<name> per conn-<unit>``, ``low``, ``high``."""
    k = RATE_UNITS[unit]
    name = key.removesuffix("_per_conn_hour").replace("_", " ")
    mean = frame.get(f"{key}_mean", frame.get(key))
    out = pd.DataFrame({f"{name} per conn-{unit}": mean * k}, index=frame.index)
    if f"{key}_ci_low" in frame:
        out["95 % low"] = frame[f"{key}_ci_low"] * k
        out["95 % high"] = frame[f"{key}_ci_high"] * k
    return out


# -- middleboxes --------------------------------------------------------------------------


def longest_safe_interval(idle: float, jitter: float = 0.0, margin: float = 1.0) -> float:
    """The longest mean interval whose longest gap, interval x (1 + jitter), stays ``margin``
    seconds below the idle timeout ``idle`` (the chooser's rule)."""
    return max(0.0, (idle - margin) / (1 + jitter))


def survival_table(
    intervals: Iterable[float],
    middleboxes: pd.DataFrame | None = None,
    *,
    p_loss: float = 0.0,
    jitter: float = 0.0,
    rate_unit: str = "day",
) -> pd.DataFrame:
    """Idle expiries per connection-``rate_unit`` for each middlebox (rows) and heartbeat
    interval (columns, s): 0 where the heartbeats keep it open.

    ``middleboxes``: ``simlab.scenario.fielddata.middleboxes()`` by default; rows whose timeout is a
    lifetime cap (nothing renews it) are left out. Each heartbeat refreshes the mapping
    unless lost (``p_loss``, before the middlebox: datagrams; over TCP a lost heartbeat is
    retransmitted well within any timeout, so 0). The row's ``longest safe interval (s)``
    keeps the longest gap 1 s below the timeout.
    """
    boxes = fielddata.middleboxes() if middleboxes is None else middleboxes
    if "timeout_kind" in boxes:
        boxes = boxes[boxes["timeout_kind"].astype(str) != "lifetime"]
    intervals = [float(i) for i in intervals]
    k = RATE_UNITS[rate_unit]
    rows = []
    for box in boxes.itertuples(index=False):
        idle = float(box.idle_timeout_s)
        row = {
            "middlebox": box.name,
            "protocol": getattr(box, "protocol", ""),
            "idle timeout (s)": idle,
            "longest safe interval (s)": longest_safe_interval(idle, jitter),
        }
        for t in intervals:
            row[t] = theory.nat_survival(t, idle, p_loss, jitter).expiries_per_hour * k
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("middlebox")
    return frame.sort_values("idle timeout (s)", kind="stable")


def expiry_curves(
    idle: float,
    intervals: Iterable[float],
    jitters: Iterable[float] = (0.0,),
    p_loss: float = 0.0,
    rate_unit: str = "day",
) -> pd.DataFrame:
    """Tidy rows (interval_s, jitter, expiries per connection-``rate_unit``, mean time to
    expiry in s) behind a middlebox with idle timeout ``idle`` (theory)."""
    rows = []
    for j in jitters:
        for t in intervals:
            s = theory.nat_survival(float(t), idle, p_loss, float(j))
            rows.append(
                (
                    float(t),
                    float(j),
                    s.expiries_per_hour * RATE_UNITS[rate_unit],
                    s.mean_time_to_expiry,
                )
            )
    return pd.DataFrame(
        rows,
        columns=["interval_s", "jitter", f"expiries_per_conn_{rate_unit}", "mean_time_to_expiry_s"],
    )


# -- the TCP retransmission ladder --------------------------------------------------------


def ladder(scenario, rtt: float | None = None, rungs: int | None = None) -> pd.DataFrame:
    """When a segment lost k times in a row arrives, on a steady path (one row per k).

    On a path whose round trip ``rtt`` (default: the mean delays up and down) does not
    vary, the RFC 6298 variance decays to nothing and Linux's RTO settles at
    ``rtt + min_rto``; each retransmission waits twice as long as the last, up to
    ``max_rto``. Columns: ``losses`` (k), ``wait_s`` (the RTO before retransmission k),
    ``extra_delay_s`` (the k waits added up) and ``round_trip_s`` (a ping's round trip when
    one of its two segments was lost k times: ``rtt + extra``). The last row (k =
    ``max_retries`` + 1, by default) is when the sender gives up.
    """
    link = scenario.link
    tcp = link.tcp
    if rtt is None:
        rtt = float(link.up.delay.mean + link.down.delay.mean)
    rto = min(max(rtt + tcp.min_rto, tcp.min_rto), tcp.max_rto)
    n = tcp.max_retries + 1 if rungs is None else rungs
    rows, extra = [(0, 0.0, 0.0, rtt)], 0.0
    for k in range(1, n + 1):
        wait = backoff(rto, k - 1, tcp)
        extra += wait
        rows.append((k, wait, extra, rtt + extra))
    return pd.DataFrame(rows, columns=["losses", "wait_s", "extra_delay_s", "round_trip_s"])


def losses_to_miss(scenario, rtt: float | None = None) -> tuple[int, float]:
    """(k, slack): how many losses in a row of one segment delay a pong past the timeout
    detector's slack (``detector.timeout`` - ``heartbeat.interval``: how late a pong may be
    before the read deadline passes), and that slack in seconds. k = max_retries + 2 when
    even the whole ladder fits (TCP gives up first)."""
    slack = scenario.detector.timeout - scenario.heartbeat.interval
    steps = ladder(scenario, rtt)
    late = steps[steps.extra_delay_s + steps.round_trip_s.iloc[0] > slack + 1e-12]
    k = int(late.losses.iloc[0]) if len(late) else int(steps.losses.iloc[-1]) + 1
    return k, float(slack)


# -- detectors at one detection latency -----------------------------------------------------

KNOBS = {
    "timeout": "detector.timeout",
    "missed": "detector.missed.ack_timeout",
    "phi": "detector.phi.acceptable_pause",
    "nfd": "detector.nfd.delta",
    "adaptive": "detector.adaptive.alpha",
}
DETECTORS = tuple(KNOBS)


def _rtt(scenario) -> float:
    return float(scenario.link.up.delay.mean + scenario.link.down.delay.mean)


def predicted_latency(base: str | Path | dict, overrides: Mapping) -> float:
    """The mean detection latency after a silent crash at a random moment on a steady,
    loss-free path with the mean round trip, from the detector's own state machine."""
    scenario, _ = load(base, dict(overrides))
    return silent_detection(scenario, _rtt(scenario)).mean


def _bisect(f, lo: float, hi: float, target: float, tol: float) -> float:
    """The x in [lo, hi] where the increasing ``f`` crosses ``target`` (within ``tol`` in x)."""
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _range(kind: str, interval: float, rtt: float, target: float) -> tuple[float, float]:
    """The knob's range, as the continuous value u of :func:`knob`."""
    low = {
        "timeout": interval * (1 + 1e-6),
        "missed": max(1.5 * rtt, 1e-3),
        "phi": 0.0,
    }.get(kind, 1e-3)
    return low, max(4 * target, 2 * interval) + interval


def knob(kind: str, u: float, interval: float, rtt: float = 0.0) -> dict:
    """Dotted overrides for detector ``kind`` with knob value ``u`` (s): the read deadline,
    the acceptable pause, delta or alpha; for ``missed``, u = (k - 1) x interval + the pong
    deadline (k missed pings, each given ``ack_timeout`` <= interval, at least 1.5 round
    trips), so that one number moves the detection latency continuously."""
    if kind not in KNOBS:
        raise ValueError(f"kind must be one of {', '.join(KNOBS)}, got {kind!r}")
    out: dict = {"detector.kind": kind}
    if kind == "missed":
        k = max(1, math.ceil(u / interval - 1e-9))
        ack = min(interval, max(u - (k - 1) * interval, 1.5 * rtt, 1e-3))
        return out | {"detector.missed.k": k, KNOBS[kind]: round(ack, 6)}
    return out | {KNOBS[kind]: round(u, 6)}


def _u(overrides: Mapping, interval: float) -> float:
    kind = overrides["detector.kind"]
    value = float(overrides[KNOBS[kind]])
    if kind == "missed":
        return (overrides["detector.missed.k"] - 1) * interval + value
    return value


def calibrate(
    base: str | Path | dict,
    kind: str,
    target: float,
    *,
    measured: bool = False,
    engine: str = "simpy",
    iterations: int = 6,
    tol: float | None = None,
) -> tuple[dict, pd.DataFrame | None]:
    """Set detector ``kind`` so that its mean detection latency after a crash is ``target`` s.

    First on a steady path (:func:`predicted_latency`, by bisection on the knob of
    :func:`knob`: the read deadline, k and the pong deadline, Akka's acceptable heartbeat
    pause at threshold 8, NFD-S's delta, NFD-E's alpha). With ``measured``, then on the
    scenario's own path: run it (``engine``) and move the knob by the difference between
    the target and the simulated mean detection latency until they are within ``tol``
    (default: 2 % of the target) or after ``iterations`` runs: a detector that learns
    the path's variance (phi) declares later on a noisy path than on a steady one.

    Returns (overrides, the last run's row from :func:`run_points`, or None). Raises
    ValueError when the target is out of reach.
    """
    scenario, _ = load(base)
    interval, rtt = scenario.heartbeat.interval, _rtt(scenario)
    low, high = _range(kind, interval, rtt, target)

    def steady(u: float) -> float:
        return predicted_latency(base, knob(kind, u, interval, rtt))

    if steady(low) > target or steady(high) < target:
        raise ValueError(
            f"{kind}: a mean detection latency of {target:g} s is out of reach "
            f"({steady(low):.3g} to {steady(high):.3g} s)"
        )
    u = _bisect(steady, low, high, target, 1e-4 * target)
    overrides, row = knob(kind, u, interval, rtt), None
    if not measured:
        return overrides, None
    tol = 0.02 * target if tol is None else tol
    for _ in range(iterations):
        row = run_points(base, {kind: overrides}, engine=engine)
        latency = float(row["detection_latency_mean_s_mean"].iloc[0])
        if not math.isfinite(latency):
            raise ValueError(f"{kind}: the run detected no crash: give the base peer.crash")
        if abs(latency - target) <= tol:
            break
        u = min(max(low, _u(overrides, interval) + target - latency), high)
        overrides = knob(kind, u, interval, rtt)
    else:
        row = run_points(base, {kind: overrides}, engine=engine)
    return overrides, row


def knob_text(overrides: Mapping) -> str:
    """The calibrated setting in words (``read deadline 35 s``, ``k = 3, pong deadline 4.2 s``)."""
    kind = overrides["detector.kind"]
    value = overrides[KNOBS[kind]]
    if kind == "missed":
        return f"k = {overrides['detector.missed.k']}, pong deadline {value:.3g} s"
    name = {
        "timeout": "read deadline",
        "phi": "acceptable pause",
        "nfd": "delta",
        "adaptive": "alpha",
    }[kind]
    return f"{name} {value:.3g} s"


def compare_detectors(
    base: str | Path | dict,
    target: float,
    kinds: Iterable[str] = DETECTORS,
    *,
    engine: str = "simpy",
    measured: bool = True,
    iterations: int = 6,
) -> pd.DataFrame:
    """Each detector calibrated to the mean detection latency ``target`` (s), then run.

    One row per detector (the :func:`run_points` columns) plus ``detector``, ``setting``
    (the knob in words), ``predicted_latency_s`` (on a steady path) and ``matched``
    (the simulated mean latency within 2 % of the target; None unless ``measured``).
    ``measured`` (default) matches the simulated latency on the base's own path (see
    :func:`calibrate`); the base needs ``peer.crash`` for that. A detector whose knob
    cannot reach the target on that path (phi's floor on a noisy one) keeps the closest
    setting tried, marked unmatched. Run the base in monitor
    mode (``detector.on_declare: monitor``) to read Chen et al.'s mistake durations: how
    long a wrong suspicion lasts before the next heartbeat restores trust.
    """
    rows = []
    for kind in kinds:
        overrides, row = calibrate(
            base, kind, target, measured=measured, engine=engine, iterations=iterations
        )
        if row is None:
            row = run_points(base, {kind: overrides}, engine=engine)
        row = row.drop(columns=[c for c in overrides if c in row])
        row.insert(0, "detector", row.pop("label"))
        row.insert(1, "setting", knob_text(overrides))
        row.insert(2, "predicted_latency_s", predicted_latency(base, overrides))
        reached = float(row["detection_latency_mean_s_mean"].iloc[0])
        row.insert(3, "matched", abs(reached - target) <= 0.02 * target if measured else None)
        rows.append(row)
    return pd.concat(rows, ignore_index=True)


def nat_what_if(
    interval: float, idle: float, jitter: float = 0.0, p_loss: float = 0.0, rate_unit: str = "day"
) -> pd.DataFrame:
    """Heartbeats every ``interval`` s (x U(1 - jitter, 1 + jitter)), each lost before the
    middlebox with ``p_loss``, against an idle timeout ``idle`` (s): the figures of
    :func:`simlab.engines.analytic.theory.nat_survival` with their units, as a table."""
    s = theory.nat_survival(interval, idle, p_loss, jitter)
    k = RATE_UNITS[rate_unit]
    rows = [
        ("heartbeats keep it open", "yes" if s.survives else "no", ""),
        ("longest gap between heartbeats", round(interval * (1 + jitter), 3), "s"),
        ("longest safe mean interval", round(longest_safe_interval(idle, jitter), 3), "s"),
        ("a gap reaches the idle timeout", round(s.p_gap_too_long, 6), "probability per refresh"),
        ("mean time to expiry", round(s.mean_time_to_expiry, 1), "s"),
        ("idle expiries", round(s.expiries_per_hour * k, 3), f"per connection-{rate_unit}"),
    ]
    return pd.DataFrame(rows, columns=["figure", "value", "unit"]).set_index("figure")


def refresh_cases(idle: float, interval: float) -> dict[str, dict]:
    """Who sends heartbeats, over which transport, through a NAT renewed by which direction:
    the points of the refresh-direction table (run them with :func:`run_points`)."""
    cases = {}
    for transport in ("tcp", "datagram"):
        for who, hb in (
            (
                "server pings, client pongs",
                {"heartbeat.style": "pingpong", "heartbeat.initiator": "server"},
            ),
            (
                "server heartbeats (one-way)",
                {"heartbeat.style": "oneway", "heartbeat.initiator": "server"},
            ),
            (
                "client heartbeats (one-way)",
                {"heartbeat.style": "oneway", "heartbeat.initiator": "client"},
            ),
        ):
            for refresh in ("outbound", "both"):
                cases[f"{transport}, {who}, refresh {refresh}"] = {
                    "link.transport": transport,
                    **hb,
                    "heartbeat.interval": interval,
                    "detector.timeout": 2 * interval + 5,
                    "nat.idle_timeout": idle,
                    "nat.refresh": refresh,
                }
    return cases


__all__ = [
    "DETECTORS",
    "KNOBS",
    "calibrate",
    "compare_detectors",
    "expiry_curves",
    "knob_text",
    "ladder",
    "longest_safe_interval",
    "losses_to_miss",
    "nat_what_if",
    "per",
    "knob",
    "predicted_latency",
    "refresh_cases",
    "run_points",
    "survival_table",
]
