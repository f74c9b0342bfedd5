"""``tradeswarm data download`` against the fake venue and ``tradeswarm data import`` into InfluxDB."""

from __future__ import annotations

import asyncio
import filecmp
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.gateway import CandleKey
from infrastructure.database.influx import InfluxV1Store
from infrastructure.feeds import read_candles_csv
from infrastructure.gateway import reset_limiters
from tests.fakevenue import FakeBinance
from tests.fakevenue.server import DEFAULT_CANDLES
from tradeswarm.cli_data import data_app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_limiters() -> None:
    reset_limiters()


async def test_download_writes_a_csv_identical_to_the_source(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "btc.csv"
    async with FakeBinance(stream_start=3000) as venue:
        venue.faults.http_5xx = 2  # a burst on the way: retried
        monkeypatch.setenv("TRADESWARM_DATA_API_URLS", json.dumps(venue.ccxt_urls()))
        monkeypatch.setenv("TRADESWARM_DATA_RATE_LIMIT_PER_S", "1000")
        result = await asyncio.to_thread(
            runner.invoke,
            data_app,
            [
                "download",
                "--exchange",
                "binance",
                "--symbol",
                "BTC/USDT",
                "--timeframe",
                "1h",
                "--since",
                "2024-09-14",
                "--out",
                str(out),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "wrote 3000 candles" in result.output
    assert filecmp.cmp(out, DEFAULT_CANDLES, shallow=False)


async def test_download_until_and_typo_symbol(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "part.csv"
    async with FakeBinance(stream_start=3000) as venue:
        monkeypatch.setenv("TRADESWARM_DATA_API_URLS", json.dumps(venue.ccxt_urls()))
        monkeypatch.setenv("TRADESWARM_DATA_RATE_LIMIT_PER_S", "1000")
        ok = await asyncio.to_thread(
            runner.invoke,
            data_app,
            ["download", "-s", "BTC/USDT", "--since", "2024-09-14", "--until", "2024-09-15T00:00:00Z", "-o", str(out)],
        )
        bad = await asyncio.to_thread(
            runner.invoke, data_app, ["download", "-s", "BTC/USTD", "--since", "2024-09-14", "-o", str(out)]
        )
    assert ok.exit_code == 0, ok.output
    assert read_candles_csv(out, CandleKey("binance", "BTC/USDT", "1h")) == read_candles_csv(DEFAULT_CANDLES)[:24]
    assert bad.exit_code == 1
    assert "did you mean BTC/USDT" in bad.output
    assert "Traceback" not in bad.output


@pytest.mark.integration
async def test_import_csv_into_influx(influx_store: InfluxV1Store, btc_1h_csv: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRADESWARM_INFLUX_API", "v1")
    monkeypatch.setenv("TRADESWARM_INFLUX_URL", influx_store.url)
    monkeypatch.setenv("TRADESWARM_INFLUX_BUCKET", influx_store.database)
    for _ in range(2):  # importing twice stores once
        result = await asyncio.to_thread(runner.invoke, data_app, ["import", str(btc_1h_csv)])
        assert result.exit_code == 0, result.output
        assert "imported 3000 candles" in result.output
    expected = read_candles_csv(btc_1h_csv)
    assert await influx_store.count() == 3000
    assert await influx_store.query_candles(CandleKey("binance", "BTC/USDT", "1h"), expected[0].open_time) == expected


def test_bad_date_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        data_app, ["download", "-s", "BTC/USDT", "--since", "yesterday", "-o", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 2
    assert "is not a date" in result.output
