"""The data collection agent end to end: fake Binance venue -> real ccxt -> agent -> in-memory bus,
with the real InfluxDB 1.6.7 as its tick store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.base import AgentContext
from agents.data_collection.agent import DataCollectionAgent
from agents.data_collection.settings import DataCollectionSettings
from core.clock import Clock
from core.gateway import CandleKey
from core.logging import get_logger
from core.messages.base import Envelope
from core.messages.control import RiskAlert
from core.messages.market import BookTop, Candle
from core.ports import QueueSpec
from core.routing import ALERTS, BOOK, CANDLES
from core.settings import Settings
from infrastructure.database.influx import InfluxV1Store
from infrastructure.feeds import ReplaySource, SyntheticSource, read_candles_csv
from infrastructure.gateway import CcxtGateway, reset_limiters
from infrastructure.messaging.memory import InMemoryBus
from tests.fakevenue import FakeBinance
from tests.fakevenue.server import DEFAULT_CANDLES

pytestmark = pytest.mark.integration


class Consumer:
    """A downstream agent's view: every candle and alert, in delivery order."""

    def __init__(self) -> None:
        self.candles: list[Candle] = []
        self.alerts: list[RiskAlert] = []
        self.books: list[BookTop] = []

    async def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.payload, Candle):
            self.candles.append(envelope.payload)
        elif isinstance(envelope.payload, RiskAlert):
            self.alerts.append(envelope.payload)
        elif isinstance(envelope.payload, BookTop):
            self.books.append(envelope.payload)

    async def wait_for_books(self, n: int, timeout: float = 30) -> None:
        await self._wait(self.books, n, timeout, "book tops")

    async def wait_for(self, n: int, timeout: float = 60) -> None:
        await self._wait(self.candles, n, timeout, "candles")

    async def _wait(self, items: list[Any], n: int, timeout: float, what: str) -> None:
        async def poll() -> None:
            while len(items) < n:
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            last = self.candles[-1].open_time.isoformat() if self.candles else None
            raise AssertionError(
                f"{len(items)} of {n} {what} after {timeout} s (last candle open time {last}, alerts "
                f"{[a.code for a in self.alerts]})"
            ) from None


@pytest.fixture(autouse=True)
def _fresh_limiters() -> None:
    reset_limiters()


@pytest.fixture
async def bus_and_consumer() -> AsyncIterator[tuple[InMemoryBus, Consumer]]:
    bus = InMemoryBus()
    await bus.start()
    consumer = Consumer()
    await bus.subscribe(QueueSpec("consumer.market", (CANDLES.all(), ALERTS.all(), BOOK.all())), consumer.on_message)
    yield bus, consumer
    await bus.close()


def make_agent(bus: InMemoryBus, clock: Clock, source, store=None, **config) -> DataCollectionAgent:
    settings = Settings(symbols=["BTC/USDT"], timeframes=["1h"])
    ctx = AgentContext(
        bus=bus,
        clock=clock,
        settings=settings,
        agent_id="data-collection-test",
        log=get_logger("test"),
        instrument=False,
    )
    options: dict[str, Any] = {"trades": False, "book": False, "store_flush_s": 0.05, "close_grace_ms": 3_600_000}
    options.update(config)
    return DataCollectionAgent(ctx, source, venue="binance", store=store, config=DataCollectionSettings(**options))


def gateway_for(venue: FakeBinance) -> CcxtGateway:
    return CcxtGateway(
        "binance",
        clock=venue.clock,
        urls=venue.ccxt_urls(),
        rate_per_s=1000.0,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        due_check_s=0.02,
        close_grace_ms=3_600_000,  # one 1h interval: see tests/fakevenue/server.py (time)
    )


