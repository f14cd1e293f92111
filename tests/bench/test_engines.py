"""``python -m simlab.bench`` runs as documented: exit 0, one JSON object with the ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_simlab_bench_prints_its_ratios_and_exits_0():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simlab.bench",
            "--connections",
            "2",
            "--repeat",
            "1",
            "--horizon",
            "10m",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    figures = json.loads(done.stdout)
    assert figures["fast_over_model"] > 0 and 0 < figures["ratio"] < 1
