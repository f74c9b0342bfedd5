"""Pure candle-stream logic: building candles, closing forming candles, order/gap/duplicate checks.

* :func:`candle_from_ohlcv` turns a ccxt OHLCV row (``[ms, o, h, l, c, v]``) into a :class:`Candle`,
  with exact decimals (``Decimal(repr(float))`` gives back the venue's decimal string).
* :class:`CandleCloser` receives updates of forming candles (ccxt's ``watch_ohlcv`` returns the
  forming candle again and again) and releases a candle only once it is CLOSED: a later candle
  started, or its close time has passed on the clock. No lookahead: a partial candle is never
  released as closed before its time.
* :class:`CandleGuard` keeps one stream per (venue, symbol, timeframe) gap-free, duplicate-free
  and ordered: it numbers candles, drops repeats, and reports the missing range when a gap opens
  so the caller can backfill it before publishing the newer candle.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from core.clock import ms_from_utc, utc_from_ms
from core.domain import timeframe_to_timedelta
from core.messages.market import Candle

OhlcvValue = int | float | str | Decimal | None


@functools.lru_cache(maxsize=64)
def timeframe_ms(timeframe: str) -> int:
    """Length of ``timeframe`` in milliseconds (``1m`` -> 60000)."""
    return int(timeframe_to_timedelta(timeframe).total_seconds() * 1000)


def to_decimal(value: OhlcvValue) -> Decimal:
    """An exact decimal from a venue number: floats via their shortest repr (``0.1`` -> ``0.1``)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def candle_from_ohlcv(venue: str, symbol: str, timeframe: str, row: Sequence[OhlcvValue], sequence: int = 0) -> Candle:
    """A validated :class:`Candle` from a ccxt OHLCV row ``[open_ms, open, high, low, close, volume]``.

    Raises ``ValueError`` (pydantic's ``ValidationError``) for an inconsistent row.
    """
    if len(row) < 6 or row[0] is None:
        raise ValueError(f"malformed OHLCV row {list(row)!r}")
    open_ms = int(row[0])
    return Candle(
        venue=venue,
        symbol=symbol,
        timeframe=timeframe,
        open_time=utc_from_ms(open_ms),
        close_time=utc_from_ms(open_ms + timeframe_ms(timeframe)),
        open=to_decimal(row[1]),
        high=to_decimal(row[2]),
        low=to_decimal(row[3]),
        close=to_decimal(row[4]),
        volume=to_decimal(row[5]),
        sequence=sequence,
    )


def candle_open_ms(candle: Candle) -> int:
    """A candle's open time in epoch milliseconds."""
    return ms_from_utc(candle.open_time)


class CandleCloser:
    """Releases forming candles once they are closed (one stream: one symbol and timeframe).

    Feed every update with :meth:`update`; ask :meth:`due` with the current time to close the
    forming candle whose close time has passed even if no later candle arrived yet.
    """

    def __init__(self, timeframe: str, grace_ms: int = 0) -> None:
        self._tf_ms = timeframe_ms(timeframe)
        self._grace_ms = grace_ms
        self._forming: list[OhlcvValue] | None = None
        self._last_released_ms: int | None = None

    @property
    def forming_open_ms(self) -> int | None:
        """Open time of the candle still forming, if any."""
        return None if self._forming is None else int(self._forming[0])  # type: ignore[arg-type]

    def update(self, rows: Sequence[Sequence[OhlcvValue]]) -> list[list[OhlcvValue]]:
        """Take new OHLCV rows (any order, repeats allowed); return rows that closed, ascending."""
        closed: list[list[OhlcvValue]] = []
        for row in sorted(rows, key=lambda r: int(r[0])):  # type: ignore[arg-type]
            open_ms = int(row[0])  # type: ignore[arg-type]
            if self._last_released_ms is not None and open_ms <= self._last_released_ms:
                continue  # an update of a candle already released: never re-release
            forming = self._forming
            if forming is None or open_ms == int(forming[0]):  # type: ignore[arg-type]
                self._forming = list(row)
            elif open_ms > int(forming[0]):  # type: ignore[arg-type]
                closed.append(forming)
                self._last_released_ms = int(forming[0])  # type: ignore[arg-type]
                self._forming = list(row)
        return closed

    def discard_forming(self) -> None:
        """Forget the forming candle (its updates may have been missed, e.g. after a disconnect)."""
        self._forming = None

    def due(self, now: datetime) -> list[list[OhlcvValue]]:
        """The forming candle if its close time (plus grace) has passed at ``now``, else nothing."""
        forming = self._forming
        if forming is None:
            return []
        open_ms = int(forming[0])  # type: ignore[arg-type]
        if ms_from_utc(now) >= open_ms + self._tf_ms + self._grace_ms:
            self._forming = None
            self._last_released_ms = open_ms
            return [forming]
        return []

    def seconds_until_due(self, now: datetime) -> float | None:
        """Seconds until the forming candle becomes due (``None`` when nothing is forming)."""
        forming = self._forming
        if forming is None:
            return None
        due_ms = int(forming[0]) + self._tf_ms + self._grace_ms  # type: ignore[arg-type]
        return max(0.0, (due_ms - ms_from_utc(now)) / 1000)


