"""Cash never goes below zero without margin: the risk agent keeps a reserve for the fee, slippage
and the move to the fill, and the paper venue (a spot account) fills a buy only for what the cash
pays at the fill price, cancelling the rest."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from agents.compliance.agent import ComplianceAgent
from agents.compliance.settings import ComplianceSettings
from agents.execution.agent import ExecutionAgent, paper_venue
from agents.execution.settings import ExecutionSettings
from agents.risk.agent import RiskAgent
from agents.risk.settings import RiskSettings
from core.clock import SimulatedClock
from core.domain import OrderStatus, OrderType, Side
from core.ids import client_order_id, content_id
from core.messages import Candle, Envelope, Fill, OrderRequest, OrderUpdate, PortfolioSnapshot, RiskDecision
from core.routing import FILLS, ORDER_UPDATES, PORTFOLIO, RISK_APPROVED, RISK_REJECTED
from core.trading.stores import InMemoryAuditStore, InMemoryExecutionStore
from infrastructure.messaging.memory import InMemoryBus
from tests.orderpath.helpers import candles, context, intent
from tests.orderpath.probe import Probe

C = candles(12)
FEE_BPS = D(10)
SLIP_BPS = D(5)


def gapped(c: Candle, up: D) -> Candle:
    """``c`` opening ``up`` above the previous close (a gap, as after missing data)."""
    o = C[c.sequence - 1].close * (1 + up)
    return c.model_copy(update={"open": o, "high": max(c.high, o), "low": min(c.low, o)})


async def _bus(*patterns: str) -> tuple[InMemoryBus, Probe]:
    bus = InMemoryBus()
    await bus.start()
    return bus, await Probe().attach(bus, list(patterns))


async def test_the_paper_venue_fills_a_buy_only_for_what_the_cash_pays() -> None:
    clock = SimulatedClock(C[4].close_time)
    bus, probe = await _bus(ORDER_UPDATES.all(), FILLS.all(), PORTFOLIO.all())
    es = ExecutionSettings(
        store="memory", initial_cash=D(1000), taker_fee_bps=FEE_BPS, slippage_bps=SLIP_BPS, snapshot_interval_s=60
    )
    execution = ExecutionAgent(context(bus, clock, "execution-1"), paper_venue(es, clock), InMemoryExecutionStore(), es)
    await execution.start()
    intent_id = content_id("cash-test", 1)
    quantity = (D(1000) / C[4].close).quantize(D("1e-8"))  # every unit of cash at the decision price
    order = OrderRequest(
        client_order_id=client_order_id(intent_id),
        intent_id=intent_id,
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=quantity,
        reference_price=C[4].close,
        expires_at=C[4].close_time + timedelta(hours=2),
    )
    await bus.publish(Envelope.wrap(order, source="compliance-1", clock=clock))
    nxt = gapped(C[5], D("0.02"))
    clock.advance_to(nxt.close_time)
    await bus.publish(Envelope.wrap(nxt, source="test", clock=clock))
    (fill,) = probe.of(Fill)
    assert fill.price == nxt.open * (1 + SLIP_BPS / D(10_000))
    assert fill.quantity < quantity
    assert fill.price * fill.quantity + fill.fee <= D(1000)
    assert D(1000) - (fill.price * fill.quantity + fill.fee) < fill.price * D("1e-8") * 2  # all it could pay
    final = probe.of(OrderUpdate)[-1]
    assert (final.status, final.reason) == (OrderStatus.CANCELED, "insufficient_balance")
    assert final.filled_quantity == fill.quantity
    snapshot = probe.of(PortfolioSnapshot)[-1]
    assert snapshot.cash >= 0
    await bus.close()
    await execution.stop()


async def test_a_full_entry_keeps_cash_non_negative_with_the_default_reserve() -> None:
    """100% of equity through risk, compliance and execution, fees and slippage charged: the fill
    is complete and the cash left is not negative."""
    clock = SimulatedClock(C[0].open_time)
    bus, probe = await _bus(FILLS.all(), ORDER_UPDATES.all(), RISK_APPROVED.all(), RISK_REJECTED.all())
    risk = RiskAgent(context(bus, clock, "risk-1"), RiskSettings(fixed_fraction=D(1), max_position_pct=D(1)))
    comp = ComplianceAgent(context(bus, clock, "compliance-1"), ComplianceSettings(), InMemoryAuditStore())
    es = ExecutionSettings(store="memory", taker_fee_bps=FEE_BPS, slippage_bps=SLIP_BPS, snapshot_interval_s=3600)
    execution = ExecutionAgent(context(bus, clock, "execution-1"), paper_venue(es, clock), InMemoryExecutionStore(), es)
    for agent in (execution, comp, risk):
        await agent.start()
    for c in C[:5]:
        clock.advance_to(c.close_time)
        await bus.publish(Envelope.wrap(c, source="test", clock=clock))
    await bus.publish(Envelope.wrap(intent(C[4]), source="strategy-1", clock=clock))
    (decision,) = probe.of(RiskDecision)
    assert decision.approved
    assert decision.quantity is not None
    nxt = gapped(C[5], D("0.0010"))  # 10 bps up: within the reserve's allowance
    clock.advance_to(nxt.close_time)
    await bus.publish(Envelope.wrap(nxt, source="test", clock=clock))
    (fill,) = probe.of(Fill)
    assert fill.quantity == decision.quantity
    assert probe.of(OrderUpdate)[-1].status is OrderStatus.FILLED
    assert execution.engine.portfolio.cash >= 0
    assert risk.engine.portfolio.cash >= 0
    await bus.close()
    for agent in (risk, comp, execution):
        await agent.stop()
