"""The headless Chromium adapter: a page with an application-level heartbeat.

``python -m simlab.harness.adapters.browser [--interval-ms N] [--timeout-ms N] [--hidden] URL``

Starts Debian's ``chromium`` (``--headless=new``) with the DevTools protocol on a
pipe (no port), opens ``browser/client.html`` (an app ping every interval, closed
when no app pong came within the timeout; the server side is ``ws_server.js
--app-pong``) and relays the page's console events to stderr as JSON lines
stamped with ``time.monotonic()``. ``--hidden`` opens a second tab in front of
the page so that ``document.visibilityState`` is ``hidden`` (Chrome throttles the
timers of hidden pages; whether headless does is for the events to show). The
driver ends its browser, by PID, when the page's socket closed or on SIGTERM.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PAGE = Path(__file__).with_name("browser") / "client.html"
BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _event(name: str, **fields) -> None:
    rec = {"t": time.monotonic(), "lib": "chromium", "role": "client", "event": name, **fields}
    sys.stderr.write(json.dumps(rec) + "\n")
    sys.stderr.flush()


def _high(fd: int) -> int:
    """``fd`` moved to a number above 9 (close-on-exec), the old one closed."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Pipe:
    """The DevTools protocol over --remote-debugging-pipe: NUL-terminated JSON both ways."""

    def __init__(self, to_browser: int, from_browser: int):
        self.w, self.r = to_browser, from_browser
        self.next_id = 0
        self.lock = threading.Lock()

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        with self.lock:
            self.next_id += 1
            msg = {"id": self.next_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            os.write(self.w, json.dumps(msg).encode() + b"\0")
            return self.next_id

    def messages(self):
        buf = b""
        while True:
            chunk = os.read(self.r, 65536)
            if not chunk:
                return
            buf += chunk
            *done, buf = buf.split(b"\0")
            for raw in done:
                yield json.loads(raw)


def run(url: str, interval_ms: float, timeout_ms: float, hidden: bool) -> int:
    chromium = find_chromium()
    if chromium is None:
        print("browser adapter: no chromium found; install Debian's 'chromium'", file=sys.stderr)
        return 2
    cmd_r, cmd_w = os.pipe()  # we write commands, the browser reads them on its fd 3
    res_r, res_w = os.pipe()  # the browser writes answers on its fd 4
    # the child's ends above fd 4 first, so that placing them on 3 and 4 clobbers neither
    cmd_r, res_w = (_high(fd) for fd in (cmd_r, res_w))

    def fds() -> None:
        os.dup2(cmd_r, 3)
        os.dup2(res_w, 4)

    def stop(*_):
        raise SystemExit(0)

    # before anything needs cleaning up: SIGTERM then unwinds through the finally below
    signal.signal(signal.SIGTERM, stop)
    profile = proc = None
    try:
        profile = tempfile.mkdtemp(prefix="simlab-chromium-")
        args = [
            chromium,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # chromium refuses to run as root with its sandbox
        # close_fds=False: the dup2'd fds 3 and 4 must survive; every other fd is close-on-exec
        proc = subprocess.Popen(
            args, preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(cmd_r)
        os.close(res_w)
        cmd_r = res_w = None
        rc = _drive(Pipe(cmd_w, res_r), url, interval_ms, timeout_ms, hidden)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()  # the browser we started, by its PID
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fd in (cmd_r, res_w, cmd_w, res_r):
            if fd is not None:
                os.close(fd)
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)
    return rc


def _drive(pipe: Pipe, url: str, interval_ms: float, timeout_ms: float, hidden: bool) -> int:
    frag = f"url={url}&interval_ms={interval_ms:g}&timeout_ms={timeout_ms:g}"
    target_id = session = None
    nav_after_hide = None
    pipe.send("Target.setDiscoverTargets", {"discover": True})
    pipe.send("Target.createTarget", {"url": "about:blank"})
    for msg in pipe.messages():
        method = msg.get("method")
        if "result" in msg and "targetId" in msg["result"] and target_id is None:
            target_id = msg["result"]["targetId"]
            pipe.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        elif "result" in msg and "sessionId" in msg["result"] and session is None:
            session = msg["result"]["sessionId"]
            pipe.send("Runtime.enable", session=session)
            if hidden:  # a tab in front of ours: ours becomes a background (hidden) tab
                nav_after_hide = pipe.send("Target.createTarget", {"url": "about:blank"})
            else:
                pipe.send("Page.navigate", {"url": PAGE.as_uri() + "#" + frag}, session)
        elif nav_after_hide is not None and msg.get("id") == nav_after_hide:
            pipe.send("Page.navigate", {"url": PAGE.as_uri() + "#" + frag}, session)
        elif method == "Runtime.consoleAPICalled" and msg.get("sessionId") == session:
            params = msg["params"]
            try:
                rec = json.loads(params["args"][0]["value"])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            name = rec.pop("event", "console")
            _event(name, **rec)
            if name == "closed":
                return 0
        elif "error" in msg:
            print(f"browser adapter: DevTools error {msg['error']}", file=sys.stderr)
            return 1
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simlab.harness.adapters.browser")
    parser.add_argument("--interval-ms", type=float, default=25000.0)
    parser.add_argument("--timeout-ms", type=float, default=10000.0)
    parser.add_argument("--hidden", action="store_true", help="the page in a background tab")
    parser.add_argument("url")
    args = parser.parse_args(argv)
    if not (args.interval_ms > 0 and args.timeout_ms > 0):
        parser.error(
            f"--interval-ms {args.interval_ms:g}, --timeout-ms {args.timeout_ms:g}: both must be > 0"
        )
    return run(args.url, args.interval_ms, args.timeout_ms, args.hidden)


if __name__ == "__main__":
    sys.exit(main())
