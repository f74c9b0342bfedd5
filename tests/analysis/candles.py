"""Loading the real candles of tests/data for the analysis tests."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from core.clock import utc_from_ms
from core.messages import Candle

DATA = Path(__file__).resolve().parent.parent / "data"
BTC_1H = DATA / "binance_BTC-USDT_1h_first3000.csv"


def load_arrays(path: Path = BTC_1H) -> dict[str, np.ndarray]:
    """The CSV as float64 columns (timestamp, open, high, low, close, volume)."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return {
        name: np.ascontiguousarray(raw[:, i]) for i, name in enumerate(("ts", "open", "high", "low", "close", "volume"))
    }


def load_candles(
    path: Path = BTC_1H,
    *,
    venue: str = "binance",
    symbol: str = "BTC/USDT",
    timeframe: str = "1h",
    limit: int | None = None,
) -> list[Candle]:
    """The CSV as validated ``Candle`` messages (Decimal prices parsed from the text, not from floats)."""
    out: list[Candle] = []
    with path.open() as fh:
        next(fh)
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            ts, o, h, low, c, v = line.strip().split(",")
            open_time = utc_from_ms(int(ts))
            out.append(
                Candle(
                    venue=venue,
                    symbol=symbol,
                    timeframe=timeframe,
                    open_time=open_time,
                    close_time=open_time + timedelta(hours=1),
                    open=Decimal(o),
                    high=Decimal(h),
                    low=Decimal(low),
                    close=Decimal(c),
                    volume=Decimal(v),
                    sequence=i,
                )
            )
    return out
