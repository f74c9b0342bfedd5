"""The interactive backtest report opens from ``file://`` in real Chromium with no network at all:
its candlesticks carry one marker per entry and exit, its equity and drawdown chart is drawn, its
trades table sorts, and the page logs no error."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.dashboard.browser import CHROMIUM_ARGS, ROOT, assert_no_console_errors, canvas_drawn, chromium_path, watch

SAMPLES = ROOT / "data" / "samples"
pytestmark = pytest.mark.slow


def test_the_report_is_one_interactive_file_that_works_offline(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "tradeswarm", "backtest", "--data", str(SAMPLES / "binance_BTC-USDT_1h.csv"),
         "--data", str(SAMPLES / "binance_ETH-USDT_1h.csv"), "--end", "2025-02-15", "--report", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "equity.csv", "equity.png", "report.html", "summary.json", "trades.csv",
    ]  # fmt: skip
    html = (out / "report.html").read_text()
    assert 'src="' not in html
    assert 'href="http' not in html
    with (out / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert trades, "the sample period trades"
    expected_markers = sum(1 + (t["status"] == "closed") for t in trades)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)

        def record(route: Any) -> None:
            requests.append(route.request.url)
            route.continue_()

        context.route("**/*", record)
        page = context.new_page()
        watched = watch(page)
        page.goto((out / "report.html").as_uri())
        expect(page.locator("html")).to_have_attribute("data-ready", "1")
        assert [r for r in requests if not r.startswith("file://")] == []
        charts = page.locator("#price-charts .chart")
        expect(charts).to_have_count(2)
        assert page.locator("#price-charts").get_attribute("data-markers") == str(expected_markers)
        per_symbol = {
            charts.nth(i).get_attribute("data-symbol"): int(charts.nth(i).get_attribute("data-markers") or 0)
            for i in range(2)
        }
        for symbol, count in per_symbol.items():
            rows = [t for t in trades if t["symbol"] == symbol]
            assert count == sum(1 + (t["status"] == "closed") for t in rows), symbol
        assert canvas_drawn(page, '#price-charts .chart[data-symbol="BTC/USDT"]')
        assert canvas_drawn(page, '#price-charts .chart[data-symbol="ETH/USDT"]')
        assert canvas_drawn(page, "#equity-chart")
        table = page.locator("#trades-table tbody tr")
        expect(table).to_have_count(len(trades))
        pnl_header = page.locator("#trades-table th", has_text="pnl")
        pnl_col = [h.strip() for h in page.locator("#trades-table th").all_inner_texts()].index("pnl")
        pnl_header.click()
        values = [float(v) for v in page.locator(f"#trades-table tbody td:nth-child({pnl_col + 1})").all_inner_texts()]
        assert values == sorted(values)
        pnl_header.click()
        values = [float(v) for v in page.locator(f"#trades-table tbody td:nth-child({pnl_col + 1})").all_inner_texts()]
        assert values == sorted(values, reverse=True)
        assert_no_console_errors(watched)
        browser.close()
