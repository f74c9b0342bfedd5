"""The market-time bus of ``backtesting.replay_host``: market data moves the clock, the control plane does not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from backtesting.replay_host import MarketTimeBus
from core.clock import SimulatedClock
from core.domain import CommandKind
from core.messages import Command, Envelope
from core.ports import QueueSpec
from core.routing import CANDLES, COMMANDS
from infrastructure.messaging.memory import InMemoryBus
from tests.factories import T0, candle_envelope


async def test_candles_move_market_time_and_commands_issued_now_do_not() -> None:
    clock = SimulatedClock(T0)
    bus = MarketTimeBus(InMemoryBus(), clock)
    await bus.start()
    seen: list[tuple[str, datetime]] = []

    async def handler(envelope: Envelope) -> None:
        seen.append((envelope.payload.TYPE, clock.now()))

    await bus.subscribe(QueueSpec("test.all", (CANDLES.all(), COMMANDS.all())), handler)
    await bus.publish(candle_envelope(3))
    assert clock.now() == T0 + timedelta(hours=4)  # the candle's close

    wall = SimulatedClock(datetime(2030, 1, 1, tzinfo=UTC))  # the orchestrator's wall clock, years ahead
    halt = Command(command_id=uuid.uuid4(), kind=CommandKind.HALT, reason="drill")
    await bus.publish(Envelope.wrap(halt, source="orchestrator-1", clock=wall))
    assert clock.now() == T0 + timedelta(hours=4)  # market time did not jump to the command's stamp

    await bus.publish(candle_envelope(4))
    assert seen == [
        ("candle", T0 + timedelta(hours=4)),
        ("command", T0 + timedelta(hours=4)),
        ("candle", T0 + timedelta(hours=5)),
    ]
    await bus.close()
