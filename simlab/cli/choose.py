"""``simlab choose`` and ``simlab report``: the question's options, parsing and printing.

The chooser itself is :mod:`simlab.lab.choose`; the report, :mod:`simlab.lab.report`.
"""

from __future__ import annotations

from simlab.errors import Problem
from simlab.lab.choice_text import format_choice
from simlab.lab.choose import choose
from simlab.lab.question import DETECTION, OBJECTIVES, ChooseError, constraints
from simlab.lab.report import cmd_report


def question_options(parser) -> None:
    """The question's options, shared by ``simlab choose`` and ``simlab report``."""
    parser.add_argument(
        "--max-detection",
        metavar="DURATION",
        help="bound on the detection latency of a vanished peer, e.g. 60s (its upper 95%% bound)",
    )
    parser.add_argument(
        "--max-false-disconnects",
        metavar="RATE",
        help="bound on false disconnects, e.g. 1/conn-month, 0.1/conn-day, 2/conn-hour",
    )
    parser.add_argument(
        "--nat-timeout",
        metavar="DURATION",
        help="the heartbeats must keep a NAT/middlebox with this idle timeout alive",
    )
    parser.add_argument(
        "--behind",
        metavar="NAME",
        help="a middlebox of data/middleboxes.csv whose idle timeout the heartbeats must beat, e.g. aws-alb",
    )
    parser.add_argument(
        "--minimize",
        default="bytes",
        metavar="COST",
        help=f"what to minimize: {', '.join(OBJECTIVES)} (default bytes)",
    )
    parser.add_argument(
        "--detection-metric",
        default="p95",
        metavar="STAT",
        help=f"which detection latency --max-detection bounds: {', '.join(DETECTION)} (default p95)",
    )


def add_parsers(sub) -> None:
    """Add ``simlab choose`` and ``simlab report`` to the command's subparsers."""
    ch = sub.add_parser(
        "choose",
        help="the cheapest setting a sweep shows to meet your bounds, in each library's terms",
        description="Exit codes: 0 a recommendation, 1 no setting meets the bounds (the closest"
        " one is shown), 2 bad input.",
    )
    ch.add_argument("sweep", metavar="SWEEP.csv", help="a sweep's CSV (or its .summary.csv)")
    question_options(ch)
    ch.add_argument("--json", action="store_true", help="print one JSON object")
    ch.add_argument(
        "--verbose",
        action="store_true",
        help="also every figure's interval, what rules out cheaper settings, each library's code"
        " and caveats, and the notes (the default fits one screen)",
    )
    ch.set_defaults(handler=cmd_choose)
    rp = sub.add_parser(
        "report",
        help="one self-contained HTML report of a sweep: question, answer, figures, methods",
        description="Exit codes: 0 written, 1 written but --pdf could not be rendered,"
        " 2 bad input.",
    )
    rp.add_argument("sweep", metavar="SWEEP.csv", help="a sweep's CSV (or its .summary.csv)")
    rp.add_argument("--out", required=True, metavar="FILE.html", help="e.g. reports/NAME.html")
    question_options(rp)
    rp.add_argument(
        "--crosscheck", metavar="FILE", help="the CSV or JSON of simlab crosscheck to include"
    )
    rp.add_argument("--title", help="the report's title")
    rp.add_argument("--pdf", action="store_true", help="also print it to FILE.pdf (needs chromium)")
    rp.set_defaults(handler=_cmd_report)


def _question(args) -> dict:
    return {
        "max_detection": args.max_detection,
        "max_false_disconnects": args.max_false_disconnects,
        "nat_timeout": args.nat_timeout,
        "behind": args.behind,
        "minimize": args.minimize,
        "detection": args.detection_metric,
    }


def cmd_choose(args) -> int:
    """Print the answer (text or JSON); exit 0 with a recommendation, 1 without one."""
    import json
    import sys

    q = _question(args)
    if q["max_detection"] is None and q["max_false_disconnects"] is None:
        problems = [
            Problem("--max-detection", "missing: give a bound, e.g. --max-detection 60s"),
            Problem(
                "--max-false-disconnects",
                "missing: give a bound, e.g. --max-false-disconnects 1/conn-month",
            ),
        ]
        try:  # report the other options' problems too
            constraints(None, None, q["nat_timeout"], q["behind"], q["minimize"], q["detection"])
        except ChooseError as exc:
            problems += exc.problems
        raise ChooseError(problems, "simlab choose")
    detection = q.pop("detection")
    choice = choose(args.sweep, **q, detection=detection)
    if args.json:
        print(json.dumps(choice.to_dict(), indent=2, default=str))
    else:
        print(format_choice(choice, verbose=args.verbose))
    if not choice.feasible:
        print("no setting in the sweep meets the bounds (exit 1)", file=sys.stderr)
    return 0 if choice.feasible else 1


def _cmd_report(args) -> int:
    return cmd_report(args, _question(args))
