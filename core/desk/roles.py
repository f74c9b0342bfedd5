"""The desk's roles and the frozen output model each one answers with.

Each model holds exactly the fields the role is asked for plus ``reasoning``: a short list of
bullets (at most 5, each at most 200 characters). Models forbid unknown fields and NaN, so a
model's JSON answer either validates or the role has failed (after one repair call).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.llm import Tier

ROLE_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

Bullet = Annotated[str, Field(min_length=1, max_length=200)]
Reasoning = Annotated[tuple[Bullet, ...], Field(min_length=1, max_length=5)]
Pct = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
"""A percentage in 0..100 (of equity, or of the entry price for stop/take-profit distances)."""


class Role(StrEnum):
    """The six desk roles, in pipeline order."""

    TECHNICAL = "technical"
    SENTIMENT = "sentiment"
    TOKENOMICS = "tokenomics"
    RESEARCHER = "researcher"
    TRADER = "trader"
    RISK_MANAGER = "risk_manager"


ANALYSTS: tuple[Role, ...] = (Role.TECHNICAL, Role.SENTIMENT, Role.TOKENOMICS)
"""The analysts: cheap tier, run concurrently; any of them may be unavailable."""

DECIDERS: tuple[Role, ...] = (Role.RESEARCHER, Role.TRADER, Role.RISK_MANAGER)
"""The strong-tier roles: a failure of any of them means no trade."""

ROLES: tuple[Role, ...] = ANALYSTS + DECIDERS


def tier_of(role: Role) -> Tier:
    """``cheap`` for the analysts, ``strong`` for the researcher, trader and risk manager."""
    return "cheap" if role in ANALYSTS else "strong"


class TechnicalView(BaseModel):
    """Technical analyst: trend, momentum and condition of the market."""

    model_config = ROLE_CONFIG

    trend: Literal["up", "down", "sideways"]
    momentum: Literal["strong", "weak"]
    condition: Literal["overbought", "oversold", "neutral"]
    reasoning: Reasoning


class SentimentView(BaseModel):
    """Sentiment/news analyst: the mood of the headlines and the sentiment index."""

    model_config = ROLE_CONFIG

    sentiment: Literal["bullish", "neutral", "bearish"]
    narrative: Annotated[tuple[Bullet, ...], Field(max_length=5)]
    reasoning: Reasoning


class TokenomicsView(BaseModel):
    """Tokenomics analyst: the structural outlook of the token."""

    model_config = ROLE_CONFIG

    outlook: Literal["positive", "neutral", "negative"]
    factors: Annotated[tuple[Bullet, ...], Field(min_length=2, max_length=4)]
    """2 to 4 structural risks or strengths."""
    reasoning: Reasoning


class ResearchThesis(BaseModel):
    """Researcher: one thesis from the analysts' views."""

    model_config = ROLE_CONFIG

    thesis: Literal["bullish", "neutral", "bearish"]
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    risks: Annotated[tuple[Bullet, ...], Field(max_length=3)]
    justification: Annotated[str, Field(min_length=1, max_length=600)]
    reasoning: Reasoning


class TradeProposal(BaseModel):
    """Trader: what to do, how much of equity to allocate (BUY) or reduce (SELL), and the levels."""

    model_config = ROLE_CONFIG

    action: Literal["BUY", "SELL", "HOLD"]
    size_pct: Pct
    stop_loss_pct: Annotated[float, Field(gt=0.0, lt=100.0, allow_inf_nan=False)] | None = None
    take_profit_pct: Annotated[float, Field(gt=0.0, le=1000.0, allow_inf_nan=False)] | None = None
    reasoning: Reasoning


class RiskReview(BaseModel):
    """Risk manager: approve, adjust (with the adjusted size) or reject the trader's proposal."""

    model_config = ROLE_CONFIG

    decision: Literal["APPROVE", "ADJUST", "REJECT"]
    adjusted_size_pct: Pct
    explanation: Annotated[str, Field(min_length=1, max_length=600)]
    reasoning: Reasoning


RoleOutput = TechnicalView | SentimentView | TokenomicsView | ResearchThesis | TradeProposal | RiskReview

OUTPUT_MODELS: dict[Role, type[BaseModel]] = {
    Role.TECHNICAL: TechnicalView,
    Role.SENTIMENT: SentimentView,
    Role.TOKENOMICS: TokenomicsView,
    Role.RESEARCHER: ResearchThesis,
    Role.TRADER: TradeProposal,
    Role.RISK_MANAGER: RiskReview,
}
"""The output model of each role."""
