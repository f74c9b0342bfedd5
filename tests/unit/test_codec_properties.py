"""Property tests of the JSON codec: round trips, size limit, and never half-decoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import SimulatedClock
from core.domain import Side
from core.errors import MessageRejected, MessageTooLarge, UnknownMessageType
from core.messages import Candle, Envelope, JsonCodec, Trade
from core.messages.base import Payload

prices = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal("10000000"), places=8, allow_nan=False, allow_infinity=False
)
times = st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))
symbols = st.sampled_from(["BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT", "XRP/ETH"])


@st.composite
def candles(draw: st.DrawFn) -> Candle:
    a, b, c, d = (draw(prices) for _ in range(4))
    low, high = min(a, b, c, d), max(a, b, c, d)
    start = draw(times)
    return Candle(
        venue="binance",
        symbol=draw(symbols),
        timeframe="1m",
        open_time=start,
        close_time=start + timedelta(minutes=1),
        open=b,
        high=high,
        low=low,
        close=c,
        volume=draw(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False)),
        sequence=draw(st.integers(min_value=0, max_value=2**40)),
    )


@st.composite
def trades(draw: st.DrawFn) -> Trade:
    return Trade(
        venue="kraken",
        symbol=draw(symbols),
        ts=draw(times),
        price=draw(prices),
        amount=draw(prices),
        side=draw(st.sampled_from([None, Side.BUY, Side.SELL])),
        trade_id=draw(st.none() | st.text("0123456789abc", max_size=20)),
    )


codec = JsonCodec()


@given(st.one_of(candles(), trades()), times)
@settings(max_examples=200, deadline=None)
def test_round_trip_is_exact(payload: Payload, now: datetime) -> None:
    envelope = Envelope.wrap(payload, source="prop-test", clock=SimulatedClock(now))
    decoded = codec.decode(codec.encode(envelope))
    assert decoded == envelope
    assert type(decoded.payload) is type(payload)
    assert decoded.payload == payload  # Decimal values survive exactly


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_decode_half_way(body: bytes) -> None:
    with pytest.raises(MessageRejected) as info:
        codec.decode(body)
    assert info.value.reason


@given(candles())
@settings(max_examples=50, deadline=None)
def test_any_field_tampered_with_is_rejected_with_a_reason(c: Candle) -> None:
    import orjson

    raw = orjson.loads(codec.encode(Envelope.wrap(c, source="t", clock=SimulatedClock(c.close_time))))
    raw["payload"]["low"] = str(c.high * 2)  # low above high
    with pytest.raises(MessageRejected, match="invalid candle"):
        codec.decode(orjson.dumps(raw))


def test_size_limit_applies_both_ways() -> None:
    small = JsonCodec(max_message_bytes=1024)
    env = Envelope.wrap(
        Trade(
            venue="binance",
            symbol="BTC/USDT",
            ts=datetime(2024, 1, 1, tzinfo=UTC),
            price=Decimal(1),
            amount=Decimal(1),
            trade_id="x" * 64,
        ),
        source="t",
        clock=SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC)),
    )
    assert small.decode(small.encode(env)) == env
    with pytest.raises(MessageTooLarge):
        small.decode(b" " * 1025)


def test_unknown_type_and_version_are_rejected() -> None:
    with pytest.raises(UnknownMessageType, match="known versions: \\[1\\]"):
        codec.decode(b'{"type": "candle", "schema_version": 9, "payload": {}}')
    with pytest.raises(UnknownMessageType):
        codec.decode(b'{"type": "rumour", "schema_version": 1}')
