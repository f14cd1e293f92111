"""``simlab net``: the harness's lab network (client, NAT, server namespaces) as a command, so
users can run their own programs through the scenario's NAT and loss.

``up`` builds it and returns (it stays up), ``exec`` runs a program in one namespace, ``fault``
injects an outage or a crash, ``status`` shows it and ``down`` removes it. Exit 2 for bad input
or a machine that cannot run it (not root, no nft), 1 when a command fails, else 0 (``exec``:
the program's own exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from simlab.errors import Problem, ScenarioError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def add_parser(sub, preset_options, load) -> None:
    """Add ``simlab net`` and its commands to simlab's parser; ``preset_options`` adds
    --preset/--network and ``load(args)`` reads the scenario, as for ``simlab run``."""
    net = sub.add_parser(
        "net",
        help="the lab network (client, NAT, server namespaces) for your own programs",
        description=(
            "Build the harness's network namespaces with a scenario's NAT and loss, run your "
            "own programs in them, inject faults, remove them. Linux, root, nftables."
        ),
    )
    cmds = net.add_subparsers(dest="net_command", required=True)

    def named(parser, what):
        parser.add_argument(
            "--name",
            metavar="NAME",
            help=f"{what} (lower-case letters and digits; default: {_default_help(parser)})",
        )

    up = cmds.add_parser("up", help="build the lab network for a scenario; it stays up")
    up.add_argument(
        "scenario", nargs="?", help="scenario YAML file (optional with --preset/--network)"
    )
    preset_options(up)
    up.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted key, e.g. nat.idle_timeout=30s (repeatable)",
    )
    named(up, "the lab's name, so several can be up")
    up.add_argument("--json", action="store_true", help="print the lab's state as JSON")
    up.set_defaults(handler=lambda args: cmd_up(args, load))

    ex = cmds.add_parser(
        "exec",
        help="run a program in one namespace: simlab net exec server -- python3 -m http.server",
    )
    named(ex, "which lab")
    ex.add_argument("side", choices=("client", "server", "nat"), help="the namespace")
    ex.add_argument(
        "program",  # not "command": simlab's parser keeps the subcommand there
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="-- then the program and its arguments",
    )
    ex.set_defaults(handler=cmd_exec)

    fault = cmds.add_parser("fault", help="inject a fault: outage DURATION, crash SIDE, restore")
    kinds = fault.add_subparsers(dest="fault", required=True)
    outage = kinds.add_parser(
        "outage", help="the access (client) link down for DURATION, then back"
    )
    outage.add_argument("duration", metavar="DURATION", help="e.g. 5s, 500ms, 2min")
    named(outage, "which lab")
    crash = kinds.add_parser(
        "crash", help="drop every packet of one side until `simlab net fault restore`"
    )
    crash.add_argument("side", choices=("client", "server"))
    named(crash, "which lab")
    rest = kinds.add_parser("restore", help="end every fault")
    named(rest, "which lab")
    fault.set_defaults(handler=cmd_fault)

    st = cmds.add_parser("status", help="what is up: NAT settings, conntrack entries, faults")
    named(st, "only this lab")
    st.add_argument("--json", action="store_true", help="print a JSON list, one object per lab")
    st.set_defaults(handler=cmd_status)

    dn = cmds.add_parser("down", help="remove the lab: its processes, namespaces, state")
    named(dn, "only this lab")
    dn.set_defaults(handler=cmd_down)


def _default_help(parser) -> str:
    name = parser.prog.split()[-1]
    if name == "up":
        return "lab"
    if name in ("status", "down"):
        return "every lab"
    return "the one that is up"


def _run(handler, args) -> int:
    """Errors as one message: bad input and a machine that cannot run it exit 2."""
    from simlab.harness.net import NetError
    from simlab.harness.netns import NetnsUnavailable

    try:
        return handler(args)
    except NetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except NetnsUnavailable as exc:  # a command failed on a machine that can run it
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _one(name: str | None) -> str:
    """The lab a command is about: --name, else the only one up."""
    from simlab.harness import net

    if name is not None:
        return net.check_name(name)
    up = net.names()
    if len(up) == 1:
        return up[0]
    if not up:
        raise net.NetError("nothing is up: start a lab with `simlab net up SCENARIO`")
    raise ScenarioError(
        [Problem("--name", f"missing: several labs are up ({', '.join(up)}); choose one")],
        "simlab net",
    )


def _sigterm(*_):
    raise KeyboardInterrupt  # unwinds through up's clean-up like Ctrl-C


def cmd_up(args, load) -> int:
    return _run(lambda a: _up(a, load), args)


def _up(args, load) -> int:
    from simlab.harness import net

    name = net.check_name(args.name or net.DEFAULT_NAME)
    if not args.scenario and not (args.preset or args.network):
        raise ScenarioError(
            [Problem("scenario", "missing: give a scenario file (or --preset/--network)")],
            "simlab net up",
        )
    scenario = load(args)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        state = net.up(scenario, name=name, source=args.scenario)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(state, indent=2))
    else:
        print(describe(state))
    return 0


def describe(state: dict, *, howto: bool = True) -> str:
    """The lab for a person: names, addresses, NAT, loss, delay, and how to use it."""
    ns, nat, loss, delay = state["namespaces"], state["nat"], state["loss"], state["delay"]
    server, client, name = state["server"], state["client"], state["name"]
    where = state.get("scenario") or state.get("scenario_name")
    idle = nat["idle_timeout_s"]
    if idle is None:
        timeout = "none in the scenario: the kernel's default (5 days) applies"
    else:
        timeout = f"{idle} s (conntrack, whole seconds)"
        asked = nat.get("scenario_idle_timeout_s")
        if asked is not None and asked != idle:
            timeout += f"; the scenario's {asked:g} s rounded"
    refresh = "packets both ways refresh it (the kernel's conntrack)"
    if nat["refresh"] != "both":
        refresh += (
            f"; the scenario's refresh: {nat['refresh']} is not reproduced (over TCP the "
            "peer's ACKs make the two nearly the same)"
        )
    flag = "" if name == "lab" else f" --name {name}"
    lines = [
        f"lab {name!r} is up (scenario: {where})",
        "  namespaces:  " + ", ".join(f"{role} {ns[role]}" for role in ("client", "nat", "server")),
        f"  server:      listen on {server['address']} port {server['port']} (any port works)",
        f"  client:      {client['address']}, default route through the NAT ({client['gateway']}); "
        f"connect to {server['address']}:{server['port']}",
        f"  NAT:         masquerade to {server['gateway']}; idle timeout {timeout}",
        f"               {refresh}; on expiry: {nat['on_expiry']}",
        f"  loss:        uplink {loss['up']:.4g}, downlink {loss['down']:.4g} "
        "(nftables, each packet independently)",
        f"  delay:       uplink {delay['up_s'] * 1000:g} ms, downlink {delay['down_s'] * 1000:g} ms "
        f"asked: {delay['note']}",
    ]
    if howto:
        lines += [
            "run programs (argument lists; stdin, stdout, stderr and the exit code pass through):",
            f"  simlab net exec{flag} server -- python3 -m http.server --bind {server['address']} {server['port']}",
            f"  simlab net exec{flag} client -- curl http://{server['address']}:{server['port']}/",
            f"faults (the scenario's random crashes and outages are not replayed): "
            f"simlab net fault outage 5s{flag} | simlab net fault crash client{flag} | "
            f"simlab net fault restore{flag}",
            f"then: simlab net status{flag}; simlab net down{flag} removes it all",
        ]
    return "\n".join(lines)


def cmd_exec(args) -> int:
    return _run(_exec, args)


def _exec(args) -> int:
    from simlab.harness import net

    command = list(args.program)
    if command[:1] == ["--"]:
        command = command[1:]
    net.check_command(args.side, command)  # bad input first, whatever is up
    argv = net.exec_argv(_one(args.name), args.side, command)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)  # this process becomes the program: signals and exit code pass
    return EXIT_FAILED  # pragma: no cover


def cmd_fault(args) -> int:
    return _run(_fault, args)


def _fault(args) -> int:
    from simlab.harness import net
    from simlab.units import parse_duration

    if args.fault == "outage":
        try:
            seconds = parse_duration(args.duration)
        except ValueError as exc:
            raise ScenarioError(
                [Problem("DURATION", str(exc))], "simlab net fault outage"
            ) from None
        net.check_outage(seconds)
        name = _one(args.name)
        seconds = net.fault_outage(name, seconds)
        print(
            f"lab {name!r}: the access link (client side) is down for {seconds:g} s, then back "
            "by itself (simlab net fault restore ends it sooner)"
        )
    elif args.fault == "crash":
        name = _one(args.name)
        net.fault_crash(name, args.side)
        print(
            f"lab {name!r}: the {args.side} has crashed silently: every packet it sends or is "
            "sent is dropped, until simlab net fault restore"
        )
    else:
        name = _one(args.name)
        ended = net.restore(name)
        print(f"lab {name!r}: " + (f"ended {', '.join(ended)}" if ended else "no fault was active"))
    return 0


def cmd_status(args) -> int:
    return _run(_status, args)


def _status(args) -> int:
    from simlab.harness import net

    wanted = [net.check_name(args.name)] if args.name else net.names()
    shown, broken = [], []
    for name in wanted:
        try:
            shown.append(net.status(name))
        except net.NetError as exc:
            gone = not net.present(name) and not os.path.exists(net.netns.net_state_path(name))
            if gone:  # nothing there at all (it went down meanwhile): nothing to say
                continue
            broken.append(str(exc))
    if args.json:
        print(json.dumps(shown + [{"error": b} for b in broken], indent=2))
        return EXIT_FAILED if broken else 0
    if not shown and not broken:
        print(f"nothing is up{f' named {args.name!r}' if args.name else ''}")
        return 0
    for state in shown:
        print(describe(state, howto=False))
        print(f"  conntrack:   {state['conntrack_entries']} entries in the NAT")
        print(f"  faults:      {', '.join(state['faults']) or 'none'}")
    for b in broken:
        print(f"error: {b}", file=sys.stderr)
    return EXIT_FAILED if broken else 0


def cmd_down(args) -> int:
    return _run(_down, args)


def _down(args) -> int:
    from simlab.harness import net

    wanted = [net.check_name(args.name)] if args.name else net.names()
    removed = 0
    for name in wanted:
        done = net.down(name)
        if done is None:
            continue
        removed += 1
        pids, spaces = done
        print(f"lab {name!r} removed: namespaces {', '.join(spaces) or 'none left'}")
        if pids:
            print(f"  ended processes in it: {', '.join(map(str, pids))}")
    if not removed:
        print(f"nothing is up{f' named {args.name!r}' if args.name else ''}: nothing to remove")
    return 0
