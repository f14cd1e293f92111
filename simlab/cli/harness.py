"""The command line of the harness: ``simlab crosscheck`` (scenarios and fleets) and
``simlab harness cleanup``."""

from __future__ import annotations

import json
import math
import signal
import sys

from simlab.errors import ScenarioError

EXIT_DISAGREE = 1
EXIT_BAD_INPUT = 2


def add_crosscheck_parser(sub, preset_options) -> None:
    cc = sub.add_parser(
        "crosscheck",
        help="run a scenario on real sockets and on the model, and test that they agree",
        description=(
            "Runs the scenario, time-scaled, over real WebSocket connections (netns: a real "
            "kernel NAT and packet loss in network namespaces; proxy: a relay on 127.0.0.1) "
            "and on the model, then compares every metric with a statistical test. "
            "Exit 0: agree; 1: disagree; 2: bad input or the backend cannot run here."
        ),
    )
    cc.add_argument("scenario", nargs="?", help="scenario file (omit with --panel)")
    preset_options(cc)
    cc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    cc.add_argument("--backend", choices=("netns", "proxy"), default="proxy")
    cc.add_argument(
        "--time-scale", type=float, default=0.05, metavar="X", help="multiply every duration by X"
    )
    cc.add_argument(
        "--connections",
        type=int,
        default=None,
        dest="harness_connections",
        help="real connections (default 10; a fleet file: real clients, default 100)",
    )
    cc.add_argument("--model-connections", type=int, default=None, help="model replications")
    cc.add_argument("--policy", choices=("detector", "websockets-native"), default="detector")
    cc.add_argument("--alpha", type=float, default=0.01, help="family-wise error rate of one check")
    cc.add_argument("--out", metavar="FILE.csv", help="write the comparison rows as CSV")
    cc.add_argument("--json", action="store_true", help="print JSON instead of the table")
    cc.add_argument("--panel", action="store_true", help="run the built-in panel instead of a file")


def add_harness_tools(harness_sub) -> None:
    clean = harness_sub.add_parser(
        "cleanup", help="remove network namespaces left by harness runs whose process is gone"
    )
    clean.add_argument("--all", action="store_true", help="also those of runs still alive")
    clean.set_defaults(handler=cmd_cleanup)


def cmd_cleanup(args) -> int:
    from simlab.harness.netns import cleanup

    removed = cleanup(all_runs=args.all)
    for name in removed:
        print(f"removed namespace {name}")
    if not removed:
        print("nothing to clean up")
    return 0


def _problems(args) -> list[str]:
    out = []
    if not (args.time_scale > 0):
        out.append(f"--time-scale: must be a positive number, got {args.time_scale}")
    if not 1 <= args.harness_connections <= 2000:
        out.append(f"--connections: 1 to 2000 real connections, got {args.harness_connections}")
    if args.model_connections is not None and args.model_connections < 1:
        out.append(f"--model-connections: at least 1, got {args.model_connections}")
    if not 0 < args.alpha < 1:
        out.append(f"--alpha: between 0 and 1, got {args.alpha}")
    if not args.panel and not args.scenario and not (args.preset or args.network):
        out.append("scenario: give a scenario file (or --preset/--network), or --panel")
    return out


def _sigterm(*_):
    raise KeyboardInterrupt  # unwinds through the harness's teardown like Ctrl-C


