"""A lab network that outlives its command (``simlab net``): users run their own programs in it.

:class:`~simlab.harness.netns.Lab` builds the client, NAT and server namespaces with the
scenario's NAT and loss; here they get lasting names (``simlab-net-NAME-ROLE``), a state file
(``/run/simlab/net/NAME.json``, written before the first namespace exists, so a crash while
building is never mistaken for a lab in use) and a second nftables table for faults:

* ``cut``: the nat namespace's veth towards a crashed side. Its packets are dropped before
  conntrack sees them (prerouting at priority -300), as a silently crashed host sends
  nothing; the other side's packets still reach the NAT, refresh it, and are dropped on
  the way out, as they would be on a real path.
* ``outage``: the same for the access (client) link, with a kernel timeout on the element,
  so the link comes back by itself and no process has to stay alive for it.

Every command is an argument list; nothing from the user reaches nft or a shell verbatim
(sides are chosen from a fixed list, durations are numbers).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from simlab.errors import Problem, ScenarioError
from simlab.harness import netns
from simlab.harness.netns import CLIENT_GW, CLIENT_IP, NAT_OUT, SERVER_IP, SERVER_PORT
from simlab.io import write_atomic

DEFAULT_NAME = "lab"
NAME = re.compile(r"[a-z0-9]{1,16}")
FAULTS = "simlab_net"  # the fault table in the nat namespace
MAX_OUTAGE_S = 7 * 86400

FAULT_RULES = f"""
table ip {FAULTS} {{
  set cut {{ type ifname; }}
  set outage {{ type ifname; flags timeout; }}
  chain prerouting {{
    type filter hook prerouting priority -300; policy accept;
    iifname @cut drop
    iifname @outage drop
  }}
  chain forward {{
    type filter hook forward priority -10; policy accept;
    oifname @cut drop
    oifname @outage drop
  }}
  chain output {{
    type filter hook output priority -10; policy accept;
    oifname @cut drop
    oifname @outage drop
  }}
}}
"""


class NetError(RuntimeError):
    """``simlab net`` cannot do what was asked (nothing is up, not root): the message says why
    and what to do; ``code`` is the exit code (2: this machine cannot run it)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ScenarioError(
            [Problem("--name", f"{name!r}: 1 to 16 lower-case letters and digits")], "simlab net"
        )
    return name


def read_state(name: str) -> dict | None:
    """The state file of lab ``name``, or None when there is none (or it is unreadable)."""
    try:
        with open(netns.net_state_path(name)) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def names() -> list[str]:
    """Every lab with a state file or a namespace."""
    found = set()
    with contextlib.suppress(OSError):
        found |= {f[:-5] for f in os.listdir(netns.NET_STATE_DIR) if f.endswith(".json")}
    with contextlib.suppress(OSError):
        for ns in os.listdir(netns.NETNS_DIR):
            if ns.startswith(netns.NET_PREFIX):
                found.add(ns[len(netns.NET_PREFIX) :].rsplit("-", 1)[0])
    return sorted(n for n in found if NAME.fullmatch(n))


def present(name: str) -> list[str]:
    """The namespaces of lab ``name`` that exist."""
    return [ns for ns in netns.net_namespaces(name).values() if _exists(ns)]


def _exists(ns: str) -> bool:
    return os.path.exists(os.path.join(netns.NETNS_DIR, ns))


def _pid_alive(pid) -> bool:
    try:
        return os.path.exists(f"/proc/{int(pid)}")
    except (TypeError, ValueError):
        return False


# -- up ------------------------------------------------------------------------------------------


def refusals(scenario) -> list[str]:
    """What of the scenario the lab network cannot reproduce (netns.NetnsBackend's list)."""
    return netns.NetnsBackend.refusals(scenario)


def _claim(name: str) -> None:
    """Create the state file, exclusively: a second ``up`` of the same name fails here."""
    path = netns.net_state_path(name)
    try:
        os.makedirs(netns.NET_STATE_DIR, exist_ok=True)
    except OSError as exc:
        raise NetError(f"cannot create {netns.NET_STATE_DIR}: {exc.strerror}") from None
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            state = read_state(name) or {}
            if (
                attempt == 0
                and state.get("status") == "building"
                and not _pid_alive(state.get("pid"))
            ):
                _remove(name)  # an ``up`` that died while building: its remains go first
                continue
            _refuse_second(name, state)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"name": name, "status": "building", "pid": os.getpid()}, f)
        except BaseException:  # Ctrl-C right here: no empty state file left behind
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return


def _refuse_second(name: str, state: dict) -> None:
    if state.get("status") == "building":
        what = f"is being built by process {state.get('pid')}"
    else:
        what = f"is up (since {state.get('created', '?')})"
    raise ScenarioError(
        [
            Problem(
                "--name",
                f"{name!r}: the lab {name!r} {what}; one lab per name: "
                f"`simlab net down --name {name}` removes it, or give another --name",
            )
        ],
        "simlab net up",
    )


