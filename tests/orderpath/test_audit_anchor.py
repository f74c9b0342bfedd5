"""The audit chain is anchored: rows are HMAC-chained with the audit key and the compliance agent
signs periodic checkpoints of the chain's head; the verifier detects an edited row, a chain recomputed
without the key, deleted tail rows (with or without their checkpoints), over any range of days
(``tradeswarm compliance report --from D1 --to D2``). Through the compliance agent: messages in, the
stored trail out."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from agents.compliance.agent import ComplianceAgent
from agents.compliance.settings import ComplianceSettings
from agents.risk.engine import RiskEngine
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.messages import Envelope
from core.routing import ALERTS, COMPLIANCE_DECISIONS, ORDERS_APPROVED
from core.trading.audit import GENESIS_HASH, AuditRecord, ChainProblem, row_hash, verify_range
from core.trading.stores import AuditStore, InMemoryAuditStore
from infrastructure.database.timescale import Database, PostgresAuditStore, apply_migrations
from infrastructure.messaging.memory import InMemoryBus
from tests.orderpath.helpers import candles, context, intent
from tests.orderpath.probe import Probe
from tradeswarm.cli import app

KEY = "a-test-audit-key-0123456789abcdef"
PERIOD = timedelta(hours=1)
"""The checkpoint period of the tests: hourly candles bring the ticks (the agent also ticks on a timer)."""
C = candles(40)


async def run_compliance(store: AuditStore, n: int = 30, key: str | None = KEY) -> SimulatedClock:
    """A keyed compliance agent over ``n`` hourly candles, a few decisions on the way, then stopped."""
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(C[0].open_time)
    settings = ComplianceSettings(
        audit_secret=SecretStr(key) if key else None, audit_checkpoint_s=PERIOD.total_seconds()
    )
    agent = ComplianceAgent(context(bus, clock, "compliance-1"), settings, store)
    await Probe().attach(bus, [ORDERS_APPROVED.all(), COMPLIANCE_DECISIONS.all(), ALERTS.all()])
    await agent.start()
    risk = RiskEngine(RiskSettings())
    for i, c in enumerate(C[:n]):
        clock.advance_to(c.close_time)
        await bus.publish(Envelope.wrap(c, source="feed", clock=clock))
        risk.on_candle(c.venue, c.symbol, c.timeframe, c.close_time, c.high, c.low, c.close)
        if i % 5 == 4:
            decision = risk.decide(intent(c, tag=str(i)), clock.now()).decision
            await bus.publish(Envelope.wrap(decision, source="risk-1", clock=clock))
        await bus.wait_idle()
    await agent.stop()
    await bus.close()
    return clock


async def verify(store: AuditStore, until: datetime, key: str = KEY) -> list[ChainProblem]:
    records = list(await store.records())
    checkpoints = list(await store.checkpoints())
    newest = await store.last()
    heads = {r.seq: r for r in records}
    return verify_range(
        records,
        checkpoints,
        heads,
        key=key.encode(),
        period=PERIOD,
        until=until,
        last_seq=newest.seq if newest else 0,
    )


@pytest.fixture
async def trail() -> tuple[InMemoryAuditStore, datetime]:
    store = InMemoryAuditStore()
    clock = await run_compliance(store)
    return store, clock.now()


async def test_an_untouched_trail_verifies(trail: tuple[InMemoryAuditStore, datetime]) -> None:
    store, now = trail
    assert len(store.rows) > 10
    assert {c.kind for c in store.anchors} == {"start", "periodic", "stop"}
    assert await verify(store, now) == []
    assert await verify(store, now, key="another key") != []  # only the audit key verifies it


async def test_deleted_tail_rows_are_detected(trail: tuple[InMemoryAuditStore, datetime]) -> None:
    store, now = trail
    store.rows = store.rows[:-3]  # the chain that is left is consistent
    problems = await verify(store, now)
    assert any("rows deleted" in p.reason for p in problems)


async def test_a_tail_cut_with_its_checkpoints_is_detected(trail: tuple[InMemoryAuditStore, datetime]) -> None:
    store, now = trail
    cut = store.rows[-1].ts - timedelta(hours=3)
    store.rows = [r for r in store.rows if r.ts < cut]
    store.anchors = [c for c in store.anchors if c.ts < cut]  # the signed checkpoints after it too
    problems = await verify(store, now)
    assert any("no signed checkpoint after" in p.reason for p in problems)


async def test_a_chain_recomputed_after_an_edit_is_detected(trail: tuple[InMemoryAuditStore, datetime]) -> None:
    store, now = trail
    edited = [dataclasses.replace(r, payload=r.payload.replace("approved", "rejected")) for r in store.rows]
    assert edited != store.rows
    prev = GENESIS_HASH
    recomputed: list[AuditRecord] = []
    for r in edited:  # whoever edits without the key can only recompute a plain (or guessed-key) chain
        h = row_hash(prev, r.seq, r.ts, r.kind, r.ref, r.payload)
        recomputed.append(dataclasses.replace(r, prev_hash=prev, hash=h))
        prev = h
    store.rows = recomputed
    problems = await verify(store, now)
    assert problems
    assert "tampered" in problems[0].reason


@pytest.mark.integration
async def test_report_verifies_a_range_of_days_on_postgresql(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_dsn)
    await db.connect()
    await apply_migrations(db)
    try:
        await run_compliance(PostgresAuditStore(db), n=40)  # 40 hours: two UTC days
        first, last = C[0].close_time.date(), C[39].close_time.date()
        assert first != last
        monkeypatch.setenv("TRADESWARM_COMPLIANCE_AUDIT_SECRET", KEY)
        monkeypatch.setenv("TRADESWARM_COMPLIANCE_AUDIT_CHECKPOINT_S", str(PERIOD.total_seconds()))
        args = ["compliance", "report", "--from", first.isoformat(), "--to", last.isoformat(), "--dsn", postgres_dsn]
        runner = CliRunner()
        result = await asyncio.to_thread(runner.invoke, app, args)
        assert result.exit_code == 0, result.output
        assert "audit chain intact" in result.output
        assert "signed checkpoints verified" in result.output

        async def cut_tail(conn) -> None:  # someone with the rights to disable the trigger
            await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
            await conn.execute("DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 3 FROM audit_log)")

        await db.run("t", cut_tail)
        result = await asyncio.to_thread(runner.invoke, app, args)
        assert result.exit_code == 1
        assert "rows deleted" in result.output
    finally:
        await db.close()


def test_report_needs_a_date_or_a_range() -> None:
    result = CliRunner().invoke(app, ["compliance", "report", "--dsn", "postgresql://nowhere/x"])
    assert result.exit_code == 2
    assert "give --date" in result.output


def test_settings_read_the_key_from_a_secret_file(tmp_path) -> None:
    secret = tmp_path / "audit_key"
    secret.write_text(KEY + "\n")
    assert ComplianceSettings(audit_secret_file=secret).audit_key_bytes() == KEY.encode()
    assert ComplianceSettings().audit_key_bytes() is None
