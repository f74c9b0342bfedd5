"""One candle feed's guard: sequence numbers, duplicate drop, gap backfill, in publish order.

:class:`CandleFeed` sits between a source of closed candles (the gateway's stream, a replay) and
the bus: every candle goes through :meth:`CandleFeed.handle`, which drops repeats, and when a gap
opens (a dropped websocket, a restart) fetches the missing candles through the source's history
(REST) and publishes them, in order, BEFORE the newer candle. Consumers therefore see a gap-free,
duplicate-free, ordered stream, numbered 1, 2, 3... per (venue, symbol, timeframe).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.candles import CandleGuard, Verdict
from core.gateway import CandleKey, MarketDataSource
from core.messages.market import Candle

Publish = Callable[[Candle], Awaitable[None]]
GapReport = Callable[[CandleKey, int], Awaitable[None]]


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed."""

    published: int = 0
    duplicates: int = 0
    backfilled: int = 0
    unfilled_gaps: int = 0


class CandleFeed:
    """Guards one (venue, symbol, timeframe) stream. See the module docstring.

    ``history`` serves backfill (``None``: gaps are published as they are and reported);
    ``max_backfill`` bounds a single backfill; ``on_unfilled`` is told about gaps that stay open
    (candles the venue itself does not have, or a gap larger than ``max_backfill``).
    """

    def __init__(
        self,
        key: CandleKey,
        publish: Publish,
        *,
        history: MarketDataSource | None = None,
        max_backfill: int = 5000,
        on_unfilled: GapReport | None = None,
    ) -> None:
        self.key = key
        self.guard = CandleGuard(key.timeframe)
        self.stats = FeedStats()
        self._publish = publish
        self._history = history
        self._max_backfill = max_backfill
        self._on_unfilled = on_unfilled

    async def handle(self, candle: Candle) -> int:
        """Publish ``candle`` (and any backfilled candles before it); returns how many went out."""
        check = self.guard.check(candle)
        if check.verdict is Verdict.DUPLICATE:
            self.stats.duplicates += 1
            return 0
        sent = 0
        if check.verdict is Verdict.GAP:
            missing = self.guard.missing_count(check)
            if self._history is not None and missing <= self._max_backfill and check.missing_from is not None:
                fetched = await self._history.fetch_candles(
                    self.key.symbol, self.key.timeframe, check.missing_from, check.missing_to
                )
                for old in fetched:
                    if old.open_time >= candle.open_time:
                        break
                    if await self._emit(old):
                        sent += 1
                        self.stats.backfilled += 1
            still_missing = self.guard.missing_count(self.guard.check(candle))
            if still_missing:
                self.stats.unfilled_gaps += 1
                if self._on_unfilled is not None:
                    await self._on_unfilled(self.key, still_missing)
        if await self._emit(candle):
            sent += 1
        return sent

    async def _emit(self, candle: Candle) -> bool:
        if self.guard.check(candle).verdict is Verdict.DUPLICATE:
            self.stats.duplicates += 1
            return False
        # publish first, then advance: a failed publish leaves the candle to be sent again
        await self._publish(candle.model_copy(update={"sequence": self.guard.sequence + 1}))
        self.guard.accept(candle)
        self.stats.published += 1
        return True
