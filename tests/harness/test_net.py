"""``simlab net``: the lab network as a command, end to end through the CLI.

A tiny TCP echo server runs in the server namespace and a client in the client namespace
(both through ``simlab net exec``), talking through the NAT. ``up``, ``exec`` and ``down`` run
as ``python -m simlab`` subprocesses (the lab must outlive the command that built it); faults
and status run the same CLI in this process, to spare a second of start-up each: a crash drops the server's
packets until restore, an idle mapping expires (2 s) and is answered with an RST, and
``down`` leaves nothing behind. The netns tests need root and nftables; they skip with
the reason elsewhere, and fail instead when SIMLAB_REQUIRE_NETNS=1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from simlab.cli.main import main
from simlab.harness import net, netns

SIMLAB = [sys.executable, "-m", "simlab", "net"]
SCENARIO = "examples/behind-alb.yaml"  # nat: on_expiry reset
LAB = ["--set", "nat.idle_timeout=2s", "--set", "link.loss.p=0"]

SERVER = """
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.19.0.2", 8080))
s.listen()
print("listening", flush=True)
def echo(c):
    with c:
        while data := c.recv(100):
            c.sendall(data)
while True:
    threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
"""

# each phase prints one line; the test answers on stdin once it has injected the next fault
CLIENT = """
import socket, sys, time
def connect():
    for _ in range(100):
        try:
            return socket.create_connection(("198.19.0.2", 8080), timeout=1)
        except OSError:
            time.sleep(0.05)
    raise SystemExit("no server")
s = connect()
s.sendall(b"a")
print("echo", s.recv(10).decode(), s.getsockname()[0], flush=True)
sys.stdin.readline()  # the server has crashed
s.sendall(b"b")
try:
    print("crashed got", s.recv(10).decode(), flush=True)
except TimeoutError:
    print("crashed timeout", flush=True)
sys.stdin.readline()  # restored
s = connect()
s.sendall(b"c")
print("restored", s.recv(10).decode(), flush=True)
time.sleep(3.5)  # longer than the NAT's 2 s idle timeout
try:
    s.sendall(b"d")
    print("idle got", s.recv(10).decode(), flush=True)
except OSError as exc:
    print("idle", type(exc).__name__, flush=True)
"""


def needs_netns():
    reason = netns.unavailable_reason()
    if reason:
        if os.environ.get("SIMLAB_REQUIRE_NETNS") == "1":
            pytest.fail(f"SIMLAB_REQUIRE_NETNS=1 but {reason}")
        pytest.skip(reason)


def simlab_net(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*SIMLAB, *args], capture_output=True, text=True, timeout=timeout)


def ours(name: str) -> list[str]:
    """Namespaces of lab ``name`` that exist."""
    prefix = f"{netns.NET_PREFIX}{name}-"
    try:
        return [n for n in os.listdir(netns.NETNS_DIR) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


@pytest.fixture
def name():
    """A lab name of this test alone; whatever happens, the lab is removed at the end."""
    lab = f"t{os.getpid()}{int(time.monotonic() * 1000) % 1000}"
    yield lab
    if ours(lab) or os.path.exists(netns.net_state_path(lab)):
        net.down(lab)


def cli(*argv: str) -> tuple[int, str, str]:
    """``simlab`` in this process: (exit code, stdout, stderr); argparse's exit is a code too.

    The same command line as a subprocess, without its second of start-up (``import simlab``).
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def run_main(*argv: str) -> tuple[int, str]:
    code, _, err = cli(*argv)
    return code, err


# -- bad input: no lab needed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["up", SCENARIO, "--name", "Bad-Name"], ["--name", "'Bad-Name'", "lower-case"]),
        (["up"], ["scenario", "missing"]),
        (["fault", "outage", "5x"], ["DURATION", "'5x'", "a number with a unit"]),
        (["fault", "outage", "0s"], ["DURATION", "0 s", "from 1ms"]),
        (["fault", "crash", "nat"], ["side", "'nat'", "'client', 'server'"]),
        (["exec", "router", "--", "true"], ["side", "'router'", "'nat'"]),
        (
            ["exec", "client", "--", "no-such-program-xyz"],
            ["COMMAND", "no-such-program-xyz", "PATH"],
        ),
        (["exec", "client"], ["COMMAND", "missing"]),
        (["status", "--name", "UPPER"], ["--name", "'UPPER'"]),
    ],
)
def test_bad_input_exits_2_naming_key_value_and_what_is_allowed(argv, words):
    code, err = run_main("net", *argv)
    assert code == 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


def test_nothing_up_is_said_and_down_still_exits_0(capsys):
    lab = f"none{os.getpid()}"
    assert main(["net", "down", "--name", lab]) == 0
    assert "nothing is up" in capsys.readouterr().out
    assert main(["net", "status", "--name", lab]) == 0
    assert "nothing is up" in capsys.readouterr().out
    code, err = run_main("net", "fault", "restore", "--name", lab)
    assert code == 1 and "no lab" in err and "simlab net up" in err


