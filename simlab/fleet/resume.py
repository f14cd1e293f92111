"""Session resume: which messages a reconnecting client gets back, which are lost, what the buffer costs.

Each client receives a stream of messages with consecutive sequence numbers
(``periodic`` at ``rate`` with a random phase per client, or ``poisson``). The
server keeps, for each client, the messages the client has not acknowledged, in
a replay buffer bounded by a retention: at most ``messages`` of them and none
older than ``time`` (the oldest go first). A client acknowledges its
``last_seq_id`` every ``commit_interval`` seconds while connected (0: every message
at once) and at the start of every resumed connection. When the connection
breaks, nothing more arrives; when the client is back it resumes from its last
acknowledged ``last_seq_id`` and the server replays what it still holds:

- a message published after the break is *replayed* if still buffered, else *lost*
  (it fell out of the buffer before the client came back);
- a message received before the break but not yet acknowledged is replayed again,
  a *duplicate*, if still buffered;
- at the horizon, messages of a client still trying to reconnect are *pending*
  (buffered) or lost (already evicted); every message after the break of a
  client that gave up is lost.

So, over the messages published in [0, horizon):
``delivered (live + replayed) + lost + pending = published``.

The buffer memory counted is what the server holds for broken sessions: a
message occupies it from the break (or its publication, if later) until the
client resumes, the retention evicts it, or the horizon. Without a replay buffer
(``resume: null``) every message published while a client is away is lost.
The counts are exact for the generated message times; the peak is the level's
maximum over a fine grid of instants (horizon / 65536 apart by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlab.fleet.spec import Messages, Resume


@dataclass(frozen=True)
class Gaps:
    """The disconnections: one entry per (client, break), arrays of equal length.

    ``end`` is when the client resumed (``inf`` if not by the horizon); ``prev`` when
    the connection that broke had opened (``-inf``: before the run).
    """

    client: np.ndarray
    start: np.ndarray
    end: np.ndarray
    gave_up: np.ndarray
    prev: np.ndarray

    def __len__(self) -> int:
        return len(self.client)


@dataclass(frozen=True)
class Account:
    """Message counts over [0, horizon) and the buffer level (messages held for broken sessions)."""

    published: int
    delivered_live: int
    replayed: int
    lost: int
    pending: int
    duplicates: int
    lost_per_gap: np.ndarray
    replayed_per_gap: np.ndarray
    level: np.ndarray  # messages held at each of the ``edges`` given to account()
    peak: int  # the most held at once, sampled every ``resolution`` seconds
    resolution: float

    @property
    def delivered(self) -> int:
        return self.delivered_live + self.replayed


def _segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For segment sizes ``counts``: each element's segment and its index within the segment."""
    seg = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return seg, np.arange(int(counts.sum())) - first[seg]


def _level(enter_cells: np.ndarray, leave_cells: np.ndarray, size: int) -> np.ndarray:
    """Held at the start of each cell: entered in earlier cells minus left in earlier cells."""
    delta = np.bincount(enter_cells, minlength=size) - np.bincount(leave_cells, minlength=size)
    return np.concatenate([[0], np.cumsum(delta[:size])])[:size]


