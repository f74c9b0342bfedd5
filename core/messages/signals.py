"""Signal contracts: strategy votes, consensus decisions and trade intents."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, model_validator

from core.domain import ConsensusOutcome, Direction, Side
from core.messages.base import (
    Confidence,
    Payload,
    Price,
    Score,
    ShortText,
    Symbol,
    Timeframe,
    UtcDatetime,
    Venue,
)
from core.messages.registry import register

StrategyName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


@register
class StrategyVote(Payload):
    """One strategy's opinion on one symbol after one snapshot."""

    TYPE = "strategy_vote"

    strategy: StrategyName
    strategy_version: str = Field(default="1", max_length=32)
    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    direction: Direction
    score: Score
    confidence: Confidence
    rationale: ShortText = ""


@register
class ConsensusDecision(Payload):
    """The fused outcome of all votes on one snapshot: EXECUTE, MANUAL_REVIEW or REJECT."""

    TYPE = "consensus_decision"

    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    method: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
    outcome: ConsensusOutcome
    direction: Direction
    weighted_score: Score
    variance: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    votes: tuple[StrategyVote, ...] = Field(default=(), max_length=64)
    intent_id: UUID | None = None
    rationale: ShortText = ""


@register
class TradeIntent(Payload):
    """What the strategy agent wants done: a side on a symbol, not yet sized.

    ``intent_id`` is derived from content (strategy set, symbol, candle time, direction), so the same
    decision made twice is the same intent. After ``expires_at`` the intent is stale and must be
    rejected, never executed late.
    """

    TYPE = "trade_intent"

    intent_id: UUID
    venue: Venue
    symbol: Symbol
    timeframe: Timeframe
    side: Side
    direction: Direction
    reference_price: Price
    stop_loss: Price | None = None
    take_profit: Price | None = None
    score: Score
    confidence: Confidence
    decided_at: UtcDatetime
    expires_at: UtcDatetime
    strategies: tuple[StrategyName, ...] = Field(default=(), max_length=64)
    rationale: ShortText = ""
    allocation_pct: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] | None = None
    """The fraction of equity the entry asks for (the AI desk's sizing): the risk agent sizes the
    entry at this fraction instead of its own sizing method, and its limits still cap it."""

    @model_validator(mode="after")
    def _levels_consistent(self) -> Self:
        if self.expires_at <= self.decided_at:
            raise ValueError("expires_at must be after decided_at")
        if self.expires_at - self.decided_at > timedelta(days=30):
            raise ValueError("an intent may live at most 30 days")
        ref = self.reference_price
        below, above = (
            (self.stop_loss, self.take_profit)
            if self.side is Side.BUY
            else (
                self.take_profit,
                self.stop_loss,
            )
        )
        if self.direction in (Direction.LONG, Direction.SHORT):
            if below is not None and below >= ref:
                raise ValueError("stop/take-profit level on the wrong side of the reference price")
            if above is not None and above <= ref:
                raise ValueError("stop/take-profit level on the wrong side of the reference price")
        return self