async def test_ws_drop_and_restart_leave_a_gap_free_ordered_stream(
    bus_and_consumer, influx_store: InfluxV1Store
) -> None:
    bus, consumer = bus_and_consumer
    recorded = read_candles_csv(DEFAULT_CANDLES)
    async with FakeBinance(stream_start=100, stream_end=160) as venue:
        venue.faults.ws_drop_after_frames = 21  # drop mid-candle 110, and the venue moves 4 candles on
        venue.faults.ws_skip_candles_on_drop = 4
        venue.faults.ws_duplicate = True  # and every frame comes twice
        venue.faults.http_429 = 1  # and the backfill meets a rate limit and a 5xx burst
        venue.faults.http_5xx = 2
        first = make_agent(bus, venue.clock, gateway_for(venue), store=influx_store)
        await first.start()
        try:
            await consumer.wait_for(30)
        finally:
            await first.stop()  # also closes the store: reopen it for the second run
        assert venue.state.ws_connections == 2

        stopped_at = len(consumer.candles)
        venue.set_position(venue.state.position + 7)  # time passes while the agent is down
        await influx_store.start()
        second = make_agent(bus, venue.clock, gateway_for(venue), store=influx_store)
        await second.start()
        try:
            await consumer.wait_for(60)
        finally:  # a timeout fails with the agent stopped (a live client would keep the venue open)
            await second.stop()
            await influx_store.start()

    assert (venue.faults.http_429, venue.faults.http_5xx) == (0, 0)  # the faults did fire
    got = consumer.candles
    assert [c.model_copy(update={"sequence": 0}) for c in got] == recorded[100:160]
    assert [c.sequence for c in got] == list(range(1, 61))
    assert second.feeds[CandleKey("binance", "BTC/USDT", "1h")].stats.backfilled >= 7
    assert first.feeds[CandleKey("binance", "BTC/USDT", "1h")].stats.backfilled >= 5
    assert stopped_at < 60
    stored = await influx_store.query_candles(CandleKey("binance", "BTC/USDT", "1h"), recorded[0].open_time)
    assert stored == got  # the tick store holds exactly what was published, sequence numbers included


async def test_top_of_book_is_published_when_it_changes(bus_and_consumer) -> None:
    """Book ticker frames through real ccxt (watch_bids_asks): the first top is published, identical
    frames are not, a changed top is."""
    bus, consumer = bus_and_consumer
    async with FakeBinance(stream_start=100, stream_end=103, frame_interval_s=0.005) as venue:
        venue.state.book_frames = 2000  # ~10 s of identical frames unless the test changes the book
        agent = make_agent(
            bus, venue.clock, gateway_for(venue), store=None, book=True, book_min_interval_s=0.0,
            book_refresh_s=365 * 86_400.0,
        )  # fmt: skip
        await agent.start()
        try:
            await consumer.wait_for_books(1)
            await asyncio.sleep(0.1)  # ~20 more identical frames
            assert len(consumer.books) == 1
            venue.state.book_ticker = {**venue.state.book_ticker, "bidPrice": "60740.01", "askPrice": "60742.50"}
            await consumer.wait_for_books(2)
            await asyncio.sleep(0.1)
        finally:
            await agent.stop()
    first, second = consumer.books[0], consumer.books[1]
    assert (first.venue, first.symbol) == ("binance", "BTC/USDT")
    assert (first.bid, first.ask) == (Decimal("60741.67"), Decimal("60741.68"))  # the recorded book ticker
    assert (first.bid_size, first.ask_size) == (Decimal("0.3658"), Decimal("0.45178"))
    assert (second.bid, second.ask) == (Decimal("60740.01"), Decimal("60742.50"))
    assert len(consumer.books) == 2


async def test_a_crossed_book_is_skipped_and_the_feed_goes_on(bus_and_consumer) -> None:
    bus, consumer = bus_and_consumer
    async with FakeBinance(stream_start=100, stream_end=103, frame_interval_s=0.005) as venue:
        venue.state.book_frames = 4000
        venue.state.book_ticker = {**venue.state.book_ticker, "bidPrice": "60745.00", "askPrice": "60741.00"}
        agent = make_agent(bus, venue.clock, gateway_for(venue), store=None, book=True, book_min_interval_s=0.0)
        await agent.start()
        try:
            await asyncio.sleep(0.3)  # crossed frames only: refused by the BookTop model
            assert consumer.books == []
            venue.state.book_ticker = {**venue.state.book_ticker, "bidPrice": "60740.00", "askPrice": "60741.00"}
            await consumer.wait_for_books(1)
        finally:
            await agent.stop()
    assert (consumer.books[0].bid, consumer.books[0].ask) == (Decimal("60740.00"), Decimal("60741.00"))


async def test_offline_sources_publish_no_book(bus_and_consumer, btc_1h_csv: Path) -> None:
    bus, consumer = bus_and_consumer
    from core.clock import WallClock

    agent = make_agent(bus, WallClock(), ReplaySource(btc_1h_csv, venue="binance"), store=None, book=True)
    await agent.start()
    try:
        await consumer.wait_for(3000)
    finally:
        await agent.stop()
    assert consumer.books == []


