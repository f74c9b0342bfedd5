"""Pre-trade decision contracts: risk and compliance."""

from __future__ import annotations

from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, model_validator

from core.domain import DecisionVerdict, Direction, Side
from core.messages.base import (
    Payload,
    Price,
    Quantity,
    ReasonCode,
    ShortText,
    Symbol,
    UtcDatetime,
    Venue,
)
from core.messages.registry import register

Percent = Annotated[float, Field(gt=0.0, le=100.0, allow_inf_nan=False)]


@register
class RiskDecision(Payload):
    """Risk's answer to an intent: APPROVE, ADJUST (with the adjusted size) or REJECT with a reason.

    An approval carries everything compliance and execution need: the sized quantity, the decision
    price and the protective levels attached to the entry.
    """

    TYPE = "risk_decision"

    intent_id: UUID
    verdict: DecisionVerdict
    reason: ReasonCode
    detail: ShortText = ""
    venue: Venue
    symbol: Symbol
    side: Side
    direction: Direction
    quantity: Quantity | None = None
    requested_quantity: Quantity | None = None
    reference_price: Price
    stop_loss: Price | None = None
    take_profit: Price | None = None
    trailing_stop_pct: Percent | None = None
    expires_at: UtcDatetime

    @model_validator(mode="after")
    def _sized_when_approved(self) -> Self:
        if self.verdict is DecisionVerdict.REJECT:
            if self.quantity is not None:
                raise ValueError("a rejection carries no quantity")
        elif self.quantity is None:
            raise ValueError("an approval or adjustment must carry a quantity")
        return self

    @property
    def approved(self) -> bool:
        """APPROVE or ADJUST."""
        return self.verdict is not DecisionVerdict.REJECT


@register
class ComplianceDecision(Payload):
    """Compliance's final pre-trade verdict on a risk-approved intent (APPROVE or REJECT)."""

    TYPE = "compliance_decision"

    intent_id: UUID
    verdict: DecisionVerdict
    reason: ReasonCode
    detail: ShortText = ""
    venue: Venue
    symbol: Symbol
    side: Side
    quantity: Quantity | None = None
    client_order_id: str | None = Field(default=None, max_length=36)
    checks: tuple[ReasonCode, ...] = Field(default=(), max_length=64)

    @model_validator(mode="after")
    def _no_adjust(self) -> Self:
        if self.verdict is DecisionVerdict.ADJUST:
            raise ValueError("compliance approves or rejects; it never adjusts")
        return self
