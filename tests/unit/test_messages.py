"""Contract validation: frozen, no extras, no NaN/inf, Decimal money, ranges, cross-field rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core.clock import SimulatedClock
from core.domain import DecisionVerdict, Direction, OrderStatus, OrderType, Side
from core.messages import (
    REGISTRY,
    BookTop,
    Candle,
    ComplianceDecision,
    Envelope,
    OrderRequest,
    OrderUpdate,
    RiskDecision,
    StrategyVote,
    TradeIntent,
)
from core.routing import CHANNELS, routed_types, routing_key, topic_matches
from tests.factories import T0, candle

NOW = datetime(2024, 9, 14, 12, tzinfo=UTC)


def intent(**overrides: object) -> TradeIntent:
    fields: dict[str, object] = {
        "intent_id": uuid.uuid4(),
        "venue": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "side": Side.BUY,
        "direction": Direction.LONG,
        "reference_price": Decimal("60000"),
        "stop_loss": Decimal("59000"),
        "take_profit": Decimal("62000"),
        "score": 80.0,
        "confidence": 0.7,
        "decided_at": NOW,
        "expires_at": NOW + timedelta(minutes=5),
    }
    fields.update(overrides)
    return TradeIntent(**fields)  # type: ignore[arg-type]


def test_payloads_are_frozen_and_forbid_extra_fields() -> None:
    c = candle(0)
    with pytest.raises(ValidationError):
        c.close = Decimal(1)
    with pytest.raises(ValidationError, match="extra"):
        Candle(**{**c.model_dump(), "vwap": Decimal(1)})


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_nan_and_infinity_are_rejected_in_money(bad: str) -> None:
    with pytest.raises(ValidationError):
        Candle(**{**candle(0).model_dump(), "volume": Decimal(bad)})


def test_nan_is_rejected_in_float_ranges() -> None:
    vote = {
        "strategy": "sma_cross",
        "venue": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "direction": Direction.LONG,
    }
    with pytest.raises(ValidationError):
        StrategyVote(**vote, score=float("nan"), confidence=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        StrategyVote(**vote, score=101, confidence=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        StrategyVote(**vote, score=50, confidence=1.01)  # type: ignore[arg-type]
    assert StrategyVote(**vote, score=100, confidence=1.0).score == 100  # type: ignore[arg-type]


def test_candle_ohlc_and_time_consistency() -> None:
    good = candle(0).model_dump()
    with pytest.raises(ValidationError, match="below low"):
        Candle(**{**good, "high": good["low"] - 1})
    with pytest.raises(ValidationError, match="within"):
        Candle(**{**good, "close": good["high"] + 1})
    with pytest.raises(ValidationError, match="close_time"):
        Candle(**{**good, "close_time": good["open_time"]})
    with pytest.raises(ValidationError):
        Candle(**{**good, "open": Decimal(0)})  # prices are strictly positive
    with pytest.raises(ValidationError):
        Candle(**{**good, "open_time": datetime(2024, 1, 1)})
    with pytest.raises(ValidationError):
        Candle(**{**good, "symbol": "btcusdt"})


def test_book_top_may_not_be_crossed() -> None:
    with pytest.raises(ValidationError, match="crossed"):
        BookTop(
            venue="binance",
            symbol="BTC/USDT",
            ts=NOW,
            bid=Decimal(2),
            bid_size=Decimal(1),
            ask=Decimal(1),
            ask_size=Decimal(1),
        )


def test_intent_levels_must_bracket_the_reference_price() -> None:
    assert intent().stop_loss == Decimal("59000")
    with pytest.raises(ValidationError, match="wrong side"):
        intent(stop_loss=Decimal("61000"))
    with pytest.raises(ValidationError, match="wrong side"):
        intent(side=Side.SELL, direction=Direction.SHORT)  # stop below / target above is wrong for a short
    short = intent(side=Side.SELL, direction=Direction.SHORT, stop_loss=Decimal("61000"), take_profit=Decimal("58000"))
    assert short.side is Side.SELL
    with pytest.raises(ValidationError, match="expires_at"):
        intent(expires_at=NOW)


def test_risk_decision_sizes_only_approvals() -> None:
    base = {
        "intent_id": uuid.uuid4(),
        "reason": "ok",
        "venue": "binance",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "direction": Direction.LONG,
        "reference_price": Decimal(1),
        "expires_at": NOW,
    }
    assert RiskDecision(**base, verdict=DecisionVerdict.APPROVE, quantity=Decimal("0.1")).approved  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="quantity"):
        RiskDecision(**base, verdict=DecisionVerdict.APPROVE)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="rejection"):
        RiskDecision(**base, verdict=DecisionVerdict.REJECT, quantity=Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="reason"):
        RiskDecision(**{**base, "reason": "Not A Code"}, verdict=DecisionVerdict.REJECT)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="never adjusts"):
        ComplianceDecision(
            intent_id=uuid.uuid4(),
            verdict=DecisionVerdict.ADJUST,
            reason="x",
            venue="binance",
            symbol="BTC/USDT",
            side=Side.BUY,
        )


def test_order_request_prices_match_the_order_type() -> None:
    base = {
        "client_order_id": "ts1",
        "intent_id": uuid.uuid4(),
        "venue": "binance",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "quantity": Decimal("0.5"),
        "reference_price": Decimal(100),
        "expires_at": NOW,
    }
    OrderRequest(**base, order_type=OrderType.MARKET)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="limit_price"):
        OrderRequest(**base, order_type=OrderType.LIMIT)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="market order"):
        OrderRequest(**base, order_type=OrderType.MARKET, limit_price=Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        OrderRequest(**{**base, "quantity": Decimal(0)}, order_type=OrderType.MARKET)  # type: ignore[arg-type]


def test_order_update_enforces_the_state_machine() -> None:
    base = {
        "client_order_id": "ts1",
        "intent_id": uuid.uuid4(),
        "venue": "binance",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "order_type": OrderType.MARKET,
        "quantity": Decimal(2),
    }
    OrderUpdate(**base, status=OrderStatus.FILLED, previous_status=OrderStatus.ACCEPTED, filled_quantity=Decimal(2))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="illegal"):
        OrderUpdate(**base, status=OrderStatus.ACCEPTED, previous_status=OrderStatus.FILLED)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="exceeds"):
        OrderUpdate(**base, status=OrderStatus.PARTIALLY_FILLED, filled_quantity=Decimal(3))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="FILLED"):
        OrderUpdate(**base, status=OrderStatus.FILLED, filled_quantity=Decimal(1))  # type: ignore[arg-type]


def test_envelope_type_must_match_payload() -> None:
    env = Envelope.wrap(candle(0), source="data_collection", clock=SimulatedClock(T0))
    raw = env.model_dump()
    raw["type"] = "trade"
    with pytest.raises(ValidationError, match="carries"):
        Envelope.model_validate({**raw, "payload": env.payload})
    with pytest.raises(ValueError, match="agent id"):
        Envelope.wrap(candle(0), source="Bad Agent", clock=SimulatedClock(T0))


def test_envelope_links_cause_and_correlation() -> None:
    clock = SimulatedClock(T0)
    first = Envelope.wrap(candle(0), source="a", clock=clock, ts_event=T0)
    second = Envelope.wrap(candle(1), source="b", clock=clock, cause=first)
    assert first.correlation_id == first.message_id
    assert first.causation_id is None
    assert second.correlation_id == first.message_id
    assert second.causation_id == first.message_id
    assert second.message_id > first.message_id


def test_every_registered_type_has_a_routing_key_and_channel() -> None:
    assert len(REGISTRY) == 25
    assert set(REGISTRY) == set(routed_types()) == set(CHANNELS)


def test_routing_keys_are_escaped_and_match_their_channel() -> None:
    c = candle(0, symbol="BTC/USDT:USDT")
    key = routing_key(c)
    assert key == "market.candle.binance.BTC-USDT-USDT.1h"
    assert any(topic_matches(t.pattern(), key) for t in CHANNELS[Candle])
