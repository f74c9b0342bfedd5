"""Regenerate the dashboard screenshots in docs/images (``.venv/bin/python scripts/dashboard_screenshots.py``).

Starts ``tradeswarm run --ui`` on the shipped samples, drives Chromium through every view (a backtest
from the form, PAUSE then RESUME from the System view so that acknowledgements show), and writes the
interactive report of a CLI backtest. Needs Debian's ``chromium`` (scripts/ensure_services.sh).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
TOKEN = "screenshot-token"  # noqa: S105 - the throwaway session's own token
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def start() -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "TRADESWARM_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "tradeswarm", "run", "--ui", "--port", "0", "--no-view",
                             "--speed", "30"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    found: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"dashboard: (http://\S+)", line)
            if m:
                found.append(m.group(1))

    threading.Thread(target=pump, daemon=True).start()
    while not found:
        if proc.poll() is not None:
            raise SystemExit("tradeswarm run --ui exited")
        time.sleep(0.1)
    return proc, found[0]


def shot(page: Page, name: str, height: int | None = None) -> None:
    page.wait_for_timeout(1200)
    path = OUT / f"{name}.jpg"
    if height:
        page.screenshot(path=path, type="jpeg", quality=82, clip={"x": 0, "y": 0, "width": 1440, "height": height},
                        full_page=True)  # fmt: skip
    else:
        page.screenshot(path=path, type="jpeg", quality=82)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    proc, url = start()
    try:
        with httpx.Client(base_url=url) as api:
            while api.get("/trades", params={"limit": 1}).json()["total"] < 24:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for theme in ("dark", "light"):
                context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=url)
                context.add_init_script(
                    f"localStorage.setItem('tradeswarm.theme', '{theme}'); localStorage.setItem('tradeswarm.token', "
                    f"'{TOKEN}'); localStorage.setItem('tradeswarm.symbol', 'BTC/USDT');"
                )
                page = context.new_page()
                page.goto("/#/dashboard")
                page.wait_for_selector("#chart canvas")
                shot(page, f"dashboard_{theme}", 1240 if theme == "dark" else None)
                if theme == "light":
                    context.close()
                    continue
                page.click("#analyze")
                page.wait_for_selector("#final")  # the AI desk's role cards (rules provider)
                page.wait_for_selector("#consensus-final")
                shot(page, "dashboard_analysis", 1400)
                page.goto("/#/portfolio")
                page.wait_for_selector("#trades tbody tr")
                shot(page, "dashboard_portfolio", 1150)
                page.goto("/#/backtest")
                page.fill("input[name=start]", "2025-01-01")
                page.fill("input[name=end]", "2025-03-15")
                page.fill("textarea[name=params]", '{"fast": 10, "slow": 30}')
                page.click("#bt-run")
                page.wait_for_selector("#bt-stats", timeout=120_000)
                shot(page, "dashboard_backtest", 1250)
                page.goto("/#/system")
                for command in ("pause", "resume"):
                    page.click(f"button[data-command={command}]")
                    page.fill("#confirm-reason", "screenshot drill")
                    page.click("#confirm-ok")
                    page.wait_for_selector('#ack-state[data-state="complete"]')
                shot(page, "dashboard_system", 1200)
                context.close()
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run([sys.executable, "-m", "tradeswarm", "backtest", "--data",  # noqa: S603
                                str(ROOT / "data/samples/binance_BTC-USDT_1h.csv"), "--end", "2025-02-01",
                                "--report", tmp], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
                context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
                page = context.new_page()
                page.goto((Path(tmp) / "report.html").as_uri())
                page.wait_for_selector("html[data-ready='1']")
                shot(page, "report_interactive")
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
