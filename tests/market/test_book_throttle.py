"""The data collection agent's top-of-book throttle (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from agents.data_collection.book import BookThrottle
from core.messages.market import BookTop

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def top(bid: str, ask: str, symbol: str = "BTC/USDT") -> BookTop:
    return BookTop(
        venue="binance", symbol=symbol, ts=T0, bid=Decimal(bid), bid_size=Decimal(1), ask=Decimal(ask),
        ask_size=Decimal(1),
    )  # fmt: skip


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_first_top_passes_unchanged_ones_wait_for_the_refresh() -> None:
    throttle = BookThrottle(min_interval=timedelta(seconds=1), refresh=timedelta(seconds=30))
    assert throttle.due(top("100", "101"), at(0))
    assert not throttle.due(top("100", "101"), at(5))
    assert not throttle.due(top("100", "101"), at(29.9))
    assert throttle.due(top("100", "101"), at(30))  # a consumer that just started learns the spread
    assert not throttle.due(top("100", "101"), at(31))


def test_a_change_passes_once_the_interval_has_passed() -> None:
    throttle = BookThrottle(min_interval=timedelta(seconds=1), refresh=timedelta(seconds=30))
    assert throttle.due(top("100", "101"), at(0))
    assert not throttle.due(top("100.5", "101"), at(0.5))  # changed, but too soon: dropped
    assert throttle.due(top("100.5", "101"), at(1.0))
    assert not throttle.due(top("100.5", "101"), at(2.0))  # unchanged since the last published top
    assert throttle.due(top("100.5", "101.5"), at(2.0))  # the ask moved


def test_symbols_are_throttled_independently() -> None:
    throttle = BookThrottle(min_interval=timedelta(seconds=1), refresh=timedelta(seconds=30))
    assert throttle.due(top("100", "101"), at(0))
    assert throttle.due(top("10", "11", symbol="ETH/USDT"), at(0.1))
    assert not throttle.due(top("100", "101"), at(0.2))


def test_zero_interval_publishes_every_change_and_only_changes() -> None:
    throttle = BookThrottle(min_interval=timedelta(0), refresh=timedelta(seconds=30))
    published = [throttle.due(top(b, "200"), at(i * 0.001)) for i, b in enumerate(["100", "100", "101", "101", "100"])]
    assert published == [True, False, True, False, True]
