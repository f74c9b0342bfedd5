"""The InfluxDB tick store against the real local InfluxDB 1.6.7."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from core.domain import Side
from core.gateway import CandleKey
from core.messages.market import Candle, Trade
from infrastructure.database.influx import InfluxV1Store, StorageRejected, candle_line, trade_line
from infrastructure.feeds.files import key_from_filename, read_candles_csv

from .conftest import DATA

pytestmark = pytest.mark.integration


def test_line_protocol_escapes_tags_and_keeps_decimals() -> None:
    candle = Candle(
        venue="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        open_time=datetime(2024, 1, 1, tzinfo=UTC),
        close_time=datetime(2024, 1, 1, 1, tzinfo=UTC),
        open=Decimal("42000"),
        high=Decimal("42100.5"),
        low=Decimal("41999.99"),
        close=Decimal("42050.01"),
        volume=Decimal("0.000000000001"),
        sequence=7,
    )
    line = candle_line(candle)
    assert line == (
        "candles,venue=binance,symbol=BTC/USDT,timeframe=1h open=42000.0,high=42100.5,low=41999.99,"
        "close=42050.01,volume=0.000000000001,sequence=7i 1704067200000000000"
    )
    trade = Trade(
        venue="binance",
        symbol="BTC/USDT",
        ts=datetime(2024, 1, 1, tzinfo=UTC),
        price=Decimal(1),
        amount=Decimal(2),
        side=Side.BUY,
        trade_id='a "b"',
    )
    assert 'trade_id="a \\"b\\""' in trade_line(trade)


async def test_100k_real_candles_round_trip_and_second_write_is_idempotent(
    influx_store: InfluxV1Store, tmp_path: Path
) -> None:
    packed = DATA / "binance_BTC-USDT_5m_first100k.csv.gz"  # shipped in the repo (see tests/data/README.md)
    source = tmp_path / "binance_BTC-USDT_5m.csv"
    source.write_bytes(gzip.decompress(packed.read_bytes()))
    candles = read_candles_csv(source, limit=100_000)
    assert len(candles) == 100_000
    key = key_from_filename(source)
    await influx_store.write_candles(candles)
    await influx_store.write_candles(candles)  # the same points again: must overwrite, not duplicate
    assert await influx_store.count() == 100_000
    back = await influx_store.query_candles(key, candles[0].open_time)
    assert len(back) == 100_000
    assert back == candles
    last = await influx_store.last_candle(key)
    assert last == candles[-1]


async def test_range_query_bounds_and_limit(influx_store: InfluxV1Store, btc_1h_csv: Path) -> None:
    candles = read_candles_csv(btc_1h_csv, key=CandleKey("binance", "BTC/USDT", "1h"))
    numbered = [c.model_copy(update={"sequence": i + 1}) for i, c in enumerate(candles)]
    await influx_store.write_candles(numbered)
    key = CandleKey("binance", "BTC/USDT", "1h")
    window = await influx_store.query_candles(key, numbered[100].open_time, numbered[200].open_time)
    assert window == numbered[100:200]
    assert await influx_store.query_candles(key, numbered[10].open_time, limit=5) == numbered[10:15]
    other = CandleKey("binance", "ETH/USDT", "1h")
    assert await influx_store.query_candles(other, numbered[0].open_time) == []
    assert await influx_store.last_candle(other) is None
    last = await influx_store.last_candle(key)
    assert last is not None
    assert last.sequence == len(numbered)


async def test_trades_idempotent_and_same_millisecond_distinct(influx_store: InfluxV1Store) -> None:
    ts = datetime(2021, 10, 22, 22, 49, 9, 263000, tzinfo=UTC)
    trades = [
        Trade(
            venue="binance",
            symbol="BTC/USDT",
            ts=ts,
            price=Decimal("60650"),
            amount=Decimal("0.02924"),
            side=Side.SELL,
            trade_id="1111468873",
        ),
        Trade(
            venue="binance",
            symbol="BTC/USDT",
            ts=ts,
            price=Decimal("60650.01"),
            amount=Decimal("0.00082"),
            side=Side.BUY,
            trade_id="1111468874",
        ),
    ]
    await influx_store.write_trades(trades)
    await influx_store.write_trades(trades)
    assert await influx_store.count("trades") == 2
    back = await influx_store.query_trades(
        "binance", "BTC/USDT", datetime(2021, 10, 22, tzinfo=UTC), datetime(2021, 10, 23, tzinfo=UTC)
    )
    assert sorted(back, key=lambda t: t.trade_id or "") == trades


async def test_bad_line_is_a_permanent_error(influx_store: InfluxV1Store) -> None:
    with pytest.raises(StorageRejected, match="400"):
        await influx_store._send("candles,venue=x open=notanumber 1")
