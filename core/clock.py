"""The ``Clock`` port and its two implementations.

Agents never call ``datetime.now`` themselves: they ask the injected clock, so the same code runs
under the wall clock (paper, live) and under a simulated clock driven by market data (backtests).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from core.ids import CounterIds


@runtime_checkable
class Clock(Protocol):
    """Source of the current time, always timezone-aware UTC."""

    def now(self) -> datetime:
        """The current time."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards (for durations)."""
        ...


class WallClock:
    """The real clock of the machine."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


class SimulatedClock:
    """A clock that only moves when told to: by the replay feed in backtests, or by tests.

    Time never goes backwards; :meth:`advance_to` with an earlier instant raises ``ValueError``.

    With ``ids`` (a backtest's clock) the clock also numbers the messages made under it
    (:meth:`message_id`): UUIDv7 ids whose timestamp is the simulated time and whose random bits
    are a counter (:class:`~core.ids.CounterIds`), so a run's message ids are reproducible.
    """

    def __init__(self, start: datetime | None = None, *, ids: CounterIds | None = None) -> None:
        start = start or datetime(1970, 1, 1, tzinfo=UTC)
        _require_aware(start)
        self._now = start
        self._origin = start
        self._now_ms: int | None = None
        self.ids = ids
        """The counter ids of the messages made under this clock (``None``: random UUIDv7)."""

    def now(self) -> datetime:
        """The simulated current time."""
        return self._now

    def monotonic(self) -> float:
        """Simulated seconds since the clock's start."""
        return (self._now - self._origin).total_seconds()

    def advance_to(self, instant: datetime) -> None:
        """Move the clock to ``instant`` (which must not be earlier than now)."""
        if instant < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {instant}")
        if instant != self._now:
            self._now = instant
            self._now_ms = None

    def advance_to_ms(self, instant: datetime, ms: int) -> None:
        """:meth:`advance_to` for a caller that also knows the instant in epoch milliseconds (the
        replay feed), so that :meth:`message_id` does not convert it again."""
        if instant < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {instant}")
        self._now = instant
        self._now_ms = ms

    def now_ms(self) -> int:
        """The simulated current time in epoch milliseconds."""
        ms = self._now_ms
        if ms is None:
            ms = self._now_ms = ms_from_utc(self._now)
        return ms

    def message_id(self) -> uuid.UUID | None:
        """A new message id under this clock (see the class docstring); ``None`` without ``ids``."""
        ids = self.ids
        if ids is None:
            return None
        ms = self._now_ms
        if ms is None:
            ms = self._now_ms = ms_from_utc(self._now)
        return ids.next(ms)

    def rewind_to(self, instant: datetime) -> None:
        """Undo a tentative :meth:`advance_to`: put the clock back to ``instant`` (not later than now).

        Only for a host that moved the clock to a message's time before its handler ran and must
        take the move back because the handler refused the message: a refused message never moves
        an agent's clock (``backtesting.replay_host``). Nothing else may turn time back.
        """
        if instant > self._now:
            raise ValueError(f"rewind_to goes back only: {instant} is after {self._now}")
        self._now = instant

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        if delta < timedelta(0):
            raise ValueError("simulated clock cannot go back")
        self._now = self._now + delta
        self._now_ms = None


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes in tradeswarm must be timezone-aware (UTC)")


def utc_from_ms(ms: int) -> datetime:
    """A UTC datetime from Unix epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def ms_from_utc(value: datetime) -> int:
    """Unix epoch milliseconds from an aware datetime (exact for millisecond-aligned values)."""
    _require_aware(value)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
