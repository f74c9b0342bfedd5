"""Real Chromium for the dashboard tests: Debian's ``chromium`` driven by Playwright (Playwright
cannot download its own browser here; ``scripts/ensure_services.sh`` installs the package).

Every page records its console errors and uncaught exceptions; :func:`assert_no_console_errors`
fails a test on any of them (a test may allow the few it provokes, e.g. a refused request).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TRADESWARM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]


CANVAS_DRAWN = """(sel) => [...document.querySelectorAll(sel + ' canvas')].some((c) => {
    if (!c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 4 * 97) {
        seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
        if (seen.size > 3) return true;
    }
    return false;
})"""


def canvas_drawn(page: Any, selector: str) -> bool:
    """Whether the chart in ``selector`` painted something (a canvas with several colours)."""
    return bool(page.evaluate(CANVAS_DRAWN, selector))


def chromium_path() -> str:
    """The Chromium binary (fails, never skips, when it is missing)."""
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium is not installed ({CHROMIUM}): run scripts/ensure_services.sh (apt install chromium)")
    return CHROMIUM if Path(CHROMIUM).is_file() else str(shutil.which("chromium"))


@dataclass
class Watched:
    """A page and what went wrong in it."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Drop the errors matching ``pattern`` (one a test provoked on purpose)."""
        self.errors[:] = [e for e in self.errors if not re.search(pattern, e)]


def watch(page: Any) -> Watched:
    """Record the page's console errors and uncaught exceptions."""
    watched = Watched(page)
    page.on("console", lambda m: watched.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.errors.append(f"uncaught: {e}"))
    return watched


def assert_no_console_errors(watched: Watched) -> None:
    """Fail on any console error or uncaught exception of the page."""
    assert watched.errors == [], "console errors:\n" + "\n".join(watched.errors)


@dataclass
class Session:
    """``tradeswarm run --ui`` running in a child process."""

    process: subprocess.Popen[str]
    url: str
    token: str
    output: list[str]

    def log(self, tail: int = 40) -> str:
        """The last lines it printed."""
        return "".join(self.output[-tail:])


def start_session(token: str, args: Sequence[str] = (), timeout_s: float = 90) -> Session:
    """Start the embedded swarm with the dashboard on a free port; returns once it serves."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")}, "TRADESWARM_API_TOKEN": token,
           "TRADESWARM_LOG_LEVEL": "warning", "COLUMNS": "200"}  # fmt: skip
    command = [sys.executable, "-m", "tradeswarm", "run", "--ui", "--port", "0", "--no-view", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)  # fmt: skip
    output: list[str] = []
    found: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = re.search(r"dashboard: (http://\S+)", line)
            if match and not found:
                found.append(match.group(1))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not found:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("tradeswarm run --ui did not start:\n" + "".join(output[-40:]))
        time.sleep(0.1)
    return Session(process, found[0], token, output)


def stop_session(session: Session) -> None:
    """Ctrl-C, as a person would; the session writes its report and exits."""
    import signal

    session.process.send_signal(signal.SIGINT)
    try:
        session.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        session.process.kill()
        session.process.wait()


def wait_until(condition: Any, timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval_s)


def browser_pages(browser: Any, base_url: str, token: str | None, theme: str = "dark") -> Iterator[Watched]:
    """A fresh browser context (its own localStorage) with the token (or none) and the theme set."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base_url)
    script = f"localStorage.setItem('tradeswarm.theme', '{theme}');"
    if token:
        script += f"localStorage.setItem('tradeswarm.token', '{token}');"
    else:
        script += "localStorage.removeItem('tradeswarm.token');"
    once = f"if (!sessionStorage.getItem('ts-init')) {{ {script} sessionStorage.setItem('ts-init', '1'); }}"
    context.add_init_script(once)  # the first page load only: the page's own changes persist
    page = context.new_page()
    page.set_default_timeout(30_000)
    watched = watch(page)
    try:
        yield watched
    finally:
        context.close()
