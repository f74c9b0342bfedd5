"""A :class:`core.ports.HistoryProvider` over a list of real candles (tests and examples)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.messages import Candle


class ReplayHistory:
    """Serves ``recent_candles`` from a fixed list of candles."""

    def __init__(self, candles: Sequence[Candle]) -> None:
        self.candles = list(candles)
        self.calls: list[tuple[str, str, str, int]] = []

    async def recent_candles(
        self, venue: str, symbol: str, timeframe: str, limit: int, end: datetime | None = None
    ) -> Sequence[Candle]:
        self.calls.append((venue, symbol, timeframe, limit))
        match = [
            c
            for c in self.candles
            if c.venue == venue
            and c.symbol == symbol
            and c.timeframe == timeframe
            and (end is None or c.close_time <= end)
        ]
        return match[-limit:] if limit else []
