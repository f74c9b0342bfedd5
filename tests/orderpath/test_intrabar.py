"""The intrabar policy of protective exits: by default (``worst``) a stop touched inside the entry
candle is hit on that candle (the fill is the candle's open, so all of its range came after the entry),
and the stop wins when a candle touches both levels; ``next_bar`` keeps the optimistic old behaviour.
Through the execution engine with the paper venue (orders in, fills out) and the backtest's summary."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from agents.execution.agent import paper_venue
from agents.execution.engine import ExecutionEngine
from agents.execution.settings import ExecutionSettings
from backtesting.config import BacktestConfig
from core.clock import SimulatedClock
from core.domain import Side
from core.ids import client_order_id, content_id
from core.messages import Candle, Fill, OrderRequest
from core.trading.stores import InMemoryExecutionStore
from tests.orderpath.helpers import candles

C = candles(400)
# the first candle whose low and high are both at least 0.4 % away from its open: the entry candle
ENTRY = next(
    i
    for i in range(5, len(C))
    if (C[i].open - C[i].low) / C[i].open > D("0.004") and (C[i].high - C[i].open) / C[i].open > D("0.004")
)


def entry_order(decision: Candle, stop: D, take_profit: D | None = None) -> OrderRequest:
    intent_id = content_id("intrabar", decision.open_time.isoformat())
    return OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type="market",  # type: ignore[arg-type]
        quantity=D("0.1"),
        reference_price=decision.close,
        stop_loss=stop,
        take_profit=take_profit,
        expires_at=decision.close_time + timedelta(hours=2),
    )


async def run(intrabar: str, req: OrderRequest) -> list[Fill]:
    decision = C[ENTRY - 1]
    clock = SimulatedClock(decision.close_time)
    es = ExecutionSettings(store="memory", intrabar=intrabar, taker_fee_bps=D(0))  # type: ignore[arg-type]
    engine = ExecutionEngine(paper_venue(es, clock), InMemoryExecutionStore(), clock, initial_cash=D(100_000))
    await engine.start()
    await engine.handle_order(req)
    clock.advance_to(C[ENTRY].close_time)
    return [e for e in await engine.on_candle(C[ENTRY]) if isinstance(e, Fill)]


async def test_a_stop_touched_inside_the_entry_candle_is_hit_by_default() -> None:
    entry = C[ENTRY]
    stop = (entry.low * D("1.001")).quantize(D("0.01"))  # under the open, above the low
    assert entry.low < stop < entry.open
    fills = await run("worst", entry_order(C[ENTRY - 1], stop))
    assert [(f.side, f.price) for f in fills] == [(Side.BUY, entry.open), (Side.SELL, stop)]
    assert fills[1].ts == entry.open_time


async def test_stop_before_take_profit_when_the_entry_candle_touches_both() -> None:
    entry = C[ENTRY]
    stop = (entry.low * D("1.001")).quantize(D("0.01"))
    take_profit = (entry.high * D("0.999")).quantize(D("0.01"))
    assert entry.open < take_profit < entry.high
    fills = await run("worst", entry_order(C[ENTRY - 1], stop, take_profit))
    assert [(f.side, f.price) for f in fills] == [(Side.BUY, entry.open), (Side.SELL, stop)]


async def test_next_bar_keeps_the_optimistic_policy() -> None:
    entry = C[ENTRY]
    stop = (entry.low * D("1.001")).quantize(D("0.01"))
    fills = await run("next_bar", entry_order(C[ENTRY - 1], stop))
    assert [f.side for f in fills] == [Side.BUY]


def test_the_policy_is_a_backtest_setting_with_a_conservative_default() -> None:
    assert BacktestConfig().intrabar == "worst"
    with pytest.raises(ValueError, match="intrabar"):
        BacktestConfig(intrabar="best")  # type: ignore[arg-type]
