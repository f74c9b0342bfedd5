"""The InfluxDB tick store (candles and trades): line protocol, v1 HTTP and v2 client writers."""

from infrastructure.database.influx.line_protocol import candle_line, trade_line
from infrastructure.database.influx.store import (
    InfluxV1Store,
    InfluxV2Store,
    StorageRejected,
    StorageUnavailable,
    tick_store_from_settings,
)

__all__ = [
    "InfluxV1Store",
    "InfluxV2Store",
    "StorageRejected",
    "StorageUnavailable",
    "candle_line",
    "tick_store_from_settings",
    "trade_line",
]
