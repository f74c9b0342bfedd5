"""The AI desk's contracts: one report per role, and the desk's decision.

Both travel on the bus (``desk.role.<venue>.<symbol>``, ``desk.decision.<venue>.<symbol>``), are
stored in PostgreSQL (``desk_role_outputs``, ``desk_decisions``) and are what the API and the
dashboard show. A report is ``ok`` with the role's validated output, ``unavailable`` (an analyst
that failed or was skipped for budget: the desk went on without it) or ``failed`` (a researcher,
trader or risk-manager failure: no trade).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import Field, model_validator

from core.desk.roles import (
    OUTPUT_MODELS,
    Pct,
    ResearchThesis,
    RiskReview,
    Role,
    SentimentView,
    TechnicalView,
    TokenomicsView,
    TradeProposal,
)
from core.messages.base import NonNegativeDecimal, Payload, Price, ShortText, Symbol, Timeframe, UtcDatetime, Venue
from core.messages.registry import register

RoleStatus = Literal["ok", "unavailable", "failed"]
Action = Literal["BUY", "SELL", "HOLD"]
Verdict = Literal["APPROVE", "ADJUST", "REJECT", "NO_TRADE"]
Tokens = Annotated[int, Field(ge=0, le=10_000_000)]
ModelName = Annotated[str, Field(max_length=128)]
Provider = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


@register
class DeskRoleReport(Payload):
    """What one role of one desk decision produced (or why it did not)."""

    TYPE = "desk_role_report"

    decision_id: UUID
    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    ts: UtcDatetime
    """The decision time: no input dated after it was shown to the role."""
    provider: Provider
    role: Role
    status: RoleStatus
    output: TechnicalView | SentimentView | TokenomicsView | ResearchThesis | TradeProposal | RiskReview | None = None
    model: ModelName = ""
    prompt_version: Annotated[str, Field(max_length=64)] = ""
    tokens_in: Tokens = 0
    tokens_out: Tokens = 0
    cost_usd: NonNegativeDecimal = Decimal(0)
    reason: ShortText = ""

    @model_validator(mode="after")
    def _output_matches(self) -> Self:
        if self.status == "ok":
            if self.output is None:
                raise ValueError("an ok report carries the role's output")
            if type(self.output) is not OUTPUT_MODELS[self.role]:
                raise ValueError(f"{self.role.value} answers with {OUTPUT_MODELS[self.role].__name__}")
        elif self.output is not None:
            raise ValueError(f"a {self.status} report carries no output")
        return self


@register
class DeskDecision(Payload):
    """The desk's final decision on one symbol at one time, with every role's report.

    ``verdict`` is the risk manager's (APPROVE, ADJUST, REJECT) or NO_TRADE when a strong-tier role
    failed or the budget ran out (``reason`` says which). ``size_pct`` is the allocation (BUY) or
    reduction (SELL) in percent of equity after the risk manager's adjustment; ``intent_id`` names
    the TradeIntent an APPROVE/ADJUST became (None when nothing was proposed).
    """

    TYPE = "desk_decision"

    decision_id: UUID
    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    ts: UtcDatetime
    provider: Provider
    blind: bool = False
    reference_price: Price
    action: Action
    size_pct: Pct
    verdict: Verdict
    reason: ShortText = ""
    stop_loss_pct: Annotated[float, Field(gt=0.0, lt=100.0, allow_inf_nan=False)] | None = None
    take_profit_pct: Annotated[float, Field(gt=0.0, le=1000.0, allow_inf_nan=False)] | None = None
    intent_id: UUID | None = None
    roles: tuple[DeskRoleReport, ...] = Field(default=(), max_length=6)
    tokens_in: Tokens = 0
    tokens_out: Tokens = 0
    cost_usd: NonNegativeDecimal = Decimal(0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if any(r.decision_id != self.decision_id for r in self.roles):
            raise ValueError("every role report belongs to this decision")
        if len({r.role for r in self.roles}) != len(self.roles):
            raise ValueError("one report per role")
        if self.verdict in ("REJECT", "NO_TRADE") and self.intent_id is not None:
            raise ValueError("a rejected decision makes no intent")
        return self

    def report(self, role: Role) -> DeskRoleReport | None:
        """The report of ``role`` (None when the role did not run)."""
        return next((r for r in self.roles if r.role is role), None)
