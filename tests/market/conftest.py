"""Fixtures of the market-data tests: a fresh database on the real local InfluxDB 1.x, data paths."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from infrastructure.database.influx import InfluxV1Store

INFLUX_URL = os.environ.get("TRADESWARM_TEST_INFLUX_URL", "http://127.0.0.1:8086")
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
async def influx_store() -> AsyncIterator[InfluxV1Store]:
    """A started v1 tick store on a database of its own (dropped afterwards). Fails if InfluxDB is down."""
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{INFLUX_URL}/ping") as resp:
            if resp.status != 204:
                pytest.fail(f"InfluxDB at {INFLUX_URL} answered /ping with {resp.status}")
    except aiohttp.ClientError as exc:
        pytest.fail(f"InfluxDB is not reachable at {INFLUX_URL} (run scripts/install_influxdb.sh): {exc}")
    store = InfluxV1Store(INFLUX_URL, f"ts_test_{uuid.uuid4().hex[:12]}")
    await store.start()
    yield store
    await store.drop_database()
    await store.close()


@pytest.fixture
def btc_1h_csv() -> Path:
    """3,000 real Binance BTC/USDT 1h candles (see tests/data/README.md)."""
    return DATA / "binance_BTC-USDT_1h_first3000.csv"
