"""``--data influx:...`` (the InfluxDB tick store) and ``--data exchange:...`` (download through the
ccxt gateway, here against the local fake Binance venue), through the real command line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backtesting.data import file_source
from tests.fakevenue import FakeBinance

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "tradeswarm"
BTC_1H = ROOT / "data" / "samples" / "binance_BTC-USDT_1h.csv"


async def _cli(env_extra: dict[str, str], *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")}
    env.update(env_extra)
    proc = await asyncio.create_subprocess_exec(str(EXE), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_backtest_on_candles_downloaded_through_the_gateway() -> None:
    async with FakeBinance(stream_start=600) as venue:
        code, out, err = await _cli(
            {"TRADESWARM_DATA_API_URLS": json.dumps(venue.ccxt_urls())},
            "backtest", "--data", "exchange:binance:BTC-USDT:1h", "--start", "2024-09-14", "--end", "2024-10-01",
            "--param", "fast=5", "--param", "slow=20", "--json",
        )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["bars"] == 17 * 24  # every closed hourly candle of the window, paginated by the gateway
    assert summary["series"] == ["binance:BTC/USDT:1h"]
    assert summary["orders"] > 0


@pytest.mark.integration
async def test_backtest_on_candles_from_the_influxdb_tick_store(influx_store) -> None:
    end = datetime(2025, 1, 20, tzinfo=UTC)
    await influx_store.write_candles(list(file_source(BTC_1H, end=end).candles()))
    env = {"TRADESWARM_INFLUX_API": "v1", "TRADESWARM_INFLUX_URL": influx_store.url,
           "TRADESWARM_INFLUX_BUCKET": influx_store.database}  # fmt: skip
    args = ("--param", "fast=5", "--param", "slow=20", "--json", "--end", "2025-01-20")
    code, out, err = await _cli(env, "backtest", "--data", "influx:binance:BTC-USDT:1h", "--start", "2025-01-01", *args)
    assert code == 0, err
    from_store = json.loads(out)
    code, out, err = await _cli({}, "backtest", "--data", str(BTC_1H), *args)
    assert code == 0, err
    from_file = json.loads(out)
    assert from_store["bars"] == from_file["bars"] == 19 * 24
    for key in ("trades", "orders", "final_equity", "sharpe", "max_drawdown"):
        assert from_store[key] == from_file[key]