@pytest.mark.parametrize("missing", ["root", "nft"])
def test_not_root_or_no_nft_exit_2_naming_what_is_missing(missing, tmp_path, monkeypatch):
    """As a user other than root, and as root with a PATH that has ``ip`` but no ``nft``."""
    if os.uname().sysname != "Linux":
        pytest.skip("Linux only")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ip").touch(mode=0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(os, "geteuid", lambda: 1000 if missing == "root" else 0)
    code, err = run_main("net", "up", SCENARIO, "--name", "never")
    assert code == 2, err
    wanted = "root" if missing == "root" else "`nft` (Debian package nftables)"
    assert f"simlab net needs {wanted}" in err and "Traceback" not in err
    assert not ours("never")


# -- on the machine: root and nftables --------------------------------------------------------


def test_leftovers_knows_a_lasting_lab_by_its_state_file(name):
    needs_netns()
    ns = netns.net_namespaces(name)["client"]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        assert ns in netns.leftovers()  # no state file claims it
        os.makedirs(netns.NET_STATE_DIR, exist_ok=True)
        with open(netns.net_state_path(name), "w") as f:
            json.dump({"status": "up", "pid": 1}, f)
        assert ns not in netns.leftovers()
        assert ns in netns.leftovers(all_runs=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(netns.net_state_path(name))


def test_up_exec_faults_nat_expiry_status_down(name):
    needs_netns()
    done = simlab_net("up", SCENARIO, *LAB, "--name", name)
    assert done.returncode == 0, done.stderr
    for text in ("simlab-net-" + name + "-server", "198.19.0.2 port 8080", "198.18.0.2",
                 "idle timeout 2 s", "on expiry: reset", "simlab net exec"):  # fmt: skip
        assert text in done.stdout, done.stdout
    assert "sch_netem" in done.stdout or "netem" in done.stdout  # what became of the delay
    code, err = run_main("net", "up", SCENARIO, "--name", name)  # one lab per name
    assert code == 2 and "--name" in err and f"simlab net down --name {name}" in err

    server = subprocess.Popen(
        [*SIMLAB, "exec", "--name", name, "server", "--", sys.executable, "-c", SERVER],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = subprocess.Popen(
        [*SIMLAB, "exec", "--name", name, "client", "--", sys.executable, "-c", CLIENT],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout.readline().strip() == "listening"
        # through the NAT: the client speaks from its own address, the server sees the NAT's
        assert client.stdout.readline().split() == ["echo", "a", "198.18.0.2"]

        # the lab persists between processes: faults and status from this one
        assert cli("net", "fault", "crash", "server", "--name", name)[0] == 0
        code, out, err = cli("net", "status", "--name", name, "--json")
        assert code == 0, err
        (lab,) = json.loads(out)
        assert lab["faults"] == ["crash server"]
        assert lab["conntrack_entries"] >= 1  # the client's connection, mapped
        assert lab["nat"]["idle_timeout_s"] == 2 and lab["nat"]["on_expiry"] == "reset"
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "crashed timeout"  # silent: no RST, no echo

        assert cli("net", "fault", "outage", "30s", "--name", name)[0] == 0
        code, out, _ = cli("net", "fault", "restore", "--name", name)
        assert code == 0 and "crash server" in out and "outage" in out, out
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "restored c"
        # idle for longer than the NAT's timeout: the mapping is gone and the NAT answers RST
        assert client.stdout.readline().strip() == "idle ConnectionResetError"
        assert client.wait(timeout=10) == 0  # the program's exit code passes through

        down = simlab_net("down", "--name", name)
        assert down.returncode == 0, down.stderr
        assert str(server.pid) in down.stdout  # the server it started was ended
        assert server.wait(timeout=10) != 0
    finally:
        for proc in (client, server):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not ours(name)
    assert not [n for n in netns.leftovers(all_runs=True) if f"-{name}-" in n]
    assert not os.path.exists(netns.net_state_path(name))
    code, out, _ = cli("net", "down", "--name", name)
    assert code == 0 and "nothing is up" in out


def test_sigterm_during_up_leaves_nothing_behind(name):
    needs_netns()
    proc = subprocess.Popen(
        [*SIMLAB, "up", SCENARIO, *LAB, "--name", name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ours(name) and proc.poll() is None:
            time.sleep(0.002)
        assert ours(name), "the namespaces never appeared: " + proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert proc.returncode == 130, f"exit {proc.returncode}: the signal came too late? {err}"
    assert "Traceback" not in err
    assert not ours(name)
    assert not os.path.exists(netns.net_state_path(name))
