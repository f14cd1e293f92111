"""Tests for simlab.rules.backoff: every preset against its library's source behaviour.

Deterministic schedules are compared value for value; jittered ones by their
moments at fixed seeds, with tolerances of four standard errors computed from the
exact variance of the distribution. backo2 (Socket.IO) and phoenix.js are also run
in Node.js, when it is installed, on the same random numbers; python-websockets'
own ``backoff()`` is run on the same random numbers.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import shutil
import subprocess

import numpy as np
import pytest

from simlab.rules.backoff import (
    PRESETS,
    Backo2,
    Exponential,
    Schedule,
    WebsocketsIterator,
    field_names,
    preset,
)

N = 40_000  # clients per column for the moment checks


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed))


def within(values: np.ndarray, mean: float, var: float, k: float = 4.0) -> None:
    """The sample mean is within k standard errors of ``mean`` (SE from the exact variance)."""
    se = math.sqrt(var / len(values))
    assert abs(values.mean() - mean) <= k * se, (values.mean(), mean, se)


# -- the seed design and AWS's three jitters ------------------------------------------


def test_exponential_preset_doubles_from_1s_to_a_30s_cap_and_gives_up_after_10():
    p = PRESETS["exponential"]
    assert p.max_attempts == 10
    assert p.sequence(12, rng()).tolist() == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30]


@pytest.mark.parametrize("attempt", [1, 3, 5, 8])
def test_full_jitter_is_uniform_between_zero_and_the_capped_exponential(attempt):
    t = min(30.0, 2.0 ** (attempt - 1))
    d = PRESETS["full_jitter"].delays(N, attempt, rng(attempt))[:, -1]
    assert d.min() >= 0 and d.max() < t
    within(d, t / 2, t * t / 12)
    within((d - t / 2) ** 2, t * t / 12, t**4 / 180)  # the variance of U(0, t): E(x^4) = t^4/80


@pytest.mark.parametrize("attempt", [1, 4, 7])
def test_equal_jitter_is_half_fixed_half_uniform(attempt):
    t = min(30.0, 2.0 ** (attempt - 1))
    d = PRESETS["equal_jitter"].delays(N, attempt, rng(10 + attempt))[:, -1]
    assert d.min() >= t / 2 and d.max() < t
    within(d, 3 * t / 4, (t / 2) ** 2 / 12)


def test_decorrelated_jitter_draws_between_base_and_three_times_the_previous_sleep():
    p = PRESETS["decorrelated_jitter"]
    table = p.delays(N, 2, rng(3))
    first, second = table[:, 0], table[:, 1]
    # sleep = min(cap, U(base, prev * 3)) with prev = base before the first attempt
    assert first.min() >= 1 and first.max() < 3
    within(first, 2.0, 4 / 12)
    assert (second >= 1).all() and (second < 3 * first).all()
    # given the previous sleep, the next is uniform on [base, 3 prev] (no cap below 30 s here)
    residual = second - (1 + 3 * first) / 2
    within(residual, 0.0, float(np.mean((3 * first - 1) ** 2 / 12)))


def test_decorrelated_jitter_stays_within_base_and_cap_and_reaches_the_cap():
    d = PRESETS["decorrelated_jitter"].delays(2000, 40, rng(4))
    assert d.min() >= 1.0 and d.max() <= 30.0
    assert (d == 30.0).mean() > 0.2


def test_custom_policy_from_parameters():
    p = Exponential(base=0.5, factor=3.0, cap=10.0, max_attempts=4)
    assert p.sequence(5, rng()).tolist() == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert p.max_attempts == 4
    assert preset("custom", base=2.0).sequence(3, rng()).tolist() == [2.0, 4.0, 8.0]


# -- Socket.IO: backo2 --------------------------------------------------------------------


def test_socketio_defaults_are_socketio_clients():
    p = PRESETS["socketio"]
    assert (p.min_delay, p.max_delay, p.randomization, p.factor) == (1.0, 5.0, 0.5, 2.0)
    assert p.max_attempts is None  # reconnectionAttempts: Infinity


def test_socketio_delays_are_whole_milliseconds_in_the_jitter_range():
    d = PRESETS["socketio"].delays(N, 3, rng(5)) * 1000
    assert np.array_equal(d, np.round(d))
    for col, ms in enumerate([1000, 2000, 4000]):
        assert d[:, col].min() >= ms / 2 and d[:, col].max() <= min(5000, 1.5 * ms)


def test_socketio_first_delay_mean_is_1025ms():
    # one random number decides size and sign: E[signed floor(500 r)] = +25 ms (derived in the docstring)
    d = PRESETS["socketio"].delays(N, 1, rng(6))[:, 0] * 1000
    # floor(500 r) is uniform on 0..499 within the deciles: variance of the signed deviation
    devs = np.arange(500.0)
    signs = np.where((devs // 50) % 2 == 0, -1.0, 1.0)
    var = float(np.mean((signs * devs) ** 2) - 25.0**2)
    within(d, 1025.0, var)


def test_socketio_cap_after_jitter_loses_the_jitter():
    d = PRESETS["socketio"].delays(N, 12, rng(7))
    # 4th attempt: 8000 ms +- floor(4000 r); below the 5000 ms cap only when subtracting
    # more than 3000 ms: r in [0.8, 0.9), the one even decile above 0.75: exactly 10 %
    fourth = d[:, 3]
    below = fourth < 5.0
    p = 0.1
    assert abs(below.mean() - p) <= 4 * math.sqrt(p * (1 - p) / N)
    assert fourth[below].min() > 4.4 - 1e-9 and fourth[below].max() <= 4.8
    assert (fourth[~below] == 5.0).all()
    # from the 5th attempt on, every client waits exactly 5 s: no jitter left
    assert (d[:, 4:] == 5.0).all()


def test_socketio_overflow_makes_half_the_clients_retry_at_once():
    # after 1015 failed attempts min * 2^attempts is Infinity in JavaScript:
    # Infinity - Infinity is NaN, Math.min(NaN, max) is NaN and NaN | 0 is 0
    d = PRESETS["socketio"].delays(2000, 1020, rng(8))
    assert (d[:, 1014] == 5.0).all()
    late = d[:, 1016:]
    assert set(np.unique(late)) == {0.0, 5.0}
    assert abs((late == 0).mean() - 0.5) < 0.02


BACKO2_JS = r"""
// backo2 (socket.io-client's contrib/backo2), Backoff.prototype.duration, with Math.random
// fed from stdin so both sides use the same numbers
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
let k = 0;
Math.random = () => input.rand[k++];
function Backoff(opts) {
  opts = opts || {};
  this.ms = opts.min || 100;
  this.max = opts.max || 10000;
  this.factor = opts.factor || 2;
  this.jitter = opts.jitter > 0 && opts.jitter <= 1 ? opts.jitter : 0;
  this.attempts = 0;
}
Backoff.prototype.duration = function () {
  var ms = this.ms * Math.pow(this.factor, this.attempts++);
  if (this.jitter) {
    var rand = Math.random();
    var deviation = Math.floor(rand * this.jitter * ms);
    ms = (Math.floor(rand * 10) & 1) == 0 ? ms - deviation : ms + deviation;
  }
  return Math.min(ms, this.max) | 0;
};
// socket.io-client's Manager: new Backoff({min: reconnectionDelay, max: reconnectionDelayMax,
// jitter: randomizationFactor}) with 1000, 5000, 0.5
const b = new Backoff({min: 1000, max: 5000, jitter: 0.5});
const socketio = input.rand.map(() => b.duration());
// phoenix.js Socket: reconnectAfterMs default
const phoenix = [];
for (let tries = 1; tries <= 12; tries++)
  phoenix.push([10, 50, 100, 150, 200, 250, 500, 1000, 2000][tries - 1] || 5000);
