"""The command line of the harness: ``simlab crosscheck`` (scenarios and fleets) and
``simlab harness cleanup``."""

from __future__ import annotations

import json
import math
import signal
import sys

from simlab.errors import Problem, ScenarioError

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
            "The automatic time scale keeps every ordering that decides the answer (heartbeat "
            "interval, detector timeout and NAT timeout against each other and against the "
            "kernel's whole-second conntrack and unscaled TCP constants); a --time-scale that "
            "breaks one is refused. A metric with no events on either side is no evidence. "
            "Exit 0: agree; 1: disagree, or nothing could be tested (--panel: an item "
            "disagrees, or none agrees); 2: bad input or the "
            "backend cannot run here; 130: interrupted (Ctrl-C or SIGTERM)."
        ),
    )
    cc.add_argument("scenario", nargs="?", help="scenario file (omit with --panel)")
    preset_options(cc)
    cc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    cc.add_argument(
        "--backend",
        choices=("netns", "proxy"),
        default=None,
        help="proxy (default) or netns; your own programs always run in the netns lab",
    )
    cc.add_argument(
        "--time-scale",
        type=float,
        default=None,
        metavar="X",
        help="multiply every duration by X (default: the automatic scale, which keeps every "
        "ordering that decides the answer; a fleet file: 0.05)",
    )
    cc.add_argument(
        "--connections",
        type=int,
        default=None,
        dest="harness_connections",
        help="real connections (default: the scenario's connections; the panel: 10; a fleet "
        "file: real clients, default 100)",
    )
    cc.add_argument("--model-connections", type=int, default=None, help="model replications")
    cc.add_argument("--policy", choices=("detector", "websockets-native"), default="detector")
    cc.add_argument("--alpha", type=float, default=0.01, help="family-wise error rate of one check")
    cc.add_argument("--out", metavar="FILE.csv", help="write the comparison rows as CSV")
    cc.add_argument("--json", action="store_true", help="print JSON instead of the table")
    cc.add_argument("--panel", action="store_true", help="run the built-in panel instead of a file")
    cc.add_argument(
        "--quiet", action="store_true", help="no progress line on stderr during the run"
    )
    cc.add_argument(
        "--server-cmd",
        metavar="'CMD {host} {port}'",
        help="check your own server: its command (split like a shell, run without one), "
        "started in the lab's server namespace; needs --client-cmd and a scenario (or "
        "--preset) that states the settings your programs use (at the --time-scale, default 1)",
    )
    cc.add_argument(
        "--client-cmd",
        metavar="'CMD {url}'",
        help="your client's command: one process per connection, in the client namespace",
    )
    cc.add_argument(
        "--libraries",
        action="store_true",
        help="each shipped adapter pair whose server pings (gorilla+ws, ws+ws, socketio, "
        "websockets) with its default settings through four cases (the interval below and "
        "above the NAT timeout, silent client crashes, 5%% loss): model vs real per library (minutes)",
    )


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


MAX_CONNECTIONS = 2000
PANEL_CONNECTIONS = 10


MAX_EXTERNAL_CONNECTIONS = 200  # a process each


def _problems(args) -> list[str]:
    out = []
    external = args.server_cmd is not None or args.client_cmd is not None
    if external:
        if args.server_cmd is None or args.client_cmd is None:
            out.append("--server-cmd/--client-cmd: give both (your server and your client)")
        if args.panel:
            out.append("--panel: runs simlab's own endpoints; not with --server-cmd/--client-cmd")
        if args.backend == "proxy":
            out.append("--backend proxy: your own programs run in the netns lab (--backend netns)")
        if args.policy != "detector":
            out.append("--policy: your programs keep alive their own way; not with --server-cmd")
        n = args.harness_connections
        if n is not None and n > MAX_EXTERNAL_CONNECTIONS:
            out.append(f"--connections: 1 to {MAX_EXTERNAL_CONNECTIONS} client processes, got {n}")
    if args.time_scale is not None and not (args.time_scale > 0 and math.isfinite(args.time_scale)):
        out.append(f"--time-scale: must be a positive number, got {args.time_scale}")
    n = args.harness_connections
    if n is not None and not 1 <= n <= MAX_CONNECTIONS:
        out.append(f"--connections: 1 to {MAX_CONNECTIONS} real connections, got {n}")
    if args.model_connections is not None and args.model_connections < 1:
        out.append(f"--model-connections: at least 1, got {args.model_connections}")
    if not 0 < args.alpha < 1:
        out.append(f"--alpha: between 0 and 1, got {args.alpha}")
    if (
        not args.panel
        and not args.libraries
        and not args.scenario
        and not (args.preset or args.network)
    ):
        out.append("scenario: give a scenario file (or --preset/--network), or --panel")
    return out