async def test_stale_feed_alerts_and_resubscribes(bus_and_consumer) -> None:
    bus, consumer = bus_and_consumer
    async with FakeBinance(stream_start=10, stream_end=13) as venue:
        agent = make_agent(bus, venue.clock, gateway_for(venue), store=None, stale_intervals=0.0002)  # ~0.7 s
        await agent.start()
        try:
            await consumer.wait_for(3)

            async def alerted() -> None:
                while not consumer.alerts or venue.state.ws_connections < 2:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(alerted(), 30)
        finally:
            await agent.stop()
    alert = consumer.alerts[0]
    assert alert.code == "stale_feed"
    assert alert.symbol == "BTC/USDT"
    assert alert.venue == "binance"


async def test_replay_source_publishes_the_file(bus_and_consumer, btc_1h_csv: Path) -> None:
    bus, consumer = bus_and_consumer
    from core.clock import WallClock

    agent = make_agent(bus, WallClock(), ReplaySource(btc_1h_csv, venue="binance"), store=None)
    await agent.start()
    try:
        await consumer.wait_for(3000)
    finally:
        await agent.stop()
    assert [c.model_copy(update={"sequence": 0}) for c in consumer.candles] == read_candles_csv(btc_1h_csv)
    assert consumer.candles[-1].sequence == 3000


async def test_synthetic_source_runs_offline(bus_and_consumer) -> None:
    bus, consumer = bus_and_consumer
    from core.clock import WallClock

    source = SyntheticSource(venue="binance", seed=1, count=500)
    agent = make_agent(bus, WallClock(), source, store=None)
    await agent.start()
    try:
        await consumer.wait_for(500)
    finally:
        await agent.stop()
    expected = list(SyntheticSource(venue="binance", seed=1, count=500).iter_candles("BTC/USDT", "1h"))
    assert [c.model_copy(update={"sequence": 0}) for c in consumer.candles] == expected


async def test_unknown_symbol_is_one_critical_alert(bus_and_consumer) -> None:
    bus, consumer = bus_and_consumer
    async with FakeBinance(stream_start=10, stream_end=13) as venue:
        agent = make_agent(bus, venue.clock, gateway_for(venue), store=None)
        agent.ctx.settings = Settings(symbols=["BTC/USTD"], timeframes=["1h"])
        await agent.start()
        try:

            async def alerted() -> None:
                while not consumer.alerts:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(alerted(), 30)
            await asyncio.sleep(0.2)  # nothing more comes: the feed stopped, it does not retry
        finally:
            await agent.stop()
    assert len(consumer.alerts) == 1
    alert = consumer.alerts[0]
    assert alert.code == "feed_failed"
    assert alert.severity.value == "critical"
    assert "did you mean BTC/USDT" in alert.message
    assert consumer.candles == []


async def test_trades_are_published_and_stored(bus_and_consumer, influx_store: InfluxV1Store) -> None:
    import json
    from datetime import UTC, datetime

    from core.messages.market import Trade
    from core.routing import TRADES
    from tests.fakevenue.server import DATA

    bus, _ = bus_and_consumer
    trades: list[Trade] = []

    async def on_trade(envelope: Envelope) -> None:
        assert isinstance(envelope.payload, Trade)
        trades.append(envelope.payload)

    await bus.subscribe(QueueSpec("consumer.trades", (TRADES.all(),)), on_trade)
    raw = json.loads((DATA / "http_spot_market_trades.json").read_text())
    async with FakeBinance(stream_start=10, stream_end=11) as venue:
        agent = make_agent(bus, venue.clock, gateway_for(venue), store=influx_store, trades=True)
        await agent.start()
        try:

            async def all_trades() -> None:
                while len(trades) < len(raw):
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(all_trades(), 30)
        finally:
            await agent.stop()
    await influx_store.start()
    assert [t.trade_id for t in trades] == [str(r["id"]) for r in raw]
    stored = await influx_store.query_trades(
        "binance", "BTC/USDT", datetime(2021, 10, 22, tzinfo=UTC), datetime(2021, 10, 24, tzinfo=UTC)
    )
    assert sorted(stored, key=lambda t: t.trade_id or "") == sorted(trades, key=lambda t: t.trade_id or "")
