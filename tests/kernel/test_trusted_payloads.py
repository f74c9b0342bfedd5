"""``Payload.trusted``: the order path's messages built from validated fields without validating them
again are the very messages ``cls(**fields)`` builds (equal, same JSON, same fields set), and they
pass validation when re-validated; unknown or missing fields are still refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.compliance.gate import APPROVAL_CHECKS, ComplianceGate
from agents.compliance.settings import ComplianceSettings
from agents.execution.engine import ExecutionEngine
from core.domain import DecisionVerdict, Direction, OrderStatus, OrderType, Side
from core.ids import content_id
from core.messages import RiskDecision
from core.messages.base import Payload
from core.messages.decisions import ComplianceDecision
from core.messages.orders import OrderRequest, OrderUpdate
from core.trading.stores import OrderRecord

NOW = datetime(2024, 9, 16, 12, 0, tzinfo=UTC)


def same(trusted: Payload) -> None:
    """``trusted`` equals the same message built and validated by pydantic."""
    cls = type(trusted)
    fields = {name: getattr(trusted, name) for name in trusted.model_fields_set}
    validated = cls(**fields)
    assert trusted == validated
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.model_fields_set == validated.model_fields_set
    assert cls.model_validate_json(trusted.model_dump_json()) == trusted


def decision(n: int, qty: D, price: D, side: Side, direction: Direction, stops: bool) -> RiskDecision:
    return RiskDecision(
        intent_id=content_id("t", n),
        verdict=DecisionVerdict.APPROVE,
        reason="approved" if direction is not Direction.EXIT else "exit",
        venue="binance",
        symbol="BTC/USDT",
        side=side,
        direction=direction,
        quantity=qty,
        requested_quantity=qty,
        reference_price=price,
        stop_loss=price * D("0.99") if stops else None,
        take_profit=price * D("1.02") if stops else None,
        trailing_stop_pct=1.5 if stops else None,
        expires_at=NOW + timedelta(minutes=5),
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 10**6),
    qty=st.decimals(D("0.00000001"), D(1000), places=8),
    price=st.decimals(D("0.01"), D(100_000), places=2),
    side=st.sampled_from(list(Side)),
    direction=st.sampled_from([Direction.LONG, Direction.SHORT, Direction.EXIT]),
    stops=st.booleans(),
)
def test_compliance_approval_and_market_order(
    n: int, qty: D, price: D, side: Side, direction: Direction, stops: bool
) -> None:
    gate = ComplianceGate(
        ComplianceSettings(
            max_order_quantity=D(10**6),
            max_order_notional=D(10**12),
            max_volume_per_day=D(10**15),
            max_volume_per_day_per_symbol=D(10**15),
        )
    )
    gate.on_price("binance", "BTC/USDT", price)
    result = gate.check(decision(n, qty, price, side, direction, stops), NOW)
    assert result.order is not None, result.decision
    same(result.decision)
    same(result.order)
    assert result.decision.checks == APPROVAL_CHECKS


@settings(max_examples=40, deadline=None)
@given(qty=st.decimals(D("0.00000001"), D(1000), places=8), side=st.sampled_from(list(Side)), reduce=st.booleans())
def test_pending_update_is_the_validated_update(qty: D, side: Side, reduce: bool) -> None:
    request = OrderRequest(
        client_order_id="ts0123456789abcdef",
        intent_id=content_id("u", 1),
        venue="binance",
        symbol="ETH/USDT",
        side=side,
        order_type=OrderType.MARKET,
        quantity=qty,
        reference_price=D(2500),
        reduce_only=reduce,
        expires_at=NOW,
    )
    rec = OrderRecord(request, OrderStatus.PENDING_NEW, NOW, NOW)
    pending = ExecutionEngine._pending(rec)
    same(pending)
    assert pending == ExecutionEngine._update(None, rec, None)  # type: ignore[arg-type]  # uses no self


def test_unknown_or_missing_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown"):
        ComplianceDecision.trusted(
            intent_id=content_id("x", 0),
            verdict=DecisionVerdict.APPROVE,
            reason="approved",
            venue="binance",
            symbol="BTC/USDT",
            side=Side.BUY,
            colour="red",
        )
    with pytest.raises(TypeError, match="missing"):
        OrderUpdate.trusted(client_order_id="ts1", status=OrderStatus.PENDING_NEW)
