"""The ``Clock`` port and its two implementations.

Agents never call ``datetime.now`` themselves: they ask the injected clock, so the same code runs
under the wall clock (paper, live) and under a simulated clock driven by market data (backtests).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


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
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(1970, 1, 1, tzinfo=UTC)
        _require_aware(start)
        self._now = start
        self._origin = start

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
        self._now = instant

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