class Verdict(StrEnum):
    """What :meth:`CandleGuard.check` says about an incoming closed candle."""

    FIRST = "first"
    NEXT = "next"
    DUPLICATE = "duplicate"
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict on one candle; for a gap, the missing open times ``[missing_from, missing_to)``."""

    verdict: Verdict
    missing_from: datetime | None = None
    missing_to: datetime | None = None


class CandleGuard:
    """Keeps one (venue, symbol, timeframe) stream gap-free, duplicate-free and ordered.

    Call :meth:`check` on each closed candle; on ``GAP`` backfill ``[missing_from, missing_to)``
    and :meth:`accept` those candles first; then :meth:`accept` the candle itself. ``accept``
    assigns the next sequence number. :meth:`restore` resumes after a restart from the last
    candle published (e.g. read back from the tick store).
    """

    def __init__(self, timeframe: str) -> None:
        self.timeframe = timeframe
        self._tf_ms = timeframe_ms(timeframe)
        self._last_ms: int | None = None
        self._sequence = 0

    @property
    def last_open_time(self) -> datetime | None:
        """Open time of the last accepted candle."""
        return None if self._last_ms is None else utc_from_ms(self._last_ms)

    @property
    def sequence(self) -> int:
        """Sequence number of the last accepted candle (0 before any)."""
        return self._sequence

    @property
    def next_open_time(self) -> datetime | None:
        """Open time the next candle must have."""
        return None if self._last_ms is None else utc_from_ms(self._last_ms + self._tf_ms)

    def restore(self, last_open_time: datetime, sequence: int) -> None:
        """Resume after ``last_open_time`` (already published with ``sequence``)."""
        self._last_ms = ms_from_utc(last_open_time)
        self._sequence = sequence

    def check(self, candle: Candle) -> Check:
        """Classify ``candle`` against the stream so far (does not change state)."""
        open_ms = ms_from_utc(candle.open_time)
        if self._last_ms is None:
            return Check(Verdict.FIRST)
        if open_ms <= self._last_ms:
            return Check(Verdict.DUPLICATE)
        expected = self._last_ms + self._tf_ms
        if open_ms == expected:
            return Check(Verdict.NEXT)
        return Check(Verdict.GAP, utc_from_ms(expected), candle.open_time)

    def accept(self, candle: Candle) -> Candle | None:
        """Number ``candle`` and make it the last one; ``None`` for a repeat (drop it).

        A candle after a gap is accepted too (the caller decides when backfill is impossible).
        """
        open_ms = ms_from_utc(candle.open_time)
        if self._last_ms is not None and open_ms <= self._last_ms:
            return None
        self._last_ms = open_ms
        self._sequence += 1
        return candle.model_copy(update={"sequence": self._sequence})

    def missing_count(self, check: Check) -> int:
        """Number of candles missing in a ``GAP`` check."""
        if check.verdict is not Verdict.GAP or check.missing_from is None or check.missing_to is None:
            return 0
        return (ms_from_utc(check.missing_to) - ms_from_utc(check.missing_from)) // self._tf_ms
