"""The strategy's settlement barrier: a snapshot is decided only once execution marked its candle
settled (``PositionsSettled``, published after that candle's fills), so a fill or a protective exit at
the candle's open is in the position the decision sees, whatever the order in which the two queues are
consumed (the multi-process race; the RabbitMQ parity test runs it end to end). Through the agent's
handlers, the ones both buses call, with the deliveries interleaved as RabbitMQ may interleave them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from agents.strategy.settings import StrategySettings
from core.domain import Direction
from core.messages import Envelope, Payload, PositionsSettled, PositionUpdate
from tests.analysis.candles import load_candles
from tests.analysis.test_agents import _snapshot, _strategy


@pytest.fixture(scope="module")
def candles():
    return load_candles(limit=400)


def position(snap, quantity: str) -> PositionUpdate:
    return PositionUpdate(venue=snap.venue, symbol=snap.symbol, quantity=Decimal(quantity), average_price=snap.close)


def settled(snap, as_of) -> PositionsSettled:
    return PositionsSettled(venue=snap.venue, symbol=snap.symbol, as_of=as_of)


async def test_a_snapshot_waits_for_its_candle_to_be_settled(candles) -> None:
    agent, bus, clock, decisions, intents = await _strategy(candles, StrategySettings(strategies=("rsi_reversion",)))

    def env(p: Payload) -> Envelope:
        return Envelope.wrap(p, source="execution-1", clock=clock)

    snap = _snapshot(candles, 300, rsi_14=10.0)  # rsi_reversion votes LONG
    agent.on_position(position(snap, "0.1"), env(snap))  # long: an entry would be refused (no pyramiding)
    agent.on_settled(settled(snap, snap.close_time - timedelta(hours=1)), env(snap))
    deciding = asyncio.create_task(agent.on_snapshot(snap, env(snap)))  # the snapshot came first
    await asyncio.sleep(0.05)
    assert not deciding.done()  # waiting for execution to settle this candle
    # execution: the stop fired at this candle's open (flat), then the candle is settled
    agent.on_position(position(snap, "0"), env(snap))
    agent.on_settled(settled(snap, snap.close_time), env(snap))
    await asyncio.wait_for(deciding, 5)
    await bus.wait_idle()
    assert [i.direction for i in intents.items] == [Direction.LONG]  # decided on the flat position
    assert len(decisions.items) == 1


async def test_without_a_mark_in_time_the_snapshot_is_decided_anyway(candles) -> None:
    settings = StrategySettings(strategies=("rsi_reversion",), settlement_timeout_s=0.1)
    agent, bus, clock, decisions, _intents = await _strategy(candles, settings)
    snap = _snapshot(candles, 300, rsi_14=10.0)
    mark = settled(snap, snap.close_time - timedelta(hours=1))
    agent.on_settled(mark, Envelope.wrap(mark, source="x", clock=clock))
    await asyncio.wait_for(agent.on_snapshot(snap, Envelope.wrap(snap, source="ta", clock=clock)), 5)
    await bus.wait_idle()
    assert len(decisions.items) == 1  # execution down: one decision, late, with a warning


@pytest.mark.parametrize("await_settlement", [True, False])
async def test_no_wait_before_the_first_mark_or_when_off(candles, await_settlement: bool) -> None:
    settings = StrategySettings(strategies=("rsi_reversion",), await_settlement=await_settlement)
    agent, bus, clock, decisions, _intents = await _strategy(candles, settings)
    snap = _snapshot(candles, 300, rsi_14=10.0)
    if not await_settlement:
        agent.on_settled(
            settled(snap, snap.close_time - timedelta(hours=1)), Envelope.wrap(snap, source="x", clock=clock)
        )
    await asyncio.wait_for(agent.on_snapshot(snap, Envelope.wrap(snap, source="ta", clock=clock)), 1)
    await bus.wait_idle()
    assert len(decisions.items) == 1
