"""The compliance agent on PostgreSQL: audit trail + ``tradeswarm compliance report --date D``."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from agents.compliance.agent import ComplianceAgent
from agents.compliance.settings import ComplianceSettings
from agents.risk.engine import RiskEngine
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.domain import CommandKind
from core.messages import Command, ComplianceDecision, Envelope, OrderRequest
from core.routing import COMPLIANCE_DECISIONS, ORDERS_APPROVED
from core.trading.audit import verify_chain
from infrastructure.database.timescale import (
    Database,
    PostgresAuditStore,
    PostgresDecisionStore,
    apply_migrations,
)
from infrastructure.messaging.memory import InMemoryBus
from tests.orderpath.helpers import candles, context, intent
from tests.orderpath.probe import Probe
from tradeswarm.cli import app

pytestmark = pytest.mark.integration
C = candles(30)


async def test_audit_trail_and_daily_report(postgres_dsn):
    db = Database(postgres_dsn)
    await db.connect()
    await apply_migrations(db)
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(C[0].open_time)
    probe = await Probe().attach(bus, [ORDERS_APPROVED.all(), COMPLIANCE_DECISIONS.all()])
    agent = ComplianceAgent(
        context(bus, clock, "compliance-1"),
        ComplianceSettings(price_collar_pct=D("0.01")),
        PostgresAuditStore(db),
        PostgresDecisionStore(db),
    )
    await agent.start()
    risk = RiskEngine(RiskSettings())
    try:
        for c in C[:20]:
            clock.advance_to(c.close_time)
            await bus.publish(Envelope.wrap(c, source="test", clock=clock))
            risk.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
        c = C[19]
        ok = risk.decide(intent(c, tag="ok"), clock.now()).decision
        collar = risk.decide(intent(c, tag="far", price=c.close * D("1.5")), clock.now()).decision
        for d in (ok, collar, ok):  # the repeat is a duplicate
            await bus.publish(Envelope.wrap(d, source="risk-1", clock=clock))
        await bus.publish(
            Envelope.wrap(
                Command(command_id=uuid.uuid4(), kind=CommandKind.HALT, reason="drill"),
                source="orchestrator-1",
                clock=clock,
            )
        )
        later = risk.decide(intent(c, tag="later"), clock.now()).decision
        await bus.publish(Envelope.wrap(later, source="risk-1", clock=clock))
        await bus.wait_idle()
        assert len(probe.of(OrderRequest)) == 1  # collar, duplicate and kill switch blocked the rest
        assert [d.reason for d in probe.of(ComplianceDecision)] == [
            "approved",
            "price_collar",
            "duplicate_intent",
            "kill_switch",
        ]
        store = PostgresAuditStore(db)
        rows = await store.records()
        assert verify_chain(rows) is None
        decided = await db.run("t", lambda conn: conn.fetch("SELECT stage, reason FROM decisions ORDER BY ts, stage"))
        assert ("compliance", "price_collar") in {(r["stage"], r["reason"]) for r in decided}

        # a restarted compliance agent remembers today's approvals: counters and duplicates
        restarted = ComplianceAgent(
            context(bus, clock, "compliance-2"),
            ComplianceSettings(max_trades_per_day=1),
            PostgresAuditStore(db),
            PostgresDecisionStore(db),
        )
        await restarted.on_start()
        assert restarted.gate.trades_today == 1
        restarted.gate.resume()
        restarted.gate.on_price("binance", "BTC/USDT", C[19].close)
        assert restarted.gate.check(ok, clock.now()).decision.reason == "duplicate_intent"
        fresh = ok.model_copy(update={"intent_id": uuid.uuid4()})
        assert restarted.gate.check(fresh, clock.now()).decision.reason == "max_trades_per_day"

        day = C[19].close_time.date().isoformat()
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke, app, ["compliance", "report", "--date", day, "--dsn", postgres_dsn]
        )
        assert result.exit_code == 0, result.output
        for text in ("audit chain intact", "price_collar", "kill_switch", "order_request", "halt"):
            assert text in result.output, text

        async def tamper(conn):
            await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
            await conn.execute(
                "UPDATE audit_log SET payload = replace(payload, 'price_collar', "
                "'approved') WHERE kind = 'compliance_decision'"
            )

        await db.run("t", tamper)
        result = await asyncio.to_thread(
            runner.invoke, app, ["compliance", "report", "--date", day, "--dsn", postgres_dsn]
        )
        assert result.exit_code == 1
        assert "AUDIT CHAIN BROKEN" in result.output
    finally:
        await bus.close()
        await db.close()
