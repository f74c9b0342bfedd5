"""The dashboard in real Chromium against ``tradeswarm run --ui``: the embedded swarm (every trading
agent on the in-memory bus, paper venue) replaying the real sample candles, its real API.

One session process and one browser for the module; each test has its own browser context. Every
test fails on any console error of the page. The HALT test runs last (it stops the trading).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    Session,
    Watched,
    assert_no_console_errors,
    browser_pages,
    canvas_drawn,
    chromium_path,
    start_session,
    stop_session,
    wait_until,
    watch,
)

TOKEN = "dashboard-test-token"
DATA = Path(__file__).resolve().parent / "data"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    s = start_session(TOKEN, ["--speed", "25"])
    try:
        yield s
    finally:
        stop_session(s)


@pytest.fixture(scope="module")
def api(session: Session) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=session.url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, session: Session) -> Iterator[Watched]:
    yield from browser_pages(browser, session.url, TOKEN)


@pytest.fixture
def anonymous(browser: Browser, session: Session) -> Iterator[Watched]:
    yield from browser_pages(browser, session.url, None, theme="light")


def _fills(api: httpx.Client) -> int:
    return int(api.get("/trades", params={"limit": 1}).json()["total"])


def test_dashboard_shows_the_market_and_the_swarm(page: Watched, api: httpx.Client) -> None:
    wait_until(lambda: api.get("/market/symbols").json(), 60, "the first indicator snapshots")
    p = page.page
    p.goto("/#/dashboard")
    expect(p.locator("#cards .card").first).to_contain_text("BTC/USDT last")
    expect(p.locator("#cards .card")).not_to_have_count(0)
    expect(p.locator("#swarm")).to_contain_text("agents up")
    expect(p.locator("#swarm")).to_contain_text("5 / 5")
    expect(p.locator("#live")).to_have_class("live open")
    wait_until(lambda: canvas_drawn(p, "#chart"), 20, "the candlestick chart")
    p.select_option("#symbol", "ETH/USDT")
    expect(p.locator("#cards .card").first).to_contain_text("ETH/USDT last")
    assert_no_console_errors(page)


def _desk_ready(api: httpx.Client) -> bool:
    snapshots = api.get("/market/BTC-USDT/latest", params={"limit": 40}).json()
    return len(snapshots) >= 36 and bool(api.get("/consensus", params={"symbol": "BTC/USDT"}).json())


def test_run_analysis_shows_the_desks_role_cards_and_the_strategies_votes(page: Watched, api: httpx.Client) -> None:
    wait_until(lambda: _desk_ready(api), 120, "36 closed candles (the desk needs 35) and a consensus")
    p = page.page
    p.goto("/#/dashboard")
    p.select_option("#symbol", "BTC/USDT")
    p.click("#analyze")
    expect(p.locator("#analyze")).to_contain_text("Analysing")  # the loading state
    p.wait_for_url("**/#/analysis/BTC%2FUSDT")
    cards = p.locator("[data-role]")
    expect(cards).to_have_count(6, timeout=30_000)
    roles = {cards.nth(i).get_attribute("data-role") for i in range(6)}
    assert roles == {"technical", "sentiment", "tokenomics", "researcher", "trader", "risk_manager"}
    final = p.locator("#final .action")
    expect(final).to_have_text(re.compile(r"^(BUY|SELL|HOLD)$"))
    stored = api.get("/desk/decisions", params={"symbol": "BTC/USDT", "limit": 50}).json()["items"]
    assert final.inner_text() in {d["final"]["action"] for d in stored}
    expect(p.locator("#final")).to_contain_text("provider")
    expect(p.locator("#consensus-final")).to_be_visible()
    expect(p.locator("[data-vote]").first).to_contain_text("sma_cross")
    expect(p.locator("#history table tbody tr")).not_to_have_count(0)  # the desk's decisions
    p.select_option("#h-outcome", "NO_TRADE")
    p.select_option("#h-outcome", "")
    wait_until(lambda: canvas_drawn(p, "#chart"), 20, "the price chart with the decision")
    assert_no_console_errors(page)


def test_without_the_desk_run_analysis_shows_the_consensus(page: Watched, api: httpx.Client) -> None:
    """A server whose /analyze answers 404 (no desk there): the consensus, with a plain message."""
    wait_until(lambda: api.get("/consensus", params={"symbol": "BTC/USDT"}).json(), 90, "a consensus decision")
    p = page.page
    p.route("**/analyze", lambda route: route.fulfill(status=404, json={"status": 404, "message": "Not Found"}))
    p.goto("/#/dashboard")
    p.select_option("#symbol", "BTC/USDT")
    p.click("#analyze")
    p.wait_for_url("**/#/analysis/BTC%2FUSDT")
    expect(p.locator("#no-desk")).to_contain_text("not available on this server")
    expect(p.locator("#consensus-final")).to_be_visible()
    expect(p.locator("[data-vote]").first).to_contain_text("sma_cross")
    page.allow(r"status of 404")  # the refused /analyze itself
    assert_no_console_errors(page)


def test_the_analysis_view_renders_every_role_card_of_a_desk_decision(
    browser: Browser, session: Session, api: httpx.Client
) -> None:
    """The desk's decision shape (tests/dashboard/data) as Run analysis leaves it for the view: one card
    per role, whatever roles the JSON has, an unavailable role with its reason, the final decision."""
    wait_until(lambda: api.get("/consensus", params={"symbol": "BTC/USDT"}).json(), 90, "a consensus decision")
    sample = (DATA / "desk_decision.json").read_text()
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=session.url)
    context.add_init_script(
        "sessionStorage.setItem('tradeswarm.analysis', JSON.stringify({symbol: 'BTC/USDT', desk: true, result: "
        + sample
        + "}))"
    )
    try:
        p = context.new_page()
        watched = watch(p)
        p.goto("/#/analysis/BTC%2FUSDT")
        cards = p.locator("[data-role]")
        expect(cards).to_have_count(6)
        assert [cards.nth(i).get_attribute("data-role") for i in range(6)] == [
            "technical", "sentiment", "tokenomics", "researcher", "trader", "risk_manager",
        ]  # fmt: skip
        expect(p.locator('[data-role="technical"]')).to_contain_text("trend")
        expect(p.locator('[data-role="technical"]')).to_contain_text("412 in / 64 out")
        expect(p.locator('[data-role="sentiment"] li').first).to_have_text("ETF inflows for a fifth day")
        expect(p.locator('[data-role="tokenomics"]')).to_have_class(re.compile(r"\bunavailable\b"))
        expect(p.locator('[data-role="tokenomics"]')).to_contain_text("no tokenomics data for this symbol")
        expect(p.locator('[data-role="risk_manager"]')).to_contain_text("ADJUST")
        final = p.locator("#final")
        expect(final).to_have_class(re.compile(r"\bBUY\b"))
        expect(final.locator(".action")).to_have_text("BUY")
        expect(final).to_contain_text("7.50%")
        expect(final).to_contain_text("size cut to keep the portfolio within 25% exposure")
        expect(final).to_contain_text("tokens 2475 in / 356 out")
        expect(p.locator("#consensus-final")).to_be_visible()  # the strategies' votes stay beside it
        wait_until(lambda: canvas_drawn(p, "#chart"), 20, "the price chart with the decision")
        assert_no_console_errors(watched)
    finally:
        context.close()


def test_portfolio_shows_positions_equity_and_trades(page: Watched, api: httpx.Client) -> None:
    wait_until(lambda: _fills(api) >= 2, 120, "two fills")
    p = page.page
    p.goto("/#/portfolio")
    for label in ("Equity", "Cash", "Total return", "Realised PnL", "Unrealised PnL"):
        expect(p.locator("#cards")).to_contain_text(label)
    expect(p.locator("#trades tbody tr")).not_to_have_count(0)
    wait_until(lambda: canvas_drawn(p, "#equity"), 20, "the equity curve")
    assert_no_console_errors(page)


def test_a_live_fill_appears_on_an_open_portfolio_page(page: Watched, api: httpx.Client) -> None:
    wait_until(lambda: _fills(api) >= 1, 120, "a first fill")
    p = page.page
    p.goto("/#/portfolio")
    expect(p.locator("#trades tbody tr").first).to_be_visible()
    p.evaluate("window.__notReloaded = true")
    first = p.locator("#trades tbody tr").first.get_attribute("data-fill")
    before = _fills(api)
    wait_until(lambda: _fills(api) > before, 180, "a new fill from the swarm")
    newest = api.get("/trades", params={"limit": 1}).json()["items"][0]["fill_id"]
    assert newest != first
    expect(p.locator(f'#trades tbody tr[data-fill="{newest}"]')).to_be_visible(timeout=15_000)
    assert p.evaluate("window.__notReloaded") is True
    assert_no_console_errors(page)


def test_a_backtest_started_from_the_form_completes_and_draws_its_charts(page: Watched, api: httpx.Client) -> None:
    p = page.page
    p.goto("/#/backtest")
    p.fill("input[name=start]", "2025-01-01")
    p.fill("input[name=end]", "2025-02-15")
    p.select_option("select[name=strategy]", "sma_cross")
    p.fill("textarea[name=params]", '{"fast": 5, "slow": 20}')
    p.click("#bt-run")
    expect(p.locator("#bt-stats")).to_contain_text("Total return", timeout=120_000)
    for label in ("Max drawdown", "Win rate", "Sharpe", "Trades"):
        expect(p.locator("#bt-stats")).to_contain_text(label)
    job = api.get("/backtests").json()[0]
    assert job["state"] == "succeeded"
    full = api.get(f"/backtests/{job['job_id']}").json()
    trades = full["result"]["trades"]
    assert trades, "this period and these parameters trade"
    expected_markers = sum(1 + (t["exit_time"] is not None) for t in trades)
    expect(p.locator("#bt-candles")).to_have_attribute("data-markers", str(expected_markers))
    expect(p.locator("#bt-trades tbody tr")).to_have_count(len(trades))
    wait_until(lambda: canvas_drawn(p, "#bt-equity"), 20, "the equity and drawdown chart")
    wait_until(lambda: canvas_drawn(p, "#bt-candles"), 20, "the candlesticks with the trades")
    p.click("#bt-trades th[data-key=pnl]")  # sortable
    expect(p.locator("#bt-trades th[data-key=pnl]")).to_contain_text("▲")
    expect(p.locator("#bt-jobs tbody tr")).not_to_have_count(0)
    assert_no_console_errors(page)


def test_moving_on_while_a_view_loads_never_mixes_views(page: Watched, api: httpx.Client) -> None:
    wait_until(lambda: api.get("/market/symbols").json(), 60, "the first indicator snapshots")
    p = page.page
    p.goto("/#/dashboard")
    for view in ("analysis", "portfolio", "system", "backtest", "dashboard", "system"):
        p.click(f"#nav a[data-view={view}]")  # no waiting: each view is left while it still loads
    expect(p.locator("#agents tbody tr")).to_have_count(5)
    assert p.locator("#view > div").count() == 1
    assert p.locator("#view .msg.error").count() == 0
    assert_no_console_errors(page)


def test_a_control_without_the_token_is_refused_with_a_visible_message(anonymous: Watched, api: httpx.Client) -> None:
    p = anonymous.page
    p.goto("/#/system")
    expect(p.locator("#agents tbody tr")).to_have_count(5)
    p.click("button[data-command=halt]")
    p.click("#confirm-ok")
    expect(p.locator("#control-error")).to_contain_text("no API token")
    assert api.get("/control/commands").json() == []
    anonymous.allow(r"status of 401")  # the refused request itself
    assert_no_console_errors(anonymous)


def test_system_view_then_halt_is_acknowledged_and_no_order_reaches_the_venue(page: Watched, api: httpx.Client) -> None:
    p = page.page
    p.goto("/#/system")
    expect(p.locator("#agents tbody tr")).to_have_count(5)
    expect(p.locator("#queues")).to_contain_text("orchestrator.feed")
    expect(p.locator("#alerts")).to_be_visible()
    p.click("button[data-command=halt]")
    p.fill("#confirm-reason", "browser drill")
    p.click("#confirm-ok")
    expect(p.locator("#control-ok")).to_contain_text("HALT acknowledged by every required agent", timeout=30_000)
    expect(p.locator("#ack-state")).to_have_attribute("data-state", "complete", timeout=30_000)
    for kind in ("strategy", "risk", "compliance", "execution"):
        expect(p.locator("#acks")).to_contain_text(kind)
    expect(p.locator("#trading-pill")).to_have_text("halted", timeout=15_000)
    orders = api.get("/orders", params={"limit": 1}).json()["total"]
    start = api.get("/market/BTC-USDT/latest", params={"limit": 1}).json()[-1]["close_time"]
    # the replay goes on: 30 more hours of candles reach the halted swarm, and no order is made
    wait_until(
        lambda: api.get("/market/BTC-USDT/latest", params={"limit": 31}).json()[0]["close_time"] >= start,
        120,
        "30 more candles",
    )
    assert api.get("/orders", params={"limit": 1}).json()["total"] == orders
    assert api.get("/health").json()["trading"] == "halted"
    assert_no_console_errors(page)
