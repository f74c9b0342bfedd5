"""Market data contracts: candles, trades (ticks), top of book, indicator snapshots."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from core.domain import MarketRegime, Side
from core.messages.base import (
    NonNegativeDecimal,
    Payload,
    Price,
    Symbol,
    Timeframe,
    UtcDatetime,
    Venue,
)
from core.messages.registry import register

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


@register
class Candle(Payload):
    """One CLOSED OHLCV candle. ``open_time`` is the candle's start (as in ccxt and the CSV files).

    ``sequence`` counts candles per (venue, symbol, timeframe) from the publisher, so a consumer can
    detect a gap or a repeat without comparing times.
    """

    TYPE = "candle"

    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    open_time: UtcDatetime
    close_time: UtcDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: NonNegativeDecimal
    sequence: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _ohlc_consistent(self) -> Self:
        if self.high < self.low:
            raise ValueError(f"high {self.high} is below low {self.low}")
        if not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            raise ValueError("open and close must lie within [low, high]")
        if self.close_time <= self.open_time:
            raise ValueError("close_time must be after open_time")
        return self


@register
class Trade(Payload):
    """One public trade (a tick). ``side`` is the taker side when the venue reports it."""

    TYPE = "trade"

    venue: Venue
    symbol: Symbol
    ts: UtcDatetime
    price: Price
    amount: Annotated[NonNegativeDecimal, Field(gt=0)]
    side: Side | None = None
    trade_id: str | None = Field(default=None, max_length=64)


@register
class BookTop(Payload):
    """Best bid and ask (a ticker's top of book), optionally with the last price."""

    TYPE = "book_top"

    venue: Venue
    symbol: Symbol
    ts: UtcDatetime
    bid: Price
    bid_size: NonNegativeDecimal
    ask: Price
    ask_size: NonNegativeDecimal
    last: Price | None = None

    @model_validator(mode="after")
    def _not_crossed(self) -> Self:
        if self.bid > self.ask:
            raise ValueError(f"crossed book: bid {self.bid} > ask {self.ask}")
        return self


@register
class IndicatorSnapshot(Payload):
    """Every indicator of one (venue, symbol, timeframe) after one closed candle.

    ``values`` holds named indicator values (``sma_10``, ``rsi_14``, ``macd``, ``bb_upper_20``...),
    only those past their warm-up; ``patterns`` holds TA-Lib candlestick pattern outputs
    (-100/0/100) that fired; ``regime`` labels the market state.
    """

    TYPE = "indicator_snapshot"

    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    open_time: UtcDatetime
    close_time: UtcDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: NonNegativeDecimal
    values: dict[str, FiniteFloat] = Field(default_factory=dict, max_length=512)
    patterns: dict[str, int] = Field(default_factory=dict, max_length=128)
    regime: MarketRegime = MarketRegime.UNKNOWN
    sequence: int = Field(default=0, ge=0)
