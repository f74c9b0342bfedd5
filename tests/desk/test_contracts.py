"""The desk's role models and bus messages: validation, routing keys, the contract document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from core.desk.roles import OUTPUT_MODELS, ResearchThesis, Role, TechnicalView, TradeProposal, tier_of
from core.messages import REGISTRY, DeskDecision, DeskRoleReport, Envelope, JsonCodec
from core.routing import CHANNELS, DESK_DECISIONS, DESK_ROLES, routing_key, topic_matches

TS = datetime(2025, 5, 5, 12, tzinfo=UTC)
TECH = TechnicalView(trend="up", momentum="strong", condition="neutral", reasoning=("ema above",))


def report(decision_id, role=Role.TECHNICAL, status="ok", output=TECH, **kw):
    return DeskRoleReport(
        decision_id=decision_id, venue="binance", symbol="BTC/USDT", timeframe="1h", ts=TS, provider="rules",
        role=role, status=status, output=output, **kw,
    )  # fmt: skip


def test_role_models_are_frozen_and_forbid_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        TechnicalView.model_validate({"trend": "up", "momentum": "strong", "condition": "neutral",
                                      "reasoning": ["x"], "price_target": 1})  # fmt: skip
    with pytest.raises(ValidationError):
        TechnicalView.model_validate({"trend": "moon", "momentum": "strong", "condition": "neutral",
                                      "reasoning": ["x"]})  # fmt: skip
    with pytest.raises(ValidationError):
        TECH.trend = "down"
    with pytest.raises(ValidationError):
        ResearchThesis(thesis="bullish", confidence=1.5, risks=(), justification="j", reasoning=("r",))
    with pytest.raises(ValidationError):
        TradeProposal(action="BUY", size_pct=float("nan"), reasoning=("r",))
    assert [tier_of(r) for r in Role] == ["cheap"] * 3 + ["strong"] * 3
    assert set(OUTPUT_MODELS) == set(Role)


def test_report_output_must_match_role_and_status() -> None:
    did = uuid4()
    assert report(did).output == TECH
    with pytest.raises(ValidationError, match="answers with"):
        report(did, role=Role.TRADER)
    with pytest.raises(ValidationError, match="carries no output"):
        report(did, status="unavailable")
    with pytest.raises(ValidationError, match="carries the role's output"):
        report(did, output=None)
    assert report(did, status="failed", output=None, reason="invalid").reason == "invalid"


def test_decision_round_trips_on_the_wire_and_routes_by_symbol() -> None:
    did = uuid4()
    decision = DeskDecision(
        decision_id=did, venue="binance", symbol="BTC/USDT", timeframe="1h", ts=TS, provider="rules",
        reference_price=Decimal("94000.5"), action="BUY", size_pct=4.5, verdict="ADJUST", reason="cut",
        stop_loss_pct=2.0, take_profit_pct=4.0, intent_id=uuid4(), roles=(report(did),), tokens_in=10,
        cost_usd=Decimal("0.001"),
    )  # fmt: skip
    codec = JsonCodec(REGISTRY)
    from core.clock import SimulatedClock

    envelope = Envelope.wrap(decision, source="desk", clock=SimulatedClock(TS))
    back = codec.decode(codec.encode(envelope))
    assert back.payload == decision
    assert isinstance(back.payload.roles[0].output, TechnicalView)
    assert routing_key(decision) == "desk.decision.binance.BTC-USDT"
    assert routing_key(decision.roles[0]) == "desk.role.binance.BTC-USDT"
    assert CHANNELS[DeskDecision] == (DESK_DECISIONS,)
    assert CHANNELS[DeskRoleReport] == (DESK_ROLES,)
    assert topic_matches(DESK_DECISIONS.pattern(symbol="BTC/USDT"), routing_key(decision))


def test_decision_rejects_foreign_reports_and_intents_of_rejections() -> None:
    did = uuid4()
    base = {"venue": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "ts": TS, "provider": "rules",
                "reference_price": Decimal(1), "action": "BUY", "size_pct": 1.0}  # fmt: skip
    with pytest.raises(ValidationError, match="belongs to this decision"):
        DeskDecision.model_validate({**base, "decision_id": did, "verdict": "APPROVE", "roles": (report(uuid4()),)})
    with pytest.raises(ValidationError, match="makes no intent"):
        DeskDecision.model_validate({**base, "decision_id": did, "verdict": "REJECT", "intent_id": uuid4()})
    with pytest.raises(ValidationError, match="one report per role"):
        DeskDecision.model_validate(
            {**base, "decision_id": did, "verdict": "APPROVE", "roles": (report(did), report(did))}
        )


def test_contract_document_lists_the_desk_messages() -> None:
    doc = json.loads((Path(__file__).resolve().parents[2] / "docs/contracts/asyncapi.json").read_text())
    text = json.dumps(doc)
    assert "desk_decision" in text
    assert "desk_role_report" in text
    assert "desk.decision" in text