def _delay(lab: netns.Lab, scenario) -> dict:
    """netem on the nat namespace's veths if this kernel has it; else say why not."""
    up, down = scenario.link.up.delay.mean, scenario.link.down.delay.mean
    out = {"up_s": up, "down_s": down, "applied": False}
    if up <= 0 and down <= 0:
        out["note"] = "none asked for; the path's own delay is the veths' (well under 1 ms)"
        return out
    if shutil.which("tc") is None:
        out["note"] = (
            "not applied: `tc` (Debian package iproute2) is missing; nothing is applied "
            "instead, so the path's delay is the veths' own (well under 1 ms)"
        )
        return out
    try:
        for side, seconds in (("server", up), ("client", down)):  # egress towards that side
            if seconds > 0:
                lab.run("nat", "tc", "qdisc", "add", "dev", lab.veth(side), "root", "netem", "delay",
                        f"{seconds * 1000:.3f}ms")  # fmt: skip
    except netns.NetnsUnavailable as exc:
        reason = "this kernel has no sch_netem" if "unknown" in str(exc).lower() else str(exc)
        out["note"] = (
            f"not applied: {reason}; nothing is applied instead, so the path's delay is the "
            "veths' own (well under 1 ms): measure it (e.g. a TCP connect time) if it matters"
        )
        return out
    out["applied"] = True
    out["note"] = "netem, a constant delay per direction (the scenario's mean)"
    return out


