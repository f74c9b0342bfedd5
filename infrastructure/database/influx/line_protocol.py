"""InfluxDB line protocol for candles and trades, built once and sent to either InfluxDB 1.x or 2.x.

Schema (nanosecond timestamps):

* ``candles,venue=<v>,symbol=<s>,timeframe=<tf> open=..,high=..,low=..,close=..,volume=..,sequence=<n>i <open_ns>``
* ``trades,venue=<v>,symbol=<s> price=..,amount=..,side="buy",trade_id="..." <ts_ns>``

A point is identified by measurement + tag set + timestamp, so writing the same candle twice
overwrites it (idempotent). Trades in the same millisecond must not collide, so a trade's
timestamp carries a deterministic sub-millisecond offset derived from its trade id (CRC-32 mod
10^6 ns): the same trade always lands on the same point, distinct trades almost never share one.
"""

from __future__ import annotations

import zlib
from decimal import Decimal

from core.clock import ms_from_utc
from core.messages.market import Candle, Trade

CANDLES = "candles"
"""Measurement of candles."""

TRADES = "trades"
"""Measurement of trades."""

_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})


def escape_tag(value: str) -> str:
    """Escape a tag key or value (commas, spaces, equals signs)."""
    return value.translate(_TAG_ESCAPES)


def escape_string_field(value: str) -> str:
    """A string field value in double quotes (backslashes and quotes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(value: Decimal) -> str:
    """A float field: plain decimal notation, no exponent (InfluxDB parses it as float64)."""
    text = format(value, "f")
    if "." not in text:
        text += ".0"
    return text


def candle_line(candle: Candle) -> str:
    """One candle as a line of line protocol (nanosecond precision)."""
    tags = (
        f"venue={escape_tag(candle.venue)},symbol={escape_tag(candle.symbol)},timeframe={escape_tag(candle.timeframe)}"
    )
    fields = (
        f"open={_num(candle.open)},high={_num(candle.high)},low={_num(candle.low)},"
        f"close={_num(candle.close)},volume={_num(candle.volume)},sequence={candle.sequence}i"
    )
    return f"{CANDLES},{tags} {fields} {ms_from_utc(candle.open_time) * 1_000_000}"


def trade_timestamp_ns(trade: Trade) -> int:
    """A trade's point timestamp: its millisecond time plus a stable sub-millisecond offset."""
    key = trade.trade_id if trade.trade_id is not None else f"{trade.price}:{trade.amount}:{trade.side}"
    return ms_from_utc(trade.ts) * 1_000_000 + zlib.crc32(key.encode()) % 1_000_000


def trade_line(trade: Trade) -> str:
    """One trade as a line of line protocol (nanosecond precision)."""
    tags = f"venue={escape_tag(trade.venue)},symbol={escape_tag(trade.symbol)}"
    fields = f"price={_num(trade.price)},amount={_num(trade.amount)}"
    if trade.side is not None:
        fields += f",side={escape_string_field(trade.side.value)}"
    if trade.trade_id is not None:
        fields += f",trade_id={escape_string_field(trade.trade_id)}"
    return f"{TRADES},{tags} {fields} {trade_timestamp_ns(trade)}"
