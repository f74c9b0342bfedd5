"""Candle files and the offline sources (replay, synthetic GBM)."""

from __future__ import annotations

import filecmp
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from core.candles import CandleCloser, CandleGuard, Verdict, candle_from_ohlcv
from core.gateway import CandleKey, MarketDataSource
from infrastructure.feeds import (
    CandleFileError,
    ReplaySource,
    SyntheticSource,
    key_from_filename,
    read_candles,
    read_candles_csv,
    write_candles_csv,
)
from infrastructure.feeds.files import iter_csv_rows


def test_key_from_filename() -> None:
    assert key_from_filename("x/binance_BTC-USDT_1h.csv") == CandleKey("binance", "BTC/USDT", "1h")
    assert key_from_filename("binance-usdm_BTC-USDT-USDT_5m.csv") == CandleKey("binanceusdm", "BTC/USDT:USDT", "5m")
    assert key_from_filename("binance_BTC-USDT_1h_first3000.csv").timeframe == "1h"
    with pytest.raises(CandleFileError, match="binance_BTC-USDT_1h.csv"):
        key_from_filename("prices.csv")


def test_csv_round_trip_is_byte_identical(btc_1h_csv: Path, tmp_path: Path) -> None:
    candles = read_candles_csv(btc_1h_csv)
    assert len(candles) == 3000
    out = tmp_path / "copy.csv"
    assert write_candles_csv(out, candles) == 3000
    assert filecmp.cmp(out, btc_1h_csv, shallow=False)


def test_bad_csv_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "binance_BTC-USDT_1h.csv"
    bad.write_text("time,o,h,l,c,v\n1,2,3,4,5,6\n")
    with pytest.raises(CandleFileError, match="expected header"):
        read_candles_csv(bad)
    bad.write_text("timestamp,open,high,low,close,volume\n1726272000000,10,9,8,7,1\n")
    with pytest.raises(CandleFileError, match="row 2"):
        read_candles_csv(bad)


def test_parquet_reads_the_same_candles(btc_1h_csv: Path, tmp_path: Path) -> None:
    rows = list(iter_csv_rows(btc_1h_csv))
    table = pa.table(
        {
            "timestamp": [r[0] for r in rows],
            **{
                name: [float(r[i + 1]) for r in rows]
                for i, name in enumerate(("open", "high", "low", "close", "volume"))
            },
        }
    )
    path = tmp_path / "binance_BTC-USDT_1h.parquet"
    pq.write_table(table, path)
    assert read_candles(path) == read_candles_csv(btc_1h_csv)


async def test_replay_source_plays_and_serves_history(btc_1h_csv: Path) -> None:
    source = ReplaySource(btc_1h_csv, venue="binance")
    assert isinstance(source, MarketDataSource)
    expected = read_candles_csv(btc_1h_csv)
    got = [c async for c in source.stream_candles("BTC/USDT", "1h")]
    assert got == expected
    window = await source.fetch_candles("BTC/USDT", "1h", expected[5].open_time, expected[9].open_time)
    assert window == expected[5:9]


async def test_replay_directory_lookup(btc_1h_csv: Path, tmp_path: Path) -> None:
    target = tmp_path / "binance_BTC-USDT_1h.csv"
    target.write_bytes(btc_1h_csv.read_bytes())
    source = ReplaySource(tmp_path, start=datetime(2024, 9, 15, tzinfo=UTC), end=datetime(2024, 9, 16, tzinfo=UTC))
    candles = source.load("BTC/USDT", "1h")
    assert len(candles) == 24
    assert candles[0].venue == "binance"
    with pytest.raises(CandleFileError, match="ETH-USDT"):
        source.load("ETH/USDT", "1h")


def test_synthetic_is_seeded_valid_and_gap_free() -> None:
    a = list(SyntheticSource(seed=7, count=2000).iter_candles("BTC/USDT", "5m"))
    b = list(SyntheticSource(seed=7, count=2000).iter_candles("BTC/USDT", "5m"))
    c = list(SyntheticSource(seed=8, count=2000).iter_candles("BTC/USDT", "5m"))
    assert a == b
    assert a != c
    assert len(a) == 2000
    guard = CandleGuard("5m")
    for candle in a:
        assert guard.check(candle).verdict in (Verdict.FIRST, Verdict.NEXT)
        guard.accept(candle)
    assert all(x.close == y.open for x, y in itertools.pairwise(a))  # open = previous close


def test_candle_closer_releases_only_closed_candles() -> None:
    closer = CandleCloser("1m")
    t0 = 1_700_000_040_000 // 60_000 * 60_000
    assert closer.update([[t0, 1, 1, 1, 1, 0]]) == []
    assert closer.update([[t0, 1, 2, 1, 2, 5]]) == []  # still forming
    assert closer.due(datetime.fromtimestamp((t0 + 59_000) / 1000, UTC)) == []
    closed = closer.update([[t0 + 60_000, 2, 2, 2, 2, 0]])
    assert closed == [[t0, 1, 2, 1, 2, 5]]  # the last update of the closed candle
    assert closer.update([[t0, 9, 9, 9, 9, 9]]) == []  # late repeat of a released candle
    assert closer.due(datetime.fromtimestamp((t0 + 120_000) / 1000, UTC)) == [[t0 + 60_000, 2, 2, 2, 2, 0]]


def test_candle_guard_verdicts() -> None:
    rows = [[1_700_000_000_000 // 3_600_000 * 3_600_000 + i * 3_600_000, 1, 1, 1, 1, 1] for i in range(5)]
    candles = [candle_from_ohlcv("binance", "BTC/USDT", "1h", r) for r in rows]
    guard = CandleGuard("1h")
    assert guard.check(candles[0]).verdict is Verdict.FIRST
    first = guard.accept(candles[0])
    assert first is not None
    assert first.sequence == 1
    assert guard.check(candles[1]).verdict is Verdict.NEXT
    gap = guard.check(candles[4])
    assert gap.verdict is Verdict.GAP
    assert gap.missing_from == candles[1].open_time
    assert gap.missing_to == candles[4].open_time
    assert guard.missing_count(gap) == 3
    assert guard.accept(candles[0]) is None
    assert guard.check(candles[0]).verdict is Verdict.DUPLICATE
