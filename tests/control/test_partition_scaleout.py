"""Symbol-partitioned scale-out on the real RabbitMQ: two technical analysis replicas, the
orchestrator's partition assignment, hand-over while candles flow, fail-over and the fallback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from agents.base import AgentContext
from agents.orchestrator.agent import OrchestratorAgent
from agents.orchestrator.settings import OrchestratorSettings
from agents.technical_analysis.agent import TechnicalAnalysisAgent
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from core.clock import SimulatedClock, WallClock
from core.logging import get_logger
from core.messages import Candle, Envelope, Heartbeat, PartitionAssignment
from core.routing import partition_of
from core.settings import Settings
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.factories import T0, candle, eventually

pytestmark = pytest.mark.integration

PARTITIONS = 4
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT"]
ALL = frozenset(range(PARTITIONS))
Handled = list[tuple[str, str, int]]
"""(agent id, symbol, candle sequence) in the order the replicas handled them."""


def _settings(grace_s: float = 60.0) -> Settings:
    return Settings(
        symbols=SYMBOLS,
        timeframes=["1h"],
        rabbitmq_partitions=PARTITIONS,
        partition_grace_s=grace_s,
        heartbeat_interval_s=1.0,
        heartbeat_timeout_s=3.0,
    )


class RecordingTA(TechnicalAnalysisAgent):
    """The real agent, recording every candle it handles (in handling order, shared by replicas)."""

    def __init__(self, ctx: AgentContext, handled: Handled) -> None:
        super().__init__(ctx, TechnicalAnalysisSettings(indicators=("sma",), sma_periods=(3,)))
        self.handled = handled

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        self.handled.append((self.ctx.agent_id, candle.symbol, candle.sequence))
        await asyncio.sleep(0.001)  # keep deliveries in flight during hand-overs
        await super().on_candle(candle, envelope)


@pytest.fixture
async def buses(rabbit_url: str) -> AsyncIterator[list[RabbitMQBus]]:
    made: list[RabbitMQBus] = []
    yield made
    for bus in reversed(made):
        await asyncio.wait_for(bus.close(), timeout=30)


async def _bus(buses: list[RabbitMQBus], url: str, name: str) -> RabbitMQBus:
    bus = RabbitMQBus(url, connection_name=name, shutdown_grace_s=5.0)
    await bus.start()
    buses.append(bus)
    return bus


async def _replica(buses: list[RabbitMQBus], url: str, agent_id: str, handled: Handled, **kw: float) -> RecordingTA:
    bus = await _bus(buses, url, agent_id)
    ctx = AgentContext(
        bus=bus,
        clock=WallClock(),
        settings=_settings(**kw),
        agent_id=agent_id,
        log=get_logger("test"),
        instrument=False,
    )
    agent = RecordingTA(ctx, handled)
    await agent.start()
    return agent


async def _beat(bus: RabbitMQBus, clock: SimulatedClock, agent_id: str) -> None:
    beat = Heartbeat(
        agent_id=agent_id,
        agent_kind="technical_analysis",
        version="0.1.0",
        host="test-host",
        pid=os.getpid(),
        started_at=T0,
        processed=0,
        failed=0,
        dead_lettered=0,
        ready=True,
    )
    await bus.publish(Envelope.wrap(beat, source=agent_id, clock=clock))


async def _publish(bus: RabbitMQBus, start: int, stop: int) -> None:
    for i in range(start, stop):
        for symbol in SYMBOLS:
            c = candle(i, symbol=symbol)
            await bus.publish(Envelope.wrap(c, source="feed", clock=SimulatedClock(T0), ts_event=c.close_time))


def _per_symbol(handled: Handled) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {s: [] for s in SYMBOLS}
    for _, symbol, sequence in handled:
        out[symbol].append(sequence)
    return out


def _fallback(agent: RecordingTA) -> bool:
    assert agent.partition_consumer is not None
    return agent.partition_consumer.fallback


def _owned(agent: RecordingTA) -> frozenset[int]:
    assert agent.partition_consumer is not None
    return agent.partition_consumer.owned


async def test_replicas_split_the_partitions_keep_order_and_take_over(
    rabbit_url: str, buses: list[RabbitMQBus]
) -> None:
    handled: Handled = []
    clock = SimulatedClock(T0)
    orch_bus = await _bus(buses, rabbit_url, "orchestrator-1")
    orchestrator = OrchestratorAgent(
        AgentContext(bus=orch_bus, clock=clock, settings=_settings(), agent_id="orchestrator-1", log=get_logger("t")),
        OrchestratorSettings(api_enabled=False, check_interval_s=60),
    )
    await orchestrator.start()
    feed = await _bus(buses, rabbit_url, "feed")

    # 1. one replica: the orchestrator gives it every partition
    a = await _replica(buses, rabbit_url, "ta-a", handled)
    await _beat(feed, clock, "ta-a")
    await eventually(lambda: _owned(a) == ALL)
    assert a.partition_consumer is not None
    assert not a.partition_consumer.fallback

    # 2. a second replica joins while candles flow: half the partitions move to it, in order
    producer = asyncio.create_task(_publish(feed, 0, 40))
    await eventually(lambda: len(handled) >= 30)
    b = await _replica(buses, rabbit_url, "ta-b", handled)
    await _beat(feed, clock, "ta-b")
    await eventually(lambda: bool(_owned(a)) and bool(_owned(b)) and _owned(a) | _owned(b) == ALL)
    assert not _owned(a) & _owned(b), "every partition is consumed by exactly one replica"
    await producer
    await eventually(lambda: len(handled) == 40 * len(SYMBOLS))
    assert _per_symbol(handled) == {s: list(range(40)) for s in SYMBOLS}

    # after the hand-over each symbol is handled by the owner of its partition only
    phase = len(handled)
    await _publish(feed, 40, 60)
    await eventually(lambda: len(handled) == 60 * len(SYMBOLS))
    owners = {"ta-a": _owned(a), "ta-b": _owned(b)}
    for agent_id, symbol, _ in handled[phase:]:
        assert partition_of(symbol, PARTITIONS) in owners[agent_id], f"{symbol} handled by {agent_id}"
    assert {agent_id for agent_id, _, _ in handled[phase:]} == {"ta-a", "ta-b"}

    # 3. replica b stops while candles flow; once it is DOWN its partitions go to a, nothing lost
    producer = asyncio.create_task(_publish(feed, 60, 90))
    await eventually(lambda: len(handled) >= 60 * len(SYMBOLS) + 20)
    b_bus = buses[buses.index(b.ctx.bus)]  # type: ignore[arg-type]
    await b_bus.close()
    await b.stop()
    clock.advance(timedelta(seconds=10))
    await _beat(feed, clock, "ta-a")
    await eventually(lambda: (r := orchestrator.registry.get("ta-a")) is not None and r.last_seen == clock.now())
    await orchestrator.check()
    await eventually(lambda: _owned(a) == ALL)
    await producer
    await eventually(lambda: len(handled) == 90 * len(SYMBOLS))
    assert _per_symbol(handled) == {s: list(range(90)) for s in SYMBOLS}
    await asyncio.sleep(0.3)
    assert len(handled) == 90 * len(SYMBOLS), "no candle handled twice"
    await a.stop()
    await orchestrator.stop()


async def test_without_an_orchestrator_a_replica_consumes_every_partition(
    rabbit_url: str, buses: list[RabbitMQBus]
) -> None:
    handled: Handled = []
    a = await _replica(buses, rabbit_url, "ta-a", handled, grace_s=0.3)
    feed = await _bus(buses, rabbit_url, "feed")
    await _publish(feed, 0, 5)
    await eventually(lambda: len(handled) == 5 * len(SYMBOLS))
    assert _owned(a) == ALL
    assert a.partition_consumer is not None
    assert a.partition_consumer.fallback
    assert _per_symbol(handled) == {s: list(range(5)) for s in SYMBOLS}

    # an assignment arriving later wins over the fallback
    assignment = PartitionAssignment(
        agent_kind="technical_analysis",
        partitions=PARTITIONS,
        owners=("ta-a", "ta-z", "ta-z", "ta-z"),
        generation=1,
        valid_for_s=60,
    )
    await feed.publish(Envelope.wrap(assignment, source="orchestrator-1", clock=WallClock()))
    await eventually(lambda: _owned(a) == {0})
    assert not _fallback(a)
    await a.stop()
