"""Fixtures of the market-data tests: a fresh database on the real local InfluxDB 1.x, data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

INFLUX_URL = os.environ.get("TRADESWARM_TEST_INFLUX_URL", "http://127.0.0.1:8086")
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def btc_1h_csv() -> Path:
    """3,000 real Binance BTC/USDT 1h candles (see tests/data/README.md)."""
    return DATA / "binance_BTC-USDT_1h_first3000.csv"
