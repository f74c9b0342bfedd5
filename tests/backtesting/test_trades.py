"""Round trips from fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from backtesting.trades import FillRecord, RoundTripBuilder, round_trips
from core.domain import Side

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def fill(i: int, side: Side, price: str, qty: str, fee: str = "0", symbol: str = "BTC/USDT") -> FillRecord:
    return FillRecord(symbol, side, D(price), D(qty), D(fee), T0 + timedelta(hours=i))


def test_simple_long_round_trip_net_of_fees() -> None:
    trips = round_trips([fill(0, Side.BUY, "100", "2", "0.2"), fill(3, Side.SELL, "110", "2", "0.22")])
    assert len(trips) == 1
    t = trips[0]
    assert (t.side, t.entry_price, t.exit_price, t.quantity) == ("long", D(100), D(110), D(2))
    assert t.fees == D("0.42")
    assert t.pnl == D("19.58")
    assert t.entry_time == T0
    assert t.exit_time == T0 + timedelta(hours=3)


def test_scaling_in_and_out_uses_vwap() -> None:
    trips = round_trips(
        [
            fill(0, Side.BUY, "100", "1"),
            fill(1, Side.BUY, "130", "2"),
            fill(2, Side.SELL, "140", "1"),
            fill(3, Side.SELL, "110", "2"),
        ]
    )
    (t,) = trips
    assert t.entry_price == D(120)
    assert t.exit_price == D(120)
    assert t.quantity == D(3)
    assert t.pnl == D(0)


def test_flip_splits_fee_and_opens_a_short() -> None:
    builder = RoundTripBuilder()
    builder.add(fill(0, Side.BUY, "100", "1", "1"))
    builder.add(fill(1, Side.SELL, "90", "3", "3"))  # closes 1 (fee 1), opens a short of 2 (fee 2)
    (closed,) = builder.trips
    assert closed.pnl == D(-10) - D(2)
    (open_trip,) = builder.open_trips({"BTC/USDT": D(80)})
    assert open_trip.side == "short"
    assert open_trip.exit_time is None
    assert open_trip.pnl == D(20) - D(2)


def test_symbols_are_independent() -> None:
    trips = round_trips(
        [
            fill(0, Side.BUY, "10", "1", symbol="ETH/USDT"),
            fill(1, Side.BUY, "100", "1"),
            fill(2, Side.SELL, "12", "1", symbol="ETH/USDT"),
            fill(3, Side.SELL, "90", "1"),
        ]
    )
    assert [(t.symbol, t.pnl) for t in trips] == [("ETH/USDT", D(2)), ("BTC/USDT", D(-10))]
