"""The dashboard served by the orchestrator of the multi-process stack (``tradeswarm stack up``: one
OS process per agent, RabbitMQ with one broker user per agent, PostgreSQL, InfluxDB), in real
Chromium: the market from the bus, every agent from its heartbeats, candles arriving live through
the orchestrator's feed queue, the portfolio from PostgreSQL, and no console error anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from tests.dashboard.browser import CANVAS_DRAWN, CHROMIUM_ARGS, assert_no_console_errors, chromium_path, watch
from tests.stackkit import StackHandle, launch_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _ready(s: StackHandle) -> dict[str, Any] | None:
    health = (await s.api.get("/health")).json()
    symbols = (await s.api.get("/market/symbols")).json()
    fills = (await s.api.get("/trades", params={"limit": 1})).json()["total"]
    return health if health["status"] == "ok" and health["agents_total"] >= 7 and symbols and fills else None


async def test_the_stacks_orchestrator_serves_the_live_dashboard(
    rabbit_vhost: str, postgres_dsn: str, tmp_path: Path
) -> None:
    async with launch_stack(rabbit_vhost, postgres_dsn, tmp_path / "stack", replay_speed=3600 / 0.2) as s:
        health = await s.wait(lambda: _ready(s), 180, "every agent up, market data and a first fill")
        base = str(s.api.base_url).rstrip("/")
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = await browser.new_context(viewport={"width": 1440, "height": 900})
            await context.add_init_script(f"localStorage.setItem('tradeswarm.token', '{s.token}')")
            page = await context.new_page()
            page.set_default_timeout(30_000)
            watched = watch(page)
            await page.goto(f"{base}/#/system")
            await expect(page.locator("#agents tbody tr")).to_have_count(health["agents_total"])
            for kind in ("data_collection", "technical_analysis", "strategy", "risk", "compliance", "execution"):
                await expect(page.locator("#agents")).to_contain_text(kind)
            await expect(page.locator("#queues")).to_contain_text("RABBITMQ_MANAGEMENT_URL")  # not configured here

            await page.goto(f"{base}/#/dashboard")
            await expect(page.locator("#cards .card").first).to_contain_text("BTC/USDT last")
            await expect(page.locator("#live")).to_have_class("live open")
            await page.wait_for_function(f"() => ({CANVAS_DRAWN})('#chart')")  # a function: the page's CSP forbids eval
            # a candle published on RabbitMQ reaches the open page through the orchestrator's feed
            await page.evaluate(
                """() => { window.__candles = 0;
                     const es = new EventSource('/events');
                     es.addEventListener('candle', () => { window.__candles += 1; }); }"""
            )
            await page.wait_for_function("() => window.__candles >= 2", timeout=60_000)

            await page.goto(f"{base}/#/portfolio")
            await expect(page.locator("#trades tbody tr").first).to_be_visible()
            await expect(page.locator("#cards")).to_contain_text("Equity")
            assert_no_console_errors(watched)
            await browser.close()
