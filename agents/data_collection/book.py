"""Which top-of-book updates the data collection agent publishes.

A venue's book ticker can change many times a second; its consumers (the paper venue's spread,
compliance's price reference) need the current top, not every tick. :class:`BookThrottle` lets an
update through when the top (bid, ask) changed and ``min_interval`` has passed since the last one
published for the symbol, or when ``refresh`` has passed whatever changed (so a consumer that just
started learns the spread in a quiet market). Everything else is dropped: a later update carries
the newer top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from core.messages.market import BookTop


@dataclass(slots=True)
class BookThrottle:
    """Per-symbol publish decision for top-of-book updates (see the module docstring)."""

    min_interval: timedelta
    refresh: timedelta
    _last: dict[str, tuple[datetime, Decimal, Decimal]] = field(default_factory=dict, init=False)

    def due(self, top: BookTop, now: datetime) -> bool:
        """Whether ``top`` should be published at ``now`` (remembered as published if so)."""
        last = self._last.get(top.symbol)
        if last is not None:
            at, bid, ask = last
            elapsed = now - at
            changed = top.bid != bid or top.ask != ask
            if not (changed and elapsed >= self.min_interval) and elapsed < self.refresh:
                return False
        self._last[top.symbol] = (now, top.bid, top.ask)
        return True
