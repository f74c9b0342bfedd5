"""Offline market data: candle files (CSV/Parquet) and the replay and synthetic (GBM) sources.

Used by the data-collection agent (``TRADESWARM_DATA_SOURCE=replay|synthetic``), the backtester and
the ``tradeswarm data`` commands.
"""

from infrastructure.feeds.files import (
    CandleCsvWriter,
    CandleFileError,
    key_from_filename,
    read_candles,
    read_candles_csv,
    write_candles_csv,
)
from infrastructure.feeds.sources import ReplaySource, SyntheticSource

__all__ = [
    "CandleCsvWriter",
    "CandleFileError",
    "ReplaySource",
    "SyntheticSource",
    "key_from_filename",
    "read_candles",
    "read_candles_csv",
    "write_candles_csv",
]