console.log(JSON.stringify({socketio, phoenix}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_socketio_and_phoenix_match_their_javascript_bit_for_bit():
    attempts = 1030  # past the overflow
    rands = np.random.default_rng(np.random.SeedSequence(9)).random(attempts)
    py = PRESETS["socketio"].sequence(attempts, np.random.default_rng(np.random.SeedSequence(9)))
    out = subprocess.run(
        ["node", "-e", BACKO2_JS],
        input=json.dumps({"rand": rands.tolist()}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    js = json.loads(out.stdout)
    assert (py * 1000).astype(int).tolist() == js["socketio"]
    assert (PRESETS["phoenix"].sequence(12, rng()) * 1000).round().astype(int).tolist() == js[
        "phoenix"
    ]


# -- python-websockets ------------------------------------------------------------------------


def test_websockets_preset_is_the_installed_librarys_backoff(monkeypatch):
    import websockets.client as wsc

    assert (wsc.BACKOFF_INITIAL_DELAY, wsc.BACKOFF_MIN_DELAY) == (5.0, 3.1)
    assert (wsc.BACKOFF_FACTOR, wsc.BACKOFF_MAX_DELAY) == (1.618, 90.0)
    seed = np.random.SeedSequence(11)
    u = float(np.random.default_rng(seed).random())
    monkeypatch.setattr(random, "random", lambda: u)
    generator = wsc.backoff()
    library = [next(generator) for _ in range(20)]
    ours = PRESETS["websockets"].sequence(21, np.random.default_rng(seed)).tolist()
    # the first reconnection after a working connection is immediate, then backoff()
    assert ours[0] == 0.0
    assert ours[1:] == library
    assert ours[1] == u * 5.0 and ours[9] < 90.0 and ours[10:] == [90.0] * 11


def test_websockets_iterator_resets_its_delays_after_a_successful_connection():
    """The reason the first reconnection is immediate: ``delays = None`` after every success."""
    from websockets.asyncio.client import connect

    source = inspect.getsource(connect.__aiter__)
    assert "delays = None" in source
    assert source.index("yield") < source.rindex("delays = None")


def test_websockets_first_delay_is_uniform_on_zero_five():
    d = WebsocketsIterator(immediate_first=False).delays(N, 1, rng(12))[:, 0]
    assert d.min() >= 0 and d.max() < 5
    within(d, 2.5, 25 / 12)


# -- phoenix and the generic parts -------------------------------------------------------------


def test_phoenix_fixed_schedule_then_5s():
    expected = [0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0]
    assert PRESETS["phoenix"].sequence(11, rng()).tolist() == expected
    assert Schedule(steps=(1.0, 2.0), then=7.0).sequence(4, rng()).tolist() == [1, 2, 7, 7]


@pytest.mark.parametrize("name", list(PRESETS))
def test_policies_are_pure_and_reproducible(name):
    p = PRESETS[name]
    np.random.seed(0)  # the global generator plays no part
    a = p.delays(50, 20, rng(13))
    np.random.seed(1)
    b = p.delays(50, 20, rng(13))
    assert np.array_equal(a, b)
    assert (a >= 0).all() and np.isfinite(a).all()


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_table_extended_in_chunks_equals_one_drawn_at_once(name):
    """The fleet model draws 16 attempts at a time: the chunks must continue the sequence."""
    p = PRESETS[name]
    whole = p.delays(30, 32, rng(14))
    g = rng(14)
    head = p.delays(30, 16, g)
    tail = p.delays(30, 16, g, first=17, prev=head[:, -1])
    assert np.array_equal(whole, np.hstack([head, tail]))


def test_params_load_back_and_name_every_field():
    for name, p in PRESETS.items():
        params = p.params()
        assert params["name"] == name
        assert set(params) == {"name", *field_names(p)}
    assert Backo2().params()["max_attempts"] is None
