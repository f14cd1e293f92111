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
the time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .runner import simulate
from .scenario import to_dict
from .theory import poisson_interval

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
    p_value: float | None  # None: not tested (too few samples), shown only
    n_model: int
    n_harness: int

    def agrees(self, alpha: float) -> bool | None:
        return None if self.p_value is None else self.p_value >= alpha


def compare_rates(metric: str, x_model: int, e_model: float, x_harness: int, e_harness: float):
    """Two Poisson rates (counts over exposures), exact conditional binomial test."""
    total = x_model + x_harness
    if total == 0:
        p = 1.0
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
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        p = None
    else:
        p = quantile_test(a, b, resolution)
    ma = (float(np.median(a)),) + _median_interval(a) if len(a) else (None, None, None)
    mb = (float(np.median(b)),) + _median_interval(b) if len(b) else (None, None, None)
    test = f"quantiles 10/50/90% within {resolution * 1000:.1f} ms"
    return Comparison(metric, test, *ma, *mb, p, len(a), len(b))


def compare_proportions(metric: str, k_model: int, n_model: int, k_harness: int, n_harness: int):
    """Two binomial proportions, Fisher's exact test; Clopper-Pearson intervals."""

    def cp(k, n):
        if n == 0:
            return math.nan, math.nan
        ci = stats.binomtest(k, n).proportion_ci(0.95)
        return ci.low, ci.high

    table = [[k_model, n_model - k_model], [k_harness, n_harness - k_harness]]
    p = float(stats.fisher_exact(table).pvalue) if n_model and n_harness else None
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
    def agree(self) -> bool:
        return all(c.agrees(self.threshold) for c in self.tested)

    def rows(self) -> list[dict]:
        out = []
        for c in self.comparisons:
            row = {"check": self.name, **dataclasses.asdict(c)}
            verdict = c.agrees(self.threshold)
            row["verdict"] = "shown" if verdict is None else ("agree" if verdict else "DISAGREE")
            out.append(row)
        return out


def _latencies(records, event="detection") -> list[float]:
    return records.loc[records.event == event, "value"].astype(float).tolist()


def _pong_rtts_model(trace) -> list[float]:
    rows = trace[(trace.event == "receive") & (trace.kind == "pong")]
    return rows["value"].astype(float).tolist()


def compare(
    model, harness, *, loss: bool, alpha: float = ALPHA, name: str = "check", resolution: float = 0.0
) -> CrossCheck:
    """Comparisons between a model :class:`~simlab.runner.Result` and a harness result."""
    ms, hs = model.summary, harness.summary
    em, eh = ms["connected_hours"], hs["connected_hours"]
    out = [compare_rates("false positives /conn-h", ms["false_positives"], em, hs["false_positives"], eh)]
    for cause in ("crash", "nat", "tcp_timeout"):
        key = f"breaks_{cause}"
        if ms[key] or hs[key]:
            out.append(compare_rates(f"breaks ({cause}) /conn-h", ms[key], em, hs[key], eh))
    for by in ("detector", "reset", "tcp_timeout"):
        key = f"detections_by_{by}"
        if ms[key] or hs[key]:
            out.append(compare_rates(f"detections by {by} /conn-h", ms[key], em, hs[key], eh))
    ml, hl = _latencies(model.records), _latencies(harness.records)
    if ml or hl:
        out.append(compare_samples("detection latency (s)", ml, hl, resolution))
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


def model_side(scaled, *, connections: int, seed_offset: int = 1_000_003, trace: bool = False):
    """The model's run of a scaled scenario: more connections, a seed of its own."""
    s = dataclasses.replace(scaled, connections=connections, seed=scaled.seed + seed_offset)
    return s, simulate(s, trace=trace)


def describe_sides(harness_scn, model_scn, extra: dict) -> dict:
    """Exactly what ran on each side, for the output."""
    return {"harness": to_dict(harness_scn), "model": to_dict(model_scn), **extra}
