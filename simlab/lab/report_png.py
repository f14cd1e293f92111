"""The top of a sweep's report as a PNG, as a desktop browser shows it: docs/report.png.

``python -m simlab.lab.report_png out/demo/sweep.csv docs/report.png`` writes the report
of the sweep (by default with the demo's question: ``--max-detection 60s
--max-false-disconnects 2/conn-day --behind aws-alb``) to a temporary HTML file and has a
headless Chromium (``chromium --headless --screenshot``) take its first screen at 1280 x 900
CSS pixels (``--width``, ``--height``; ``--phone`` for 390 x 844). Exit 1 without a Chromium,
2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from simlab.errors import ScenarioError
from simlab.lab import report as rep

DEMO_QUESTION = {
    "max_detection": "60s",
    "max_false_disconnects": "2/conn-day",
    "behind": "aws-alb",
}
DESKTOP = (1280, 900)
PHONE = (390, 844)


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    size: tuple[int, int] = DESKTOP,
    timeout: float = 120.0,
) -> str | None:
    """The first screen of an HTML file as a PNG, by headless Chromium; None, or why not."""
    flags = [
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={size[0]},{size[1]}",
        "--screenshot=",
    ]
    return rep.render(html_path, png_path, flags, "screenshot", timeout)


def report_png(
    sweep: str | Path, png_path: str | Path, size: tuple[int, int] = DESKTOP, **question
) -> str | None:
    """The report of ``sweep`` (``question``: :func:`simlab.lab.report.build`'s options, by
    default the demo's) screenshot at ``size``; None, or why no PNG was written."""
    with tempfile.TemporaryDirectory(prefix="simlab-report-") as folder:
        html_path, _, _ = rep.report(
            sweep, Path(folder) / "report.html", **(question or DEMO_QUESTION)
        )
        return screenshot(html_path, png_path, size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simlab.lab.report_png",
        description="The first screen of a sweep's report as a PNG (headless Chromium).",
    )
    parser.add_argument("sweep", help="the sweep's CSV (or .summary.csv)")
    parser.add_argument("out", help="the PNG to write, e.g. docs/report.png")
    parser.add_argument("--width", type=int, default=DESKTOP[0], help="CSS pixels (1280)")
    parser.add_argument("--height", type=int, default=DESKTOP[1], help="CSS pixels (900)")
    parser.add_argument("--phone", action="store_true", help="390 x 844, a phone's screen")
    args = parser.parse_args(argv)
    size = PHONE if args.phone else (args.width, args.height)
    try:
        why = report_png(args.sweep, args.out, size)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    if why:
        print(why, file=sys.stderr)
        return 1
    print(f"{args.out} written ({size[0]} x {size[1]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
