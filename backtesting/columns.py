"""History as columns: each series read in blocks of arrays, merged by close time into
:class:`~core.columns.CandleColumn` blocks for :meth:`InMemoryBus.publish_column`.

A :class:`SeriesBlock` is a run of consecutive candles of one series as arrays plus a way to build
each candle's exact Decimals. Sources that can produce arrays directly (the GBM generator, CSV files)
do, so a candle is turned into a :class:`~core.messages.Candle` only if some agent must receive it;
any other source is read candle by candle and chunked (its candles then already exist).

:func:`column_blocks` merges several series exactly like :func:`backtesting.data.merge`: by close
time, ties broken by timeframe (shorter first), venue, symbol, timeframe name. Each merged block
ends at a close time no series can precede any more, so blocks can be published one after another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice

import numpy as np
from numpy.typing import NDArray

from backtesting.data import SeriesSource, _ms
from core.candles import timeframe_ms
from core.clock import SimulatedClock
from core.columns import CandleColumn, SeriesInfo
from core.messages.market import Candle
from core.routing import CANDLES

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Exact = Callable[[int], tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]

BLOCK = 65_536
"""Candles per block: large enough that per-block costs vanish, small enough to bound memory."""


@dataclass(frozen=True, slots=True)
class SeriesBlock:
    """Consecutive candles of one series as arrays (see the module docstring).

    Float arrays hold ``float()`` of each exact value; ``exact(i)`` gives row ``i``'s Decimals;
    ``candles`` holds the candles themselves when the source made them anyway.
    """

    open_ms: I64
    close_ms: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    sequence: I64
    exact: Exact
    candles: Sequence[Candle] | None = None
    exact_close: Callable[[int], Decimal] | None = None

    def __len__(self) -> int:
        return int(self.open_ms.shape[0])

    def tail(self, start: int) -> SeriesBlock:
        """The rows from ``start`` on."""
        exact = self.exact
        exact_close = self.exact_close
        return SeriesBlock(
            self.open_ms[start:],
            self.close_ms[start:],
            self.open[start:],
            self.high[start:],
            self.low[start:],
            self.close[start:],
            self.volume[start:],
            self.sequence[start:],
            (lambda i: exact(i + start)) if start else exact,
            self.candles[start:] if self.candles is not None and start else self.candles,
            (lambda i: exact_close(i + start)) if start and exact_close is not None else exact_close,
        )


def candle_blocks(candles: Iterator[Candle], size: int = BLOCK) -> Iterator[SeriesBlock]:
    """Blocks of a series read candle by candle (any source)."""
    while True:
        chunk = list(islice(candles, size))
        if not chunk:
            return
        yield block_of_candles(chunk)


def block_of_candles(chunk: Sequence[Candle]) -> SeriesBlock:
    """One block over candles that exist already."""
    n = len(chunk)

    def col(get: Callable[[Candle], float], dtype: type) -> NDArray[np.generic]:
        return np.fromiter((get(c) for c in chunk), dtype=dtype, count=n)

    def exact(i: int) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        c = chunk[i]
        return c.open, c.high, c.low, c.close, c.volume

    return SeriesBlock(
        col(lambda c: _ms(c.open_time), np.int64),  # type: ignore[arg-type]
        col(lambda c: _ms(c.close_time), np.int64),  # type: ignore[arg-type]
        col(lambda c: float(c.open), np.float64),  # type: ignore[arg-type]
        col(lambda c: float(c.high), np.float64),  # type: ignore[arg-type]
        col(lambda c: float(c.low), np.float64),  # type: ignore[arg-type]
        col(lambda c: float(c.close), np.float64),  # type: ignore[arg-type]
        col(lambda c: float(c.volume), np.float64),  # type: ignore[arg-type]
        col(lambda c: c.sequence, np.int64),  # type: ignore[arg-type]
        exact,
        chunk,
        lambda i: chunk[i].close,
    )


def series_blocks(source: SeriesSource) -> Iterator[SeriesBlock]:
    """The source's blocks: its own array reader when it has one, else chunked candles."""
    if source.blocks is not None:
        return source.blocks()
    return candle_blocks(source.candles())


def series_table(sources: Sequence[SeriesSource]) -> list[SeriesSource]:
    """The sources in merge rank order (timeframe length, venue, symbol, timeframe name)."""
    return sorted(sources, key=lambda s: (timeframe_ms(s.key.timeframe), s.key.venue, s.key.symbol, s.key.timeframe))


