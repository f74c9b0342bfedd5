"""Real candles (tests/data/binance_BTC-USDT_1h_first3000.csv, see its README) as test inputs."""

from __future__ import annotations

import csv
import uuid
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from core.clock import utc_from_ms
from core.domain import OrderType, Side
from core.messages import Candle, IndicatorSnapshot, OrderRequest

CSV = Path(__file__).resolve().parents[1] / "data" / "binance_BTC-USDT_1h_first3000.csv"


@lru_cache(maxsize=1)
def _rows() -> list[list[str]]:
    with CSV.open() as fh:
        reader = csv.reader(fh)
        next(reader)
        return [row for _, row in zip(range(500), reader, strict=False)]


def candles(n: int, symbol: str = "BTC/USDT") -> list[Candle]:
    """The first ``n`` real hourly BTC/USDT candles."""
    out = []
    for i, (ts, o, h, low, c, v) in enumerate(_rows()[:n]):
        open_time = utc_from_ms(int(ts))
        out.append(
            Candle(
                venue="binance",
                symbol=symbol,
                timeframe="1h",
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


def snapshots(n: int) -> list[IndicatorSnapshot]:
    """Snapshots of the first ``n`` real candles with a 3-candle SMA of the close."""
    out = []
    series = candles(n)
    for i, c in enumerate(series):
        window = series[max(0, i - 2) : i + 1]
        sma = float(sum(x.close for x in window) / len(window))
        out.append(
            IndicatorSnapshot(
                venue=c.venue,
                symbol=c.symbol,
                timeframe=c.timeframe,
                open_time=c.open_time,
                close_time=c.close_time,
                open=c.open,
                high=c.high,
                low=c.low,
                close=c.close,
                volume=c.volume,
                values={"sma_3": sma},
                sequence=i,
            )
        )
    return out


def approved_order(i: int = 0) -> OrderRequest:
    """A market buy of 0.001 BTC approved at the close of real candle ``i``."""
    c = candles(i + 1)[i]
    return OrderRequest(
        client_order_id=f"ts-test-{i:04d}",
        intent_id=uuid.UUID(int=1000 + i),
        venue=c.venue,
        symbol=c.symbol,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("0.001"),
        reference_price=c.close,
        expires_at=c.close_time + timedelta(days=3650),
    )
