"""FLATTEN closes every open position through the normal order path, with the real agents.

Risk, compliance and execution (paper venue) and the orchestrator on one in-memory bus: a position is
opened, FLATTEN is issued, risk approves a reduce-only exit, compliance gates and audits it,
execution fills it on the next candle; the position is zero, risk acknowledges then (so the API
reports the FLATTEN complete only once flat), and a new entry is refused.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal as D

import orjson
import pytest

from agents.compliance.agent import ComplianceAgent
from agents.compliance.settings import ComplianceSettings
from agents.execution.agent import ExecutionAgent, paper_venue
from agents.execution.settings import ExecutionSettings
from agents.orchestrator.agent import OrchestratorAgent
from agents.risk.agent import RiskAgent
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.domain import Direction, OrderStatus, Side
from core.ids import client_order_id
from core.messages import Candle, CommandAck, Envelope, Fill, Heartbeat, OrderUpdate, Payload, RiskDecision
from core.routing import COMMAND_ACKS, FILLS, ORDER_UPDATES, RISK_APPROVED, RISK_REJECTED
from core.trading.stores import InMemoryAuditStore, InMemoryExecutionStore
from infrastructure.api.schemas import CommandView
from infrastructure.messaging.memory import InMemoryBus
from tests.control.helpers import orchestrator
from tests.factories import eventually
from tests.orderpath.helpers import candles, context, intent
from tests.orderpath.probe import Probe

C = candles(20)
KEY = ("binance", "BTC/USDT")


@dataclass
class Swarm:
    bus: InMemoryBus
    clock: SimulatedClock
    risk: RiskAgent
    compliance: ComplianceAgent
    execution: ExecutionAgent
    orchestrator: OrchestratorAgent
    audit: InMemoryAuditStore
    probe: Probe

    async def send(self, payload: Payload, source: str = "test") -> None:
        await self.bus.publish(Envelope.wrap(payload, source=source, clock=self.clock))

    async def candle(self, c: Candle) -> None:
        self.clock.advance_to(c.close_time)
        await self.send(c)
        await eventually(
            lambda: (
                self.risk.engine.last_price.get(KEY) == c.close and self.compliance.gate.last_price.get(KEY) == c.close
            )
        )

    def position(self) -> D:
        return self.execution.engine.portfolio.position(*KEY).quantity

    async def command(self, view: CommandView) -> CommandView:
        found = self.orchestrator.command(view.command_id)
        assert found is not None
        return found


@pytest.fixture
async def swarm() -> AsyncIterator[Swarm]:
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(C[0].open_time)
    risk = RiskAgent(
        context(bus, clock, "risk-1"),
        RiskSettings(fixed_fraction=D("0.5"), max_position_pct=D(1), stop_loss_pct=None, take_profit_pct=None),
    )
    audit = InMemoryAuditStore()
    comp = ComplianceAgent(context(bus, clock, "compliance-1"), ComplianceSettings(), audit)
    es = ExecutionSettings(store="memory", snapshot_interval_s=3600)
    execution = ExecutionAgent(context(bus, clock, "execution-1"), paper_venue(es, clock), InMemoryExecutionStore(), es)
    probe = await Probe().attach(
        bus, [FILLS.all(), ORDER_UPDATES.all(), RISK_APPROVED.all(), RISK_REJECTED.all(), COMMAND_ACKS.all()]
    )
    for agent in (risk, comp, execution):
        await agent.start()
    orch = await orchestrator(bus, clock)
    s = Swarm(bus, clock, risk, comp, execution, orch, audit, probe)
    for c in C[:5]:
        await s.candle(c)
    yield s
    await orch.stop()
    await bus.close()


async def _open_position(s: Swarm) -> D:
    entry = intent(C[4])
    await s.send(entry, "strategy-1")
    await eventually(lambda: any(u.status is OrderStatus.ACCEPTED for u in s.probe.of(OrderUpdate)))
    await s.candle(C[5])
    await eventually(lambda: s.position() > 0)
    held = s.position()
    await eventually(lambda: s.risk.engine.portfolio.position(*KEY).quantity == held)
    return held


async def test_flatten_closes_every_position_through_the_order_path(swarm: Swarm) -> None:
    s = swarm
    held = await _open_position(s)

    view = await s.orchestrator.issue("flatten", reason="drill")
    assert view.required_kinds == ["risk"]
    closing = await _closing_decision(s)
    assert closing.side is Side.SELL
    assert closing.quantity == held
    assert closing.direction is Direction.EXIT
    await eventually(lambda: any(u.intent_id == closing.intent_id for u in s.probe.of(OrderUpdate)))
    assert not (await s.command(view)).complete  # sent, not filled yet: not flat
    # through compliance: gated, turned into a reduce-only order and audited like any order
    coid = client_order_id(closing.intent_id)
    requests = [orjson.loads(r.payload) for r in s.audit.rows if r.kind == "order_request" and r.ref == coid]
    assert len(requests) == 1
    assert requests[0]["reduce_only"] is True

    await s.candle(C[6])  # the paper venue fills it on the next candle
    await eventually(lambda: s.position() == 0)
    await eventually(lambda: (s.orchestrator.command(view.command_id) or view).complete)
    done = await s.command(view)
    assert [(a.agent_id, a.ok) for a in done.acks] == [("risk-1", True)]
    assert done.acks[0].detail.startswith("flat")
    assert s.risk.engine.portfolio.position(*KEY).quantity == 0
    assert [f.side for f in s.probe.of(Fill)] == [Side.BUY, Side.SELL]

    # new entries stay refused
    again = intent(C[6], tag="after-flatten")
    await s.send(again, "strategy-1")
    await eventually(lambda: any(d.intent_id == again.intent_id for d in s.probe.of(RiskDecision)))
    refused = next(d for d in s.probe.of(RiskDecision) if d.intent_id == again.intent_id)
    assert not refused.approved
    assert refused.reason == "reducing_only"
    assert s.position() == 0


async def test_flatten_with_no_position_is_complete_at_once(swarm: Swarm) -> None:
    view = await swarm.orchestrator.issue("flatten")
    await eventually(lambda: (swarm.orchestrator.command(view.command_id) or view).complete)
    assert (await swarm.command(view)).acks[0].detail == "flat: no open position"


async def test_flatten_while_halted_is_refused_and_reported_failed(swarm: Swarm) -> None:
    s = swarm
    await _open_position(s)
    halt = await s.orchestrator.issue("halt", target="risk")
    await eventually(lambda: s.risk.halted)
    assert halt.target == "risk"
    view = await s.orchestrator.issue("flatten")
    await eventually(lambda: (s.orchestrator.command(view.command_id) or view).state == "failed")
    ack = next(a for a in s.probe.of(CommandAck) if a.command_id == view.command_id)
    assert not ack.ok
    assert "halted" in ack.detail
    assert not [d for d in s.probe.of(RiskDecision) if d.detail == "flatten"]
    assert s.position() > 0


async def test_flatten_reports_failure_when_the_closing_order_cannot_fill(swarm: Swarm) -> None:
    s = swarm
    held = await _open_position(s)
    view = await s.orchestrator.issue("flatten")
    closing = await _closing_decision(s)
    await eventually(lambda: any(u.intent_id == closing.intent_id for u in s.probe.of(OrderUpdate)))
    await s.orchestrator.issue("halt", target="execution")  # cancels the closing order before it fills
    await eventually(lambda: (s.orchestrator.command(view.command_id) or view).state == "failed")
    failed = next(a for a in (await s.command(view)).acks if a.agent_id == "risk-1")
    assert not failed.ok
    assert "not flat" in failed.detail
    assert "canceled" in failed.detail
    assert s.position() == held


async def test_flatten_waits_for_an_exit_already_working(swarm: Swarm) -> None:
    """A strategy exit accepted before the FLATTEN holds the whole position: execution caps the closing
    order to nothing, and risk waits for that exit instead of reporting failure."""
    s = swarm
    await _open_position(s)
    exit_intent = intent(C[5], Side.SELL, Direction.EXIT)
    await s.send(exit_intent, "strategy-1")
    await eventually(
        lambda: any(
            u.intent_id == exit_intent.intent_id and u.status is OrderStatus.ACCEPTED for u in s.probe.of(OrderUpdate)
        )
    )
    view = await s.orchestrator.issue("flatten")
    closing = await _closing_decision(s)
    await eventually(
        lambda: any(
            u.intent_id == closing.intent_id and u.status is OrderStatus.REJECTED for u in s.probe.of(OrderUpdate)
        )
    )
    rejected = next(
        u for u in s.probe.of(OrderUpdate) if u.intent_id == closing.intent_id and u.status is OrderStatus.REJECTED
    )
    assert rejected.reason == "reduce_only_nothing_to_reduce"
    assert (await s.command(view)).state == "pending"  # not failed: the strategy's exit still works

    await s.candle(C[6])  # the strategy's exit fills
    await eventually(lambda: (s.orchestrator.command(view.command_id) or view).complete)
    done = await s.command(view)
    assert [(a.agent_id, a.ok) for a in done.acks] == [("risk-1", True)]
    assert s.position() == 0
    assert [f.side for f in s.probe.of(Fill)] == [Side.BUY, Side.SELL]


def _risk_beat(s: Swarm, started_at: datetime) -> Heartbeat:
    return Heartbeat(
        agent_id="risk-1", agent_kind="risk", version="0.1.0", host="test-host", pid=os.getpid(),
        started_at=started_at, processed=0, failed=0, dead_lettered=0, ready=True, paused=False, halted=False,
    )  # fmt: skip


async def test_a_flatten_in_progress_survives_a_restart_of_risk(swarm: Swarm) -> None:
    """Risk dies while its closing order works: the orchestrator sends the pending FLATTEN again to
    the new process, which rebuilds the position from the stored fills, finds the old closing order
    covering it (execution caps its own to nothing) and acknowledges once that order filled."""
    s = swarm
    await _open_position(s)
    await s.send(_risk_beat(s, s.clock.now()), "risk-1")
    view = await s.orchestrator.issue("flatten")
    closing = await _closing_decision(s)
    await eventually(
        lambda: any(
            u.intent_id == closing.intent_id and u.status is OrderStatus.ACCEPTED for u in s.probe.of(OrderUpdate)
        )
    )
    # risk-1 dies: its queues keep their messages for the next process
    for queue in s.bus.queue_names():
        if queue.startswith("risk."):
            await s.bus.unsubscribe(queue)
    settings = RiskSettings(fixed_fraction=D("0.5"), max_position_pct=D(1), stop_loss_pct=None, take_profit_pct=None)
    reborn = RiskAgent(context(s.bus, s.clock, "risk-1"), settings, history=s.execution.engine.store)
    await reborn.start()
    s.risk = reborn
    assert reborn.engine.portfolio.position(*KEY).quantity > 0  # rebuilt from the stored fills
    await s.send(_risk_beat(s, s.clock.now() + timedelta(seconds=1)), "risk-1")  # the orchestrator sees the restart
    await eventually(lambda: reborn.flattening is not None)  # the FLATTEN was sent again, to risk
    assert not (await s.command(view)).complete

    await s.candle(C[6])  # the first process's closing order fills
    await eventually(lambda: (s.orchestrator.command(view.command_id) or view).complete)
    done = await s.command(view)
    assert [(a.agent_id, a.ok) for a in done.acks] == [("risk-1", True)]
    assert s.position() == 0
    assert [f.side for f in s.probe.of(Fill)] == [Side.BUY, Side.SELL]  # closed once, never over-closed


async def _closing_decision(s: Swarm) -> RiskDecision:
    await eventually(lambda: any(d.detail == "flatten" for d in s.probe.of(RiskDecision)))
    return next(d for d in s.probe.of(RiskDecision) if d.detail == "flatten")