def account(
    gaps: Gaps,
    clients: int,
    horizon: float,
    messages: Messages,
    resume: Resume | None,
    rng: np.random.Generator,
    edges: np.ndarray | None = None,
    *,
    resolution: float | None = None,
    chunk: int = 1_000_000,
) -> Account:
    """Deliveries, replays, losses, duplicates and buffer occupancy for the disconnections ``gaps``.

    Messages are generated for a batch of gaps at a time (about ``chunk`` messages),
    so memory stays bounded however long the outages. The level is counted at the
    ``edges`` (for a timeline) and on a grid of ``resolution`` seconds (default
    horizon / 2**16) for the peak: exact at those instants.
    """
    n_gaps = len(gaps)
    edges = np.zeros(0) if edges is None else np.asarray(edges, float)
    resolution = resolution or horizon / 2**16
    cells = int(math.ceil(horizon / resolution)) + 2
    zeros = np.zeros(n_gaps, dtype=np.int64)
    if messages.rate <= 0:
        return Account(0, 0, 0, 0, 0, 0, zeros, zeros, np.zeros(len(edges)), 0, resolution)
    period = 1.0 / messages.rate
    periodic = messages.process == "periodic"
    phase = rng.uniform(0.0, period, clients)
    keep_n = 0 if resume is None else resume.messages  # None: no bound on the count
    keep_t = 0.0 if resume is None else resume.time  # None: no bound on the age
    commit = 0.0 if resume is None else resume.commit_interval
    commit_phase = rng.uniform(0.0, commit, clients) if commit > 0 else np.zeros(clients)

    start, stop = gaps.start, np.minimum(gaps.end, horizon)
    resumed = (gaps.end <= horizon) & ~gaps.gave_up
    if commit > 0:  # the last acknowledgement before the break: a commit tick, or the resume itself
        cp = commit_phase[gaps.client]
        tick = cp + np.floor((start - cp) / commit) * commit
        acked = np.maximum(gaps.prev, np.minimum(tick, start))
    else:
        acked = start
    read = np.where(resumed, stop, horizon)  # when the buffer is read (resume) or the run ends

    totals = dict(replayed=0, lost=0, pending=0, duplicates=0, gap=0, received=0)
    lost_per_gap, replayed_per_gap = zeros.copy(), zeros.copy()
    grid = np.zeros(cells + 1)
    at_edges = np.zeros(len(edges))
    expected = messages.rate * (stop - acked) + 1
    bounds = np.searchsorted(np.cumsum(expected), np.arange(chunk, expected.sum() + chunk, chunk))
    lo = 0
    for hi in [*np.unique(np.minimum(bounds + 1, n_gaps)), n_gaps]:
        if hi <= lo:
            continue
        part = np.arange(lo, hi)
        lo = hi
        times, gid, j, counts = _generate(
            part, gaps.client, acked, stop, phase, period, periodic, messages.rate, rng
        )
        after_break = times >= start[gid]
        end = read[gid]
        leave = end.copy()  # eviction: by count when the keep_n-th newer message arrives, by age
        if keep_n is not None:
            newer = np.flatnonzero(j + keep_n < counts[gid - part[0]])
            leave[newer] = np.minimum(leave[newer], times[newer + keep_n])
        if keep_t is not None:
            leave = np.minimum(leave, times + keep_t)
        evicted = leave < end
        res, gave_up = resumed[gid], gaps.gave_up[gid]
        replayed = after_break & res & ~evicted
        lost = after_break & (gave_up | evicted)
        totals["replayed"] += int(replayed.sum())
        totals["lost"] += int(lost.sum())
        totals["pending"] += int((after_break & ~res & ~gave_up & ~evicted).sum())
        totals["duplicates"] += int((~after_break & res & ~evicted).sum())
        totals["gap"] += int((after_break & (times >= 0)).sum())
        totals["received"] += int((~after_break & (times >= 0)).sum())
        lost_per_gap += np.bincount(gid[lost], minlength=n_gaps)
        replayed_per_gap += np.bincount(gid[replayed], minlength=n_gaps)
        # held for the broken session: from the break (or publication) until it leaves
        enter = np.maximum(times, start[gid])
        held = enter < leave
        enter, leave = enter[held], leave[held]
        grid += _level(_cell(enter, resolution, cells), _cell(leave, resolution, cells), cells + 1)
        if len(edges):
            at_edges += np.searchsorted(np.sort(enter), edges, side="right")
            at_edges -= np.searchsorted(np.sort(leave), edges, side="right")

    # live deliveries: every message published in [0, horizon) outside the gaps
    if periodic:
        total = np.ceil((horizon - phase) / period) - np.ceil(-phase / period)
        live = int(total.sum()) - totals["gap"]
    else:
        away = np.bincount(gaps.client, weights=stop - start, minlength=clients)
        unacked = np.maximum(start - np.maximum(acked, 0.0), 0.0)
        unacked_len = np.bincount(gaps.client, weights=unacked, minlength=clients)
        rest = np.maximum(horizon - away - unacked_len, 0.0)
        live = int(rng.poisson(messages.rate * rest).sum()) + totals["received"]
    return Account(
        published=live + totals["gap"],
        delivered_live=live,
        replayed=totals["replayed"],
        lost=totals["lost"],
        pending=totals["pending"],
        duplicates=totals["duplicates"],
        lost_per_gap=lost_per_gap,
        replayed_per_gap=replayed_per_gap,
        level=at_edges,
        peak=int(grid.max()),
        resolution=resolution,
    )


def _cell(times: np.ndarray, resolution: float, cells: int) -> np.ndarray:
    """The grid cell of each time: cell k holds [k res, (k + 1) res)."""
    return np.clip(np.floor(times / resolution), 0, cells).astype(np.int64)


def _generate(part, client, acked, stop, phase, period, periodic, rate, rng):
    """The messages of the windows [acked, stop) of the gaps ``part``, sorted within each gap.

    Returns their times, gap index, index within the gap, and each gap's count.
    """
    lo, hi = acked[part], stop[part]
    if periodic:
        ph = phase[client[part]]
        k_lo = np.ceil((lo - ph) / period)
        counts = np.maximum(np.ceil((hi - ph) / period) - k_lo, 0).astype(np.int64)
        seg, j = _segments(counts)
        times = ph[seg] + (k_lo[seg] + j) * period
    else:
        counts = rng.poisson(rate * (hi - lo))
        seg, j = _segments(counts)
        times = lo[seg] + (hi - lo)[seg] * rng.random(len(seg))
        times = times[np.lexsort((times, seg))]  # seg is already sorted: sort within each gap
    return times, part[0] + seg, j, counts
