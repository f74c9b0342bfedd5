"""The data collection agent: the swarm's senses.

For every configured symbol x timeframe it reads CLOSED candles from its source (the live venue
through the gateway, a replay file, or synthetic GBM), guards the stream (:class:`CandleFeed`:
sequence numbers, duplicates dropped, gaps backfilled through REST before newer candles), publishes
:class:`Candle` messages, and writes them to the tick store (InfluxDB). With ``trades`` on, it also
publishes and stores public trades; with ``book`` on, it publishes the top of book (best bid/ask,
throttled by :class:`~agents.data_collection.book.BookThrottle`, not stored). A candle feed silent
for ``stale_intervals`` intervals raises a ``stale_feed`` :class:`RiskAlert` and is resubscribed.
On restart it resumes after the last candle in the tick store, so the missed candles are
backfilled and numbering continues.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from agents.base import Agent, AgentContext
from agents.data_collection.book import BookThrottle
from agents.data_collection.feed import CandleFeed
from agents.data_collection.settings import DataCollectionSettings
from core.candles import timeframe_ms
from core.domain import Severity
from core.errors import PermanentError, TemporaryError, UnroutableMessage
from core.gateway import CandleKey, MarketDataSource, TickStore
from core.messages.base import Payload
from core.messages.control import RiskAlert
from core.messages.market import BookTop, Candle, Trade
from infrastructure.observability import metrics


class StoreBuffer:
    """Batches candles and trades for the tick store; flushed by size, by timer and on stop.

    Adding never waits on the store: a full batch only wakes the flush loop (:attr:`wanted`), so
    candles keep being published while the store is slow or down (its writes are retried, the
    buffer holds what was not written yet).
    """

    MAX_BUFFERED = 100_000

    def __init__(self, store: TickStore, batch_size: int, log: Any) -> None:
        self.store = store
        self.batch_size = batch_size
        self.log = log
        self.candles: list[Candle] = []
        self.trades: list[Trade] = []
        self._lock = asyncio.Lock()
        self.wanted = asyncio.Event()
        """Set when a batch is full: the flush loop writes at once instead of at its next tick."""

    async def add_candle(self, candle: Candle) -> None:
        """Queue a candle; a full batch wakes the flush loop (never waits on the store)."""
        self.candles.append(candle)
        if len(self.candles) >= self.batch_size:
            self.wanted.set()

    async def add_trade(self, trade: Trade) -> None:
        """Queue a trade; a full batch wakes the flush loop (never waits on the store)."""
        self.trades.append(trade)
        if len(self.trades) >= self.batch_size:
            self.wanted.set()

    async def flush(self) -> None:
        """Write everything queued (the store retries temporary failures itself).

        Items leave the buffer only once written: a flush cancelled or failed midway keeps them for
        the next one (writes are idempotent, so a repeat is harmless). If the store stays down, the
        buffer keeps at most ``MAX_BUFFERED`` items of each kind (oldest dropped, logged).
        """
        async with self._lock:
            candles, trades = list(self.candles), list(self.trades)
            try:
                if candles:
                    await self.store.write_candles(candles)
                del self.candles[: len(candles)]
                if trades:
                    await self.store.write_trades(trades)
                del self.trades[: len(trades)]
            except (TemporaryError, PermanentError) as exc:
                self.log.error("tick store write failed", error=str(exc), candles=len(candles), trades=len(trades))
                for items in (self.candles, self.trades):
                    excess = len(items) - self.MAX_BUFFERED
                    if excess > 0:
                        del items[:excess]
                        self.log.error("tick store buffer full: oldest items dropped", dropped=excess)


class DataCollectionAgent(Agent):
    """Publishes closed candles and trades from one venue and stores them (see the module docstring)."""

    kind = "data_collection"

    def __init__(
        self,
        ctx: AgentContext,
        source: MarketDataSource,
        *,
        venue: str,
        store: TickStore | None = None,
        config: DataCollectionSettings | None = None,
    ) -> None:
        super().__init__(ctx)
        self.source = source
        self.venue = venue
        self.store = store
        self.config = config or DataCollectionSettings()
        self.feeds: dict[CandleKey, CandleFeed] = {}
        self.alerts: list[RiskAlert] = []
        self.finished: set[CandleKey] = set()
        self._buffer = StoreBuffer(store, self.config.store_batch_size, self.log) if store is not None else None
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._book_throttle = BookThrottle(
            timedelta(seconds=self.config.book_min_interval_s), timedelta(seconds=self.config.book_refresh_s)
        )

    async def on_start(self) -> None:
        """Connect the store, resume every feed after its last stored candle, start the loops."""
        settings = self.ctx.settings
        if self.store is not None:
            await self.store.start()
        for symbol in settings.symbols:
            for timeframe in settings.timeframes:
                key = CandleKey(self.venue, symbol, timeframe)
                feed = CandleFeed(
                    key,
                    self._publish_candle,
                    history=self.source,
                    max_backfill=self.config.backfill_max_candles,
                    on_unfilled=self._gap_unfilled,
                )
                if self.store is not None and self.config.resume_from_store:
                    last = await self.store.last_candle(key)
                    if last is not None:
                        feed.guard.restore(last.open_time, last.sequence)
                        self.log.info(
                            "feed resumed",
                            symbol=symbol,
                            timeframe=timeframe,
                            after=last.open_time.isoformat(),
                            sequence=last.sequence,
                        )
                self.feeds[key] = feed
                self._tasks.append(asyncio.create_task(self._run_candles(feed), name=f"candles {symbol} {timeframe}"))
            if self.config.trades:
                self._tasks.append(asyncio.create_task(self._run_trades(symbol), name=f"trades {symbol}"))
            if self.config.book:
                self._tasks.append(asyncio.create_task(self._run_book(symbol), name=f"book {symbol}"))
        if self._buffer is not None:
            self._tasks.append(asyncio.create_task(self._flush_loop(), name="store flush"))

    async def on_stop(self) -> None:
        """Stop the loops (letting the candle in hand finish), flush the store, close adapters."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._tasks.clear()
        if self._buffer is not None:
            await self._buffer.flush()
        if self.store is not None:
            await self.store.close()
        await self.source.close()

    # --- loops -----------------------------------------------------------------------------------

    async def _guarded_step(self, step: Any) -> None:
        """Run one publish step to its end even if the loop is being cancelled meanwhile."""
        future = asyncio.ensure_future(step)
        self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        await asyncio.shield(future)

    async def _run_candles(self, feed: CandleFeed) -> None:
        key = feed.key
        stale_s = self.config.stale_intervals * timeframe_ms(key.timeframe) / 1000
        while True:
            stream: AsyncIterator[Candle] = self.source.stream_candles(key.symbol, key.timeframe)
            try:
                while True:
                    try:
                        candle = await asyncio.wait_for(anext(stream), timeout=stale_s)
                    except StopAsyncIteration:
                        self.finished.add(key)
                        self.log.info("candle source finished", symbol=key.symbol, timeframe=key.timeframe)
                        return
                    except TimeoutError:
                        await self._stale(key.symbol, "candle", f"no {key.timeframe} candle for {stale_s:.0f}s")
                        break
                    metrics.MARKET_EVENTS.labels(key.venue, key.symbol, "candle").inc()
                    metrics.FEED_LAST_EVENT.labels(key.venue, key.symbol, "candle").set(
                        self.ctx.clock.now().timestamp()
                    )
                    backfilled, duplicates = feed.stats.backfilled, feed.stats.duplicates
                    await self._guarded_step(feed.handle(candle))
                    if feed.stats.backfilled > backfilled:
                        metrics.CANDLES_GAP_FILLED.labels(key.venue, key.symbol, key.timeframe).inc(
                            feed.stats.backfilled - backfilled
                        )
                    if feed.stats.duplicates > duplicates:
                        metrics.CANDLES_DUPLICATES.labels(key.venue, key.symbol, key.timeframe).inc(
                            feed.stats.duplicates - duplicates
                        )
            except PermanentError as exc:
                await self._alert(Severity.CRITICAL, "feed_failed", f"{key.symbol} {key.timeframe}: {exc}", key.symbol)
                self.log.error("candle feed failed permanently", symbol=key.symbol, error=str(exc))
                return
            except TemporaryError as exc:
                self.log.warning("candle feed interrupted; resubscribing", symbol=key.symbol, error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]

    async def _run_trades(self, symbol: str) -> None:
        while True:
            stream: AsyncIterator[Trade] = self.source.stream_trades(symbol)
            try:
                while True:
                    try:
                        trade = await asyncio.wait_for(anext(stream), timeout=self.config.trade_stale_s)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        await self._stale(symbol, "trade", f"no trade for {self.config.trade_stale_s:.0f}s")
                        break
                    metrics.MARKET_EVENTS.labels(self.venue, symbol, "trade").inc()
                    await self._guarded_step(self._publish_trade(trade))
            except PermanentError as exc:
                self.log.error("trade feed failed permanently", symbol=symbol, error=str(exc))
                return
            except TemporaryError as exc:
                self.log.warning("trade feed interrupted; resubscribing", symbol=symbol, error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]

    async def _run_book(self, symbol: str) -> None:
        """Publish the top of book of ``symbol`` as the throttle lets it through (not stored)."""
        while True:
            stream: AsyncIterator[BookTop] = self.source.stream_book_top(symbol)
            try:
                async for top in stream:
                    metrics.MARKET_EVENTS.labels(self.venue, symbol, "book").inc()
                    if self._book_throttle.due(top, self.ctx.clock.now()):
                        await self._guarded_step(self._send(top, ts_event=top.ts))
                return  # the source has no (more) book: offline sources
            except PermanentError as exc:
                self.log.error("book feed failed permanently", symbol=symbol, error=str(exc))
                return
            except TemporaryError as exc:
                self.log.warning("book feed interrupted; resubscribing", symbol=symbol, error=str(exc))
                await asyncio.sleep(1.0)
            except ValueError as exc:  # a ticker the BookTop model refuses (e.g. a crossed book): skip it
                self.log.warning("invalid top of book skipped; resubscribing", symbol=symbol, error=str(exc)[:300])
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]

    async def _flush_loop(self) -> None:
        assert self._buffer is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._buffer.wanted.wait(), self.config.store_flush_s)
            self._buffer.wanted.clear()
            await self._buffer.flush()

    # --- outputs ---------------------------------------------------------------------------------

    async def _send(self, payload: Payload, **kwargs: Any) -> None:
        try:
            await self.publish(payload, **kwargs)
        except UnroutableMessage:
            self.log.debug("no consumer bound yet", type=payload.TYPE)

    async def _publish_candle(self, candle: Candle) -> None:
        await self._send(candle, ts_event=candle.close_time)
        if self._buffer is not None:
            await self._buffer.add_candle(candle)

    async def _publish_trade(self, trade: Trade) -> None:
        await self._send(trade, ts_event=trade.ts)
        if self._buffer is not None:
            await self._buffer.add_trade(trade)

    async def _gap_unfilled(self, key: CandleKey, missing: int) -> None:
        await self._alert(
            Severity.WARNING,
            "candle_gap",
            f"{missing} {key.timeframe} candles of {key.symbol} could not be backfilled",
            key.symbol,
            value=float(missing),
        )

    async def _stale(self, symbol: str, kind: str, message: str) -> None:
        metrics.FEED_STALE.labels(self.venue, symbol, kind).inc()
        self.log.warning("stale feed; resubscribing", symbol=symbol, kind=kind)
        await self._alert(Severity.WARNING, "stale_feed", f"{kind} feed of {symbol} on {self.venue}: {message}", symbol)
        await self.source.reset_streams()

    async def _alert(
        self, severity: Severity, code: str, message: str, symbol: str | None, value: float | None = None
    ) -> None:
        alert = RiskAlert(severity=severity, code=code, message=message, venue=self.venue, symbol=symbol, value=value)
        self.alerts.append(alert)
        await self._send(alert)
