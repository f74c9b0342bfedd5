"""The ccxt gateway against the local fake Binance venue: the real ccxt / ccxt.pro parsing code runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from core.domain import Side
from core.gateway import (
    RateLimited,
    UnknownSymbol,
    UnsupportedTimeframe,
    VenueAuthError,
    VenueRejected,
    VenueUnavailable,
)
from core.messages.market import Candle
from infrastructure.feeds.files import read_candles_csv
from infrastructure.gateway import CcxtGateway, map_ccxt_error, parse_retry_after, reset_limiters
from tests.fakevenue import FakeBinance
from tests.fakevenue.server import DATA, DEFAULT_CANDLES

KLINES = "/api/v3/klines"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_limiters() -> None:
    reset_limiters()


@pytest.fixture
def recorded() -> list[Candle]:
    return read_candles_csv(DEFAULT_CANDLES)


def make_gateway(venue: FakeBinance, **kwargs) -> CcxtGateway:
    options: dict[str, Any] = {
        "rate_per_s": 1000.0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "due_check_s": 0.02,
        "close_grace_ms": 3_600_000,  # one 1h interval: see tests/fakevenue/server.py (time)
    }
    options.update(kwargs)
    return CcxtGateway("binance", clock=venue.clock, urls=venue.ccxt_urls(), **options)


@pytest.fixture
async def finished_venue() -> AsyncIterator[FakeBinance]:
    """A venue whose time is past the last recorded candle: all 3,000 are closed."""
    async with FakeBinance(stream_start=3000) as venue:
        yield venue


async def test_recorded_klines_come_out_as_equal_candles(finished_venue: FakeBinance, recorded: list[Candle]) -> None:
    async with make_gateway(finished_venue) as gw:
        candles = await gw.fetch_candles("BTC/USDT", "1h", EPOCH)
    assert candles == recorded  # every field, exact decimals, through ccxt's own parser
    assert finished_venue.count(KLINES) == 4  # 3 pages of 1000 + one empty page that ends the range


async def test_history_range_is_half_open_and_excludes_the_forming_candle(recorded: list[Candle]) -> None:
    async with FakeBinance(stream_start=1500) as venue, make_gateway(venue) as gw:
        window = await gw.fetch_candles("BTC/USDT", "1h", recorded[10].open_time, recorded[20].open_time)
        assert window == recorded[10:20]
        everything = await gw.fetch_candles("BTC/USDT", "1h", EPOCH)
        assert everything == recorded[:1500]  # candle 1500 is still forming at the venue


async def test_rate_limit_and_server_error_bursts_are_retried(finished_venue: FakeBinance, recorded) -> None:
    finished_venue.faults.http_429 = 2
    finished_venue.faults.retry_after = "0.2"
    finished_venue.faults.http_5xx = 3
    loop = asyncio.get_running_loop()
    async with make_gateway(finished_venue) as gw:
        started = loop.time()
        candles = await gw.fetch_candles("BTC/USDT", "1h", EPOCH)
        elapsed = loop.time() - started
        assert candles == recorded
        assert gw.limiter.pauses == [0.2, 0.2]  # Retry-After paused the whole venue, twice
    assert elapsed >= 0.4  # a lower bound from the venue's hint, not a speed assertion
    assert finished_venue.count(KLINES) == 4 + 2 + 3


async def test_retries_give_up_with_a_temporary_error(finished_venue: FakeBinance) -> None:
    finished_venue.faults.http_5xx = 100
    async with make_gateway(finished_venue, max_attempts=3) as gw:
        with pytest.raises(VenueUnavailable, match="503"):
            await gw.fetch_candles("BTC/USDT", "1h", EPOCH)
    assert finished_venue.count(KLINES) == 3


async def test_permanent_error_surfaces_once_without_retry(finished_venue: FakeBinance) -> None:
    finished_venue.faults.permanent = 1
    async with make_gateway(finished_venue) as gw:
        with pytest.raises(VenueRejected, match="Invalid symbol"):
            await gw.fetch_candles("BTC/USDT", "1h", EPOCH)
    assert finished_venue.count(KLINES) == 1


async def test_typo_symbol_lists_close_matches(finished_venue: FakeBinance) -> None:
    async with make_gateway(finished_venue) as gw:
        with pytest.raises(UnknownSymbol) as info:
            await gw.fetch_candles("BTC/USTD", "1h", EPOCH)
        assert "BTC/USDT" in info.value.suggestions
        assert "did you mean" in str(info.value)
        with pytest.raises(UnknownSymbol) as compact:
            await gw.validate_symbol("ethusdt")
        assert compact.value.suggestions[0] == "ETH/USDT"
        with pytest.raises(UnsupportedTimeframe, match="1h"):
            await gw.fetch_candles("BTC/USDT", "7m", EPOCH)
    assert finished_venue.count(KLINES) == 0


def test_unknown_venue_is_a_clear_error() -> None:
    with pytest.raises(VenueRejected, match="binance"):
        CcxtGateway("binanse")


async def collect(stream: AsyncIterator[Candle], n: int, timeout: float = 30) -> list[Candle]:
    out: list[Candle] = []

    async def run() -> None:
        async for candle in stream:
            out.append(candle)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    await stream.aclose()  # type: ignore[attr-defined]
    return out


async def test_stream_publishes_only_closed_candles_with_recorded_values(recorded) -> None:
    async with FakeBinance(stream_start=200, stream_end=230) as venue, make_gateway(venue) as gw:
        got = await collect(gw.stream_candles("BTC/USDT", "1h"), 30)
    # the last one is closed by the clock (no later candle comes); partial updates never leak
    assert got == recorded[200:230]


async def test_stream_duplicated_frames_give_each_candle_once(recorded) -> None:
    async with FakeBinance(stream_start=300, stream_end=320) as venue, make_gateway(venue) as gw:
        venue.faults.ws_duplicate = True
        got = await collect(gw.stream_candles("BTC/USDT", "1h"), 20)
    assert got == recorded[300:320]


async def test_stream_reconnects_after_websocket_drop(recorded) -> None:
    async with FakeBinance(stream_start=400, stream_end=440) as venue, make_gateway(venue) as gw:
        venue.faults.ws_drop_after_frames = 11  # mid-candle: candle 405's final frame is lost
        venue.faults.ws_skip_candles_on_drop = 3  # and the venue moves on while we reconnect
        got = await collect(gw.stream_candles("BTC/USDT", "1h"), 30)
        assert venue.state.ws_connections == 2
    opens = [c.open_time for c in got]
    assert opens == sorted(set(opens))
    assert got[:5] == recorded[400:405]
    assert got[5:] == recorded[409:434]  # the gap (405..408) is the data-collection agent's to backfill


async def test_trade_stream_gives_recorded_trades(finished_venue: FakeBinance) -> None:
    raw = json.loads((DATA / "http_spot_market_trades.json").read_text())
    async with make_gateway(finished_venue) as gw:
        trades = []
        stream = gw.stream_trades("BTC/USDT")
        async for trade in stream:
            trades.append(trade)
            if len(trades) == len(raw):
                break
        await stream.aclose()  # type: ignore[attr-defined]
    assert [t.trade_id for t in trades] == [str(r["id"]) for r in raw]
    assert [t.price for t in trades] == [Decimal(r["price"]).normalize() for r in raw]
    assert [t.amount for t in trades] == [Decimal(r["qty"]).normalize() for r in raw]
    assert [t.side for t in trades] == [Side.SELL if r["isBuyerMaker"] else Side.BUY for r in raw]


async def test_book_top_over_rest(finished_venue: FakeBinance) -> None:
    async with make_gateway(finished_venue) as gw:
        top = await gw.fetch_book_top("BTC/USDT")
    assert top is not None
    assert top.bid == Decimal("60741.67")
    assert top.ask == Decimal("60741.68")
    assert top.bid_size == Decimal("0.3658")
    assert top.ask_size == Decimal("0.45178")


def test_error_mapping() -> None:
    assert isinstance(map_ccxt_error("x", ccxt.RequestTimeout("t")), VenueUnavailable)
    assert isinstance(map_ccxt_error("x", ccxt.ExchangeNotAvailable("t")), VenueUnavailable)
    assert isinstance(map_ccxt_error("x", ccxt.NetworkError("t")), VenueUnavailable)
    limited = map_ccxt_error("x", ccxt.RateLimitExceeded("t"), {"retry-after": "3"})
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 3.0
    assert isinstance(map_ccxt_error("x", ccxt.AuthenticationError("t")), VenueAuthError)
    assert isinstance(map_ccxt_error("x", ccxt.PermissionDenied("t")), VenueAuthError)
    for exc in (ccxt.BadSymbol("t"), ccxt.InvalidOrder("t"), ccxt.BadRequest("t"), ccxt.NotSupported("t")):
        assert isinstance(map_ccxt_error("x", exc), VenueRejected)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:10 GMT", now) == 10.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


async def test_rest_polling_fallback_streams_closed_candles(recorded) -> None:
    async with FakeBinance(stream_start=500) as venue:
        gw = make_gateway(venue, use_websocket=False, poll_interval_s=0.01)
        assert not gw.streams_via_websocket

        async def market_moves() -> None:
            for i in range(501, 512):
                await asyncio.sleep(0.05)
                venue.set_position(i)

        mover = asyncio.create_task(market_moves())
        try:
            got = await collect(gw.stream_candles("BTC/USDT", "1h"), 10)
        finally:
            await mover
            await gw.close()
    # the first poll also returns the last closed candles before the stream position: still closed, in order
    start = recorded.index(got[0])
    assert 497 <= start <= 500
    assert got == recorded[start : start + 10]
    assert venue.state.ws_connections == 0


async def test_book_top_stream_over_websocket(finished_venue: FakeBinance, recorded) -> None:
    async with make_gateway(finished_venue) as gw:
        stream = gw.stream_book_top("BTC/USDT")
        tops = []
        async for top in stream:
            tops.append(top)
            if len(tops) == 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
    assert finished_venue.state.ws_connections == 1
    for top in tops:
        assert (top.bid, top.bid_size) == (Decimal("60741.67"), Decimal("0.3658"))
        assert (top.ask, top.ask_size) == (Decimal("60741.68"), Decimal("0.45178"))
        assert top.last is None  # the book ticker carries no last price