def _sigterm(*_):
    raise KeyboardInterrupt  # unwinds through the harness's teardown like Ctrl-C


EXIT_INTERRUPTED = 130
INTERRUPTED = (
    "interrupted: the cross-check stopped; its sockets, namespaces and nftables tables are removed"
)


class ProgressLine:
    """The real run's clock as a tqdm line on stderr, with its ETA (made on first use)."""

    def __init__(self):
        self.bar = None

    def __call__(self, now: float, total: float) -> None:
        if self.bar is None:
            from tqdm import tqdm

            digits = 1 if total < 20 else 0  # a short run's seconds, to a tenth
            self.bar = tqdm(
                total=round(total, 1),
                desc="real sockets",
                unit="s",
                file=sys.stderr,
                bar_format=f"{{desc}}: {{percentage:3.0f}}%|{{bar}}| {{n:.{digits}f}}/"
                f"{{total:.{digits}f}} s of the scaled run [{{elapsed}}<{{remaining}}]",
                mininterval=0.5,
            )
        self.bar.n = round(now, 1)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def connections_line(given: int | None, scenario_says: int) -> str | None:
    """The one line that says --connections replaced the scenario's, or None."""
    if given is None or given == scenario_says:
        return None
    return f"connections: {given} (--connections; the scenario says {scenario_says})"


