"""``tradeswarm run --ui`` on a port that is taken: a one-line explanation, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.dashboard.browser import ROOT


def test_a_taken_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "tradeswarm", "run", "--ui", "--port", str(port), "--no-view", "--max-candles", "5"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: cannot serve the dashboard on 127.0.0.1:{port} (Address already in use): choose another --port"
    )
