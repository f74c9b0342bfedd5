"""Replayed real candles through the technical analysis and strategy agents, on the in-memory bus
and on RabbitMQ (``bus_factory`` is parametrised over both): the intents are exactly the SMA(10/30)
crossings a numpy reference finds, with a fake execution filling every intent."""

from __future__ import annotations

import functools
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import numpy as np
import pytest

from agents.base import AgentContext
from agents.strategy.agent import StrategyAgent
from agents.strategy.intents import intent_id_for
from agents.strategy.settings import StrategySettings
from agents.technical_analysis.agent import TechnicalAnalysisAgent
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from core.clock import SimulatedClock
from core.domain import ConsensusOutcome, Direction, Side
from core.ids import client_order_id
from core.logging import get_logger
from core.messages import ConsensusDecision, Envelope, Fill, TradeIntent
from core.ports import QueueSpec
from core.routing import CONSENSUS, INTENTS
from core.settings import Settings
from tests.analysis.candles import load_candles
from tests.analysis.replay import ReplayHistory
from tests.analysis.test_strategies import numpy_crossings
from tests.factories import eventually

HISTORY = 200
LIVE = 400
QTY = Decimal("0.01")


def _handled_at_least(agent: StrategyAgent, snapshots: int, intents: list[TradeIntent]) -> bool:
    return agent.counters.processed >= snapshots + len(intents)


def _handled_exactly(agent: StrategyAgent, snapshots: int, intents: list[TradeIntent]) -> bool:
    return agent.counters.processed == snapshots + len(intents)


def _ctx(bus, clock, agent_id: str) -> AgentContext:
    settings = Settings(exchange="binance", symbols=["BTC/USDT"], timeframes=["1h"])
    return AgentContext(
        bus=bus, clock=clock, settings=settings, agent_id=agent_id, log=get_logger("test"), instrument=False
    )


@pytest.mark.integration
async def test_candles_to_intents_match_the_numpy_crossings(bus_factory) -> None:
    candles = load_candles(limit=HISTORY + LIVE)
    clock = SimulatedClock(candles[HISTORY - 1].close_time)
    history = ReplayHistory(candles[:HISTORY])
    ta = TechnicalAnalysisAgent(
        _ctx(await bus_factory(), clock, "ta-test"),
        TechnicalAnalysisSettings(indicators=("sma", "atr"), sma_periods=(10, 30)),
        history=history,
    )
    strategy = StrategyAgent(
        _ctx(await bus_factory(), clock, "strategy-test"), StrategySettings(strategies=("sma_cross",))
    )
    test_bus = await bus_factory()
    intents: list[TradeIntent] = []
    decisions: list[ConsensusDecision] = []

    async def fake_execution(envelope: Envelope) -> None:
        intent = envelope.payload
        assert isinstance(intent, TradeIntent)
        intents.append(intent)
        fill = Fill(
            fill_id=f"f-{intent.intent_id}",
            client_order_id=client_order_id(intent.intent_id),
            intent_id=intent.intent_id,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            price=intent.reference_price,
            quantity=QTY,
            ts=clock.now(),
        )
        await test_bus.publish(Envelope.wrap(fill, source="fake-execution", clock=clock, cause=envelope))

    async def on_decision(envelope: Envelope) -> None:
        assert isinstance(envelope.payload, ConsensusDecision)
        decisions.append(envelope.payload)

    await test_bus.subscribe(QueueSpec(name="test.intents", patterns=(INTENTS.all(),)), fake_execution)
    await test_bus.subscribe(QueueSpec(name="test.decisions", patterns=(CONSENSUS.all(),)), on_decision)
    await strategy.start()
    await ta.start()
    assert history.calls == [("binance", "BTC/USDT", "1h", 500)]
    assert ta.series[("binance", "BTC/USDT", "1h")].engine.warm, "warm from history before the live feed"

    for n, candle in enumerate(candles[HISTORY:], start=1):
        clock.advance_to(candle.close_time)
        await test_bus.publish(Envelope.wrap(candle, source="replay", clock=clock, ts_event=candle.close_time))
        # one candle at a time: its snapshot handled, its intent (if any) filled and applied
        await eventually(functools.partial(_handled_at_least, strategy, n, intents))
        await eventually(lambda: len(intents) == strategy.intents)
        await eventually(functools.partial(_handled_exactly, strategy, n, intents))

    close = np.array([float(c.close) for c in candles])
    crossings = numpy_crossings(close, 10, 30, HISTORY)
    first_up = next(k for k, (_, s) in enumerate(crossings) if s > 0)
    expected = [
        (candles[i].close_time, Side.BUY if s > 0 else Side.SELL, Direction.LONG if s > 0 else Direction.EXIT)
        for i, s in crossings[first_up:]
    ]
    assert len(expected) >= 8
    assert [(i.decided_at, i.side, i.direction) for i in intents] == expected
    assert ta.series[("binance", "BTC/USDT", "1h")].published == LIVE

    by_time = {c.close_time: c for c in candles}
    for intent in intents:
        candle = by_time[intent.decided_at]
        assert intent.reference_price == candle.close
        assert intent.expires_at - intent.decided_at == timedelta(seconds=60)
        assert intent.strategies == ("sma_cross",)
        assert intent.score == 90.0
        if intent.direction is Direction.LONG:
            assert intent.stop_loss is not None
            assert intent.stop_loss < candle.close
            assert intent.take_profit is not None
            assert intent.take_profit > candle.close
        else:
            assert intent.stop_loss is None
            assert intent.take_profit is None
    assert [d.outcome for d in decisions] == [ConsensusOutcome.EXECUTE] * len(intents)
    assert [d.intent_id for d in decisions] == [i.intent_id for i in intents]
    assert all(len(d.votes) == 1 and d.votes[0].strategy == "sma_cross" for d in decisions)
    assert strategy.position("binance", "BTC/USDT").quantity == (QTY if expected[-1][2] is Direction.LONG else 0)
    # the ids are content-derived: recomputable, so a replay gives the same intents
    for intent in intents:
        snapshot_like = SimpleNamespace(
            venue=intent.venue, symbol=intent.symbol, timeframe="1h", close_time=intent.decided_at
        )
        assert intent.intent_id == intent_id_for(snapshot_like, intent.direction, ("sma_cross",))  # type: ignore[arg-type]
