"""Builders for the order-path tests: real BTC/USDT 1h candles, intents, wired agents."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import structlog

from agents.base import AgentContext
from core.clock import Clock
from core.domain import Direction, OrderType, Side
from core.ids import client_order_id, content_id
from core.messages import Candle, OrderRequest, TradeIntent
from core.ports import Bus
from core.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "binance_BTC-USDT_1h_first3000.csv"
SYMBOL = "BTC/USDT"
VENUE = "binance"


@cache
def candles(n: int = 3000) -> tuple[Candle, ...]:
    """The first ``n`` real Binance BTC/USDT 1h candles (tests/data, see its README)."""
    out: list[Candle] = []
    with DATA.open() as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i >= n:
                break
            t = datetime.fromtimestamp(int(row["timestamp"]) / 1000, tz=UTC)
            out.append(
                Candle(
                    venue=VENUE,
                    symbol=SYMBOL,
                    timeframe="1h",
                    open_time=t,
                    close_time=t + timedelta(hours=1),
                    open=Decimal(row["open"]),
                    high=Decimal(row["high"]),
                    low=Decimal(row["low"]),
                    close=Decimal(row["close"]),
                    volume=Decimal(row["volume"]),
                    sequence=i,
                )
            )
    return tuple(out)


def shifted(c: Candle, start: datetime, index: int) -> Candle:
    """``c`` moved to the ``index``-th hour after ``start`` (for wall-clock tests)."""
    t = start + timedelta(hours=index)
    return c.model_copy(update={"open_time": t, "close_time": t + timedelta(hours=1), "sequence": index})


def intent(
    c: Candle,
    side: Side = Side.BUY,
    direction: Direction | None = None,
    *,
    ttl: timedelta = timedelta(minutes=30),
    price: Decimal | None = None,
    tag: str = "",
    **extra: Any,
) -> TradeIntent:
    """An intent decided at the close of candle ``c``."""
    direction = direction or (Direction.LONG if side is Side.BUY else Direction.SHORT)
    return TradeIntent(
        intent_id=content_id("test-intent", c.symbol, c.open_time.isoformat(), side.value, direction.value, tag),
        venue=c.venue,
        symbol=c.symbol,
        timeframe=c.timeframe,
        side=side,
        direction=direction,
        reference_price=price or c.close,
        score=80.0,
        confidence=0.8,
        decided_at=c.close_time,
        expires_at=c.close_time + ttl,
        strategies=("test",),
        **extra,
    )


def order_request(
    n: int = 0,
    qty: Decimal = Decimal("0.1"),
    side: Side = Side.BUY,
    *,
    expires_at: datetime | None = None,
    **kw: Any,
) -> OrderRequest:
    """An approved market order (``n`` makes its ids) on BTC/USDT, priced at the 5th candle's close;
    valid six hours after that candle unless ``expires_at`` says otherwise."""
    c = candles(60)[4]
    intent_id = content_id("exec-test", n)
    return OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue=VENUE,
        symbol=SYMBOL,
        side=side,
        order_type=kw.pop("order_type", OrderType.MARKET),
        quantity=qty,
        reference_price=c.close,
        expires_at=expires_at or c.close_time + timedelta(hours=6),
        **kw,
    )


def context(bus: Bus, clock: Clock, agent_id: str, **settings: Any) -> AgentContext:
    """An agent context for in-process tests."""
    return AgentContext(
        bus=bus,
        clock=clock,
        settings=Settings(**settings),
        agent_id=agent_id,
        log=structlog.get_logger("test"),
        instrument=True,
    )
