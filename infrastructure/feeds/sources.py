"""Offline market-data sources behind the same port as the live gateway (:class:`MarketDataSource`).

* :class:`ReplaySource` plays candle files (the CSV format of ``shared/data/candles``, or Parquet),
  as fast as possible (``speed=0``) or at N times real time (``speed=N``), and serves history from
  the same files (so gap backfill and warm-up work offline).
* :class:`SyntheticSource` generates candles by seeded geometric Brownian motion: the same seed
  always gives the same candles, so the swarm runs with no network and tests are reproducible.

Both also expose a plain synchronous iterator (:meth:`ReplaySource.iter_candles`,
:meth:`SyntheticSource.iter_candles`) for the backtester's hot loop.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import numpy as np

from core.candles import timeframe_ms
from core.clock import ms_from_utc, utc_from_ms
from core.gateway import CandleKey
from core.messages.market import BookTop, Candle, Trade
from core.routing import escape
from infrastructure.feeds.files import CandleFileError, key_from_filename, read_candles

T = TypeVar("T")


async def _nothing(kind: type[T]) -> AsyncIterator[T]:
    """An empty stream of ``kind``: what offline sources have of trades and order books."""
    empty: list[T] = []
    for item in empty:
        yield item


async def _pace(timeframe: str, speed: float) -> None:
    if speed > 0:
        await asyncio.sleep(timeframe_ms(timeframe) / 1000 / speed)
    else:
        await asyncio.sleep(0)


class ReplaySource:
    """Candles from files. ``path`` is one file, or a directory holding files named
    ``<venue>_<BASE>-<QUOTE>_<tf>.csv`` (or ``.parquet``) for each stream asked for.

    ``venue`` renames the venue of the candles (e.g. replay ``binance`` files as ``binance``
    for the paper venue); by default it comes from the file name.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        venue: str | None = None,
        speed: float = 0.0,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise CandleFileError(f"replay path {self.path} does not exist")
        self.venue = venue
        self.speed = speed
        self.start = start
        self.end = end
        self._cache: dict[tuple[str, str], list[Candle]] = {}

    def _file_for(self, symbol: str, timeframe: str) -> Path:
        if self.path.is_file():
            return self.path
        pattern = f"*_{escape(symbol)}_{timeframe}"
        for suffix in (".csv", ".parquet"):
            matches = sorted(self.path.glob(pattern + suffix))
            if self.venue is not None:
                preferred = [m for m in matches if m.name.startswith(f"{self.venue}_")]
                matches = preferred or matches
            if matches:
                return matches[0]
        raise CandleFileError(f"no replay file for {symbol} {timeframe} in {self.path} (looked for {pattern}.csv)")

    def load(self, symbol: str, timeframe: str) -> list[Candle]:
        """Every candle of the stream (cached), filtered by ``start``/``end``, renamed to ``venue``."""
        cached = self._cache.get((symbol, timeframe))
        if cached is not None:
            return cached
        path = self._file_for(symbol, timeframe)
        key = key_from_filename(path) if self.path.is_dir() else _key_or(path, symbol, timeframe)
        key = CandleKey(self.venue or key.venue, symbol, timeframe)
        candles = read_candles(path, key)
        if self.start is not None:
            candles = [c for c in candles if c.open_time >= self.start]
        if self.end is not None:
            candles = [c for c in candles if c.open_time < self.end]
        self._cache[(symbol, timeframe)] = candles
        return candles

    def iter_candles(self, symbol: str, timeframe: str) -> Iterator[Candle]:
        """The stream's candles, synchronously (backtests)."""
        return iter(self.load(symbol, timeframe))

    async def stream_candles(self, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        """The stream's candles, paced by ``speed``."""
        for candle in self.load(symbol, timeframe):
            await _pace(timeframe, self.speed)
            yield candle

    async def fetch_candles(
        self, symbol: str, timeframe: str, since: datetime, until: datetime | None = None
    ) -> list[Candle]:
        """History from the file: candles with ``since <= open_time < until``."""
        candles = self.load(symbol, timeframe)
        opens = [c.open_time for c in candles]
        lo = bisect.bisect_left(opens, since)
        hi = bisect.bisect_left(opens, until) if until is not None else len(candles)
        return candles[lo:hi]

    def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        """Replays carry no trades."""
        return _nothing(Trade)

    def stream_book_top(self, symbol: str) -> AsyncIterator[BookTop]:
        """Replays carry no order book."""
        return _nothing(BookTop)

    async def reset_streams(self) -> None:
        """Nothing to reconnect."""

    async def close(self) -> None:
        """Nothing to release."""


def _key_or(path: Path, symbol: str, timeframe: str) -> CandleKey:
    try:
        return key_from_filename(path)
    except CandleFileError:
        return CandleKey("replay", symbol, timeframe)


class SyntheticSource:
    """Seeded geometric Brownian motion candles (no network, reproducible).

    ``mu`` and ``sigma`` are annualised drift and volatility; each candle is built from
    ``substeps`` GBM steps (open = previous close, high/low = extremes of the path), prices are
    rounded to ``tick``. Each (symbol, timeframe) gets its own stream derived from ``seed``.
    """

    def __init__(
        self,
        *,
        venue: str = "synthetic",
        seed: int = 42,
        start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
        count: int | None = 10_000,
        initial_price: Decimal = Decimal(30000),
        mu: float = 0.05,
        sigma: float = 0.6,
        tick: Decimal = Decimal("0.01"),
        substeps: int = 8,
        speed: float = 0.0,
    ) -> None:
        if initial_price <= 0 or tick <= 0:
            raise ValueError("initial_price and tick must be positive")
        if sigma < 0 or substeps < 1:
            raise ValueError("sigma must be >= 0 and substeps >= 1")
        self.venue = venue
        self.seed = seed
        self.start = start
        self.count = count
        self.initial_price = initial_price
        self.mu = mu
        self.sigma = sigma
        self.tick = tick
        self.substeps = substeps
        self.speed = speed

    def iter_candles(self, symbol: str, timeframe: str) -> Iterator[Candle]:
        """The stream's candles, synchronously (deterministic for a given seed)."""
        tf = timeframe_ms(timeframe)
        rng = np.random.default_rng([self.seed, zlib.crc32(f"{symbol}|{timeframe}".encode())])
        dt = tf / 1000 / (365 * 24 * 3600) / self.substeps
        drift = (self.mu - 0.5 * self.sigma**2) * dt
        vol = self.sigma * math.sqrt(dt)
        tick = float(self.tick)
        price = float(self.initial_price)
        open_ms = ms_from_utc(self.start) // tf * tf
        produced = 0
        batch = 1024
        while self.count is None or produced < self.count:
            shocks = rng.standard_normal((batch, self.substeps))
            volumes = rng.lognormal(mean=3.0, sigma=0.5, size=batch)
            for i in range(batch):
                if self.count is not None and produced >= self.count:
                    return
                path = price * np.exp(np.cumsum(drift + vol * shocks[i]))
                points = [price, *path.tolist()]
                ticks = [max(1, round(p / tick)) for p in points]
                o, c = ticks[0], ticks[-1]
                h, low = max(ticks), min(ticks)
                yield Candle(
                    venue=self.venue,
                    symbol=symbol,
                    timeframe=timeframe,
                    open_time=utc_from_ms(open_ms),
                    close_time=utc_from_ms(open_ms + tf),
                    open=self.tick * o,
                    high=self.tick * h,
                    low=self.tick * low,
                    close=self.tick * c,
                    volume=Decimal(repr(round(float(volumes[i]), 6))),
                )
                price = c * tick
                open_ms += tf
                produced += 1

    async def stream_candles(self, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        """The stream's candles, paced by ``speed``."""
        for candle in self.iter_candles(symbol, timeframe):
            await _pace(timeframe, self.speed)
            yield candle

    async def fetch_candles(
        self, symbol: str, timeframe: str, since: datetime, until: datetime | None = None
    ) -> list[Candle]:
        """The generated candles with ``since <= open_time < until`` (regenerated from the seed)."""
        out: list[Candle] = []
        for candle in self.iter_candles(symbol, timeframe):
            if until is not None and candle.open_time >= until:
                break
            if candle.open_time >= since:
                out.append(candle)
        return out

    def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        """Synthetic feeds carry no trades."""
        return _nothing(Trade)

    def stream_book_top(self, symbol: str) -> AsyncIterator[BookTop]:
        """Synthetic feeds carry no order book."""
        return _nothing(BookTop)

    async def reset_streams(self) -> None:
        """Nothing to reconnect."""

    async def close(self) -> None:
        """Nothing to release."""
