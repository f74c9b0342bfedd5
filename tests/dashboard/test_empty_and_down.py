"""Empty states and a server that goes away, in real Chromium: every view says in plain words that
there is nothing yet (never a blank page, no console error), and when the API stops the top bar
shows the stream reconnecting and the views say the API is unreachable.

The session replays one candle only (no indicator snapshot, no trade), then keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    Session,
    Watched,
    assert_no_console_errors,
    browser_pages,
    chromium_path,
    start_session,
    stop_session,
)

TOKEN = "empty-test-token"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    s = start_session(TOKEN, ["--max-candles", "1"])
    try:
        yield s
    finally:
        if s.process.poll() is None:
            stop_session(s)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, session: Session) -> Iterator[Watched]:
    yield from browser_pages(browser, session.url, TOKEN)


@pytest.mark.parametrize(
    ("view", "messages"),
    [
        ("dashboard", ["No market data yet"]),
        ("analysis", ["No market data yet: nothing to analyse"]),
        (
            "portfolio",
            ["No open position.", "No trade yet.", "The equity curve appears after two portfolio snapshots."],
        ),
        ("backtest", ["No backtest job yet"]),
        ("system", ["No alert since the orchestrator started.", "No command issued since the orchestrator started."]),
    ],
)
def test_every_view_says_when_there_is_nothing_yet(page: Watched, view: str, messages: list[str]) -> None:
    p = page.page
    p.goto(f"/#/{view}")
    for text in messages:
        expect(p.locator(".msg", has_text=text)).to_be_visible()
    assert_no_console_errors(page)


def test_when_the_api_goes_away_the_page_says_so(page: Watched, session: Session) -> None:
    p = page.page
    p.goto("/#/system")
    expect(p.locator("#live")).to_have_class("live open")
    expect(p.locator("#agents tbody tr")).to_have_count(5)
    stop_session(session)
    expect(p.locator("#live")).to_have_class("live reconnecting", timeout=20_000)
    expect(p.locator("#live")).to_contain_text("reconnecting")
    p.click("#nav a[data-view=portfolio]")
    expect(p.locator(".msg.error").first).to_contain_text("the API is unreachable")
    expect(p.locator("#trading-pill")).to_have_text("api down", timeout=15_000)
    page.allow(r"ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|net::ERR")  # the requests to the stopped server
    assert_no_console_errors(page)
