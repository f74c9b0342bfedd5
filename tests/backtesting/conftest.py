"""Fixtures of the backtesting tests (the InfluxDB tick store fixture is the market-data one)."""

from tests.market.conftest import influx_store

__all__ = ["influx_store"]
