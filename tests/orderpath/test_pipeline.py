"""Intent -> risk -> compliance -> execution -> fill -> position, end to end, on both buses."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest
from prometheus_client import REGISTRY

from agents.compliance.agent import ComplianceAgent
from agents.compliance.settings import ComplianceSettings
from agents.execution.agent import ExecutionAgent, paper_venue
from agents.execution.settings import ExecutionSettings
from agents.risk.agent import RiskAgent
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.domain import CommandKind, Direction, OrderStatus, OrderType, Side
from core.ids import client_order_id, content_id
from core.messages import (
    Command,
    ComplianceDecision,
    Envelope,
    Fill,
    OrderRequest,
    OrderUpdate,
    PortfolioSnapshot,
    PositionUpdate,
    RiskDecision,
)
from core.routing import (
    COMMAND_ACKS,
    COMPLIANCE_DECISIONS,
    FILLS,
    ORDER_UPDATES,
    PORTFOLIO,
    POSITIONS,
    RISK_APPROVED,
    RISK_REJECTED,
)
from core.trading.audit import verify_chain
from core.trading.stores import InMemoryAuditStore, InMemoryExecutionStore
from tests.factories import eventually
from tests.orderpath.helpers import candles, context, intent
from tests.orderpath.probe import Probe

C = candles(40)
FEE_BPS = D(10)
SLIP_BPS = D(5)


async def swarm(bus_factory, clock):
    risk_bus, comp_bus, exec_bus, probe_bus = [await bus_factory() for _ in range(4)]
    risk = RiskAgent(
        context(risk_bus, clock, "risk-1"),
        RiskSettings(fixed_fraction=D("0.5"), max_position_pct=D(1), stop_loss_pct=None, take_profit_pct=None),
    )
    audit = InMemoryAuditStore()
    comp = ComplianceAgent(context(comp_bus, clock, "compliance-1"), ComplianceSettings(), audit)
    es = ExecutionSettings(store="memory", taker_fee_bps=FEE_BPS, slippage_bps=SLIP_BPS, snapshot_interval_s=3600)
    store = InMemoryExecutionStore()
    execution = ExecutionAgent(context(exec_bus, clock, "execution-1"), paper_venue(es, clock), store, es)
    probe = await Probe().attach(
        probe_bus,
        [
            FILLS.all(),
            POSITIONS.all(),
            ORDER_UPDATES.all(),
            COMPLIANCE_DECISIONS.all(),
            RISK_APPROVED.all(),
            RISK_REJECTED.all(),
            PORTFOLIO.all(),
            COMMAND_ACKS.all(),
        ],
    )
    for agent in (risk, comp, execution):
        await agent.start()
    return risk, comp, execution, probe, audit, store, probe_bus


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def publish(bus, clock, payload, source="test"):
    await bus.publish(Envelope.wrap(payload, source=source, clock=clock))


@pytest.mark.integration
async def test_intent_to_position_end_to_end(bus_factory):
    clock = SimulatedClock(C[0].open_time)
    risk, comp, execution, probe, audit, store, bus = await swarm(bus_factory, clock)
    latency_count_before = _sample("tradeswarm_order_latency_seconds_count", venue="binance")
    for c in C[:5]:
        clock.advance_to(c.close_time)
        await publish(bus, clock, c)
    await eventually(lambda: len(probe.of(PortfolioSnapshot)) >= 1)
    await eventually(lambda: comp.gate.last_price.get(("binance", "BTC/USDT")) == C[4].close)
    await eventually(
        lambda: len(risk.engine.last_price) == 1 and risk.engine.last_price[("binance", "BTC/USDT")] == C[4].close
    )
    entry = intent(C[4])
    await publish(bus, clock, entry, "strategy-1")
    await eventually(lambda: any(u.status is OrderStatus.ACCEPTED for u in probe.of(OrderUpdate)))
    assert not probe.of(Fill)  # nothing fills on the decision candle
    decision = probe.of(RiskDecision)[0]
    assert decision.approved
    reserve = 1 + RiskSettings().fee_reserve_bps / D(10_000)  # cash kept for the fee, slippage, the move
    assert decision.quantity == (D("0.5") * D(10_000) / (C[4].close * reserve)).quantize(
        D("1e-8"), rounding="ROUND_DOWN"
    )
    assert probe.of(ComplianceDecision)[0].verdict.value == "approve"

    clock.advance_to(C[5].close_time)
    await publish(bus, clock, C[5])
    await eventually(lambda: len(probe.of(Fill)) == 1 and len(probe.of(PositionUpdate)) == 1)
    fill = probe.of(Fill)[0]
    expected_price = C[5].open * (1 + SLIP_BPS / D(10_000))
    assert fill.price == expected_price
    assert fill.fee == expected_price * decision.quantity * FEE_BPS / D(10_000)
    position = probe.of(PositionUpdate)[0]
    assert position.quantity == decision.quantity
    assert position.average_price == expected_price
    await eventually(lambda: any(u.status is OrderStatus.FILLED for u in probe.of(OrderUpdate)))
    await eventually(lambda: risk.engine.portfolio.position("binance", "BTC/USDT").quantity == decision.quantity)
    assert not risk.engine.reservations
    # the dashboards' position, exposure and order-latency series follow the account
    account = risk.engine.portfolio.account
    assert _sample("tradeswarm_position_quantity", account=account, symbol="BTC/USDT") == float(decision.quantity)
    exposure = _sample("tradeswarm_exposure", account=account, symbol="BTC/USDT")
    assert exposure == pytest.approx(float(decision.quantity * expected_price), rel=1e-9)
    assert _sample("tradeswarm_order_latency_seconds_count", venue="binance") == latency_count_before + 1

    # exit on the next candle: realised PnL and fees exactly as configured
    exit_intent = intent(C[6], Side.SELL, Direction.EXIT)
    clock.advance_to(C[6].close_time)
    await publish(bus, clock, C[6])
    await eventually(
        lambda: (
            risk.engine.last_price[("binance", "BTC/USDT")] == C[6].close
            and comp.gate.last_price[("binance", "BTC/USDT")] == C[6].close
        )
    )
    await publish(bus, clock, exit_intent, "strategy-1")
    await eventually(lambda: sum(1 for u in probe.of(OrderUpdate) if u.status is OrderStatus.ACCEPTED) == 2)
    clock.advance_to(C[7].close_time)
    await publish(bus, clock, C[7])
    await eventually(lambda: len(probe.of(Fill)) == 2)
    sell = probe.of(Fill)[1]
    assert sell.side is Side.SELL
    assert sell.price == C[7].open * (1 - SLIP_BPS / D(10_000))
    pf = execution.engine.portfolio
    pos = pf.position("binance", "BTC/USDT")
    assert pos.quantity == 0
    assert pos.realized_pnl == (sell.price - fill.price) * decision.quantity
    assert pf.fees == fill.fee + sell.fee
    assert pf.cash == D(10_000) + pos.realized_pnl - pf.fees
    assert len(store.orders) == 2
    assert len(store.fill_log) == 2
    await eventually(lambda: risk.engine.portfolio.position("binance", "BTC/USDT").quantity == 0)
    assert _sample("tradeswarm_position_quantity", account=account, symbol="BTC/USDT") == 0.0
    net = float(pos.realized_pnl - pf.fees)
    assert _sample("tradeswarm_pnl_realized", account=account) == pytest.approx(net, rel=1e-9)
    assert _sample("tradeswarm_pnl_unrealized", account=account) == 0.0

    # audit trail: intents are not bound here but decisions, orders and fills are, chained
    await eventually(lambda: sum(1 for r in audit.rows if r.kind == "fill") == 2)
    assert verify_chain(audit.rows) is None
    kinds = {r.kind for r in audit.rows}
    assert {"risk_decision", "compliance_decision", "order_request", "order_update", "fill"} <= kinds


@pytest.mark.integration
async def test_kill_switch_stops_new_orders_within_one_message(bus_factory):
    clock = SimulatedClock(C[0].open_time)
    risk, comp, _execution, probe, _audit, store, bus = await swarm(bus_factory, clock)
    for c in C[:5]:
        clock.advance_to(c.close_time)
        await publish(bus, clock, c)
    await eventually(
        lambda: (
            comp.gate.last_price.get(("binance", "BTC/USDT")) == C[4].close
            and ("binance", "BTC/USDT") in risk.engine.last_price
        )
    )
    await publish(
        bus, clock, Command(command_id=uuid.uuid4(), kind=CommandKind.HALT, target="compliance", reason="test")
    )
    await eventually(lambda: comp.gate.halted)
    await publish(bus, clock, intent(C[4]), "strategy-1")
    await eventually(lambda: len(probe.of(ComplianceDecision)) == 1)
    assert probe.of(ComplianceDecision)[0].reason == "kill_switch"
    assert not store.orders
    assert not risk.engine.reservations  # released on the compliance rejection
    await publish(bus, clock, Command(command_id=uuid.uuid4(), kind=CommandKind.RESUME, target="compliance"))
    await eventually(lambda: not comp.gate.halted)
    await publish(bus, clock, intent(C[4], tag="again"), "strategy-1")
    await eventually(lambda: len(store.orders) == 1)


@pytest.mark.integration
async def test_a_redelivered_approved_order_creates_no_second_order(bus_factory):
    clock = SimulatedClock(C[4].close_time)
    exec_bus, probe_bus = [await bus_factory() for _ in range(2)]
    es = ExecutionSettings(store="memory", snapshot_interval_s=3600)
    store = InMemoryExecutionStore()
    venue = paper_venue(es, clock)
    execution = ExecutionAgent(context(exec_bus, clock, "execution-1"), venue, store, es)
    probe = await Probe().attach(probe_bus, [ORDER_UPDATES.all(), FILLS.all(), POSITIONS.all(), PORTFOLIO.all()])
    await execution.start()

    intent_id = content_id("redelivery", 1)
    order = OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D("0.01"),
        reference_price=C[4].close,
        expires_at=C[4].close_time + timedelta(hours=2),
    )
    envelope = Envelope.wrap(order, source="compliance-1", clock=clock)
    await probe_bus.publish(envelope)
    await probe_bus.publish(envelope)  # the same message again (a redelivery)
    await eventually(lambda: sum(1 for u in probe.of(OrderUpdate) if u.status is OrderStatus.ACCEPTED) == 1)
    clock.advance_to(C[5].close_time)
    await probe_bus.publish(Envelope.wrap(C[5], source="test", clock=clock))
    await eventually(lambda: len(probe.of(Fill)) == 1 and len(probe.of(PortfolioSnapshot)) == 1)
    await probe_bus.publish(envelope)  # and once more after the fill
    clock.advance_to(C[6].close_time)
    await probe_bus.publish(Envelope.wrap(C[6], source="test", clock=clock))
    await eventually(lambda: len(probe.of(PortfolioSnapshot)) >= 2)
    assert len(store.orders) == 1
    assert len(store.fill_log) == 1
    assert execution.engine.portfolio.position("binance", "BTC/USDT").quantity == D("0.01")
    assert sum(1 for u in probe.of(OrderUpdate) if u.status is OrderStatus.ACCEPTED) == 1
