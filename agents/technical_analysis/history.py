"""A :class:`core.ports.HistoryProvider` over the tick store (:class:`core.gateway.TickStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.domain import timeframe_to_timedelta
from core.gateway import CandleKey, TickStore
from core.messages import Candle


class TickStoreHistory:
    """Recent closed candles of a series from the tick store (InfluxDB)."""

    def __init__(self, store: TickStore, *, slack: float = 1.5) -> None:
        self.store = store
        self._slack = slack
        self._started = False

    async def recent_candles(
        self, venue: str, symbol: str, timeframe: str, limit: int, end: datetime | None = None
    ) -> Sequence[Candle]:
        """Up to ``limit`` candles closed at or before ``end``, oldest first.

        Asks for ``limit * slack`` timeframes back (gaps in the store make fewer candles come back:
        the warm-up then continues on the live feed).
        """
        if limit <= 0:
            return []
        if end is None:
            raise ValueError("the tick store history needs an end time")
        if not self._started:
            await self.store.start()
            self._started = True
        step = timeframe_to_timedelta(timeframe)
        start = end - step * int(limit * self._slack + 1)
        candles = await self.store.query_candles(CandleKey(venue, symbol, timeframe), start, end)
        closed = [c for c in candles if c.close_time <= end]
        return closed[-limit:]

    async def close(self) -> None:
        """Close the store."""
        await self.store.close()
