"""The ``simlab`` command: ``simlab run SCENARIO``, ``simlab check SCENARIO``, ``simlab sweep SWEEP``.

Bad input (a broken scenario file, an unknown key in ``--set``) prints every
problem and exits with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

from simlab.engines import registry
from simlab.engines.metrics import RUN_TABLE
from simlab.errors import OutputError, Problem, ScenarioError
from simlab.io import read_rows, read_text, write_atomic
from simlab.scenario.reader import parse_sets
from simlab.version import __version__

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simlab",
        description="Choose heartbeat settings for long-lived connections, with evidence.",
    )
    p.add_argument("--version", action="version", version=f"simlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario file and print its figures")
    run.add_argument(
        "scenario",
        nargs="?",
        help="scenario YAML file (optional with --preset/--network: the built-in defaults)",
    )
    _preset_options(run)
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted key, e.g. heartbeat.interval=10s (repeatable)",
    )
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--connections", type=int, help="override the number of connections")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument(
        "--out",
        help="also write the JSON to this file (and per-event records beside it as .records.csv)",
    )
    run.add_argument("--progress", action="store_true", help="show a progress bar")
    run.add_argument(
        "--engine",
        default="simpy",
        choices=registry.ENGINES,
        help="simpy (default), analytic (exact, a subset), auto (the most exact that covers the scenario)",
    )

    run.add_argument(
        "--rel-error",
        type=float,
        metavar="R",
        help="fast engine: estimate the false-positive rate to this relative 95%% half-width by importance sampling",
    )
    run.add_argument(
        "--max-wall",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="time budget for --rel-error (default 60)",
    )
    _budget_options(run, "a run")

    conf = sub.add_parser(
        "configure", help="NFD-S settings meeting QoS bounds (Chen, Toueg, Aguilera 2002)"
    )
    conf.add_argument(
        "--max-detection",
        required=True,
        metavar="DURATION",
        help="upper bound on the crash detection time T_D",
    )
    conf.add_argument(
        "--min-mistake-recurrence",
        required=True,
        metavar="DURATION",
        help="lower bound on the mean time between false suspicions E(T_MR)",
    )
    conf.add_argument(
        "--max-mistake-duration",
        required=True,
        metavar="DURATION",
        help="upper bound on the mean length of a false suspicion E(T_M)",
    )
    conf.add_argument("--loss", required=True, type=float, help="message loss probability")
    conf.add_argument(
        "--delay",
        required=True,
        metavar="DIST:PARAMS",
        help="delay distribution, e.g. exponential:20ms, constant:40ms, uniform:10ms:50ms, lognormal:20ms:1, pareto:10ms:2.5",
    )
    conf.add_argument("--json", action="store_true")

    sw = sub.add_parser(
        "sweep", help="run a parameter sweep into a tidy CSV (plus .summary.csv, .meta.json)"
    )
    sw.add_argument("sweep", help="sweep YAML file")
    sw.add_argument("--out", required=True, help="the tidy CSV to write, e.g. data/NAME.csv")
    sw.add_argument("--workers", type=int, help="local processes (default: the number of cores)")
    where = sw.add_mutually_exclusive_group()
    where.add_argument(
        "--dask-scheduler", metavar="tcp://HOST:PORT", help="run on an existing Dask cluster"
    )
    where.add_argument("--dask-local", action="store_true", help="start a Dask LocalCluster")
    sw.add_argument("--resume", action="store_true", help="complete an interrupted sweep's CSV")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument(
        "--strict",
        action="store_true",
        help="refuse impossible points (e.g. a timeout not longer than its interval) instead of leaving them out",
    )
    _budget_options(sw, "the sweep")
    _preset_options(sw, "the base scenario")

    panel = sub.add_parser(
        "validate",
        help="cross-check the engines on a built-in panel of scenarios (exit 1 if any disagree)",
    )
    panel.add_argument(
        "--engines",
        metavar="NAME,NAME",
        help="comma-separated engines to compare (default: every engine but auto)",
    )
    panel.add_argument(
        "--json", action="store_true", help="print one JSON object with a row per check"
    )
    panel.add_argument("--quick", action="store_true", help="a shorter horizon: a smoke run")

    storm = sub.add_parser("storm", help="simulate a fleet's reconnect storm (a kind: fleet file)")
    storm.add_argument("fleet", help="fleet YAML file")
    storm.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted key, e.g. policy=full_jitter (repeatable)",
    )
    storm.add_argument("--seed", type=int, help="override the fleet's seed")
    storm.add_argument("--clients", type=int, help="override the number of clients")
    storm.add_argument("--json", action="store_true", help="print one JSON object")
    storm.add_argument("--out", help="also write the JSON here (and the timeline as .timeline.csv)")
    _budget_options(storm, "a storm")

    val = sub.add_parser("check", help="check a scenario file and print its resolved settings")
    val.add_argument("scenario", nargs="?")
    _preset_options(val)
    val.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    val.add_argument(
        "--engine",
        default="simpy",
        choices=registry.ENGINES,
        help="the engine simlab run would use, for the estimate of its wall time (default simpy)",
    )
    _budget_options(val, "a run")

    pre = sub.add_parser(
        "presets", help="list the --preset and --network presets: settings, caveats, sources"
    )
    pre.add_argument("names", nargs="*", metavar="NAME", help="only these presets")
    pre.add_argument("--json", action="store_true", help="print one JSON list")

    harness = sub.add_parser("harness", help="real-socket harness tools")
    harness_sub = harness.add_subparsers(dest="harness_command", required=True)
    from simlab.harness import load as harness_load

    harness_load.add_parser(harness_sub)
    from simlab.cli import harness as harness_commands

    harness_commands.register(sub, harness_sub, _preset_options)
    from simlab.cli.choose import add_parsers as add_choose_parsers

    add_choose_parsers(sub)  # simlab choose, simlab report
    from simlab.cli.ask import add_parser as add_ask_parser

    add_ask_parser(sub)  # simlab ask
    from simlab.cli.net import add_parser as add_net_parser

    add_net_parser(sub, _preset_options, _load)  # simlab net up|exec|fault|status|down
    return p


def _preset_options(parser: argparse.ArgumentParser, what: str = "the scenario") -> None:
    """--preset and --network: partial scenarios from data/*.csv applied on top of a file."""
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help=f"a library's heartbeat defaults applied to {what} (simlab presets lists them)",
    )
    parser.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a network path's link and middlebox keys applied to {what} (repeatable, in order)",
    )


def _budget_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--budget and --force: how much wall time a command may take before it refuses to start."""
    limit = registry.format_wall(registry.BUDGET_S)
    parser.add_argument(
        "--budget",
        metavar="DURATION",
        help=f"refuse {what} estimated to take longer than this (default {limit})",
    )
    parser.add_argument(
        "--force", action="store_true", help=f"run {what} however long it is estimated to take"
    )


def _check_budget(args, seconds: float, what: str, shrink: str) -> None:
    """Print an estimate above a few seconds; refuse one over --budget (exit 2) unless --force."""
    from simlab.units import parse_duration

    budget = registry.BUDGET_S
    if args.budget is not None:
        try:
            budget = parse_duration(args.budget)
        except ValueError as exc:
            raise ScenarioError([Problem("--budget", str(exc))], "--budget") from None
        if not 0 < budget < math.inf:
            problem = Problem("--budget", f"{args.budget!r}: must be a finite duration above 0")
            raise ScenarioError([problem], "--budget")
    if seconds > budget and not args.force:
        problem = Problem(
            "--budget",
            f"{what}: over the {registry.format_wall(budget)} budget. To shrink it: {shrink}; "
            "or run it anyway with --budget DURATION (a larger limit) or --force",
        )
        raise ScenarioError([problem], f"simlab {args.command}")
    if seconds > registry.NOTICE_S or args.command == "check":
        print(f"estimate: {what}", file=sys.stderr)


def _run_estimate(args, scenario) -> tuple[float, str, str]:
    """(seconds, what, how to shrink it) of one run of ``scenario`` on ``args.engine``."""
    from simlab.units import format_duration

    engine = registry.choose(scenario)[0] if args.engine == registry.AUTO else args.engine
    seconds = registry.estimate(scenario, engine)
    rounds = registry.heartbeat_rounds(scenario)
    speed = registry.REGISTRY[engine].rounds_per_s
    pace = "constant time" if math.isinf(speed) else f"~{speed:,.0f} rounds/s"
    what = (
        f"a run takes about {registry.format_wall(seconds)} on engine {engine} "
        f"({scenario.connections:,} connections x {format_duration(scenario.horizon)} / "
        f"{format_duration(scenario.heartbeat.interval)} = {rounds:.3g} heartbeat rounds, {pace})"
    )
    shrink = "fewer connections (--connections), a shorter horizon (--set horizon=...)" + (
        ", or a faster engine (--engine auto picks one)" if engine == "simpy" else ""
    )
    return seconds, what, shrink


def _load(args):
    """The scenario: defaults < file < --preset < --network < --set (then --seed, --connections).

    The layering is :func:`simlab.scenario.presets.load_layered`'s, as in simlab.load_scenario.
    """
    from simlab.scenario.presets import load_layered

    path = getattr(args, "scenario", None)
    if path is not None and Path(path).is_file():
        from simlab.fleet.spec import is_fleet
        from simlab.scenario.reader import read_yaml

        if is_fleet(read_yaml(path)):
            raise ScenarioError(
                [
                    Problem(
                        "kind",
                        "fleet: this is a fleet file, not a scenario; run it with "
                        f"`simlab storm {path}` (or `simlab crosscheck {path}` on real sockets)",
                    )
                ],
                str(path),
            )
    overrides = parse_sets(args.set)
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "connections", None) is not None:
        overrides["connections"] = args.connections
    scenario, warnings = load_layered(
        getattr(args, "scenario", None),
        preset=getattr(args, "preset", None),
        networks=getattr(args, "network", None) or [],
        overrides=overrides,
    )
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return scenario


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


# (heading, keys) of the table, from the metric registry (simlab.engines.metrics)
SECTIONS = RUN_TABLE


def format_table(summary: dict) -> str:
    lines = [f"scenario: {summary.get('scenario')}"]
    width = max(len(k) for _, keys in SECTIONS for k in keys)
    for title, keys in SECTIONS:
        shown = [k for k in keys if k in summary]
        if not shown:
            continue
        lines.append(f"\n{title}")
        lines += [f"  {k:<{width}}  {_fmt(summary[k])}" for k in shown]
    return "\n".join(lines)


def _json_default(value):
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _clean(summary: dict) -> dict:
    """JSON has no NaN: write null instead."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def cmd_run(args) -> int:
    from simlab.engines.registry import run
    from simlab.engines.runner import simulate
    from simlab.scenario.schema import flatten, to_dict

    scenario = _load(args)
    if args.rel_error is None:  # rare-event estimation keeps to its own --max-wall
        _check_budget(args, *_run_estimate(args, scenario))
    records = None
    if args.engine == "simpy" and args.rel_error is None:  # the model also gives per-event records
        result = simulate(scenario, progress=args.progress)
        figures, records = result.summary, result.records
    else:
        figures = run(
            scenario,
            args.engine,
            rel_error=args.rel_error,
            max_wall=args.max_wall,
            progress=args.progress,
        )
    summary = _clean(figures)
    if args.out:
        out = Path(args.out)
        full = summary | {"parameters": flatten(to_dict(scenario))}
        write_atomic(out, json.dumps(full, indent=2, default=_json_default) + "\n")
        if records is not None:
            write_atomic(out.with_suffix(".records.csv"), records.to_csv(index=False))
    print(json.dumps(summary, default=_json_default) if args.json else format_table(figures))
    return 0


def cmd_sweep(args) -> int:
    from simlab.scenario.presets import describe
    from simlab.sweeps.sweep import estimate_sweep, load_sweep, run_sweep, runs_done

    if args.workers is not None and args.workers < 1:
        raise ScenarioError(
            [Problem("--workers", f"{args.workers}: must be at least 1")], "simlab sweep"
        )
    spec = load_sweep(args.sweep, preset=args.preset, networks=args.network, strict=args.strict)
    work = estimate_sweep(spec, args.workers, runs_done(args.out) if args.resume else 0)
    _check_budget(
        args,
        work.seconds,
        f"the sweep takes {work}",
        "fewer points or replications, a shorter horizon, fewer connections, a faster "
        "engine (engine: auto), or more --workers",
    )
    text = read_text(args.sweep, what="sweep file")
    if args.preset or args.network:  # the meta file says what the base scenario got
        text += f"\n# {describe('base scenario', args.preset, args.network)}\n"
    out = Path(args.out)
    resume = f"simlab sweep {args.sweep} --out {args.out} --resume"
    try:
        with _sigterm_as_interrupt():  # kill PID ends a sweep as Ctrl-C does: rows kept, resumable
            outcome = run_sweep(
                spec,
                args.out,
                workers=args.workers,
                dask_scheduler=args.dask_scheduler,
                dask_local=args.dask_local,
                resume=args.resume,
                progress=not args.quiet,
                sweep_text=text,
            )
    except OutputError as exc:  # a full disk mid-sweep: the rows written so far are kept
        if not out.is_file() or out.stat().st_size == 0 or not read_rows(out)[1]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        print(
            f"the sweep stopped; the rows written are kept in {out}: "
            f"once the file can be written, complete it with {resume}",
            file=sys.stderr,
        )
        return 1
    print(
        f"{len(outcome.rows)} rows in {out}; summary {out.with_suffix('.summary.csv')}; meta {out.with_suffix('.meta.json')}",
        file=sys.stderr,
    )
    if outcome.interrupted:
        print(f"interrupted: complete it with {resume}", file=sys.stderr)
        return 130
    if outcome.failed:
        print(
            f"failed points ({len(outcome.failed)}): {', '.join(outcome.failed)} (see the error column)",
            file=sys.stderr,
        )
        return 1
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in this process while the block runs (main thread
    only); a forked worker that inherits the handler dies of SIGTERM as it would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_delay(text: str):
    """``exponential:20ms`` -> Exponential(0.02): the family, then its parameters in order."""
    from simlab.scenario.distributions import DIMENSIONLESS, FAMILIES
    from simlab.units import parse_duration

    name, *params = text.split(":")
    if name not in FAMILIES:
        raise ValueError(f"{name!r}: the family must be one of {', '.join(FAMILIES)}")
    cls, names = FAMILIES[name]
    if len(params) != len(names):
        raise ValueError(
            f"{name} takes {len(names)} parameter(s) ({', '.join(names)}), e.g. {name}:"
            + ":".join("1" if n in DIMENSIONLESS else "20ms" for n in names)
        )
    return cls(
        *(
            float(v) if n in DIMENSIONLESS else parse_duration(v)
            for n, v in zip(names, params, strict=True)
        )
    )


def cmd_configure(args) -> int:
    from simlab.engines.analytic.theory import nfd_s_configure, nfd_s_qos
    from simlab.scenario.reader import Reader
    from simlab.units import format_duration

    r, bounds = Reader(), {}  # the options, read as a mapping of option name -> value
    for key in ("max_detection", "min_mistake_recurrence", "max_mistake_duration"):
        option = "--" + key.replace("_", "-")
        bounds[key] = r.duration({option: getattr(args, key)}, option, "", None)
    if not 0 <= args.loss < 1:  # not r.probability: it words nan and inf otherwise
        r.error("--loss", f"{args.loss!r} is not allowed: must be >= 0 and < 1")
    try:
        delay = parse_delay(args.delay)
    except ValueError as exc:
        r.error("--delay", str(exc))
    if r.errors:
        raise ScenarioError(r.errors, "simlab configure")
    try:
        eta, delta = nfd_s_configure(
            bounds["max_detection"],
            bounds["min_mistake_recurrence"],
            bounds["max_mistake_duration"],
            args.loss,
            delay,
        )
    except ValueError as exc:
        print(f"no setting meets the bounds: {exc}", file=sys.stderr)
        return 1
    qos = nfd_s_qos(eta, delta, args.loss, delay)
    out = {
        "interval_s": eta,
        "delta_s": delta,
        "detection_time_bound_s": qos.detection_time_bound,
        "mistake_recurrence_mean_s": qos.mistake_recurrence_mean,
        "mistake_duration_mean_s": qos.mistake_duration_mean,
        "mistake_rate_per_s": qos.mistake_rate,
        "query_accuracy": qos.query_accuracy,
    }
    if args.json:
        print(json.dumps(_clean(out)))
        return 0
    print(
        f"heartbeat interval eta = {eta:.6g} s, freshness shift delta = {delta:.6g} s (detector.kind: nfd, detector.nfd.delta)"
    )
    print(f"  detection time     T_D   <= {format_duration(qos.detection_time_bound)}")
    print(f"  mistake recurrence E(T_MR) = {format_duration(qos.mistake_recurrence_mean)}")
    print(f"  mistake duration   E(T_M)  = {format_duration(qos.mistake_duration_mean)}")
    print(f"  query accuracy     P_A     = {qos.query_accuracy:.9f}")
    return 0


def cmd_check(args) -> int:
    from simlab.scenario.presets import describe
    from simlab.scenario.schema import flatten, to_dict

    scenario = _load(args)
    for key, value in flatten(to_dict(scenario)).items():
        print(f"{key} = {value}")
    _check_budget(args, *_run_estimate(args, scenario))
    where = describe(args.scenario, args.preset, args.network)
    print(f"ok: {where} (detector side: {scenario.detector_side})", file=sys.stderr)
    return 0


def cmd_presets(args) -> int:
    from simlab.scenario.presets import listing, to_json

    if args.json:
        print(json.dumps(to_json(args.names)))
    else:
        print(listing(args.names), end="")
    return 0


def cmd_validate(args) -> int:
    from simlab.checks.panel import format_table as panel_table
    from simlab.checks.panel import parse_engines, run_panel, to_json

    report = run_panel(parse_engines(args.engines), quick=args.quick)
    if args.json:
        print(json.dumps(to_json(report), default=_json_default))
    else:
        print(panel_table(report))
    return 0 if report.ok else 1


def cmd_crosscheck(args) -> int:
    from simlab.cli.harness import cmd_crosscheck as run

    return run(args, _load)


def cmd_storm(args) -> int:
    """A fleet's reconnect storm: its figures as a table or JSON; ``--out`` also writes the
    JSON with every parameter and the timeline beside it as ``.timeline.csv``."""
    from simlab.fleet.model import simulate_fleet
    from simlab.fleet.spec import load, to_dict
    from simlab.fleet.storm import clean, format_table
    from simlab.scenario.schema import flatten

    overrides = parse_sets(args.set)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.clients is not None:
        overrides["clients"] = args.clients
    fleet, warnings = load(args.fleet, overrides)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    seconds = registry.estimate(fleet)
    pace = registry.REGISTRY["simpy"].attempts_per_s
    what = (
        f"a storm takes about {registry.format_wall(seconds)} ({fleet.clients:,} clients, up to "
        f"{registry.FLEET_ATTEMPTS} reconnection attempts each, ~{pace:,.0f} attempts/s)"
    )
    _check_budget(args, seconds, what, "fewer clients (--clients)")
    result = simulate_fleet(fleet)
    summary = clean(result.summary)
    if args.out:
        out = Path(args.out)
        full = summary | {"parameters": flatten(to_dict(fleet))}
        write_atomic(out, json.dumps(full, indent=2, default=str) + "\n")
        write_atomic(out.with_suffix(".timeline.csv"), result.timeline.to_csv(index=False))
    print(json.dumps(summary) if args.json else format_table(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {
            "run": cmd_run,
            "sweep": cmd_sweep,
            "check": cmd_check,
            "configure": cmd_configure,
            "validate": cmd_validate,
            "storm": cmd_storm,
            "presets": cmd_presets,
            "harness": lambda a: a.handler(a),  # each harness tool sets its own handler
            "crosscheck": cmd_crosscheck,
            "choose": lambda a: a.handler(a),
            "report": lambda a: a.handler(a),
            "ask": lambda a: a.handler(a),
            "net": lambda a: a.handler(a),
        }
        return commands[args.command](args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `simlab ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a last resort: a file the OS refused, in one line, no traceback
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