def up(scenario, *, name: str = DEFAULT_NAME, source: str | None = None) -> dict:
    """Build lab ``name`` for ``scenario`` and return its state (also in its state file).

    Every exit before the end (an error, Ctrl-C, SIGTERM turned into KeyboardInterrupt)
    removes what was built, the state file included.
    """
    check_name(name)
    reason = netns.unavailable_reason()
    if reason:
        reason = reason.replace("the netns backend", "simlab net").replace(
            "; use --backend proxy", ""
        )
        raise NetError(reason, code=2)
    problems = refusals(scenario)
    if problems:
        raise ScenarioError([Problem("", p) for p in problems], "simlab net up")
    _claim(name)
    try:
        nat_s = netns.NetnsBackend.nat_seconds(scenario)
        lab = netns.Lab(
            0,
            nat_s,
            scenario.link.up.loss.p,
            scenario.link.down.loss.p,
            scenario.nat.on_expiry,
            name=name,
        )
        lab.run("nat", "nft", "-f", "-", stdin=FAULT_RULES)
        delay = _delay(lab, scenario)
        idle = scenario.nat.idle_timeout
        state = {
            "name": name,
            "status": "up",
            "pid": os.getpid(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "scenario": source,
            "scenario_name": scenario.name,
            "tag": lab.tag,
            "namespaces": lab.ns,
            "server": {"address": SERVER_IP, "port": SERVER_PORT, "gateway": NAT_OUT},
            "client": {"address": CLIENT_IP, "gateway": CLIENT_GW},
            "nat": {
                "idle_timeout_s": nat_s,
                "scenario_idle_timeout_s": None if idle is None else idle.value,
                "refresh": scenario.nat.refresh,
                "on_expiry": scenario.nat.on_expiry,
            },
            "loss": {"up": scenario.link.up.loss.p, "down": scenario.link.down.loss.p},
            "delay": delay,
        }
        write_atomic(netns.net_state_path(name), json.dumps(state, indent=2) + "\n")
        return state
    except BaseException:
        with _signals_held():
            _remove(name)
        raise


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C and SIGTERM wait while the block runs (a clean-up that must not be cut short)."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# -- a lab that is up ------------------------------------------------------------------------------


def attach(name: str) -> tuple[dict, netns.Lab]:
    """The state and Lab of the lab ``name``, which must be up with all its namespaces."""
    check_name(name)
    state = read_state(name)
    if state is None or state.get("status") != "up":
        others = [n for n in names() if n != name]
        hint = f" (up: {', '.join(others)}; choose one with --name)" if others else ""
        raise NetError(f"no lab {name!r} is up{hint}: start one with `simlab net up SCENARIO`")
    missing = [ns for ns in state["namespaces"].values() if not _exists(ns)]
    if missing:
        raise NetError(
            f"the lab {name!r} is broken: namespace(s) {', '.join(missing)} are gone "
            f"(removed by hand or by `simlab harness cleanup --all`); `simlab net down --name {name}` clears it"
        )
    if os.geteuid() != 0:
        raise NetError("simlab net: entering network namespaces needs root", code=2)
    lab = netns.Lab.attach(state["namespaces"], state["tag"], state["nat"]["idle_timeout_s"])
    return state, lab


def check_command(role: str, command: list[str]) -> None:
    """Bad input for ``exec``: an unknown side, no program, a program not found."""
    if role not in netns.ROLES:
        raise ScenarioError(
            [Problem("side", f"{role!r}: one of {', '.join(netns.ROLES)}")], "simlab net exec"
        )
    if not command:
        raise ScenarioError(
            [Problem("COMMAND", "missing: give the program and its arguments after --")],
            "simlab net exec",
        )
    program = command[0]
    found = os.access(program, os.X_OK) if "/" in program else shutil.which(program) is not None
    if not found:
        raise ScenarioError(
            [Problem("COMMAND", f"{program!r}: no such program (not an executable on PATH)")],
            "simlab net exec",
        )


def exec_argv(name: str, role: str, command: list[str]) -> list[str]:
    """The argument list that runs ``command`` inside ``role``'s namespace of lab ``name``."""
    check_command(role, command)
    state, _ = attach(name)
    return ["ip", "netns", "exec", state["namespaces"][role], *command]


def check_outage(seconds: float) -> float:
    if not 0.001 <= seconds <= MAX_OUTAGE_S:
        raise ScenarioError(
            [Problem("DURATION", f"{seconds:g} s: from 1ms to {MAX_OUTAGE_S // 86400} days")],
            "simlab net fault outage",
        )
    return seconds


def fault_outage(name: str, seconds: float) -> float:
    """The access (client) link down for ``seconds``, then back by itself (a kernel timeout)."""
    check_outage(seconds)
    _, lab = attach(name)
    veth = lab.veth("client")
    with contextlib.suppress(netns.NetnsUnavailable):  # a second outage replaces the first
        lab.run("nat", "nft", "delete", "element", "ip", FAULTS, "outage", "{", veth, "}")
    ms = max(1, round(seconds * 1000))
    lab.run(
        "nat", "nft", "add", "element", "ip", FAULTS, "outage", "{", veth, "timeout", f"{ms}ms", "}"
    )
    return ms / 1000


def fault_crash(name: str, side: str) -> None:
    """Drop every packet of ``side`` (client or server) until :func:`restore`: a silent crash."""
    if side not in ("client", "server"):
        raise ScenarioError(
            [Problem("side", f"{side!r}: client or server")], "simlab net fault crash"
        )
    _, lab = attach(name)
    lab.run("nat", "nft", "add", "element", "ip", FAULTS, "cut", "{", lab.veth(side), "}")


def restore(name: str) -> list[str]:
    """End every fault; returns the ones that were active."""
    active = faults(name)
    _, lab = attach(name)
    lab.run("nat", "nft", "flush", "set", "ip", FAULTS, "cut")
    lab.run("nat", "nft", "flush", "set", "ip", FAULTS, "outage")
    return active


def faults(name: str) -> list[str]:
    """The active faults, read from the kernel: ``crash client``, ``outage (3.2 s left)``."""
    _, lab = attach(name)
    doc = json.loads(lab.run("nat", "nft", "-j", "list", "table", "ip", FAULTS))
    sides = {lab.veth("client"): "client", lab.veth("server"): "server"}
    out = []
    for item in doc.get("nftables", []):
        s = item.get("set")
        if not s:
            continue
        for elem in s.get("elem", []):
            if isinstance(elem, dict):  # {"elem": {"val": ..., "timeout": .., "expires": ..}}
                inner = elem.get("elem", elem)
                value, left = inner.get("val"), inner.get("expires")
            else:
                value, left = elem, None
            if s["name"] == "cut":
                out.append(f"crash {sides.get(value, value)}")
            elif s["name"] == "outage":
                out.append("outage" + (f" ({_seconds(left)} left)" if left is not None else ""))
    return sorted(out)


def _seconds(value) -> str:
    return f"{float(value):.1f} s" if isinstance(value, (int, float)) else str(value)


def status(name: str) -> dict:
    """What is up: the state, the conntrack entry count and the active faults."""
    state, lab = attach(name)
    count = int(lab.run("nat", "sysctl", "-n", "net.netfilter.nf_conntrack_count").strip() or 0)
    return state | {"conntrack_entries": count, "faults": faults(name)}


# -- down ------------------------------------------------------------------------------------------


def processes_in(namespace: str) -> list[int]:
    """PIDs of the processes whose network namespace is ``namespace``."""
    try:
        target = os.stat(os.path.join(netns.NETNS_DIR, namespace))
    except OSError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            out.append(int(entry))
    return out


def _end(pids: list[int], grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds for those still there."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _remove(name: str) -> tuple[list[int], list[str]]:
    """End the lab's processes, delete its namespaces (veths and nftables tables go with them)
    and its state file; returns (PIDs ended, namespaces deleted)."""
    spaces = present(name)
    pids = sorted({p for ns in spaces for p in processes_in(ns)})
    _end(pids)
    for ns in spaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    with contextlib.suppress(FileNotFoundError):
        Path(netns.net_state_path(name)).unlink()
    return pids, spaces


def down(name: str) -> tuple[list[int], list[str]] | None:
    """Remove lab ``name``: its processes, namespaces and state. None if nothing was there."""
    check_name(name)
    if not os.path.exists(netns.net_state_path(name)) and not present(name):
        return None
    if os.geteuid() != 0:
        raise NetError("simlab net down: removing network namespaces needs root", code=2)
    with _signals_held():
        return _remove(name)
