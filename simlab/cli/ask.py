"""``simlab ask``: the question's options, parsing and printing.

What it does (the settings it picks, the sweep, the answer) is :mod:`simlab.lab.ask`.
"""

from __future__ import annotations

import sys

from simlab.cli.choose import question_options
from simlab.lab.ask import DEFAULTS, answer_text, ask


def add_parser(sub) -> None:
    """Add ``simlab ask`` to the command's subparsers."""
    p = sub.add_parser(
        "ask",
        help="from a question to an answer: picks the settings, sweeps, chooses, reports",
        description="Picks ping intervals and deadlines that can meet the bounds (a coarse"
        " grid, then a finer one where the answer's boundary lies), sweeps them on the"
        " fastest engine that covers them, and writes the sweep file, its CSV and the report"
        " into --out-dir. Exit codes: 0 an answer, 1 no setting meets the bounds (the"
        " closest one is shown), 2 bad input.",
    )
    p.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="NAME",
        help="a network the users are on (repeatable): home-wifi, lte, weak-mobile, datacenter",
    )
    question_options(p)
    p.add_argument(
        "--library",
        metavar="NAME",
        help="start from this library's preset (simlab presets), e.g. socketio, and speak its settings",
    )
    p.add_argument("--out-dir", default="out/ask", help="where to write (default out/ask)")
    p.add_argument(
        "--connections",
        type=int,
        default=DEFAULTS["connections"],
        help=f"connections per run (default {DEFAULTS['connections']})",
    )
    p.add_argument(
        "--horizon",
        default=DEFAULTS["horizon"],
        metavar="DURATION",
        help=f"each connection's simulated time (default {DEFAULTS['horizon']})",
    )
    p.add_argument(
        "--replications",
        type=int,
        default=DEFAULTS["replications"],
        help=f"runs per point (default {DEFAULTS['replications']})",
    )
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="the sweep's seed")
    p.add_argument("--workers", type=int, help="local processes (default: the number of cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_ask)


def cmd_ask(args) -> int:
    """Print the answer; exit 0 with a recommendation, 1 without one."""
    answer = ask(
        out_dir=args.out_dir,
        workers=args.workers,
        progress=not args.quiet,
        networks=args.network,
        max_detection=args.max_detection,
        max_false_disconnects=args.max_false_disconnects,
        behind=args.behind,
        nat_timeout=args.nat_timeout,
        minimize=args.minimize,
        detection=args.detection_metric,
        library=args.library,
        connections=args.connections,
        horizon=args.horizon,
        replications=args.replications,
        seed=args.seed,
    )
    print(answer_text(answer))
    rounds = " + ".join(str(len(r)) for r in answer.rounds)
    for note in answer.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"settings tried: {rounds} (rounds); sweep {answer.sweep}; rows {answer.csv};"
        f" report {answer.report}",
        file=sys.stderr,
    )
    if answer.failed:
        print(f"failed points: {', '.join(answer.failed)} (see the error column)", file=sys.stderr)
        return 1
    if not answer.choice.feasible:
        print("no setting meets the bounds (exit 1)", file=sys.stderr)
        return 1
    return 0
