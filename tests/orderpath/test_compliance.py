"""The compliance gate's checks and the hash-chained audit trail (in memory)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

import pytest

from agents.compliance.audit import AuditTrail
from agents.compliance.gate import ComplianceGate
from agents.compliance.settings import ComplianceSettings
from core.domain import DecisionVerdict, Direction, OrderType, Side
from core.ids import client_order_id, content_id
from core.messages import RiskDecision
from core.trading.audit import verify_chain
from core.trading.stores import InMemoryAuditStore

NOW = datetime(2024, 9, 16, 12, 0, tzinfo=UTC)  # a Monday
PRICE = D(60_000)


def decision(
    n: int = 0,
    *,
    qty: D = D("0.01"),
    price: D = PRICE,
    symbol: str = "BTC/USDT",
    verdict: DecisionVerdict = DecisionVerdict.APPROVE,
    ttl: timedelta = timedelta(minutes=5),
) -> RiskDecision:
    return RiskDecision(
        intent_id=content_id("c", n),
        verdict=verdict,
        reason="approved" if verdict is not DecisionVerdict.REJECT else "max_position",
        venue="binance",
        symbol=symbol,
        side=Side.BUY,
        direction=Direction.LONG,
        quantity=None if verdict is DecisionVerdict.REJECT else qty,
        reference_price=price,
        expires_at=NOW + ttl,
    )


def gate(**kw) -> ComplianceGate:
    g = ComplianceGate(ComplianceSettings(**kw))
    g.on_price("binance", "BTC/USDT", PRICE)
    g.on_price("binance", "ETH/USDT", D(2500))
    return g


def test_approval_builds_the_order():
    r = gate().check(decision(), NOW)
    assert r.decision.verdict is DecisionVerdict.APPROVE
    assert r.order is not None
    assert r.order.client_order_id == client_order_id(content_id("c", 0))
    assert r.order.order_type is OrderType.MARKET
    assert r.order.quantity == D("0.01")


def test_limit_orders_when_configured():
    r = gate(order_type="limit", limit_offset_bps=D(10)).check(decision(), NOW)
    assert r.order is not None
    assert r.order.limit_price == PRICE * D("1.001")


def reason(g: ComplianceGate, d: RiskDecision, now: datetime = NOW) -> str:
    return g.check(d, now).decision.reason


def test_each_check_rejects():
    assert reason(gate(), decision(verdict=DecisionVerdict.REJECT)) == "risk_rejected"
    assert reason(gate(), decision(), NOW + timedelta(minutes=5)) == "stale_intent"
    assert reason(gate(allowed_symbols=["ETH/USDT"]), decision()) == "symbol_not_allowed"
    assert reason(gate(), decision(price=PRICE * D("1.06"))) == "price_collar"
    assert reason(gate(max_order_quantity=D("0.001")), decision()) == "max_order_quantity"
    assert reason(gate(max_order_notional=D(100)), decision()) == "max_order_notional"
    assert reason(gate(trading_start=time(13, 0)), decision()) == "outside_trading_hours"
    assert reason(gate(trading_days=[5, 6]), decision()) == "outside_trading_hours"
    g = ComplianceGate(ComplianceSettings())
    assert reason(g, decision()) == "no_reference_price"


def test_duplicate_intent():
    g = gate()
    assert g.check(decision(), NOW).order is not None
    r = g.check(decision(), NOW)
    assert r.order is None
    assert r.decision.reason == "duplicate_intent"


def test_rate_throttle_and_daily_limits():
    g = gate(max_orders_per_window=3, rate_window_s=60)
    got = [reason(g, decision(i), NOW + timedelta(seconds=i)) for i in range(5)]
    assert got == ["approved"] * 3 + ["order_rate"] * 2
    assert reason(g, decision(9), NOW + timedelta(seconds=61)) == "approved"
    g = gate(max_trades_per_day=2)
    assert [reason(g, decision(i), NOW) for i in range(3)] == ["approved", "approved", "max_trades_per_day"]
    assert reason(g, decision(7, ttl=timedelta(days=2)), NOW + timedelta(days=1)) == "approved"  # new day
    g = gate(max_volume_per_day_per_symbol=D(1000))
    assert [reason(g, decision(i)) for i in range(3)] == [
        "approved",
        "max_volume_per_day_symbol",
        "max_volume_per_day_symbol",
    ]
    g = gate(max_trades_per_day_per_symbol=1)
    assert reason(g, decision(1)) == "approved"
    assert reason(g, decision(2)) == "max_trades_per_day_symbol"


def test_kill_switch_until_resume():
    g = gate()
    g.halt("operator")
    assert reason(g, decision(1)) == "kill_switch"
    g.resume()
    assert reason(g, decision(2)) == "approved"


async def test_audit_chain_detects_tampering_insertion_and_deletion():
    store = InMemoryAuditStore()
    trail = AuditTrail(store)
    for i in range(5):
        await trail.append(NOW + timedelta(seconds=i), "fill", f"c{i}", {"qty": str(i), "price": "1.5"})
    assert verify_chain(store.rows) is None
    tampered = list(store.rows)
    tampered[2] = dataclasses.replace(tampered[2], payload=tampered[2].payload.replace('"2"', '"200"'))
    problem = verify_chain(tampered)
    assert problem is not None
    assert problem.seq == 3
    assert "tampered" in problem.reason
    deleted = store.rows[:2] + store.rows[3:]
    assert verify_chain(deleted) is not None
    resumed = AuditTrail(store)
    rec = await resumed.append(NOW + timedelta(minutes=1), "order", "c9", {})
    assert rec.seq == 6
    assert verify_chain(store.rows) is None


async def test_audit_append_that_committed_but_failed_does_not_wedge_the_chain():
    """A write can commit and still fail for the caller (connection lost before the reply)."""

    class CommitsThenFails(InMemoryAuditStore):
        fail_next = False

        async def append(self, record):
            await super().append(record)
            if self.fail_next:
                self.fail_next = False
                raise ConnectionError("connection lost after commit")

    store = CommitsThenFails()
    trail = AuditTrail(store)
    t = datetime(2024, 9, 16, tzinfo=UTC)
    await trail.append(t, "intent", "a", {"n": 1})
    store.fail_next = True
    with pytest.raises(ConnectionError):
        await trail.append(t, "intent", "b", {"n": 2})
    third = await trail.append(t, "intent", "c", {"n": 3})  # continues after what the store holds
    records = await store.records()
    assert [r.seq for r in records] == [records[0].seq + i for i in range(3)]
    assert third.seq == records[-1].seq
    assert verify_chain(records) is None
