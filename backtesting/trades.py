"""Round trips from fills: one trade = from flat to flat on one symbol. Pure.

Entry price is the volume-weighted price of the fills that opened or added to the position, exit
price that of the fills that reduced it; fees are every fee paid inside the trip (a fill that flips
the position is split pro rata between the closing and the new trip); PnL is net of fees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.domain import Side

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill as the backtest recorder saw it."""

    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    ts: datetime
    client_order_id: str = ""


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A closed (or, at the end of data, still open) trade."""

    symbol: str
    side: str
    entry_time: datetime
    entry_price: Decimal
    exit_time: datetime | None
    exit_price: Decimal | None
    quantity: Decimal
    fees: Decimal
    pnl: Decimal
    mark_price: Decimal | None = None
    """An open trip's last close, at which its ``pnl`` is valued (``None`` for a closed trip)."""

    @property
    def closed(self) -> bool:
        """The trip ended flat."""
        return self.exit_time is not None


@dataclass(slots=True)
class _Open:
    long: bool
    entry_time: datetime
    position: Decimal = ZERO
    entry_qty: Decimal = ZERO
    entry_value: Decimal = ZERO
    exit_qty: Decimal = ZERO
    exit_value: Decimal = ZERO
    fees: Decimal = ZERO
    last_time: datetime | None = None


class RoundTripBuilder:
    """Feed fills in time order with :meth:`add`; closed trips accumulate in :attr:`trips`."""

    def __init__(self) -> None:
        self.trips: list[RoundTrip] = []
        self._open: dict[str, _Open] = {}

    def add(self, fill: FillRecord) -> None:
        """Apply one fill."""
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        remaining = fill.quantity
        fee_left = fill.fee
        trip = self._open.get(fill.symbol)
        if trip is not None and (trip.position > ZERO) != (signed > ZERO):
            closing = min(abs(trip.position), remaining)
            fee_part = fill.fee * closing / fill.quantity
            trip.exit_qty += closing
            trip.exit_value += closing * fill.price
            trip.fees += fee_part
            trip.position += closing if signed > ZERO else -closing
            trip.last_time = fill.ts
            remaining -= closing
            fee_left -= fee_part
            if trip.position == ZERO:
                self.trips.append(self._close(fill.symbol, trip))
                del self._open[fill.symbol]
                trip = None
        if remaining > ZERO:
            if trip is None:
                trip = _Open(long=signed > ZERO, entry_time=fill.ts)
                self._open[fill.symbol] = trip
            trip.entry_qty += remaining
            trip.entry_value += remaining * fill.price
            trip.fees += fee_left
            trip.position += remaining if signed > ZERO else -remaining

    def _close(self, symbol: str, trip: _Open) -> RoundTrip:
        entry = trip.entry_value / trip.entry_qty
        exit_ = trip.exit_value / trip.exit_qty
        gross = (trip.exit_value - entry * trip.exit_qty) if trip.long else (entry * trip.exit_qty - trip.exit_value)
        return RoundTrip(
            symbol=symbol,
            side="long" if trip.long else "short",
            entry_time=trip.entry_time,
            entry_price=entry,
            exit_time=trip.last_time,
            exit_price=exit_,
            quantity=trip.entry_qty,
            fees=trip.fees,
            pnl=gross - trip.fees,
        )

    def open_trips(self, marks: dict[str, Decimal]) -> list[RoundTrip]:
        """Trips still open, valued at ``marks`` (no exit; ``pnl`` is net of the fees paid so far)."""
        out: list[RoundTrip] = []
        for symbol, trip in sorted(self._open.items()):
            entry = trip.entry_value / trip.entry_qty
            mark = marks.get(symbol, entry)
            held = abs(trip.position)
            unreal = (mark - entry) * held if trip.long else (entry - mark) * held
            realised = (
                (trip.exit_value - entry * trip.exit_qty) if trip.long else (entry * trip.exit_qty - trip.exit_value)
            )
            out.append(
                RoundTrip(symbol, "long" if trip.long else "short", trip.entry_time, entry, None, None,
                          trip.entry_qty, trip.fees, realised + unreal - trip.fees, mark)
            )  # fmt: skip
        return out


def round_trips(fills: list[FillRecord]) -> list[RoundTrip]:
    """Closed round trips of ``fills`` (in time order)."""
    builder = RoundTripBuilder()
    for fill in fills:
        builder.add(fill)
    return builder.trips
