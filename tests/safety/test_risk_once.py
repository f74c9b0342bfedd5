"""Risk decides a duplicate intent (same ``intent_id``) once (issue #20): a second message with the same
intent publishes nothing, a redelivery of the decided message publishes the same decision again, and
with the PostgreSQL ledger a restarted risk agent does not decide it again either."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents.risk.agent import RiskAgent
from agents.risk.ledger import IntentLedger
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.messages import Envelope, RiskDecision
from core.ports import QueueSpec
from core.routing import RISK_APPROVED, RISK_REJECTED
from infrastructure.database.timescale import Database, apply_migrations
from infrastructure.database.timescale.control_store import PostgresRiskLedger
from infrastructure.messaging.memory import InMemoryBus
from tests.orderpath.helpers import candles, context, intent

C = candles(20)


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    await bus.start()
    yield bus
    await bus.close()


async def _decisions(bus: InMemoryBus) -> list[RiskDecision]:
    seen: list[RiskDecision] = []

    async def collect(envelope: Envelope) -> None:
        assert isinstance(envelope.payload, RiskDecision)
        seen.append(envelope.payload)

    await bus.subscribe(QueueSpec("test.decisions", (RISK_APPROVED.all(), RISK_REJECTED.all())), collect)
    return seen


async def _risk(bus: InMemoryBus, clock: SimulatedClock, ledger: IntentLedger | None = None) -> RiskAgent:
    agent = RiskAgent(context(bus, clock, "risk-1"), RiskSettings(), ledger=ledger)
    await agent.start()
    for c in C[:15]:
        await agent.on_candle(c, Envelope.wrap(c, source="test", clock=clock))
    return agent


async def test_a_duplicate_intent_is_decided_once_and_a_redelivery_publishes_the_same_decision(
    bus: InMemoryBus,
) -> None:
    clock = SimulatedClock(C[15].close_time)
    decisions = await _decisions(bus)
    risk = await _risk(bus, clock)
    wanted = intent(C[15])
    first = Envelope.wrap(wanted, source="strategy-1", clock=clock)
    await risk.on_intent(wanted, first)
    assert len(decisions) == 1
    assert decisions[0].approved
    await risk.on_intent(wanted, Envelope.wrap(wanted, source="strategy-1", clock=clock))  # a second message
    assert len(decisions) == 1
    await risk.on_intent(wanted, first)  # the very message again: a broker redelivery
    assert len(decisions) == 2
    assert decisions[1] == decisions[0]
    assert len(risk.engine.reservations) == 1  # reserved once


@pytest.mark.integration
async def test_a_restarted_risk_agent_does_not_decide_an_intent_again(bus: InMemoryBus, postgres_dsn: str) -> None:
    db = Database(postgres_dsn)
    await db.connect()
    await apply_migrations(db)
    try:
        clock = SimulatedClock(C[15].close_time)
        decisions = await _decisions(bus)
        risk = await _risk(bus, clock, IntentLedger(PostgresRiskLedger(db)))
        wanted = intent(C[15])
        first = Envelope.wrap(wanted, source="strategy-1", clock=clock)
        await risk.on_intent(wanted, first)
        await risk.stop()
        # a new process: nothing in memory
        restarted = RiskAgent(
            context(bus, clock, "risk-1"), RiskSettings(), ledger=IntentLedger(PostgresRiskLedger(db))
        )
        await restarted.on_intent(wanted, Envelope.wrap(wanted, source="strategy-1", clock=clock))
        assert len(decisions) == 1
        assert restarted.engine.reservations == {}
        await restarted.on_intent(wanted, first)  # the decided message redelivered after the crash
        assert len(decisions) == 2
        assert decisions[1] == decisions[0]
        rows = await db.run("t", lambda c: c.fetch("SELECT intent_id FROM risk_intents"))
        assert [r["intent_id"] for r in rows] == [wanted.intent_id]
    finally:
        await db.close()