def column_blocks(sources: Sequence[SeriesSource], *, source_id: str, clock: SimulatedClock | None,
                  size: int = BLOCK) -> Iterator[CandleColumn]:  # fmt: skip
    """The merged candle columns of ``sources`` (see the module docstring)."""
    ranked = series_table(sources)
    table = [
        SeriesInfo(
            s.key.venue,
            s.key.symbol,
            s.key.timeframe,
            CANDLES.key(venue=s.key.venue, symbol=s.key.symbol, timeframe=s.key.timeframe),
        )
        for s in ranked
    ]
    iters = [series_blocks(s) for s in ranked]
    current: list[SeriesBlock | None] = [next(it, None) for it in iters]
    while True:
        live = [k for k, b in enumerate(current) if b is not None and len(b)]
        if not live:
            return
        if len(live) == 1 and len(ranked) == 1:
            block = current[0]
            assert block is not None
            yield _column(table, [(0, block, len(block))], source_id, clock)
            current[0] = next(iters[0], None)
            continue
        # every row closing at or before the earliest block end can be merged now
        bound = min(int(b.close_ms[-1]) for b in current if b is not None and len(b))
        parts: list[tuple[int, SeriesBlock, int]] = []
        for k in live:
            b = current[k]
            assert b is not None
            take = int(np.searchsorted(b.close_ms, bound, side="right"))
            if take:
                parts.append((k, b, take))
        yield _column(table, parts, source_id, clock)
        for k, b, take in parts:
            rest = b.tail(take)
            current[k] = rest if len(rest) else next(iters[k], None)
        for k in range(len(current)):
            b = current[k]
            if b is not None and not len(b):
                current[k] = next(iters[k], None)


def _column(table: list[SeriesInfo], parts: list[tuple[int, SeriesBlock, int]], source_id: str,
            clock: SimulatedClock | None) -> CandleColumn:  # fmt: skip
    """One merged column from the first ``take`` rows of each part, ordered by (close time, rank)."""
    if len(parts) == 1:
        k, b, take = parts[0]
        exact = b.exact
        candles = b.candles[:take] if b.candles is not None else None
        return CandleColumn(
            table,
            np.full(take, k, dtype=np.intp),
            open_ms=b.open_ms[:take],
            close_ms=b.close_ms[:take],
            open=b.open[:take],
            high=b.high[:take],
            low=b.low[:take],
            close=b.close[:take],
            volume=b.volume[:take],
            sequence=b.sequence[:take],
            exact=exact,
            source=source_id,
            clock=clock,
            candles=candles,
            exact_close=b.exact_close,
        )
    series = np.concatenate([np.full(take, k, dtype=np.intp) for k, _, take in parts])
    local = np.concatenate([np.arange(take, dtype=np.intp) for _, _, take in parts])
    close_ms = np.concatenate([b.close_ms[:take] for _, b, take in parts])
    order = np.lexsort((series, close_ms))  # close time, then rank (the table is in rank order)

    def cat(name: str) -> NDArray[np.generic]:
        return np.concatenate([getattr(b, name)[:take] for _, b, take in parts])[order]

    series = series[order]
    local = local[order]
    blocks = {k: b for k, b, _ in parts}
    series_list = series.tolist()
    local_list = local.tolist()
    has_candles = all(b.candles is not None for _, b, _ in parts)
    candles = None
    if has_candles:
        candles = [blocks[s].candles[j] for s, j in zip(series_list, local_list, strict=True)]  # type: ignore[index]

    def merged_exact(i: int) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        return blocks[series_list[i]].exact(local_list[i])

    def exact_close(i: int) -> Decimal:
        block = blocks[series_list[i]]
        if block.exact_close is not None:
            return block.exact_close(local_list[i])
        return block.exact(local_list[i])[3]

    return CandleColumn(
        table,
        series,
        open_ms=cat("open_ms"),  # type: ignore[arg-type]
        close_ms=close_ms[order],
        open=cat("open"),  # type: ignore[arg-type]
        high=cat("high"),  # type: ignore[arg-type]
        low=cat("low"),  # type: ignore[arg-type]
        close=cat("close"),  # type: ignore[arg-type]
        volume=cat("volume"),  # type: ignore[arg-type]
        sequence=cat("sequence"),  # type: ignore[arg-type]
        exact=merged_exact,
        source=source_id,
        clock=clock,
        candles=candles,
        exact_close=exact_close,
    )
