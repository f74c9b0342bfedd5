"""Compliance never blocks an exit with the caps meant to limit risk-taking; a refused exit is a
critical alert; trading windows may cross midnight. Through the agent: messages in, messages out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from agents.compliance.agent import ComplianceAgent
from agents.compliance.report import build_report
from agents.compliance.settings import ComplianceSettings
from core.clock import SimulatedClock
from core.domain import DecisionVerdict, Direction, Severity, Side
from core.ids import content_id
from core.messages import Candle, ComplianceDecision, Envelope, OrderRequest, Payload, RiskAlert, RiskDecision
from core.routing import ALERTS, COMPLIANCE_DECISIONS, ORDERS_APPROVED
from infrastructure.messaging.memory import InMemoryBus
from tests.factories import eventually
from tests.orderpath.helpers import context
from tests.orderpath.probe import Probe

NOW = datetime(2024, 9, 16, 12, 0, tzinfo=UTC)  # a Monday
PRICE = D(60_000)


def risk_decision(n: int, direction: Direction, qty: D = D(1), side: Side = Side.SELL) -> RiskDecision:
    return RiskDecision(
        intent_id=content_id("exit-test", n),
        verdict=DecisionVerdict.APPROVE,
        reason="exit" if direction is Direction.EXIT else "approved",
        detail="flatten" if direction is Direction.EXIT else "",
        venue="binance",
        symbol="BTC/USDT",
        side=side,
        direction=direction,
        quantity=qty,
        reference_price=PRICE,
        expires_at=NOW + timedelta(hours=1),
    )


class Gatekeeper:
    def __init__(self, bus: InMemoryBus, clock: SimulatedClock, agent: ComplianceAgent, probe: Probe) -> None:
        self.bus, self.clock, self.agent, self.probe = bus, clock, agent, probe

    async def send(self, payload: Payload) -> None:
        await self.bus.publish(Envelope.wrap(payload, source="risk-1", clock=self.clock))

    async def decide(self, d: RiskDecision) -> ComplianceDecision:
        await self.send(d)
        await eventually(lambda: any(x.intent_id == d.intent_id for x in self.probe.of(ComplianceDecision)))
        return next(x for x in self.probe.of(ComplianceDecision) if x.intent_id == d.intent_id)

    def orders(self, d: RiskDecision) -> list[OrderRequest]:
        return [o for o in self.probe.of(OrderRequest) if o.intent_id == d.intent_id]


async def gatekeeper(now: datetime = NOW, **settings: Any) -> AsyncIterator[Gatekeeper]:
    bus = InMemoryBus()
    await bus.start()
    clock = SimulatedClock(now)
    agent = ComplianceAgent(context(bus, clock, "compliance-1"), ComplianceSettings(**settings))
    probe = await Probe().attach(bus, [ORDERS_APPROVED.all(), COMPLIANCE_DECISIONS.all(), ALERTS.all()])
    await agent.start()
    g = Gatekeeper(bus, clock, agent, probe)
    t = now - timedelta(hours=1)
    await g.send(
        Candle(
            venue="binance",
            symbol="BTC/USDT",
            timeframe="1h",
            open_time=t,
            close_time=now,
            open=PRICE,
            high=PRICE,
            low=PRICE,
            close=PRICE,
            volume=D(1),
        )
    )
    await eventually(lambda: agent.gate.last_price.get(("binance", "BTC/USDT")) == PRICE)
    yield g
    await agent.stop()
    await bus.close()


@pytest.fixture
async def gk() -> AsyncIterator[Gatekeeper]:
    async for g in gatekeeper():
        yield g


async def test_flatten_of_one_btc_at_60k_passes_the_default_notional_cap(gk: Gatekeeper) -> None:
    """The default cap is 50,000 notional per order: an entry of 1 BTC at 60k is refused, the
    FLATTEN of the same 1 BTC goes out as a reduce-only order."""
    entry = await gk.decide(risk_decision(1, Direction.LONG, side=Side.BUY))
    assert entry.reason == "max_order_notional"
    exit_ = risk_decision(2, Direction.EXIT)
    assert (await gk.decide(exit_)).verdict is DecisionVerdict.APPROVE
    [order] = gk.orders(exit_)
    assert order.reduce_only
    assert order.quantity == D(1)
    assert not gk.probe.of(RiskAlert)


async def test_exits_pass_the_rate_and_daily_caps() -> None:
    async for gk in gatekeeper(
        max_order_quantity=D("0.001"),
        max_orders_per_window=1,
        max_trades_per_day=1,
        max_trades_per_day_per_symbol=1,
        max_volume_per_day=D(1000),
        max_volume_per_day_per_symbol=D(1000),
    ):
        first = await gk.decide(risk_decision(1, Direction.LONG, qty=D("0.001"), side=Side.BUY))
        assert first.reason == "approved"
        second = await gk.decide(risk_decision(2, Direction.LONG, qty=D("0.001"), side=Side.BUY))
        assert second.reason == "order_rate"  # an entry over the caps is still refused
        for n in range(3, 6):  # exits over every cap go through
            d = risk_decision(n, Direction.EXIT, qty=D("0.01"))  # over the quantity cap, 600 notional each
            assert (await gk.decide(d)).reason == "approved"
            assert gk.orders(d)
        assert gk.agent.gate.trades_today == 4  # exits still count


async def test_a_refused_exit_raises_a_critical_alert(gk: Gatekeeper) -> None:
    """The price collar still applies to exits (a reference far from the market is a bad order); the
    refusal is a critical alert, not a log line."""
    d = risk_decision(1, Direction.EXIT).model_copy(update={"reference_price": PRICE * D("1.2")})
    assert (await gk.decide(d)).reason == "price_collar"
    await eventually(lambda: bool(gk.probe.of(RiskAlert)))
    [alert] = gk.probe.of(RiskAlert)
    assert alert.severity is Severity.CRITICAL
    assert alert.code == "exit_refused"
    assert "price_collar" in alert.message
    assert alert.symbol == "BTC/USDT"
    assert gk.agent.audit is not None  # audited, and listed by the compliance report
    rows = list(await gk.agent.audit.store.records())
    violations = build_report(rows, None).violations
    assert [(v.stage, v.reason) for v in violations if v.reason == "exit_refused"] == [("compliance", "exit_refused")]
    # a redelivered exit refused as a duplicate is not an alert
    ok = risk_decision(2, Direction.EXIT)
    assert (await gk.decide(ok)).reason == "approved"
    await gk.send(ok)
    await eventually(lambda: sum(x.intent_id == ok.intent_id for x in gk.probe.of(ComplianceDecision)) == 2)
    assert len(gk.probe.of(RiskAlert)) == 1


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2024, 9, 16, 23, 0, tzinfo=UTC), "approved"),  # Monday 23:00, session opened Monday
        (datetime(2024, 9, 17, 1, 0, tzinfo=UTC), "approved"),  # Tuesday 01:00, Monday's session
        (datetime(2024, 9, 16, 12, 0, tzinfo=UTC), "outside_trading_hours"),
        (datetime(2024, 9, 16, 1, 0, tzinfo=UTC), "outside_trading_hours"),  # Sunday's session: not a day
    ],
)
async def test_trading_window_across_midnight(now: datetime, expected: str) -> None:
    async for gk in gatekeeper(now, trading_start=time(22, 0), trading_end=time(2, 0), trading_days=[0, 1, 2, 3, 4]):
        d = risk_decision(1, Direction.LONG, qty=D("0.01"), side=Side.BUY)
        d = d.model_copy(update={"expires_at": now + timedelta(hours=1)})
        assert (await gk.decide(d)).reason == expected
