"""History sources: CSV streaming with checks, Parquet, windows, merge order and tie-break."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from backtesting.data import DataError, check_single_venue, file_source, merge, parse_remote_spec
from core.messages.market import Candle

ROOT = Path(__file__).resolve().parents[2]
BTC_1H = ROOT / "data" / "samples" / "binance_BTC-USDT_1h.csv"
ETH_1H = ROOT / "data" / "samples" / "binance_ETH-USDT_1h.csv"
BTC_4H = Path(__file__).parent / "data" / "binance_BTC-USDT_4h.csv"


def test_csv_candles_equal_validated_models() -> None:
    candles = list(file_source(BTC_1H, limit=50).candles())
    assert len(candles) == 50
    for c in candles:
        again = Candle.model_validate(c.model_dump())
        assert again == c
    assert candles[0].open_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert candles[0].close_time == datetime(2025, 1, 1, 1, tzinfo=UTC)
    assert [c.sequence for c in candles[:3]] == [1, 2, 3]


def test_window_is_applied_on_open_time() -> None:
    start, end = datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)
    candles = list(file_source(BTC_1H, start, end).candles())
    assert len(candles) == 24
    assert candles[0].open_time == start
    assert candles[-1].open_time < end


def test_bad_rows_and_files_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "binance_BTC-USDT_1h.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n0,10,9,8,9,1\n")
    with pytest.raises(DataError, match="open and close must lie within"):
        list(file_source(bad).candles())
    bad.write_text("timestamp,open,high,low,close,volume\n3600000,10,11,9,10,1\n0,10,11,9,10,1\n")
    with pytest.raises(DataError, match="increase strictly"):
        list(file_source(bad).candles())
    with pytest.raises(DataError, match="not found"):
        file_source(tmp_path / "missing.csv")
    odd = tmp_path / "prices.csv"
    odd.write_text("x")
    with pytest.raises(DataError, match="cannot tell venue"):
        file_source(odd)


def test_parquet_source_matches_csv(tmp_path: Path) -> None:
    df = pd.read_csv(BTC_1H).head(100)
    path = tmp_path / "binance_BTC-USDT_1h.parquet"
    df.to_parquet(path)
    from_parquet = list(file_source(path).candles())
    from_csv = list(file_source(BTC_1H, limit=100).candles())
    assert [(c.open_time, c.close) for c in from_parquet] == [(c.open_time, c.close) for c in from_csv]


def test_merge_orders_by_close_time_with_deterministic_tie_break() -> None:
    sources = [
        file_source(BTC_4H, end=datetime(2025, 1, 2, tzinfo=UTC)),
        file_source(ETH_1H, end=datetime(2025, 1, 2, tzinfo=UTC)),
        file_source(BTC_1H, end=datetime(2025, 1, 2, tzinfo=UTC)),
    ]
    merged = list(merge(sources))
    again = list(merge(list(reversed(sources))))
    assert [(c.symbol, c.timeframe, c.close_time) for c in merged] == [
        (c.symbol, c.timeframe, c.close_time) for c in again
    ]
    closes = [c.close_time for c in merged]
    assert closes == sorted(closes)
    # at 04:00 the 1h candles (BTC then ETH) come before the 4h candle that closes at the same time
    at_four = [(c.symbol, c.timeframe) for c in merged if c.close_time == datetime(2025, 1, 1, 4, tzinfo=UTC)]
    assert at_four == [("BTC/USDT", "1h"), ("ETH/USDT", "1h"), ("BTC/USDT", "4h")]
    assert len(merged) == 24 + 24 + 6


def test_specs_and_venues(tmp_path: Path) -> None:
    assert parse_remote_spec("data/x.csv") is None
    kind, key = parse_remote_spec("influx:binance:BTC-USDT:1h")  # type: ignore[misc]
    assert kind == "influx"
    assert key.symbol == "BTC/USDT"
    assert key.timeframe == "1h"
    with pytest.raises(DataError):
        parse_remote_spec("exchange:binance:BTCUSDT:1h")
    other = tmp_path / "kraken_BTC-USDT_1h.csv"
    other.write_text(BTC_1H.read_text())
    assert check_single_venue([file_source(BTC_1H), file_source(ETH_1H)]) == "binance"
    with pytest.raises(DataError, match="one venue"):
        check_single_venue([file_source(BTC_1H), file_source(other)])
    with pytest.raises(DataError, match="twice"):
        list(merge([file_source(BTC_1H), file_source(BTC_1H)]))
