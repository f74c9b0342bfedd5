"""Protective exits: stop-loss, take-profit and trailing stop of one position. Pure.

Checked against each new bar in order: a gap through a level at the open exits at the open; else a
stop touched by the bar's range exits at the stop; else a take-profit touched exits at the level.
When one bar touches both, the stop is assumed to come first (the conservative choice). The
trailing stop follows the best price seen *before* the bar being checked, so a bar never triggers
on its own high-water mark.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from core.trading.fillmodel import Bar

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Trigger:
    """A protective level fired: exit at ``price`` because of ``reason``."""

    reason: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class ProtectiveLevels:
    """The exit levels of a long (``long=True``) or short position."""

    long: bool
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_pct: Decimal | None = None
    best_price: Decimal | None = None

    @property
    def trailing_stop(self) -> Decimal | None:
        """The current trailing stop level."""
        if self.trailing_pct is None or self.best_price is None:
            return None
        factor = self.trailing_pct / HUNDRED
        return self.best_price * (1 - factor) if self.long else self.best_price * (1 + factor)

    def effective_stop(self) -> Decimal | None:
        """The tighter of the fixed and the trailing stop."""
        stops = [s for s in (self.stop_loss, self.trailing_stop) if s is not None]
        if not stops:
            return None
        return max(stops) if self.long else min(stops)

    def check(self, bar: Bar) -> Trigger | None:
        """The trigger this bar fires, if any."""
        stop = self.effective_stop()
        reason_stop = (
            "trailing_stop"
            if stop is not None and stop == self.trailing_stop and stop != self.stop_loss
            else "stop_loss"
        )
        tp = self.take_profit
        if self.long:
            if stop is not None and bar.open <= stop:
                return Trigger(reason_stop, bar.open)
            if tp is not None and bar.open >= tp:
                return Trigger("take_profit", bar.open)
            if stop is not None and bar.low <= stop:
                return Trigger(reason_stop, stop)
            if tp is not None and bar.high >= tp:
                return Trigger("take_profit", tp)
        else:
            if stop is not None and bar.open >= stop:
                return Trigger(reason_stop, bar.open)
            if tp is not None and bar.open <= tp:
                return Trigger("take_profit", bar.open)
            if stop is not None and bar.high >= stop:
                return Trigger(reason_stop, stop)
            if tp is not None and bar.low <= tp:
                return Trigger("take_profit", tp)
        return None

    def after(self, bar: Bar) -> ProtectiveLevels:
        """The levels after ``bar`` has been checked (the trailing high/low-water mark moves)."""
        if self.trailing_pct is None:
            return self
        best = self.best_price
        if self.long:
            best = bar.high if best is None else max(best, bar.high)
        else:
            best = bar.low if best is None else min(best, bar.low)
        return replace(self, best_price=best)
