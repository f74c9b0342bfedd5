"""``build(ctx)`` of the three agents against the real PostgreSQL: migrations applied, adapters wired,
pools closed on stop."""

from __future__ import annotations

import pytest

from agents.base.registry import load_builder
from agents.compliance.agent import ComplianceAgent
from agents.execution.agent import ExecutionAgent
from agents.risk.agent import RiskAgent
from core.clock import WallClock
from infrastructure.messaging.memory import InMemoryBus
from infrastructure.venues.paper import PaperVenue
from tests.orderpath.helpers import context

pytestmark = pytest.mark.integration


async def test_builds_wire_postgres_and_the_paper_venue(postgres_dsn, monkeypatch):
    monkeypatch.delenv("TRADESWARM_EXECUTION_VENUE", raising=False)
    bus = InMemoryBus()
    await bus.start()
    ctx = context(bus, WallClock(), "test-1", postgres_dsn=postgres_dsn)
    agents = [await load_builder(name)(ctx) for name in ("risk", "compliance", "execution")]
    try:
        risk, compliance, execution = agents
        assert isinstance(risk, RiskAgent)
        assert isinstance(compliance, ComplianceAgent)
        assert isinstance(execution, ExecutionAgent)
        assert isinstance(execution.engine.venue, PaperVenue)
        for agent in agents:
            await agent.start()
        assert execution.engine.open == {}
    finally:
        await bus.close()
        for agent in agents:
            await agent.stop()
