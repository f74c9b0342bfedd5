"""The agent runtime on the in-memory bus: typed dispatch, publishing, commands, dead letters."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from agents.base import Agent, AgentContext, Subscription
from core.clock import SimulatedClock
from core.domain import CommandKind, Severity
from core.logging import get_logger
from core.messages import Candle, Command, CommandAck, Envelope, RiskAlert, Trade
from core.ports import QueueSpec
from core.routing import ALERTS, CANDLES, COMMAND_ACKS, COMMANDS, queue_name
from core.settings import Settings
from infrastructure.messaging.memory import InMemoryBus
from tests.factories import T0, candle


class PriceWatcher(Agent):
    """Raises an alert for every candle closing above a threshold; obeys PAUSE."""

    kind = "price_watcher"

    def __init__(self, ctx: AgentContext, threshold: int) -> None:
        super().__init__(ctx)
        self.threshold = threshold
        self.events: list[str] = []

    def subscriptions(self) -> Sequence[Subscription]:
        return [Subscription("candles", (CANDLES.all(),), {Candle: self.on_candle})]

    async def on_start(self) -> None:
        self.events.append("on_start")

    async def on_stop(self) -> None:
        self.events.append("on_stop")

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        self.events.append(f"candle {candle.sequence}")
        if self.paused:
            return
        if candle.close > self.threshold:
            alert = RiskAlert(
                severity=Severity.INFO, code="price_above", message=f"close {candle.close}", symbol=candle.symbol
            )
            await self.publish(alert, cause=envelope)

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        if command.kind is CommandKind.PAUSE:
            self.paused = True
            return "paused"
        return None


async def _setup(threshold: int = 59_965) -> tuple[InMemoryBus, PriceWatcher, list[Envelope]]:
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(T0)
    ctx = AgentContext(bus=bus, clock=clock, settings=Settings(), agent_id="watcher-1", log=get_logger("test"))
    agent = PriceWatcher(ctx, threshold)
    alerts: list[Envelope] = []

    async def collect(env: Envelope) -> None:
        alerts.append(env)

    await bus.subscribe(QueueSpec("test.alerts", (ALERTS.all(), COMMAND_ACKS.all())), collect)
    await agent.start()
    return bus, agent, alerts


def _wrap(payload: Candle | Trade | Command, clock_source: str = "feed") -> Envelope:
    ts = payload.close_time if isinstance(payload, Candle) else T0
    return Envelope.wrap(payload, source=clock_source, clock=SimulatedClock(T0), ts_event=ts)


async def test_on_start_runs_before_consuming_and_handlers_are_typed() -> None:
    bus, agent, alerts = await _setup()
    assert agent.events == ["on_start"]
    assert queue_name("price_watcher", "candles") in bus.queue_names()
    for i in range(10):
        await bus.publish(_wrap(candle(i)))
    assert agent.events[1:] == [f"candle {i}" for i in range(10)]
    assert agent.counters.processed == 10
    # candle(i) closes at 59970.01 + i: every one is above 59965
    assert len(alerts) == 10


async def test_published_messages_carry_cause_correlation_and_market_time() -> None:
    bus, _agent, alerts = await _setup()
    source = _wrap(candle(3))
    await bus.publish(source)
    (alert,) = alerts
    assert alert.source == "watcher-1"
    assert alert.causation_id == source.message_id
    assert alert.correlation_id == source.correlation_id
    assert alert.ts_event == source.ts_event  # market time flows down the pipeline
    assert isinstance(alert.payload, RiskAlert)
    assert alert.payload.code == "price_above"


async def test_message_without_handler_is_dead_lettered_not_retried() -> None:
    bus, agent, _ = await _setup()
    trade = Trade(venue="binance", symbol="BTC/USDT", ts=T0, price=candle(0).close, amount=candle(0).volume)
    await bus.publish(_wrap(trade), routing_key="market.candle.binance.BTC-USDT.1h")
    (dead,) = await bus.dead_letters(queue_name("price_watcher", "candles"))
    assert "no handler for trade" in dead.reason
    assert agent.counters.rejected == 1
    assert agent.counters.processed == 0


async def test_commands_are_obeyed_and_acknowledged() -> None:
    bus, agent, acks = await _setup()
    command = Command(command_id=uuid.uuid4(), kind=CommandKind.PAUSE, target="all", reason="test")
    await bus.publish(_wrap(command), routing_key=COMMANDS.key(target="all"))
    assert agent.paused
    (ack,) = [e for e in acks if isinstance(e.payload, CommandAck)]
    assert isinstance(ack.payload, CommandAck)
    assert ack.payload.command_id == command.command_id
    assert ack.payload.detail == "paused"
    await bus.publish(_wrap(candle(5)))
    assert not [e for e in acks if isinstance(e.payload, RiskAlert)]  # paused: no more alerts


async def test_handler_failure_is_counted_and_retried() -> None:
    _bus, agent, _ = await _setup()
    failures = iter([RuntimeError("flaky")])

    async def flaky_candle(c: Candle, env: Envelope) -> None:
        exc = next(failures, None)
        if exc:
            raise exc
        agent.events.append("ok")

    agent.on_candle = flaky_candle  # type: ignore[method-assign, assignment]
    bus2 = InMemoryBus()
    await bus2.start()
    agent.ctx.bus = bus2
    await agent.start()
    await bus2.publish(_wrap(candle(0)))
    assert agent.counters.failed == 1
    assert agent.events[-1] == "ok"


async def test_agent_requires_a_kind() -> None:
    class Nameless(Agent):
        pass

    bus = InMemoryBus()
    ctx = AgentContext(bus=bus, clock=SimulatedClock(T0), settings=Settings(), agent_id="x", log=get_logger("t"))
    with pytest.raises(TypeError, match="kind"):
        Nameless(ctx)