def cmd_crosscheck(args, load) -> int:
    """``simlab crosscheck``: exit 0 agree, 1 disagree or nothing tested, 2 bad input,
    130 interrupted (Ctrl-C or SIGTERM: the run's teardown leaves nothing behind)."""
    if args.scenario and is_fleet_file(args.scenario):  # the real small fleet on loopback
        if args.time_scale is None:
            args.time_scale = FLEET_TIME_SCALE
        return cmd_fleet_crosscheck(args)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    progress = None if args.quiet else ProgressLine()
    try:
        return _crosscheck(args, load, progress)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if progress is not None:
            progress.close()
        signal.signal(signal.SIGTERM, previous)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _crosscheck(args, load, progress) -> int:
    from simlab.harness import crosscheck as cc
    from simlab.harness.netns import unavailable_reason
    from simlab.io import write_rows

    problems = _problems(args)
    if args.libraries:
        if args.scenario or args.panel or args.server_cmd or args.client_cmd:
            problems.append(
                "--libraries: runs its own cases; give no scenario, --panel or commands"
            )
        if (reason := wire_reason()) is not None:
            problems.append(f"--libraries: {reason}")
        if not problems:
            return _libraries(args)
    if args.server_cmd is not None and args.client_cmd is not None and not problems:
        return _external(args, load, progress)
    args.backend = args.backend or "proxy"
    if args.backend == "netns" and (reason := unavailable_reason()):
        problems.append(f"--backend netns: {reason}")
    if problems:
        print("error: " + "\n       ".join(problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.panel:
        results = cc.run_panel(
            args.backend,
            connections=args.harness_connections or PANEL_CONNECTIONS,
            progress=None if args.json else print,
        )
        checks = [c for _, c in results if not isinstance(c, str)]
        for name, c in results:
            if isinstance(c, str) and not args.json:
                print(f"cross-check {name}: {c}")
    else:
        scenario = load(args)
        given = args.harness_connections
        connections = scenario.connections if given is None else given
        if not 1 <= connections <= MAX_CONNECTIONS:
            print(
                f"error: connections: the scenario has {connections}; the harness runs 1 to "
                f"{MAX_CONNECTIONS} real connections: give --connections N",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        if line := connections_line(given, scenario.connections):
            _say(line)
        check = cc.run_crosscheck(
            scenario,
            backend=args.backend,
            time_scale=args.time_scale,
            connections=connections,
            model_connections=args.model_connections,
            policy=args.policy,
            alpha=args.alpha,
            announce=_say,
            progress=progress,
        )
        if progress is not None:
            progress.close()
        checks = [check]
        if not args.json:
            print(cc.format_check(check))
    rows = [row for c in checks for row in c.rows()]
    if args.out:
        columns = list(rows[0]) if rows else ["check"]
        write_rows(args.out, columns, [[r[k] for k in columns] for r in rows])
    if args.json:
        print(json.dumps([c.to_json() for c in checks], indent=2, default=str))
    if args.panel:  # an item where nothing happens (no evidence) doesn't fail the panel
        ok = any(c.agree for c in checks) and not any(c.verdict == "DISAGREE" for c in checks)
    else:
        ok = bool(checks) and all(c.agree for c in checks)
    return 0 if ok else EXIT_DISAGREE


def wire_reason() -> str | None:
    from simlab.harness.wire import unavailable_reason

    return unavailable_reason()


def _libraries(args) -> int:
    """``simlab crosscheck --libraries``: exit 0 when no case disagrees and one agrees."""
    from simlab.harness import crosscheck as cc
    from simlab.io import write_rows

    results = cc.run_libraries(
        connections=args.harness_connections or 6, progress=None if args.json else print
    )
    checks = [c for _, _, c in results if not isinstance(c, str)]
    if args.json:
        print(json.dumps([c.to_json() for c in checks], indent=2, default=str))
    else:
        print(cc.format_libraries(results))
    rows = [row for c in checks for row in c.rows()]
    if args.out and rows:
        columns = list(rows[0])
        write_rows(args.out, columns, [[r[k] for k in columns] for r in rows])
    ok = any(c.agree for c in checks) and not any(c.verdict == "DISAGREE" for c in checks)
    return 0 if ok else EXIT_DISAGREE


def stated_keys(args) -> set[str]:
    """The dotted keys the scenario file, --preset, --network and --set state (not defaults)."""
    from simlab.scenario.presets import layered
    from simlab.scenario.reader import parse_sets, read_yaml

    out: set[str] = set()

    def walk(prefix: str, value) -> None:
        out.add(prefix)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)

    if args.scenario:
        walk("", read_yaml(args.scenario))
    for key, value in layered(args.preset, args.network, parse_sets(args.set)).items():
        walk(key, value)
    return out


def unstated(scenario, keys: set[str]) -> list[str]:
    """The model settings that must describe the user's programs but were left to defaults."""
    from simlab.harness.crosscheck import STATED

    need = list(STATED)
    kind = scenario.detector.kind
    need.append({"timeout": "detector.timeout", "missed": "detector.missed.ack_timeout"}.get(
        kind, f"detector.{kind}"))  # fmt: skip
    return [k for k in need if k not in keys]


def _external(args, load, progress) -> int:
    """``simlab crosscheck --server-cmd ... --client-cmd ...``: the user's programs against
    the model; exit 0 agree, 1 disagree or nothing tested, 2 bad input (a ScenarioError)."""
    from simlab.harness import crosscheck as cc
    from simlab.harness.external import parse_command
    from simlab.io import write_rows

    server = parse_command(args.server_cmd, "--server-cmd")
    client = parse_command(args.client_cmd, "--client-cmd")
    scenario = load(args)
    missing = unstated(scenario, stated_keys(args))
    if missing:
        raise ScenarioError(
            [
                Problem(
                    key,
                    "not stated: the model must run the settings your programs use; state it "
                    "in the scenario file, with --preset, or --set KEY=VALUE",
                )
                for key in missing
            ],
            "simlab crosscheck --server-cmd",
        )
    given = args.harness_connections
    connections = scenario.connections if given is None else given
    if not 1 <= connections <= MAX_EXTERNAL_CONNECTIONS:
        raise ScenarioError(
            [
                Problem(
                    "--connections",
                    f"the scenario has {connections}; your programs run 1 to "
                    f"{MAX_EXTERNAL_CONNECTIONS} client processes: give --connections N",
                )
            ],
            scenario.name,
        )
    if line := connections_line(given, scenario.connections):
        _say(line)
    check = cc.run_external_crosscheck(
        scenario,
        server,
        client,
        time_scale=args.time_scale,
        connections=connections,
        model_connections=args.model_connections,
        alpha=args.alpha,
        announce=_say,
        progress=progress,
    )
    if progress is not None:
        progress.close()
    rows = check.rows()
    if args.out:
        columns = list(rows[0]) if rows else ["check"]
        write_rows(args.out, columns, [[r[k] for k in columns] for r in rows])
    if args.json:
        print(json.dumps([check.to_json()], indent=2, default=str))
    else:
        print(cc.format_check(check))
    return 0 if check.agree else EXIT_DISAGREE


def register(sub, harness_sub, preset_options) -> None:
    """Add the harness's commands to simlab's parser."""
    add_crosscheck_parser(sub, preset_options)
    add_harness_tools(harness_sub)


# -- ``simlab crosscheck FLEET.yaml`` ------------------------------------------------------

DEFAULT_CONNECTIONS = 100
FLEET_TIME_SCALE = 0.05


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
    if args.server_cmd is not None or args.client_cmd is not None:
        out.append("--server-cmd/--client-cmd: they check a scenario, not a fleet file")
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
        print(json.dumps([check.to_json()], indent=2, default=str))
    else:
        print(format_check(check))
    return 0 if check.agree else EXIT_DISAGREE