def cmd_crosscheck(args, load) -> int:
    from simlab.harness import crosscheck as cc
    from simlab.harness.netns import unavailable_reason
    from simlab.io import write_rows

    if args.scenario and is_fleet_file(args.scenario):  # the real small fleet on loopback
        return cmd_fleet_crosscheck(args)
    if args.harness_connections is None:
        args.harness_connections = 10
    problems = _problems(args)
    if args.backend == "netns" and (reason := unavailable_reason()):
        problems.append(f"--backend netns: {reason}")
    if problems:
        print("error: " + "\n       ".join(problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.panel:
            results = cc.run_panel(
                args.backend,
                connections=args.harness_connections,
                progress=None if args.json else print,
            )
            checks = [c for _, c in results if not isinstance(c, str)]
            for name, c in results:
                if isinstance(c, str) and not args.json:
                    print(f"cross-check {name}: {c}")
        else:
            scenario = load(args)
            checks = [
                cc.run_crosscheck(
                    scenario,
                    backend=args.backend,
                    time_scale=args.time_scale,
                    connections=args.harness_connections,
                    model_connections=args.model_connections,
                    policy=args.policy,
                    alpha=args.alpha,
                )
            ]
            if not args.json:
                print(cc.format_check(checks[0]))
    finally:
        signal.signal(signal.SIGTERM, previous)
    rows = [row for c in checks for row in c.rows()]
    if args.out:
        columns = list(rows[0]) if rows else ["check"]
        write_rows(args.out, columns, [[r[k] for k in columns] for r in rows])
    if args.json:
        doc = [
            {"check": c.name, "agree": c.agree, "ran": c.ran, "comparisons": c.rows()}
            for c in checks
        ]
        print(json.dumps(doc, indent=2, default=str))
    return 0 if all(c.agree for c in checks) else EXIT_DISAGREE


def register(sub, harness_sub, preset_options) -> None:
    """Add the harness's commands to simlab's parser."""
    add_crosscheck_parser(sub, preset_options)
    add_harness_tools(harness_sub)


# -- ``simlab crosscheck FLEET.yaml`` ------------------------------------------------------

DEFAULT_CONNECTIONS = 100


def is_fleet_file(path) -> bool:
    """Whether ``path`` is a readable ``kind: fleet`` file (anything else goes the scenario way)."""
    from simlab.fleet.spec import is_fleet
    from simlab.scenario.reader import read_yaml

    try:
        return is_fleet(read_yaml(path))
    except ScenarioError:
        return False


def _fleet_problems(args, connections: int) -> list[str]:
    from simlab.harness.fleet import MAX_REAL_CLIENTS

    out = []
    if not (args.time_scale > 0 and math.isfinite(args.time_scale)):
        out.append(f"--time-scale: must be a positive number, got {args.time_scale}")
    if not 1 <= connections <= MAX_REAL_CLIENTS:
        out.append(
            f"--connections: 1 to {MAX_REAL_CLIENTS} real clients for a fleet, got {connections}"
        )
    if args.model_connections is not None and args.model_connections < 2 * max(connections, 1):
        out.append(
            f"--model-connections: at least two replications of the fleet ({2 * connections} "
            f"clients), got {args.model_connections}"
        )
    if not 0 < args.alpha < 1:
        out.append(f"--alpha: between 0 and 1, got {args.alpha}")
    if getattr(args, "preset", None) or getattr(args, "network", None):
        out.append("--preset/--network: they apply to scenarios, not to a fleet file")
    if args.panel:
        out.append("--panel: runs the built-in scenario panel; give no fleet file with it")
    return out


def cmd_fleet_crosscheck(args) -> int:
    """``simlab crosscheck FLEET.yaml``: exit 0 agree, 1 disagree, 2 bad input (ScenarioError: 2)."""
    import json
    import signal
    import sys

    from simlab.fleet.spec import load
    from simlab.harness.crosscheck import format_check
    from simlab.harness.fleet import DEFAULT_MODEL_RUNS, run_fleet_crosscheck
    from simlab.io import write_rows
    from simlab.scenario.reader import parse_sets

    connections = (
        DEFAULT_CONNECTIONS if args.harness_connections is None else args.harness_connections
    )
    problems = _fleet_problems(args, connections)
    if problems:
        print("error: " + "\n       ".join(problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    overrides = parse_sets(args.set)
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    fleet, warnings = load(args.scenario, overrides)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    runs = (
        DEFAULT_MODEL_RUNS
        if args.model_connections is None
        else args.model_connections // connections
    )
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        check = run_fleet_crosscheck(
            fleet, time_scale=args.time_scale, connections=connections, runs=runs, alpha=args.alpha
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    rows = check.rows()
    if args.out:
        columns = list(rows[0])
        write_rows(args.out, columns, [[r[k] for k in columns] for r in rows])
    if args.json:
        doc = [{"check": check.name, "agree": check.agree, "ran": check.ran, "comparisons": rows}]
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(format_check(check))
    return 0 if check.agree else EXIT_DISAGREE
